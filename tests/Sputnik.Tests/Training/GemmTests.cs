using Sputnik.Training;
using Xunit;

namespace Sputnik.Tests.Training;

public class GemmTests
{
    [Theory]
    [InlineData(9, 11, 37)]
    [InlineData(64, 48, 192)]
    [InlineData(3, 2, 5)]
    public unsafe void MatchesNaiveDoubleReference(int m, int n, int k)
    {
        var rng = new Random(m * n + k);
        var a = GradCheckTests.Rand(rng, m * k); var b = GradCheckTests.Rand(rng, n * k); var c = GradCheckTests.Rand(rng, m * n);
        var expect = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = c[i * n + j];
                for (int p = 0; p < k; p++) s += (double)a[i * k + p] * b[j * k + p];
                expect[i * n + j] = s;
            }
        fixed (float* pc = c, pa = a, pb = b) Gemm.ABt(pc, pa, pb, m, n, k, accumulate: true);
        for (int i = 0; i < m * n; i++) Assert.True(Math.Abs(c[i] - expect[i]) < 1e-4 * Math.Sqrt(k), $"[{i}] {c[i]} vs {expect[i]}");
        var t = new float[m * k];
        fixed (float* pt = t, pa = a) Gemm.Transpose(pt, pa, m, k);
        for (int i = 0; i < m; i++) for (int p = 0; p < k; p++) Assert.Equal(a[i * k + p], t[p * m + i]);
    }

    /// <summary>
    /// The strided kernel (and its portable fallback) against a double reference for A as stored and A read transposed in place, with every causal
    /// mode: only the entries the mode promises are compared (Columns leaves j &gt; i unspecified), and the inputs carry
    /// exact zeros where Depth/DepthFrom assume them, as attention's probabilities do.
    /// </summary>
    [Theory]
    [InlineData(37, 45, 37, false, 0)]
    [InlineData(37, 45, 37, true, 0)]
    [InlineData(33, 33, 19, false, 1)]
    [InlineData(41, 20, 41, false, 2)]
    [InlineData(41, 20, 41, true, 3)]
    [InlineData(300, 7, 300, false, 2)]
    public unsafe void StridedAndCausalProductsMatchReference(int m, int n, int k, bool transposedA, int causalMode)
    {
        var causal = (Causal)causalMode;
        var rng = new Random(m + n + k);
        var a = GradCheckTests.Rand(rng, m * k); var b = GradCheckTests.Rand(rng, k * n); var c = GradCheckTests.Rand(rng, m * n);
        int ars = transposedA ? 1 : k, acs = transposedA ? m : 1;        // A(i,p) = a[i*ars + p*acs]
        for (int i = 0; i < m; i++)
            for (int p = 0; p < k; p++)
                if ((causal == Causal.Depth && p > i) || (causal == Causal.DepthFrom && p < i)) a[i * ars + p * acs] = 0f;
        var expect = new double[m * n];
        for (int i = 0; i < m; i++)
            for (int j = 0; j < n; j++)
            {
                double s = c[i * n + j];
                for (int p = 0; p < k; p++) s += (double)a[i * ars + p * acs] * b[p * n + j];
                expect[i * n + j] = s;
            }
        var portable = (float[])c.Clone();                                // the fallback for CPUs without AVX-512
        fixed (float* pc = c, pa = a, pb = b, pp = portable)
        {
            Gemm.Mul(pc, n, pa, ars, acs, pb, n, m, n, k, accumulate: true, causal);
            Gemm.MulRowsPortable(pp, n, pa, ars, acs, pb, n, n, k, accumulate: true, causal, 0, m);
        }
        foreach (var got in new[] { c, portable })
            for (int i = 0; i < m; i++)
                for (int j = 0; j < (causal == Causal.Columns ? Math.Min(n, i + 1) : n); j++)
                    Assert.True(Math.Abs(got[i * n + j] - expect[i * n + j]) < 1e-4 * Math.Sqrt(k), $"[{i},{j}] {got[i * n + j]} vs {expect[i * n + j]}");
    }
}
