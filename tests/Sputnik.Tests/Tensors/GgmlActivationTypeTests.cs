using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// What ggml-cpu does to the input of a matrix product before the dot products (its vec_dot_type), for the weight
/// types whose inputs are not plain Q8_0 / Q8_K blocks, with expected values taken from llama.cpp's own from_float
/// (node-llama-cpp's zen4 and haswell CPU builds, via bench/check-quant-kernels.sh): F16 weights see the input
/// rounded to F16, BF16 weights to BF16, Q4_1/Q5_1 weights take Q8_1 blocks whose sum s is F16(d·Σq) with the
/// unrounded d, and a block whose 127/amax overflows quantizes as x86 ggml-cpu's conversion instructions do.
/// </summary>
public class GgmlActivationTypeTests
{
    private static IEnumerable<KernelPath> Paths()
    {
        yield return KernelPath.Scalar;
        if (MatVec.DefaultPath >= KernelPath.Avx2) yield return KernelPath.Avx2;
        if (MatVec.DefaultPath == KernelPath.Avx512) yield return KernelPath.Avx512;
    }

    [Fact]
    public void F16_weights_see_the_input_rounded_to_F16()
    {
        // 1 + 2^-11 and 1 + 3·2^-11 lie halfway between F16 neighbours (ties to even); 0.678612 → 0.67871094 is
        // ggml-cpu's own conversion; 1e-8 is under half the smallest F16 denormal; 70000 is past F16's range.
        float[] x = [0.678612f, 1 + 1f / 2048, 1 + 3f / 2048, -(1 + 1f / 2048), 1e-8f, 3f, -0.1f, 70000f];
        float[] expect = [0.67871094f, 1f, 1 + 1f / 512, -1f, 0f, 3f, -0.099975586f, float.PositiveInfinity];
        var act = new byte[MatVec.ScratchBytes(GgmlType.F16, x.Length)];
        MatVec.QuantizeActivation(GgmlType.F16, x, act);
        Assert.Equal(expect, BytesAsFloats(act, x.Length));

        // A row of ones (and a zero against the infinity): the product is the sum of the rounded inputs.
        var ones = new byte[2 * x.Length];
        Quant.Row(GgmlType.F16, [1, 1, 1, 1, 1, 1, 1, 0], ones);
        float want = expect.Take(7).Sum(), unrounded = x.Take(7).Sum();
        Assert.NotEqual(want, unrounded);
        foreach (var path in Paths())
        {
            float got = MatVec.Dot(GgmlType.F16, ones, act, x.Length, path);
            Assert.True(float.IsNaN(got), $"{path}: 0·inf is NaN in ggml's F16 product too, got {got}");
        }
        x[^1] = 0;
        MatVec.QuantizeActivation(GgmlType.F16, x, act);
        foreach (var path in Paths()) Assert.Equal(want, MatVec.Dot(GgmlType.F16, ones, act, x.Length, path), 1e-6f);
    }

    [Fact]
    public void BF16_weights_see_the_input_rounded_to_BF16()
    {
        // 1 + 2^-8 and 1 + 3·2^-8 are BF16 ties; 0.678612 → 0.6796875 is ggml-cpu's own conversion.
        float[] x = [0.678612f, 1 + 1f / 256, 1 + 3f / 256, -(1 + 1f / 256)];
        float[] expect = [0.6796875f, 1f, 1 + 1f / 64, -1f];
        var act = new byte[MatVec.ScratchBytes(GgmlType.BF16, x.Length)];
        MatVec.QuantizeActivation(GgmlType.BF16, x, act);
        Assert.Equal(expect, BytesAsFloats(act, x.Length));
    }

    [Theory]
    [InlineData(GgmlType.Q4_1)]
    [InlineData(GgmlType.Q5_1)]
    public void Q4_1_and_Q5_1_take_ggmls_Q8_1_sum(GgmlType type)
    {
        // A block of ones: q = 127 everywhere, d = 1/127. ggml's quantize_row_q8_1 stores s = F16(d·4064) = 32; the
        // F16-rounded d times Σq would be 31.998, which moves the min term m·s by 6e-5 relative.
        var x = Enumerable.Repeat(1f, 32).ToArray();
        var act = new byte[MatVec.ScratchBytes(type, 32)];
        MatVec.QuantizeActivation(type, x, act);
        Assert.Equal(32f, BitConverter.ToSingle(act, 34));
        float da = (float)BitConverter.ToHalf(act, 0);
        Assert.NotEqual(32f, da * 4064);

        // Weights in [10, 10.5]: the min m ≈ 10 carries most of the product. ggml: d_w·d_a·Σq_w·127 + m·s.
        var w = new float[32];
        for (int i = 0; i < 32; i++) w[i] = 10 + i / 62f;
        var row = new byte[GgmlTypeInfo.RowBytes(type, 32)];
        Quant.Row(type, w, row);
        var deq = new float[32];
        Dequant.Row(type, row, deq);
        double m = (double)BitConverter.ToHalf(row, 2);
        double want = (double)da * 127 * (deq.Sum(v => (double)v) - 32 * m) + m * 32;
        double old = (double)da * 127 * (deq.Sum(v => (double)v) - 32 * m) + m * (da * 4064);
        Assert.True(Math.Abs(want - old) > 4e-6 * want, "the two sums must be told apart by the tolerance below");
        foreach (var path in Paths())
        {
            float got = MatVec.Dot(type, row, act, 32, path);
            Assert.True(Math.Abs(got - want) <= 2e-6 * want, $"{type} {path}: {got} vs ggml's {want}");
        }
    }

    [Fact]
    public void A_block_whose_scale_overflows_quantizes_as_ggml_cpu()
    {
        // Denormals (and zeros) only: 127/amax is infinite. x86 ggml-cpu's Q8_0 conversion (cvtps2dq, saturating
        // packs) stores -128 with d = 0; the Q8_K reference's nearest_int stores 0 with d = 1/(-inf) = -0.
        var x = new float[256];
        for (int i = 0; i < x.Length; i++) x[i] = i % 9 == 0 ? 0 : (i % 2 == 0 ? 1 : -1) * 1e-40f * (i % 13 + 1);
        var q80 = new byte[MatVec.ScratchBytes(GgmlType.Q8_0, 256)];
        MatVec.QuantizeActivation(GgmlType.Q8_0, x, q80);
        var reference = new byte[34];
        LegacyQuants.QuantQ8_0Activation(x.AsSpan(0, 32), reference);
        for (int b = 0; b < 8; b++)
        {
            Assert.Equal(0, BitConverter.ToUInt16(q80, 34 * b));
            Assert.All(q80.AsSpan(34 * b + 2, 32).ToArray(), v => Assert.Equal(0x80, v));
        }
        Assert.Equal(q80.AsSpan(0, 34).ToArray(), reference);

        var q8k = new byte[MatVec.ScratchBytes(GgmlType.Q4_K, 256)];
        MatVec.QuantizeActivation(GgmlType.Q4_K, x, q8k);
        var expect = new byte[292];
        Quant.Row(GgmlType.Q8_K, x, expect);
        Assert.Equal(expect, q8k);
        Assert.Equal(0f, BitConverter.ToSingle(q8k, 0));
        Assert.All(q8k.AsSpan(4).ToArray(), v => Assert.Equal(0, v));
    }

    private static float[] BytesAsFloats(byte[] b, int n) => Enumerable.Range(0, n).Select(i => BitConverter.ToSingle(b, 4 * i)).ToArray();
}
