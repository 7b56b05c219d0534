namespace Sputnik.Training;

/// <summary>Shape of a trainable llama-style decoder (the blueprint; weights live in a ParameterBuffer).</summary>
internal sealed record TrainConfig
{
    public required int Vocab { get; init; }
    public required int Dim { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int FfnDim { get; init; }
    public required int MaxSeq { get; init; }
    public float RopeBase { get; init; } = 10000f;
    public float RmsEps { get; init; } = 1e-5f;

    public int HeadDim => Dim / Heads;
    public int QDim => Heads * HeadDim;
    public int KvDim => KvHeads * HeadDim;

    /// <summary>
    /// Named presets. tiny-r1 is the shipped model (≈1M parameters: fits the 25 MB budget in F32 many times over
    /// and trains at thousands of tokens/s on 2 cores); micro is the CI smoke shape.
    /// </summary>
    public static TrainConfig Preset(string name, int vocab) => name switch
    {
        "tiny-r1" => new TrainConfig { Vocab = vocab, Dim = 128, Layers = 4, Heads = 4, KvHeads = 2, FfnDim = 384, MaxSeq = 448 },
        "small-r1" => new TrainConfig { Vocab = vocab, Dim = 256, Layers = 6, Heads = 8, KvHeads = 4, FfnDim = 704, MaxSeq = 448 },
        "micro" => new TrainConfig { Vocab = vocab, Dim = 64, Layers = 2, Heads = 4, KvHeads = 2, FfnDim = 128, MaxSeq = 192 },
        _ => throw new ArgumentException($"unknown preset '{name}' (tiny-r1, small-r1, micro)"),
    };
}
