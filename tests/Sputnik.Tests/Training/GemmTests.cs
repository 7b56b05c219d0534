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
}
