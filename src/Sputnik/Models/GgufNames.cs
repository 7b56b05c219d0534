namespace Sputnik.Models;

/// <summary>
/// llama.cpp's tensor names (src/llama-arch.cpp, LLM_TENSOR_NAMES) for every tensor Sputnik reads or writes, so the
/// loaders, `synth`, `convert`, `quantize`'s per-tensor rules and the training export spell each name once.
/// Per-layer names are "blk.{layer}.{name}.weight" (<see cref="Weight(int, string)"/>); model-wide ones
/// "{name}.weight" (<see cref="Weight(string)"/>).
/// </summary>
internal static class TensorNames
{
    public const string TokenEmbd = "token_embd";
    public const string Output = "output";
    public const string OutputNorm = "output_norm";
    public const string RopeFreqs = "rope_freqs";
    /// <summary>LongRoPE's per-pair frequency divisors past the original context (phi3).</summary>
    public const string RopeFactorsLong = "rope_factors_long";
    /// <summary>LongRoPE's per-pair frequency divisors within the original context (phi3).</summary>
    public const string RopeFactorsShort = "rope_factors_short";
    public const string PositionEmbd = "position_embd";
    public const string TokenTypes = "token_types";
    /// <summary>bert's LayerNorm of the summed input embeddings (weight and bias).</summary>
    public const string TokenEmbdNorm = "token_embd_norm";
    /// <summary>bert's post-norms: after attention + residual, and after the FFN + residual (weights and biases).</summary>
    public const string AttnOutputNorm = "attn_output_norm";
    public const string LayerOutputNorm = "layer_output_norm";
    public const string AttnNorm = "attn_norm";
    public const string AttnQ = "attn_q";
    public const string AttnK = "attn_k";
    public const string AttnV = "attn_v";
    public const string AttnOutput = "attn_output";
    public const string FfnNorm = "ffn_norm";
    public const string FfnGate = "ffn_gate";
    public const string FfnUp = "ffn_up";
    public const string FfnDown = "ffn_down";
    public const string AttnQNorm = "attn_q_norm";
    public const string AttnKNorm = "attn_k_norm";
    public const string AttnPostNorm = "post_attention_norm";
    public const string FfnPostNorm = "post_ffw_norm";
    /// <summary>gpt-oss: one attention-sink logit per query head (1-D, "blk.N.attn_sinks.weight").</summary>
    public const string AttnSinks = "attn_sinks";
    public const string FfnGateInp = "ffn_gate_inp";
    public const string FfnGateExps = "ffn_gate_exps";
    public const string FfnUpExps = "ffn_up_exps";
    public const string FfnDownExps = "ffn_down_exps";

    // ---- fused projections (phi3 and others; quantize's rules name it) ----
    public const string AttnQkv = "attn_qkv";

    // ---- deepseek2: MLA and DeepSeekMoE ----
    public const string AttnQA = "attn_q_a";
    public const string AttnQANorm = "attn_q_a_norm";
    public const string AttnQB = "attn_q_b";
    public const string AttnKvAMqa = "attn_kv_a_mqa";
    public const string AttnKvANorm = "attn_kv_a_norm";
    /// <summary>MLA's joint K/V up-projection as Hugging Face and older GGUFs store it (training keeps it whole).</summary>
    public const string AttnKvB = "attn_kv_b";
    public const string AttnKB = "attn_k_b";
    public const string AttnVB = "attn_v_b";
    public const string FfnGateShexp = "ffn_gate_shexp";
    public const string FfnUpShexp = "ffn_up_shexp";
    public const string FfnDownShexp = "ffn_down_shexp";
    /// <summary>The router's selection bias (V3's e_score_correction_bias), stored as "blk.N.exp_probs_b.bias".</summary>
    public const string ExpProbsB = "exp_probs_b";

    /// <summary>Every per-layer tensor's name starts "blk.{layer}.".</summary>
    public const string BlockPrefix = "blk.";

    // ---- qwen35: Gated DeltaNet layers and the shared expert's gate ----
    /// <summary>Output gate of a linear-attention layer (Gated DeltaNet's z).</summary>
    public const string AttnGate = "attn_gate";
    public const string SsmConv1d = "ssm_conv1d";
    /// <summary>The decay's bias (Hugging Face dt_bias), stored as "blk.N.ssm_dt.bias".</summary>
    public const string SsmDt = "ssm_dt";
    /// <summary>−exp(A_log) per value head, stored without a suffix: "blk.N.ssm_a".</summary>
    public const string SsmA = "ssm_a";
    public const string SsmBeta = "ssm_beta";
    public const string SsmAlpha = "ssm_alpha";
    public const string SsmNorm = "ssm_norm";
    public const string SsmOut = "ssm_out";
    /// <summary>The shared expert's scalar gate per token (qwen35moe), a vector of the width.</summary>
    public const string FfnGateInpShexp = "ffn_gate_inp_shexp";

