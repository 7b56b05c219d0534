using System.Runtime.Intrinsics;

namespace Sputnik.Tensors.Quants;

// The register blocks of F16/BF16 prefill (rows converted to float once per token tile, see DecodedRows).
internal static unsafe partial class MatMul
{
    /// <summary>Six-row blocks (the default on AVX-512); false (or SPUTNIK_HALF_ROWS=4) keeps four-row ones, for comparisons.</summary>
    internal static bool HalfSixRows = Environment.GetEnvironmentVariable("SPUTNIK_HALF_ROWS") != "4";

    /// <summary>y[t·ldy + i] = dot(row i, token t) for 4 decoded rows (stride cols) and 4 tokens (stride cols), in <see cref="HalfWeights.FloatDot"/>'s order.</summary>
    private static void Block4x4(float* w, int cols, float* x, float* y, int ldy)
    {
        int n = cols & ~15;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        float* w1 = w + cols, w2 = w + 2 * cols, w3 = w + 3 * cols;
        float* x1 = x + cols, x2 = x + 2 * cols, x3 = x + 3 * cols;
        for (int k = 0; k < n; k += 16)
        {
            var r0 = Vector512.Load(w + k);
            var r1 = Vector512.Load(w1 + k);
            var r2 = Vector512.Load(w2 + k);
            var r3 = Vector512.Load(w3 + k);
            var t = Vector512.Load(x + k);
            a00 = Vector512.FusedMultiplyAdd(r0, t, a00); a10 = Vector512.FusedMultiplyAdd(r1, t, a10);
            a20 = Vector512.FusedMultiplyAdd(r2, t, a20); a30 = Vector512.FusedMultiplyAdd(r3, t, a30);
            t = Vector512.Load(x1 + k);
            a01 = Vector512.FusedMultiplyAdd(r0, t, a01); a11 = Vector512.FusedMultiplyAdd(r1, t, a11);
            a21 = Vector512.FusedMultiplyAdd(r2, t, a21); a31 = Vector512.FusedMultiplyAdd(r3, t, a31);
            t = Vector512.Load(x2 + k);
            a02 = Vector512.FusedMultiplyAdd(r0, t, a02); a12 = Vector512.FusedMultiplyAdd(r1, t, a12);
            a22 = Vector512.FusedMultiplyAdd(r2, t, a22); a32 = Vector512.FusedMultiplyAdd(r3, t, a32);
            t = Vector512.Load(x3 + k);
            a03 = Vector512.FusedMultiplyAdd(r0, t, a03); a13 = Vector512.FusedMultiplyAdd(r1, t, a13);
            a23 = Vector512.FusedMultiplyAdd(r2, t, a23); a33 = Vector512.FusedMultiplyAdd(r3, t, a33);
        }
        Store4(y, ldy, 0, a00, a01, a02, a03);
        Store4(y, ldy, 1, a10, a11, a12, a13);
        Store4(y, ldy, 2, a20, a21, a22, a23);
        Store4(y, ldy, 3, a30, a31, a32, a33);
        if (n < cols)
            for (int t = 0; t < 4; t++)
                for (int i = 0; i < 4; i++)
                    y[t * ldy + i] = HalfWeights.FloatTail(y[t * ldy + i], w + i * cols, x + t * cols, n, cols);
    }

    /// <summary>
    /// y[t·ldy + i] = dot(row i, token t) for 6 decoded rows and 4 tokens, in <see cref="HalfWeights.FloatDot"/>'s order:
    /// 24 accumulators, so each activation vector read (from L2: a token tile does not fit L1) feeds six multiply-adds,
    /// not the four of <see cref="Block4x4"/>.
    /// </summary>
    private static void Block6x4(float* w, int cols, float* x, float* y, int ldy)
    {
        int n = cols & ~15;
        Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
        Vector512<float> a40 = default, a41 = default, a42 = default, a43 = default, a50 = default, a51 = default, a52 = default, a53 = default;
        float* w1 = w + cols, w2 = w + 2 * cols, w3 = w + 3 * cols, w4 = w + 4 * cols, w5 = w + 5 * cols;
        float* x1 = x + cols, x2 = x + 2 * cols, x3 = x + 3 * cols;
        for (int k = 0; k < n; k += 16)
        {
            var r0 = Vector512.Load(w + k);
            var r1 = Vector512.Load(w1 + k);
            var r2 = Vector512.Load(w2 + k);
            var r3 = Vector512.Load(w3 + k);
            var r4 = Vector512.Load(w4 + k);
            var r5 = Vector512.Load(w5 + k);
            var t = Vector512.Load(x + k);
            a00 = Vector512.FusedMultiplyAdd(r0, t, a00); a10 = Vector512.FusedMultiplyAdd(r1, t, a10); a20 = Vector512.FusedMultiplyAdd(r2, t, a20);
            a30 = Vector512.FusedMultiplyAdd(r3, t, a30); a40 = Vector512.FusedMultiplyAdd(r4, t, a40); a50 = Vector512.FusedMultiplyAdd(r5, t, a50);
            t = Vector512.Load(x1 + k);
            a01 = Vector512.FusedMultiplyAdd(r0, t, a01); a11 = Vector512.FusedMultiplyAdd(r1, t, a11); a21 = Vector512.FusedMultiplyAdd(r2, t, a21);
            a31 = Vector512.FusedMultiplyAdd(r3, t, a31); a41 = Vector512.FusedMultiplyAdd(r4, t, a41); a51 = Vector512.FusedMultiplyAdd(r5, t, a51);
            t = Vector512.Load(x2 + k);
            a02 = Vector512.FusedMultiplyAdd(r0, t, a02); a12 = Vector512.FusedMultiplyAdd(r1, t, a12); a22 = Vector512.FusedMultiplyAdd(r2, t, a22);
            a32 = Vector512.FusedMultiplyAdd(r3, t, a32); a42 = Vector512.FusedMultiplyAdd(r4, t, a42); a52 = Vector512.FusedMultiplyAdd(r5, t, a52);
            t = Vector512.Load(x3 + k);
            a03 = Vector512.FusedMultiplyAdd(r0, t, a03); a13 = Vector512.FusedMultiplyAdd(r1, t, a13); a23 = Vector512.FusedMultiplyAdd(r2, t, a23);
            a33 = Vector512.FusedMultiplyAdd(r3, t, a33); a43 = Vector512.FusedMultiplyAdd(r4, t, a43); a53 = Vector512.FusedMultiplyAdd(r5, t, a53);
        }
        Store4(y, ldy, 0, a00, a01, a02, a03);
        Store4(y, ldy, 1, a10, a11, a12, a13);
        Store4(y, ldy, 2, a20, a21, a22, a23);
        Store4(y, ldy, 3, a30, a31, a32, a33);
        Store4(y, ldy, 4, a40, a41, a42, a43);
        Store4(y, ldy, 5, a50, a51, a52, a53);
        if (n < cols)
            for (int t = 0; t < 4; t++)
                for (int i = 0; i < 6; i++)
                    y[t * ldy + i] = HalfWeights.FloatTail(y[t * ldy + i], w + i * cols, x + t * cols, n, cols);
    }

