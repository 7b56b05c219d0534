using Sputnik.Gguf;
using static Sputnik.Tests.Models.TinyDeepSeek2Tests;

namespace Sputnik.Tests.Models;

/// <summary>
/// A tiny `smollm3` or `mistral3` GGUF (llama's tensors, 4 layers, head size 16 over a width of 32 for mistral3) with
/// fixed pseudo-random weights, and a textbook double-precision forward pass of the same model written from
/// llama.cpp's smollm3.cpp / mistral3.cpp: consecutive-pair RoPE; smollm3 skips it on layer 3 (every fourth layer);
/// mistral3 uses YaRN (ggml's ramp, cos/sin magnitude mscale(f, 1) / mscale(f, yarn_log_multiplier)) and multiplies Q
/// after RoPE by 1 + β·ln(⌊pos / L0⌋ + 1), L0 the original context.
/// </summary>
internal static class TinyLlamaVariant
{
    public const int Dim = 32, Layers = 4, Heads = 4, KvHeads = 2, Ffn = 48, Vocab = 40;
    public const float RopeBase = 1e5f, Eps = 1e-5f;
    public const float YarnFactor = 4f, Temperature = 0.1f;
    public const int OriginalContext = 8;

    public static int HeadDim(string arch) => arch == "mistral3" ? 16 : Dim / Heads;

    /// <param name="logMultiplier">mistral3's rope.scaling.yarn_log_multiplier (0: key absent).</param>
    public static (string Path, Weights W) WriteModel(string path, string arch, float logMultiplier = 1f, uint seed = 99)
    {
        var w = new Weights(seed);
        var g = new GgufWriter();
        string a = arch;
        int hd = HeadDim(arch);
        g.Set("general.architecture", a);
        g.Set($"{a}.embedding_length", (uint)Dim).Set($"{a}.block_count", (uint)Layers).Set($"{a}.feed_forward_length", (uint)Ffn);
        g.Set($"{a}.attention.head_count", (uint)Heads).Set($"{a}.attention.head_count_kv", (uint)KvHeads);
        g.Set($"{a}.context_length", 256u).Set($"{a}.rope.freq_base", RopeBase).Set($"{a}.attention.layer_norm_rms_epsilon", Eps);
        if (arch == "mistral3")
        {
            g.Set($"{a}.attention.key_length", (uint)hd).Set($"{a}.attention.value_length", (uint)hd).Set($"{a}.rope.dimension_count", (uint)hd);
            g.Set($"{a}.rope.scaling.type", "yarn").Set($"{a}.rope.scaling.factor", YarnFactor).Set($"{a}.rope.scaling.original_context_length", (uint)OriginalContext);
            g.Set($"{a}.attention.temperature_scale", Temperature);
            if (logMultiplier != 0f) g.Set($"{a}.rope.scaling.yarn_log_multiplier", logMultiplier);
        }
        void M(string name, params long[] dims) => g.AddTensor(name, w.Add(name, (int)dims.Aggregate(1L, (x, y) => x * y)), dims);
        void V(string name, int n) => g.AddTensor(name, w.Add(name, n, 1f), n);
        M("token_embd.weight", Dim, Vocab);
        V("output_norm.weight", Dim);
        M("output.weight", Dim, Vocab);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"blk.{l}.";
            V(p + "attn_norm.weight", Dim);
            M(p + "attn_q.weight", Dim, Heads * hd);
            M(p + "attn_k.weight", Dim, KvHeads * hd);
            M(p + "attn_v.weight", Dim, KvHeads * hd);
            M(p + "attn_output.weight", Heads * hd, Dim);
            V(p + "ffn_norm.weight", Dim);
            M(p + "ffn_gate.weight", Dim, Ffn);
            M(p + "ffn_up.weight", Dim, Ffn);
            M(p + "ffn_down.weight", Ffn, Dim);
        }
        g.Write(path);
        return (path, w);
    }

    // ---- reference -----------------------------------------------------------------------------------------

    private static double MScale(double factor, double m) => factor <= 1 ? 1 : 0.1 * m * Math.Log(factor) + 1;

    /// <summary>Logits after the last of <paramref name="tokens"/>, fed from position 0.</summary>
    public static double[] ReferenceLogits(Weights w, string arch, int[] tokens, float logMultiplier = 1f)
    {
        var r = new ReferenceDecoder(w.T, Dim, Vocab, Layers, Eps);
        int hd = HeadDim(arch);
        bool mistral = arch == "mistral3";
        // Consecutive-pair RoPE; mistral3's YaRN with cos/sin magnitude mscale(f, 1) / mscale(f, yarn_log_multiplier).
        var rope = new ReferenceRope(RopeBase, hd, Neox: false)
        {
            YarnFactor = mistral ? YarnFactor : 1, YarnOriginalContext = OriginalContext,
            Magnitude = !mistral ? 1 : logMultiplier != 0 ? MScale(YarnFactor, 1) / MScale(YarnFactor, logMultiplier) : MScale(YarnFactor, 1),
        };
        return r.Logits(tokens, (l, pos, x) =>
        {
            string p = $"blk.{l}.";
            var h = r.RmsNorm(x, p + "attn_norm.weight");
            var q = r.Linear(p + "attn_q.weight", Dim, Heads * hd, h);
            var k = r.Linear(p + "attn_k.weight", Dim, KvHeads * hd, h);
            var v = r.Linear(p + "attn_v.weight", Dim, KvHeads * hd, h);
            bool nope = arch == "smollm3" && (l + 1) % 4 == 0;
            if (!nope)
            {
                ReferenceDecoder.RopeHeads(q, Heads, hd, pos, rope);
                ReferenceDecoder.RopeHeads(k, KvHeads, hd, pos, rope);
            }
            if (mistral)
            {
                double t = 1 + Temperature * Math.Log(Math.Floor((double)pos / OriginalContext) + 1);
                for (int i = 0; i < q.Length; i++) q[i] *= t;
            }
            ReferenceDecoder.Add(x, r.Linear(p + "attn_output.weight", Heads * hd, Dim, r.Attend(l, q, k, v, Heads, KvHeads, hd)));
            ReferenceDecoder.Add(x, r.SwiGlu(p, Ffn, r.RmsNorm(x, p + "ffn_norm.weight")));
        });
    }
}
