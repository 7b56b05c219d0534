using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

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

    /// <summary>dst[i] = x[i] rounded to the nearest F16 (ties to even), as ggml-cpu's fp32→fp16 conversion (F16C) rounds.</summary>
    public static void RoundThroughHalf(ReadOnlySpan<float> x, Span<float> dst)
    {
        Span<Half> chunk = stackalloc Half[256];
        for (int i = 0; i < x.Length; i += chunk.Length)
        {
            int n = Math.Min(chunk.Length, x.Length - i);
            TensorPrimitives.ConvertToHalf(x.Slice(i, n), chunk[..n]);
            TensorPrimitives.ConvertToSingle(chunk[..n], dst.Slice(i, n));
        }
    }

    /// <summary>dst[i] = x[i] rounded to the nearest BF16 (ties to even; <see cref="FloatToBF16"/>).</summary>
    public static void RoundThroughBF16(ReadOnlySpan<float> x, Span<float> dst)
    {
        for (int i = 0; i < x.Length; i++) dst[i] = BF16ToFloat(FloatToBF16(x[i]));
    }

    internal static float ReadHalf(ReadOnlySpan<byte> s, int offset) => HalfToFloat(BinaryPrimitives.ReadUInt16LittleEndian(s.Slice(offset)));

    internal static void WriteHalf(Span<byte> s, int offset, float v) => BinaryPrimitives.WriteUInt16LittleEndian(s.Slice(offset), FloatToHalf(v));

    /// <summary>Converts little-endian F16 values to floats.</summary>
    public static void HalfToFloat(ReadOnlySpan<byte> src, Span<float> dst)
    {
        if (src.Length != dst.Length * 2) throw new ArgumentException("F16 source must hold exactly 2 bytes per destination value");
        HalfToFloat(MemoryMarshal.Cast<byte, Half>(src), dst);
    }

    /// <summary>Converts F16 values to floats, exactly (subnormals, infinities and NaN payloads included).</summary>
    /// <remarks>
    /// TensorPrimitives.ConvertToSingle(Half) ran at about 0.6 GB/s here (.NET 10 has no F16C intrinsics, and its
    /// fallback is per element); this vector form runs at about 9 GB/s and sits under F16 weights, F16 KV caches
    /// and the latent cache.
    /// </remarks>
    public static unsafe void HalfToFloat(ReadOnlySpan<Half> src, Span<float> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException($"destination holds {dst.Length} values, source {src.Length}");
        fixed (Half* s = src)
        fixed (float* d = dst)
            HalfToFloat((ushort*)s, d, src.Length, Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : 0);
    }

    /// <summary>The conversion with an explicit vector width (512, 256 or 0 for scalar), so tests can run every path.</summary>
    internal static unsafe void HalfToFloat(ushort* src, float* dst, int n, int width)
    {
        int i = 0;
        if (width == 512)
            for (; i + 16 <= n; i += 16) HalfToFloat512(Vector256.Load(src + i)).Store(dst + i);
        if (width >= 256)
            for (; i + 8 <= n; i += 8) HalfToFloat256(Vector128.Load(src + i)).Store(dst + i);
        for (; i < n; i++) dst[i] = HalfToFloat(src[i]);
    }

    // Sign-extending a half to 32 bits and shifting it left by 13 puts its exponent and mantissa in float position
    // (sign copied into bits 31…28). Masked to the magnitude and rebiased by adding 112 to the exponent, that is the
    // value of every normal half, exactly: f. A subnormal half (exponent 0, value m·2^-24) instead comes out as
    // f = 2^-15·(1 + m/1024), and g = 2f − 2^-14 = m·2^-24 is its value (one fused multiply-add, exact). For a normal
    // half g ≥ f, for a subnormal one g < f, so the magnitude is min(f, g) in every lane, with no branch; the sign is
    // put back with an OR. No operation ever sees a subnormal float. The earlier form (mask, then multiply by 2^112)
    // fed subnormal halves to the multiply as subnormal floats, and on an Intel core (a Xeon, family 6 model 207) the
    // F16 decode kernel then ran 3× slower in cache with 0.3 % of its weights subnormal (7 against 21 GB/s, one thread;
    // the slow path is the cores' microcode assist for subnormal inputs, which this VM has no counters to show). Q6_K's block scales are almost always subnormal halves (every one in a
    // synth Q4_K_M qwen2-1.5B), and about one F16 weight in 400 is (standard deviation 0.02).
    // Exponent 31 (inf/NaN) comes out as ±2^16·1.m (finite halves stay ≤ 65504), so those lanes get the all-ones float
    // exponent instead (NaNs also the quiet bit, as the runtime's conversion and F16C set it), in a branch taken only
    // when a lane needs it.
    /// <summary>
    /// 2^112: a half's bits in float place (<see cref="HalfBitsInFloatPlace512"/>) read as a float, times this, are the
    /// half's value, exactly, for every finite half (a subnormal half is a subnormal float there, a zero a zero).
    /// </summary>
    internal const float HalfBitsScale = 5192296858534827628530496329220096f;

    private const int HalfMagnitudeBits = 0x0FFFE000, ExponentRebias = 0x38000000, SignBit = unchecked((int)0x80000000);
    private const float TwoToMinus14 = 1f / 16384;
    private const uint Pow2To16 = 0x47800000, FloatMagnitude = 0x7FFFFFFF, FloatInfNan = 0x7F800000, QuietBit = 0x00400000;

    /// <summary>
    /// Eight normal halves (exponent 1…30: no zero, subnormal, infinity or NaN; callers check, e.g.
    /// KvRowCodec.AllNormal) to floats, exactly, in four operations where <see cref="FiniteHalfToFloat256"/> takes
    /// eight: sign-extended and shifted left by 13, a half's exponent and mantissa sit in float position with its sign
    /// in bit 31 (copied into bits 30…28); masked to sign and magnitude and rebiased (112 added to the exponent, which
    /// never carries into the sign), that is the float.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> NormalHalfToFloat256(Vector128<short> h) =>
        (HalfBitsInFloatPlace256(h) + Vector256.Create(ExponentRebias)).AsSingle();

    /// <summary>The 16-lane <see cref="NormalHalfToFloat256"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> NormalHalfToFloat512(Vector256<short> h) =>
        (HalfBitsInFloatPlace512(h) + Vector512.Create(ExponentRebias)).AsSingle();

    /// <summary>A half's sign, exponent and mantissa in a float's places: sign-extended, shifted left 13, masked (bits 30…28 cleared).</summary>
    internal const int HalfBitsInFloatMask = HalfMagnitudeBits | SignBit;

    /// <summary>
    /// Eight halves' bits in float place (<see cref="HalfBitsInFloatMask"/>): a normal half's float less its exponent
    /// rebias (<see cref="NormalHalfToFloat256"/> adds it; ScaledHalves reads it as the weight times 2^-102).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> HalfBitsInFloatPlace256(Vector128<short> h) =>
        (Vector256.WidenLower(h.ToVector256Unsafe()) << 13) & Vector256.Create(HalfBitsInFloatMask);

    /// <summary>The 16-lane <see cref="HalfBitsInFloatPlace256"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<int> HalfBitsInFloatPlace512(Vector256<short> h) =>
        (Vector512.WidenLower(h.ToVector512Unsafe()) << 13) & Vector512.Create(HalfBitsInFloatMask);

    /// <summary>Exact for finite halves; inf and NaN come out as ±2^16·(1 + mantissa), for callers that check for them apart.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> FiniteHalfToFloat512(Vector256<ushort> h)
    {
        var t = Vector512.WidenLower(h.AsInt16().ToVector512Unsafe()) << 13;
        var f = ((t & Vector512.Create(HalfMagnitudeBits)) + Vector512.Create(ExponentRebias)).AsSingle();
        var g = Vector512.FusedMultiplyAdd(f, Vector512.Create(2f), Vector512.Create(-TwoToMinus14));
        // Avx512F.Min is the plain vminps (neither input is NaN or -0 here); Vector512.Min adds IEEE fix-ups.
        return ((Avx512F.IsSupported ? Avx512F.Min(f, g) : Vector512.Min(f, g)).AsInt32() | (t & Vector512.Create(SignBit))).AsSingle();
    }

    /// <summary>The 8-lane <see cref="FiniteHalfToFloat512"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> FiniteHalfToFloat256(Vector128<ushort> h)
    {
        var t = Vector256.WidenLower(h.AsInt16().ToVector256Unsafe()) << 13;
        var f = ((t & Vector256.Create(HalfMagnitudeBits)) + Vector256.Create(ExponentRebias)).AsSingle();
        var g = Vector256.FusedMultiplyAdd(f, Vector256.Create(2f), Vector256.Create(-TwoToMinus14));
        return ((Avx.IsSupported ? Avx.Min(f, g) : Vector256.Min(f, g)).AsInt32() | (t & Vector256.Create(SignBit))).AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> HalfToFloat512(Vector256<ushort> h)
    {
        var f = FiniteHalfToFloat512(h).AsUInt32();
        var mag = f & Vector512.Create(FloatMagnitude);
        if (Vector512.GreaterThanOrEqualAny(mag, Vector512.Create(Pow2To16)))
            f |= Vector512.GreaterThanOrEqual(mag, Vector512.Create(Pow2To16)) & Vector512.Create(FloatInfNan)
                | Vector512.GreaterThan(mag, Vector512.Create(Pow2To16)) & Vector512.Create(QuietBit);
        return f.AsSingle();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> HalfToFloat256(Vector128<ushort> h)
    {
        var f = FiniteHalfToFloat256(h).AsUInt32();
        var mag = f & Vector256.Create(FloatMagnitude);
        if (Vector256.GreaterThanOrEqualAny(mag, Vector256.Create(Pow2To16)))
            f |= Vector256.GreaterThanOrEqual(mag, Vector256.Create(Pow2To16)) & Vector256.Create(FloatInfNan)
                | Vector256.GreaterThan(mag, Vector256.Create(Pow2To16)) & Vector256.Create(QuietBit);
        return f.AsSingle();
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
