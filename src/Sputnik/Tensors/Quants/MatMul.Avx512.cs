using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// Multi-token AVX-512 kernels: one weight row against 4 tokens at once. The weights are unpacked (nibbles split,
// scales decoded) once per super-block and reused for every token, which is what makes prefill compute-bound work
// cheaper per token than decode.
internal static unsafe partial class MatMul
{
    private const int Group = 4;
    private const int Q8K = 292;

    /// <summary>True when <see cref="MultiTokenAvx512"/> has a kernel for rows of <paramref name="cols"/> weights of this type.</summary>
    private static bool HasMultiTokenKernel(GgmlType wType, int cols) => wType switch
    {
        GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K or GgmlType.Q5_0 or GgmlType.Q5_1 => true,
        GgmlType.Q8_0 or GgmlType.MXFP4 => cols % 64 == 0,
        _ => false,
    };

    /// <summary>One weight row against the <see cref="Group"/> tokens starting at <paramref name="a"/>; y is that row's output for the first token.</summary>
    private static void MultiTokenAvx512(GgmlType wType, byte* w, int cols, byte* a, int stride, float* y, int ldy)
    {
        switch (wType)
        {
            case GgmlType.Q4_K: Q4Kx4(w, a, stride, cols / 256, y, ldy); break;
            case GgmlType.Q5_K: Q5Kx4(w, a, stride, cols / 256, y, ldy); break;
            case GgmlType.Q6_K: Q6Kx4(w, a, stride, cols / 256, y, ldy); break;
            case GgmlType.Q5_0 when MatVec.Q5_0PairsSupported: MatVec.Q5_0Tokens4(w, a, stride, cols / 32, y, ldy); break;
            case GgmlType.Q5_0 or GgmlType.Q5_1: Q5x4(w, a, stride, cols / 32, y, ldy, wType == GgmlType.Q5_1); break;
            case GgmlType.Q8_0: Q8_0x4(w, a, stride, cols / 64, y, ldy); break;
            case GgmlType.MXFP4: Mxfp4x4(w, a, stride, cols / 64, y, ldy); break;
            default: throw new System.Diagnostics.UnreachableException($"no multi-token kernel for {wType}; HasMultiTokenKernel guards this");
        }
    }

    private static void Q4Kx4(byte* w, byte* a, int stride, int nb, float* y, int ldy) => Kx4(w, a, stride, nb, y, ldy, false);

    private static void Q5Kx4(byte* w, byte* a, int stride, int nb, float* y, int ldy) => Kx4(w, a, stride, nb, y, ldy, true);

