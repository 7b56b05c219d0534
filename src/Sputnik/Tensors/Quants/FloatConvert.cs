using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Sputnik.Tensors.Quants;

/// <summary>IEEE half (F16) and bfloat16 (BF16) bit conversions as ggml does them.</summary>
internal static class FloatConvert
{
    /// <summary>F16 bits to float (exact).</summary>
    public static float HalfToFloat(ushort bits) => (float)BitConverter.UInt16BitsToHalf(bits);

    /// <summary>Float to F16 bits, round-to-nearest-even (overflow becomes infinity, NaN stays NaN).</summary>
    public static ushort FloatToHalf(float value) => BitConverter.HalfToUInt16Bits((Half)value);

    /// <summary>BF16 bits to float (exact: the bits become the top half of the float).</summary>
    public static float BF16ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>Float to BF16 bits with round-to-nearest-even; NaN is kept quiet, as ggml_compute_fp32_to_bf16 does.</summary>
    public static ushort FloatToBF16(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 64); // quiet NaN
        return (ushort)((u + (0x7fffu + ((u >> 16) & 1))) >> 16);
    }

    internal static float ReadHalf(ReadOnlySpan<byte> s, int offset) => HalfToFloat(BinaryPrimitives.ReadUInt16LittleEndian(s.Slice(offset)));

    internal static void WriteHalf(Span<byte> s, int offset, float v) => BinaryPrimitives.WriteUInt16LittleEndian(s.Slice(offset), FloatToHalf(v));

    /// <summary>Converts little-endian F16 values to floats.</summary>
    public static void HalfToFloat(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (src.Length != dst.Length * 2) throw new ArgumentException("F16 source must hold exactly 2 bytes per destination value");
        System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), dst);
    }

    /// <summary>Converts little-endian BF16 values to floats.</summary>
    public static void BF16ToFloat(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (src.Length != dst.Length * 2) throw new ArgumentException("BF16 source must hold exactly 2 bytes per destination value");
        ReadOnlySpan<ushort> s = MemoryMarshal.Cast<byte, ushort>(src);
        Span<uint> d = MemoryMarshal.Cast<float, uint>(dst);
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            for (; i + 16 <= s.Length; i += 16)
            {
                var v = Vector256.Create(s.Slice(i, 16));
                var (lo, hi) = Vector256.Widen(v);
                (lo << 16).CopyTo(d.Slice(i));
                (hi << 16).CopyTo(d.Slice(i + 8));
            }
        }
        for (; i < s.Length; i++) d[i] = (uint)s[i] << 16;
    }
}
