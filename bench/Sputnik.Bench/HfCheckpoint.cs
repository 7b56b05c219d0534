using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Tokenizers;
using Sputnik.Tools;

/// <summary>
/// Writes a tiny random Hugging Face checkpoint folder (config.json, model.safetensors, tokenizer.json,
/// tokenizer_config.json) for bench/check-llamacpp.sh, which converts it with `sputnik convert` and runs the result
/// in llama.cpp and Sputnik. Weights are uniform with standard deviation 1.5/√fan-in: much larger than a trained
/// model's, so the residual stream changes from token to token and greedy decoding does not collapse into repeating
/// one token (which would hide mismatches after the first).
///
///   hf llama|qwen2|qwen3|qwen3moe|phi3|gemma3|deepseek-v2|deepseek-v3|smollm3|ministral3 OUT_DIR [seed]
/// </summary>
internal static partial class HfCheckpoint
{
    private const int Dim = 64, Layers = 3, Heads = 4, Ffn = 128, Vocab = 512;

    public static void Run(string[] args)
    {
        if (args.Length < 2) throw new ArgumentException("usage: hf llama|qwen2|qwen3|qwen3moe|phi3|gemma3|deepseek-v2|deepseek-v3|smollm3|ministral3 OUT_DIR [seed]");
        string kind = args[0], dir = Directory.CreateDirectory(args[1]).FullName;
        var rng = new Random(args.Length > 2 ? int.Parse(args[2]) : 1);
        var tensors = new List<(string Name, long[] Shape, float[] Data)>();
        void W(string name, int rows, int cols) => tensors.Add((name, [rows, cols], Uniform(rng, rows * cols, 1.5f / MathF.Sqrt(cols))));
        void Ones(string name, int n) => tensors.Add((name, [n], Enumerable.Repeat(1f, n).ToArray()));
        void Bias(string name, int n) => tensors.Add((name, [n], Uniform(rng, n, 0.1f)));

        object config = kind switch
        {
            "llama" or "qwen2" => Llama(kind == "qwen2", W, Ones, Bias),
            "qwen3" or "qwen3moe" => Qwen3(kind == "qwen3moe", (name, rows, cols, scale) => tensors.Add((name, [rows, cols], Uniform(rng, rows * cols, scale * 1.5f / MathF.Sqrt(cols)))),
                (name, n) => tensors.Add((name, [n], Uniform(rng, n, 0.1f).Select(x => x + 1f).ToArray()))),
            "phi3" => Phi3(rng, W, (name, n) => tensors.Add((name, [n], Uniform(rng, n, 0.1f).Select(x => x + 1f).ToArray()))),
            "gemma3" => Gemma3(W, (name, n) => tensors.Add((name, [n], Uniform(rng, n, 0.1f)))),
            "deepseek-v2" => DeepSeek(v3: false, W, Ones, Bias),
            "deepseek-v3" => DeepSeek(v3: true, W, Ones, Bias),
            "smollm3" => SmolLm3(W, (name, n) => tensors.Add((name, [n], Uniform(rng, n, 0.1f).Select(x => x + 1f).ToArray()))),
            "ministral3" => Ministral3(W, (name, n) => tensors.Add((name, [n], Uniform(rng, n, 0.1f).Select(x => x + 1f).ToArray()))),
            _ => throw new ArgumentException($"unknown checkpoint kind '{kind}'"),
        };
        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), tensors);
        File.WriteAllText(Path.Combine(dir, "config.json"), JsonSerializer.Serialize(config));
        WriteTokenizer(dir, kind.StartsWith("qwen", StringComparison.Ordinal) || kind == "phi3" ? "qwen2" : "llama-bpe", phi3: kind == "phi3", gemma: kind == "gemma3");
        Console.Error.WriteLine($"wrote {dir}: {kind}, {tensors.Count} tensors, {tensors.Sum(t => (long)t.Data.Length)} parameters");
    }

    private static float[] Uniform(Random rng, int n, float sigma)
    {
        // Uniform on [-a, a] has standard deviation a/√3.
        float a = sigma * MathF.Sqrt(3f);
        var v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float)(rng.NextDouble() * 2 - 1) * a;
        return v;
    }

    private static object Llama(bool qwen2, Action<string, int, int> w, Action<string, int> ones, Action<string, int> bias)
    {
        const int kvHeads = 2, hd = Dim / Heads;
        w("model.embed_tokens.weight", Vocab, Dim);
        ones("model.norm.weight", Dim);
        // Qwen2 ties the output head to the embedding (no lm_head tensor), llama has its own.
        if (!qwen2) w("lm_head.weight", Vocab, Dim);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            ones(p + "input_layernorm.weight", Dim);
            w(p + "self_attn.q_proj.weight", Heads * hd, Dim);
            w(p + "self_attn.k_proj.weight", kvHeads * hd, Dim);
            w(p + "self_attn.v_proj.weight", kvHeads * hd, Dim);
            if (qwen2)
            {
                bias(p + "self_attn.q_proj.bias", Heads * hd);
                bias(p + "self_attn.k_proj.bias", kvHeads * hd);
                bias(p + "self_attn.v_proj.bias", kvHeads * hd);
            }
            w(p + "self_attn.o_proj.weight", Dim, Heads * hd);
            ones(p + "post_attention_layernorm.weight", Dim);
            w(p + "mlp.gate_proj.weight", Ffn, Dim);
            w(p + "mlp.up_proj.weight", Ffn, Dim);
            w(p + "mlp.down_proj.weight", Dim, Ffn);
        }
        return new
        {
            architectures = new[] { qwen2 ? "Qwen2ForCausalLM" : "LlamaForCausalLM" }, hidden_size = Dim, num_hidden_layers = Layers,
            num_attention_heads = Heads, num_key_value_heads = kvHeads, intermediate_size = Ffn, vocab_size = Vocab,
            rms_norm_eps = 1e-6, rope_theta = qwen2 ? 1000000.0 : 500000.0, max_position_embeddings = 4096, tie_word_embeddings = qwen2,
        };
    }

    /// <summary>V2: V2-Lite's layout (plain q_proj, softmax routing, YaRN); V3: q-LoRA, sigmoid routing with a selection bias, groups, normalised and scaled weights.</summary>
    private static object DeepSeek(bool v3, Action<string, int, int> w, Action<string, int> ones, Action<string, int> bias)
    {
        const int qLora = 48, kvRank = 32, nope = 16, rope = 8, v = 16, experts = 8, used = 2, shared = 1, expFf = 32;
        w("model.embed_tokens.weight", Vocab, Dim);
        ones("model.norm.weight", Dim);
        w("lm_head.weight", Vocab, Dim);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            ones(p + "input_layernorm.weight", Dim);
            if (v3)
            {
                w(p + "self_attn.q_a_proj.weight", qLora, Dim);
                ones(p + "self_attn.q_a_layernorm.weight", qLora);
                w(p + "self_attn.q_b_proj.weight", Heads * (nope + rope), qLora);
            }
            else
            {
                w(p + "self_attn.q_proj.weight", Heads * (nope + rope), Dim);
            }
            w(p + "self_attn.kv_a_proj_with_mqa.weight", kvRank + rope, Dim);
            ones(p + "self_attn.kv_a_layernorm.weight", kvRank);
            w(p + "self_attn.kv_b_proj.weight", Heads * (nope + v), kvRank);
            w(p + "self_attn.o_proj.weight", Dim, Heads * v);
            ones(p + "post_attention_layernorm.weight", Dim);
            if (l == 0)
            {
                w(p + "mlp.gate_proj.weight", Ffn, Dim);
                w(p + "mlp.up_proj.weight", Ffn, Dim);
                w(p + "mlp.down_proj.weight", Dim, Ffn);
                continue;
            }
            w(p + "mlp.gate.weight", experts, Dim);
            if (v3) bias(p + "mlp.gate.e_score_correction_bias", experts);
            for (int e = 0; e < experts; e++)
            {
                w($"{p}mlp.experts.{e}.gate_proj.weight", expFf, Dim);
                w($"{p}mlp.experts.{e}.up_proj.weight", expFf, Dim);
                w($"{p}mlp.experts.{e}.down_proj.weight", Dim, expFf);
            }
            w(p + "mlp.shared_experts.gate_proj.weight", shared * expFf, Dim);
            w(p + "mlp.shared_experts.up_proj.weight", shared * expFf, Dim);
            w(p + "mlp.shared_experts.down_proj.weight", Dim, shared * expFf);
        }
        return new
        {
            architectures = new[] { v3 ? "DeepseekV3ForCausalLM" : "DeepseekV2ForCausalLM" }, hidden_size = Dim, num_hidden_layers = Layers,
            num_attention_heads = Heads, num_key_value_heads = Heads, intermediate_size = Ffn, vocab_size = Vocab, rms_norm_eps = 1e-6,
            rope_theta = 10000.0, max_position_embeddings = 4096, q_lora_rank = v3 ? qLora : (int?)null, kv_lora_rank = kvRank,
            qk_nope_head_dim = nope, qk_rope_head_dim = rope, v_head_dim = v, n_routed_experts = experts, n_shared_experts = shared,
            num_experts_per_tok = used, moe_intermediate_size = expFf, first_k_dense_replace = 1,
            n_group = v3 ? 4 : 1, topk_group = v3 ? 2 : 1, routed_scaling_factor = v3 ? 2.5 : 1.0, norm_topk_prob = v3,
            scoring_func = v3 ? "sigmoid" : "softmax", topk_method = v3 ? "noaux_tc" : "greedy",
            rope_scaling = new
            {
                type = "yarn", factor = 40.0, original_max_position_embeddings = 128, beta_fast = 32, beta_slow = 1,
                mscale = v3 ? 1.0 : 0.707, mscale_all_dim = v3 ? 1.0 : 0.707,
            },
            tie_word_embeddings = false,
        };
    }

    /// <summary>A <see cref="SyntheticVocab"/> as tokenizer.json: byte-level BPE with the family's Split regex, specials as added tokens.</summary>
    private static void WriteTokenizer(string dir, string pre, bool phi3, bool gemma)
    {
        var tok = SyntheticVocab.Create(Vocab, pre, phi3, gemma);
        var vocab = new Dictionary<string, int>();
        var added = new List<object>();
        for (int i = 0; i < tok.Tokens.Length; i++)
        {
            if (tok.TokenTypes![i] == (int)TokenType.Control) added.Add(new { id = i, content = tok.Tokens[i], special = true });
            else vocab[tok.Tokens[i]] = i;
        }
        var json = new
        {
            added_tokens = added,
            pre_tokenizer = new
            {
                type = "Sequence",
                pretokenizers = new object[]
                {
                    new { type = "Split", pattern = new { Regex = pre == "qwen2" ? HfTokenizerJson.Qwen2Regex : HfTokenizerJson.Llama3Regex }, behavior = "Isolated", invert = false },
                    new { type = "ByteLevel", add_prefix_space = false, trim_offsets = false, use_regex = false },
                },
            },
            decoder = new { type = "ByteLevel" },
            model = new { type = "BPE", vocab, merges = tok.Merges },
        };
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), JsonSerializer.Serialize(json));
        string? Text(int? id) => id is int i ? tok.Tokens[i] : null;
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), JsonSerializer.Serialize(new
        {
            bos_token = Text(tok.BosId), eos_token = Text(tok.EosId), add_bos_token = tok.AddBos ?? false,
            chat_template = phi3 ? Sputnik.Models.Phi3.ReasoningChatTemplate : null,
        }));
    }
}
