using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tokenizers;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// `gpt-oss`: presets in the real shapes, a synthetic file with MXFP4 experts that loads and runs the same batched and
/// token by token (prompts longer than its window), `quantize` to and from MXFP4, the routing and activation blocks it
/// adds, and its harmony chat setup. Agreement with llama.cpp is bench/check-llamacpp.sh's (ONLY=gptoss).
/// </summary>
public class GptOssTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sputnik-gptoss-");

    public void Dispose()
    {
        _dir.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }

    private string Write(string preset = "gpt-oss-tiny", FileType type = FileType.AllF32)
    {
        string path = Path.Combine(_dir.FullName, $"{preset}-{type}.gguf");
        SyntheticModel.Write(path, new SynthOptions { Preset = SyntheticModel.FindPreset(preset), FileType = type, Seed = 5, Threads = 2, Sigma = 0.1f });
        return path;
    }

    [Fact]
    public void Presets_have_the_real_models_shapes()
    {
        var p = SyntheticModel.FindPreset("gpt-oss-20b"); // openai/gpt-oss-20b config.json
        var c = p.Config;
        Assert.Equal(("gpt-oss", 2880, 24, 64, 8, 64, 201088), (p.Arch, c.Dim, c.Layers, c.Heads, c.KvHeads, c.HeadDim, c.VocabSize));
        Assert.Equal((32, 4, 2880, ExpertGating.SoftmaxWeight), (c.Moe!.ExpertCount, c.Moe.ExpertsUsed, c.ExpertFfnDim, c.Moe.Gating));
        Assert.Equal((150000f, true, 32f, 4096), (c.RopeBase, c.RopeYarn, c.RopeScalingFactor, c.RopeOriginalContext));
        var extra = (GptOss.Params)c.ArchParams!;
        Assert.Equal(128, extra.SlidingWindow);
        Assert.Equal(Enumerable.Range(0, 24).Select(l => l % 2 == 0), extra.SlidingLayers);
        Assert.Equal(128, SyntheticModel.FindPreset("gpt-oss-120b").Config.Moe!.ExpertCount);
    }

    [Fact]
    public void Tiny_file_has_mxfp4_experts_biases_and_sinks_and_reads_back_its_config()
    {
        string path = Write();
        using var f = GgufFile.Open(path);
        Assert.Equal(GgmlType.MXFP4, f.GetTensor("blk.0.ffn_gate_exps.weight").Type);
        Assert.Equal(GgmlType.MXFP4, f.GetTensor("blk.3.ffn_down_exps.weight").Type);
        Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.attn_q.weight").Type);
        Assert.Equal([128L, 8L], f.GetTensor("blk.1.ffn_up_exps.bias").Dims);
        Assert.Equal([4L], f.GetTensor("blk.2.attn_sinks.weight").Dims);
        Assert.NotNull(f.FindTensor("blk.2.attn_output.bias"));
        Assert.True(f.TryGetInt64("gpt-oss.attention.sliding_window", out long w) && w == 16);
        Assert.Equal(SyntheticModel.FindPreset("gpt-oss-tiny").Config with { VocabSize = 1000 }, GptOss.Config(f));
    }

    private static float[] Logits(string path, int[] tokens, bool oneByOne)
    {
        using var m = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        var s = m.CreateState(128, KvCacheType.F32);
        if (!oneByOne) return m.Forward(s, tokens).ToArray();
        float[] last = [];
        for (int i = 0; i < tokens.Length; i++) last = m.Forward(s, tokens.AsSpan(i, 1)).ToArray();
        return last;
    }

    [Fact]
    public void A_prompt_longer_than_the_window_gives_the_same_logits_batched_and_token_by_token()
    {
        string path = Write();
        int[] prompt = Enumerable.Range(0, 40).Select(i => 3 + i * 17 % 900).ToArray();
        float[] batched = Logits(path, prompt, oneByOne: false), single = Logits(path, prompt, oneByOne: true);
        Assert.All(batched, v => Assert.True(float.IsFinite(v)));
        double spread = batched.Max() - batched.Min();
        Assert.True(spread > 0.1, $"logits barely vary ({spread})");
        for (int i = 0; i < batched.Length; i++)
            Assert.True(Math.Abs(batched[i] - single[i]) <= 1e-3 * spread, $"logit {i}: batched {batched[i]} vs one by one {single[i]}");
    }

    [Fact]
    public void Window_layers_keep_a_ring_and_decode_the_bits_of_a_whole_cache()
    {
        // Batches of at most 4: the 16-token-window layers keep rings of 16 + 3 rows, the global ones the context;
        // token by token over 60 positions (the rings wrap three times) the logits equal a state sized to hold every
        // position (MaxBatch 512 makes its rings longer than the context, so none is made).
        string path = Write();
        int[] prompt = Enumerable.Range(0, 60).Select(i => 3 + i * 29 % 900).ToArray();
        using var m = (DecoderModel)ModelLoader.Load(GgufFile.Open(path), threads: 2);
        var whole = (DecoderState)m.CreateState(128, KvCacheType.F32);
        m.MaxBatch = 4;
        var ring = (DecoderState)m.CreateState(128, KvCacheType.F32);
        var windows = m.LayerWindows!;
        for (int l = 0; l < windows.Length; l++)
        {
            Assert.Equal(windows[l] > 0 ? windows[l] + 3 : 128, ring.Cache.LayerRows(l));
            Assert.Equal(128, whole.Cache.LayerRows(l));
        }
        Assert.Contains(windows, w => w > 0);
        for (int i = 0; i < prompt.Length; i++)
        {
            var a = m.Forward(whole, prompt.AsSpan(i, 1)).ToArray();
            var b = m.Forward(ring, prompt.AsSpan(i, 1)).ToArray();
            Assert.True(a.AsSpan().SequenceEqual(b), $"position {i}: the ring's logits differ");
        }
    }

    [Fact]
    public void Quantize_to_mxfp4_moe_and_back_to_f32()
    {
        string f32 = Write();
        string mx = Path.Combine(_dir.FullName, "mxfp4.gguf"), back = Path.Combine(_dir.FullName, "back.gguf");
        GgufQuantizer.Quantize(f32, mx, FileType.Mxfp4Moe, threads: 2);
        GgufQuantizer.Quantize(mx, back, FileType.AllF32, threads: 2);
        using (var m = GgufFile.Open(mx))
        using (var b = GgufFile.Open(back))
        using (var src = GgufFile.Open(f32))
        {
            Assert.Equal(GgmlType.MXFP4, m.GetTensor("blk.1.ffn_up_exps.weight").Type);
            Assert.Equal(GgmlType.Q8_0, m.GetTensor("blk.1.attn_k.weight").Type);
            Assert.Equal(GgmlType.Q8_0, m.GetTensor("output.weight").Type);
            Assert.Equal(GgmlType.F32, m.GetTensor("blk.1.ffn_gate_inp.weight").Type);
            Assert.Equal(GgmlType.F32, m.GetTensor("blk.1.attn_sinks.weight").Type);
            // The experts were MXFP4 already: dequantized back to F32 they are exactly the source's decoded values.
            var t = src.GetTensor("blk.1.ffn_up_exps.weight");
            var bt = b.GetTensor("blk.1.ffn_up_exps.weight");
            Assert.Equal(GgmlType.F32, bt.Type);
            int cols = (int)t.Columns;
            var want = new float[cols];
            var got = new float[cols];
            long rowBytes = GgmlTypeInfo.RowBytes(t.Type, cols);
            for (int r = 0; r < 16; r++)
            {
                Dequant.Row(GgmlType.MXFP4, src.GetData(t).Slice((int)(r * rowBytes), (int)rowBytes), want);
                Dequant.Row(GgmlType.F32, b.GetData(bt).Slice(r * cols * 4, cols * 4), got);
                Assert.Equal(want, got);
            }
        }
        int[] prompt = [5, 9, 77, 300, 12, 640, 18, 2, 33, 91, 400, 7, 8, 150, 260, 31, 4, 500];
        float[] a = Logits(f32, prompt, false), q = Logits(mx, prompt, false);
        double spread = a.Max() - a.Min(), err = a.Zip(q, (x, y) => Math.Abs(x - y)).Max();
        // Random σ 0.1 weights amplify rounding (measured 12% of the spread here; gemma3's Q4_K_M test allows 25%).
        Assert.True(err < 0.25 * spread, $"MXFP4_MOE max error {err} against logit spread {spread}");
    }

    [Fact]
    public void Routing_takes_the_top_k_logits_then_a_softmax_over_them()
    {
        var router = new MoeRouter(GptOss.Routing with { ExpertCount = 5, ExpertsUsed = 2 });
        var experts = new int[2];
        var weights = new float[2];
        router.Route([1f, 5f, 3f, 4f, -2f], default, experts, weights);
        Assert.Equal([1, 3], experts);
        double e = Math.Exp(-1);
        Assert.Equal(1 / (1 + e), weights[0], 1e-6);
        Assert.Equal(e / (1 + e), weights[1], 1e-6);
    }

    [Fact]
    public void Clamped_swiglu_matches_its_formula()
    {
        float[] gate = [-9f, -1f, 0f, 0.5f, 3f, 7f, 12f];
        float[] up = [-10f, -0.5f, 2f, 1f, 8f, -7.5f, 0.25f];
        var got = (float[])gate.Clone();
        Ops.SwiGluOai(got, up, GptOss.SwiGluAlpha, GptOss.SwiGluLimit);
        for (int i = 0; i < gate.Length; i++)
        {
            double x = Math.Min(gate[i], 7.0), y = Math.Clamp(up[i], -7.0, 7.0);
            double want = x / (1 + Math.Exp(-1.702 * x)) * (y + 1);
            Assert.True(Math.Abs(got[i] - want) <= 1e-5 * (1 + Math.Abs(want)), $"[{i}] {got[i]} vs {want}");
        }
    }

    [Fact]
    public void Chat_setup_is_harmony()
    {
        using var f = GgufFile.Open(Write());
        var tok = Tokenizer.Create(TokenizerData.FromGguf(f));
        var builder = new ChatPromptBuilder(tok, f.GetStringOrNull("tokenizer.chat_template"));
        Assert.Equal(ThinkTags.Harmony, builder.Tags);
        Assert.True(builder.SupportsThinking);
        // <|return|> and <|call|> end a reply; <|end|> only ends a message (the analysis goes on to final).
        Assert.True(tok.IsEndOfGeneration(tok.FindToken("<|return|>")!.Value));
        Assert.True(tok.IsEndOfGeneration(tok.FindToken("<|call|>")!.Value));
        Assert.False(tok.IsEndOfGeneration(tok.FindToken("<|end|>")!.Value));
        ChatMessage[] chat = [new("user", "hi")];
        var on = builder.Build(chat);
        Assert.Contains("Reasoning: medium", on.Text);
        Assert.EndsWith("<|start|>assistant", on.Text);
        Assert.Contains(tok.FindToken("<|message|>")!.Value, on.Tokens);
        Assert.Contains("Reasoning: low", builder.Build(chat, thinking: false).Text);
        Assert.Contains("Reasoning: high", builder.Build(chat, extra: new Dictionary<string, object?> { [Harmony.EffortVariable] = "high" }).Text);
    }
}
