using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// Tiny Qwen3 / Qwen3-MoE Hugging Face checkpoints (config.json with the real keys, per-expert safetensors as
/// transformers saves them) made from <see cref="TinyQwen3"/>'s weights: `convert` must give the same model.
/// </summary>
public class Qwen3ConvertTests
{
    /// <summary>The HF name and shape of each GGUF tensor of <see cref="TinyQwen3"/> (experts split one per tensor).</summary>
    private static IEnumerable<(string, long[], float[])> HfTensors(Dictionary<string, float[]> t, bool moe)
    {
        const int D = TinyQwen3.Dim, Hd = TinyQwen3.HeadDim, Eff = TinyQwen3.ExpertFfn;
        yield return ("model.embed_tokens.weight", [TinyQwen3.Vocab, D], t["token_embd.weight"]);
        yield return ("model.norm.weight", [D], t["output_norm.weight"]);
        yield return ("lm_head.weight", [TinyQwen3.Vocab, D], t["output.weight"]);
        for (int l = 0; l < TinyQwen3.Layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.";
            yield return (p + "input_layernorm.weight", [D], t[b + "attn_norm.weight"]);
            yield return (p + "self_attn.q_proj.weight", [TinyQwen3.Heads * Hd, D], t[b + "attn_q.weight"]);
            yield return (p + "self_attn.k_proj.weight", [TinyQwen3.KvHeads * Hd, D], t[b + "attn_k.weight"]);
            yield return (p + "self_attn.v_proj.weight", [TinyQwen3.KvHeads * Hd, D], t[b + "attn_v.weight"]);
            yield return (p + "self_attn.q_norm.weight", [Hd], t[b + "attn_q_norm.weight"]);
            yield return (p + "self_attn.k_norm.weight", [Hd], t[b + "attn_k_norm.weight"]);
            yield return (p + "self_attn.o_proj.weight", [D, TinyQwen3.Heads * Hd], t[b + "attn_output.weight"]);
            yield return (p + "post_attention_layernorm.weight", [D], t[b + "ffn_norm.weight"]);
            if (!moe)
            {
                yield return (p + "mlp.gate_proj.weight", [TinyQwen3.Ffn, D], t[b + "ffn_gate.weight"]);
                yield return (p + "mlp.up_proj.weight", [TinyQwen3.Ffn, D], t[b + "ffn_up.weight"]);
                yield return (p + "mlp.down_proj.weight", [D, TinyQwen3.Ffn], t[b + "ffn_down.weight"]);
                continue;
            }
            yield return (p + "mlp.gate.weight", [TinyQwen3.Experts, D], t[b + "ffn_gate_inp.weight"]);
            for (int e = 0; e < TinyQwen3.Experts; e++)
            {
                yield return (p + $"mlp.experts.{e}.gate_proj.weight", [Eff, D], t[b + "ffn_gate_exps.weight"][(e * Eff * D)..((e + 1) * Eff * D)]);
                yield return (p + $"mlp.experts.{e}.up_proj.weight", [Eff, D], t[b + "ffn_up_exps.weight"][(e * Eff * D)..((e + 1) * Eff * D)]);
                yield return (p + $"mlp.experts.{e}.down_proj.weight", [D, Eff], t[b + "ffn_down_exps.weight"][(e * D * Eff)..((e + 1) * D * Eff)]);
            }
        }
    }

    private static void WriteConfig(string dir, bool moe, object? mlpOnlyLayers = null)
    {
        var cfg = new Dictionary<string, object>
        {
            ["architectures"] = new[] { moe ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM" },
            ["model_type"] = moe ? "qwen3_moe" : "qwen3",
            ["hidden_size"] = TinyQwen3.Dim, ["num_hidden_layers"] = TinyQwen3.Layers, ["num_attention_heads"] = TinyQwen3.Heads,
            ["num_key_value_heads"] = TinyQwen3.KvHeads, ["head_dim"] = TinyQwen3.HeadDim, ["intermediate_size"] = TinyQwen3.Ffn,
            ["vocab_size"] = TinyQwen3.Vocab, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0, ["max_position_embeddings"] = 256,
            ["tie_word_embeddings"] = false, ["attention_bias"] = false, ["hidden_act"] = "silu",
        };
        if (moe)
        {
            cfg["num_experts"] = TinyQwen3.Experts;
            cfg["num_experts_per_tok"] = TinyQwen3.ExpertsUsed;
            cfg["moe_intermediate_size"] = TinyQwen3.ExpertFfn;
            cfg["norm_topk_prob"] = true;
            cfg["decoder_sparse_step"] = 1;
            cfg["mlp_only_layers"] = mlpOnlyLayers ?? Array.Empty<int>();
        }
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(cfg));
    }

