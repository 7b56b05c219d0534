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

    private static double[] MatVec(float[] w, int cols, int rows, double[] x)
    {
        var y = new double[rows];
        for (int r = 0; r < rows; r++)
        {
            double s = 0;
            for (int c = 0; c < cols; c++) s += w[r * cols + c] * x[c];
            y[r] = s;
        }
        return y;
    }

    private static double[] RmsNorm(double[] x, float[] g)
    {
        double k = 1 / Math.Sqrt(x.Sum(v => v * v) / x.Length + Eps);
        return x.Select((v, i) => v * k * g[i]).ToArray();
    }

    private static void NormRope(double[] v, int h, float[] norm, int pos, bool local)
    {
        var head = RmsNorm(v.Skip(h * HeadDim).Take(HeadDim).ToArray(), norm);
        int half = HeadDim / 2;
        for (int i = 0; i < half; i++)
        {
            double theta = local ? pos * Math.Pow(RopeBaseLocal, -2.0 * i / HeadDim) : pos * Math.Pow(RopeBase, -2.0 * i / HeadDim) / RopeFactor;
            double a = head[i], b = head[i + half], cos = Math.Cos(theta), sin = Math.Sin(theta);
            v[h * HeadDim + i] = a * cos - b * sin;
            v[h * HeadDim + i + half] = a * sin + b * cos;
        }
    }

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
        var T = w.T;
        var keys = new List<double[]>[Layers];
        var values = new List<double[]>[Layers];
        for (int l = 0; l < Layers; l++) { keys[l] = []; values[l] = []; }
        double[] x = [];
        for (int pos = 0; pos < tokens.Length; pos++)
        {
            x = T["token_embd.weight"].Skip(tokens[pos] * Dim).Take(Dim).Select(v => v * Math.Sqrt(Dim)).ToArray();
            for (int l = 0; l < Layers; l++)
            {
                string p = $"blk.{l}.";
                bool local = IsLocal(l, allLocal);
                var h = RmsNorm(x, T[p + "attn_norm.weight"]);
                var q = MatVec(T[p + "attn_q.weight"], Dim, Heads * HeadDim, h);
                var k = MatVec(T[p + "attn_k.weight"], Dim, KvHeads * HeadDim, h);
                var v = MatVec(T[p + "attn_v.weight"], Dim, KvHeads * HeadDim, h);
                for (int hh = 0; hh < Heads; hh++) NormRope(q, hh, T[p + "attn_q_norm.weight"], pos, local);
                for (int hh = 0; hh < KvHeads; hh++) NormRope(k, hh, T[p + "attn_k_norm.weight"], pos, local);
                keys[l].Add(k);
                values[l].Add(v);
                int first = local ? Math.Max(0, pos - Window + 1) : 0; // llama.cpp masks p0 when p − p0 ≥ window
                var att = ReferenceAttention.Grouped(q, keys[l].GetRange(first, pos + 1 - first), values[l].GetRange(first, pos + 1 - first), Heads, KvHeads, HeadDim);
                var o = RmsNorm(MatVec(T[p + "attn_output.weight"], Heads * HeadDim, Dim, att), T[p + "post_attention_norm.weight"]);
                for (int i = 0; i < Dim; i++) x[i] += o[i];
                var h2 = RmsNorm(x, T[p + "ffn_norm.weight"]);
                var gate = MatVec(T[p + "ffn_gate.weight"], Dim, Ffn, h2);
                var up = MatVec(T[p + "ffn_up.weight"], Dim, Ffn, h2);
                var act = gate.Select((g, i) => Gelu(g) * up[i]).ToArray();
                var f = RmsNorm(MatVec(T[p + "ffn_down.weight"], Ffn, Dim, act), T[p + "post_ffw_norm.weight"]);
                for (int i = 0; i < Dim; i++) x[i] += f[i];
            }
        }
        var logits = MatVec(T["output.weight"], Dim, Vocab, RmsNorm(x, T["output_norm.weight"]));
        return softcap > 0 ? logits.Select(z => softcap * Math.Tanh(z / softcap)).ToArray() : logits;
    }
}
