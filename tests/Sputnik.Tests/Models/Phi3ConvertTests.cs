using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// A tiny Phi3ForCausalLM checkpoint (config.json with Phi-4-mini's keys: partial_rotary_factor, LongRoPE
/// rope_scaling, original_max_position_embeddings, sliding_window; fused qkv_proj / gate_up_proj) made from
/// <see cref="TinyPhi3"/>'s weights: `convert` must write llama.cpp's keys and tensors and give the same model.
/// </summary>
public class Phi3ConvertTests
{
    private static IEnumerable<(string, long[], float[])> HfTensors(Dictionary<string, float[]> t)
    {
        const int D = TinyPhi3.Dim;
        yield return ("model.embed_tokens.weight", [TinyPhi3.Vocab, D], t["token_embd.weight"]);
        yield return ("model.norm.weight", [D], t["output_norm.weight"]);
        yield return ("lm_head.weight", [TinyPhi3.Vocab, D], t["output.weight"]);
        for (int l = 0; l < TinyPhi3.Layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.";
            yield return (p + "input_layernorm.weight", [D], t[b + "attn_norm.weight"]);
            yield return (p + "self_attn.qkv_proj.weight", [TinyPhi3.QDim + 2 * TinyPhi3.KvDim, D], t[b + "attn_qkv.weight"]);
            yield return (p + "self_attn.o_proj.weight", [D, TinyPhi3.QDim], t[b + "attn_output.weight"]);
            yield return (p + "post_attention_layernorm.weight", [D], t[b + "ffn_norm.weight"]);
            yield return (p + "mlp.gate_up_proj.weight", [2 * TinyPhi3.Ffn, D], t[b + "ffn_up.weight"]);
            yield return (p + "mlp.down_proj.weight", [D, TinyPhi3.Ffn], t[b + "ffn_down.weight"]);
        }
    }

