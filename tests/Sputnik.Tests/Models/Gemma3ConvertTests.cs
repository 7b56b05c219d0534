using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// A tiny Gemma3ForCausalLM Hugging Face checkpoint (config.json with the real keys, norms stored as w where the GGUF
/// holds 1 + w) made from <see cref="TinyGemma3"/>'s weights: `convert` must give the same model.
/// </summary>
public class Gemma3ConvertTests
{
    private static float[] MinusOne(float[] w) => w.Select(v => v - 1f).ToArray();

    private static IEnumerable<(string, long[], float[])> HfTensors(Dictionary<string, float[]> t)
    {
        const int D = TinyGemma3.Dim, Hd = TinyGemma3.HeadDim, F = TinyGemma3.Ffn;
        yield return ("model.embed_tokens.weight", [TinyGemma3.Vocab, D], t["token_embd.weight"]);
        yield return ("model.norm.weight", [D], MinusOne(t["output_norm.weight"]));
        yield return ("lm_head.weight", [TinyGemma3.Vocab, D], t["output.weight"]);
        for (int l = 0; l < TinyGemma3.Layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.";
            yield return (p + "input_layernorm.weight", [D], MinusOne(t[b + "attn_norm.weight"]));
            yield return (p + "self_attn.q_proj.weight", [TinyGemma3.Heads * Hd, D], t[b + "attn_q.weight"]);
            yield return (p + "self_attn.k_proj.weight", [TinyGemma3.KvHeads * Hd, D], t[b + "attn_k.weight"]);
            yield return (p + "self_attn.v_proj.weight", [TinyGemma3.KvHeads * Hd, D], t[b + "attn_v.weight"]);
            yield return (p + "self_attn.q_norm.weight", [Hd], MinusOne(t[b + "attn_q_norm.weight"]));
            yield return (p + "self_attn.k_norm.weight", [Hd], MinusOne(t[b + "attn_k_norm.weight"]));
            yield return (p + "self_attn.o_proj.weight", [D, TinyGemma3.Heads * Hd], t[b + "attn_output.weight"]);
            yield return (p + "post_attention_layernorm.weight", [D], MinusOne(t[b + "post_attention_norm.weight"]));
            yield return (p + "pre_feedforward_layernorm.weight", [D], MinusOne(t[b + "ffn_norm.weight"]));
            yield return (p + "mlp.gate_proj.weight", [F, D], t[b + "ffn_gate.weight"]);
            yield return (p + "mlp.up_proj.weight", [F, D], t[b + "ffn_up.weight"]);
            yield return (p + "mlp.down_proj.weight", [D, F], t[b + "ffn_down.weight"]);
            yield return (p + "post_feedforward_layernorm.weight", [D], MinusOne(t[b + "post_ffw_norm.weight"]));
        }
    }

    /// <summary>config.json as transformers writes Gemma3TextConfig (gemma-3-1b-it's keys, this model's sizes).</summary>
    private static void WriteConfig(string dir)
    {
        var cfg = new Dictionary<string, object?>
        {
            ["architectures"] = new[] { "Gemma3ForCausalLM" }, ["model_type"] = "gemma3_text",
            ["hidden_size"] = TinyGemma3.Dim, ["num_hidden_layers"] = TinyGemma3.Layers, ["num_attention_heads"] = TinyGemma3.Heads,
            ["num_key_value_heads"] = TinyGemma3.KvHeads, ["head_dim"] = TinyGemma3.HeadDim, ["intermediate_size"] = TinyGemma3.Ffn,
            ["vocab_size"] = TinyGemma3.Vocab, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0, ["rope_local_base_freq"] = 10000.0,
            ["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "linear", ["factor"] = (double)TinyGemma3.RopeFactor },
            ["max_position_embeddings"] = 256, ["sliding_window"] = TinyGemma3.Window, ["sliding_window_pattern"] = 2,
            ["query_pre_attn_scalar"] = TinyGemma3.HeadDim, ["hidden_activation"] = "gelu_pytorch_tanh",
            ["attn_logit_softcapping"] = null, ["final_logit_softcapping"] = null,
            ["tie_word_embeddings"] = false, ["attention_bias"] = false,
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(cfg));
    }

    private static float[] Logits(string path, int[] tokens)
    {
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        return model.Forward(model.CreateState(32, KvCacheType.F32), tokens).ToArray();
    }

    [Fact]
    public void Checkpoint_converts_to_the_same_model()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-gemma3-");
        try
        {
            var (direct, w) = TinyGemma3.WriteModel(Path.Combine(dir.FullName, "direct.gguf"));
            string hf = Directory.CreateDirectory(Path.Combine(dir.FullName, "hf")).FullName;
            SafeTensorsWriter.Write(Path.Combine(hf, "model.safetensors"), HfTensors(w.T));
            WriteConfig(hf);
            HfConvertTests.WriteTokenizer(hf, TinyGemma3.Vocab);
            string converted = Path.Combine(dir.FullName, "conv.gguf");
            HfConverter.Convert(hf, converted, ConvertType.F32);

            const string a = "gemma3";
            using (var f = GgufFile.Open(converted))
            {
                Assert.Equal(a, f.Architecture);
                Assert.True(f.TryGetInt64($"{a}.attention.key_length", out long kl) && kl == TinyGemma3.HeadDim);
                Assert.True(f.TryGetInt64($"{a}.attention.sliding_window", out long sw) && sw == TinyGemma3.Window);
                Assert.True(f.TryGetInt64($"{a}.attention.sliding_window_pattern", out long sp) && sp == 2);
                Assert.Equal("linear", f.GetStringOrNull($"{a}.rope.scaling.type"));
                Assert.False(f.Metadata.ContainsKey($"{a}.rope.freq_base_swa")); // llama.cpp's default, as its converter leaves it
                Assert.NotNull(f.FindTensor("blk.1.post_ffw_norm.weight"));
            }
            int[] tokens = [3, 17, 5, 30, 0, 22, 9, 14];
            var want = Logits(direct, tokens);
            var got = Logits(converted, tokens);
            for (int i = 0; i < TinyGemma3.Vocab; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-5, $"logit {i}: {got[i]} vs {want[i]}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
