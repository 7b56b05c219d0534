using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// The MXFP4 prefill kernel: four rows × four tokens per pass, in the file layout (gpt-oss's routed experts stay
// memory-mapped; ExpertBatch gathers each expert's tokens, so an expert matrix meets ~64 tokens of a 512-token chunk).
// The one-row × four-token kernel (Mxfp4x4) redid per token what does not depend on the token: |w|, a sign select of
// x and two scalar scale products per pair of blocks, ~16 instructions per row, token and pair. Here the decode
// kernel's steps (Mxfp4Rows.cs) are split by what they depend on:
// - per row and pair: one 64-byte load, the nibble lookup to w + 12 (vpermb, shift, mask, vpshufb), once for 4 tokens;
// - per token and pair: its x, the −12·Σx start of the vpdpbusd sums and its eight scales d_x · 2^(e−128) for the
//   four rows (one vscalefps), once for 4 rows;
// - per row, token and pair: the integer products (two vpdpbusd, or vpmaddubsw + vpmaddwd), a conversion, a vpermps
//   for the row's two scales and the multiply-add.
// The integer lanes and float operations are the decode kernel's, so a token gives the same bits in prefill as alone.
internal static unsafe partial class MatMul
{
    /// <summary>
    /// The four tokens at <paramref name="a"/> (stride apart) against rows [r0, r1): four rows per pass while the
    /// group's 64-byte loads (30 bytes past its last row) stay inside the <paramref name="weightBytes"/> of weights,
    /// the rest through <see cref="Mxfp4x4"/>. y is token 0's output row (ldy apart per token).
    /// </summary>
    private static void Mxfp4RowBlocks(byte* w, long weightBytes, int rowBytes, int nb, byte* a, int stride, float* y, int ldy, int r0, int r1)
    {
        int r = r0;
        for (; r + 4 <= r1 && (long)(r + 4) * rowBytes + 64 <= weightBytes; r += 4)
            Mxfp4Block(w + (long)r * rowBytes, rowBytes, a, stride, nb, y + r, ldy);
        for (; r < r1; r++) Mxfp4x4(w + (long)r * rowBytes, a, stride, nb / 2, y + r, ldy);
    }

