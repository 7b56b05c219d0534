namespace Sputnik.Training;

/// <summary>
/// Shape of a trainable decoder (the blueprint; weights live in a ParameterBuffer): the llama layout (GQA + SwiGLU)
/// by default, DeepSeek's (MLA + MoE, exported as `deepseek2`) when <see cref="DeepSeek"/> is set.
/// </summary>
internal sealed record TrainConfig
{
    public required int Vocab { get; init; }
    public required int Dim { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    /// <summary>llama layout only (MLA has one latent shared by all heads).</summary>
    public required int KvHeads { get; init; }
    /// <summary>Dense SwiGLU width: every llama layer, DeepSeek's leading dense layers.</summary>
    public required int FfnDim { get; init; }
    public required int MaxSeq { get; init; }
    public float RopeBase { get; init; } = 10000f;
    public float RmsEps { get; init; } = 1e-5f;
    public DeepSeekShape? DeepSeek { get; init; }

    public int HeadDim => Dim / Heads;
    public int QDim => Heads * HeadDim;
    public int KvDim => KvHeads * HeadDim;

    /// <summary>
    /// Named presets. tiny-r1-ds is the shipped model (≈0.9M parameters in DeepSeek's layout: MLA, one dense layer
    /// then MoE layers of 8 routed experts, top-2, plus a shared expert, V3's sigmoid router; it fits the 25 MB budget
    /// in F32 many times over and trains at thousands of tokens/s on 2 cores); tiny-r1 is the same budget as a dense
    /// llama (the model shipped before); micro and micro-ds are the CI smoke shapes.
    /// </summary>
    public static TrainConfig Preset(string name, int vocab) => name switch
    {
        "tiny-r1" => new TrainConfig { Vocab = vocab, Dim = 128, Layers = 4, Heads = 4, KvHeads = 2, FfnDim = 384, MaxSeq = 448 },
        "tiny-r1-ds" => new TrainConfig
        {
            // 640: the longest 4×3-digit multiplication (≈ 425 tokens with its prompt) after three earlier short turns
            Vocab = vocab, Dim = 128, Layers = 4, Heads = 4, KvHeads = 1, FfnDim = 384, MaxSeq = 640, RmsEps = 1e-6f,
            DeepSeek = new DeepSeekShape
            {
                KvLoraRank = 64, QkNopeDim = 16, QkRopeDim = 16, VHeadDim = 32,
                LeadingDenseLayers = 1, Experts = 8, ExpertsUsed = 2, SharedExperts = 1, ExpertFfnDim = 48,
            },
        },
        "small-r1" => new TrainConfig { Vocab = vocab, Dim = 256, Layers = 6, Heads = 8, KvHeads = 4, FfnDim = 704, MaxSeq = 448 },
        "micro" => new TrainConfig { Vocab = vocab, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, FfnDim = 128, MaxSeq = 192 },
        "micro-ds" => new TrainConfig
        {
            Vocab = vocab, Dim = 64, Layers = 2, Heads = 4, KvHeads = 1, FfnDim = 128, MaxSeq = 192, RmsEps = 1e-6f,
            DeepSeek = new DeepSeekShape
            {
                KvLoraRank = 32, QkNopeDim = 16, QkRopeDim = 8, VHeadDim = 16,
                LeadingDenseLayers = 1, Experts = 4, ExpertsUsed = 2, SharedExperts = 1, ExpertFfnDim = 32,
            },
        },
        _ => throw new ArgumentException($"unknown preset '{name}' (tiny-r1, tiny-r1-ds, small-r1, micro, micro-ds)"),
    };

    /// <summary>The integers that must match for a checkpoint to resume into this shape.</summary>
    public int[] ShapeKey() => DeepSeek is not { } ds
        ? [Vocab, Dim, Layers, Heads, KvHeads, FfnDim, MaxSeq]
        : [Vocab, Dim, Layers, Heads, KvHeads, FfnDim, MaxSeq, ds.KvLoraRank, ds.QkNopeDim, ds.QkRopeDim, ds.VHeadDim,
            ds.LeadingDenseLayers, ds.Experts, ds.ExpertsUsed, ds.SharedExperts, ds.ExpertFfnDim];
}

/// <summary>
/// DeepSeek-V2/V3 block shapes, named as the `deepseek2` GGUF keys name them: MLA without a query low-rank path (as
/// V2-Lite), then a dense SwiGLU in the first <see cref="LeadingDenseLayers"/> layers and DeepSeekMoE after them
/// (sigmoid router, top-k over score + selection bias, weights normalised over the chosen experts and scaled by
/// <see cref="RouteScale"/>, shared experts always on).
/// </summary>
internal sealed record DeepSeekShape
{
    public required int KvLoraRank { get; init; }
    public required int QkNopeDim { get; init; }
    public required int QkRopeDim { get; init; }
    public required int VHeadDim { get; init; }
    public int LeadingDenseLayers { get; init; } = 1;
    public required int Experts { get; init; }
    public required int ExpertsUsed { get; init; }
    public int SharedExperts { get; init; } = 1;
    public required int ExpertFfnDim { get; init; }
    /// <summary>routed_scaling_factor (`expert_weights_scale`).</summary>
    public float RouteScale { get; init; } = 1f;
    /// <summary>γ of the auxiliary-loss-free balancing: selection-bias change per optimizer step (V3 uses 0.001).</summary>
    public float BiasUpdateRate { get; init; } = 1e-3f;

    public bool IsMoeLayer(int layer) => layer >= LeadingDenseLayers;
}
