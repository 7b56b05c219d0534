using Sputnik.Models;

namespace Sputnik.Training;

/// <summary>
/// Shapes of trainable decoders. Training has no hyper-parameter record of its own: a model is described by the same
/// record inference reads and the export writes (<see cref="IArchConfig"/>) — <see cref="ModelConfig"/> for the llama
/// layout (GQA + SwiGLU), <see cref="DeepSeek2Config"/> for DeepSeek's (MLA + MoE). The context length is the longest
/// sequence training builds tables for. Training implements one variant of each: the factories below build it and
/// <see cref="EnsureTrainable"/> says what a file has outside it.
/// </summary>
internal static class TrainConfig
{
    /// <summary>A llama-layout shape as training builds it: head size dim / heads, RoPE over the whole head (llama pairing).</summary>
    public static ModelConfig Llama(int vocab, int dim, int layers, int heads, int kvHeads, int ffn, int maxSeq, float rmsEps = 1e-5f) =>
        ModelConfig.Create(Models.Llama.Name, dim, layers, ffn, heads, kvHeads, vocab, maxSeq, ropeBase: 10000f, rmsEps, ropeNeox: false);

    /// <summary>
    /// DeepSeek's layout as training builds it: MLA without a query low-rank path (as V2-Lite), a dense SwiGLU in the
    /// first <paramref name="leadingDense"/> layers and DeepSeekMoE after them with V3's router (sigmoid, top-k over
    /// score + selection bias, weights normalised over the chosen experts and scaled by <paramref name="routeScale"/>,
    /// shared experts always on). No YaRN.
    /// </summary>
    public static DeepSeek2Config DeepSeek(int vocab, int dim, int layers, int heads, int ffn, int maxSeq,
        int kvLoraRank, int qkNopeDim, int qkRopeDim, int vHeadDim, int experts, int expertsUsed, int expertFfn,
        int leadingDense = 1, int sharedExperts = 1, float routeScale = 1f, float rmsEps = 1e-6f) => new()
    {
        Dim = dim, Layers = layers, Heads = heads, VocabSize = vocab, ContextLength = maxSeq, RmsEps = rmsEps,
        QLoraRank = 0, KvLoraRank = kvLoraRank, QkNopeDim = qkNopeDim, QkRopeDim = qkRopeDim, VHeadDim = vHeadDim,
        FfnDim = ffn, LeadingDenseLayers = leadingDense, ExpertCount = experts, ExpertsUsed = expertsUsed,
        SharedExperts = sharedExperts, ExpertFfnDim = expertFfn,
        ExpertWeightsScale = routeScale, ExpertWeightsNorm = true, Gating = ExpertGating.Sigmoid, RopeBase = 10000f,
        RopeOriginalContext = maxSeq,
    };

