using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `llama` (Llama 2/3, Mistral, R1-Distill-Llama, llama2.c models). The GGUF converter permutes Q/K rows so
/// RoPE uses adjacent pairs (normal pairing). Llama 3.1 frequency scaling arrives as a `rope_freqs` tensor.
/// </summary>
internal static class Llama
{
    public const string Name = "llama";

    public static LanguageModel Load(GgufFile file, WorkerPool pool) =>
        new LlamaDecoder(file, ModelConfig.FromGguf(file, Name, Info.RopeNeox), pool);

    /// <summary>Llama 3's chat format (header ids, eot), the part synthetic files need.</summary>
    public const string ChatTemplate =
        "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + " +
        "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}{%- if add_generation_prompt %}" +
        "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}";

    private static ModelConfig Shape(int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context) =>
        ModelConfig.Create(Name, dim, layers, ffn, heads, kvHeads, vocab, context, ropeBase: 500000f, rmsEps: 1e-5f, ropeNeox: false);

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        HfArchitectures = ["LlamaForCausalLM"],
        Convert = LlamaHf.Conversion,
        Synth = new SynthStyle("llama-bpe", AddBos: true, ChatTemplate),
        Tensors = p => LlamaTensors.Declare(p, qkvBias: false),
        SynthPresets =
        [
            new("llama-tiny", Shape(256, 4, 512, 4, 2, 800, 4096), TiedEmbeddings: false),
            new("llama-3.2-1b", Shape(2048, 16, 8192, 32, 8, 128256, 131072), TiedEmbeddings: true, Llama3RopeFactor: 32f),
            new("llama-3.2-3b", Shape(3072, 28, 8192, 24, 8, 128256, 131072), TiedEmbeddings: true, Llama3RopeFactor: 32f),
            new("llama-3.1-8b", Shape(4096, 32, 14336, 32, 8, 128256, 131072), TiedEmbeddings: false, Llama3RopeFactor: 8f),
        ],
    };
}

/// <summary>
/// The llama layer, which qwen2, qwen3 and qwen3moe reuse as is: x += attn(rmsnorm(x)); x += ffn(rmsnorm(x)), the
/// FFN a SwiGLU or, when the config routes, experts. What differs between those architectures is data: RoPE
/// pairing, the biases or Q/K norms a file carries (read by <see cref="DecoderModel.LoadAttention"/>).
/// </summary>
internal sealed class LlamaDecoder : DecoderModel
{
    private sealed record Layer(float[] AttnNorm, AttentionWeights Attention, float[] FfnNorm, FfnWeights? Ffn, MoeWeights? Experts);

    private readonly Layer[] _layers;

    public LlamaDecoder(GgufFile file, ModelConfig config, WorkerPool pool) : base(file, config, pool)
    {
        _layers = new Layer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            bool routed = config.Moe != null;
            _layers[l] = new Layer(
                Vector(TensorNames.Weight(l, TensorNames.AttnNorm), config.Dim),
                LoadAttention(l, config.QkNorm),
                Vector(TensorNames.Weight(l, TensorNames.FfnNorm), config.Dim),
                routed ? null : LoadFfn(l),
                routed ? LoadExperts(l) : null);
        }
    }

    protected override void ForwardLayer(DecoderState w, int l, int n)
    {
        var layer = _layers[l];
        int dim = Config.Dim;
        NormRows(w, n, layer.AttnNorm);
        SelfAttention(w, l, n, layer.Attention);
        AddResidual(w, n, dim);
        NormRows(w, n, layer.FfnNorm);
        if (layer.Experts != null) ExpertsFfn(w, n, layer.Experts);
        else SwiGluFfn(w, n, layer.Ffn!);
        AddResidual(w, n, dim);
    }
}
