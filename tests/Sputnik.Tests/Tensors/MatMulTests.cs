using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

public class MatMulTests
{
    public static readonly TheoryData<GgmlType> Types = new(
        GgmlType.F32, GgmlType.F16, GgmlType.BF16, GgmlType.Q8_0, GgmlType.Q4_0, GgmlType.Q4_1,
        GgmlType.Q5_0, GgmlType.Q5_1, GgmlType.Q4_K, GgmlType.Q5_K, GgmlType.Q6_K, GgmlType.MXFP4);

    private static float[] Gaussian(int n, int seed)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            double u1 = 1.0 - rng.NextDouble(), u2 = rng.NextDouble();
            x[i] = (float)(Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return x;
    }

    // odd block counts hit the kernels' tails
    private static int ColsFor(GgmlType t) => GgmlTypeInfo.BlockSize(t) == 256 ? 768 : 32 * 13;

    private static (byte[] W, byte[] Act) Problem(GgmlType t, int rows, int cols, int tokens, int seed)
    {
        float[] wf = Gaussian(rows * cols, seed);
        float[] x = Gaussian(tokens * cols, seed + 100);
        int rb = (int)GgmlTypeInfo.RowBytes(t, cols);
        var w = new byte[rb * rows];
        for (int r = 0; r < rows; r++) Quant.Row(t, wf.AsSpan(r * cols, cols), w.AsSpan(r * rb, rb));
        var act = new byte[MatMul.ActivationStride(t, cols) * tokens];
        MatMul.QuantizeActivations(t, x, cols, act, 0, tokens);
        return (w, act);
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Reference_matches_matvec_per_token(GgmlType t)
    {
        const int rows = 6, tokens = 3;
        int cols = ColsFor(t), stride = MatMul.ActivationStride(t, cols);
        var (w, act) = Problem(t, rows, cols, tokens, 1);
        var y = new float[tokens * rows];
        MatMul.ComputeRows(t, w, cols, act, tokens, y, rows, 0, rows, KernelPath.Scalar);
        var yv = new float[rows];
        for (int tok = 0; tok < tokens; tok++)
        {
            MatVec.ComputeRows(t, w, cols, act.AsSpan(tok * stride, stride), yv, 0, rows, KernelPath.Scalar);
            for (int r = 0; r < rows; r++) Assert.Equal(yv[r], y[tok * rows + r]);
        }
    }

    /// <summary>
    /// The multi-token kernels share their unpacking and per-token steps with the single-token ones, so a token gives
    /// the same bits whether it is decoded alone or batched with others (the server's batched decode relies on it:
    /// a stream's greedy output must not depend on its neighbours). Even block counts and odd ones (a tail block).
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_0)]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.Q5_0)]
    [InlineData(GgmlType.Q5_1)]
    [InlineData(GgmlType.Q4_K)]
    [InlineData(GgmlType.Q5_K)]
    [InlineData(GgmlType.Q6_K)]
    [InlineData(GgmlType.MXFP4)]
    public void Batched_tokens_equal_single_token_products_bit_for_bit(GgmlType t)
    {
        const int rows = 5, tokens = 9;
        int bs = GgmlTypeInfo.BlockSize(t);
        foreach (int cols in new[] { 8 * bs, 7 * bs })
        {
            int stride = MatMul.ActivationStride(t, cols);
            var (w, act) = Problem(t, rows, cols, tokens, cols);
            foreach (KernelPath path in MatVecTests.AvailablePaths())
            {
                var y = new float[tokens * rows];
                MatMul.ComputeRows(t, w, cols, act, tokens, y, rows, 0, rows, path);
                var yv = new float[rows];
                for (int tok = 0; tok < tokens; tok++)
                {
                    MatVec.ComputeRows(t, w, cols, act.AsSpan(tok * stride, stride), yv, 0, rows, path);
                    for (int r = 0; r < rows; r++)
                        Assert.True(BitConverter.SingleToInt32Bits(yv[r]) == BitConverter.SingleToInt32Bits(y[tok * rows + r]),
                            $"{t} {path} cols {cols} token {tok} row {r}: batched {y[tok * rows + r]} vs single {yv[r]}");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Simd_paths_match_scalar_reference(GgmlType t)
    {
        foreach (var (rows, tokens) in new[] { (1, 1), (7, 3), (37, 9), (5, 17) })
        {
            int cols = ColsFor(t);
            var (w, act) = Problem(t, rows, cols, tokens, rows * 31 + tokens);
            int ldy = rows + 2; // a stride wider than the rows must leave the gap alone
            var reference = new float[tokens * ldy];
            MatMul.ComputeRows(t, w, cols, act, tokens, reference, ldy, 0, rows, KernelPath.Scalar);
            foreach (KernelPath path in MatVecTests.AvailablePaths())
            {
                var y = Enumerable.Repeat(float.NaN, tokens * ldy).ToArray();
                // two row ranges, as two threads would run them
                MatMul.ComputeRows(t, w, cols, act, tokens, y, ldy, 0, rows / 2, path);
                MatMul.ComputeRows(t, w, cols, act, tokens, y, ldy, rows / 2, rows, path);
                for (int tok = 0; tok < tokens; tok++)
                {
                    for (int r = 0; r < rows; r++)
                    {
                        float e = reference[tok * ldy + r], g = y[tok * ldy + r];
                        Assert.True(Math.Abs(g - e) <= 1e-4f * (1 + Math.Abs(e)), $"{t} {path} {rows}x{tokens} row {r} token {tok}: {g} vs scalar {e}");
                    }
                    for (int r = rows; r < ldy; r++) Assert.True(float.IsNaN(y[tok * ldy + r]), "wrote outside its rows");
                }
            }
        }
    }
}