    // ---- LoRA adapters (llama.cpp's convert_lora_to_gguf.py, src/llama-adapter.cpp) ----
    /// <summary>An adapter's down-projection of a base weight, "&lt;base tensor name&gt;.lora_a", ggml dims [n_in, rank(, n_expert)].</summary>
    public const string LoraASuffix = ".lora_a";
    /// <summary>An adapter's up-projection of a base weight, "&lt;base tensor name&gt;.lora_b", ggml dims [rank, n_out(, n_expert)].</summary>
    public const string LoraBSuffix = ".lora_b";

    /// <summary>"blk.{layer}.{name}" for the tensors llama.cpp names without a suffix (ssm_a).</summary>
    public static string Bare(int layer, string name) => $"{BlockPrefix}{layer}.{name}";

    /// <summary>"blk.{layer}.{name}.weight".</summary>
    public static string Weight(int layer, string name) => $"{BlockPrefix}{layer}.{name}.weight";

    /// <summary>"blk.{layer}.{name}.bias".</summary>
    public static string Bias(int layer, string name) => $"{BlockPrefix}{layer}.{name}.bias";

    /// <summary>N of "blk.N.…"; -1 for a model-wide tensor (or a name without a layer number).</summary>
    public static int LayerOf(string tensor)
    {
        if (!tensor.StartsWith(BlockPrefix, StringComparison.Ordinal)) return -1;
        int start = BlockPrefix.Length, end = tensor.IndexOf('.', start);
        return end > start && int.TryParse(tensor.AsSpan(start, end - start), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out int layer) ? layer : -1;
    }

    /// <summary>
    /// A norm's weight: every norm's name ends in "_norm" (attn_norm, ffn_norm, attn_q_norm, post_ffw_norm, output_norm…),
    /// which is how llama.cpp's quantizer tells them apart (tensor_allows_quantization).
    /// </summary>
    public static bool IsNormWeight(string tensor) => tensor.Contains("_norm.weight", StringComparison.Ordinal);

    /// <summary>"{name}.weight" for a model-wide tensor (token_embd, output, output_norm, rope_freqs).</summary>
    public static string Weight(string name) => name + ".weight";

    /// <summary>"{name}.bias" for a model-wide tensor (bert's token_embd_norm).</summary>
    public static string Bias(string name) => name + ".bias";

    /// <summary>True when <paramref name="tensor"/> is "blk.N.{name}.weight" (or ".bias") for some layer N.</summary>
    public static bool IsLayer(string tensor, string name, string suffix = ".weight") =>
        tensor.StartsWith(BlockPrefix, StringComparison.Ordinal) && tensor.EndsWith(suffix, StringComparison.Ordinal)
        && tensor.AsSpan(0, tensor.Length - suffix.Length).EndsWith("." + name, StringComparison.Ordinal);
}

/// <summary>
/// llama.cpp's GGUF metadata keys (LLM_KV_NAMES). The per-architecture ones are written without their "{arch}."
/// prefix; <see cref="Of"/> adds it. Every reader and writer of hyper-parameters (<see cref="ModelConfig"/>,
/// <see cref="DeepSeek2Config"/>, `convert`, `info`) spells keys through this table.
/// </summary>
internal static class GgufKeys
{
    public const string ExpertCount = "expert_count";
    public const string ExpertUsedCount = "expert_used_count";
    public const string ExpertFeedForwardLength = "expert_feed_forward_length";
    public const string KeyLength = "attention.key_length";
    public const string ValueLength = "attention.value_length";

    // ---- general.* ----
    public const string GeneralArchitecture = "general.architecture";
    public const string GeneralName = "general.name";
    public const string GeneralType = "general.type";
    public const string GeneralDescription = "general.description";
    public const string GeneralFileType = "general.file_type";
    public const string GeneralQuantizationVersion = "general.quantization_version";
    public const string ChatTemplate = "tokenizer.chat_template";

