using System.Numerics;
using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Models;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tensors;

/// <summary>
/// The element formats of the KV cache as bytes: F32, F16, and ggml's Q8_0 {f16 d; i8 qs[32]} and
/// Q4_0 {f16 d; u8 qs[16]} blocks (the same bytes and rounding as llama.cpp's `--cache-type-k/-v q8_0 | q4_0`).
/// Encoding runs once per written row (scalar, the ggml reference quantizers); decoding runs inside attention for
/// every row read, so it is vectorized, with <see cref="DecodeReference"/> as the scalar reference it is tested against.
/// </summary>
internal static class KvRowCodec
{
    public const int Block = LegacyQuants.QK;

    public static bool IsBlockFormat(KvCacheType type) => type is KvCacheType.Q8_0 or KvCacheType.Q4_0;

    /// <summary>Bytes that <paramref name="elements"/> values take (a multiple of 32 for the block formats).</summary>
    public static int Bytes(KvCacheType type, int elements) => type switch
    {
        KvCacheType.F32 => elements * 4,
        KvCacheType.F16 => elements * 2,
        KvCacheType.Q8_0 => elements / Block * 34,
        KvCacheType.Q4_0 => elements / Block * 18,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
    };

    /// <summary>Stores <paramref name="src"/> (a multiple of 32 values for the block formats) into <paramref name="dst"/>.</summary>
    public static void Encode(KvCacheType type, ReadOnlySpan<float> src, Span<byte> dst)
    {
        switch (type)
        {
            case KvCacheType.F32:
                MemoryMarshal.AsBytes(src).CopyTo(dst);
                break;
            case KvCacheType.F16:
                System.Numerics.Tensors.TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(dst[..(src.Length * 2)]));
                break;
            case KvCacheType.Q8_0:
                for (int b = 0; b < src.Length / Block; b++) LegacyQuants.QuantQ8_0Activation(src.Slice(b * Block, Block), dst.Slice(b * 34, 34));
                break;
            case KvCacheType.Q4_0:
                for (int b = 0; b < src.Length / Block; b++) LegacyQuants.QuantQ4_0(src.Slice(b * Block, Block), dst.Slice(b * 18, 18));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    /// <summary>Element-by-element decode of <paramref name="dst"/>.Length values from <paramref name="src"/>: the reference.</summary>
    public static void DecodeReference(KvCacheType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        int n = dst.Length;
        switch (type)
        {
            case KvCacheType.F32:
                MemoryMarshal.Cast<byte, float>(src[..(n * 4)]).CopyTo(dst);
                break;
            case KvCacheType.F16:
                for (int i = 0; i < n; i++) dst[i] = (float)MemoryMarshal.Read<Half>(src.Slice(2 * i));
                break;
            case KvCacheType.Q8_0:
                for (int b = 0; b < n / Block; b++) LegacyQuants.DequantQ8_0(src.Slice(b * 34, 34), dst.Slice(b * Block, Block));
                break;
            case KvCacheType.Q4_0:
                for (int b = 0; b < n / Block; b++) LegacyQuants.DequantQ4_0(src.Slice(b * 18, 18), dst.Slice(b * Block, Block));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    /// <summary>
    /// Decodes <paramref name="dst"/>.Length values with vectors of <paramref name="width"/> bits (512, 256, 128; 0 is
    /// the reference). Every width gives the same floats: the formats decode exactly.
    /// </summary>
    public static unsafe void Decode(KvCacheType type, ReadOnlySpan<byte> src, Span<float> dst, int width)
    {
        int n = dst.Length;
        if (width == 0 || type == KvCacheType.F32)
        {
            DecodeReference(type, src, dst);
            return;
        }
        if (src.Length < Bytes(type, n)) throw new ArgumentException($"{src.Length} bytes hold fewer than {n} {type} values");
        ref byte s = ref MemoryMarshal.GetReference(src);
        ref float d = ref MemoryMarshal.GetReference(dst);
        switch (type)
        {
            case KvCacheType.F16:
                fixed (byte* ps = src)
                fixed (float* pd = dst)
                    FloatConvert.HalfToFloat((ushort*)ps, pd, n, width >= 256 ? width : 0);
                break;
            case KvCacheType.Q8_0:
            case KvCacheType.Q4_0:
                int blockBytes = Bytes(type, Block);
                for (int b = 0; b < n / Block; b++)
                {
                    ref byte blk = ref Unsafe.Add(ref s, b * blockBytes);
                    DecodeBlock(type, ref blk, (float)Unsafe.ReadUnaligned<Half>(ref blk), ref Unsafe.Add(ref d, b * Block), width);
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, null);
        }
    }

    /// <summary>
    /// F16 values to floats with 512- or 256-bit vectors, inlined into the caller's row loop: attention converts every
    /// cached row it reads, and the dispatch of <see cref="Decode"/> cost a third as much as the conversion of a
    /// 128-value head row. Gives the floats <see cref="DecodeReference"/> gives.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void DecodeHalf(ReadOnlySpan<byte> src, Span<float> dst, int width)
    {
        int n = dst.Length, i = 0;
        if (src.Length < 2 * n) throw new ArgumentException($"{src.Length} bytes hold fewer than {n} F16 values");
        ref ushort s = ref Unsafe.As<byte, ushort>(ref MemoryMarshal.GetReference(src));
        ref float d = ref MemoryMarshal.GetReference(dst);
        if (width >= 256 && NormalRows && Avx2.IsSupported && AllNormal(ref s, n & ~15))
        {
            // The usual row: every half normal, converted in 4 vector operations per 8 (or per 16) instead of 8.
            if (width == 512)
                for (; i + 16 <= (n & ~15); i += 16)
                    FloatConvert.NormalHalfToFloat512(Vector256.LoadUnsafe(ref s, (nuint)i).AsInt16()).StoreUnsafe(ref d, (nuint)i);
            for (; i + 8 <= (n & ~15); i += 8)
                FloatConvert.NormalHalfToFloat256(Vector128.LoadUnsafe(ref s, (nuint)i).AsInt16()).StoreUnsafe(ref d, (nuint)i);
        }
        else if (width >= 256 && AllFinite(ref s, n & ~7))
        {
            // The common row: no infinity or NaN among the vector part, so the finite conversion (without its
            // per-vector check, a third of its instructions) gives the exact floats.
            if (width == 512)
                for (; i + 16 <= n; i += 16)
                    FloatConvert.FiniteHalfToFloat512(Vector256.LoadUnsafe(ref s, (nuint)i)).StoreUnsafe(ref d, (nuint)i);
            for (; i + 8 <= n; i += 8)
                FloatConvert.FiniteHalfToFloat256(Vector128.LoadUnsafe(ref s, (nuint)i)).StoreUnsafe(ref d, (nuint)i);
        }
        if (width == 512)
            for (; i + 16 <= n; i += 16)
                FloatConvert.HalfToFloat512(Vector256.LoadUnsafe(ref s, (nuint)i)).StoreUnsafe(ref d, (nuint)i);
        if (width >= 256)
            for (; i + 8 <= n; i += 8)
                FloatConvert.HalfToFloat256(Vector128.LoadUnsafe(ref s, (nuint)i)).StoreUnsafe(ref d, (nuint)i);
        for (; i < n; i++) Unsafe.Add(ref d, i) = FloatConvert.HalfToFloat(Unsafe.Add(ref s, i));
    }

    /// <summary>Whether every float of <paramref name="row"/> rounds to a finite half: |x| below 65520 (65520 and up round to infinity), not NaN.</summary>
    public static bool FitsHalf(ReadOnlySpan<float> row) => row.IsEmpty || Math.Abs(TensorPrimitives.MaxMagnitude(row)) < 65520f; // NaN: false

    /// <summary>Whether no half stored in <paramref name="bytes"/> (an even count) is an infinity or NaN (exponent 31).</summary>
    public static bool HalvesFinite(ReadOnlySpan<byte> bytes)
    {
        var halves = MemoryMarshal.Cast<byte, ushort>(bytes);
        int i = 0;
        var exponent = new Vector<ushort>(0x7C00);
        for (; i + Vector<ushort>.Count <= halves.Length; i += Vector<ushort>.Count)
            if (Vector.EqualsAny(new Vector<ushort>(halves[i..]) & exponent, exponent)) return false;
        for (; i < halves.Length; i++)
            if ((halves[i] & 0x7C00) == 0x7C00) return false;
        return true;
    }

    /// <summary>Whether F16 rows of normal halves take the 4-instruction conversion (settable for the bench's A/B: `attn … exact,normal`).</summary>
    internal static bool NormalRows = true;

    /// <summary>
    /// Whether all of the first n halves (n a multiple of 16) are normal (exponent 1…30: no zero, subnormal, infinity
    /// or NaN). (h &amp; 0x7C00) + 0x0400 is above 0x0400 as a signed 16-bit value exactly for exponents 1…30 (0 gives
    /// 0x0400, 31 wraps to −32768), so one running minimum answers: 3 instructions per 16 halves.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool AllNormal(ref ushort s, int n)
    {
        var exponent = Vector256.Create((short)0x7C00);
        var one = Vector256.Create((short)0x0400);
        var low = Vector256.Create(short.MaxValue);
        for (int i = 0; i + 16 <= n; i += 16)
            low = Vector256.Min(low, (Vector256.LoadUnsafe(ref s, (nuint)i).AsInt16() & exponent) + one);
        return Vector256.GreaterThanAll(low, one);
    }

    /// <summary>Whether none of the first n halves (n a multiple of 8) is an infinity or NaN: 16 exponents a compare.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static bool AllFinite(ref ushort s, int n)
    {
        const ushort exponent = 0x7C00;
        int i = 0;
        var top = Vector128<ushort>.Zero;
        if (n >= 16)
        {
            var e = Vector256.Create(exponent);
            var top256 = Vector256<ushort>.Zero;
            for (; i + 16 <= n; i += 16) top256 |= Vector256.Equals(Vector256.LoadUnsafe(ref s, (nuint)i) & e, e);
            top = top256.GetLower() | top256.GetUpper();
        }
        if (i < n)
        {
            var e = Vector128.Create(exponent);
            top |= Vector128.Equals(Vector128.LoadUnsafe(ref s, (nuint)i) & e, e);
        }
        return top == Vector128<ushort>.Zero;
    }

    /// <summary>
    /// One Q8_0 or Q4_0 block's 32 values into o, its F16 scale given as a float (attention converts a tile's scales
    /// in one vector pass; one at a time, the runtime's Half conversion was a quarter of Q8_0-cache decode).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void DecodeBlock(KvCacheType type, ref byte blk, float scale, ref float o, int width)
    {
        if (type == KvCacheType.Q8_0)
        {
            Widen(ref Unsafe.As<byte, sbyte>(ref Unsafe.Add(ref blk, 2)), scale, ref o, width);
            return;
        }
        Q4_0Values(ref blk, out var lo, out var hi);
        Widen16(lo, scale, ref o);
        Widen16(hi, scale, ref Unsafe.Add(ref o, 16));
    }

    /// <summary>A Q4_0 block's 32 quants, centred: low nibbles are values 0..15, high nibbles 16..31, each minus 8.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Q4_0Values(ref byte blk, out Vector128<sbyte> lo, out Vector128<sbyte> hi)
    {
        var packed = Vector128.LoadUnsafe(ref Unsafe.Add(ref blk, 2));
        lo = (packed & Vector128.Create((byte)0x0F)).AsSByte() - Vector128.Create((sbyte)8);
        hi = Vector128.ShiftRightLogical(packed, 4).AsSByte() - Vector128.Create((sbyte)8);
    }

    // 32 signed bytes times the block scale.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Widen(ref sbyte q, float scale, ref float o, int width)
    {
        if (width >= 256)
        {
            var v = Vector256.LoadUnsafe(ref q);
            var (s0, s1) = Vector256.Widen(v);
            var (i0, i1) = Vector256.Widen(s0);
            var (i2, i3) = Vector256.Widen(s1);
            var f = Vector256.Create(scale);
            (Vector256.ConvertToSingle(i0) * f).StoreUnsafe(ref o);
            (Vector256.ConvertToSingle(i1) * f).StoreUnsafe(ref o, 8);
            (Vector256.ConvertToSingle(i2) * f).StoreUnsafe(ref o, 16);
            (Vector256.ConvertToSingle(i3) * f).StoreUnsafe(ref o, 24);
            return;
        }
        Widen16(Vector128.LoadUnsafe(ref q), scale, ref o);
        Widen16(Vector128.LoadUnsafe(ref Unsafe.Add(ref q, 16)), scale, ref Unsafe.Add(ref o, 16));
    }

    // 16 signed bytes times the block scale.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Widen16(Vector128<sbyte> v, float scale, ref float o)
    {
        var (s0, s1) = Vector128.Widen(v);
        var (i0, i1) = Vector128.Widen(s0);
        var (i2, i3) = Vector128.Widen(s1);
        var f = Vector128.Create(scale);
        (Vector128.ConvertToSingle(i0) * f).StoreUnsafe(ref o);
        (Vector128.ConvertToSingle(i1) * f).StoreUnsafe(ref o, 4);
        (Vector128.ConvertToSingle(i2) * f).StoreUnsafe(ref o, 8);
        (Vector128.ConvertToSingle(i3) * f).StoreUnsafe(ref o, 12);
    }
}
