using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `qwen3moe` (Qwen3-30B-A3B, 235B-A22B): qwen3's attention; every layer's FFN is routed experts only (no shared
/// expert, no dense layers): softmax over all experts, top-k, the k weights renormalised to sum 1 (llama.cpp's
/// build_moe_ffn with norm_w = true, softmax gating, no scale).
/// </summary>
internal static class Qwen3Moe
{
    public const string Name = "qwen3moe";

    public static readonly RouterConfig Routing = new(0, 0, ExpertGating.Softmax, ExpertWeightsNorm: true);

    public static ModelConfig Config(GgufFile file) =>
        (ModelConfig.FromGguf(file, Name, ropeNeox: true) with { QkNorm = true }).WithExperts(file, Routing);

    public static LanguageModel Load(GgufFile file, WorkerPool pool) => new LlamaDecoder(file, Config(file), pool);
}