    /// <summary>Four consecutive rows (rb bytes apart) × four tokens (stride apart): y[t·ldy + r].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Mxfp4Block(byte* w, int rb, byte* a, int stride, int nb, float* y, int ldy)
    {
        // c{row}{token}, values rather than references (a by-reference accumulator is kept in memory).
        Vector512<float> c00 = default, c10 = default, c20 = default, c30 = default, c01 = default, c11 = default, c21 = default, c31 = default;
        Vector512<float> c02 = default, c12 = default, c22 = default, c32 = default, c03 = default, c13 = default, c23 = default, c33 = default;
        byte* a0 = a, a1 = a + stride, a2 = a + 2 * stride, a3 = a + 3 * stride;
        // Each token's blocks' scales as floats, after its blocks and their sums (QuantizeActivation's layout).
        int scales = nb * (Q80 + 4);
        float* dx0 = (float*)(a0 + scales), dx1 = (float*)(a1 + scales), dx2 = (float*)(a2 + scales), dx3 = (float*)(a3 + scales);
        for (int i = 0; i < nb; i += 2, w += 2 * Mxfp4.BlockBytes, a0 += 2 * Q80, a1 += 2 * Q80, a2 += 2 * Q80, a3 += 2 * Q80)
        {
            var r0 = Vector512.Load(w);
            var r1 = Vector512.Load(w + rb);
            var r2 = Vector512.Load(w + 2 * rb);
            var r3 = Vector512.Load(w + 3 * rb);
            var e = MatVec.Mxfp4Exponents(r0, r1, r2, r3);
            var q0 = MatVec.Mxfp4OffsetValues(r0);
            var q1 = MatVec.Mxfp4OffsetValues(r1);
            var q2 = MatVec.Mxfp4OffsetValues(r2);
            var q3 = MatVec.Mxfp4OffsetValues(r3);

            var xLo = Vector256.Load((sbyte*)(a0 + 2));
            var xHi = Vector256.Load((sbyte*)(a0 + Q80 + 2));
            var x = MatVec.Mxfp4Joined(xLo, xHi);
            var sLo = MatVec.Mxfp4Start(xLo);
            var sHi = MatVec.Mxfp4Start(xHi);
            var corr = MatVec.Mxfp4Correction(x);
            var d = MatVec.Mxfp4Scales(e, dx0 + i);
            c00 = MatVec.Mxfp4Step(c00, MatVec.Mxfp4Products(q0, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales0);
            c10 = MatVec.Mxfp4Step(c10, MatVec.Mxfp4Products(q1, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales1);
            c20 = MatVec.Mxfp4Step(c20, MatVec.Mxfp4Products(q2, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales2);
            c30 = MatVec.Mxfp4Step(c30, MatVec.Mxfp4Products(q3, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales3);

            xLo = Vector256.Load((sbyte*)(a1 + 2));
            xHi = Vector256.Load((sbyte*)(a1 + Q80 + 2));
            x = MatVec.Mxfp4Joined(xLo, xHi);
            sLo = MatVec.Mxfp4Start(xLo);
            sHi = MatVec.Mxfp4Start(xHi);
            corr = MatVec.Mxfp4Correction(x);
            d = MatVec.Mxfp4Scales(e, dx1 + i);
            c01 = MatVec.Mxfp4Step(c01, MatVec.Mxfp4Products(q0, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales0);
            c11 = MatVec.Mxfp4Step(c11, MatVec.Mxfp4Products(q1, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales1);
            c21 = MatVec.Mxfp4Step(c21, MatVec.Mxfp4Products(q2, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales2);
            c31 = MatVec.Mxfp4Step(c31, MatVec.Mxfp4Products(q3, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales3);

            xLo = Vector256.Load((sbyte*)(a2 + 2));
            xHi = Vector256.Load((sbyte*)(a2 + Q80 + 2));
            x = MatVec.Mxfp4Joined(xLo, xHi);
            sLo = MatVec.Mxfp4Start(xLo);
            sHi = MatVec.Mxfp4Start(xHi);
            corr = MatVec.Mxfp4Correction(x);
            d = MatVec.Mxfp4Scales(e, dx2 + i);
            c02 = MatVec.Mxfp4Step(c02, MatVec.Mxfp4Products(q0, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales0);
            c12 = MatVec.Mxfp4Step(c12, MatVec.Mxfp4Products(q1, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales1);
            c22 = MatVec.Mxfp4Step(c22, MatVec.Mxfp4Products(q2, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales2);
            c32 = MatVec.Mxfp4Step(c32, MatVec.Mxfp4Products(q3, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales3);

            xLo = Vector256.Load((sbyte*)(a3 + 2));
            xHi = Vector256.Load((sbyte*)(a3 + Q80 + 2));
            x = MatVec.Mxfp4Joined(xLo, xHi);
            sLo = MatVec.Mxfp4Start(xLo);
            sHi = MatVec.Mxfp4Start(xHi);
            corr = MatVec.Mxfp4Correction(x);
            d = MatVec.Mxfp4Scales(e, dx3 + i);
            c03 = MatVec.Mxfp4Step(c03, MatVec.Mxfp4Products(q0, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales0);
            c13 = MatVec.Mxfp4Step(c13, MatVec.Mxfp4Products(q1, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales1);
            c23 = MatVec.Mxfp4Step(c23, MatVec.Mxfp4Products(q2, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales2);
            c33 = MatVec.Mxfp4Step(c33, MatVec.Mxfp4Products(q3, xLo, xHi, x, sLo, sHi, corr), d, MatVec.Mxfp4RowScales3);
        }
        y[0] = Vector512.Sum(c00); y[1] = Vector512.Sum(c10); y[2] = Vector512.Sum(c20); y[3] = Vector512.Sum(c30);
        y += ldy;
        y[0] = Vector512.Sum(c01); y[1] = Vector512.Sum(c11); y[2] = Vector512.Sum(c21); y[3] = Vector512.Sum(c31);
        y += ldy;
        y[0] = Vector512.Sum(c02); y[1] = Vector512.Sum(c12); y[2] = Vector512.Sum(c22); y[3] = Vector512.Sum(c32);
        y += ldy;
        y[0] = Vector512.Sum(c03); y[1] = Vector512.Sum(c13); y[2] = Vector512.Sum(c23); y[3] = Vector512.Sum(c33);
    }
}
