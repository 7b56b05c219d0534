using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;
using static Sputnik.Tests.Models.TinyDeepSeek2Tests;

namespace Sputnik.Tests.Models;

/// <summary>
/// Tiny Hugging Face checkpoints written by the test as safetensors, converted by `HfConverter`, and run: they must
/// give the same logits as GGUF files built directly from the same weights.
/// </summary>
public class HfConvertTests
{
    internal static void WriteTokenizer(string dir, int vocab)
    {
        var v = new Dictionary<string, int>();
        for (int i = 0; i < vocab - 2; i++) v[$"t{i}"] = i;
        var tok = new
        {
            model = new { type = "BPE", vocab = v, merges = Array.Empty<string>() },
            added_tokens = new[]
            {
                new { id = vocab - 2, content = "<s>", special = true },
                new { id = vocab - 1, content = "</s>", special = true },
            },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), JsonSerializer.Serialize(tok));
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"),
            JsonSerializer.Serialize(new { bos_token = "<s>", eos_token = "</s>", chat_template = "{{ messages[0]['content'] }}" }));
        File.WriteAllText(Path.Combine(dir, "generation_config.json"), JsonSerializer.Serialize(new { bos_token_id = vocab - 2, eos_token_id = vocab - 1 }));
    }

    private static float[] Logits(string path, int[] tokens)
    {
        using var model = ModelLoader.Load(GgufFile.Open(path), threads: 2);
        // F32 cache: these compare against a double-precision reference (the F16 DeepSeek latent is off by ~1e-4).
        return model.Forward(model.CreateState(32, KvCacheType.F32), tokens).ToArray();
    }

    [Fact]
    public void Llama_checkpoint_converts_with_the_QK_permutation()
    {
        const int Dim = 32, Layers = 2, Heads = 4, KvHeads = 2, Hd = 8, Ffn = 48, Vocab = 40;
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-llama-");
        try
        {
            var w = new Weights(99);
            var hf = new List<(string, long[], float[])>();
            var direct = new GgufWriter();
            direct.Set("general.architecture", "qwen2");
            direct.Set("qwen2.embedding_length", (uint)Dim).Set("qwen2.block_count", (uint)Layers).Set("qwen2.feed_forward_length", (uint)Ffn);
            direct.Set("qwen2.attention.head_count", (uint)Heads).Set("qwen2.attention.head_count_kv", (uint)KvHeads);
            direct.Set("qwen2.rope.freq_base", 10000f).Set("qwen2.attention.layer_norm_rms_epsilon", 1e-5f);
            // The same HF weights written directly as a NeoX-RoPE (qwen2) GGUF without biases is the HF llama model.
            void T(string hfName, string gguf, int rows, int cols, float offset = 0)
            {
                var data = w.Add(hfName, rows * cols, offset);
                hf.Add((hfName, rows == 1 ? [cols] : [rows, cols], data));
                if (rows == 1) direct.AddTensor(gguf, data, cols); else direct.AddTensor(gguf, data, cols, rows);
            }
            T("model.embed_tokens.weight", "token_embd.weight", Vocab, Dim);
            T("model.norm.weight", "output_norm.weight", 1, Dim, 1f);
            T("lm_head.weight", "output.weight", Vocab, Dim);
            for (int l = 0; l < Layers; l++)
            {
                string p = $"model.layers.{l}.", b = $"blk.{l}.";
                T(p + "input_layernorm.weight", b + "attn_norm.weight", 1, Dim, 1f);
                T(p + "self_attn.q_proj.weight", b + "attn_q.weight", Heads * Hd, Dim);
                T(p + "self_attn.k_proj.weight", b + "attn_k.weight", KvHeads * Hd, Dim);
                T(p + "self_attn.v_proj.weight", b + "attn_v.weight", KvHeads * Hd, Dim);
                T(p + "self_attn.o_proj.weight", b + "attn_output.weight", Dim, Heads * Hd);
                T(p + "post_attention_layernorm.weight", b + "ffn_norm.weight", 1, Dim, 1f);
                T(p + "mlp.gate_proj.weight", b + "ffn_gate.weight", Ffn, Dim);
                T(p + "mlp.up_proj.weight", b + "ffn_up.weight", Ffn, Dim);
                T(p + "mlp.down_proj.weight", b + "ffn_down.weight", Dim, Ffn);
            }
            string hfDir = Directory.CreateDirectory(Path.Combine(dir.FullName, "hf")).FullName;
            SafeTensorsWriter.Write(Path.Combine(hfDir, "model.safetensors"), hf);
            File.WriteAllText(Path.Combine(hfDir, "config.json"), JsonSerializer.Serialize(new
            {
                architectures = new[] { "LlamaForCausalLM" }, hidden_size = Dim, num_hidden_layers = Layers, num_attention_heads = Heads,
                num_key_value_heads = KvHeads, intermediate_size = Ffn, vocab_size = Vocab, rms_norm_eps = 1e-5, rope_theta = 10000.0,
                max_position_embeddings = 128, tie_word_embeddings = false,
            }));
            WriteTokenizer(hfDir, Vocab);
            string directPath = Path.Combine(dir.FullName, "direct.gguf"), converted = Path.Combine(dir.FullName, "conv.gguf");
            direct.Write(directPath);
            long last = 0;
            HfConverter.Convert(hfDir, converted, ConvertType.F32, (done, total, _) => last = done);
            Assert.True(last > 0 && new FileInfo(converted).Length > last);

            using (var f = GgufFile.Open(converted))
            {
                Assert.Equal("llama", f.Architecture);
                Assert.Equal("{{ messages[0]['content'] }}", f.GetStringOrNull("tokenizer.chat_template"));
                Assert.True(f.TryGetUInt32("tokenizer.ggml.eos_token_id", out uint eos) && eos == Vocab - 1);
            }
            int[] tokens = [3, 17, 5, 30, 0, 22];
            var want = Logits(directPath, tokens);
            var got = Logits(converted, tokens);
            for (int i = 0; i < Vocab; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-4, $"logit {i}: {got[i]} vs {want[i]}");

            // Quantized output still loads and stays close.
            string q8 = Path.Combine(dir.FullName, "q8.gguf");
            HfConverter.Convert(hfDir, q8, ConvertType.F16);
            var f16 = Logits(q8, tokens);
            for (int i = 0; i < Vocab; i++) Assert.True(Math.Abs(f16[i] - want[i]) < 1e-2, $"F16 logit {i}: {f16[i]} vs {want[i]}");
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void DeepSeek_sharded_checkpoint_converts_to_the_same_model(bool v3)
    {
        var spec = v3 ? V3Style : V2Style;
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-ds-");
        try
        {
            var (directPath, w) = WriteModel(dir.FullName, spec);
            var T = w.T;
            var hf = new List<(string Name, long[] Shape, float[] Data)>();
            void H(string name, string key, params long[] shape) => hf.Add((name, shape, T[key]));
            H("model.embed_tokens.weight", "token_embd.weight", spec.Vocab, spec.Dim);
            H("model.norm.weight", "output_norm.weight", spec.Dim);
            H("lm_head.weight", "output.weight", spec.Vocab, spec.Dim);
            for (int l = 0; l < spec.Layers; l++)
            {
                string p = $"model.layers.{l}.", b = $"blk.{l}.";
                H(p + "input_layernorm.weight", b + "attn_norm.weight", spec.Dim);
                if (spec.QLora > 0)
                {
                    H(p + "self_attn.q_a_proj.weight", b + "attn_q_a.weight", spec.QLora, spec.Dim);
                    H(p + "self_attn.q_a_layernorm.weight", b + "attn_q_a_norm.weight", spec.QLora);
                    H(p + "self_attn.q_b_proj.weight", b + "attn_q_b.weight", spec.Heads * spec.Qk, spec.QLora);
                }
                else
                {
                    H(p + "self_attn.q_proj.weight", b + "attn_q.weight", spec.Heads * spec.Qk, spec.Dim);
                }
                H(p + "self_attn.kv_a_proj_with_mqa.weight", b + "attn_kv_a_mqa.weight", spec.KvRank + spec.Rope, spec.Dim);
                H(p + "self_attn.kv_a_layernorm.weight", b + "attn_kv_a_norm.weight", spec.KvRank);
                H(p + "self_attn.kv_b_proj.weight", b + "kv_b", spec.Heads * (spec.Nope + spec.V), spec.KvRank);
                H(p + "self_attn.o_proj.weight", b + "attn_output.weight", spec.Dim, spec.Heads * spec.V);
                H(p + "post_attention_layernorm.weight", b + "ffn_norm.weight", spec.Dim);
                if (l < spec.Dense)
                {
                    H(p + "mlp.gate_proj.weight", b + "ffn_gate.weight", spec.Ffn, spec.Dim);
                    H(p + "mlp.up_proj.weight", b + "ffn_up.weight", spec.Ffn, spec.Dim);
                    H(p + "mlp.down_proj.weight", b + "ffn_down.weight", spec.Dim, spec.Ffn);
                    continue;
                }
                H(p + "mlp.gate.weight", b + "ffn_gate_inp.weight", spec.Experts, spec.Dim);
                if (spec.Bias) H(p + "mlp.gate.e_score_correction_bias", b + "exp_probs_b.bias", spec.Experts);
                foreach (var (hfn, g, rows, cols) in new[] { ("gate_proj", "ffn_gate_exps", spec.ExpFf, spec.Dim), ("up_proj", "ffn_up_exps", spec.ExpFf, spec.Dim), ("down_proj", "ffn_down_exps", spec.Dim, spec.ExpFf) })
                    for (int e = 0; e < spec.Experts; e++)
                        hf.Add(($"{p}mlp.experts.{e}.{hfn}.weight", [rows, cols], T[b + g + ".weight"].AsSpan(e * rows * cols, rows * cols).ToArray()));
                H(p + "mlp.shared_experts.gate_proj.weight", b + "ffn_gate_shexp.weight", spec.ExpFf, spec.Dim);
                H(p + "mlp.shared_experts.up_proj.weight", b + "ffn_up_shexp.weight", spec.ExpFf, spec.Dim);
                H(p + "mlp.shared_experts.down_proj.weight", b + "ffn_down_shexp.weight", spec.Dim, spec.ExpFf);
            }
            // An MTP layer (index = num_hidden_layers) is skipped by the converter.
            hf.Add(($"model.layers.{spec.Layers}.eh_proj.weight", [spec.Dim, 2 * spec.Dim], new float[2 * spec.Dim * spec.Dim]));

            string hfDir = Directory.CreateDirectory(Path.Combine(dir.FullName, "hf")).FullName;
            int half = hf.Count / 2;
            SafeTensorsWriter.Write(Path.Combine(hfDir, "model-00001-of-00002.safetensors"), hf.Take(half));
            SafeTensorsWriter.Write(Path.Combine(hfDir, "model-00002-of-00002.safetensors"), hf.Skip(half), "F32");
            var map = hf.Select((t, i) => (t.Name, File: i < half ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors"))
                .ToDictionary(x => x.Name, x => x.File);
            File.WriteAllText(Path.Combine(hfDir, "model.safetensors.index.json"), JsonSerializer.Serialize(new { metadata = new { }, weight_map = map }));
            File.WriteAllText(Path.Combine(hfDir, "config.json"), JsonSerializer.Serialize(new
            {
                architectures = new[] { "DeepseekV3ForCausalLM" }, hidden_size = spec.Dim, num_hidden_layers = spec.Layers,
                num_attention_heads = spec.Heads, num_key_value_heads = spec.Heads, intermediate_size = spec.Ffn, vocab_size = spec.Vocab,
                rms_norm_eps = 1e-6, rope_theta = (double)spec.Base, max_position_embeddings = 256, q_lora_rank = spec.QLora > 0 ? spec.QLora : (int?)null,
                kv_lora_rank = spec.KvRank, qk_nope_head_dim = spec.Nope, qk_rope_head_dim = spec.Rope, v_head_dim = spec.V,
                n_routed_experts = spec.Experts, n_shared_experts = spec.Shared, num_experts_per_tok = spec.Used,
                moe_intermediate_size = spec.ExpFf, first_k_dense_replace = spec.Dense, n_group = spec.Groups, topk_group = spec.GroupsUsed,
                routed_scaling_factor = spec.Scale, norm_topk_prob = spec.Norm, scoring_func = spec.Sigmoid ? "sigmoid" : "softmax",
                topk_method = spec.Sigmoid ? "noaux_tc" : "greedy",
                rope_scaling = new { type = "yarn", factor = spec.Factor, original_max_position_embeddings = spec.OrigCtx, beta_fast = 32, beta_slow = 1, mscale = 1.0, mscale_all_dim = spec.MscaleAll },
                tie_word_embeddings = false,
            }));
            WriteTokenizer(hfDir, spec.Vocab);
            string converted = Path.Combine(dir.FullName, "conv.gguf");
            HfConverter.Convert(hfDir, converted, ConvertType.F32);
            using (var f = GgufFile.Open(converted))
            {
                Assert.NotNull(f.FindTensor("blk.1.attn_k_b.weight"));
                // Present even without a query LoRA (then 0): llama.cpp requires it for files not 26/27 layers deep.
                Assert.True(f.TryGetInt64("deepseek2.attention.q_lora_rank", out long qLora));
                Assert.Equal(spec.QLora, qLora);
                Assert.Null(f.FindTensor($"blk.{spec.Layers}.eh_proj.weight"));
                Assert.Equal(new long[] { spec.Dim, spec.ExpFf, spec.Experts }, f.GetTensor("blk.1.ffn_gate_exps.weight").Dims);
            }
            int[] tokens = [3, 17, 5, 30, 0, 22, 9];
            var want = Logits(directPath, tokens);
            var got = Logits(converted, tokens);
            for (int i = 0; i < spec.Vocab; i++) Assert.True(Math.Abs(got[i] - want[i]) < 1e-5, $"logit {i}: {got[i]} vs {want[i]}");
            var reference = ReferenceLogits(spec, w, tokens);
            for (int i = 0; i < spec.Vocab; i++) Assert.True(Math.Abs(got[i] - reference[i]) < 1e-4, $"reference logit {i}: {got[i]} vs {reference[i]}");

            // Q8_0 conversion also runs (tiny rows fall back to F16/F32 where blocks do not fit).
            string q8 = Path.Combine(dir.FullName, "q8.gguf");
            HfConverter.Convert(hfDir, q8, ConvertType.Q8_0);
            Assert.Equal(spec.Vocab, Logits(q8, tokens).Length);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Unsupported_architecture_and_missing_files_fail_clearly()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-hf-bad-");
        try
        {
            var e1 = Assert.Throws<FileNotFoundException>(() => HfConverter.Convert(dir.FullName, Path.Combine(dir.FullName, "x.gguf"), ConvertType.F16));
            Assert.Contains("config.json", e1.Message);
            File.WriteAllText(Path.Combine(dir.FullName, "config.json"), """{"architectures":["MambaForCausalLM"]}""");
            var e2 = Assert.Throws<UnsupportedModelException>(() => HfConverter.Convert(dir.FullName, Path.Combine(dir.FullName, "x.gguf"), ConvertType.F16));
            Assert.Contains("MambaForCausalLM", e2.Message);
            File.WriteAllText(Path.Combine(dir.FullName, "config.json"), """{"architectures":["LlamaForCausalLM"]}""");
            var e3 = Assert.Throws<FileNotFoundException>(() => HfConverter.Convert(dir.FullName, Path.Combine(dir.FullName, "x.gguf"), ConvertType.F16));
            Assert.Contains("tokenizer.json", e3.Message);
            File.WriteAllText(Path.Combine(dir.FullName, "tokenizer.json"), "{}");
            var e4 = Assert.Throws<FileNotFoundException>(() => HfConverter.Convert(dir.FullName, Path.Combine(dir.FullName, "x.gguf"), ConvertType.F16));
            Assert.Contains("safetensors", e4.Message);
            // A truncated safetensors file is rejected with its name, not read out of bounds.
            File.WriteAllBytes(Path.Combine(dir.FullName, "model.safetensors"), [200, 0, 0, 0, 0, 0, 0, 0, (byte)'{', (byte)'}']);
            var e5 = Assert.Throws<InvalidDataException>(() => HfConverter.Convert(dir.FullName, Path.Combine(dir.FullName, "x.gguf"), ConvertType.F16));
            Assert.Contains("header length", e5.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
