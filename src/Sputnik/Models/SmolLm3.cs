using System.Text.Json;
using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `smollm3` (SmolLM3-3B): llama's layer (consecutive-pair RoPE, the converter permutes Q/K, tied embeddings) with
/// NoPE layers: every fourth layer (l + 1 ≡ 0 mod 4) attends without rotating Q and K. The GGUF has no key for the
/// interval; llama.cpp fixes it at 4 (SmolLM3's no_rope_layer_interval), and so does this file.
/// </summary>
internal static class SmolLm3
{
    public const string Name = "smollm3";

    /// <summary>Layers l with (l + 1) % NoRopeLayerStep == 0 skip RoPE (llama.cpp's n_no_rope_layer_step).</summary>
    public const int NoRopeLayerStep = 4;

    /// <summary>
    /// SmolLM3's chat format for synthetic files, behaving as its own template does: reasoning mode /think unless
    /// enable_thinking is false or the system prompt says /no_think (the flags are removed from the instructions); in
    /// /no_think mode every assistant turn, and the generation prompt, starts with an empty &lt;think&gt; block.
    /// </summary>
    public const string ChatTemplate =
        """
        {%- if enable_thinking is not defined %}{%- set enable_thinking = true %}{%- endif %}
        {%- set reasoning_mode = '/think' if enable_thinking else '/no_think' %}
        {%- set custom_instructions = '' %}
        {%- if messages[0].role == 'system' %}
        {%- if '/no_think' in messages[0].content %}{%- set reasoning_mode = '/no_think' %}
        {%- elif '/think' in messages[0].content %}{%- set reasoning_mode = '/think' %}{%- endif %}
        {%- set custom_instructions = messages[0].content.replace('/no_think', '').replace('/think', '').rstrip() %}
        {%- endif %}
        {%- set empty_think = '' if reasoning_mode == '/think' else '<think>\n\n</think>\n' %}
        {{- '<|im_start|>system\n## Metadata\n\nReasoning Mode: ' + reasoning_mode + '\n\n## Custom Instructions\n\n' }}
        {{- (custom_instructions if custom_instructions else 'You are a helpful AI assistant named SmolLM, trained by Hugging Face.') + '\n\n<|im_end|>\n' }}
        {%- for message in messages %}
        {%- if message.role == 'user' or message.role == 'tool' %}{{- '<|im_start|>user\n' + message.content + '<|im_end|>\n' }}
        {%- elif message.role == 'assistant' %}{{- '<|im_start|>assistant\n' + empty_think + message.content.lstrip('\n') + '<|im_end|>\n' }}
        {%- endif %}
        {%- endfor %}
        {%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' + empty_think }}{%- endif %}
        """;

    public static bool UsesRope(int layer) => (layer + 1) % NoRopeLayerStep != 0;

    public static ModelConfig Config(GgufFile file) => ModelConfig.FromGguf(file, Name, Info.RopeNeox);

    public static LanguageModel Load(GgufFile file, WorkerPool pool) => new SmolLm3Decoder(file, Config(file), pool);

    private static ModelConfig Shape(int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context) =>
        ModelConfig.Create(Name, dim, layers, ffn, heads, kvHeads, vocab, context, ropeBase: 5e6f, rmsEps: 1e-6f, ropeNeox: false);

    /// <summary>
    /// SmolLM3ForCausalLM's config.json, converted as llama (llama.cpp's SmolLM3Model derives from LlamaModel). llama.cpp
    /// skips RoPE on every fourth layer whatever the checkpoint says (the GGUF has no key for it), so a SmolLM3 with
    /// another NoPE pattern (no_rope_layer_interval, or a no_rope_layers list) is refused rather than run wrong.
    /// </summary>
    private static ModelConfig ConfigFromHf(HfCheckpoint ck)
    {
        var c = LlamaHf.ReadConfig(ck);
        int interval = ck.Int("no_rope_layer_interval", NoRopeLayerStep);
        if (interval != NoRopeLayerStep)
            throw new UnsupportedModelException($"config.json: no_rope_layer_interval {interval} is not supported (smollm3 skips RoPE on every {NoRopeLayerStep}th layer)");
        if (!ck.TryGet("no_rope_layers", out var list) || list.ValueKind != JsonValueKind.Array) return c;
        bool matches = list.GetArrayLength() == c.Layers && list.EnumerateArray().Select((v, l) => (v, l))
            .All(x => x.v.ValueKind == JsonValueKind.Number && (x.v.GetInt32() != 0) == UsesRope(x.l));
        if (!matches)
            throw new UnsupportedModelException($"config.json: no_rope_layers does not skip RoPE on exactly every {NoRopeLayerStep}th of the {c.Layers} layers, the only pattern smollm3 files can express");
        return c;
    }

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        HfArchitectures = ["SmolLM3ForCausalLM"],
        Convert = HfConversion.Of<ModelConfig>(ConfigFromHf, LlamaHf.PlanTensors),
        DescribeInfo = (_, o) => o["no_rope_every_nth_layer"] = NoRopeLayerStep,
        // SmolLM3 uses Llama 3's tokenizer (llama-bpe, BOS added by its template, not the tokenizer) with ChatML turns.
        Synth = new SynthStyle("llama-bpe", AddBos: false, ChatTemplate),
        Tensors = p => LlamaTensors.Declare(p, qkvBias: false),
        SynthPresets =
        [
            // layer 3 of 4 (every fourth) is a NoPE layer.
            new("smollm3-tiny", Shape(256, 4, 512, 4, 2, 1000, 4096), TiedEmbeddings: true),
            new("smollm3-3b", Shape(2048, 36, 11008, 16, 4, 128256, 65536), TiedEmbeddings: true),
        ],
    };
}

/// <summary>x += attn(rmsnorm(x)) with RoPE only on rope layers; x += SwiGLU(rmsnorm(x)).</summary>
internal sealed class SmolLm3Decoder : DecoderModel
{
    private sealed record Layer(float[] AttnNorm, AttentionWeights Attention, bool Rope, float[] FfnNorm, FfnWeights Ffn);

    private readonly Layer[] _layers;

    public SmolLm3Decoder(GgufFile file, ModelConfig config, WorkerPool pool) : base(file, config, pool)
    {
        _layers = new Layer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
            _layers[l] = new Layer(
                Vector(TensorNames.Weight(l, TensorNames.AttnNorm), config.Dim),
                LoadAttention(l, qkNorm: false),
                SmolLm3.UsesRope(l),
                Vector(TensorNames.Weight(l, TensorNames.FfnNorm), config.Dim),
                LoadFfn(l));
    }

    protected override bool LayerRotates(int layer) => SmolLm3.UsesRope(layer);

    protected override void ForwardLayer(DecoderState w, int l, int n)
    {
        var layer = _layers[l];
        int dim = Config.Dim;
        NormRows(w, n, layer.AttnNorm);
        SelfAttention(w, l, n, layer.Attention, rope: layer.Rope);
        AddResidual(w, n, dim);
        NormRows(w, n, layer.FfnNorm);
        SwiGluFfn(w, n, layer.Ffn);
        AddResidual(w, n, dim);
    }
}
