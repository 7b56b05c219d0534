using System.Numerics;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tools;
using Sputnik.Training;
using Xunit;
using static Sputnik.Tests.Training.GradCheckTests;

namespace Sputnik.Tests.Training;

/// <summary>
/// LoRA over a frozen GGUF base: adapter gradients against finite differences on a tiny model of each architecture
/// (llama, qwen2 with q/k/v biases, qwen3 with q/k norms and a head size of its own, deepseek2 with MLA and experts),
/// an untrained or zero-scaled adapter leaving the base exact, a quantized base training, the adapter file's layout,
/// and the refusals (not a conversation, rank above the matrix, another base in the same run directory).
/// </summary>
public class LoraTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sputnik-lora-");

    public void Dispose() => _dir.Delete(recursive: true);

    private string TinyBase(string arch, FileType type = FileType.AllF32) => TinyBase(_dir.FullName, arch, type);

    /// <summary>A tiny random base of <paramref name="arch"/> written under <paramref name="dir"/> (deepseek2 in the layout Sputnik's trainer writes).</summary>
    internal static string TinyBase(string dir, string arch, FileType type = FileType.AllF32)
    {
        string path = Path.Combine(dir, $"{arch}-{type}.gguf");
        if (arch == DeepSeek2.Name)
        {
            // the layout Sputnik's own trainer writes (the bundled model's): MLA without q-LoRA, a dense layer, then MoE
            var c = TrainConfig.DeepSeek(vocab: 40, dim: 16, layers: 2, heads: 2, ffn: 24, maxSeq: 16, kvLoraRank: 8, qkNopeDim: 4, qkRopeDim: 4,
                vHeadDim: 6, experts: 4, expertsUsed: 2, expertFfn: 6, routeScale: 1.5f);
            var m = new TransformerModel(c, seed: 5);
            Rand(new Random(5), m.P.Count, 0.3f).CopyTo(m.P.Data, 0);
            foreach (var s in m.P.Slices.Where(s => s.Shape.Length == 1 && !s.Name.EndsWith(".bias", StringComparison.Ordinal))) m.P.Fill(s, 1f);
            GgufExport.Write(m, path);
        }
        else
        {
            var config = arch switch
            {
                Llama.Name => ModelConfig.Create(arch, 32, 2, 48, 4, 2, 300, 512, ropeBase: 10000f, rmsEps: 1e-5f, ropeNeox: false),
                Qwen2.Name => ModelConfig.Create(arch, 32, 2, 48, 4, 2, 300, 512, ropeBase: 1e6f, rmsEps: 1e-6f, ropeNeox: true),
                _ => ModelConfig.Create(arch, 32, 2, 48, 4, 2, 300, 512, ropeBase: 1e6f, rmsEps: 1e-6f, ropeNeox: true, headDim: 16) with { QkNorm = true },
            };
            SyntheticModel.Write(path, new SynthOptions { Preset = new SynthPreset("t", config, TiedEmbeddings: arch != Llama.Name), FileType = FileType.AllF32, Seed = 3, Threads = 2 });
        }
        if (type == FileType.AllF32) return path;
        string q = Path.Combine(dir, $"{arch}-{type}-q.gguf");
        GgufQuantizer.Quantize(path, q, type, threads: 2);
        return q;
    }

    private static (int[] Tokens, int[] Targets) Batch(int vocab, int b, int t, int seed)
    {
        var rng = new Random(seed);
        return (Enumerable.Range(0, b * t).Select(_ => rng.Next(vocab)).ToArray(),
                Enumerable.Range(0, b * t).Select(i => i % 3 == 0 ? -1 : rng.Next(vocab)).ToArray());
    }

    [Theory]
    [InlineData("llama")]
    [InlineData("qwen2")]
    [InlineData("qwen3")]
    [InlineData("deepseek2")]
    public void Adapter_gradients_match_finite_differences(string arch)
    {
        var (model, lora, file) = LoraTrainer.Open(TinyBase(arch), rank: 2, alpha: 4, targets: null, maxSeq: 16, seed: 7);
        using var _ = file;
        Rand(new Random(8), lora.P.Count, 0.3f).CopyTo(lora.P.Data, 0); // B ≠ 0 so A's gradient is not trivially 0
        int b = 2, t = 5;
        var (tokens, targets) = Batch(model.Config.VocabSize, b, t, 9);
        double L() => model.Forward(tokens, targets, b, t);
        model.Forward(tokens, targets, b, t);
        lora.P.ZeroGrad();
        model.Backward(model.MeanLossWeights());
        Assert.NotEmpty(lora.Entries);
        if (arch == DeepSeek2.Name)
        {
            // llama.cpp's deepseek2 graph adapts attn_output, the FFNs and the experts only
            Assert.DoesNotContain(lora.Entries, e => e.Name.Contains("attn_q", StringComparison.Ordinal) || e.Name.Contains("attn_kv", StringComparison.Ordinal));
            Assert.Contains(lora.Entries, e => e.Name == "blk.1.ffn_gate_exps.weight" && e.Matrices.Length == 4);
        }
        Assert.Contains(lora.P.Grad, g => g != 0);
        foreach (var s in lora.P.Slices) Check($"{arch}.{s.Name}", lora.P.Data, lora.P.G(s), L, samples: 6, h: 1e-3f, offset: s.Offset);
    }

    [Theory]
    [InlineData("qwen2")]
    [InlineData("deepseek2")]
    public void Untrained_or_zero_scaled_adapter_leaves_the_base_exact(string arch)
    {
        string path = TinyBase(arch);
        int b = 1, t = 6;
        float[] Logits(TransformerModel m, int[] tokens, int[] targets) { m.Forward(tokens, targets, b, t); return m.Logits.ToArray(); }
        using var file = GgufFile.Open(path);
        var config = LoraTrainer.BaseConfig(file, path, 16);
        var plain = new TransformerModel(config, new FrozenBase(file, null));
        var (tokens, targets) = Batch(config.VocabSize, b, t, 3);
        var baseLogits = Logits(plain, tokens, targets);

        var (model, lora, f2) = LoraTrainer.Open(path, rank: 4, alpha: 8, targets: null, maxSeq: 16, seed: 1);
        using var __ = f2;
        Assert.Equal(baseLogits, Logits(model, tokens, targets));             // B = 0: bit for bit
        Rand(new Random(2), lora.P.Count, 0.5f).CopyTo(lora.P.Data, 0);
        Assert.NotEqual(baseLogits, Logits(model, tokens, targets));          // a trained adapter changes the output…
        lora.SetScale(0);
        Assert.Equal(baseLogits, Logits(model, tokens, targets));             // …and at scale 0 it is gone exactly
    }

    [Fact]
    public void A_training_step_allocates_about_its_activations_and_no_per_layer_scratch()
    {
        var (model, lora, file) = LoraTrainer.Open(TinyBase(Qwen2.Name), rank: 8, alpha: 16, targets: null, maxSeq: 64, seed: 1);
        using var _ = file;
        var c = (ModelConfig)model.Config;
        int b = 2, t = 64, n = b * t, d = c.Dim, f = c.FfnDim, q = c.Heads * c.HeadDim, kv = c.KvHeads * c.HeadDim, layers = c.Layers, v = c.VocabSize;
        var (tokens, targets) = Batch(v, b, t, 2);
        long before = GC.GetAllocatedBytesForCurrentThread();
        model.Forward(tokens, targets, b, t);
        model.Backward(model.MeanLossWeights());
        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        // What the backward pass must keep: the residual stream and per layer the attention's input, q, k, v,
        // probabilities [B, H, T, T] and output, the FFN's input, gate and up; the logits once; the LoRA u = x·Aᵀ.
        long kept = (long)n * ((2 * layers + 5) * d + v)
            + layers * ((long)n * (d + 2 * q + 2 * kv) + (long)b * c.Heads * t * t)
            + layers * (long)n * (d + 2 * f)
            + 7L * layers * n * lora.Rank;
        // plus pooled scratch allocated once (powers of two, a few [N, F] arrays live at a time) and small change;
        // the old per-layer scratch, probabilities and logit gradient added about as much again as `kept`
        long scratch = 8L * (long)BitOperations.RoundUpToPowerOf2((uint)(n * Math.Max(f, v / 8)));
        Assert.True(allocated < 4 * (kept * 6 / 5 + scratch), $"{allocated:N0} bytes allocated; activations {4 * kept:N0}, scratch {4 * scratch:N0}");
    }

    [Fact]
    public void Quantized_base_trains_and_stays_quantized()
    {
        string path = TinyBase(Qwen2.Name, FileType.Q8_0);
        using (var f = GgufFile.Open(path)) Assert.Equal(GgmlType.Q8_0, f.GetTensor("blk.0.ffn_up.weight").Type);
        var (model, lora, file) = LoraTrainer.Open(path, rank: 4, alpha: 8, targets: ["attn_q", "attn_v", "ffn_down"], maxSeq: 16, seed: 1);
        using var _ = file;
        Assert.Equal(2 * 3 * 2, lora.P.Slices.Count);
        var opt = new AdamW(lora.P.Count, weightDecay: 0);
        int b = 2, t = 8;
        var (tokens, targets) = Batch(model.Config.VocabSize, b, t, 4);
        float first = 0, last = 0;
        for (int step = 0; step < 40; step++)
        {
            lora.P.ZeroGrad();
            float loss = model.Forward(tokens, targets, b, t);
            model.Backward(model.MeanLossWeights());
            opt.Update(lora.P.Data, lora.P.Grad, 2e-2f);
            if (step == 0) first = loss;
            last = loss;
        }
        Assert.True(last < 0.95f * first, $"loss {first:F3} -> {last:F3}");
    }

    [Fact]
    public void Adapter_file_is_laid_out_as_llama_cpp_reads_it()
    {
        string basePath = TinyBase(Llama.Name);
        var (_, lora, file) = LoraTrainer.Open(basePath, rank: 3, alpha: 6, targets: ["attn_q", "ffn_down"], maxSeq: 16, seed: 1);
        using var __ = file;
        string path = Path.Combine(_dir.FullName, "adapter.gguf");
        lora.Write(path, Llama.Name);
        using var f = GgufFile.Open(path);
        Assert.Equal("adapter", f.GetStringOrNull("general.type"));
        Assert.Equal("llama", f.GetStringOrNull("general.architecture"));
        Assert.Equal("lora", f.GetStringOrNull("adapter.type"));
        Assert.True(f.TryGetFloat("adapter.lora.alpha", out float alpha) && alpha == 6f);
        Assert.Equal([32L, 3L], f.GetTensor("blk.1.attn_q.weight.lora_a").Dims);    // [n_in, r]
        Assert.Equal([3L, 32L], f.GetTensor("blk.1.attn_q.weight.lora_b").Dims);    // [r, n_out]
        Assert.Equal([48L, 3L], f.GetTensor("blk.0.ffn_down.weight.lora_a").Dims);
        Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.ffn_down.weight.lora_b").Type);
        Assert.Null(f.FindTensor("blk.0.attn_k.weight.lora_a"));
    }

    [Fact]
    public void Expert_adapters_are_three_dimensional()
    {
        var (_, lora, file) = LoraTrainer.Open(TinyBase(DeepSeek2.Name), rank: 2, alpha: 2, targets: ["ffn_up_exps"], maxSeq: 16, seed: 1);
        using var __ = file;
        string path = Path.Combine(_dir.FullName, "ds-adapter.gguf");
        lora.Write(path, DeepSeek2.Name);
        using var f = GgufFile.Open(path);
        Assert.Equal([16L, 2L, 4L], f.GetTensor("blk.1.ffn_up_exps.weight.lora_a").Dims);   // [n_in, r, experts]
        Assert.Equal([2L, 6L, 4L], f.GetTensor("blk.1.ffn_up_exps.weight.lora_b").Dims);    // [r, n_out, experts]
    }

    [Fact]
    public void Rank_larger_than_a_matrix_is_refused_before_anything_is_written()
    {
        string outDir = Path.Combine(_dir.FullName, "run-rank");
        var trainer = new LoraTrainer(new LoraOptions { Base = TinyBase(Llama.Name), OutDir = outDir, Rank = 40, Task = "easy", Steps = 1 });
        var e = Assert.Throws<ArgumentException>(() => trainer.Run());
        Assert.Contains("--lora-rank 40 is larger than", e.Message);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void A_line_that_is_not_a_conversation_is_refused_with_its_line_number()
    {
        string data = Path.Combine(_dir.FullName, "bad.jsonl");
        File.WriteAllLines(data, ["""{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}""", """{"prompt": "hi"}"""]);
        string outDir = Path.Combine(_dir.FullName, "run-bad");
        var trainer = new LoraTrainer(new LoraOptions { Base = TinyBase(Qwen2.Name), OutDir = outDir, Rank = 2, Data = data, Steps = 1 });
        var e = Assert.Throws<InvalidDataException>(() => trainer.Run());
        Assert.Contains("bad.jsonl:2: not a conversation", e.Message);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Jsonl_conversations_train_on_assistant_tokens_only()
    {
        string data = Path.Combine(_dir.FullName, "chat.jsonl");
        File.WriteAllLines(data, ["""{"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello there"}]}"""]);
        string path = TinyBase(Qwen2.Name);
        using var f = GgufFile.Open(path);
        var builder = new Sputnik.Inference.ChatPromptBuilder(Sputnik.Tokenizers.Tokenizer.Create(Sputnik.Tokenizers.TokenizerData.FromGguf(f)), f.GetStringOrNull("tokenizer.chat_template"));
        var ex = TrainingExamples.LoadJsonl(data, builder, lossOnAll: false, maxSeq: 512).Single();
        int prompt = builder.Build([Sputnik.Inference.ChatMessage.System("be brief"), Sputnik.Inference.ChatMessage.User("hi")], addGenerationPrompt: true).Tokens.Length;
        Assert.All(ex.Loss.Take(prompt), l => Assert.False(l));
        Assert.True(ex.Loss[prompt]);
        Assert.True(ex.Counted > 0 && ex.Counted < ex.Ids.Length - prompt + 1);
        var all = TrainingExamples.LoadJsonl(data, builder, lossOnAll: true, maxSeq: 512).Single();
        Assert.Equal(all.Ids.Length - 1, all.Counted);
    }

    [Fact]
    public void Another_base_in_the_same_run_directory_is_refused()
    {
        string outDir = Path.Combine(_dir.FullName, "run-mix");
        new LoraTrainer(new LoraOptions { Base = TinyBase(Llama.Name), OutDir = outDir, Rank = 2, Task = "easy", Steps = 1, BatchSize = 2, MaxSeq = 512 }).Run();
        string ckpt = Path.Combine(outDir, "checkpoint.bin");
        var before = File.ReadAllBytes(ckpt);
        var other = new LoraTrainer(new LoraOptions { Base = TinyBase(Qwen2.Name), OutDir = outDir, Rank = 2, Task = "easy", Steps = 2, BatchSize = 2, MaxSeq = 512 });
        var e = Assert.ThrowsAny<Exception>(() => other.Run());
        Assert.Contains("llama", e.Message);
        Assert.Equal(before, File.ReadAllBytes(ckpt));
    }
}
