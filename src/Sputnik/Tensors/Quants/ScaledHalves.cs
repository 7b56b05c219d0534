using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// F16 weights re-laid at load as <c>w·2^10</c>, still halves, so that decode widens them to float in three integer
/// steps instead of eight, with no change in any result.
/// </summary>
/// <remarks>
/// Widening a half exactly needs care only for the subnormal ones (exponent 0): every other half's exponent and
/// mantissa, shifted into float position, are a normal float, <c>w·2^-112</c>. Multiplying each weight of a matrix
/// by 2^10 at load makes every subnormal half normal (the smallest, 2^-24, becomes 2^-14) and is exact for every half
/// under 64 in magnitude, which is every weight of real models; a matrix with a weight of 64 or more, or an inf or
/// NaN, keeps the file's halves and <see cref="HalfWeights"/>' exact conversion. The decode kernel then takes
/// sign-extend, shift and mask (<c>w·2^-102</c>, a normal float or zero) and multiplies the activation by 2^102 as it
/// loads it, so every product is <c>w·x</c> to the bit and the sums are the F16 kernel's, batched or alone. Rows stay
/// in the file's order and size; <see cref="Models.WeightMatrix"/> holds them in memory of its own or maps them from
/// <see cref="Models.RelaidCache"/>.
/// </remarks>
internal static unsafe class ScaledHalves
{
    /// <summary>log2 of the factor each weight is multiplied by at load.</summary>
    public const int ExponentShift = 10;
    private const int HalfMantissaBits = 10;

    /// <summary>What a scaled half's value is multiplied by to give the weight (exact).</summary>
    public const float ToWeight = 1f / (1 << ExponentShift);

    /// <summary>A scaled half sign-extended, shifted left 13 and masked is w·2^-102 as a float; the activation is multiplied by this.</summary>
    public const float ActivationScale = 5.0706024e30f; // 2^102 = 2^(112 − ExponentShift)

    /// <summary>Keeps the sign (bit 31) and the exponent and mantissa (bits 27…13) of a sign-extended half shifted left 13.</summary>
    public const int FloatBitsMask = FloatConvert.HalfBitsInFloatMask;

    // Magnitudes from 64 (2^6: exponent 21) up, inf and NaN included, cannot be scaled by 2^10 within F16.
    private const ushort FirstRefused = 21 << HalfMantissaBits;
    private const ushort Magnitude = 0x7FFF, Sign = 0x8000, FirstNormal = 1 << HalfMantissaBits;
    private const int ShiftedExponent = ExponentShift << HalfMantissaBits;
    // A float's bits shifted right 13 are a half's with the exponent biased by 127 − 15 = 112 too many.
    private const int FloatToHalfRebias = 112 << HalfMantissaBits;
    private const float SubnormalToScaled = 1f / (1 << 14); // a subnormal half's mantissa m: m·2^-24·2^10

    /// <summary>Whether F16 rows of <paramref name="cols"/> columns get the scaled layout here (a SIMD path exists).</summary>
    public static bool Supports(GgmlType type, int cols) => type == GgmlType.F16 && cols > 0 && MatVec.DefaultPath != KernelPath.Scalar;

    /// <summary>The scaled half of the half <paramref name="h"/>, or null when |h| ≥ 64, inf or NaN (the reference for <see cref="TryScale(ReadOnlySpan{ushort}, Span{ushort})"/>).</summary>
    public static ushort? Scale(ushort h)
    {
        int magnitude = h & Magnitude;
        if (magnitude >= FirstRefused) return null;
        if (magnitude == 0) return h;
        int scaled = magnitude >= FirstNormal
            ? magnitude + ShiftedExponent
            : (int)(BitConverter.SingleToUInt32Bits(magnitude * SubnormalToScaled) >> 13) - FloatToHalfRebias;
        return (ushort)(scaled | (h & Sign));
    }

