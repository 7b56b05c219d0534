using System.Text.Json;
using Sputnik.Conversion;
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
        (ModelConfig.FromGguf(file, Name, Info.RopeNeox) with { QkNorm = true }).WithExperts(file, Routing);

    public static LanguageModel Load(GgufFile file, WorkerPool pool) => new LlamaDecoder(file, Config(file), pool);

    private static ModelConfig Shape(int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context, int headDim,
        int experts, int used, int expertFfn) =>
        Qwen3.Shape(Name, dim, layers, ffn, heads, kvHeads, vocab, context, headDim) with
        {
            Moe = Routing with { ExpertCount = experts, ExpertsUsed = used }, ExpertFfnDim = expertFfn,
        };

    /// <summary>
    /// Qwen3MoeForCausalLM's config.json: qwen3's, plus the routed experts as llama.cpp's Qwen3MoeModel writes them
    /// (num_experts, num_experts_per_tok, moe_intermediate_size); a checkpoint with dense layers is refused.
    /// </summary>
    private static ModelConfig ConfigFromHf(HfCheckpoint ck)
    {
        var c = LlamaHf.ReadConfig(ck);
        if (ck.TryGet("mlp_only_layers", out var dense) && dense.ValueKind == JsonValueKind.Array && dense.GetArrayLength() > 0)
            throw new UnsupportedModelException("config.json: mlp_only_layers is not empty; qwen3moe (as llama.cpp runs it) routes every layer to experts");
        if (ck.Int("decoder_sparse_step", 1) != 1)
            throw new UnsupportedModelException($"config.json: decoder_sparse_step {ck.Int("decoder_sparse_step")} is not supported; qwen3moe routes every layer to experts");
        int experts = ck.Int("num_experts"), used = ck.Int("num_experts_per_tok");
        if (experts < 1 || used < 1 || used > experts)
            throw new InvalidDataException($"config.json: num_experts_per_tok {used} must be in 1..num_experts {experts}");
        return c with { Moe = Routing with { ExpertCount = experts, ExpertsUsed = used }, ExpertFfnDim = ck.Int("moe_intermediate_size") };
    }

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        RopeNeox = true,
        HfArchitectures = ["Qwen3MoeForCausalLM"],
        Convert = HfConversion.Of<ModelConfig>(ConfigFromHf, LlamaHf.PlanTensors),
        Synth = new SynthStyle("qwen2", AddBos: false, Qwen3.ChatTemplate),
        Tensors = p => LlamaTensors.Declare(p, qkvBias: false),
        SynthPresets =
        [
            new("qwen3moe-tiny", Shape(256, 4, 512, 4, 2, 1000, 4096, headDim: 64, experts: 16, used: 4, expertFfn: 128), TiedEmbeddings: false),
            new("qwen3-30b-a3b", Shape(2048, 48, 6144, 32, 4, 151936, 40960, headDim: 128, experts: 128, used: 8, expertFfn: 768), TiedEmbeddings: false),
        ],
    };
}
