using Sputnik.Cli.Commands;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tokenizers;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>`sputnik synth` presets for smollm3 / mistral3, `quantize` and `info` on them, and their chat formats and reasoning tags.</summary>
public class SmolLm3Mistral3SynthTests
{
    [Fact]
    public void Presets_have_the_real_models_shapes()
    {
        var smol = SyntheticModel.FindPreset("smollm3-3b");
        Assert.Equal(("smollm3", 2048, 36, 11008, 16, 4, 128, 128256), (smol.Arch, smol.Config.Dim, smol.Config.Layers, smol.Config.FfnDim, smol.Config.Heads, smol.Config.KvHeads, smol.Config.HeadDim, smol.Config.VocabSize));
        Assert.True(smol.TiedEmbeddings);
        var ministral = SyntheticModel.FindPreset("ministral3-3b");
        Assert.Equal(("mistral3", 3072, 26, 9216, 32, 8, 128, 131072), (ministral.Arch, ministral.Config.Dim, ministral.Config.Layers, ministral.Config.FfnDim, ministral.Config.Heads, ministral.Config.KvHeads, ministral.Config.HeadDim, ministral.Config.VocabSize));
        Assert.Equal((16f, 16384), (ministral.Config.RopeScalingFactor, ministral.Config.RopeOriginalContext));
        Assert.Equal(new Mistral3.Params(0.1f, 1f), ministral.Config.ArchParams);
    }

    private static SynthPreset Tiny(string arch) => SyntheticModel.FindPreset(arch == "smollm3" ? "smollm3-tiny" : "ministral3-tiny");

    [Theory]
    [InlineData("smollm3")]
    [InlineData("mistral3")]
    public void Tiny_preset_loads_quantizes_and_describes_itself(string arch)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-synth-" + arch + "-");
        try
        {
            var p = Tiny(arch);
            string f32 = Path.Combine(dir.FullName, "f32.gguf");
            SyntheticModel.Write(f32, new SynthOptions { Preset = p, FileType = FileType.AllF32, Seed = 3, Threads = 2 });
            using (var f = GgufFile.Open(f32))
            {
                Assert.Equal(arch, f.Architecture);
                Assert.Null(f.FindTensor("output.weight")); // tied, as both 3B models
                var info = InfoCommand.Describe(f);
                if (arch == "smollm3")
                {
                    Assert.Equal(4, (int)info["no_rope_every_nth_layer"]!);
                    Assert.Null(info["rope_scaling"]);
                }
                else
                {
                    Assert.Equal("yarn", (string)info["rope_scaling"]!);
                    Assert.Equal(16f, (float)info["rope_scaling_factor"]!);
                    Assert.Equal(16L, (long)info["rope_original_context"]!);
                    Assert.Equal(0.1f, (float)info["attention_temperature_scale"]!);
                    Assert.Equal(1f, (float)info["yarn_log_multiplier"]!);
                    Assert.Equal(128L, (long)info["head_size"]!);
                }
            }
            string q = Path.Combine(dir.FullName, "q4km.gguf");
            GgufQuantizer.Quantize(f32, q, FileType.Q4_K_M, threads: 2);
            using (var f = GgufFile.Open(q)) Assert.Equal(GgmlType.Q4_K, f.GetTensor("blk.1.attn_q.weight").Type);
            int[] prompt = Enumerable.Range(5, 24).ToArray(); // past the tiny Ministral's 16-token original context
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

    private static ChatPromptBuilder Builder(string arch, string dir)
    {
        string path = Path.Combine(dir, arch + ".gguf");
        SyntheticModel.Write(path, new SynthOptions { Preset = Tiny(arch), FileType = FileType.AllF32, Threads = 2 });
        using var f = GgufFile.Open(path);
        return new ChatPromptBuilder(Tokenizer.Create(TokenizerData.FromGguf(f)), f.GetStringOrNull("tokenizer.chat_template"));
    }

    [Fact]
    public void SmolLm3_thinks_unless_told_no_think()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-smollm3-chat-");
        try
        {
            var b = Builder("smollm3", dir.FullName);
            Assert.True(b.SupportsThinking);
            Assert.Equal(ThinkTags.Think, b.Tags);
            ChatMessage[] chat = [new("user", "hi")];
            var on = b.Build(chat);
            Assert.Contains("Reasoning Mode: /think", on.Text);
            Assert.EndsWith("<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n", on.Text);
            Assert.False(on.StartsInThinking);
            // Thinking off goes through the template's enable_thinking: an empty think block opens the answer.
            var off = b.Build(chat, thinking: false);
            Assert.Contains("Reasoning Mode: /no_think", off.Text);
            Assert.EndsWith("<|im_start|>assistant\n<think>\n\n</think>\n", off.Text);
            // /no_think in the system prompt does the same, and the flag leaves the instructions.
            var flagged = b.Build([new("system", "Be brief. /no_think"), new("user", "hi")]);
            Assert.Contains("Reasoning Mode: /no_think", flagged.Text);
            Assert.Contains("Be brief.\n\n<|im_end|>", flagged.Text);
            Assert.DoesNotContain("Be brief. /no_think", flagged.Text);
            Assert.EndsWith("<think>\n\n</think>\n", flagged.Text);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Ministral3_reasoning_uses_the_THINK_tags()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-ministral3-chat-");
        try
        {
            var b = Builder("mistral3", dir.FullName);
            Assert.True(b.SupportsThinking);
            Assert.Equal(ThinkTags.Mistral, b.Tags);
            var p = b.Build([new("system", "You are terse."), new("user", "2+2?"), new("assistant", "4"), new("user", "3+3?")]);
            Assert.Equal("<|begin_of_text|>[SYSTEM_PROMPT]You are terse.[/SYSTEM_PROMPT][INST]2+2?[/INST]4<|eot_id|>[INST]3+3?[/INST]", p.Text);
            Assert.False(p.StartsInThinking);
            // No system message: the default one asks for [THINK]…[/THINK].
            Assert.Contains("[THINK]", b.Build([new("user", "hi")]).Text);

            // The model's output streams as reasoning up to [/THINK], whatever the token boundaries.
            var parser = new ReasoningParser(false, b.Tags);
            string reasoning = "", content = "";
            foreach (string piece in new[] { "[TH", "INK]Let me", " add.[/TH", "INK]", "6" })
            {
                var d = parser.Push(piece);
                reasoning += d.Reasoning;
                content += d.Content;
            }
            var rest = parser.Flush();
            Assert.Equal(("Let me add.", "6"), (reasoning + rest.Reasoning, content + rest.Content));
            Assert.True(parser.ThinkingClosed);
            Assert.Equal(("x", "y"), ReasoningParser.Split("[THINK]x[/THINK]y", tags: ThinkTags.Mistral) is var (r, c) ? (r!, c) : default);
            Assert.Equal("[/THINK]", new ReasoningOptions { Tags = b.Tags }.CloseText);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