    /// <summary>The weight a scaled half stands for (exact).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Weight(ushort scaled) => FloatConvert.HalfToFloat(scaled) * ToWeight;

    /// <summary>The weights <paramref name="n"/> scaled halves stand for (exact), three integer steps and a multiply per vector.</summary>
    public static void ToWeights(ushort* src, float* dst, int n) => ToWeights(src, dst, n, MatVec.DefaultPath);

    /// <summary><see cref="ToWeights(ushort*, float*, int)"/> on a given path, so tests run each.</summary>
    internal static void ToWeights(ushort* src, float* dst, int n, KernelPath path)
    {
        int i = 0;
        if (path == KernelPath.Avx512)
            for (; i + 16 <= n; i += 16)
                (Widen512(Vector256.Load((short*)src + i)) * Vector512.Create(ActivationScale)).Store(dst + i);
        if (path != KernelPath.Scalar)
            for (; i + 8 <= n; i += 8)
                (Widen256(Vector128.Load((short*)src + i)) * Vector256.Create(ActivationScale)).Store(dst + i);
        for (; i < n; i++) dst[i] = Weight(src[i]);
    }

    /// <summary>Sixteen scaled halves as floats w·2^-102 (normal or zero): sign-extend, shift into float position, mask.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Widen512(Vector256<short> h) => FloatConvert.HalfBitsInFloatPlace512(h).AsSingle();

    /// <summary>The 8-lane <see cref="Widen512"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Widen256(Vector128<short> h) => FloatConvert.HalfBitsInFloatPlace256(h).AsSingle();

    /// <summary>
    /// Writes the scaled halves of <paramref name="src"/> to <paramref name="dst"/> (same length); false, with
    /// <paramref name="dst"/> partly written, when one of them cannot be scaled (|w| ≥ 64, inf, NaN).
    /// </summary>
    public static bool TryScale(ReadOnlySpan<ushort> src, Span<ushort> dst)
    {
        if (dst.Length < src.Length) throw new ArgumentException($"destination holds {dst.Length} halves, source {src.Length}");
        fixed (ushort* s = src)
        fixed (ushort* d = dst)
            return TryScale(s, d, src.Length, Vector512.IsHardwareAccelerated);
    }

    /// <summary><see cref="TryScale(ReadOnlySpan{ushort}, Span{ushort})"/> with the 16-lane path on or off, so tests run both.</summary>
    internal static bool TryScale(ushort* src, ushort* dst, int n, bool vector)
    {
        int i = 0;
        if (vector)
        {
            var largest = Vector512<int>.Zero;
            for (; i + 16 <= n; i += 16)
            {
                var h = Vector512.WidenLower(Vector256.Load(src + i).ToVector512Unsafe()).AsInt32();
                var magnitude = h & Vector512.Create((int)Magnitude);
                largest = Vector512.Max(largest, magnitude);
                var normal = magnitude + Vector512.Create(ShiftedExponent);
                var fromSubnormal = (Vector512.ConvertToSingle(magnitude) * Vector512.Create(SubnormalToScaled)).AsInt32();
                fromSubnormal = Vector512.ShiftRightLogical(fromSubnormal, 13) - Vector512.Create(FloatToHalfRebias);
                var scaled = Vector512.ConditionalSelect(Vector512.GreaterThanOrEqual(magnitude, Vector512.Create((int)FirstNormal)), normal, fromSubnormal);
                scaled = Vector512.ConditionalSelect(Vector512.Equals(magnitude, Vector512<int>.Zero), Vector512<int>.Zero, scaled);
                var halves = (scaled | (h & Vector512.Create((int)Sign))).AsUInt32();
                Vector512.Narrow(halves, halves).GetLower().Store(dst + i);
            }
            if (Vector512.GreaterThanOrEqualAny(largest, Vector512.Create((int)FirstRefused))) return false;
        }
        for (; i < n; i++)
        {
            if (Scale(src[i]) is not ushort s) return false;
            dst[i] = s;
        }
        return true;
    }
}
