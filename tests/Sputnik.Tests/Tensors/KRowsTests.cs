using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// The four-row Q4_K / Q6_K decode kernels in the file layout (MatVec.Q4KRows / Q6KRows, taken by MatVec.ComputeRows on
/// the AVX-512 path: MoE experts), against the scalar reference on every path, and bit for bit against the single-row
/// kernel and the batched kernels.
/// </summary>
public class KRowsTests
{
    public static readonly TheoryData<GgmlType> Types = new(GgmlType.Q4_K, GgmlType.Q6_K);

    /// <summary>
    /// Random bytes (every quant, 6-bit scale and min, and high-bit pattern) with finite block scales of both signs,
    /// some tiny (denormal halves); <paramref name="cols"/> = 768 is Qwen3-30B-A3B's expert down-projection width.
    /// </summary>
    private static byte[] RandomRows(GgmlType t, int rows, int cols, Random rng)
    {
        int rb = (int)GgmlTypeInfo.RowBytes(t, cols), blockBytes = t == GgmlType.Q4_K ? 144 : 210;
        var w = new byte[rows * rb];
        rng.NextBytes(w);
        for (int b = 0; b < w.Length / blockBytes; b++)
        {
            var block = w.AsSpan(b * blockBytes, blockBytes);
            float scale(int i) => (b + i) % 9 == 0 ? 3e-7f : (float)(rng.NextDouble() * 2 - 1) * 0.02f;
            if (t == GgmlType.Q4_K)
            {
                FloatConvert.WriteHalf(block, 0, scale(0));
                FloatConvert.WriteHalf(block, 2, scale(1));
            }
            else FloatConvert.WriteHalf(block, KQuants.Q6KDOffset, scale(0));
        }
        return w;
    }

    /// <summary>Tokens back to back, <see cref="MatMul.ActivationStride"/> apart.</summary>
    private static byte[] Activations(GgmlType t, int cols, int tokens, Random rng)
    {
        var x = new float[tokens * cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 7 == 0 ? 6 : 1);
        var act = new byte[MatMul.ActivationStride(t, cols) * tokens];
        MatMul.QuantizeActivations(t, x, cols, act, 0, tokens);
        return act;
    }

    private static bool HasAvx512 => MatVecTests.AvailablePaths().Contains(KernelPath.Avx512);

    [Theory]
    [InlineData(GgmlType.Q4_K, 1, 768)]
    [InlineData(GgmlType.Q4_K, 4, 256)]
    [InlineData(GgmlType.Q4_K, 13, 768)]
    [InlineData(GgmlType.Q6_K, 5, 768)]
    [InlineData(GgmlType.Q6_K, 8, 256)]
    [InlineData(GgmlType.Q6_K, 13, 768)]
    public void Every_path_matches_the_scalar_reference(GgmlType t, int rows, int cols)
    {
        var rng = new Random(rows * 31 + cols);
        var w = RandomRows(t, rows, cols, rng);
        var act = Activations(t, cols, 1, rng);
        var reference = new float[rows];
        MatVec.ComputeRows(t, w, cols, act, reference, 0, rows, KernelPath.Scalar);
        Assert.Contains(reference, v => v != 0 && float.IsFinite(v));
        foreach (KernelPath path in MatVecTests.AvailablePaths())
        {
            var y = new float[rows];
            MatVec.ComputeRows(t, w, cols, act, y, 0, rows, path);
            for (int r = 0; r < rows; r++)
                Assert.True(Math.Abs(y[r] - reference[r]) <= 1e-4f * (1 + Math.Abs(reference[r])), $"{t} {path} row {r}/{rows}: {y[r]} vs scalar {reference[r]}");
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Four_row_kernel_is_bit_identical_to_the_single_row_kernel(GgmlType t)
    {
        if (!HasAvx512) Assert.Skip("needs AVX-512 (the four-row kernels run on that path only)");
        Assert.True(MatVec.KFourRows, "SPUTNIK_K_ROWS=0 is set: the four-row kernels are off");
        const int rows = 23, cols = 768;
        var rng = new Random(5);
        var w = RandomRows(t, rows, cols, rng);
        var act = Activations(t, cols, 1, rng);
        int rb = (int)GgmlTypeInfo.RowBytes(t, cols);
        var single = new float[rows];
        for (int r = 0; r < rows; r++) single[r] = MatVec.Dot(t, w.AsSpan(r * rb, rb), act, cols, KernelPath.Avx512);
        // Ranges as threads split them: starting and ending inside groups of four, and shorter than a group.
        foreach (var (r0, r1) in new[] { (0, rows), (1, 6), (3, 19), (16, rows), (22, rows), (5, 7) })
        {
            var y = Enumerable.Repeat(float.NaN, rows).ToArray();
            MatVec.ComputeRows(t, w, cols, act, y, r0, r1, KernelPath.Avx512);
            for (int r = 0; r < rows; r++)
            {
                if (r >= r0 && r < r1)
                    Assert.True(BitConverter.SingleToInt32Bits(single[r]) == BitConverter.SingleToInt32Bits(y[r]),
                        $"{t} rows [{r0}, {r1}) row {r}: {y[r]} vs single-row {single[r]}");
                else Assert.True(float.IsNaN(y[r]), $"{t} rows [{r0}, {r1}) wrote row {r}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Batched_tokens_give_the_bits_of_single_token_decode(GgmlType t)
    {
        if (!HasAvx512) Assert.Skip("needs AVX-512 (the four-row kernels run on that path only)");
        const int rows = 13, cols = 768, tokens = 7; // a group of four tokens and three left over
        var rng = new Random(7);
        var w = RandomRows(t, rows, cols, rng);
        var act = Activations(t, cols, tokens, rng);
        int stride = MatMul.ActivationStride(t, cols);
        var batched = new float[tokens * rows];
        MatMul.ComputeRows(t, w, cols, act, tokens, batched, rows, 0, rows, KernelPath.Avx512);
        for (int tok = 0; tok < tokens; tok++)
        {
            var y = new float[rows];
            MatVec.ComputeRows(t, w, cols, act.AsSpan(tok * stride, stride), y, 0, rows, KernelPath.Avx512);
            for (int r = 0; r < rows; r++)
                Assert.True(BitConverter.SingleToInt32Bits(y[r]) == BitConverter.SingleToInt32Bits(batched[tok * rows + r]),
                    $"{t} token {tok} row {r}: decode {y[r]} vs batched {batched[tok * rows + r]}");
        }
    }
}