    /// <summary>
    /// The AVX2 block: y[t·ldy + i] for 3 decoded rows and 4 tokens, in <see cref="HalfWeights.FloatDot"/>'s 8-lane order.
    /// 12 accumulators, 3 rows and 1 token fill the 16 registers; each activation vector feeds three multiply-adds and
    /// each row vector four, where one dot at a time needs two loads per multiply-add (load-bound at half the FMA rate).
    /// </summary>
    private static void Block3x4Avx2(float* w, int cols, float* x, float* y, int ldy)
    {
        int n = cols & ~7;
        Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
        Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
        float* w1 = w + cols, w2 = w + 2 * cols;
        float* x1 = x + cols, x2 = x + 2 * cols, x3 = x + 3 * cols;
        for (int k = 0; k < n; k += 8)
        {
            var r0 = Vector256.Load(w + k);
            var r1 = Vector256.Load(w1 + k);
            var r2 = Vector256.Load(w2 + k);
            var t = Vector256.Load(x + k);
            a00 = Vector256.FusedMultiplyAdd(r0, t, a00); a10 = Vector256.FusedMultiplyAdd(r1, t, a10); a20 = Vector256.FusedMultiplyAdd(r2, t, a20);
            t = Vector256.Load(x1 + k);
            a01 = Vector256.FusedMultiplyAdd(r0, t, a01); a11 = Vector256.FusedMultiplyAdd(r1, t, a11); a21 = Vector256.FusedMultiplyAdd(r2, t, a21);
            t = Vector256.Load(x2 + k);
            a02 = Vector256.FusedMultiplyAdd(r0, t, a02); a12 = Vector256.FusedMultiplyAdd(r1, t, a12); a22 = Vector256.FusedMultiplyAdd(r2, t, a22);
            t = Vector256.Load(x3 + k);
            a03 = Vector256.FusedMultiplyAdd(r0, t, a03); a13 = Vector256.FusedMultiplyAdd(r1, t, a13); a23 = Vector256.FusedMultiplyAdd(r2, t, a23);
        }
        Store4(y, ldy, 0, a00, a01, a02, a03);
        Store4(y, ldy, 1, a10, a11, a12, a13);
        Store4(y, ldy, 2, a20, a21, a22, a23);
        if (n < cols)
            for (int t = 0; t < 4; t++)
                for (int i = 0; i < 3; i++)
                    y[t * ldy + i] = HalfWeights.FloatTail(y[t * ldy + i], w + i * cols, x + t * cols, n, cols);
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void Store4(float* y, int ldy, int i, Vector256<float> t0, Vector256<float> t1, Vector256<float> t2, Vector256<float> t3)
    {
        y[i] = Vector256.Sum(t0);
        y[ldy + i] = Vector256.Sum(t1);
        y[2 * ldy + i] = Vector256.Sum(t2);
        y[3 * ldy + i] = Vector256.Sum(t3);
    }

    /// <summary>Row i's four token sums (each accumulator's lanes added, as FloatDot does) into y[t·ldy + i].</summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static void Store4(float* y, int ldy, int i, Vector512<float> t0, Vector512<float> t1, Vector512<float> t2, Vector512<float> t3)
    {
        y[i] = Vector512.Sum(t0);
        y[ldy + i] = Vector512.Sum(t1);
        y[2 * ldy + i] = Vector512.Sum(t2);
        y[3 * ldy + i] = Vector512.Sum(t3);
    }
}
