/// <summary>A tiny Gemma3ForCausalLM checkpoint: two local layers with an 8-token window, then a global one.</summary>
internal static partial class HfCheckpoint
{
    private const int GemmaWindow = 8;

    /// <param name="w">A matrix [rows, cols].</param>
    /// <param name="norm">A norm weight as Gemma stores it (the model multiplies by 1 + w).</param>
    private static object Gemma3(Action<string, int, int> w, Action<string, int> norm)
    {
        const int kvHeads = 2, hd = 32;
        w("model.embed_tokens.weight", Vocab, Dim);
        norm("model.norm.weight", Dim);
        // An untied head: with random weights a tied one mostly repeats the last token (its √width-scaled embedding dominates).
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
            norm(p + "pre_feedforward_layernorm.weight", Dim);
            w(p + "mlp.gate_proj.weight", Ffn, Dim);
            w(p + "mlp.up_proj.weight", Ffn, Dim);
            w(p + "mlp.down_proj.weight", Dim, Ffn);
            norm(p + "post_feedforward_layernorm.weight", Dim);
        }
        return new
        {
            architectures = new[] { "Gemma3ForCausalLM" }, model_type = "gemma3_text", hidden_size = Dim, num_hidden_layers = Layers,
            num_attention_heads = Heads, num_key_value_heads = kvHeads, head_dim = hd, intermediate_size = Ffn, vocab_size = Vocab,
            rms_norm_eps = 1e-6, rope_theta = 1000000.0, rope_local_base_freq = 10000.0, max_position_embeddings = 4096,
            rope_scaling = new { rope_type = "linear", factor = 8.0 }, sliding_window = GemmaWindow, sliding_window_pattern = 3,
            query_pre_attn_scalar = hd, hidden_activation = "gelu_pytorch_tanh", attn_logit_softcapping = (double?)null,
            final_logit_softcapping = (double?)null, tie_word_embeddings = false,
        };
    }
}
