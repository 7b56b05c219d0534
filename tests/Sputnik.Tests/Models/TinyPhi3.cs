using Sputnik.Gguf;
using static Sputnik.Tests.Models.TinyDeepSeek2Tests;

namespace Sputnik.Tests.Models;

/// <summary>
/// A tiny `phi3` GGUF with fixed pseudo-random weights in Phi-4-mini's layout (fused attn_qkv and ffn_up, 12 of 16
/// head dims rotated, LongRoPE factors over an original context of 32) and a textbook double-precision forward pass
/// of the same model, written from llama.cpp's phi3.cpp and ggml's NeoX RoPE: pair i of the rotated part joins dims
/// i and i + 6; its angle is pos·base^(−2i/12) / factor_i with the long factors past the original context, the short
/// ones up to it; cos and sin carry the attention factor; dims 12..15 pass unrotated.
/// </summary>
internal static class TinyPhi3
{
    public const int Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = 16, RopeDims = 12, Ffn = 48, Vocab = 40;
    public const int Context = 256, OriginalContext = 32;
    public const float RopeBase = 10000f, Eps = 1e-5f;
    public const int QDim = Heads * HeadDim, KvDim = KvHeads * HeadDim;

    public static readonly float[] LongFactors = [1f, 1.7f, 3.1f, 5.5f, 9f, 16f];
    public static readonly float[] ShortFactors = [1f, 1.02f, 1.1f, 1.25f, 1.4f, 1.6f];

    /// <summary>√(1 + ln(256/32) / ln 32), as llama.cpp's converter writes it.</summary>
    public static readonly float AttnFactor = (float)Math.Sqrt(1 + Math.Log((double)Context / OriginalContext) / Math.Log(OriginalContext));

    /// <param name="fused">false writes separate attn_q/k/v (llama.cpp accepts either) with the same weights.</param>
    public static (string Path, Weights W) WriteModel(string path, uint seed = 3131, bool fused = true)
    {
        var w = new Weights(seed);
        var g = new GgufWriter();
        const string a = "phi3";
        g.Set("general.architecture", a);
        g.Set($"{a}.embedding_length", (uint)Dim).Set($"{a}.block_count", (uint)Layers).Set($"{a}.feed_forward_length", (uint)Ffn);
        g.Set($"{a}.attention.head_count", (uint)Heads).Set($"{a}.attention.head_count_kv", (uint)KvHeads);
        g.Set($"{a}.context_length", (uint)Context).Set($"{a}.rope.freq_base", RopeBase).Set($"{a}.attention.layer_norm_rms_epsilon", Eps);
        g.Set($"{a}.rope.dimension_count", (uint)RopeDims).Set($"{a}.rope.scaling.original_context_length", (uint)OriginalContext);
        g.Set($"{a}.rope.scaling.attn_factor", AttnFactor).Set($"{a}.attention.sliding_window", 262144u);
        void M(string name, params long[] dims) => g.AddTensor(name, w.Add(name, (int)dims.Aggregate(1L, (x, y) => x * y)), dims);
        void V(string name, int n, float offset = 1f) => g.AddTensor(name, w.Add(name, n, offset), n);
        g.AddTensor("rope_factors_long.weight", LongFactors, LongFactors.Length);
        g.AddTensor("rope_factors_short.weight", ShortFactors, ShortFactors.Length);
        M("token_embd.weight", Dim, Vocab);
        V("output_norm.weight", Dim);
        M("output.weight", Dim, Vocab);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"blk.{l}.";
            V(p + "attn_norm.weight", Dim);
            var qkv = w.Add(p + "attn_qkv.weight", Dim * (QDim + 2 * KvDim));
            if (fused)
            {
                g.AddTensor(p + "attn_qkv.weight", qkv, Dim, QDim + 2 * KvDim);
            }
            else
            {
                g.AddTensor(p + "attn_q.weight", qkv[..(Dim * QDim)], Dim, QDim);
                g.AddTensor(p + "attn_k.weight", qkv[(Dim * QDim)..(Dim * (QDim + KvDim))], Dim, KvDim);
                g.AddTensor(p + "attn_v.weight", qkv[(Dim * (QDim + KvDim))..], Dim, KvDim);
            }
            M(p + "attn_output.weight", QDim, Dim);
            V(p + "ffn_norm.weight", Dim);
            M(p + "ffn_up.weight", Dim, 2 * Ffn);
            M(p + "ffn_down.weight", Ffn, Dim);
        }
        g.Write(path);
        return (path, w);
    }

    // ---- reference -----------------------------------------------------------------------------------------

    /// <summary>Logits after the last of <paramref name="tokens"/>, fed from position 0, in a context of <paramref name="contextLength"/>.</summary>
    public static double[] ReferenceLogits(Weights w, int[] tokens, int contextLength)
    {
        var r = new ReferenceDecoder(w.T, Dim, Vocab, Layers, Eps);
        // NeoX RoPE over the first RopeDims dims, each pair's angle divided by its LongRoPE factor, cos/sin × the attention factor.
        var rope = new ReferenceRope(RopeBase, RopeDims, Neox: true)
        {
            PairFactors = contextLength > OriginalContext ? LongFactors : ShortFactors, Magnitude = AttnFactor,
        };
        return r.Logits(tokens, (l, pos, x) =>
        {
            string p = $"blk.{l}.";
            var h = r.RmsNorm(x, p + "attn_norm.weight");
            // attn_qkv's rows: Q, then K, then V.
            var q = r.Linear(p + "attn_qkv.weight", Dim, QDim, h);
            var k = r.Linear(p + "attn_qkv.weight", Dim, KvDim, h, offset: Dim * QDim);
            var v = r.Linear(p + "attn_qkv.weight", Dim, KvDim, h, offset: Dim * (QDim + KvDim));
            ReferenceDecoder.RopeHeads(q, Heads, HeadDim, pos, rope);
            ReferenceDecoder.RopeHeads(k, KvHeads, HeadDim, pos, rope);
            ReferenceDecoder.Add(x, r.Linear(p + "attn_output.weight", QDim, Dim, r.Attend(l, q, k, v, Heads, KvHeads, HeadDim)));
            var h2 = r.RmsNorm(x, p + "ffn_norm.weight");
            // ffn_up's first Ffn rows are the gate, the next Ffn rows are up.
            var gate = r.Linear(p + "ffn_up.weight", Dim, Ffn, h2);
            var up = r.Linear(p + "ffn_up.weight", Dim, Ffn, h2, offset: Dim * Ffn);
            ReferenceDecoder.Add(x, r.Linear(p + "ffn_down.weight", Ffn, Dim, gate.Select((g, i) => ReferenceDecoder.Silu(g) * up[i]).ToArray()));
        });
    }
}
