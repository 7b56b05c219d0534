using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>The adapter file format as llama.cpp reads it, and the reader's checks against a base model.</summary>
public sealed class LoraAdapterFileTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sputnik-lora-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    internal static LoraPair RandomPair(string baseName, int inputs, int outputs, int rank, int seed, float std = 0.05f, int experts = 1)
    {
        var rng = new Random(seed);
        var a = new float[experts * rank * inputs];
        var b = new float[experts * outputs * rank];
        for (int i = 0; i < a.Length; i++) a[i] = (float)(rng.NextDouble() * 2 - 1) * std;
        for (int i = 0; i < b.Length; i++) b[i] = (float)(rng.NextDouble() * 2 - 1) * std;
        return new LoraPair(baseName, inputs, outputs, rank, a, b, experts);
    }

    [Fact]
    public void Written_adapter_has_llamacpp_keys_and_ggml_dims_and_reads_back_the_same_values()
    {
        string path = Path.Combine(_dir, "a.gguf");
        var q = RandomPair("blk.0.attn_q.weight", RandomQwen2.Dim, RandomQwen2.Dim, 4, 1);
        var down = RandomPair("blk.1.ffn_down.weight", RandomQwen2.Ffn, RandomQwen2.Dim, 8, 2);
        LoraAdapter.Write(path, "qwen2", 16f, [q, down]);

        using (var f = GgufFile.Open(path))
        {
            Assert.Equal("adapter", f.GetString("general.type"));
            Assert.Equal("lora", f.GetString("adapter.type"));
            Assert.Equal("qwen2", f.GetString("general.architecture"));
            Assert.Equal(GgufValueType.Float32, f.Metadata["adapter.lora.alpha"].Type);
            Assert.Equal(16f, (float)f.Metadata["adapter.lora.alpha"].Value);
            var a = f.GetTensor("blk.1.ffn_down.weight.lora_a");
            var b = f.GetTensor("blk.1.ffn_down.weight.lora_b");
            Assert.Equal(new long[] { RandomQwen2.Ffn, 8 }, a.Dims);
            Assert.Equal(new long[] { 8, RandomQwen2.Dim }, b.Dims);
            Assert.Equal(GgmlType.F32, a.Type);
        }

        using var model = GgufFile.Open(RandomQwen2.Path_);
        var adapter = LoraAdapter.Load(path, model);
        Assert.Equal(16f, adapter.Alpha);
        Assert.Equal(2, adapter.Pairs.Count);
        var read = adapter.Pairs.Single(p => p.BaseName == "blk.1.ffn_down.weight");
        Assert.Equal((RandomQwen2.Ffn, RandomQwen2.Dim, 8), (read.Inputs, read.Outputs, read.Rank));
        Assert.Equal(down.A, read.A);
        Assert.Equal(down.B, read.B);
        Assert.Equal(0.5f * 16 / 8, adapter.EffectiveScale(read, 0.5f));
    }

    [Fact]
    public void Reader_rejects_mismatches_with_one_line_naming_the_tensor()
    {
        using var model = GgufFile.Open(RandomQwen2.Path_);
        string Error(string arch, params LoraPair[] pairs)
        {
            string path = Path.Combine(_dir, $"bad-{Guid.NewGuid():N}.gguf");
            LoraAdapter.Write(path, arch, 8, pairs);
            var ex = Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(path, model));
            Assert.DoesNotContain('\n', ex.Message);
            return ex.Message;
        }
        var good = RandomPair("blk.0.attn_q.weight", RandomQwen2.Dim, RandomQwen2.Dim, 4, 1);
        Assert.Contains("architecture 'llama' but the model is 'qwen2'", Error("llama", good));
        Assert.Contains("'blk.9.attn_q.weight', which the base model does not have", Error("qwen2", RandomPair("blk.9.attn_q.weight", RandomQwen2.Dim, RandomQwen2.Dim, 4, 1)));
        // ffn_up is [Dim → Ffn]: an adapter shaped for ffn_down does not fit it.
        string shape = Error("qwen2", RandomPair("blk.0.ffn_up.weight", RandomQwen2.Ffn, RandomQwen2.Dim, 4, 1));
        Assert.Contains("'blk.0.ffn_up.weight' [256, 512] needs .lora_a [256, rank]", shape);
        Assert.Contains("the file has [512, 4] and [4, 256]", shape);
        // attn_k is 256 → 128: a rank of 129 cannot be a low-rank factor of it.
        Assert.Contains("rank 129 is larger than the 128×256 matrix", Error("qwen2", RandomPair("blk.0.attn_k.weight", RandomQwen2.Dim, 128, 129, 1)));
        Assert.Contains("'token_embd.weight', but qwen2 applies adapters only to", Error("qwen2", RandomPair("token_embd.weight", RandomQwen2.Dim, RandomQwen2.Vocab, 4, 1)));
    }

    [Fact]
    public void Reader_rejects_a_model_file_and_a_half_without_its_pair()
    {
        using var model = GgufFile.Open(RandomQwen2.Path_);
        var notAdapter = Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(RandomQwen2.Path_, model));
        Assert.Contains("general.type is '', expected 'adapter'", notAdapter.Message);

        string path = Path.Combine(_dir, "half.gguf");
        new GgufWriter().Set("general.architecture", "qwen2").Set("general.type", "adapter").Set("adapter.type", "lora")
            .Set("adapter.lora.alpha", 4f).AddTensor("blk.0.attn_q.weight.lora_a", new float[RandomQwen2.Dim * 2], RandomQwen2.Dim, 2).Write(path);
        var half = Assert.Throws<InvalidDataException>(() => LoraAdapter.Load(path, model));
        Assert.Contains("'blk.0.attn_q.weight' has a .lora_a but no .lora_b", half.Message);
    }

    [Fact]
    public void Deepseek2_adapters_are_limited_to_the_weights_llamacpp_adapts()
    {
        Assert.True(LoraAdapter.IsApplied("deepseek2", "blk.1.attn_output.weight"));
        Assert.True(LoraAdapter.IsApplied("deepseek2", "blk.0.ffn_up.weight"));
        Assert.True(LoraAdapter.IsApplied("deepseek2", "blk.2.ffn_down_shexp.weight"));
        Assert.True(LoraAdapter.IsApplied("deepseek2", "blk.2.ffn_gate_exps.weight"));
        Assert.False(LoraAdapter.IsApplied("deepseek2", "blk.1.attn_q_b.weight"));
        Assert.False(LoraAdapter.IsApplied("deepseek2", "blk.1.attn_kv_a_mqa.weight"));
        Assert.False(LoraAdapter.IsApplied("deepseek2", "output.weight"));
        Assert.True(LoraAdapter.IsApplied("qwen2", "output.weight"));
        Assert.True(LoraAdapter.IsApplied("llama", "blk.0.attn_v.weight"));
    }
}
