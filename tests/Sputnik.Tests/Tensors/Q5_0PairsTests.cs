using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// The AVX-512 Q5_0 pair kernels (<see cref="MatVec.Q5_0Rows"/>, the single-row and four-token ones) against the
/// scalar reference, and against each other bit for bit.
/// </summary>
public class Q5_0PairsTests
{
    private const int BlockBytes = 22;

    /// <summary>Random Q5_0 rows: every nibble and high-bit pattern, block scales small finite halves (some subnormal, some zero).</summary>
    private static byte[] RandomRows(int rows, int nb, Random rng)
    {
        var w = new byte[rows * nb * BlockBytes];
        rng.NextBytes(w);
        for (int b = 0; b < rows * nb; b++)
        {
            float d = b % 11 == 0 ? 0f : b % 7 == 0 ? 3e-6f : (float)(rng.NextDouble() * 0.02 + 0.001);
            FloatConvert.WriteHalf(w.AsSpan(b * BlockBytes), 0, d);
        }
        return w;
    }

    private static byte[] Activation(int cols, Random rng)
    {
        var x = new float[cols];
        for (int i = 0; i < cols; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 5 == 0 ? 8 : 1);
        var act = new byte[MatVec.ScratchBytes(GgmlType.Q5_0, cols)];
        MatVec.QuantizeActivation(GgmlType.Q5_0, x, act);
        return act;
    }

    [Theory]
    [InlineData(1, 44)]
    [InlineData(4, 44)]
    [InlineData(7, 13)]
    [InlineData(9, 4)]
    [InlineData(13, 1)]
    public void Every_path_matches_the_scalar_reference(int rows, int nb)
    {
        var rng = new Random(rows * 100 + nb);
        int cols = nb * 32;
        var w = RandomRows(rows, nb, rng);
        var act = Activation(cols, rng);
        var reference = new float[rows];
        MatVec.ComputeRows(GgmlType.Q5_0, w, cols, act, reference, 0, rows, KernelPath.Scalar);
        Assert.Contains(reference, v => v != 0);
        foreach (KernelPath path in MatVecTests.AvailablePaths())
        {
            var y = new float[rows];
            MatVec.ComputeRows(GgmlType.Q5_0, w, cols, act, y, 0, rows, path);
            for (int r = 0; r < rows; r++)
                Assert.True(Math.Abs(y[r] - reference[r]) <= 1e-4f * (1 + Math.Abs(reference[r])), $"{path} row {r}/{rows}: {y[r]} vs scalar {reference[r]}");
        }
    }

    [Theory]
    [InlineData(44)]
    [InlineData(13)]
    public void Four_row_kernel_is_bit_identical_to_the_single_row_kernel(int nb)
    {
        if (!MatVecTests.AvailablePaths().Contains(KernelPath.Avx512) || !MatVec.Q5_0PairsSupported)
            Assert.Skip("needs AVX-512 with VBMI (the Q5_0 pair kernels)");
        const int rows = 23;
        int cols = nb * 32, rb = nb * BlockBytes;
        var rng = new Random(nb);
        var w = RandomRows(rows, nb, rng);
        var act = Activation(cols, rng);
        var single = new float[rows];
        for (int r = 0; r < rows; r++) single[r] = MatVec.Dot(GgmlType.Q5_0, w.AsSpan(r * rb, rb), act, cols, KernelPath.Avx512);
        Assert.Contains(single, v => v != 0 && float.IsFinite(v));
        // Ranges that start and end inside groups of four, and the buffer's last rows.
        foreach (var (r0, r1) in new[] { (0, rows), (1, 6), (3, 19), (16, rows), (22, rows) })
        {
            var y = Enumerable.Repeat(float.NaN, rows).ToArray();
            MatVec.ComputeRows(GgmlType.Q5_0, w, cols, act, y, r0, r1, KernelPath.Avx512);
            for (int r = 0; r < rows; r++)
            {
                if (r >= r0 && r < r1)
                    Assert.True(BitConverter.SingleToInt32Bits(single[r]) == BitConverter.SingleToInt32Bits(y[r]),
                        $"rows [{r0}, {r1}) row {r}: {y[r]} vs single-row {single[r]}");
                else Assert.True(float.IsNaN(y[r]), $"rows [{r0}, {r1}) wrote row {r}");
            }
        }
    }
}
