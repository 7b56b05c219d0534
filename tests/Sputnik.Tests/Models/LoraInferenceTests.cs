using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>Adapters applied in the forward pass: scale 0, per-sequence adapters in one batch, the merged export, deepseek2.</summary>
public sealed class LoraInferenceTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sputnik-lora-infer-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    /// <summary>A random adapter for every weight the base's architecture adapts, written to the temp folder.</summary>
    private string Adapter(string basePath, int seed, float sigma = 0.05f, float alpha = 16, int rank = 8)
    {
        string path = Path.Combine(_dir, $"adapter-{seed}.gguf");
        using var f = GgufFile.Open(basePath);
        LoraAdapter.Write(path, f.Architecture!, alpha, LoraAdapter.RandomPairs(f, rank, sigma, seed));
        return path;
    }

    private static LanguageModel Load(string path, params string[] adapters)
    {
        var m = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        foreach (string a in adapters) m.AttachAdapter(LoraAdapter.Load(a, m.File));
        return m;
    }

    private static float[] Logits(LanguageModel m, LoraSet adapters, int[] prompt)
    {
        var s = m.CreateState(64);
        s.Adapters = adapters;
        return m.Forward(s, prompt).ToArray();
    }

    private static float MaxDiff(float[] a, float[] b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max();

    private static readonly int[] Prompt = [1, 17, 42, 99, 7, 250, 3, 64];

    [Fact]
    public void Scale_zero_is_the_base_model_bit_for_bit_and_scale_one_changes_it()
    {
        string adapter = Adapter(RandomQwen2.Path_, 1);
        using var plain = Load(RandomQwen2.Path_);
        using var adapted = Load(RandomQwen2.Path_, adapter);
        var baseLogits = Logits(plain, LoraSet.None, Prompt);
        Assert.Equal(baseLogits, Logits(adapted, LoraSet.Of([(0, 0f)]), Prompt));
        Assert.Equal(baseLogits, Logits(adapted, LoraSet.None, Prompt));
        Assert.True(MaxDiff(baseLogits, Logits(adapted, LoraSet.Of([(0, 1f)]), Prompt)) > 1e-2, "the adapter should change the logits");
    }

    [Fact]
    public void Sequences_with_different_adapters_in_one_batch_each_equal_their_solo_run()
    {
        using var m = Load(RandomQwen2.Path_, Adapter(RandomQwen2.Path_, 1), Adapter(RandomQwen2.Path_, 2));
        LoraSet[] sets = [LoraSet.Of([(0, 1f)]), LoraSet.None, LoraSet.Of([(1, 0.5f), (0, -0.7f)])];
        int[][] prompts = [Prompt, [5, 6, 7, 8, 9], [200, 100, 50, 25]];
        int[] next = [11, 12, 13];

        var solo = new float[sets.Length][];
        for (int i = 0; i < sets.Length; i++)
        {
            var s = m.CreateState(64);
            s.Adapters = sets[i];
            m.Forward(s, prompts[i]);
            solo[i] = m.Forward(s, next.AsSpan(i, 1)).ToArray();
        }
        var states = new InferenceState[sets.Length];
        for (int i = 0; i < sets.Length; i++)
        {
            states[i] = m.CreateState(64);
            states[i].Adapters = sets[i];
            m.Forward(states[i], prompts[i]);
        }
        m.ForwardBatch(states, next);
        for (int i = 0; i < sets.Length; i++) Assert.Equal(solo[i], states[i].Logits);
        Assert.NotEqual(solo[0], solo[1]);
    }

    [Fact]
    public void Merged_export_equals_the_adapter_at_scale_one_within_float_rounding()
    {
        // An F32 base, so re-encoding the merged weights adds no quantization error: what is left is float rounding.
        string f32 = Path.Combine(_dir, "base-f32.gguf");
        GgufQuantizer.Quantize(RandomQwen2.Path_, f32, FileType.AllF32, threads: 2);
        string adapter = Adapter(f32, 3);
        string merged = Path.Combine(_dir, "merged.gguf");
        GgufQuantizer.Quantize(f32, merged, fileType: null, threads: 2, merge: new LoraMerge(adapter, 1f));

        using var withAdapter = Load(f32, adapter);
        using var mergedModel = Load(merged);
        using var plain = Load(f32);
        var expected = Logits(withAdapter, LoraSet.Of([(0, 1f)]), Prompt);
        var actual = Logits(mergedModel, LoraSet.None, Prompt);
        float scale = expected.Max(Math.Abs);
        Assert.True(MaxDiff(expected, actual) < 1e-4f * scale, $"merged vs adapter: {MaxDiff(expected, actual)} (logits up to {scale})");
        Assert.True(MaxDiff(expected, Logits(plain, LoraSet.None, Prompt)) > 1e-2f, "the adapter should change the logits");
    }

    [Fact]
    public void Deepseek2_adapter_on_its_ffn_experts_and_attn_output_agrees_between_prefill_and_decode()
    {
        string basePath = Sputnik.Tests.Server.TinyDeepSeek2File.Path;
        string adapter = Adapter(basePath, 4, sigma: 0.1f);
        using (var f = GgufFile.Open(adapter))
        {
            Assert.Contains(f.Tensors, t => t.Name.Contains("ffn_gate_exps.weight.lora_a", StringComparison.Ordinal) && t.Dims.Length == 3);
            Assert.Contains(f.Tensors, t => t.Name.Contains("attn_output.weight.lora_b", StringComparison.Ordinal));
            Assert.DoesNotContain(f.Tensors, t => t.Name.Contains("attn_q", StringComparison.Ordinal) || t.Name.StartsWith("output", StringComparison.Ordinal));
        }
        using var plain = Load(basePath);
        using var m = Load(basePath, adapter);
        var on = LoraSet.Of([(0, 1f)]);
        var baseLogits = Logits(plain, LoraSet.None, Prompt);
        Assert.Equal(baseLogits, Logits(m, LoraSet.Of([(0, 0f)]), Prompt));
        var prefill = Logits(m, on, Prompt);
        Assert.True(MaxDiff(prefill, baseLogits) > 1e-2f, "the adapter should change the logits");
        var s = m.CreateState(64);
        s.Adapters = on;
        float[] decoded = [];
        foreach (int t in Prompt) decoded = m.Forward(s, [t]).ToArray();
        Assert.True(MaxDiff(prefill, decoded) < 1e-3f * prefill.Max(Math.Abs), $"prefill vs decode: {MaxDiff(prefill, decoded)}");
    }

    [Fact]
    public void Cli_rejects_an_adapter_for_another_architecture_with_one_line()
    {
        string wrong = Path.Combine(_dir, "llama.gguf");
        LoraAdapter.Write(wrong, "llama", 8, [LoraAdapterFileTests.RandomPair("blk.0.attn_q.weight", RandomQwen2.Dim, RandomQwen2.Dim, 4, 1)]);
        var r = Sputnik.Tests.Cli.CliRunner.Run("run", "-m", RandomQwen2.Path_, "--lora", wrong, "-p", "", "-n", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Equal("error: LoRA adapter llama.gguf: made for architecture 'llama' but the model is 'qwen2'", r.StdErr.Trim());
    }
}
