using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// The activations the kernels read (MatVec.QuantizeActivation, vector quantizers where the CPU has AVX-512, the
/// reference otherwise) against the scalar reference quantizers, byte for byte, on every path CI runs.
/// </summary>
public class ActivationQuantTests
{
    /// <summary>Random values plus the awkward ones: exact .5 ties after scaling, equal magnitudes of both signs, zeros.</summary>
    private static float[] Values(int n, int seed, int flavour)
    {
        var rng = new Random(seed);
        var x = new float[n];
        for (int i = 0; i < n; i++)
        {
            x[i] = flavour switch
            {
                0 => (float)(rng.NextDouble() * 2 - 1) * 3,
                1 => rng.Next(-254, 255) / 2f,                 // many exact half-integers
                2 => (rng.Next(2) == 0 ? -1 : 1) * rng.Next(0, 4), // ties in magnitude across signs, zeros
                _ => i % 7 == 0 ? 0 : (float)Math.Sin(i) * 1e-3f,
            };
        }
        return x;
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Q8K_activations_match_the_reference(int flavour)
    {
        const int cols = 512;
        for (int seed = 0; seed < 20; seed++)
        {
            var x = Values(cols, seed, flavour);
            if (seed == 0) Array.Clear(x, 256, 256); // an all-zero block
            var expect = new byte[cols / 256 * 292];
            Quant.Row(GgmlType.Q8_K, x, expect);
            var act = new byte[MatVec.ScratchBytes(GgmlType.Q4_K, cols)];
            MatVec.QuantizeActivation(GgmlType.Q4_K, x, act);
            Assert.Equal(expect, act.AsSpan(0, expect.Length).ToArray());
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public void Q8_0_activations_match_the_reference(int flavour)
    {
        const int cols = 128, nb = cols / 32;
        for (int seed = 0; seed < 40; seed++)
        {
            var x = Values(cols, seed, flavour);
            var act = new byte[MatVec.ScratchBytes(GgmlType.Q8_0, cols)];
            MatVec.QuantizeActivation(GgmlType.Q8_0, x, act);
            for (int b = 0; b < nb; b++)
            {
                var expect = new byte[34];
                LegacyQuants.QuantQ8_0(x.AsSpan(b * 32, 32), expect);
                Assert.Equal(expect, act.AsSpan(b * 34, 34).ToArray());
                // the per-block sum d·Σq and the float scale stored after the blocks
                float d = (float)BitConverter.ToHalf(expect, 0);
                Assert.Equal(d * expect.Skip(2).Sum(v => (int)(sbyte)v), BitConverter.ToSingle(act, nb * 34 + 4 * b));
                Assert.Equal(d, BitConverter.ToSingle(act, nb * 38 + 4 * b));
            }
        }
    }
}
