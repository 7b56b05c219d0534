using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>The vector activation quantizers against the scalar reference quantizers, byte for byte.</summary>
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
    public void Q8K_matches_the_reference(int flavour)
    {
        if (!ActivationQuant.IsAccelerated) return; // nothing but the reference runs on this machine
        for (int seed = 0; seed < 20; seed++)
        {
            var x = Values(256, seed, flavour);
            var expect = new byte[292];
            var got = new byte[292];
            Quant.Row(GgmlType.Q8_K, x, expect);
            ActivationQuant.Q8K(x, got);
            Assert.Equal(expect, got);
        }
        var zeros = new byte[292];
        var junk = Enumerable.Repeat((byte)0xAB, 292).ToArray();
        ActivationQuant.Q8K(new float[256], junk);
        Assert.Equal(zeros, junk);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public unsafe void Q8_0_matches_the_reference(int flavour)
    {
        if (!ActivationQuant.IsAccelerated) return;
        for (int seed = 0; seed < 40; seed++)
        {
            var x = Values(32, seed, flavour);
            var expect = new byte[34];
            var got = new byte[34];
            LegacyQuants.QuantQ8_0(x, expect);
            int sum;
            fixed (float* xp = x)
            fixed (byte* bp = got)
                sum = ActivationQuant.Q8_0(xp, bp);
            Assert.Equal(expect, got);
            Assert.Equal(expect.Skip(2).Sum(b => (int)(sbyte)b), sum);
        }
    }
}
