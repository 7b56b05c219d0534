using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `qwen3` (Qwen3 0.6B–32B, DeepSeek-R1-0528-Qwen3-8B): qwen2's blocks without Q/K/V biases, plus an RMSNorm over
/// each head of Q and of K (attn_q_norm / attn_k_norm, head-size weights) before NeoX RoPE. The head size is its own
/// hyper-parameter (attention.key_length: 128 in every Qwen3, so heads·128 need not equal the embedding width).
/// </summary>
internal static class Qwen3
{
    public const string Name = "qwen3";

    public static ModelConfig Config(GgufFile file) => ModelConfig.FromGguf(file, Name, ropeNeox: true) with { QkNorm = true };

    public static LanguageModel Load(GgufFile file, WorkerPool pool) => new LlamaDecoder(file, Config(file), pool);
}
