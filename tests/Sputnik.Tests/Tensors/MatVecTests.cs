using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

public class MatVecTests
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

    private static int ColsFor(GgmlType t) => GgmlTypeInfo.BlockSize(t) == 256 ? 768 : 32 * 13; // odd block counts hit the tails

    private static (byte[] W, float[] Wf, float[] X) Problem(GgmlType t, int rows, int cols, int seed)
    {
        float[] wf = Gaussian(rows * cols, seed);
        float[] x = Gaussian(cols, seed + 100);
        int rb = (int)GgmlTypeInfo.RowBytes(t, cols);
        var w = new byte[rb * rows];
        for (int r = 0; r < rows; r++) Quant.Row(t, wf.AsSpan(r * cols, cols), w.AsSpan(r * rb, rb));
        return (w, wf, x);
    }

    internal static IEnumerable<KernelPath> AvailablePaths()
    {
        yield return KernelPath.Scalar;
        if (Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported) yield return KernelPath.Avx2;
        if (Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && Avx512F.IsSupported) yield return KernelPath.Avx512;
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Scalar_kernel_matches_dequantized_dot(GgmlType t)
    {
        const int rows = 5;
        int cols = ColsFor(t);
        var (w, _, x) = Problem(t, rows, cols, 3);
        var act = new byte[MatVec.ScratchBytes(t, cols)];
        MatVec.QuantizeActivation(t, x, act);
        // the activation as the kernel sees it, decoded to float
        var xa = new float[cols];
        GgmlType at = MatVec.ActivationType(t);
        if (at is GgmlType.F32 or GgmlType.F16 or GgmlType.BF16) xa = act.AsSpan(0, 4 * cols).ToArray().Chunk(4).Select(b => BitConverter.ToSingle(b)).ToArray();
        else if (at == GgmlType.Q8_1) Dequant.Row(GgmlType.Q8_0, act.AsSpan(0, cols / 32 * 34), xa); // Q8_0 blocks, then the sums
        else Dequant.Row(at, act.AsSpan(0, (int)GgmlTypeInfo.RowBytes(at, cols)), xa);
        int rb = (int)GgmlTypeInfo.RowBytes(t, cols);
        var wr = new float[cols];
        for (int r = 0; r < rows; r++)
        {
            Dequant.Row(t, w.AsSpan(r * rb, rb), wr);
            double expect = 0, mag = 0;
            for (int i = 0; i < cols; i++) { expect += (double)wr[i] * xa[i]; mag += Math.Abs((double)wr[i] * xa[i]); }
            if (at == GgmlType.Q8_1)
            {
                // ggml's min term m·s uses the block sum s = F16(d·Σq), not the F16 d times Σq the decoded blocks give
                int nb = cols / 32, wb = rb / nb;
                for (int b = 0; b < nb; b++)
                {
                    double m = (double)BitConverter.ToHalf(w, r * rb + b * wb + 2), d = (double)BitConverter.ToHalf(act, b * 34);
                    int q = 0;
                    for (int j = 0; j < 32; j++) q += (sbyte)act[b * 34 + 2 + j];
                    expect += m * (BitConverter.ToSingle(act, nb * 34 + 4 * b) - d * q);
                }
            }
            float got = MatVec.Dot(t, w.AsSpan(r * rb, rb), act, cols, KernelPath.Scalar);
            Assert.True(Math.Abs(got - expect) <= 2e-5 * mag, $"{t} row {r}: scalar {got} vs dequantized {expect} (mag {mag})");
        }
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Simd_paths_match_scalar(GgmlType t)
    {
        foreach (int rows in new[] { 1, 7, 33 })
        {
            int cols = ColsFor(t);
            var (w, _, x) = Problem(t, rows, cols, rows);
            AssertPathsMatchScalar(t, w, rows, cols, x);
        }
    }

    /// <summary>Every available SIMD path gives the scalar kernel's result within 1e-4 relative on every row.</summary>
    private static void AssertPathsMatchScalar(GgmlType t, byte[] w, int rows, int cols, float[] x)
    {
        var act = new byte[MatVec.ScratchBytes(t, cols)];
        MatVec.QuantizeActivation(t, x, act);
        var reference = new float[rows];
        MatVec.ComputeRows(t, w, cols, act, reference, 0, rows, KernelPath.Scalar);
        foreach (KernelPath path in AvailablePaths())
        {
            var y = new float[rows];
            MatVec.ComputeRows(t, w, cols, act, y, 0, rows, path);
            for (int r = 0; r < rows; r++)
                Assert.True(Math.Abs(y[r] - reference[r]) <= 1e-4f * (1 + Math.Abs(reference[r])),
                    $"{t} {path} row {r}/{rows}: {y[r]} vs scalar {reference[r]}");
        }
    }

    /// <summary>
    /// Blocks of random bytes (every scale/min bit pattern, not only what the quantizer emits), with the F16 block
    /// scales replaced by small finite values: the SIMD unpacking of packed 6-bit scales and high bits must agree
    /// with the scalar reference on all of them.
    /// </summary>
    [Theory]
    [InlineData(GgmlType.Q4_K, 144, new[] { 0, 2 })]
    [InlineData(GgmlType.Q5_K, 176, new[] { 0, 2 })]
    [InlineData(GgmlType.Q6_K, 210, new[] { 208 })]
    public void Simd_paths_match_scalar_on_random_block_bytes(GgmlType t, int blockBytes, int[] halfOffsets)
    {
        const int rows = 16, cols = 1024;
        var rng = new Random(77);
        var w = new byte[rows * cols / 256 * blockBytes];
        rng.NextBytes(w);
        for (int b = 0; b < w.Length / blockBytes; b++)
            foreach (int o in halfOffsets)
                BitConverter.TryWriteBytes(w.AsSpan(b * blockBytes + o, 2), (Half)(0.001 + rng.NextDouble() * 0.01));
        AssertPathsMatchScalar(t, w, rows, cols, Gaussian(cols, 5));
    }

    [Theory]
    [MemberData(nameof(Types))]
    public void Compute_approximates_float_matvec(GgmlType t)
    {
        const int rows = 9;
        int cols = ColsFor(t);
        var (w, wf, x) = Problem(t, rows, cols, 21);
        var y = new float[rows];
        var scratch = new byte[MatVec.ScratchBytes(t, cols)];
        MatVec.Compute(t, w, rows, cols, x, y, scratch);
        double xn = Math.Sqrt(x.Sum(v => (double)v * v));
        for (int r = 0; r < rows; r++)
        {
            double expect = 0, wn = 0;
            for (int i = 0; i < cols; i++) { expect += (double)wf[r * cols + i] * x[i]; wn += (double)wf[r * cols + i] * wf[r * cols + i]; }
            // error relative to |w|·|x|: the weight quantization error dominates (Q4 ~9% of |w|, spread over random directions)
            double rel = Math.Abs(y[r] - expect) / (Math.Sqrt(wn) * xn);
            Assert.True(rel < 0.05, $"{t} row {r}: {y[r]} vs float {expect} (rel {rel})");
        }
    }

    [Fact]
    public void ComputeRows_writes_only_its_range()
    {
        const GgmlType t = GgmlType.Q4_K;
        const int rows = 11, cols = 512;
        var (w, _, x) = Problem(t, rows, cols, 5);
        var act = new byte[MatVec.ScratchBytes(t, cols)];
        MatVec.QuantizeActivation(t, x, act);
        var full = new float[rows];
        MatVec.ComputeRows(t, w, cols, act, full, 0, rows);
        var part = Enumerable.Repeat(float.NaN, rows).ToArray();
        MatVec.ComputeRows(t, w, cols, act, part, 3, 8);
        for (int r = 0; r < rows; r++)
        {
            if (r is >= 3 and < 8) Assert.Equal(full[r], part[r]);
            else Assert.True(float.IsNaN(part[r]));
        }
    }

    [Fact]
    public void Unsupported_weight_type_throws()
    {
        var ex = Assert.Throws<NotSupportedException>(() => MatVec.ScratchBytes(GgmlType.Q2_K, 256));
        Assert.Contains("Q2_K", ex.Message);
    }
}