    // ---- adapters (gguf-py Keys.Adapter) ----
    /// <summary>general.type of an adapter file (a model has "model" or none).</summary>
    public const string GeneralTypeAdapter = "adapter";
    public const string AdapterType = "adapter.type";
    /// <summary>adapter.type of a LoRA adapter.</summary>
    public const string AdapterTypeLora = "lora";
    /// <summary>The LoRA alpha (F32): the delta is scale·alpha/rank·B·A, or scale·B·A when alpha is 0 or absent.</summary>
    public const string AdapterLoraAlpha = "adapter.lora.alpha";

    // ---- tokenizer.ggml.* (read and written by TokenizerData) ----
    public const string TokenizerPrefix = "tokenizer.ggml.";
    public const string TokenizerModel = TokenizerPrefix + "model";
    public const string TokenizerPre = TokenizerPrefix + "pre";
    public const string TokenizerTokens = TokenizerPrefix + "tokens";
    /// <summary>Rows of bert's token_types (not per-architecture: a tokenizer key).</summary>
    public const string TokenTypeCount = TokenizerPrefix + "token_type_count";

    // ---- {arch}.* ----
    public const string VocabSize = "vocab_size";
    public const string ContextLength = "context_length";
    public const string EmbeddingLength = "embedding_length";
    public const string BlockCount = "block_count";
    public const string LeadingDenseBlockCount = "leading_dense_block_count";
    public const string FeedForwardLength = "feed_forward_length";
    public const string ExpertSharedCount = "expert_shared_count";
    public const string ExpertGroupCount = "expert_group_count";
    public const string ExpertGroupUsedCount = "expert_group_used_count";
    public const string ExpertWeightsScale = "expert_weights_scale";
    public const string ExpertWeightsNorm = "expert_weights_norm";
    public const string ExpertGatingFunc = "expert_gating_func";
    public const string HeadCount = "attention.head_count";
    public const string HeadCountKv = "attention.head_count_kv";
    public const string LayerNormRmsEps = "attention.layer_norm_rms_epsilon";
    public const string QLoraRank = "attention.q_lora_rank";
    public const string KvLoraRank = "attention.kv_lora_rank";
    public const string KeyLengthMla = "attention.key_length_mla";
    public const string ValueLengthMla = "attention.value_length_mla";
    public const string RopeDimensionCount = "rope.dimension_count";
    public const string RopeFreqBase = "rope.freq_base";
    public const string RopeScalingType = "rope.scaling.type";
    public const string RopeScalingFactor = "rope.scaling.factor";
    public const string RopeScalingOriginalContextLength = "rope.scaling.original_context_length";
    public const string RopeScalingYarnLogMultiplier = "rope.scaling.yarn_log_multiplier";
    public const string RopeScalingYarnBetaFast = "rope.scaling.yarn_beta_fast";
    public const string RopeScalingYarnBetaSlow = "rope.scaling.yarn_beta_slow";
    public const string AttentionTemperatureScale = "attention.temperature_scale";
    public const string RopeScalingAttnFactor = "rope.scaling.attn_factor";
    public const string AttentionSlidingWindow = "attention.sliding_window";
    public const string SlidingWindowPattern = "attention.sliding_window_pattern";
    public const string RopeFreqBaseSwa = "rope.freq_base_swa";
    public const string FinalLogitSoftcapping = "final_logit_softcapping";
    /// <summary>An encoder's LayerNorm epsilon (bert), where decoders state an RMSNorm one.</summary>
    public const string LayerNormEps = "attention.layer_norm_epsilon";
    public const string AttentionCausal = "attention.causal";
    /// <summary>How embeddings are pooled: 0 none, 1 mean, 2 cls, 3 last, 4 rank.</summary>
    public const string PoolingType = "pooling_type";

    // ---- qwen35 / qwen35moe ----
    public const string SsmConvKernel = "ssm.conv_kernel";
    public const string SsmInnerSize = "ssm.inner_size";
    public const string SsmStateSize = "ssm.state_size";
    public const string SsmTimeStepRank = "ssm.time_step_rank";
    public const string SsmGroupCount = "ssm.group_count";
    public const string FullAttentionInterval = "full_attention_interval";
    public const string RecurrentLayers = "attention.recurrent_layers";
    public const string RopeDimensionSections = "rope.dimension_sections";
    public const string NextnPredictLayers = "nextn_predict_layers";
    public const string ExpertSharedFeedForwardLength = "expert_shared_feed_forward_length";

    /// <summary>"{arch}.{key}".</summary>
    public static string Of(string arch, string key) => $"{arch}.{key}";
}
