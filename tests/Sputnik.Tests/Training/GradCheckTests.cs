using Sputnik.Training;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>
/// Every backward op against central finite differences. Forward passes run in float32, so the check uses
/// L = Σ out·R (R random) accumulated in double, a step of 1e-3, and a tolerance of 2% relative plus 2e-3
/// absolute: float rounding in L (~1e-7·|L|/1e-3) stays well below that, while a wrong term (a missing factor,
/// a transposed index) is off by O(1).
/// </summary>
public class GradCheckTests
{
    internal static float[] Rand(Random rng, int n, float scale = 1f) => Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1) * scale).ToArray();

    internal static double Dot(ReadOnlySpan<float> a, float[] r)
    {
        double s = 0;
        for (int i = 0; i < r.Length; i++) s += (double)a[i] * r[i];
        return s;
    }

    /// <summary>Compares analytic[i] with (L(x+h) − L(x−h))/2h on up to <paramref name="samples"/> indices of x.</summary>
    internal static void Check(string name, float[] x, ReadOnlySpan<float> analytic, Func<double> loss, int samples = 40, float h = 1e-3f, int offset = 0)
    {
        var rng = new Random(name.Length * 7919);
        int n = analytic.Length;
        var idx = n <= samples ? Enumerable.Range(0, n) : Enumerable.Range(0, samples).Select(_ => rng.Next(n));
        double maxErr = 0;
        foreach (int i in idx)
        {
            float orig = x[offset + i];
            x[offset + i] = orig + h; double lp = loss();
            x[offset + i] = orig - h; double lm = loss();
            x[offset + i] = orig;
            double num = (lp - lm) / (2 * h), ana = analytic[i];
            double err = Math.Abs(num - ana);
            maxErr = Math.Max(maxErr, err);
            Assert.True(err <= 2e-3 + 0.02 * Math.Max(Math.Abs(num), Math.Abs(ana)),
                $"{name}[{i}]: analytic {ana:G6} vs numeric {num:G6}");
        }
    }

    [Fact]
    public void MatMul()
    {
        var rng = new Random(1);
        int n = 5, c = 7, oc = 6;
        var x = Rand(rng, n * c); var w = Rand(rng, oc * c); var r = Rand(rng, n * oc);
        double L() { var o = new float[n * oc]; TrainOps.MatMulForward(o, x, w, n, c, oc); return Dot(o, r); }
        var dx = new float[n * c]; var dw = new float[oc * c];
        TrainOps.MatMulBackward(dx, dw, r, x, w, n, c, oc);
        Check("matmul.dx", x, dx, L);
        Check("matmul.dw", w, dw, L);
    }

    [Fact]
    public void RmsNorm()
    {
        var rng = new Random(2);
        int n = 4, c = 9;
        var x = Rand(rng, n * c); var w = Rand(rng, c); var r = Rand(rng, n * c);
        double L() { var o = new float[n * c]; var rs = new float[n]; TrainOps.RmsNormForward(o, rs, x, w, n, c, 1e-5f); return Dot(o, r); }
        var o0 = new float[n * c]; var rstd = new float[n];
        TrainOps.RmsNormForward(o0, rstd, x, w, n, c, 1e-5f);
        var dx = new float[n * c]; var dw = new float[c];
        TrainOps.RmsNormBackward(dx, dw, r, x, w, rstd, n, c);
        Check("rmsnorm.dx", x, dx, L);
        Check("rmsnorm.dw", w, dw, L);
    }

    [Fact]
    public void Embedding()
    {
        var rng = new Random(3);
        int v = 6, c = 4;
        int[] tokens = [1, 3, 1, 5];
        var wte = Rand(rng, v * c); var r = Rand(rng, tokens.Length * c);
        double L() { var o = new float[tokens.Length * c]; TrainOps.EmbeddingForward(o, tokens, wte, c); return Dot(o, r); }
        var dw = new float[v * c];
        TrainOps.EmbeddingBackward(dw, r, tokens, c);
        Check("embedding.dw", wte, dw, L);
    }

    [Fact]
    public void Rope()
    {
        var rng = new Random(4);
        int t = 3, n = 6, heads = 2, hd = 8, off = 2, rd = 4;
        var (cos, sin) = TrainOps.RopeTable(t, rd, 10000f);
        var x = Rand(rng, n * heads * hd); var r = Rand(rng, x.Length);
        double L() { var o = (float[])x.Clone(); TrainOps.RopeForward(o, n, t, heads, hd, off, rd, cos, sin); return Dot(o, r); }
        var dx = (float[])r.Clone();
        TrainOps.RopeBackward(dx, n, t, heads, hd, off, rd, cos, sin);
        Check("rope.dx", x, dx, L);
    }

    [Fact]
    public void SwiGlu()
    {
        var rng = new Random(5);
        var g = Rand(rng, 20, 3); var u = Rand(rng, 20); var r = Rand(rng, 20);
        double L() { var o = new float[20]; TrainOps.SwiGluForward(o, g, u); return Dot(o, r); }
        var dg = new float[20]; var du = new float[20];
        TrainOps.SwiGluBackward(dg, du, r, g, u);
        Check("swiglu.dgate", g, dg, L);
        Check("swiglu.dup", u, du, L);
    }

    [Theory]
    [InlineData(4, 2, 6, 6)]   // GQA
    [InlineData(3, 1, 5, 4)]   // MQA with dk != dv (the MLA shape)
    [InlineData(2, 2, 4, 4)]   // plain MHA
    public void CausalAttention(int heads, int kvHeads, int dk, int dv)
    {
        var rng = new Random(6 + heads);
        int b = 2, t = 4, n = b * t;
        var q = Rand(rng, n * heads * dk); var k = Rand(rng, n * kvHeads * dk); var v = Rand(rng, n * kvHeads * dv);
        var r = Rand(rng, n * heads * dv);
        float scale = 1f / MathF.Sqrt(dk);
        double L() { var o = new float[n * heads * dv]; var a = new float[b * heads * t * t]; Attention.Forward(o, a, q, k, v, b, t, heads, kvHeads, dk, dv, scale); return Dot(o, r); }
        var o0 = new float[n * heads * dv]; var att = new float[b * heads * t * t];
        Attention.Forward(o0, att, q, k, v, b, t, heads, kvHeads, dk, dv, scale);
        var dq = new float[q.Length]; var dkk = new float[k.Length]; var dvv = new float[v.Length];
        Attention.Backward(dq, dkk, dvv, r, q, k, v, att, b, t, heads, kvHeads, dk, dv, scale);
        Check("attn.dq", q, dq, L);
        Check("attn.dk", k, dkk, L);
        Check("attn.dv", v, dvv, L);
    }

    [Fact]
    public void CrossEntropyWithMask()
    {
        var rng = new Random(7);
        int n = 5, v = 7;
        var logits = Rand(rng, n * v, 2);
        int[] targets = [2, -1, 0, 6, -1];
        var dl = new float[n]; for (int i = 0; i < n; i++) dl[i] = targets[i] >= 0 ? (float)(rng.NextDouble() + 0.5) : 0f;
        double L() { var l = new float[n]; var st = new float[2 * n]; TrainOps.CrossEntropyForward(l, st, logits, targets, n, v); return Dot(l, dl); }
        var losses = new float[n]; var stats = new float[2 * n];
        TrainOps.CrossEntropyForward(losses, stats, logits, targets, n, v);
        Assert.Equal(0f, losses[1]);
        var dlogits = new float[n * v];
        Array.Fill(dlogits, 9f); // overwritten, not accumulated
        TrainOps.CrossEntropyBackward(dlogits, dl, logits, stats, targets, n, v);
        Assert.All(dlogits.AsSpan(v, v).ToArray(), g => Assert.Equal(0f, g)); // masked row gets no gradient
        Check("xent.dlogits", logits, dlogits, L);
        var inPlace = logits.ToArray(); // the model passes its logits as dlogits: the same gradient, bit for bit
        TrainOps.CrossEntropyBackward(inPlace, dl, inPlace, stats, targets, n, v);
        Assert.Equal(dlogits, inPlace);
    }

    [Fact]
    public void MultiHeadLatentAttention()
    {
        var rng = new Random(8);
        int b = 2, t = 3, n = b * t, d = 8;
        var p = new ParameterBuffer();
        var mla = new MlaAttention(p, 0, d, heads: 2, rank: 6, nope: 4, rope: 4, vDim: 3, maxT: t);
        p.Allocate();
        Rand(rng, p.Count, 0.5f).CopyTo(p.Data, 0);
        p.W(mla.KvNorm).Fill(1f);
        var x = Rand(rng, n * d); var r = Rand(rng, n * d);
        double L() { var o = new float[n * d]; mla.Forward(o, x, b, t); return Dot(o, r); }
        var o0 = new float[n * d];
        mla.Forward(o0, x, b, t);
        var dx = new float[n * d];
        mla.Backward(dx, r);
        Check("mla.dx", x, dx, L);
        foreach (var s in p.Slices) Check("mla." + s.Name, p.Data, p.G(s), L, samples: 15, offset: s.Offset);
    }

    [Fact]
    public void MixtureOfExperts()
    {
        var rng = new Random(9);
        int n = 6, d = 8;
        var p = new ParameterBuffer();
        var moe = new MoeFeedForward(p, 1, d, experts: 4, topK: 2, inter: 5, sharedInter: 6, routeScale: 1.5f);
        p.Allocate();
        Rand(rng, p.Count, 0.5f).CopyTo(p.Data, 0);
        moe.Bias[0] = 0.3f; // a bias that changes selection must not leak into the gradient
        var x = Rand(rng, n * d); var r = Rand(rng, n * d);
        double L() { var o = new float[n * d]; moe.Forward(o, x, n); return Dot(o, r); }
        var o0 = new float[n * d];
        moe.Forward(o0, x, n);
        var dx = new float[n * d];
        moe.Backward(dx, r);
        Check("moe.dx", x, dx, L, h: 5e-4f);
        foreach (var s in p.Slices) Check("moe." + s.Name, p.Data, p.G(s), L, samples: 15, h: 5e-4f, offset: s.Offset);
    }

    [Fact]
    public void MoeBiasBalancesLoad()
    {
        var rng = new Random(10);
        int n = 64, d = 8;
        var p = new ParameterBuffer();
        var moe = new MoeFeedForward(p, 0, d, experts: 4, topK: 1, inter: 4, sharedInter: 4);
        p.Allocate();
        Rand(rng, p.Count, 0.3f).CopyTo(p.Data, 0);
        for (int j = 0; j < d; j++) p.W(moe.Router.Slice!)[j] = 2f; // expert 0 wins almost every token at the start
        var x = Rand(rng, n * d); for (int i = 0; i < n; i++) x[i * d] = Math.Abs(x[i * d]) + 0.5f;
        var o = new float[n * d];
        moe.Forward(o, x, n);
        int before = moe.Load.Max() - moe.Load.Min();
        for (int step = 0; step < 300; step++) { moe.Forward(o, x, n); moe.UpdateBias(0.01f); }
        moe.Forward(o, x, n);
        Assert.True(moe.Load.Max() - moe.Load.Min() < before / 2, $"imbalance {before} -> {moe.Load.Max() - moe.Load.Min()}");
    }

    [Fact]
    public void WholeModel()
    {
        var c = TrainConfig.Llama(vocab: 11, dim: 16, layers: 2, heads: 4, kvHeads: 2, ffn: 24, maxSeq: 8);
        var m = new TransformerModel(c, seed: 3) { Temperature = 0.8f }; // covers the GRPO logit temperature too
        var rng = new Random(11);
        Rand(rng, m.P.Count, 0.3f).CopyTo(m.P.Data, 0);
        int b = 2, t = 5;
        var tokens = Enumerable.Range(0, b * t).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, b * t).Select(i => i % 3 == 0 ? -1 : rng.Next(c.VocabSize)).ToArray();
        double L() => m.Forward(tokens, targets, b, t);
        m.Forward(tokens, targets, b, t);
        m.P.ZeroGrad();
        m.Backward(m.MeanLossWeights());
        foreach (var s in m.P.Slices) Check("model." + s.Name, m.P.Data, m.P.G(s), L, samples: 8, offset: s.Offset);
    }

    [Fact]
    public void WholeDeepSeekModel()
    {
        // One MLA + dense-SwiGLU layer, one MLA + MoE layer (shared expert, selection bias, route scale), as tiny-r1-ds.
        var c = TrainConfig.DeepSeek(vocab: 11, dim: 16, layers: 2, heads: 2, ffn: 24, maxSeq: 8,
            kvLoraRank: 8, qkNopeDim: 4, qkRopeDim: 4, vHeadDim: 6, experts: 4, expertsUsed: 2, expertFfn: 6,
            leadingDense: 1, sharedExperts: 1, routeScale: 1.5f);
        var m = new TransformerModel(c, seed: 3) { Temperature = 0.8f };
        var rng = new Random(12);
        Rand(rng, m.P.Count, 0.3f).CopyTo(m.P.Data, 0);
        int b = 2, t = 5;
        var tokens = Enumerable.Range(0, b * t).Select(_ => rng.Next(c.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, b * t).Select(i => i % 3 == 0 ? -1 : rng.Next(c.VocabSize)).ToArray();
        double L() => m.Forward(tokens, targets, b, t);
        m.Forward(tokens, targets, b, t);
        m.P.ZeroGrad();
        m.Backward(m.MeanLossWeights());
        Assert.Contains(m.P.Slices, s => s.Name == "blk.1.exp_probs_b.bias");
        // the selection bias is a parameter (saved, exported) but piecewise constant: its analytic gradient is 0
        foreach (var s in m.P.Slices) Check("ds." + s.Name, m.P.Data, m.P.G(s), L, samples: 8, h: 5e-4f, offset: s.Offset);
    }
}
