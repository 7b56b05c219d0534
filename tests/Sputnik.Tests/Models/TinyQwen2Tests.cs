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

    private static (string Path, TinyDeepSeek2Tests.Weights W) WriteModel(string dir, bool tiedOutput)
    {
        var w = new TinyDeepSeek2Tests.Weights(12345);
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

    private static double[] ReferenceLogits(TinyDeepSeek2Tests.Weights w, int[] tokens, bool tied)
    {
        var r = new ReferenceDecoder(w.T, Dim, Vocab, Layers, Eps);
        var rope = new ReferenceRope(RopeBase, HeadDim, Neox: true);
        return r.Logits(tokens, (l, pos, x) =>
        {
            string p = $"blk.{l}.";
            var h = r.RmsNorm(x, p + "attn_norm.weight");
            var q = r.Linear(p + "attn_q.weight", Dim, Dim, h, p + "attn_q.bias");
            var k = r.Linear(p + "attn_k.weight", Dim, KvHeads * HeadDim, h, p + "attn_k.bias");
            var v = r.Linear(p + "attn_v.weight", Dim, KvHeads * HeadDim, h, p + "attn_v.bias");
            ReferenceDecoder.RopeHeads(q, Heads, HeadDim, pos, rope);
            ReferenceDecoder.RopeHeads(k, KvHeads, HeadDim, pos, rope);
            ReferenceDecoder.Add(x, r.Linear(p + "attn_output.weight", Dim, Dim, r.Attend(l, q, k, v, Heads, KvHeads, HeadDim)));
            ReferenceDecoder.Add(x, r.SwiGlu(p, Ffn, r.RmsNorm(x, p + "ffn_norm.weight")));
        }, tied: tied);
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
