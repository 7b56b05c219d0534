using System.Runtime.Intrinsics;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Tensors;

public class SoftmaxExpTests
{
    /// <summary>Units in the last place between a float result and the exact (double) value.</summary>
    private static double Ulps(float got, double exact)
    {
        float e = (float)exact;
        double ulp = MathF.BitIncrement(MathF.Abs(e)) - MathF.Abs(e);
        return Math.Abs(got - exact) / ulp;
    }

    /// <summary>Inputs across the whole domain: a dense sweep, the ends, the special values.</summary>
    private static float[] Inputs()
    {
        var xs = new List<float> { float.NegativeInfinity, float.NaN, -1e30f, -200f, -104f, -87.5f, SoftmaxExp.Low,
            MathF.BitIncrement(SoftmaxExp.Low), MathF.BitDecrement(SoftmaxExp.Low), -1e-30f, -0f, 0f, float.Epsilon,
            -float.Epsilon, 1e-7f, SoftmaxExp.High, 88.5f, 100f, float.PositiveInfinity, 0.34657359f, -0.34657359f };
        for (int i = 0; i <= 200_000; i++) xs.Add(SoftmaxExp.Low + (SoftmaxExp.High - SoftmaxExp.Low) * i / 200_000f);
        var rng = new Random(7);
        for (int i = 0; i < 50_000; i++) xs.Add((float)(-rng.NextDouble() * 20)); // where softmax's inputs lie
        xs.Add(1f); // odd count: the last vector is partial at every width
        return xs.ToArray();
    }

    [Fact]
    public void Scalar_is_within_two_ulps_of_exp_on_its_domain()
    {
        double worst = 0;
        foreach (float x in Inputs())
        {
            if (float.IsNaN(x) || x < SoftmaxExp.Low || x > SoftmaxExp.High) continue;
            double u = Ulps(SoftmaxExp.Exp(x), Math.Exp(x));
            Assert.True(u <= 2, $"exp({x:R}) = {SoftmaxExp.Exp(x):R}, exact {Math.Exp(x):R}: {u:F2} ulp");
            worst = Math.Max(worst, u);
        }
        Assert.True(worst > 0, "every result exact: the sweep did not test the polynomial");
    }

    [Fact]
    public void Outside_the_domain_it_flushes_clamps_and_keeps_nan()
    {
        Assert.Equal(0f, SoftmaxExp.Exp(float.NegativeInfinity));
        Assert.Equal(0f, SoftmaxExp.Exp(-1e30f));
        Assert.Equal(0f, SoftmaxExp.Exp(MathF.BitDecrement(SoftmaxExp.Low)));
        Assert.True(SoftmaxExp.Exp(SoftmaxExp.Low) > 0f && float.IsNormal(SoftmaxExp.Exp(SoftmaxExp.Low)));
        Assert.Equal(SoftmaxExp.Exp(SoftmaxExp.High), SoftmaxExp.Exp(float.PositiveInfinity));
        Assert.True(float.IsFinite(SoftmaxExp.Exp(SoftmaxExp.High)));
        Assert.True(float.IsNaN(SoftmaxExp.Exp(float.NaN)));
        Assert.Equal(1f, SoftmaxExp.Exp(0f));
        Assert.Equal(1f, SoftmaxExp.Exp(-0f));
    }

    /// <summary>Each vector width against the scalar reference, bit for bit (software vectors where the CPU lacks the width).</summary>
    [Fact]
    public void Every_vector_width_matches_the_scalar_reference_bit_for_bit()
    {
        float[] xs = Inputs();
        var got = new float[xs.Length + 16];
        void Check(int width)
        {
            for (int i = 0; i < xs.Length; i++)
            {
                int want = BitConverter.SingleToInt32Bits(SoftmaxExp.Exp(xs[i]));
                int have = BitConverter.SingleToInt32Bits(got[i]);
                Assert.True(want == have || float.IsNaN(xs[i]) && float.IsNaN(got[i]),
                    $"width {width}: exp({xs[i]:R}) gave {got[i]:R}, scalar {SoftmaxExp.Exp(xs[i]):R}");
            }
        }
        var padded = new float[xs.Length + 16];
        xs.CopyTo(padded, 0);
        for (int i = 0; i < xs.Length; i += 16) SoftmaxExp.Exp(Vector512.Create(padded, i)).CopyTo(got, i);
        Check(512);
        for (int i = 0; i < xs.Length; i += 8) SoftmaxExp.Exp(Vector256.Create(padded, i)).CopyTo(got, i);
        Check(256);
        for (int i = 0; i < xs.Length; i += 4) SoftmaxExp.Exp(Vector128.Create(padded, i)).CopyTo(got, i);
        Check(128);
    }
}
