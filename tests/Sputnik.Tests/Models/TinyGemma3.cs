using Sputnik.Gguf;
using static Sputnik.Tests.Models.TinyDeepSeek2Tests;

namespace Sputnik.Tests.Models;

/// <summary>
/// A tiny `gemma3` GGUF with fixed pseudo-random weights (head size 16 with 4 heads over a width of 32; layer 0 local
/// with a 4-token window, layer 1 global; random norm weights) and a textbook double-precision forward pass of the
/// same model, written from llama.cpp's gemma3.cpp: embeddings × √width; per layer x += postnorm(attn(norm(x))),
/// x += postnorm(GeGLU(norm(x))); per-head Q/K RMSNorm then NeoX RoPE, the local layer with base 10000 and no
/// scaling, the global one with rope.freq_base and linear ×<see cref="RopeFactor"/>; the local layer sees positions
/// p − window + 1 … p. GELU is ggml's: tanh approximation on the input rounded to half, the result rounded to half.
/// </summary>
internal static class TinyGemma3
{
    public const int Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 16, Ffn = 48, Vocab = 40, Window = 4;
    public const float RopeBase = 1e6f, RopeBaseLocal = 10000f, RopeFactor = 4f, Eps = 1e-6f;

    /// <summary>sliding_window_pattern 2 (layer 0 local, layer 1 global), or 0: every layer local.</summary>
    public static bool IsLocal(int layer, bool allLocal) => allLocal || layer % 2 == 0;

    public static (string Path, Weights W) WriteModel(string path, float softcap = 0f, bool allLocal = false, uint seed = 4343)
    {
        var w = new Weights(seed);
        var g = new GgufWriter();
        const string a = "gemma3";
        g.Set("general.architecture", a);
        g.Set($"{a}.embedding_length", (uint)Dim).Set($"{a}.block_count", (uint)Layers).Set($"{a}.feed_forward_length", (uint)Ffn);
        g.Set($"{a}.attention.head_count", (uint)Heads).Set($"{a}.attention.head_count_kv", (uint)KvHeads);
        g.Set($"{a}.attention.key_length", (uint)HeadDim).Set($"{a}.attention.value_length", (uint)HeadDim);
        g.Set($"{a}.context_length", 256u).Set($"{a}.rope.freq_base", RopeBase).Set($"{a}.attention.layer_norm_rms_epsilon", Eps);
        g.Set($"{a}.rope.scaling.type", "linear").Set($"{a}.rope.scaling.factor", RopeFactor);
        g.Set($"{a}.attention.sliding_window", (uint)Window).Set($"{a}.attention.sliding_window_pattern", allLocal ? 0u : 2u);
        if (softcap > 0) g.Set($"{a}.final_logit_softcapping", softcap);
        void M(string name, params long[] dims) => g.AddTensor(name, w.Add(name, (int)dims.Aggregate(1L, (x, y) => x * y)), dims);
        void V(string name, int n) => g.AddTensor(name, w.Add(name, n, offset: 1f), n);
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
            V(p + "post_attention_norm.weight", Dim);
            V(p + "ffn_norm.weight", Dim);
            M(p + "ffn_gate.weight", Dim, Ffn);
            M(p + "ffn_up.weight", Dim, Ffn);
            M(p + "ffn_down.weight", Ffn, Dim);
            V(p + "post_ffw_norm.weight", Dim);
        }
        g.Write(path);
        return (path, w);
    }

    // ---- reference -----------------------------------------------------------------------------------------

    /// <summary>ggml's GELU: tanh approximation of the input rounded to half, the result rounded to half; 0 / x beyond ±10.</summary>
    public static double Gelu(double x)
    {
        if (x <= -10) return 0;
        if (x >= 10) return x;
        double h = (double)(Half)x;
        return (double)(Half)(0.5 * h * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * h * (1 + 0.044715 * h * h))));
    }

    /// <summary>Logits after the last of <paramref name="tokens"/>, fed from position 0.</summary>
    public static double[] ReferenceLogits(Weights w, int[] tokens, float softcap = 0f, bool allLocal = false)
    {
        var r = new ReferenceDecoder(w.T, Dim, Vocab, Layers, Eps);
        var globalRope = new ReferenceRope(RopeBase, HeadDim, Neox: true) { LinearFactor = RopeFactor };
        var localRope = new ReferenceRope(RopeBaseLocal, HeadDim, Neox: true);
        var logits = r.Logits(tokens, (l, pos, x) =>
        {
            string p = $"blk.{l}.";
            bool local = IsLocal(l, allLocal);
            var h = r.RmsNorm(x, p + "attn_norm.weight");
            var q = r.Linear(p + "attn_q.weight", Dim, Heads * HeadDim, h);
            var k = r.Linear(p + "attn_k.weight", Dim, KvHeads * HeadDim, h);
            var v = r.Linear(p + "attn_v.weight", Dim, KvHeads * HeadDim, h);
            r.NormHeads(q, Heads, HeadDim, p + "attn_q_norm.weight");
            r.NormHeads(k, KvHeads, HeadDim, p + "attn_k_norm.weight");
            ReferenceDecoder.RopeHeads(q, Heads, HeadDim, pos, local ? localRope : globalRope);
            ReferenceDecoder.RopeHeads(k, KvHeads, HeadDim, pos, local ? localRope : globalRope);
            // llama.cpp masks p0 when p − p0 ≥ window: a local layer sees the last Window positions.
            var att = r.Attend(l, q, k, v, Heads, KvHeads, HeadDim, window: local ? Window : 0);
            ReferenceDecoder.Add(x, r.RmsNorm(r.Linear(p + "attn_output.weight", Heads * HeadDim, Dim, att), p + "post_attention_norm.weight"));
            var h2 = r.RmsNorm(x, p + "ffn_norm.weight");
            var ffn = r.GatedFfn(p + "ffn_gate.weight", p + "ffn_up.weight", p + "ffn_down.weight", Ffn, h2, Gelu);
            ReferenceDecoder.Add(x, r.RmsNorm(ffn, p + "post_ffw_norm.weight"));
        }, embedScale: Math.Sqrt(Dim));
        return softcap > 0 ? logits.Select(z => softcap * Math.Tanh(z / softcap)).ToArray() : logits;
    }
}
