using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tools;
using Sputnik.Tests.Library;
using Xunit;

namespace Sputnik.Tests.Tools;

/// <summary>
/// The per-tensor type rule of `quantize` against llama.cpp's llama-quant.cpp: attention-V-like tensors (attn_v,
/// attn_qkv, attn_kv_b) share one rule and one count, in the loader's order; exactly 8 experts bump attn_v and attn_k
/// to Q8_0 and attn_output to Q5_K. The last test quantizes the tiny presets with llama.cpp's own llama-quantize
/// (compiled against node-llama-cpp's prebuilt libraries) and compares every tensor's type.
/// </summary>
public sealed class QuantMixTests
{
    private static readonly string Nlc = Environment.GetEnvironmentVariable("LLAMACPP_NPM") ?? "/tmp/nlc";

    private static QuantMix MixOf(string preset, FileType type)
    {
        var p = SyntheticModel.FindPreset(preset);
        return QuantMix.For(type, p.Config.Layers, ModelLoader.Find(p.Arch)!.Tensors!(p).Select(t => (t.Name, t.Dims)));
    }

    private static long[] DimsOf(string preset, string name)
    {
        var p = SyntheticModel.FindPreset(preset);
        return ModelLoader.Find(p.Arch)!.Tensors!(p).Single(t => t.Name == name).Dims;
    }

    [Fact]
    public void Qwen35_counts_the_recurrent_layers_attn_qkv_with_the_attention_layers_attn_v()
    {
        // Qwen3.5-4B: 32 layers, every fourth full attention (attn_v), the others Gated DeltaNet (attn_qkv). llama.cpp
        // ranks all 32 together, so the "more bits" layers are the same 14 as a dense 32-layer model's.
        const string preset = "qwen3.5-4b";
        var mix = MixOf(preset, FileType.Q4_K_M);
        var p = SyntheticModel.FindPreset(preset);
        var declared = ModelLoader.Find(p.Arch)!.Tensors!(p).Select(t => t.Name).ToHashSet();
        for (int l = 0; l < 32; l++)
        {
            bool attention = declared.Contains($"blk.{l}.attn_v.weight");
            Assert.Equal(l % 4 == 3, attention);
            string name = attention ? $"blk.{l}.attn_v.weight" : $"blk.{l}.attn_qkv.weight";
            var expected = QuantMix.UseMoreBits(l, 32) ? GgmlType.Q6_K : GgmlType.Q4_K;
            Assert.Equal(expected, mix.Choose(name, DimsOf(preset, name), GgmlType.F32));
        }
        // attn_qkv is not the fixed Q5_K of llama.cpp's (unreachable) ATTENTION_QKV branch.
        Assert.Equal(GgmlType.Q4_K, mix.Choose("blk.4.attn_qkv.weight", DimsOf(preset, "blk.4.attn_qkv.weight"), GgmlType.F32));
        Assert.Equal(GgmlType.Q6_K, mix.Choose("blk.2.attn_qkv.weight", DimsOf(preset, "blk.2.attn_qkv.weight"), GgmlType.F32));
        // Q4_K_S: the first four attention-V-like tensors, whichever kind.
        var small = MixOf(preset, FileType.Q4_K_S);
        Assert.Equal(GgmlType.Q5_K, small.Choose("blk.3.attn_v.weight", DimsOf(preset, "blk.3.attn_v.weight"), GgmlType.F32));
        Assert.Equal(GgmlType.Q4_K, small.Choose("blk.7.attn_v.weight", DimsOf(preset, "blk.7.attn_v.weight"), GgmlType.F32));
    }

    [Fact]
    public void The_rank_is_the_order_of_the_file_when_layers_lack_an_attn_v()
    {
        // Two attention layers out of 16 (made up): llama.cpp ranks them 0 and 1 of 2; rank 1 is "more bits"
        // (i ≥ 7·2/8), rank 0 not, where by layer number blk.12 (of 16) would not be.
        var names = Enumerable.Range(0, 16).Select(l => (Name: $"blk.{l}.ffn_down.weight", Dims: new long[] { 256, 256 }))
            .Concat([("blk.5.attn_v.weight", [256, 256]), ("blk.12.attn_v.weight", [256, 256]), ("blk.5.attn_q.weight", [256, 256])]);
        var mix = QuantMix.For(FileType.Q4_K_S, 16, names);
        Assert.Equal(GgmlType.Q5_K, mix.Choose("blk.12.attn_v.weight", [256, 256], GgmlType.F32)); // rank 1 < 4
        var medium = QuantMix.For(FileType.Q4_K_M, 16, names);
        Assert.Equal(GgmlType.Q4_K, medium.Choose("blk.5.attn_v.weight", [256, 256], GgmlType.F32));
        Assert.Equal(GgmlType.Q6_K, medium.Choose("blk.12.attn_v.weight", [256, 256], GgmlType.F32));
        Assert.Equal(GgmlType.Q4_K, medium.Choose("blk.5.attn_q.weight", [256, 256], GgmlType.F32));
        // A dense model's ffn_down keeps its layer as its rank (every layer has one).
        Assert.Equal(GgmlType.Q6_K, medium.Choose("blk.0.ffn_down.weight", [256, 256], GgmlType.F32));
        Assert.Equal(GgmlType.Q4_K, medium.Choose("blk.3.ffn_down.weight", [256, 256], GgmlType.F32));
    }

