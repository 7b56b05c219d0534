using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// The four-row MXFP4 kernels, decode (<see cref="MatVec.Mxfp4Rows"/>) and prefill (four rows × four tokens, through
/// MatMul.ComputeRows), against the single-row kernel and the scalar reference.
/// </summary>
public class Mxfp4RowsTests
{
    private const int Cols = 32 * 14; // an even block count, so AVX-512 rows take the four-row kernel

    /// <summary>Random MXFP4 rows: every nibble pattern, scale bytes 0 and 1 (denormal half-scales) and 124…130.</summary>
    private static byte[] RandomRows(int rows, Random rng)
    {
        int nb = Cols / 32;
        var w = new byte[rows * nb * Mxfp4.BlockBytes];
        rng.NextBytes(w);
        for (int b = 0; b < rows * nb; b++)
            w[b * Mxfp4.BlockBytes] = (byte)(b % 7 == 0 ? b % 2 : rng.Next(124, 131));
        return w;
    }

    private static byte[] Activation(Random rng) => Activations(1, rng);

    /// <summary>Tokens back to back, <see cref="MatMul.ActivationStride"/> apart.</summary>
    private static byte[] Activations(int tokens, Random rng)
    {
        var x = new float[tokens * Cols];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 5 == 0 ? 8 : 1);
        var act = new byte[MatMul.ActivationStride(GgmlType.MXFP4, Cols) * tokens];
        MatMul.QuantizeActivations(GgmlType.MXFP4, x, Cols, act, 0, tokens);
        return act;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(8)]
    [InlineData(13)]
    public void Every_path_matches_the_scalar_reference(int rows)
    {
        var rng = new Random(rows);
        var w = RandomRows(rows, rng);
        var act = Activation(rng);
        var reference = new float[rows];
        MatVec.ComputeRows(GgmlType.MXFP4, w, Cols, act, reference, 0, rows, KernelPath.Scalar);
        foreach (KernelPath path in MatVecTests.AvailablePaths())
        {
            var y = new float[rows];
            MatVec.ComputeRows(GgmlType.MXFP4, w, Cols, act, y, 0, rows, path);
            for (int r = 0; r < rows; r++)
                Assert.True(Math.Abs(y[r] - reference[r]) <= 1e-4f * (1 + Math.Abs(reference[r])), $"{path} row {r}/{rows}: {y[r]} vs scalar {reference[r]}");
        }
    }

    [Fact]
    public void Four_row_kernel_is_bit_identical_to_the_single_row_kernel()
    {
        if (!MatVecTests.AvailablePaths().Contains(KernelPath.Avx512) || !MatVec.Mxfp4RowsSupported(Cols / 32))
            Assert.Skip("needs AVX-512 with VBMI (the four-row MXFP4 kernel)");
        const int rows = 23;
        var rng = new Random(9);
        var w = RandomRows(rows, rng);
        var act = Activation(rng);
        int rb = Cols / 32 * Mxfp4.BlockBytes;
        var single = new float[rows];
        for (int r = 0; r < rows; r++) single[r] = MatVec.Dot(GgmlType.MXFP4, w.AsSpan(r * rb, rb), act, Cols, KernelPath.Avx512);
        Assert.Contains(single, v => v != 0 && float.IsFinite(v));
        // Ranges that start and end inside groups of four, and the buffer's last rows (which the kernel leaves to the
        // single-row kernel because its 64-byte loads would run past the end).
        foreach (var (r0, r1) in new[] { (0, rows), (1, 6), (3, 19), (16, rows), (22, rows) })
        {
            var y = Enumerable.Repeat(float.NaN, rows).ToArray();
            MatVec.ComputeRows(GgmlType.MXFP4, w, Cols, act, y, r0, r1, KernelPath.Avx512);
            for (int r = 0; r < rows; r++)
            {
                if (r >= r0 && r < r1)
                    Assert.True(BitConverter.SingleToInt32Bits(single[r]) == BitConverter.SingleToInt32Bits(y[r]),
                        $"rows [{r0}, {r1}) row {r}: {y[r]} vs single-row {single[r]}");
                else Assert.True(float.IsNaN(y[r]), $"rows [{r0}, {r1}) wrote row {r}");
            }
        }
    }

    [Theory]
    [InlineData(4, 4)]
    [InlineData(13, 9)]
    [InlineData(8, 3)]
    [InlineData(3, 17)]
    public void Batched_tokens_match_the_scalar_reference_on_every_path(int rows, int tokens)
    {
        var rng = new Random(rows * 100 + tokens);
        var w = RandomRows(rows, rng);
        var act = Activations(tokens, rng);
        int ldy = rows + 1; // the column past the rows must stay untouched
        var reference = new float[tokens * ldy];
        MatMul.ComputeRows(GgmlType.MXFP4, w, Cols, act, tokens, reference, ldy, 0, rows, KernelPath.Scalar);
        foreach (KernelPath path in MatVecTests.AvailablePaths())
        {
            var y = Enumerable.Repeat(float.NaN, tokens * ldy).ToArray();
            MatMul.ComputeRows(GgmlType.MXFP4, w, Cols, act, tokens, y, ldy, 0, rows, path);
            for (int t = 0; t < tokens; t++)
            {
                for (int r = 0; r < rows; r++)
                {
                    float e = reference[t * ldy + r], g = y[t * ldy + r];
                    Assert.True(Math.Abs(g - e) <= 1e-4f * (1 + Math.Abs(e)), $"{path} {rows}x{tokens} row {r} token {t}: {g} vs scalar {e}");
                }
                Assert.True(float.IsNaN(y[t * ldy + rows]), $"{path} wrote past the rows for token {t}");
            }
        }
    }

    [Fact]
    public void Batched_kernel_is_bit_identical_to_the_single_row_kernel()
    {
        if (!MatVecTests.AvailablePaths().Contains(KernelPath.Avx512) || !MatVec.Mxfp4RowsSupported(Cols / 32))
            Assert.Skip("needs AVX-512 with VBMI (the four-row MXFP4 kernels)");
        const int rows = 23, tokens = 11; // two groups of four tokens and three left over
        var rng = new Random(11);
        var w = RandomRows(rows, rng);
        var act = Activations(tokens, rng);
        int rb = Cols / 32 * Mxfp4.BlockBytes, stride = MatMul.ActivationStride(GgmlType.MXFP4, Cols);
        var single = new float[tokens * rows];
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rows; r++)
                single[t * rows + r] = MatVec.Dot(GgmlType.MXFP4, w.AsSpan(r * rb, rb), act.AsSpan(t * stride, stride), Cols, KernelPath.Avx512);
        Assert.Contains(single, v => v != 0 && float.IsFinite(v));
        // Row ranges as threads split them (starting and ending inside groups of four), the buffer's last rows (the
        // kernels leave them to the one-row kernels: their 64-byte loads would run past the end), and token counts
        // below, at and above one group.
        foreach (var (r0, r1, n) in new[] { (0, rows, tokens), (1, 6, tokens), (3, 19, 8), (16, rows, 5), (22, rows, tokens), (0, 12, 2) })
        {
            var y = Enumerable.Repeat(float.NaN, n * rows).ToArray();
            MatMul.ComputeRows(GgmlType.MXFP4, w, Cols, act, n, y, rows, r0, r1, KernelPath.Avx512);
            for (int t = 0; t < n; t++)
                for (int r = 0; r < rows; r++)
                {
                    float g = y[t * rows + r], e = single[t * rows + r];
                    if (r >= r0 && r < r1)
                        Assert.True(BitConverter.SingleToInt32Bits(g) == BitConverter.SingleToInt32Bits(e),
                            $"rows [{r0}, {r1}) × {n} tokens, row {r} token {t}: batched {g} vs single-row {e}");
                    else Assert.True(float.IsNaN(g), $"rows [{r0}, {r1}) wrote row {r} of token {t}");
                }
        }
    }
}
