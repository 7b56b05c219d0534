internal static partial class HfCheckpoint
{
    /// <summary>
    /// Phi-4-mini in small (Phi3ForCausalLM): fused qkv_proj and gate_up_proj, partial_rotary_factor 0.75 (12 of 16
    /// dims rotated), LongRoPE over an original context of 128 tokens, so a context past it (the check runs both
    /// engines at 512) takes the long factors and the attention factor, tied embeddings. Norm weights are 1 ± 0.17.
    /// </summary>
    private static object Phi3(Random rng, Action<string, int, int> w, Action<string, int> norm)
    {
        const int kvHeads = 2, hd = Dim / Heads, ropeDims = 12;
        w("model.embed_tokens.weight", Vocab, Dim);
        norm("model.norm.weight", Dim);
        for (int l = 0; l < Layers; l++)
        {
            string p = $"model.layers.{l}.";
            norm(p + "input_layernorm.weight", Dim);
            w(p + "self_attn.qkv_proj.weight", (Heads + 2 * kvHeads) * hd, Dim);
            w(p + "self_attn.o_proj.weight", Dim, Heads * hd);
            norm(p + "post_attention_layernorm.weight", Dim);
            w(p + "mlp.gate_up_proj.weight", 2 * Ffn, Dim);
            w(p + "mlp.down_proj.weight", Dim, Ffn);
        }
        // Factors shaped like Phi-4-mini's: short near 1, long growing toward the slow pairs.
        double[] Factors(double top) => Enumerable.Range(0, ropeDims / 2).Select(i => 1 + (top - 1) * Math.Pow(i / (ropeDims / 2 - 1.0), 2) + rng.NextDouble() * 0.05).ToArray();
        return new Dictionary<string, object>
        {
            ["architectures"] = new[] { "Phi3ForCausalLM" }, ["model_type"] = "phi3", ["hidden_size"] = Dim,
            ["num_hidden_layers"] = Layers, ["num_attention_heads"] = Heads, ["num_key_value_heads"] = kvHeads,
            ["intermediate_size"] = Ffn, ["vocab_size"] = Vocab, ["rms_norm_eps"] = 1e-5, ["rope_theta"] = 10000.0,
            ["max_position_embeddings"] = 4096, ["original_max_position_embeddings"] = 128, ["partial_rotary_factor"] = 0.75,
            ["tie_word_embeddings"] = true, ["sliding_window"] = 262144, ["hidden_act"] = "silu",
            ["rope_scaling"] = new Dictionary<string, object> { ["type"] = "longrope", ["long_factor"] = Factors(32), ["short_factor"] = Factors(1.5) },
        };
    }
}
