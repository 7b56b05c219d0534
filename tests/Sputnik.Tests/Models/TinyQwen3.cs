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

    /// <summary>
    /// Logits after the last of <paramref name="tokens"/>, fed from position 0. Per head RMSNorm then NeoX RoPE; YaRN as
    /// ggml's rope_yarn over <see cref="YarnOriginalContext"/>, cos and sin scaled by 1 + 0.1·ln(factor).
    /// </summary>
    public static double[] ReferenceLogits(Weights w, int[] tokens, bool moe, float yarn = 1f)
    {
        var r = new ReferenceDecoder(w.T, Dim, Vocab, Layers, Eps);
        var rope = new ReferenceRope(RopeBase, HeadDim, Neox: true)
        {
            YarnFactor = yarn, YarnOriginalContext = YarnOriginalContext, Magnitude = yarn == 1f ? 1 : 1 + 0.1 * Math.Log(yarn),
        };
        return r.Logits(tokens, (l, pos, x) =>
        {
            string p = $"blk.{l}.";
            var h = r.RmsNorm(x, p + "attn_norm.weight");
            var q = r.Linear(p + "attn_q.weight", Dim, Heads * HeadDim, h);
            var k = r.Linear(p + "attn_k.weight", Dim, KvHeads * HeadDim, h);
            var v = r.Linear(p + "attn_v.weight", Dim, KvHeads * HeadDim, h);
            r.NormHeads(q, Heads, HeadDim, p + "attn_q_norm.weight");
            r.NormHeads(k, KvHeads, HeadDim, p + "attn_k_norm.weight");
            ReferenceDecoder.RopeHeads(q, Heads, HeadDim, pos, rope);
            ReferenceDecoder.RopeHeads(k, KvHeads, HeadDim, pos, rope);
            ReferenceDecoder.Add(x, r.Linear(p + "attn_output.weight", Heads * HeadDim, Dim, r.Attend(l, q, k, v, Heads, KvHeads, HeadDim)));
            var h2 = r.RmsNorm(x, p + "ffn_norm.weight");
            ReferenceDecoder.Add(x, moe ? RoutedExperts(r, p, h2) : r.SwiGlu(p, Ffn, h2));
        });
    }

    /// <summary>qwen3moe's FFN: softmax over every router logit, the top k, their weights divided by their sum.</summary>
    private static double[] RoutedExperts(ReferenceDecoder r, string p, double[] h)
    {
        var logits = r.Linear(p + "ffn_gate_inp.weight", Dim, Experts, h);
        double lmax = logits.Max();
        var probs = logits.Select(z => Math.Exp(z - lmax)).ToArray();
        double psum = probs.Sum();
        var top = Enumerable.Range(0, Experts).OrderByDescending(e => probs[e]).Take(ExpertsUsed).ToArray();
        double wsum = top.Sum(e => probs[e] / psum);
        var y = new double[Dim];
        foreach (int e in top)
        {
            var ye = r.GatedFfn(p + "ffn_gate_exps.weight", p + "ffn_up_exps.weight", p + "ffn_down_exps.weight", ExpertFfn, h, expert: e);
            for (int i = 0; i < Dim; i++) y[i] += probs[e] / psum / wsum * ye[i];
        }
        return y;
    }
}
