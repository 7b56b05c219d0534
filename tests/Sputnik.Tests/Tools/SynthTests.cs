using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Tools;

[Collection("Console")]
public sealed class SynthTests : IClassFixture<TempDir>
{
    private readonly TempDir _dir;

    public SynthTests(TempDir dir) => _dir = dir;

    private string Synth(string preset, string type, ulong seed = 7, string? name = null, params string[] extra)
    {
        string path = _dir.File(name ?? $"{preset}-{type}-{seed}.gguf");
        CliHarness.Ok(["synth", "--preset", preset, "--type", type, "-o", path, "--seed", seed.ToString(), "-t", "2", .. extra]);
        return path;
    }

    [Fact]
    public void Deepseek2_tiny_preset_writes_a_model_that_loads_and_generates()
    {
        string path = _dir.File("ds-tiny.gguf");
        CliHarness.Ok(["synth", "--arch", "deepseek2", "--preset", "deepseek2-tiny", "--type", "Q8_0", "-o", path]);
        using var m = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 64 });
        Assert.Equal("deepseek2", m.File.Architecture);
        Assert.Equal(3, m.File.TryGetInt64("deepseek2.block_count", out long layers) ? layers : -1);
        Assert.NotNull(m.File.FindTensor("blk.1.ffn_gate_exps.weight"));
        var prompt = m.Tokenizer.Encode("hello world");
        Assert.Equal("hello world", m.Tokenizer.Decode(prompt.Where(t => t != m.Tokenizer.BosId).ToArray()));
        var logits = m.Model.Forward(m.CreateState(), prompt).ToArray();
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    [Theory]
    [InlineData("qwen2-tiny")]
    [InlineData("llama-tiny")]
    public void Tiny_preset_loads_with_the_preset_shapes(string presetName)
    {
        var p = SyntheticModel.FindPreset(presetName);
        string path = Synth(presetName, "F16");
        using var m = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 64 });
        var c = m.Model.Config;
        Assert.Equal(p.Arch, c.Architecture);
        Assert.Equal((p.Config.Dim, p.Config.Layers, p.Config.FfnDim, p.Config.Heads, p.Config.KvHeads, p.Config.VocabSize), (c.Dim, c.Layers, c.FfnDim, c.Heads, c.KvHeads, c.VocabSize));
        Assert.Equal(p.Config.RopeBase, c.RopeBase);
        Assert.Equal(p.Config.ContextLength, c.ContextLength);
        Assert.Equal(p.TiedEmbeddings, m.File.FindTensor("output.weight") is null);
        Assert.Equal(p.Arch == Qwen2.Name, m.File.FindTensor("blk.0.attn_q.bias") is not null);
        Assert.Equal([p.Config.Dim, p.Config.VocabSize], m.File.GetTensor("token_embd.weight").Dims);
        Assert.Equal([p.Config.FfnDim, p.Config.Dim], m.File.GetTensor("blk.1.ffn_down.weight").Dims);
        Assert.Equal([p.Config.Dim, p.Config.KvHeads * p.Config.HeadDim], m.File.GetTensor("blk.0.attn_k.weight").Dims);
        Assert.Equal((long)FileType.F16, m.File.TryGetInt64("general.file_type", out long ft) ? ft : -1);
        Assert.NotNull(m.ChatTemplate);
        Assert.All(m.File.Tensors.Where(t => t.Dims.Length == 1), t => Assert.Equal(GgmlType.F32, t.Type));

        var state = m.CreateState();
        var logits = m.Model.Forward(state, [m.Tokenizer.BosId, 5, 17, 300]).ToArray();
        Assert.All(logits, x => Assert.True(float.IsFinite(x)));
        Assert.True(logits.Max() - logits.Min() > 1e-4f, "logits should depend on the random weights");
    }

    [Theory]
    [InlineData("qwen2-tiny")]
    [InlineData("llama-tiny")]
    public void Synthetic_vocabulary_round_trips(string presetName)
    {
        string path = Synth(presetName, "Q8_0");
        using var m = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 64 });
        var tok = m.Tokenizer;
        foreach (string text in new[] { "hello world", "The quick brown fox, 12345!", "  spaces\tand\nnewlines ", "héllo 世界 🚀", "" })
        {
            var ids = tok.Encode(text, addBos: false);
            Assert.Equal(text, tok.Decode(ids));
        }
        Assert.True(tok.Encode("the other thing", addBos: false).Length < "the other thing".Length, "merges should compress words");
        string special = presetName.StartsWith("qwen2") ? "<|im_start|>" : "<|eot_id|>";
        var withSpecial = tok.Encode($"a{special}b", addBos: false, parseSpecial: true);
        Assert.Contains(tok.FindToken(special)!.Value, withSpecial);
        Assert.Equal(presetName.StartsWith("llama"), tok.AddBos);
    }

    [Fact]
    public void Same_seed_gives_the_same_bytes_and_another_seed_does_not()
    {
        string a = Synth("qwen2-tiny", "Q4_K_M", 3, "a.gguf");
        string b = Synth("qwen2-tiny", "Q4_K_M", 3, "b.gguf");
        string c = Synth("qwen2-tiny", "Q4_K_M", 4, "c.gguf");
        Assert.Equal(File.ReadAllBytes(a), File.ReadAllBytes(b));
        Assert.NotEqual(File.ReadAllBytes(a), File.ReadAllBytes(c));
    }

    [Fact]
    public void Real_tokenizer_json_is_written_like_llama_cpp()
    {
        string json = Fixtures.Require(Fixtures.Tokenizer("qwen2-tokenizer.json"));
        string path = Synth("qwen2-tiny", "Q8_0", 1, "real-vocab.gguf", "--tokenizer", json);
        using var m = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 32 });
        Assert.Equal("qwen2", m.File.GetString("tokenizer.ggml.pre"));
        Assert.Equal(m.Tokenizer.VocabSize, m.Model.Config.VocabSize);
        Assert.True(m.Tokenizer.VocabSize >= 151643);
        string text = "Hello, world! 你好";
        Assert.Equal(text, m.Tokenizer.Decode(m.Tokenizer.Encode(text, addBos: false)));
        Assert.Equal(9707, m.Tokenizer.Encode("Hello", addBos: false).Single()); // Qwen2's id for "Hello"
    }

    [Fact]
    public void Synthetic_vocab_has_the_requested_size() =>
        Assert.Equal(151936, SyntheticVocab.Create(151936, "qwen2").Tokens.Distinct().Count());
}
