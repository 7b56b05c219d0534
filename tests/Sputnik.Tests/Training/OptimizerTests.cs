using Sputnik.Training;
using Xunit;

namespace Sputnik.Tests.Training;

public class OptimizerTests
{
    [Fact]
    public void AdamWStepMatchesHandComputation()
    {
        float[] w = [1f, -2f, 0.5f];
        float[] g = [0.1f, -0.3f, 2f];
        var opt = new AdamW(3, beta1: 0.9f, beta2: 0.95f, eps: 1e-8f, weightDecay: 0.1f);
        opt.Update(w, g, lr: 0.01f, decayMask: [true, true, false]);
        // step 1: m̂ = g, v̂ = g², so the Adam part is g/|g| = sign(g); decay is lr·wd·w on decayed entries only
        Assert.Equal(1f - 0.01f * (1f + 0.1f * 1f), w[0], 5);
        Assert.Equal(-2f - 0.01f * (-1f + 0.1f * -2f), w[1], 5);
        Assert.Equal(0.5f - 0.01f * 1f, w[2], 5);
        // step 2 by hand for w[0] with g = 0.1 again
        double m = 0.9 * (0.1 * 0.1) + 0.1 * 0.1, v = 0.95 * (0.05 * 0.01) + 0.05 * 0.01;
        double mhat = m / (1 - 0.81), vhat = v / (1 - 0.9025);
        double expected = w[0] - 0.01 * (mhat / (Math.Sqrt(vhat) + 1e-8) + 0.1 * w[0]);
        opt.Update(w, g, lr: 0.01f, decayMask: [true, true, false]);
        Assert.Equal(expected, w[0], 5);
    }

    [Fact]
    public void ScheduleWarmsUpThenDecays()
    {
        Assert.Equal(0.1f, Schedule.WarmupCosine(0, 10, 100, 1f, 0f), 5);
        Assert.Equal(1f, Schedule.WarmupCosine(9, 10, 100, 1f, 0f), 5);
        Assert.Equal(0.5f, Schedule.WarmupCosine(55, 10, 100, 1f, 0f), 5);
        Assert.Equal(0.1f, Schedule.WarmupCosine(100, 10, 100, 1f, 0.1f), 5);
    }

    [Fact]
    public void ClipScalesToMaxNorm()
    {
        float[] g = [3f, 4f];
        Assert.Equal(5f, Schedule.ClipGlobalNorm(g, 1f), 5);
        Assert.Equal(0.6f, g[0], 5);
        Assert.Equal(0.8f, g[1], 5);
    }

    [Fact]
    public void TinyModelOverfitsOneBatch()
    {
        var c = TrainConfig.Llama(vocab: 13, dim: 32, layers: 2, heads: 4, kvHeads: 2, ffn: 64, maxSeq: 16);
        var m = new TransformerModel(c, seed: 5);
        var rng = new Random(3);
        int b = 4, t = 12;
        var tokens = Enumerable.Range(0, b * t).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var targets = tokens.Select((x, i) => i % t == t - 1 ? -1 : tokens[i + 1]).ToArray();
        var opt = new AdamW(m.P.Count, weightDecay: 0f);
        float first = m.Forward(tokens, targets, b, t), last = first;
        for (int step = 0; step < 150; step++)
        {
            last = m.Forward(tokens, targets, b, t);
            m.P.ZeroGrad();
            m.Backward(m.MeanLossWeights());
            Schedule.ClipGlobalNorm(m.P.Grad, 1f);
            opt.Update(m.P.Data, m.P.Grad, 3e-3f, m.DecayMask);
        }
        Assert.True(last < 0.1f * first, $"loss {first} -> {last}");
    }
}