    /// <summary>One Q4_K/Q5_K row × 4 Q8_K tokens: each super-block is unpacked once and used for all four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Kx4(byte* w, byte* a, int stride, int nb, float* y, int ldy, bool q5)
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        Vector256<float> mAcc0 = default, mAcc1 = default, mAcc2 = default, mAcc3 = default;
        byte* a0 = a, a1 = a + stride, a2 = a + 2 * stride, a3 = a + 3 * stride;
        int blockBytes = q5 ? 176 : 144;
        for (int i = 0; i < nb; i++, w += blockBytes, a0 += Q8K, a1 += Q8K, a2 += Q8K, a3 += Q8K)
        {
            MatVec.UnpackScalesMinsK(w + 4, out ulong sc, out ulong m);
            var q0 = MatVec.KQuants512(w, 0, q5);
            var q1 = MatVec.KQuants512(w, 1, q5);
            var q2 = MatVec.KQuants512(w, 2, q5);
            var q3 = MatVec.KQuants512(w, 3, q5);
            var s0 = MatVec.KScalePair(sc, 0);
            var s1 = MatVec.KScalePair(sc, 1);
            var s2 = MatVec.KScalePair(sc, 2);
            var s3 = MatVec.KScalePair(sc, 3);
            var mins = MatVec.KMins(m);
            float d = Half(w), dmin = Half(w + 2);
            MatVec.KToken(q0, q1, q2, q3, s0, s1, s2, s3, mins, a0, d, dmin, ref acc0, ref mAcc0);
            MatVec.KToken(q0, q1, q2, q3, s0, s1, s2, s3, mins, a1, d, dmin, ref acc1, ref mAcc1);
            MatVec.KToken(q0, q1, q2, q3, s0, s1, s2, s3, mins, a2, d, dmin, ref acc2, ref mAcc2);
            MatVec.KToken(q0, q1, q2, q3, s0, s1, s2, s3, mins, a3, d, dmin, ref acc3, ref mAcc3);
        }
        y[0] = Vector512.Sum(acc0) - Vector256.Sum(mAcc0);
        y[ldy] = Vector512.Sum(acc1) - Vector256.Sum(mAcc1);
        y[2 * ldy] = Vector512.Sum(acc2) - Vector256.Sum(mAcc2);
        y[3 * ldy] = Vector512.Sum(acc3) - Vector256.Sum(mAcc3);
    }

    private static void Q6Kx4(byte* w, byte* a, int stride, int nb, float* y, int ldy)
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        Vector256<float> oAcc0 = default, oAcc1 = default, oAcc2 = default, oAcc3 = default;
        byte* a0 = a, a1 = a + stride, a2 = a + 2 * stride, a3 = a + 3 * stride;
        for (int i = 0; i < nb; i++, w += 210, a0 += Q8K, a1 += Q8K, a2 += Q8K, a3 += Q8K)
        {
            var sc = MatVec.Q6Scales(w);
            MatVec.Q6QuantPair512(w, 0, out var q0, out var q1);
            MatVec.Q6QuantPair512(w, 1, out var q2, out var q3);
            var s0 = MatVec.Q6Scale512(sc, 0);
            var s1 = MatVec.Q6Scale512(sc, 1);
            var s2 = MatVec.Q6Scale512(sc, 2);
            var s3 = MatVec.Q6Scale512(sc, 3);
            float d = Half(w + KQuants.Q6KDOffset);
            MatVec.Q6Token(q0, q1, q2, q3, s0, s1, s2, s3, sc, a0, d, ref acc0, ref oAcc0);
            MatVec.Q6Token(q0, q1, q2, q3, s0, s1, s2, s3, sc, a1, d, ref acc1, ref oAcc1);
            MatVec.Q6Token(q0, q1, q2, q3, s0, s1, s2, s3, sc, a2, d, ref acc2, ref oAcc2);
            MatVec.Q6Token(q0, q1, q2, q3, s0, s1, s2, s3, sc, a3, d, ref acc3, ref oAcc3);
        }
        y[0] = Vector512.Sum(acc0) - Vector256.Sum(oAcc0);
        y[ldy] = Vector512.Sum(acc1) - Vector256.Sum(oAcc1);
        y[2 * ldy] = Vector512.Sum(acc2) - Vector256.Sum(oAcc2);
        y[3 * ldy] = Vector512.Sum(acc3) - Vector256.Sum(oAcc3);
    }

    private const int Q80 = 34;

    /// <summary>
    /// One Q8_0 row × 4 Q8_0 tokens, two 32-weight blocks per step. vpmaddubsw needs an unsigned operand: |w| is
    /// computed once and w's sign moved onto each token's x. The two blocks' weight scales are spread over the
    /// vector once per step; each token's two scales come from the float copy after its blocks (one 8-byte load
    /// and a permute instead of two half lookups, two multiplies and two broadcasts per token).
    /// </summary>
    private static void Q8_0x4(byte* w, byte* a, int stride, int pairs, float* y, int ldy)
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        int nb = 2 * pairs;
        float* x0 = (float*)(a + nb * (Q80 + 4)), x1 = (float*)((byte*)x0 + stride), x2 = (float*)((byte*)x0 + 2 * stride), x3 = (float*)((byte*)x0 + 3 * stride);
        byte* a0 = a, a1 = a + stride, a2 = a + 2 * stride, a3 = a + 3 * stride;
        var pairIndex = (Vector512<int>.Indices >>> 3); // 0 for the first block's 8 lanes, 1 for the second's
        for (int i = 0; i < pairs; i++, w += 2 * Q80, a0 += 2 * Q80, a1 += 2 * Q80, a2 += 2 * Q80, a3 += 2 * Q80)
        {
            var wq = Vector512.Create(Vector256.Load((sbyte*)(w + 2)), Vector256.Load((sbyte*)(w + Q80 + 2)));
            var aw = Avx512BW.Abs(wq);
            var dw = Vector512.Create(Vector256.Create(Half(w)), Vector256.Create(Half(w + Q80)));
            Q8Token(aw, wq, dw, a0, x0 + 2 * i, pairIndex, ref acc0);
            Q8Token(aw, wq, dw, a1, x1 + 2 * i, pairIndex, ref acc1);
            Q8Token(aw, wq, dw, a2, x2 + 2 * i, pairIndex, ref acc2);
            Q8Token(aw, wq, dw, a3, x3 + 2 * i, pairIndex, ref acc3);
        }
        y[0] = Vector512.Sum(acc0);
        y[ldy] = Vector512.Sum(acc1);
        y[2 * ldy] = Vector512.Sum(acc2);
        y[3 * ldy] = Vector512.Sum(acc3);
    }

    /// <summary>
    /// One Q5_0/Q5_1 row × 4 Q8_0 tokens (256-bit: a 32-weight block fills one vector). Assembling the 5-bit
    /// values (nibbles + high bits) is most of the work in the single-token kernel; here it is done once per block
    /// for all four tokens. Q5_0's −16 offset and Q5_1's min are folded in through the tokens' per-block sums.
    /// </summary>
    private static void Q5x4(byte* w, byte* a, int stride, int nb, float* y, int ldy, bool hasMin)
    {
        int blockBytes = hasMin ? 24 : 22, qhOff = hasMin ? 4 : 2;
        Vector256<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        float c0 = 0, c1 = 0, c2 = 0, c3 = 0;
        byte* a0 = a, a1 = a + stride, a2 = a + 2 * stride, a3 = a + 3 * stride;
        // The tokens' block sums (d·Σq) follow their blocks, as DotRow lays them out.
        float* s0 = (float*)(a0 + nb * Q80), s1 = (float*)(a1 + nb * Q80), s2 = (float*)(a2 + nb * Q80), s3 = (float*)(a3 + nb * Q80);
        var b16 = Vector256.Create((byte)0x10);
        for (int i = 0; i < nb; i++, w += blockBytes)
        {
            float dw = Half(w);
            var q = MatVec.Nibbles(w + qhOff + 4) | (MatVec.BitsToBytes(*(uint*)(w + qhOff)) & b16);
            float k = hasMin ? Half(w + 2) : -16 * dw;
            int o = i * Q80;
            Q5Token(q, dw, a0 + o, ref acc0);
            Q5Token(q, dw, a1 + o, ref acc1);
            Q5Token(q, dw, a2 + o, ref acc2);
            Q5Token(q, dw, a3 + o, ref acc3);
            c0 += k * s0[i];
            c1 += k * s1[i];
            c2 += k * s2[i];
            c3 += k * s3[i];
        }
        y[0] = Vector256.Sum(acc0) + c0;
        y[ldy] = Vector256.Sum(acc1) + c1;
        y[2 * ldy] = Vector256.Sum(acc2) + c2;
        y[3 * ldy] = Vector256.Sum(acc3) + c3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q5Token(Vector256<byte> q, float dw, byte* a, ref Vector256<float> acc)
    {
        var p = MatVec.MulAddBytes(q, Vector256.Load((sbyte*)(a + 2)));
        acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(dw * Half(a)), acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q8Token(Vector512<byte> aw, Vector512<sbyte> wq, Vector512<float> dw, byte* a, float* dx, Vector512<int> pairIndex, ref Vector512<float> acc)
    {
        var x = Vector512.Create(Vector256.Load((sbyte*)(a + 2)), Vector256.Load((sbyte*)(a + Q80 + 2)));
        var p = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(aw, MatVec.WithSignOf(x, wq)), Vector512<short>.One);
        var scales = Avx512F.PermuteVar16x32(Vector512.CreateScalarUnsafe(*(double*)dx).AsSingle(), pairIndex);
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), dw * scales, acc);
    }

    // F16 scale → float through the matvec kernels' lookup table.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Half(byte* p) => MatVec.HalfToFloat(p);
}
