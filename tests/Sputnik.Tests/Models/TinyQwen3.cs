using Sputnik.Gguf;
using static Sputnik.Tests.Models.TinyDeepSeek2Tests;

namespace Sputnik.Tests.Models;

/// <summary>
/// A tiny `qwen3` / `qwen3moe` GGUF with fixed pseudo-random weights (head size 16 with 4 heads over a width of 32, so
/// heads·head ≠ width as in Qwen3-0.6B; random Q/K norm weights) and a textbook double-precision forward pass of the
/// same model, written from llama.cpp's qwen3.cpp / qwen3moe.cpp: RMSNorm each head of Q and K, then NeoX RoPE;
/// experts: softmax over all router logits, top-k, the k weights divided by their sum.
/// </summary>
internal static class TinyQwen3
{
    public const int Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 16, Ffn = 48, Vocab = 40;
    public const int Experts = 6, ExpertsUsed = 2, ExpertFfn = 24;
    public const float RopeBase = 1e6f, Eps = 1e-6f;
    public const int YarnOriginalContext = 64;

    /// <param name="yarn">rope.scaling.factor of a YaRN file (1: none), over an original context of <see cref="YarnOriginalContext"/>.</param>
    public static (string Path, Weights W) WriteModel(string path, bool moe, uint seed = 4242, float yarn = 1f)
    {
        var w = new Weights(seed);
        var g = new GgufWriter();
        string a = moe ? "qwen3moe" : "qwen3";
        g.Set("general.architecture", a);
        g.Set($"{a}.embedding_length", (uint)Dim).Set($"{a}.block_count", (uint)Layers).Set($"{a}.feed_forward_length", (uint)(moe ? ExpertFfn * ExpertsUsed : Ffn));
        g.Set($"{a}.attention.head_count", (uint)Heads).Set($"{a}.attention.head_count_kv", (uint)KvHeads);
        g.Set($"{a}.attention.key_length", (uint)HeadDim).Set($"{a}.attention.value_length", (uint)HeadDim);
        g.Set($"{a}.context_length", 256u).Set($"{a}.rope.freq_base", RopeBase).Set($"{a}.attention.layer_norm_rms_epsilon", Eps);
        if (yarn != 1f)
            g.Set($"{a}.rope.scaling.type", "yarn").Set($"{a}.rope.scaling.factor", yarn).Set($"{a}.rope.scaling.original_context_length", (uint)YarnOriginalContext);
        if (moe)
            g.Set($"{a}.expert_count", (uint)Experts).Set($"{a}.expert_used_count", (uint)ExpertsUsed).Set($"{a}.expert_feed_forward_length", (uint)ExpertFfn);
        void M(string name, params long[] dims) => g.AddTensor(name, w.Add(name, (int)dims.Aggregate(1L, (x, y) => x * y)), dims);
        void V(string name, int n, float offset = 1f) => g.AddTensor(name, w.Add(name, n, offset), n);
        M("token_embd.weight", Dim, Vocab);
        V("output_norm.weight", Dim);
        M("output.weight", Dim, Vocab);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"blk.{l}.";
            V(p + "attn_norm.weight", Dim);
            M(p + "attn_q.weight", Dim, Heads * HeadDim);
            M(p + "attn_k.weight", Dim, KvHeads * HeadDim);
            M(p + "attn_v.weight", Dim, KvHeads * HeadDim);
            V(p + "attn_q_norm.weight", HeadDim);
            V(p + "attn_k_norm.weight", HeadDim);
            M(p + "attn_output.weight", Heads * HeadDim, Dim);
            V(p + "ffn_norm.weight", Dim);
            if (moe)
            {
                // Router weights scaled up so the top-k picks are clear-cut and differ from token to token.
                g.AddTensor(p + "ffn_gate_inp.weight", w.Add(p + "ffn_gate_inp.weight", Dim * Experts, scale: 8), Dim, Experts);
                M(p + "ffn_gate_exps.weight", Dim, ExpertFfn, Experts);
                M(p + "ffn_up_exps.weight", Dim, ExpertFfn, Experts);
                M(p + "ffn_down_exps.weight", ExpertFfn, Dim, Experts);
            }
            else
            {
                M(p + "ffn_gate.weight", Dim, Ffn);
                M(p + "ffn_up.weight", Dim, Ffn);
                M(p + "ffn_down.weight", Ffn, Dim);
            }
        }
        g.Write(path);
        return (path, w);
    }

    // ---- reference -----------------------------------------------------------------------------------------

    private static double[] MatVec(float[] w, int cols, int rows, double[] x, int offset = 0)
    {
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int c = 0; c < cols; c++) s += w[offset + r * cols + c] * x[c];
            y[r] = s;
        }
        return y;
    }

    private static double[] RmsNorm(double[] x, float[] g)
    {
        double k = 1 / Math.Sqrt(x.Sum(v => v * v) / x.Length + Eps);
        return x.Select((v, i) => v * k * g[i]).ToArray();
    }

    /// <summary>
    /// Per-head RMSNorm then NeoX RoPE of head h of v. YaRN as ggml's rope_yarn: pair i's angle blends θ/factor and θ
    /// with a ramp over the pairs whose wavelength falls between the original context/β_fast (32) and /β_slow (1);
    /// cos and sin are scaled by 1 + 0.1·ln(factor).
    /// </summary>
    private static void NormRope(double[] v, int h, float[] norm, int pos, float yarn)
    {
        var head = RmsNorm(v.Skip(h * HeadDim).Take(HeadDim).ToArray(), norm);
        int half = HeadDim / 2;
        double Corr(double beta) => HeadDim * Math.Log(YarnOriginalContext / (beta * 2 * Math.PI)) / (2 * Math.Log(RopeBase));
        double low = Math.Max(0, Math.Floor(Corr(32))), high = Math.Min(HeadDim - 1, Math.Ceiling(Corr(1)));
        double m = yarn == 1f ? 1 : 1 + 0.1 * Math.Log(yarn);
        for (int i = 0; i < half; i++)
        {
            double theta = pos * Math.Pow(RopeBase, -2.0 * i / HeadDim);
            if (yarn != 1f)
            {
                double ramp = 1 - Math.Clamp((i - low) / Math.Max(0.001, high - low), 0, 1);
                theta = theta / yarn * (1 - ramp) + theta * ramp;
            }
            double a = head[i], b = head[i + half], cos = Math.Cos(theta) * m, sin = Math.Sin(theta) * m;
            v[h * HeadDim + i] = a * cos - b * sin;
            v[h * HeadDim + i + half] = a * sin + b * cos;
        }
    }

    private static double[] SwiGlu(float[] gate, float[] up, float[] down, int ffn, double[] x, int expert = 0)
    {
        var gv = MatVec(gate, Dim, ffn, x, expert * ffn * Dim);
        var uv = MatVec(up, Dim, ffn, x, expert * ffn * Dim);
        var act = gv.Select((v, i) => v / (1 + Math.Exp(-v)) * uv[i]).ToArray();
        return MatVec(down, ffn, Dim, act, expert * Dim * ffn);
    }

    /// <summary>Logits after the last of <paramref name="tokens"/>, fed from position 0.</summary>
    public static double[] ReferenceLogits(Weights w, int[] tokens, bool moe, float yarn = 1f)
    {
        var T = w.T;
        var keys = new List<double[]>[Layers];
        var values = new List<double[]>[Layers];
        for (int l = 0; l < Layers; l++) { keys[l] = []; values[l] = []; }
        double[] x = [];
        for (int pos = 0; pos < tokens.Length; pos++)
        {
            x = T["token_embd.weight"].Skip(tokens[pos] * Dim).Take(Dim).Select(v => (double)v).ToArray();
            for (int l = 0; l < Layers; l++)
            {
                string p = $"blk.{l}.";
                var h = RmsNorm(x, T[p + "attn_norm.weight"]);
                var q = MatVec(T[p + "attn_q.weight"], Dim, Heads * HeadDim, h);
                var k = MatVec(T[p + "attn_k.weight"], Dim, KvHeads * HeadDim, h);
                var v = MatVec(T[p + "attn_v.weight"], Dim, KvHeads * HeadDim, h);
                for (int hh = 0; hh < Heads; hh++) NormRope(q, hh, T[p + "attn_q_norm.weight"], pos, yarn);
                for (int hh = 0; hh < KvHeads; hh++) NormRope(k, hh, T[p + "attn_k_norm.weight"], pos, yarn);
                keys[l].Add(k);
                values[l].Add(v);
                var att = ReferenceAttention.Grouped(q, keys[l], values[l], Heads, KvHeads, HeadDim);
                var o = MatVec(T[p + "attn_output.weight"], Heads * HeadDim, Dim, att);
                for (int i = 0; i < Dim; i++) x[i] += o[i];
                var h2 = RmsNorm(x, T[p + "ffn_norm.weight"]);
                double[] ffn;
                if (!moe)
                {
                    ffn = SwiGlu(T[p + "ffn_gate.weight"], T[p + "ffn_up.weight"], T[p + "ffn_down.weight"], Ffn, h2);
                }
                else
                {
                    var logits = MatVec(T[p + "ffn_gate_inp.weight"], Dim, Experts, h2);
                    double lmax = logits.Max();
                    var probs = logits.Select(z => Math.Exp(z - lmax)).ToArray();
                    double psum = probs.Sum();
                    var top = Enumerable.Range(0, Experts).OrderByDescending(e => probs[e]).Take(ExpertsUsed).ToArray();
                    double wsum = top.Sum(e => probs[e] / psum);
                    ffn = new double[Dim];
                    foreach (int e in top)
                    {
                        var y = SwiGlu(T[p + "ffn_gate_exps.weight"], T[p + "ffn_up_exps.weight"], T[p + "ffn_down_exps.weight"], ExpertFfn, h2, e);
                        for (int i = 0; i < Dim; i++) ffn[i] += probs[e] / psum / wsum * y[i];
                    }
                }
                for (int i = 0; i < Dim; i++) x[i] += ffn[i];
            }
        }
        return MatVec(T["output.weight"], Dim, Vocab, RmsNorm(x, T["output_norm.weight"]));
    }
}
