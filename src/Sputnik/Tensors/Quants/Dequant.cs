using System.Runtime.InteropServices;

namespace Sputnik.Tensors.Quants;

/// <summary>Block decoder signature: one block of bytes to its weights.</summary>
internal delegate void BlockDecoder(ReadOnlySpan<byte> block, Span<float> weights);

/// <summary>Encoder signature: one block of weights to its bytes.</summary>
internal delegate void BlockEncoder(ReadOnlySpan<float> weights, Span<byte> block);

/// <summary>Dequantization of whole rows of ggml-typed data to float.</summary>
internal static class Dequant
{
    /// <summary>True when <see cref="Row"/> can decode <paramref name="type"/>.</summary>
    public static bool IsSupported(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 || Decoder(type) is not null;

    /// <summary>
    /// Decodes one row: <paramref name="dst"/> receives the weights (its length is the row length, a multiple of the block size)
    /// and <paramref name="src"/> must be exactly <see cref="GgmlTypeInfo.RowBytes"/> of that many weights.
    /// </summary>
    public static void Row(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (type)
        {
            case GgmlType.F32:
                CheckLength(type, src, dst.Length);
                MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
                return;
            case GgmlType.F16:
                CheckLength(type, src, dst.Length);
                FloatConvert.HalfToFloat(src, dst);
                return;
            case GgmlType.BF16:
                CheckLength(type, src, dst.Length);
                FloatConvert.BF16ToFloat(src, dst);
                return;
        }
        BlockDecoder decode = Decoder(type) ?? throw new NotSupportedException($"Dequantization of ggml type {type} is not supported");
        CheckLength(type, src, dst.Length);
        int bs = GgmlTypeInfo.BlockSize(type), bb = GgmlTypeInfo.BlockBytes(type);
        int nb = dst.Length / bs;
        for (int i = 0; i < nb; i++) decode(src.Slice(i * bb, bb), dst.Slice(i * bs, bs));
    }

    internal static BlockDecoder? Decoder(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => LegacyQuants.DequantQ8_0,
        GgmlType.Q4_0 => LegacyQuants.DequantQ4_0,
        GgmlType.Q4_1 => LegacyQuants.DequantQ4_1,
        GgmlType.Q5_0 => LegacyQuants.DequantQ5_0,
        GgmlType.Q5_1 => LegacyQuants.DequantQ5_1,
        GgmlType.Q4_K => KQuants.DequantQ4_K,
        GgmlType.Q5_K => KQuants.DequantQ5_K,
        GgmlType.Q6_K => KQuants.DequantQ6_K,
        GgmlType.Q8_K => KQuants.DequantQ8_K,
        GgmlType.MXFP4 => Mxfp4.Dequant,
        _ => null,
    };

    internal static void CheckLength(GgmlType type, ReadOnlySpan<byte> bytes, int weights)
    {
        long expected = GgmlTypeInfo.RowBytes(type, weights);
        if (bytes.Length != expected)
            throw new ArgumentException($"{type} row of {weights} weights takes {expected} bytes, got {bytes.Length}");
    }
}

/// <summary>Quantization of float rows to ggml types, following llama.cpp's reference quantizers (quantize_row_*_ref).</summary>
internal static class Quant
{
    /// <summary>True when <see cref="Row"/> can encode <paramref name="type"/>.</summary>
    public static bool IsSupported(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 || Encoder(type) is not null;

    /// <summary>
    /// Encodes one row of <paramref name="src"/> (length a multiple of the block size) into <paramref name="dst"/>,
    /// which must be exactly <see cref="GgmlTypeInfo.RowBytes"/> long.
    /// </summary>
    public static void Row(GgmlType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        switch (type)
        {
            case GgmlType.F32:
                Dequant.CheckLength(type, dst, src.Length);
                MemoryMarshal.AsBytes(src).CopyTo(dst);
                return;
            case GgmlType.F16:
            {
                Dequant.CheckLength(type, dst, src.Length);
                Span<Half> h = MemoryMarshal.Cast<byte, Half>(dst);
                System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(src, h);
                return;
            }
            case GgmlType.BF16:
            {
                Dequant.CheckLength(type, dst, src.Length);
                Span<ushort> h = MemoryMarshal.Cast<byte, ushort>(dst);
                for (int i = 0; i < src.Length; i++) h[i] = FloatConvert.FloatToBF16(src[i]);
                return;
            }
        }
        BlockEncoder encode = Encoder(type) ?? throw new NotSupportedException($"Quantization to ggml type {type} is not supported");
        Dequant.CheckLength(type, dst, src.Length);
        int bs = GgmlTypeInfo.BlockSize(type), bb = GgmlTypeInfo.BlockBytes(type);
        int nb = src.Length / bs;
        for (int i = 0; i < nb; i++) encode(src.Slice(i * bs, bs), dst.Slice(i * bb, bb));
    }

    internal static BlockEncoder? Encoder(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => LegacyQuants.QuantQ8_0,
        GgmlType.Q4_0 => LegacyQuants.QuantQ4_0,
        GgmlType.Q4_1 => LegacyQuants.QuantQ4_1,
        GgmlType.Q5_0 => LegacyQuants.QuantQ5_0,
        GgmlType.Q5_1 => LegacyQuants.QuantQ5_1,
        GgmlType.Q4_K => KQuants.QuantQ4_K,
        GgmlType.Q5_K => KQuants.QuantQ5_K,
        GgmlType.Q6_K => KQuants.QuantQ6_K,
        GgmlType.Q8_K => KQuants.QuantQ8_K,
        GgmlType.MXFP4 => Mxfp4.Quant,
        _ => null,
    };
}