    private static float[] Logits(string path, int[] tokens)
    {
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        return model.Forward(model.CreateState(32, KvCacheType.F32), tokens).ToArray();
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Checkpoint_converts_to_the_same_model(bool moe)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-qwen3-");
        try
        {
            var (direct, w) = TinyQwen3.WriteModel(Path.Combine(dir.FullName, "direct.gguf"), moe);
            string hf = Directory.CreateDirectory(Path.Combine(dir.FullName, "hf")).FullName;
            SafeTensorsWriter.Write(Path.Combine(hf, "model.safetensors"), HfTensors(w.T, moe));
            WriteConfig(hf, moe);
            HfConvertTests.WriteTokenizer(hf, TinyQwen3.Vocab);
            string converted = Path.Combine(dir.FullName, "conv.gguf");
            HfConverter.Convert(hf, converted, ConvertType.F32);

            string a = moe ? "qwen3moe" : "qwen3";
            using (var f = GgufFile.Open(converted))
            {
                Assert.Equal(a, f.Architecture);
                Assert.True(f.TryGetInt64($"{a}.attention.key_length", out long kl) && kl == TinyQwen3.HeadDim);
                Assert.Equal(GgmlType.F32, f.GetTensor("blk.1.attn_k_norm.weight").Type);
                Assert.Equal([TinyQwen3.HeadDim], f.GetTensor("blk.1.attn_q_norm.weight").Dims);
                Assert.Null(f.FindTensor("blk.0.attn_q.bias"));
                if (moe)
                {
                    Assert.True(f.TryGetInt64($"{a}.expert_count", out long n) && n == TinyQwen3.Experts);
                    Assert.True(f.TryGetInt64($"{a}.expert_used_count", out long k) && k == TinyQwen3.ExpertsUsed);
                    Assert.True(f.TryGetInt64($"{a}.expert_feed_forward_length", out long eff) && eff == TinyQwen3.ExpertFfn);
                    Assert.Equal([TinyQwen3.ExpertFfn, TinyQwen3.Dim, TinyQwen3.Experts], f.GetTensor("blk.0.ffn_down_exps.weight").Dims);
                }
            }
            int[] tokens = [3, 17, 5, 30, 0, 22];
            var want = Logits(direct, tokens);
            var got = Logits(converted, tokens);
            for (int i = 0; i < TinyQwen3.Vocab; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-5, $"logit {i}: {got[i]} vs {want[i]}");

            // Q8_0: norms and the router stay F32, matrices are quantized, and the model stays close.
            string q8 = Path.Combine(dir.FullName, "q8.gguf");
            HfConverter.Convert(hf, q8, ConvertType.Q8_0);
            using (var f = GgufFile.Open(q8))
            {
                Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.attn_q_norm.weight").Type);
                Assert.Equal(GgmlType.Q8_0, f.GetTensor("blk.0.attn_q.weight").Type);
                if (moe)
                {
                    Assert.Equal(GgmlType.F32, f.GetTensor("blk.0.ffn_gate_inp.weight").Type);
                    Assert.Equal(GgmlType.Q8_0, f.GetTensor("blk.0.ffn_up_exps.weight").Type);
                }
            }
            var q = Logits(q8, tokens);
            for (int i = 0; i < TinyQwen3.Vocab; i++) Assert.True(Math.Abs(q[i] - want[i]) < 0.05, $"Q8_0 logit {i}: {q[i]} vs {want[i]}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Dense_layers_in_a_moe_checkpoint_are_refused_by_name()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-qwen3moe-dense-");
        try
        {
            var (_, w) = TinyQwen3.WriteModel(Path.Combine(dir.FullName, "direct.gguf"), moe: true);
            string hf = Directory.CreateDirectory(Path.Combine(dir.FullName, "hf")).FullName;
            SafeTensorsWriter.Write(Path.Combine(hf, "model.safetensors"), HfTensors(w.T, moe: true));
            WriteConfig(hf, moe: true, mlpOnlyLayers: new[] { 0 });
            HfConvertTests.WriteTokenizer(hf, TinyQwen3.Vocab);
            var e = Assert.Throws<UnsupportedModelException>(() => HfConverter.Convert(hf, Path.Combine(dir.FullName, "x.gguf"), ConvertType.F32));
            Assert.Contains("mlp_only_layers", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
