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

    public static ModelConfig Config(GgufFile file) => ModelConfig.FromGguf(file, Name, Info.RopeNeox) with { QkNorm = true };

    public static LanguageModel Load(GgufFile file, WorkerPool pool) => new LlamaDecoder(file, Config(file), pool);

    // Qwen3's way of switching thinking off: with enable_thinking false the generation prompt carries an empty
    // think block (the official template does the same after '<|im_start|>assistant\n').
    public const string ChatTemplate =
        "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}" +
        "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}" +
        "{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}{%- endif %}";

    /// <summary>A qwen3 (or qwen3moe) shape: head size 128 whatever the width (Qwen3's config.json head_dim), Q/K norms.</summary>
    internal static ModelConfig Shape(string arch, int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context, int headDim = 128) =>
        ModelConfig.Create(arch, dim, layers, ffn, heads, kvHeads, vocab, context, ropeBase: 1e6f, rmsEps: 1e-6f, ropeNeox: true, headDim) with { QkNorm = true };

    /// <summary>YaRN context extension from <paramref name="original"/> tokens (DeepSeek-R1-0528-Qwen3-8B: ×4 over 32,768).</summary>
    private static ModelConfig WithYarn(ModelConfig c, float factor, int original) =>
        c with { RopeScalingFactor = factor, RopeYarn = true, RopeOriginalContext = original };

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        RopeNeox = true,
        HfArchitectures = ["Qwen3ForCausalLM"],
        Convert = LlamaHf.Conversion,
        Synth = new SynthStyle("qwen2", AddBos: false, ChatTemplate),
        Tensors = p => LlamaTensors.Declare(p, qkvBias: false),
        SynthPresets =
        [
            // qwen3-tiny carries R1-0528-Qwen3-8B's YaRN ×4 (over a 1,024-token original context) so the llama.cpp check covers it.
            new("qwen3-tiny", WithYarn(Shape(Name, 256, 4, 512, 4, 2, 1000, 4096), 4f, 1024), TiedEmbeddings: true),
            new("qwen3-0.6b", Shape(Name, 1024, 28, 3072, 16, 8, 151936, 40960), TiedEmbeddings: true),
            new("qwen3-1.7b", Shape(Name, 2048, 28, 6144, 16, 8, 151936, 40960), TiedEmbeddings: true),
            // DeepSeek-R1-0528-Qwen3-8B: Qwen3-8B's shape with YaRN ×4 over 32,768 tokens (131,072 in all), as its config.json.
            new("qwen3-8b", WithYarn(Shape(Name, 4096, 36, 12288, 32, 8, 151936, 131072), 4f, 32768), TiedEmbeddings: false),
        ],
    };
}