    private static void WriteConfig(string dir, object? longFactors = null)
    {
        var cfg = new Dictionary<string, object>
        {
            ["architectures"] = new[] { "Phi3ForCausalLM" }, ["model_type"] = "phi3",
            ["hidden_size"] = TinyPhi3.Dim, ["num_hidden_layers"] = TinyPhi3.Layers, ["num_attention_heads"] = TinyPhi3.Heads,
            ["num_key_value_heads"] = TinyPhi3.KvHeads, ["intermediate_size"] = TinyPhi3.Ffn, ["vocab_size"] = TinyPhi3.Vocab,
            ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0, ["max_position_embeddings"] = TinyPhi3.Context,
            ["original_max_position_embeddings"] = TinyPhi3.OriginalContext, ["partial_rotary_factor"] = 0.75,
            ["sliding_window"] = 262144, ["tie_word_embeddings"] = false, ["hidden_act"] = "silu",
            ["rope_scaling"] = new Dictionary<string, object>
            {
                ["type"] = "longrope", ["long_factor"] = longFactors ?? TinyPhi3.LongFactors, ["short_factor"] = TinyPhi3.ShortFactors,
            },
        };
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(cfg));
    }

    private static float[] Logits(string path, int[] tokens, int context)
    {
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        return model.Forward(model.CreateState(context, KvCacheType.F32), tokens).ToArray();
    }

    private static string MakeCheckpoint(string root, TinyDeepSeek2Tests.Weights w, object? longFactors = null)
    {
        string hf = Directory.CreateDirectory(Path.Combine(root, "hf")).FullName;
        SafeTensorsWriter.Write(Path.Combine(hf, "model.safetensors"), HfTensors(w.T));
        WriteConfig(hf, longFactors);
        HfConvertTests.WriteTokenizer(hf, TinyPhi3.Vocab);
        return hf;
    }

    [Fact]
    public void Checkpoint_converts_to_the_same_model()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-phi3-");
        try
        {
            var (direct, w) = TinyPhi3.WriteModel(Path.Combine(dir.FullName, "direct.gguf"));
            string hf = MakeCheckpoint(dir.FullName, w);
            string converted = Path.Combine(dir.FullName, "conv.gguf");
            HfConverter.Convert(hf, converted, ConvertType.F32);
            using (var f = GgufFile.Open(converted))
            {
                Assert.Equal("phi3", f.Architecture);
                Assert.True(f.TryGetInt64("phi3.rope.dimension_count", out long rope) && rope == TinyPhi3.RopeDims);
                Assert.True(f.TryGetInt64("phi3.rope.scaling.original_context_length", out long orig) && orig == TinyPhi3.OriginalContext);
                Assert.True(f.TryGetFloat("phi3.rope.scaling.attn_factor", out float af) && Math.Abs(af - TinyPhi3.AttnFactor) < 1e-6);
                Assert.True(f.TryGetInt64("phi3.attention.sliding_window", out long sw) && sw == 262144);
                Assert.False(f.TryGetInt64("phi3.attention.key_length", out _));
                Assert.Equal([TinyPhi3.RopeDims / 2], f.GetTensor("rope_factors_long.weight").Dims);
                Assert.Equal(GgmlType.F32, f.GetTensor("rope_factors_short.weight").Type);
                Assert.Equal([TinyPhi3.Dim, TinyPhi3.QDim + 2 * TinyPhi3.KvDim], f.GetTensor("blk.1.attn_qkv.weight").Dims);
                Assert.Equal([TinyPhi3.Dim, 2 * TinyPhi3.Ffn], f.GetTensor("blk.1.ffn_up.weight").Dims);
                Assert.Null(f.FindTensor("blk.0.ffn_gate.weight"));
            }
            int[] tokens = [3, 17, 5, 30, 0, 22];
            foreach (int ctx in new[] { TinyPhi3.OriginalContext, 2 * TinyPhi3.OriginalContext })
            {
                var want = Logits(direct, tokens, ctx);
                var got = Logits(converted, tokens, ctx);
                for (int i = 0; i < TinyPhi3.Vocab; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-5, $"context {ctx} logit {i}: {got[i]} vs {want[i]}");
            }

            // Q8_0: the fused matrices are quantized, the LongRoPE factors stay F32, and the model stays close.
            string q8 = Path.Combine(dir.FullName, "q8.gguf");
            HfConverter.Convert(hf, q8, ConvertType.Q8_0);
            using (var f = GgufFile.Open(q8))
            {
                Assert.Equal(GgmlType.Q8_0, f.GetTensor("blk.0.attn_qkv.weight").Type);
                Assert.Equal(GgmlType.F32, f.GetTensor("rope_factors_long.weight").Type);
            }
            var q = Logits(q8, tokens, TinyPhi3.OriginalContext);
            var f32 = Logits(direct, tokens, TinyPhi3.OriginalContext);
            // Weight and activation rounding move these logits by about 2 % of their spread (identical for fused and
            // separate tensors: TinyPhi3Tests); a wrong row split would move them by the spread itself.
            double spread = f32.Max() - f32.Min();
            for (int i = 0; i < TinyPhi3.Vocab; i++) Assert.True(Math.Abs(q[i] - f32[i]) < 0.03 * spread, $"Q8_0 logit {i}: {q[i]} vs {f32[i]} (spread {spread})");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Factor_list_of_the_wrong_length_is_refused_by_name()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-phi3-bad-");
        try
        {
            var (_, w) = TinyPhi3.WriteModel(Path.Combine(dir.FullName, "direct.gguf"));
            string hf = MakeCheckpoint(dir.FullName, w, longFactors: new[] { 1.0, 2.0, 3.0 });
            var e = Assert.Throws<InvalidDataException>(() => HfConverter.Convert(hf, Path.Combine(dir.FullName, "x.gguf"), ConvertType.F32));
            Assert.Contains("long_factor", e.Message);
            Assert.Contains($"{TinyPhi3.RopeDims / 2}", e.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
