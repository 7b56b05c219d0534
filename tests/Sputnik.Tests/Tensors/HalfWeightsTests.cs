using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// F16/BF16 weight kernels (<see cref="HalfWeights"/>, MatMul's converted-row block): on every SIMD path a token's
/// product is the same bits batched or alone, and close to the scalar reference; rows of odd widths (vector tails),
/// row counts that leave a short group of four, subnormal halves, and an F16 inf (the exact fallback).
/// </summary>
public class HalfWeightsTests
{
    private static (byte[] W, byte[] Act) Problem(GgmlType t, int rows, int cols, int tokens, int seed, bool withInf)
    {
        var rng = new Random(seed);
        var wf = new float[rows * cols];
        for (int i = 0; i < wf.Length; i++)
        {
            float v = (float)(rng.NextDouble() * 2 - 1);
            // every 7th weight tiny: F16 subnormals (below 6.1e-5), exercising the rescaling multiply
            wf[i] = i % 7 == 3 ? v * 3e-6f : v * 0.05f;
        }
        if (withInf) wf[cols + 5] = float.PositiveInfinity; // row 1
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 4 - 2);
        int rb = (int)GgmlTypeInfo.RowBytes(t, cols);
        var w = new byte[rb * rows];
        for (int r = 0; r < rows; r++) Quant.Row(t, wf.AsSpan(r * cols, cols), w.AsSpan(r * rb, rb));
        var act = new byte[MatMul.ActivationStride(t, cols) * tokens];
        MatMul.QuantizeActivations(t, x, cols, act, 0, tokens);
        return (w, act);
    }

    private static bool SameBits(float a, float b) => BitConverter.SingleToInt32Bits(a) == BitConverter.SingleToInt32Bits(b) || (float.IsNaN(a) && float.IsNaN(b));

    public static readonly TheoryData<GgmlType, int, bool> Cases = new()
    {
        { GgmlType.F16, 512, false }, { GgmlType.F16, 528, false }, { GgmlType.F16, 16 * 13 + 5, false }, { GgmlType.F16, 7, false },
        { GgmlType.F16, 16 * 9 + 3, true }, { GgmlType.F16, 64, true },
        { GgmlType.BF16, 512, false }, { GgmlType.BF16, 16 * 13 + 5, false }, { GgmlType.BF16, 7, false },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Batched_equals_single_token_bit_for_bit_and_matches_scalar(GgmlType t, int cols, bool withInf)
    {
        const int rows = 11, tokens = 10; // a group of four left short; token groups of four plus two
        int stride = MatMul.ActivationStride(t, cols);
        var (w, act) = Problem(t, rows, cols, tokens, cols * 3 + rows, withInf);
        var reference = new float[tokens * rows];
        MatMul.ComputeRows(t, w, cols, act, tokens, reference, rows, 0, rows, KernelPath.Scalar);
        foreach (KernelPath path in MatVecTests.AvailablePaths())
        {
            var y = new float[tokens * rows];
            // two row ranges, as two threads would run them (the second starts inside a group of four)
            MatMul.ComputeRows(t, w, cols, act, tokens, y, rows, 0, 5, path);
            MatMul.ComputeRows(t, w, cols, act, tokens, y, rows, 5, rows, path);
            var yv = new float[rows];
            for (int tok = 0; tok < tokens; tok++)
            {
                MatVec.ComputeRows(t, w, cols, act.AsSpan(tok * stride, stride), yv, 0, 3, path);
                MatVec.ComputeRows(t, w, cols, act.AsSpan(tok * stride, stride), yv, 3, rows, path);
                for (int r = 0; r < rows; r++)
                {
                    float b = y[tok * rows + r], s = yv[r], e = reference[tok * rows + r];
                    Assert.True(SameBits(b, s), $"{t} {path} cols {cols} token {tok} row {r}: batched {b} vs single {s}");
                    Assert.True(SameBits(s, e) || Math.Abs(s - e) <= 1e-4f * (1 + Math.Abs(e)), $"{t} {path} cols {cols} token {tok} row {r}: {s} vs scalar {e}");
                }
                if (withInf) Assert.True(float.IsInfinity(yv[1]) || float.IsNaN(yv[1]), $"{path}: the row holding inf gave {yv[1]}");
            }
        }
    }
}
