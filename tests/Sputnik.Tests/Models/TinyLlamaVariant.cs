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

    private static double MScale(double factor, double m) => factor <= 1 ? 1 : 0.1 * m * Math.Log(factor) + 1;

    /// <summary>Consecutive-pair RoPE of head h of v at pos, with mistral3's YaRN when <paramref name="yarn"/>.</summary>
    private static void Rope(double[] v, int h, int hd, int pos, bool yarn, float logMultiplier)
    {
        double Corr(double beta) => hd * Math.Log(OriginalContext / (beta * 2 * Math.PI)) / (2 * Math.Log(RopeBase));
        double low = Math.Max(0, Math.Floor(Corr(32))), high = Math.Min(hd - 1, Math.Ceiling(Corr(1)));
        double m = !yarn ? 1 : logMultiplier != 0 ? MScale(YarnFactor, 1) / MScale(YarnFactor, logMultiplier) : MScale(YarnFactor, 1);
        for (int i = 0; i < hd / 2; i++)
        {
            double theta = pos * Math.Pow(RopeBase, -2.0 * i / hd);
            if (yarn)
            {
                double ramp = 1 - Math.Clamp((i - low) / Math.Max(0.001, high - low), 0, 1);
                theta = theta / YarnFactor * (1 - ramp) + theta * ramp;
            }
            int j = h * hd + 2 * i;
            double a = v[j], b = v[j + 1], cos = Math.Cos(theta) * m, sin = Math.Sin(theta) * m;
            v[j] = a * cos - b * sin;
            v[j + 1] = a * sin + b * cos;
        }
    }

    /// <summary>Logits after the last of <paramref name="tokens"/>, fed from position 0.</summary>
    public static double[] ReferenceLogits(Weights w, string arch, int[] tokens, float logMultiplier = 1f)
    {
        var T = w.T;
        int hd = HeadDim(arch);
        bool mistral = arch == "mistral3";
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
                var q = MatVec(T[p + "attn_q.weight"], Dim, Heads * hd, h);
                var k = MatVec(T[p + "attn_k.weight"], Dim, KvHeads * hd, h);
                var v = MatVec(T[p + "attn_v.weight"], Dim, KvHeads * hd, h);
                bool nope = arch == "smollm3" && (l + 1) % 4 == 0;
                if (!nope)
                {
                    for (int hh = 0; hh < Heads; hh++) Rope(q, hh, hd, pos, mistral, logMultiplier);
                    for (int hh = 0; hh < KvHeads; hh++) Rope(k, hh, hd, pos, mistral, logMultiplier);
                }
                if (mistral)
                {
                    double t = 1 + Temperature * Math.Log(Math.Floor((double)pos / OriginalContext) + 1);
                    for (int i = 0; i < q.Length; i++) q[i] *= t;
                }
                keys[l].Add(k);
                values[l].Add(v);
                var att = ReferenceAttention.Grouped(q, keys[l], values[l], Heads, KvHeads, hd);
                var o = MatVec(T[p + "attn_output.weight"], Heads * hd, Dim, att);
                for (int i = 0; i < Dim; i++) x[i] += o[i];
                var h2 = RmsNorm(x, T[p + "ffn_norm.weight"]);
                var gv = MatVec(T[p + "ffn_gate.weight"], Dim, Ffn, h2);
                var uv = MatVec(T[p + "ffn_up.weight"], Dim, Ffn, h2);
                var act = gv.Select((g, i) => g / (1 + Math.Exp(-g)) * uv[i]).ToArray();
                var ffn = MatVec(T[p + "ffn_down.weight"], Ffn, Dim, act);
                for (int i = 0; i < Dim; i++) x[i] += ffn[i];
            }
        }
        return MatVec(T["output.weight"], Dim, Vocab, RmsNorm(x, T["output_norm.weight"]));
    }
}