    [Fact]
    public void Eight_experts_bump_the_attention_as_llama_cpp_does()
    {
        // gpt-oss-tiny has 8 experts (the real gpt-oss 32 and 128): attn_v and attn_k Q8_0, attn_output Q5_K at Q4_K_M.
        var tiny = MixOf("gpt-oss-tiny", FileType.Q4_K_M);
        Assert.Equal(8, tiny.Experts);
        Assert.Equal(GgmlType.Q8_0, tiny.Choose("blk.0.attn_v.weight", DimsOf("gpt-oss-tiny", "blk.0.attn_v.weight"), GgmlType.F32));
        Assert.Equal(GgmlType.Q8_0, tiny.Choose("blk.1.attn_k.weight", DimsOf("gpt-oss-tiny", "blk.1.attn_k.weight"), GgmlType.F32));
        Assert.Equal(GgmlType.Q5_K, tiny.Choose("blk.1.attn_output.weight", DimsOf("gpt-oss-tiny", "blk.1.attn_output.weight"), GgmlType.F32));
        Assert.Equal(GgmlType.Q4_K, tiny.Choose("blk.1.attn_q.weight", DimsOf("gpt-oss-tiny", "blk.1.attn_q.weight"), GgmlType.F32));
        // 32 experts: the plain rules (attn_v by rank, attn_output the default type).
        var big = MixOf("gpt-oss-20b", FileType.Q4_K_M);
        Assert.Equal(32, big.Experts);
        Assert.Equal(GgmlType.Q8_0, big.Choose("blk.0.attn_v.weight", [2880, 512], GgmlType.BF16)); // Q6_K, 2880 % 256 ≠ 0 → Q8_0
        Assert.Equal(GgmlType.Q5_0, big.Choose("blk.3.attn_v.weight", [2880, 512], GgmlType.BF16)); // Q4_K → Q5_0
        Assert.Equal(GgmlType.Q4_K, big.Choose("blk.3.attn_output.weight", [4096, 2880], GgmlType.BF16));
    }

    public static TheoryData<string, string> LlamaCppCases()
    {
        var data = new TheoryData<string, string>();
        foreach (string preset in new[] { "qwen35-tiny", "qwen35moe-tiny", "gpt-oss-tiny", "phi3-tiny", "qwen3moe-tiny", "deepseek2-tiny" })
            foreach (string type in new[] { "Q4_K_M", "Q8_0", "Q4_K_S" })
                data.Add(preset, type);
        return data;
    }

    [Theory]
    [MemberData(nameof(LlamaCppCases))]
    public void Every_tensor_gets_llama_quantizes_type(string preset, string type)
    {
        if (!Directory.Exists(Path.Combine(Nlc, "node_modules", "@node-llama-cpp", "linux-x64")))
            Assert.Skip($"node-llama-cpp's prebuilt libraries are not installed under {Nlc} (npm install node-llama-cpp there, or set LLAMACPP_NPM)");
        string dir = Directory.CreateTempSubdirectory("sputnik-quantmix-").FullName;
        try
        {
            string tool = Path.Combine(dir, "llama-quantize");
            var build = ProcessRunner.Info("bash", ["-euo", "pipefail", "-c", $". '{Fixtures.RepoRoot}/bench/llamacpp.sh' && llamacpp_quantize '{tool}'"]);
            build.Environment["LLAMACPP_NPM"] = Nlc;
            var built = ProcessRunner.Run(build, TimeSpan.FromMinutes(3));
            Assert.True(built.ExitCode == 0, built.ToString());

            string source = Path.Combine(dir, "f32.gguf");
            if (SyntheticModel.FindOwnPreset(preset) is { } own) own.Write(source, own.Preset, FileType.AllF32, 1, 2);
            else SyntheticModel.Write(source, new SynthOptions { Preset = SyntheticModel.FindPreset(preset), FileType = FileType.AllF32, Seed = 1, Threads = 2 });
            string ours = Path.Combine(dir, "ours.gguf"), theirs = Path.Combine(dir, "theirs.gguf");
            GgufQuantizer.Quantize(source, ours, QuantMix.Parse(type), threads: 2);
            // gpt-oss files carry MXFP4 experts, which llama-quantize requantizes only when allowed to.
            var run = ProcessRunner.Run(ProcessRunner.Info(tool, ["--allow-requantize", source, theirs, type, "2"], dir), TimeSpan.FromMinutes(3));
            Assert.True(run.ExitCode == 0, run.ToString());

            using var a = GgufFile.Open(ours);
            using var b = GgufFile.Open(theirs);
            var expected = b.Tensors.ToDictionary(t => t.Name, t => t.Type);
            Assert.Equal(expected.Keys.Order(), a.Tensors.Select(t => t.Name).Order());
            var differ = a.Tensors.Where(t => expected[t.Name] != t.Type).Select(t => $"{t.Name}: ours {t.Type}, llama.cpp {expected[t.Name]}").ToList();
            Assert.True(differ.Count == 0, string.Join("\n", differ));
            // Not all one type: the rule had something to decide.
            Assert.True(type == "Q8_0" || a.Tensors.Select(t => t.Type).Distinct().Count() > 2, "every tensor got the same type");
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
