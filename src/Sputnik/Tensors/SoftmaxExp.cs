using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Sputnik.Tensors;

/// <summary>
/// exp(x) in single precision for attention's softmax, the same floats at every vector width and in scalar code.
/// .NET's Vector512.Exp widens to double and is not inlined; at depth 4,096 it took 8 % of prefill (perf, pp4096).
/// This one reduces x = n·ln 2 + r (|r| ≤ ln 2 / 2, ln 2 split in two so r is exact), evaluates Cephes' degree-7
/// polynomial for e^r (within 2 ulp of the exact value) and adds n to the exponent bits. Every step is a float
/// multiply, a fused multiply-add or an integer operation, so scalar and vector lanes agree bit for bit.
/// Domain: results below <see cref="Low"/>'s exponential (2.8e-38) flush to 0 — a softmax term that small cannot
/// move a sum that holds a 1 — and x above <see cref="High"/> is taken as High. −∞ gives 0, NaN stays NaN.
/// </summary>
internal static class SoftmaxExp
{
    /// <summary>Below this, exp(x) is returned as 0 (keeps n ≥ −125, so the exponent add cannot reach subnormals).</summary>
    public const float Low = -86.5f;
    /// <summary>Above this, x is clamped (keeps n ≤ 127, so the exponent add cannot overflow).</summary>
    public const float High = 88.0f;

    private const float Log2E = 1.44269504088896341f;
    private const float Ln2Hi = 0.693359375f;      // ln 2's leading bits: n·Ln2Hi is exact for |n| < 2^9
    private const float Ln2Lo = -2.12194440e-4f;   // ln 2 − Ln2Hi
    // e^r ≈ 1 + r + r²·P(r) on |r| ≤ ln 2 / 2 (Cephes expf's minimax coefficients)
    private const float P0 = 1.9875691500e-4f, P1 = 1.3981999507e-3f, P2 = 8.3334519073e-3f,
        P3 = 4.1665795894e-2f, P4 = 1.6666665459e-1f, P5 = 5.0000001201e-1f;

    /// <summary>The scalar reference; the vector overloads give the same bits lane by lane.</summary>
    public static float Exp(float x)
    {
        if (float.IsNaN(x)) return x;
        if (!(x >= Low)) return 0f;
        float c = Math.Min(x, High);
        float n = MathF.Round(c * Log2E); // to nearest, ties to even, as the vector rounding
        float r = MathF.FusedMultiplyAdd(n, -Ln2Hi, c);
        r = MathF.FusedMultiplyAdd(n, -Ln2Lo, r);
        float p = MathF.FusedMultiplyAdd(P0, r, P1);
        p = MathF.FusedMultiplyAdd(p, r, P2);
        p = MathF.FusedMultiplyAdd(p, r, P3);
        p = MathF.FusedMultiplyAdd(p, r, P4);
        p = MathF.FusedMultiplyAdd(p, r, P5);
        p = MathF.FusedMultiplyAdd(p, r * r, r) + 1f;
        return BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(p) + ((int)n << 23));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Exp(Vector512<float> x)
    {
        var c = Vector512.MinNative(x, Vector512.Create(High)); // NaN becomes High here, restored below
        var n = Vector512.Round(c * Vector512.Create(Log2E));
        var r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Hi), c);
        r = Vector512.FusedMultiplyAdd(n, Vector512.Create(-Ln2Lo), r);
        var p = Vector512.FusedMultiplyAdd(Vector512.Create(P0), r, Vector512.Create(P1));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P2));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P3));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P4));
        p = Vector512.FusedMultiplyAdd(p, r, Vector512.Create(P5));
        p = Vector512.FusedMultiplyAdd(p, r * r, r) + Vector512<float>.One;
        var e = (p.AsInt32() + Vector512.ShiftLeft(Vector512.ConvertToInt32Native(n), 23)).AsSingle();
        e &= Vector512.GreaterThanOrEqual(x, Vector512.Create(Low)); // −∞ and tiny x → 0 (NaN too, restored next)
        return Vector512.ConditionalSelect(Vector512.Equals(x, x), e, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Exp(Vector256<float> x)
    {
        var c = Vector256.MinNative(x, Vector256.Create(High));
        var n = Vector256.Round(c * Vector256.Create(Log2E));
        var r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Hi), c);
        r = Vector256.FusedMultiplyAdd(n, Vector256.Create(-Ln2Lo), r);
        var p = Vector256.FusedMultiplyAdd(Vector256.Create(P0), r, Vector256.Create(P1));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P2));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P3));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P4));
        p = Vector256.FusedMultiplyAdd(p, r, Vector256.Create(P5));
        p = Vector256.FusedMultiplyAdd(p, r * r, r) + Vector256<float>.One;
        var e = (p.AsInt32() + Vector256.ShiftLeft(Vector256.ConvertToInt32Native(n), 23)).AsSingle();
        e &= Vector256.GreaterThanOrEqual(x, Vector256.Create(Low));
        return Vector256.ConditionalSelect(Vector256.Equals(x, x), e, x);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Exp(Vector128<float> x)
    {
        var c = Vector128.MinNative(x, Vector128.Create(High));
        var n = Vector128.Round(c * Vector128.Create(Log2E));
        var r = Vector128.FusedMultiplyAdd(n, Vector128.Create(-Ln2Hi), c);
        r = Vector128.FusedMultiplyAdd(n, Vector128.Create(-Ln2Lo), r);
        var p = Vector128.FusedMultiplyAdd(Vector128.Create(P0), r, Vector128.Create(P1));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(P2));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(P3));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(P4));
        p = Vector128.FusedMultiplyAdd(p, r, Vector128.Create(P5));
        p = Vector128.FusedMultiplyAdd(p, r * r, r) + Vector128<float>.One;
        var e = (p.AsInt32() + Vector128.ShiftLeft(Vector128.ConvertToInt32Native(n), 23)).AsSingle();
        e &= Vector128.GreaterThanOrEqual(x, Vector128.Create(Low));
        return Vector128.ConditionalSelect(Vector128.Equals(x, x), e, x);
    }
}
