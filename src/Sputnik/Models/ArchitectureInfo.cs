using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// What every architecture family's hyper-parameter record (<see cref="ModelConfig"/> for the llama family,
/// <see cref="DeepSeek2Config"/> for deepseek2) has in common: the sizes code outside the family reads (training,
/// export, checkpoints), and the writer of its `{arch}.*` GGUF keys, the same keys its reader reads.
/// </summary>
internal interface IArchConfig
{
    string Architecture { get; }
    int Dim { get; }
    int Layers { get; }
    int Heads { get; }
    int VocabSize { get; }
    int ContextLength { get; }
    /// <summary>Dense SwiGLU width (every llama layer; deepseek2's leading dense layers).</summary>
    int FfnDim { get; }
    float RopeBase { get; }
    float RmsEps { get; }

    /// <summary>Writes the `{arch}.*` hyper-parameter keys (not general.* nor tokenizer keys) under llama.cpp's names.</summary>
    void WriteKeys(GgufWriter w);
}

/// <summary>How `synth` fills a tensor it declares.</summary>
internal enum TensorFill
{
    /// <summary>Random N(0, σ) weights.</summary>
    Matrix,
    /// <summary>An RMSNorm gain of ones.</summary>
    Ones,
    /// <summary>Random N(0, σ) biases.</summary>
    Bias,
    /// <summary>1 + N(0, 0.1): per-head Q/K norms, so a test notices a weight applied to the wrong slice.</summary>
    NormJitter,
    /// <summary>Values the architecture computes from the config (<see cref="TensorDecl.Values"/>): RoPE frequency factors.</summary>
    Computed,
}

/// <summary>
/// One tensor of an architecture's file: GGUF name, ggml dims (columns first), how `synth` fills it and, for
/// <see cref="TensorFill.Computed"/>, the function that writes its (1-D) values.
/// </summary>
internal sealed record TensorDecl(string Name, long[] Dims, TensorFill Fill, SpanAction? Values = null)
{
    /// <summary>The type this architecture's files always carry the tensor in, whatever the file type (gpt-oss's MXFP4 experts); null follows the quantization mix.</summary>
    public GgmlType? Type { get; init; }
}

/// <summary>Fills a computed tensor.</summary>
internal delegate void SpanAction(Span<float> values);

/// <summary>
/// Hyper-parameters only one architecture has (a sliding-window pattern, LongRoPE factors…): a record in that
/// architecture's file, read by its config reader and hung on <see cref="ModelConfig.ArchParams"/>, whose
/// <see cref="ModelConfig.WriteKeys"/> then writes them with the rest, so `synth`, `convert` and export agree.
/// </summary>
internal interface IArchKeys
{
    /// <summary>Writes this architecture's own `{arch}.*` keys.</summary>
    void WriteKeys(GgufWriter w, string arch);
}

/// <summary>What a `synth` file of an architecture carries beyond its hyper-parameters and tensors.</summary>
/// <param name="TokenizerPre">tokenizer.ggml.pre of the synthetic vocabulary (the family's pre-tokenizer).</param>
/// <param name="AddBos">Whether the family's tokenizer adds BOS.</param>
/// <param name="ChatTemplate">The family's chat template (the parts `sputnik chat` and the server exercise).</param>
internal sealed record SynthStyle(string TokenizerPre, bool AddBos, string ChatTemplate)
{
    /// <summary>The synthetic vocabulary of a given size, when the family needs other tokens than <see cref="Tools.SyntheticVocab.Create"/> gives.</summary>
    public Func<int, Tokenizers.TokenizerData>? CreateVocab { get; init; }
}

/// <summary>
/// A named `synth` shape of a llama-family architecture: its hyper-parameters exactly as the file will carry them,
/// whether the output head is tied to the embedding, and (Llama 3.1+) the factor of its rope_freqs tensor.
/// </summary>
internal sealed record SynthPreset(string Name, ModelConfig Config, bool TiedEmbeddings, float? Llama3RopeFactor = null)
{
    public string Arch => Config.Architecture;

    /// <summary>This model's own chat template, when it is not the family's (<see cref="SynthStyle.ChatTemplate"/>).</summary>
    public string? ChatTemplate { get; init; }
}

/// <summary>
/// One architecture as the rest of Sputnik sees it, declared in the architecture's own file and registered with one
/// line in <see cref="ModelLoader"/>: its `general.architecture` name, how a file is loaded (hyper-parameters, then
/// the forward), the Hugging Face `architectures` names `convert` maps to it and how it converts them, and for `synth`
/// the family's style, the tensors a file carries and the preset shapes.
/// </summary>
internal sealed record ArchitectureInfo(string Name, Func<GgufFile, WorkerPool, LanguageModel> Load)
{
    /// <summary>
    /// NeoX (rotate-half) RoPE pairing, as llama.cpp's LLAMA_ROPE_TYPE_NEOX; false is llama's adjacent pairs, for which
    /// `convert` permutes Hugging Face's Q/K rows as llama.cpp's LlamaModel converter does.
    /// </summary>
    public bool RopeNeox { get; init; }

    /// <summary>config.json `architectures[0]` values that `sputnik convert` turns into this architecture.</summary>
    public IReadOnlyList<string> HfArchitectures { get; init; } = [];

    /// <summary>How `sputnik convert` reads such a checkpoint: config.json → hyper-parameters, checkpoint tensors → GGUF tensors.</summary>
    public Conversion.HfConversion? Convert { get; init; }

    /// <summary>`sputnik info` lines for hyper-parameters only this architecture has (the common ones are read by key).</summary>
    public Action<GgufFile, System.Text.Json.Nodes.JsonObject>? DescribeInfo { get; init; }

    /// <summary>Tokenizer family and chat template of `synth` files; null when `synth` writes this architecture its own way.</summary>
    public SynthStyle? Synth { get; init; }

    /// <summary>Every tensor a file of <see cref="SynthPreset"/>'s shape carries (llama.cpp's load_arch_tensors, less the optional ones).</summary>
    public Func<SynthPreset, IEnumerable<TensorDecl>>? Tensors { get; init; }

    /// <summary>`sputnik synth --preset` shapes: a tiny one for tests and the llama.cpp check, and the real models'.</summary>
    public IReadOnlyList<SynthPreset> SynthPresets { get; init; } = [];

    /// <summary>
    /// `synth` for an architecture whose hyper-parameter record is not <see cref="ModelConfig"/> (deepseek2): its preset
    /// shapes and its own writer, in place of <see cref="Synth"/>, <see cref="Tensors"/> and <see cref="SynthPresets"/>.
    /// </summary>
    public OwnSynth? OwnSynth { get; init; }
}

/// <summary>A named `synth` shape in its architecture's own hyper-parameter record.</summary>
internal sealed record OwnSynthPreset(string Name, IArchConfig Config)
{
    public string Arch => Config.Architecture;
}

/// <summary>Writes a `synth` file of <paramref name="preset"/>: random weights of the file type, deterministic per seed.</summary>
internal delegate void OwnSynthWriter(string path, OwnSynthPreset preset, Tools.FileType fileType, ulong seed, int threads);

/// <summary>The presets and writer of an architecture that `synth` writes its own way (<see cref="ArchitectureInfo.OwnSynth"/>).</summary>
internal sealed record OwnSynth(IReadOnlyList<OwnSynthPreset> Presets, OwnSynthWriter Write);
