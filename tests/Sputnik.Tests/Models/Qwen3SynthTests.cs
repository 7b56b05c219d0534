using Sputnik.Cli.Commands;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Tokenizers;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>`sputnik synth` presets for qwen3 / qwen3moe: real shapes and llama.cpp's keys; `quantize` and `info` on them.</summary>
public class Qwen3SynthTests
{
    [Fact]
    public void Presets_have_the_real_models_shapes()
    {
        var r1 = SyntheticModel.FindPreset("qwen3-8b"); // DeepSeek-R1-0528-Qwen3-8B
        Assert.Equal(("qwen3", 4096, 36, 12288, 32, 8, 128, 151936), (r1.Arch, r1.Config.Dim, r1.Config.Layers, r1.Config.FfnDim, r1.Config.Heads, r1.Config.KvHeads, r1.Config.HeadDim, r1.Config.VocabSize));
        Assert.False(r1.TiedEmbeddings);
        var small = SyntheticModel.FindPreset("qwen3-0.6b");
        Assert.Equal((1024, 28, 3072, 16, 8, 128), (small.Config.Dim, small.Config.Layers, small.Config.FfnDim, small.Config.Heads, small.Config.KvHeads, small.Config.HeadDim));
        Assert.True(small.TiedEmbeddings);
        var moe = SyntheticModel.FindPreset("qwen3-30b-a3b");
        Assert.Equal(("qwen3moe", 2048, 48, 32, 4, 128, 128, 8, 768), (moe.Arch, moe.Config.Dim, moe.Config.Layers, moe.Config.Heads, moe.Config.KvHeads, moe.Config.HeadDim, moe.Config.Moe!.ExpertCount, moe.Config.Moe!.ExpertsUsed, moe.Config.ExpertFfnDim));
    }

    [Theory]
    [InlineData("qwen3-tiny")]
    [InlineData("qwen3moe-tiny")]
    public void Tiny_preset_loads_quantizes_and_describes_itself(string preset)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-synth-qwen3-");
        try
        {
            var p = SyntheticModel.FindPreset(preset);
            int experts = p.Config.Moe?.ExpertCount ?? 0;
            string f32 = Path.Combine(dir.FullName, "f32.gguf");
            SyntheticModel.Write(f32, new SynthOptions { Preset = p, FileType = FileType.AllF32, Seed = 3, Threads = 2 });
            using (var f = GgufFile.Open(f32))
            {
                string a = p.Arch;
                Assert.True(f.TryGetInt64($"{a}.attention.key_length", out long kl) && kl == p.Config.HeadDim);
                Assert.True(f.TryGetInt64($"{a}.rope.dimension_count", out long rope) && rope == p.Config.HeadDim);
                Assert.Equal([p.Config.HeadDim], f.GetTensor("blk.3.attn_k_norm.weight").Dims);
                Assert.Null(f.FindTensor("blk.0.attn_q.bias"));
                Assert.Contains("enable_thinking", f.GetStringOrNull("tokenizer.chat_template"));
                if (experts > 0)
                {
                    Assert.True(f.TryGetInt64($"{a}.expert_count", out long e) && e == experts);
                    Assert.True(f.TryGetInt64($"{a}.expert_used_count", out long k) && k == p.Config.Moe!.ExpertsUsed);
                    Assert.True(f.TryGetInt64($"{a}.expert_feed_forward_length", out long eff) && eff == p.Config.ExpertFfnDim);
                    Assert.Equal([p.Config.Dim, p.Config.ExpertFfnDim, experts], f.GetTensor("blk.0.ffn_gate_exps.weight").Dims);
                    Assert.Null(f.FindTensor("blk.0.ffn_gate.weight"));
                }
                var info = InfoCommand.Describe(f);
                Assert.Equal(p.Config.HeadDim, (long)info["head_size"]!);
                Assert.True((bool)info["qk_norm"]!);
                Assert.Equal(experts > 0 ? experts : null, (long?)info["expert_count"]);
            }

            string q = Path.Combine(dir.FullName, "q4km.gguf");
            GgufQuantizer.Quantize(f32, q, FileType.Q4_K_M, threads: 2);
            using (var f = GgufFile.Open(q))
            {
                Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.attn_q_norm.weight").Type);
                Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.attn_k_norm.weight").Type);
                if (experts > 0)
                {
                    Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.ffn_gate_inp.weight").Type);
                    Assert.Equal(GgmlType.Q4_K, f.GetTensor("blk.1.ffn_gate_exps.weight").Type);
                    // ffn_down of a "more bits" layer (the last of 4) wants Q6_K, experts included; rows of 128 do
                    // not fill a 256-block, so Q6_K falls back to Q8_0 and Q4_K (other layers) to Q5_0, as in llama.cpp.
                    Assert.Equal(GgmlType.Q8_0, f.GetTensor("blk.3.ffn_down_exps.weight").Type);
                    Assert.Equal(GgmlType.Q5_0, f.GetTensor("blk.1.ffn_down_exps.weight").Type);
                }
            }
            int[] prompt = [5, 6, 7, 8, 9];
            float[] Logits(string path)
            {
                using var m = ModelLoader.Load(GgufFile.Open(path), threads: 2);
                return m.Forward(m.CreateState(32, KvCacheType.F32), prompt).ToArray();
            }
            var a32 = Logits(f32);
            var a4 = Logits(q);
            Assert.All(a32, v => Assert.True(float.IsFinite(v)));
            // Quantization error stays small next to the logits' own spread.
            double spread = a32.Max() - a32.Min(), err = a32.Zip(a4, (x, y) => Math.Abs(x - y)).Max();
            Assert.True(err < 0.25 * spread, $"Q4_K_M max error {err} against logit spread {spread}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Thinking_off_uses_the_templates_enable_thinking()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-synth-qwen3-think-");
        try
        {
            string path = Path.Combine(dir.FullName, "m.gguf");
            SyntheticModel.Write(path, new SynthOptions { Preset = SyntheticModel.FindPreset("qwen3-tiny"), FileType = FileType.AllF32, Threads = 2 });
            using var f = GgufFile.Open(path);
            var builder = new ChatPromptBuilder(Tokenizer.Create(TokenizerData.FromGguf(f)), f.GetStringOrNull("tokenizer.chat_template"));
            ChatMessage[] chat = [new("user", "hi")];
            var on = builder.Build(chat);
            var off = builder.Build(chat, thinking: false);
            Assert.EndsWith("<|im_start|>assistant\n", on.Text);
            // The template's own empty think block, once: no second one appended after it.
            Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n\n", off.Text);
            Assert.Equal(1, off.Text.Split("</think>").Length - 1);
            Assert.False(off.StartsInThinking);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
