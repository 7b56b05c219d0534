using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `qwen2` (Qwen2/2.5, DeepSeek-R1-Distill-Qwen): llama blocks plus Q/K/V biases, NeoX RoPE pairing
/// (the converter does not permute Q/K), rope base 1e6 in the files.
/// </summary>
internal static class Qwen2
{
    public const string Name = "qwen2";

    public static LanguageModel Load(GgufFile file, WorkerPool pool) =>
        new LlamaDecoder(file, ModelConfig.FromGguf(file, Name, Info.RopeNeox), pool);

    /// <summary>ChatML, the part synthetic files need (Qwen2's template less tools).</summary>
    public const string ChatMl =
        "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
        "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

    private static ModelConfig Shape(int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context) =>
        ModelConfig.Create(Name, dim, layers, ffn, heads, kvHeads, vocab, context, ropeBase: 1e6f, rmsEps: 1e-6f, ropeNeox: true);

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        RopeNeox = true,
        HfArchitectures = ["Qwen2ForCausalLM"],
        Convert = LlamaHf.Conversion,
        Synth = new SynthStyle("qwen2", AddBos: false, ChatMl),
        Tensors = p => LlamaTensors.Declare(p, qkvBias: true),
        SynthPresets =
        [
            new("qwen2-tiny", Shape(256, 4, 512, 4, 2, 1000, 4096), TiedEmbeddings: true),
            new("qwen2-0.5b", Shape(896, 24, 4864, 14, 2, 151936, 32768), TiedEmbeddings: true),
            new("qwen2-1.5b", Shape(1536, 28, 8960, 12, 2, 151936, 32768), TiedEmbeddings: true),
            new("qwen2-7b", Shape(3584, 28, 18944, 28, 4, 152064, 32768), TiedEmbeddings: false),
        ],
    };
}
