using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// A tiny qwen2 model written by our own GGUF writer with fixed pseudo-random weights, run through the engine
/// and through a plain double-precision forward pass written out in this test.
/// </summary>
public class TinyQwen2Tests
{
    private const int Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, HeadDim = Dim / Heads, Ffn = 48, Vocab = 40;
    private const float RopeBase = 1e6f, Eps = 1e-6f;

    private sealed class Weights
    {
        public readonly Dictionary<string, float[]> T = [];
        private uint _state = 12345;

        private float Next() { _state = _state * 1664525 + 1013904223; return ((_state >> 8) / (float)(1 << 24) - 0.5f) * 0.4f; }

        public float[] Add(string name, int n, float offset = 0)
        {
            var a = new float[n];
            for (int i = 0; i < n; i++) a[i] = Next() + offset;
            T[name] = a;
            return a;
        }
    }

    private static (string Path, Weights W) WriteModel(string dir, bool tiedOutput)
    {
        var w = new Weights();
        var gw = new GgufWriter();
        gw.Set("general.architecture", "qwen2");
        gw.Set("qwen2.embedding_length", (uint)Dim).Set("qwen2.block_count", (uint)Layers).Set("qwen2.feed_forward_length", (uint)Ffn);
        gw.Set("qwen2.attention.head_count", (uint)Heads).Set("qwen2.attention.head_count_kv", (uint)KvHeads);
        gw.Set("qwen2.context_length", 128u).Set("qwen2.rope.freq_base", RopeBase).Set("qwen2.attention.layer_norm_rms_epsilon", Eps);
        void M(string name, int cols, int rows) => gw.AddTensor(name, w.Add(name, cols * rows), cols, rows);
        void V(string name, int n, float offset = 0) => gw.AddTensor(name, w.Add(name, n, offset), n);
        M("token_embd.weight", Dim, Vocab);
        V("output_norm.weight", Dim, 1f);
        if (!tiedOutput) M("output.weight", Dim, Vocab);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"blk.{l}.";
            V(p + "attn_norm.weight", Dim, 1f);
            M(p + "attn_q.weight", Dim, Dim); V(p + "attn_q.bias", Dim);
            M(p + "attn_k.weight", Dim, KvHeads * HeadDim); V(p + "attn_k.bias", KvHeads * HeadDim);
            M(p + "attn_v.weight", Dim, KvHeads * HeadDim); V(p + "attn_v.bias", KvHeads * HeadDim);
            M(p + "attn_output.weight", Dim, Dim);
            V(p + "ffn_norm.weight", Dim, 1f);
            M(p + "ffn_gate.weight", Dim, Ffn);
            M(p + "ffn_up.weight", Dim, Ffn);
            M(p + "ffn_down.weight", Ffn, Dim);
        }
        string path = Path.Combine(dir, tiedOutput ? "tiny-tied.gguf" : "tiny.gguf");
        gw.Write(path);
        return (path, w);
    }

    // ---- reference: the textbook forward pass in doubles -------------------------------------------

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
        double ss = x.Sum(v => v * v) / x.Length;
        double k = 1 / Math.Sqrt(ss + Eps);
        return x.Select((v, i) => v * k * g[i]).ToArray();
    }

    private static void RopeNeox(double[] v, int offset, int pos)
    {
        int half = HeadDim / 2;
        for (int i = 0; i < half; i++)
        {
            double theta = pos * Math.Pow(RopeBase, -2.0 * i / HeadDim);
            double a = v[offset + i], b = v[offset + i + half];
            v[offset + i] = a * Math.Cos(theta) - b * Math.Sin(theta);
            v[offset + i + half] = a * Math.Sin(theta) + b * Math.Cos(theta);
        }
    }

    private static double[] ReferenceLogits(Weights w, int[] tokens, bool tied)
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
                var q = MatVec(T[p + "attn_q.weight"], Dim, Dim, h).Select((v, i) => v + T[p + "attn_q.bias"][i]).ToArray();
                var k = MatVec(T[p + "attn_k.weight"], Dim, KvHeads * HeadDim, h).Select((v, i) => v + T[p + "attn_k.bias"][i]).ToArray();
                var v = MatVec(T[p + "attn_v.weight"], Dim, KvHeads * HeadDim, h).Select((v, i) => v + T[p + "attn_v.bias"][i]).ToArray();
                for (int hh = 0; hh < Heads; hh++) RopeNeox(q, hh * HeadDim, pos);
                for (int hh = 0; hh < KvHeads; hh++) RopeNeox(k, hh * HeadDim, pos);
                keys[l].Add(k);
                values[l].Add(v);
                var att = ReferenceAttention.Grouped(q, keys[l], values[l], Heads, KvHeads, HeadDim);
                var o = MatVec(T[p + "attn_output.weight"], Dim, Dim, att);
                for (int i = 0; i < Dim; i++) x[i] += o[i];
                var h2 = RmsNorm(x, T[p + "ffn_norm.weight"]);
                var g = MatVec(T[p + "ffn_gate.weight"], Dim, Ffn, h2);
                var u = MatVec(T[p + "ffn_up.weight"], Dim, Ffn, h2);
                var act = g.Select((gv, i) => gv / (1 + Math.Exp(-gv)) * u[i]).ToArray();
                var d = MatVec(T[p + "ffn_down.weight"], Ffn, Dim, act);
                for (int i = 0; i < Dim; i++) x[i] += d[i];
            }
        }
        var final = RmsNorm(x, T["output_norm.weight"]);
        return MatVec(tied ? T["token_embd.weight"] : T["output.weight"], Dim, Vocab, final);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Engine_logits_match_a_plain_scalar_forward_pass(bool tiedOutput)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-qwen2-");
        try
        {
            var (path, w) = WriteModel(dir.FullName, tiedOutput);
            int[] tokens = [3, 17, 5, 39, 0, 22, 8];
            using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
            Assert.True(model.Config.RopeNeox);
            var state = model.CreateState(64, KvCacheType.F32);
            // Feed one at a time and check every position's logits, then the whole prompt at once.
            for (int n = 1; n <= tokens.Length; n++)
            {
                var got = model.Forward(state, tokens.AsSpan(n - 1, 1)).ToArray();
                var want = ReferenceLogits(w, tokens[..n], tiedOutput);
                for (int i = 0; i < Vocab; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-4, $"pos {n - 1} logit {i}: {got[i]} vs {want[i]}");
            }
            var batch = model.Forward(model.CreateState(64, KvCacheType.F32), tokens).ToArray();
            var full = ReferenceLogits(w, tokens, tiedOutput);
            for (int i = 0; i < Vocab; i++) Assert.True(Math.Abs(batch[i] - full[i]) < 1e-4, $"batched logit {i}: {batch[i]} vs {full[i]}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
