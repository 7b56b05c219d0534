using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// Tiny SmolLM3 (SmolLM3ForCausalLM) and Ministral 3 (Mistral3ForConditionalGeneration: text_config, rope_parameters,
/// tensors under model.language_model. beside a vision tower) checkpoints with the real config.json keys, made from
/// <see cref="TinyLlamaVariant"/>'s weights with HF's rotate-half Q/K row order: `convert` must give the same model.
/// </summary>
public class SmolLm3Mistral3ConvertTests
{
    /// <summary>HF row of GGUF row r of a Q/K matrix: llama.cpp's converter moves HF row (h·hd + half·hd/2 + i) to (h·hd + 2i + half).</summary>
    private static float[] ToHfOrder(float[] gguf, int hd, int cols)
    {
        var hf = new float[gguf.Length];
        for (int r = 0; r < gguf.Length / cols; r++)
        {
            int h = r / hd, j = r % hd;
            int hfRow = h * hd + j % 2 * (hd / 2) + j / 2;
            Array.Copy(gguf, r * cols, hf, hfRow * cols, cols);
        }
        return hf;
    }

    private static IEnumerable<(string, long[], float[])> HfTensors(Dictionary<string, float[]> t, string arch)
    {
        const int D = TinyLlamaVariant.Dim, F = TinyLlamaVariant.Ffn, H = TinyLlamaVariant.Heads, Kv = TinyLlamaVariant.KvHeads;
        int hd = TinyLlamaVariant.HeadDim(arch);
        string m = arch == "mistral3" ? "model.language_model." : "model.";
        yield return (m + "embed_tokens.weight", [TinyLlamaVariant.Vocab, D], t["token_embd.weight"]);
        yield return (m + "norm.weight", [D], t["output_norm.weight"]);
        yield return ("lm_head.weight", [TinyLlamaVariant.Vocab, D], t["output.weight"]);
        if (arch == "mistral3") yield return ("model.vision_tower.patch_conv.weight", [4, 6], new float[24]);
        for (int l = 0; l < TinyLlamaVariant.Layers; l++)
        {
            string p = $"{m}layers.{l}.", b = $"blk.{l}.";
            yield return (p + "input_layernorm.weight", [D], t[b + "attn_norm.weight"]);
            yield return (p + "self_attn.q_proj.weight", [H * hd, D], ToHfOrder(t[b + "attn_q.weight"], hd, D));
            yield return (p + "self_attn.k_proj.weight", [Kv * hd, D], ToHfOrder(t[b + "attn_k.weight"], hd, D));
            yield return (p + "self_attn.v_proj.weight", [Kv * hd, D], t[b + "attn_v.weight"]);
            yield return (p + "self_attn.o_proj.weight", [D, H * hd], t[b + "attn_output.weight"]);
            yield return (p + "post_attention_layernorm.weight", [D], t[b + "ffn_norm.weight"]);
            yield return (p + "mlp.gate_proj.weight", [F, D], t[b + "ffn_gate.weight"]);
            yield return (p + "mlp.up_proj.weight", [F, D], t[b + "ffn_up.weight"]);
            yield return (p + "mlp.down_proj.weight", [D, F], t[b + "ffn_down.weight"]);
        }
    }

    private static void WriteConfig(string dir, string arch, int[]? noRopeLayers = null)
    {
        var text = new Dictionary<string, object>
        {
            ["hidden_size"] = TinyLlamaVariant.Dim, ["num_hidden_layers"] = TinyLlamaVariant.Layers, ["num_attention_heads"] = TinyLlamaVariant.Heads,
            ["num_key_value_heads"] = TinyLlamaVariant.KvHeads, ["intermediate_size"] = TinyLlamaVariant.Ffn, ["vocab_size"] = TinyLlamaVariant.Vocab,
            ["rms_norm_eps"] = (double)TinyLlamaVariant.Eps, ["max_position_embeddings"] = 256, ["tie_word_embeddings"] = false, ["hidden_act"] = "silu",
        };
        object cfg;
        if (arch == "smollm3")
        {
            text["architectures"] = new[] { "SmolLM3ForCausalLM" };
            text["model_type"] = "smollm3";
            text["rope_theta"] = (double)TinyLlamaVariant.RopeBase;
            text["no_rope_layer_interval"] = 4;
            text["no_rope_layers"] = noRopeLayers ?? [1, 1, 1, 0];
            text["attention_bias"] = false;
            text["mlp_bias"] = false;
            cfg = text;
        }
        else
        {
            text["model_type"] = "ministral3";
            text["head_dim"] = TinyLlamaVariant.HeadDim(arch);
            text["rope_parameters"] = new Dictionary<string, object>
            {
                ["rope_type"] = "yarn", ["type"] = "yarn", ["rope_theta"] = (double)TinyLlamaVariant.RopeBase, ["factor"] = (double)TinyLlamaVariant.YarnFactor,
                ["original_max_position_embeddings"] = TinyLlamaVariant.OriginalContext, ["beta_fast"] = 32.0, ["beta_slow"] = 1.0,
                ["mscale"] = 1.0, ["mscale_all_dim"] = 1.0, ["llama_4_scaling_beta"] = (double)TinyLlamaVariant.Temperature,
            };
            cfg = new Dictionary<string, object>
            {
                ["architectures"] = new[] { "Mistral3ForConditionalGeneration" }, ["model_type"] = "mistral3", ["image_token_index"] = 10,
                ["text_config"] = text, ["vision_config"] = new Dictionary<string, object> { ["hidden_size"] = 16, ["model_type"] = "pixtral" },
            };
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(cfg));
    }

