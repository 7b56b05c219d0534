using Sputnik.Cli.Commands;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tokenizers;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>`sputnik synth` presets for phi3: real shapes and llama.cpp's keys; `quantize`, `info` and the chat template on them.</summary>
public class Phi3SynthTests
{
    [Fact]
    public void Presets_have_the_real_models_shapes()
    {
        var preset = SyntheticModel.FindPreset("phi-4-mini-reasoning");
        var r = preset.Config;
        Assert.Equal(("phi3", 3072, 32, 8192, 24, 8, 128, 96, 200064), (preset.Arch, r.Dim, r.Layers, r.FfnDim, r.Heads, r.KvHeads, r.HeadDim, r.RopeDims, r.VocabSize));
        Assert.True(preset.TiedEmbeddings);
        Assert.Equal((131072, 4096), (r.ContextLength, r.RopeOriginalContext));
        Assert.Null(preset.ChatTemplate); // the family's: Phi-4-mini-reasoning's
        var p35Preset = SyntheticModel.FindPreset("phi-3.5-mini");
        var p35 = p35Preset.Config;
        Assert.Equal((3072, 32, 8192, 32, 32, 96, 96, 32064), (p35.Dim, p35.Layers, p35.FfnDim, p35.Heads, p35.KvHeads, p35.HeadDim, p35.RopeDims, p35.VocabSize));
        Assert.False(p35Preset.TiedEmbeddings);
        Assert.Equal(Phi3.Phi35ChatTemplate, p35Preset.ChatTemplate);
        // Phi-4-mini's LongRoPE attention factor from 131,072 / 4,096, carried by both presets.
        Assert.Equal(1.19024, Phi3.LongRopeAttnFactor(131072, 4096), 5);
        Assert.Equal(Phi3.LongRopeAttnFactor(131072, 4096), ((Phi3.Params)r.ArchParams!).AttnFactor);
    }

    [Fact]
    public void Tiny_preset_loads_quantizes_and_describes_itself()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-synth-phi3-");
        try
        {
            var p = SyntheticModel.FindPreset("phi3-tiny");
            string f32 = Path.Combine(dir.FullName, "f32.gguf");
            SyntheticModel.Write(f32, new SynthOptions { Preset = p, FileType = FileType.AllF32, Seed = 3, Threads = 2 });
            using (var f = GgufFile.Open(f32))
            {
                Assert.True(f.TryGetInt64("phi3.rope.dimension_count", out long rope) && rope == 48);
                var c = p.Config;
                Assert.Equal([c.Dim, c.Dim + 2 * c.KvHeads * c.HeadDim], f.GetTensor("blk.3.attn_qkv.weight").Dims);
                Assert.Equal([c.Dim, 2 * c.FfnDim], f.GetTensor("blk.0.ffn_up.weight").Dims);
                Assert.Null(f.FindTensor("blk.0.attn_q.weight"));
                var longF = new WeightMatrix(f, f.GetTensor("rope_factors_long.weight"), mayInterleave: false).ToFloatVector();
                var shortF = new WeightMatrix(f, f.GetTensor("rope_factors_short.weight"), mayInterleave: false).ToFloatVector();
                Assert.Equal(24, longF.Length);
                Assert.True(longF[^1] > shortF[^1] * 4, "long factors should stretch the slow pairs far more than short ones");
                var info = InfoCommand.Describe(f);
                Assert.Equal(48L, (long)info["rope_dimension_count"]!);
                Assert.Equal(4096L, (long)info["rope_original_context"]!);
                Assert.Equal(Phi3.LongRopeAttnFactor(p.Config.ContextLength, 4096), (float)info["rope_attn_factor"]!);
                Assert.True((bool)info["fused_qkv"]!);
                Assert.NotNull(info["rope_factors"]);
            }

            string q = Path.Combine(dir.FullName, "q4km.gguf");
            GgufQuantizer.Quantize(f32, q, FileType.Q4_K_M, threads: 2);
            using (var f = GgufFile.Open(q))
            {
                Assert.Equal(GgmlType.F32, f.GetTensor("rope_factors_long.weight").Type);
                // llama-quantize's Q4_K_M gives attn_qkv attn_v's rule (its ATTENTION_QKV branch comes after the attn_v one).
                Assert.Equal(GgmlType.Q4_K, f.GetTensor("blk.0.attn_qkv.weight").Type);
                Assert.Equal(GgmlType.Q6_K, f.GetTensor("blk.3.attn_qkv.weight").Type);
                Assert.Equal(GgmlType.Q4_K, f.GetTensor("blk.1.ffn_up.weight").Type);
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
            double spread = a32.Max() - a32.Min(), err = a32.Zip(a4, (x, y) => Math.Abs(x - y)).Max();
            Assert.True(err < 0.25 * spread, $"Q4_K_M max error {err} against logit spread {spread}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Phi4_mini_reasoning_template_renders_and_its_think_block_streams_as_reasoning()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-synth-phi3-chat-");
        try
        {
            string path = Path.Combine(dir.FullName, "m.gguf");
            SyntheticModel.Write(path, new SynthOptions { Preset = SyntheticModel.FindPreset("phi3-tiny"), FileType = FileType.AllF32, Threads = 2 });
            using var f = GgufFile.Open(path);
            var tokenizer = Tokenizer.Create(TokenizerData.FromGguf(f));
            var builder = new ChatPromptBuilder(tokenizer, f.GetStringOrNull("tokenizer.chat_template"));
            var prompt = builder.Build([new("user", "What is 2+3?")]);
            Assert.Equal("<|system|>Your name is Phi, an AI math expert developed by Microsoft.<|end|><|user|>What is 2+3?<|end|><|assistant|>", prompt.Text);
            var withSystem = builder.Build([ChatMessage.System("Be brief."), new("user", "hi")]);
            Assert.Equal("<|system|>Be brief.<|end|><|user|>hi<|end|><|assistant|>", withSystem.Text);
            // The markers are single special tokens; <|end|> ends generation.
            Assert.Equal(tokenizer.FindToken("<|assistant|>"), prompt.Tokens[^1]);
            Assert.True(tokenizer.IsEndOfGeneration(tokenizer.FindToken("<|end|>")!.Value));
            // A file named Phi-3 drops whitespace after special tokens (llama.cpp's RSTRIP for such names), others keep it.
            var data = TokenizerData.FromGguf(f);
            Assert.True(data.StripSpaceAfterSpecials); // "Sputnik synthetic phi3-tiny"
            string spaced = "<|user|>\n What<|end|>\n<|assistant|>\n", tight = "<|user|>What<|end|><|assistant|>";
            Assert.Equal(tokenizer.Encode(tight, addBos: false, parseSpecial: true), tokenizer.Encode(spaced, addBos: false, parseSpecial: true));
            var keeps = Tokenizer.Create(data with { StripSpaceAfterSpecials = false });
            Assert.True(keeps.Encode(spaced, addBos: false, parseSpecial: true).Length > keeps.Encode(tight, addBos: false, parseSpecial: true).Length);
            // The model opens <think> itself (the prompt does not), and the chat knows to look for it.
            Assert.True(builder.SupportsThinking);
            Assert.False(prompt.StartsInThinking);
            var parser = new ReasoningParser(prompt.StartsInThinking);
            var a = parser.Push("<think>\n2 and 3 make 5.");
            var b = parser.Push("</think>\n\nThe answer is 5.");
            Assert.Equal("2 and 3 make 5.", a.Reasoning + b.Reasoning);
            Assert.Equal("The answer is 5.", (a.Content + b.Content + parser.Flush().Content).Trim());
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
