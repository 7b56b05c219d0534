internal static partial class HfCheckpoint
{
    /// <summary>
    /// Qwen3 (Qwen3ForCausalLM: head_dim 32 over a width of 64, per-head q_norm / k_norm, no biases, YaRN ×4 over
    /// 1,024 tokens as DeepSeek-R1-0528-Qwen3-8B has over 32,768) or Qwen3-MoE (Qwen3MoeForCausalLM: 16 experts,
    /// top 4, per-expert safetensors as transformers saves them). Norm weights are 1 ± 0.17. The router's weights are
    /// 8× the others': with router logits a few units apart, the 4th and 5th expert are seldom within the 1e-4..1e-3
    /// by which the engines' F16 KV caches move them, so greedy paths part only on real differences.
    /// </summary>
    private static object Qwen3(bool moe, Action<string, int, int, float> ws, Action<string, int> norm)
    {
        void w(string name, int rows, int cols) => ws(name, rows, cols, 1f);
        const int kvHeads = 2, hd = 32, experts = 16, used = 4, expFf = 48;
        w("model.embed_tokens.weight", Vocab, Dim);
        norm("model.norm.weight", Dim);
        w("lm_head.weight", Vocab, Dim);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            norm(p + "input_layernorm.weight", Dim);
            w(p + "self_attn.q_proj.weight", Heads * hd, Dim);
            w(p + "self_attn.k_proj.weight", kvHeads * hd, Dim);
            w(p + "self_attn.v_proj.weight", kvHeads * hd, Dim);
            norm(p + "self_attn.q_norm.weight", hd);
            norm(p + "self_attn.k_norm.weight", hd);
            w(p + "self_attn.o_proj.weight", Dim, Heads * hd);
            norm(p + "post_attention_layernorm.weight", Dim);
            if (!moe)
            {
                w(p + "mlp.gate_proj.weight", Ffn, Dim);
                w(p + "mlp.up_proj.weight", Ffn, Dim);
                w(p + "mlp.down_proj.weight", Dim, Ffn);
                continue;
            }
            ws(p + "mlp.gate.weight", experts, Dim, 8f);
            for (int e = 0; e < experts; e++)
            {
                w(p + $"mlp.experts.{e}.gate_proj.weight", expFf, Dim);
                w(p + $"mlp.experts.{e}.up_proj.weight", expFf, Dim);
                w(p + $"mlp.experts.{e}.down_proj.weight", Dim, expFf);
            }
        }
        var cfg = new Dictionary<string, object>
        {
            ["architectures"] = new[] { moe ? "Qwen3MoeForCausalLM" : "Qwen3ForCausalLM" }, ["hidden_size"] = Dim,
            ["num_hidden_layers"] = Layers, ["num_attention_heads"] = Heads, ["num_key_value_heads"] = kvHeads, ["head_dim"] = hd,
            ["intermediate_size"] = moe ? expFf * used : Ffn, ["vocab_size"] = Vocab, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 1000000.0,
            ["max_position_embeddings"] = 4096, ["tie_word_embeddings"] = false, ["attention_bias"] = false,
        };
        if (moe)
        {
            cfg["num_experts"] = experts;
            cfg["num_experts_per_tok"] = used;
            cfg["moe_intermediate_size"] = expFf;
            cfg["norm_topk_prob"] = true;
            cfg["decoder_sparse_step"] = 1;
            cfg["mlp_only_layers"] = Array.Empty<int>();
        }
        else
        {
            cfg["rope_scaling"] = new Dictionary<string, object> { ["rope_type"] = "yarn", ["factor"] = 4.0, ["original_max_position_embeddings"] = 1024 };
        }
        return cfg;
    }
}
