namespace Sputnik.Models;

/// <summary>
/// llama.cpp's tensor names (src/llama-arch.cpp, LLM_TENSOR_NAMES) for the tensors the llama-family decoders and
/// their MoE variants use, so the loader, `synth` and `convert` spell each name once. Per-layer names are
/// "blk.{layer}.{name}.weight".
/// </summary>
internal static class TensorNames
{
    public const string TokenEmbd = "token_embd";
    public const string Output = "output";
    public const string OutputNorm = "output_norm";
    public const string RopeFreqs = "rope_freqs";
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
    public const string FfnGateInp = "ffn_gate_inp";
    public const string FfnGateExps = "ffn_gate_exps";
    public const string FfnUpExps = "ffn_up_exps";
    public const string FfnDownExps = "ffn_down_exps";

    /// <summary>"blk.{layer}.{name}.weight".</summary>
    public static string Weight(int layer, string name) => $"blk.{layer}.{name}.weight";

    /// <summary>"blk.{layer}.{name}.bias".</summary>
    public static string Bias(int layer, string name) => $"blk.{layer}.{name}.bias";
}

/// <summary>llama.cpp's per-architecture GGUF keys (LLM_KV_NAMES) for the hyper-parameters added with the MoE decoders, without the "{arch}." prefix.</summary>
internal static class GgufKeys
{
    public const string ExpertCount = "expert_count";
    public const string ExpertUsedCount = "expert_used_count";
    public const string ExpertFeedForwardLength = "expert_feed_forward_length";
    public const string KeyLength = "attention.key_length";
    public const string ValueLength = "attention.value_length";
}