    /// <summary>
    /// Named presets. tiny-r1-ds is the shipped model (≈0.9M parameters in DeepSeek's layout: MLA, one dense layer
    /// then MoE layers of 8 routed experts, top-2, plus a shared expert, V3's sigmoid router; it fits the 25 MB budget
    /// in F32 many times over and trains at thousands of tokens/s on 2 cores); tiny-r1 is the same budget as a dense
    /// llama (the model shipped before); micro and micro-ds are the CI smoke shapes.
    /// </summary>
    public static IArchConfig Preset(string name, int vocab) => name switch
    {
        "tiny-r1" => Llama(vocab, dim: 128, layers: 4, heads: 4, kvHeads: 2, ffn: 384, maxSeq: 448),
        // 640: the longest 4×3-digit multiplication (≈ 425 tokens with its prompt) after three earlier short turns
        "tiny-r1-ds" => DeepSeek(vocab, dim: 128, layers: 4, heads: 4, ffn: 384, maxSeq: 640,
            kvLoraRank: 64, qkNopeDim: 16, qkRopeDim: 16, vHeadDim: 32, experts: 8, expertsUsed: 2, expertFfn: 48),
        // the distillation student (docs/training.md, Distillation): tiny-r1-ds's layout at d 96, 0.43x its parameters
        "mini-r1-ds" => DeepSeek(vocab, dim: 96, layers: 4, heads: 4, ffn: 192, maxSeq: 640,
            kvLoraRank: 48, qkNopeDim: 16, qkRopeDim: 8, vHeadDim: 24, experts: 8, expertsUsed: 2, expertFfn: 24),
        "small-r1" => Llama(vocab, dim: 256, layers: 6, heads: 8, kvHeads: 4, ffn: 704, maxSeq: 448),
        "micro" => Llama(vocab, dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 128, maxSeq: 192),
        // A speculative-decoding draft for the shipped model: same tokenizer and context, about an eighth of its weights.
        "draft-r1" => Llama(vocab, dim: 64, layers: 2, heads: 4, kvHeads: 2, ffn: 192, maxSeq: 640),
        "micro-ds" => DeepSeek(vocab, dim: 64, layers: 2, heads: 4, ffn: 128, maxSeq: 192,
            kvLoraRank: 32, qkNopeDim: 16, qkRopeDim: 8, vHeadDim: 16, experts: 4, expertsUsed: 2, expertFfn: 32),
        _ => throw new ArgumentException($"unknown preset '{name}' (tiny-r1, tiny-r1-ds, mini-r1-ds, small-r1, micro, micro-ds, draft-r1)"),
    };

    /// <summary>
    /// The integers that must match for a checkpoint to resume into this shape (the same list as before the records
    /// were shared, so older checkpoints still resume); the context length as 0 when <paramref name="withContext"/> is false.
    /// </summary>
    public static int[] ShapeKey(IArchConfig c, bool withContext = true)
    {
        int ctx = withContext ? c.ContextLength : 0;
        return c switch
        {
            DeepSeek2Config d =>
            [
                d.VocabSize, d.Dim, d.Layers, d.Heads, 1, d.FfnDim, ctx, d.KvLoraRank, d.QkNopeDim, d.QkRopeDim, d.VHeadDim,
                d.LeadingDenseLayers, d.ExpertCount, d.ExpertsUsed, d.SharedExperts, d.ExpertFfnDim,
                // appended only when present, so checkpoints of models without an MTP block still resume
                .. (d.NextnLayers > 0 ? new[] { d.NextnLayers } : []),
            ],
            ModelConfig m => [m.VocabSize, m.Dim, m.Layers, m.Heads, m.KvHeads, m.FfnDim, ctx],
            _ => throw new ArgumentException($"architecture '{c.Architecture}' is not one Sputnik trains"),
        };
    }

    /// <summary>Refuses a config (read from a file) outside the variant the training blocks implement, naming what differs.</summary>
    public static void EnsureTrainable(IArchConfig c, string path)
    {
        string? why = c switch
        {
            ModelConfig m when m.Architecture != Models.Llama.Name => $"architecture '{m.Architecture}'",
            ModelConfig m when m.HeadDim != m.Dim / m.Heads || m.RopeDims != m.HeadDim =>
                $"head size {m.HeadDim} / rope dims {m.RopeDims} other than dim / heads",
            ModelConfig => null,
            DeepSeek2Config d => d.QLoraRank != 0 ? "deepseek2 with q_lora_rank > 0"
                : d.ExpertCount == 0 ? "deepseek2 with no MoE layers"
                : d.Gating != ExpertGating.Sigmoid ? "deepseek2 with softmax routing"
                : !d.ExpertWeightsNorm ? "deepseek2 with unnormalised expert weights"
                : d.ExpertGroups > 1 ? "deepseek2 with grouped routing"
                : d.SharedExperts < 1 ? "deepseek2 with no shared expert"
                : d.Yarn ? "deepseek2 with YaRN rope scaling"
                : d.NextnLayers > 1 ? $"deepseek2 with {d.NextnLayers} MTP blocks (training builds one)" : null,
            _ => $"architecture '{c.Architecture}'",
        };
        if (why != null) throw new Gguf.GgufFormatException($"{path}: {why} is not a layout Sputnik trains");
    }
}
