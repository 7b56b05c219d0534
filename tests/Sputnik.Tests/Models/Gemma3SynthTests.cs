using Sputnik.Cli.Commands;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tokenizers;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>`sputnik synth` presets for gemma3: real shapes and llama.cpp's keys, Gemma 3's chat template, `quantize` and `info`.</summary>
public class Gemma3SynthTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sputnik-synth-gemma3-");

    public void Dispose()
    {
        _dir.Delete(recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>
    /// The KV cache of the real shapes at their full context with F16 keys and values and llama.cpp's default batch
    /// (512): local layers keep a ring of window + 511 rows, global layers the context (the numbers in docs/models.md).
    /// </summary>
    [Theory]
    [InlineData("gemma3-1b", 32768, 4, 22, 1023, 1024)]      // 4 global, 22 local layers; rows of 1 KiB
    [InlineData("gemma3-4b", 131072, 5, 29, 1535, 4096)]
    [InlineData("gemma3-12b", 131072, 8, 40, 1535, 8192)]
    public void Local_layers_of_the_real_shapes_keep_only_their_ring(string preset, int context, int global, int local, int ring, int rowBytes)
    {
        var c = SyntheticModel.FindPreset(preset).Config;
        var p = (Gemma3.Params)c.ArchParams!;
        var cache = new KvCache(c.Layers, context, c.KvDim, KvCacheType.F16, KvCacheType.F16, c.HeadDim, p.LayerWindows(), batch: 512);
        Assert.Equal(global, Enumerable.Range(0, c.Layers).Count(l => cache.LayerRows(l) == context));
        Assert.Equal(local, Enumerable.Range(0, c.Layers).Count(l => cache.LayerRows(l) == ring));
        Assert.Equal(((long)global * context + (long)local * ring) * rowBytes, cache.CapacityBytes);
        var whole = new KvCache(c.Layers, context, c.KvDim, KvCacheType.F16, KvCacheType.F16, c.HeadDim);
        Assert.Equal((long)c.Layers * context * rowBytes, whole.CapacityBytes);
        Assert.Equal(0, cache.Bytes); // nothing is allocated until positions are written
    }

    [Fact]
    public void Presets_have_the_real_models_shapes()
    {
        var b1 = SyntheticModel.FindPreset("gemma3-1b"); // google/gemma-3-1b-it config.json
        var c1 = b1.Config;
        Assert.Equal(("gemma3", 1152, 26, 6912, 4, 1, 256, 262144, 512), (b1.Arch, c1.Dim, c1.Layers, c1.FfnDim, c1.Heads, c1.KvHeads, c1.HeadDim, c1.VocabSize, ((Gemma3.Params)c1.ArchParams!).SlidingWindow));
        Assert.True(b1.TiedEmbeddings);
        var c4 = SyntheticModel.FindPreset("gemma3-4b").Config;
        Assert.Equal((2560, 34, 10240, 8, 4, 256, 1024, 8f), (c4.Dim, c4.Layers, c4.FfnDim, c4.Heads, c4.KvHeads, c4.HeadDim, ((Gemma3.Params)c4.ArchParams!).SlidingWindow, c4.RopeScalingFactor));
        Assert.Equal(Gemma3.Params.Pattern(34, Gemma3.Params.DefaultPattern), ((Gemma3.Params)c4.ArchParams!).SlidingLayers);
    }

    private string Write(string preset, FileType type = FileType.AllF32)
    {
        string path = Path.Combine(_dir.FullName, $"{preset}-{type}.gguf");
        SyntheticModel.Write(path, new SynthOptions { Preset = SyntheticModel.FindPreset(preset), FileType = type, Seed = 3, Threads = 2, Sigma = 0.1f });
        return path;
    }

    [Fact]
    public void Tiny_preset_loads_quantizes_and_describes_itself()
    {
        string f32 = Write("gemma3-tiny");
        using (var f = GgufFile.Open(f32))
        {
            const string a = "gemma3";
            Assert.True(f.TryGetInt64($"{a}.attention.sliding_window", out long sw) && sw == 16);
            Assert.True(f.TryGetInt64($"{a}.attention.sliding_window_pattern", out long sp) && sp == 2);
            Assert.Equal("linear", f.GetStringOrNull($"{a}.rope.scaling.type"));
            Assert.NotNull(f.FindTensor("blk.3.post_attention_norm.weight"));
            Assert.NotNull(f.FindTensor("blk.3.post_ffw_norm.weight"));
            var info = InfoCommand.Describe(f);
            Assert.Equal(16L, (long)info["sliding_window"]!);
            Assert.Equal("2 of 4 (global: 1, 3)", (string)info["local_layers"]!);
            Assert.Equal("linear", (string)info["rope_scaling"]!);
            Assert.Equal(8f, (float)info["rope_scaling_factor"]!);
        }
        string q = Path.Combine(_dir.FullName, "q4km.gguf");
        GgufQuantizer.Quantize(f32, q, FileType.Q4_K_M, threads: 2);
        using (var f = GgufFile.Open(q))
        {
            Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.post_ffw_norm.weight").Type);
            Assert.Equal(GgmlType.Q4_K, f.GetTensor("blk.0.ffn_gate.weight").Type);
        }
        int[] prompt = [5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24];
        float[] Logits(string path)
        {
            using var m = ModelLoader.Load(GgufFile.Open(path), threads: 2);
            return m.Forward(m.CreateState(64, KvCacheType.F32), prompt).ToArray();
        }
        var a32 = Logits(f32);
        var a4 = Logits(q);
        Assert.All(a32, v => Assert.True(float.IsFinite(v)));
        double spread = a32.Max() - a32.Min(), err = a32.Zip(a4, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(err < 0.25 * spread, $"Q4_K_M max error {err} against logit spread {spread}");
    }

    [Fact]
    public void Chat_template_is_gemma_3s_folds_the_system_prompt_and_has_no_thinking()
    {
        using var f = GgufFile.Open(Write("gemma3-tiny"));
        var tok = Tokenizer.Create(TokenizerData.FromGguf(f));
        var builder = new ChatPromptBuilder(tok, f.GetStringOrNull("tokenizer.chat_template"));
        ChatMessage[] chat = [new("system", "Be brief."), new("user", " hi "), new("assistant", "Hello."), new("user", "Sum 2+2")];
        var p = builder.Build(chat);
        Assert.Equal("<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\nHello.<end_of_turn>\n" +
            "<start_of_turn>user\nSum 2+2<end_of_turn>\n<start_of_turn>model\n", p.Text);
        Assert.Equal(1, p.Tokens.Count(t => t == tok.BosId)); // the template writes BOS; it is not added twice
        Assert.False(builder.SupportsThinking);
        Assert.False(p.StartsInThinking);
        Assert.True(tok.IsEndOfGeneration(tok.FindToken("<end_of_turn>")!.Value));
        // Roles must alternate, as the template says.
        Assert.ThrowsAny<Exception>(() => builder.Build([new("user", "a"), new("user", "b")]));
    }
}
