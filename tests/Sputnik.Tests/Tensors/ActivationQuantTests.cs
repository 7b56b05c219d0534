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
                LegacyQuants.QuantQ8_0Activation(x.AsSpan(b * 32, 32), expect);
                Assert.Equal(expect, act.AsSpan(b * 34, 34).ToArray());
                // the per-block sum d·Σq, the float scale and the integer Σq stored after the blocks
                float d = (float)BitConverter.ToHalf(expect, 0);
                Assert.Equal(d * expect.Skip(2).Sum(v => (int)(sbyte)v), BitConverter.ToSingle(act, nb * 34 + 4 * b));
                Assert.Equal(d, BitConverter.ToSingle(act, nb * 38 + 4 * b));
                Assert.Equal(expect.Skip(2).Sum(v => (int)(sbyte)v), BitConverter.ToInt32(act, nb * 42 + 4 * b)); // Σq as an integer
            }
        }
    }

    /// <summary>
    /// ggml-cpu's x86 quantize_row_q8_0 rounds x·(127/amax) half to even; the reference weight quantizer rounds
    /// x·(1/(amax/127)) half away from zero. With amax 127 the scale is 1, so x = ±0.5, 1.5, 2.5 are exact ties.
    /// </summary>
    [Fact]
    public void Q8_0_activations_round_as_ggml_cpu_on_x86()
    {
        var x = new float[32];
        float[] ties = [0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f];
        ties.CopyTo(x, 0);
        x[31] = 127;
        var act = new byte[MatVec.ScratchBytes(GgmlType.Q8_0, 32)];
        MatVec.QuantizeActivation(GgmlType.Q8_0, x, act);
        sbyte[] expect = [0, 2, 2, 0, -2, -2, 126];
        Assert.Equal(expect, act.AsSpan(2, ties.Length).ToArray().Select(v => (sbyte)v));
        var weight = new byte[34];
        LegacyQuants.QuantQ8_0(x, weight);
        Assert.Equal([1, 2, 3, -1, -2, -3, 127], weight.AsSpan(2, ties.Length).ToArray().Select(v => (sbyte)v));

        // random blocks: every value is round-half-even of x·(127/amax)
        var rng = new Random(3);
        var row = new float[32];
        var a = new byte[34];
        for (int i = 0; i < 2000; i++)
        {
            for (int j = 0; j < 32; j++) row[j] = (float)(rng.NextDouble() * 2 - 1);
            LegacyQuants.QuantQ8_0Activation(row, a);
            float amax = row.Max(MathF.Abs);
            for (int j = 0; j < 32; j++) Assert.Equal((sbyte)MathF.Round(row[j] * (127f / amax), MidpointRounding.ToEven), (sbyte)a[2 + j]);
        }
    }
}
