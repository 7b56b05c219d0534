internal static partial class HfCheckpoint
{
    /// <summary>
    /// The dense llama-shaped tensors of a SmolLM3 or Ministral 3 text model under <paramref name="prefix"/>
    /// ("model." for SmolLM3ForCausalLM, "model.language_model." as Mistral3ForConditionalGeneration saves them).
    /// </summary>
    private static void LlamaLayers(string prefix, int layers, int kvHeads, int hd, Action<string, int, int> w, Action<string, int> norm)
    {
        w(prefix + "embed_tokens.weight", Vocab, Dim);
        norm(prefix + "norm.weight", Dim);
        for (int l = 0; l < layers; l++)
        {
            string p = $"{prefix}layers.{l}.";
            norm(p + "input_layernorm.weight", Dim);
            w(p + "self_attn.q_proj.weight", Heads * hd, Dim);
            w(p + "self_attn.k_proj.weight", kvHeads * hd, Dim);
            w(p + "self_attn.v_proj.weight", kvHeads * hd, Dim);
            w(p + "self_attn.o_proj.weight", Dim, Heads * hd);
            norm(p + "post_attention_layernorm.weight", Dim);
            w(p + "mlp.gate_proj.weight", Ffn, Dim);
            w(p + "mlp.up_proj.weight", Ffn, Dim);
            w(p + "mlp.down_proj.weight", Dim, Ffn);
        }
    }

    /// <summary>SmolLM3ForCausalLM: 4 layers so the last is a NoPE layer (no_rope_layers [1, 1, 1, 0]), tied embeddings.</summary>
    private static object SmolLm3(Action<string, int, int> w, Action<string, int> norm)
    {
        const int layers = 4, kvHeads = 2;
        LlamaLayers("model.", layers, kvHeads, Dim / Heads, w, norm);
        return new Dictionary<string, object>
        {
            ["architectures"] = new[] { "SmolLM3ForCausalLM" }, ["model_type"] = "smollm3", ["hidden_size"] = Dim,
            ["num_hidden_layers"] = layers, ["num_attention_heads"] = Heads, ["num_key_value_heads"] = kvHeads, ["intermediate_size"] = Ffn,
            ["vocab_size"] = Vocab, ["rms_norm_eps"] = 1e-6, ["rope_theta"] = 5000000.0, ["max_position_embeddings"] = 4096,
            ["tie_word_embeddings"] = true, ["attention_bias"] = false, ["mlp_bias"] = false, ["hidden_act"] = "silu",
            ["no_rope_layer_interval"] = 4, ["no_rope_layers"] = new[] { 1, 1, 1, 0 },
        };
    }

    /// <summary>
    /// Mistral3ForConditionalGeneration as Ministral 3 Reasoning ships it: the text model under text_config (head_dim 32
    /// over a width of 64; rope_parameters with YaRN ×16 and llama_4_scaling_beta 0.1 from 16 tokens on, so short prompts
    /// cross the temperature's first step) and its tensors under model.language_model., beside a vision tower the
    /// converter leaves out.
    /// </summary>
    private static object Ministral3(Action<string, int, int> w, Action<string, int> norm)
    {
        const int kvHeads = 2, hd = 32;
        LlamaLayers("model.language_model.", Layers, kvHeads, hd, w, norm);
        w("model.vision_tower.patch_conv.weight", 16, 12);
        return new Dictionary<string, object>
        {
            ["architectures"] = new[] { "Mistral3ForConditionalGeneration" }, ["model_type"] = "mistral3", ["image_token_index"] = 10,
            ["text_config"] = new Dictionary<string, object>
            {
                ["model_type"] = "ministral3", ["hidden_size"] = Dim, ["num_hidden_layers"] = Layers, ["num_attention_heads"] = Heads,
                ["num_key_value_heads"] = kvHeads, ["head_dim"] = hd, ["intermediate_size"] = Ffn, ["vocab_size"] = Vocab,
                ["rms_norm_eps"] = 1e-5, ["max_position_embeddings"] = 4096, ["tie_word_embeddings"] = true, ["hidden_act"] = "silu",
                ["rope_parameters"] = new Dictionary<string, object>
                {
                    ["rope_type"] = "yarn", ["type"] = "yarn", ["rope_theta"] = 1000000.0, ["factor"] = 16.0, ["original_max_position_embeddings"] = 16,
                    ["beta_fast"] = 32.0, ["beta_slow"] = 1.0, ["mscale"] = 1.0, ["mscale_all_dim"] = 1.0, ["llama_4_scaling_beta"] = 0.1,
                },
            },
        };
    }
}