    private static float[] Logits(string path, int[] tokens)
    {
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        return model.Forward(model.CreateState(32, KvCacheType.F32), tokens).ToArray();
    }

    [Theory]
    [InlineData("smollm3")]
    [InlineData("mistral3")]
    public void Checkpoint_converts_to_the_same_model(string arch)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-" + arch + "-");
        try
        {
            var (direct, w) = TinyLlamaVariant.WriteModel(Path.Combine(dir.FullName, "direct.gguf"), arch);
            string hf = Directory.CreateDirectory(Path.Combine(dir.FullName, "hf")).FullName;
            SafeTensorsWriter.Write(Path.Combine(hf, "model.safetensors"), HfTensors(w.T, arch));
            WriteConfig(hf, arch);
            HfConvertTests.WriteTokenizer(hf, TinyLlamaVariant.Vocab);
            string converted = Path.Combine(dir.FullName, "conv.gguf");
            HfConverter.Convert(hf, converted, ConvertType.F32);
            using (var f = GgufFile.Open(converted))
            {
                Assert.Equal(arch, f.Architecture);
                Assert.True(f.TryGetFloat($"{arch}.rope.freq_base", out float theta) && theta == TinyLlamaVariant.RopeBase);
                Assert.Null(f.FindTensor("v.patch_conv.weight"));
                if (arch == "mistral3")
                {
                    Assert.True(f.TryGetInt64("mistral3.attention.key_length", out long kl) && kl == TinyLlamaVariant.HeadDim(arch));
                    Assert.Equal("yarn", f.GetStringOrNull("mistral3.rope.scaling.type"));
                    Assert.True(f.TryGetInt64("mistral3.rope.scaling.original_context_length", out long oc) && oc == TinyLlamaVariant.OriginalContext);
                    Assert.True(f.TryGetFloat("mistral3.attention.temperature_scale", out float ts) && ts == TinyLlamaVariant.Temperature);
                    Assert.True(f.TryGetFloat("mistral3.rope.scaling.yarn_log_multiplier", out float lm) && lm == 1f);
                }
            }
            int[] tokens = [3, 17, 5, 30, 0, 22, 9, 14, 1, 2, 33, 7];
            var want = Logits(direct, tokens);
            var got = Logits(converted, tokens);
            for (int i = 0; i < TinyLlamaVariant.Vocab; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-5, $"logit {i}: {got[i]} vs {want[i]}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void A_NoPE_pattern_llama_cpp_cannot_express_is_refused()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-smollm3-nope-");
        try
        {
            var (_, w) = TinyLlamaVariant.WriteModel(Path.Combine(dir.FullName, "direct.gguf"), "smollm3");
            string hf = Directory.CreateDirectory(Path.Combine(dir.FullName, "hf")).FullName;
            SafeTensorsWriter.Write(Path.Combine(hf, "model.safetensors"), HfTensors(w.T, "smollm3"));
            WriteConfig(hf, "smollm3", noRopeLayers: [1, 0, 1, 0]);
            HfConvertTests.WriteTokenizer(hf, TinyLlamaVariant.Vocab);
            var e = Assert.Throws<UnsupportedModelException>(() => HfConverter.Convert(hf, Path.Combine(dir.FullName, "x.gguf"), ConvertType.F32));
            Assert.Contains("no_rope_layers", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
