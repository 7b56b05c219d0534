using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `phi3` (Phi-3/3.5-mini, Phi-4-mini, Phi-4-mini-reasoning), as llama.cpp's phi3.cpp runs it: llama's layer with
/// fused tensors (attn_qkv holds Q, K and V rows one after the other; ffn_up holds the gate rows, then the up rows),
/// NeoX RoPE over the first rope.dimension_count dims of each head (Phi-4-mini rotates 96 of 128:
/// partial_rotary_factor 0.75), and LongRoPE: per-pair frequency divisors rope_factors_long when the context exceeds
/// rope.scaling.original_context_length, rope_factors_short otherwise, with cos/sin scaled by rope.scaling.attn_factor
/// at every context. A sliding_window key is ignored, as llama.cpp ignores it for phi3.
/// </summary>
internal static class Phi3
{
    public const string Name = "phi3";

    // llama.cpp's names (LLM_TENSOR_ATTN_QKV, LLM_TENSOR_ROPE_FACTORS_LONG/SHORT) and keys (without "phi3.").
    public const string AttnQkv = "attn_qkv";
    public const string RopeFactorsLong = "rope_factors_long";
    public const string RopeFactorsShort = "rope_factors_short";
    public const string AttnFactorKey = "rope.scaling.attn_factor";
    public const string OriginalContextKey = "rope.scaling.original_context_length";
    public const string SlidingWindowKey = "attention.sliding_window";

    /// <summary>
    /// Phi-4-mini-reasoning's fixed system line. Its template never mentions &lt;think&gt; (the R1-distilled model
    /// opens the block itself, as plain text), so this is how a chat knows to parse its output for reasoning.
    /// </summary>
    public const string ReasoningSystemLine = "Your name is Phi, an AI math expert developed by Microsoft.";

    /// <summary>Phi-3.5-mini-instruct's template (llama.cpp's models/templates/microsoft-Phi-3.5-mini-instruct.jinja).</summary>
    public const string Phi35ChatTemplate =
        "{% for message in messages %}{% if message['role'] == 'system' and message['content'] %}{{'<|system|>\n' + message['content'] + '<|end|>\n'}}" +
        "{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}" +
        "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

    /// <summary>
    /// Phi-4-mini-reasoning's prompt format as its model card gives it (llama.cpp's bundle has no copy of the template):
    /// its fixed system line unless the conversation brings one, then turns closed by &lt;|end|&gt;, no newlines.
    /// </summary>
    public const string ReasoningChatTemplate =
        "{% if not (messages and messages[0]['role'] == 'system') %}{{ '<|system|>" + ReasoningSystemLine + "<|end|>' }}{% endif %}" +
        "{% for message in messages %}{% if message['role'] == 'system' %}{{ '<|system|>' + message['content'] + '<|end|>' }}" +
        "{% elif message['role'] == 'user' %}{{ '<|user|>' + message['content'] + '<|end|>' }}" +
        "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";

    /// <summary>The template a `synth` preset of this architecture carries: Phi-3.5's for phi-3.5 shapes, Phi-4-mini-reasoning's otherwise.</summary>
    public static string ChatTemplate(string presetName) =>
        presetName.StartsWith("phi-3", StringComparison.OrdinalIgnoreCase) ? Phi35ChatTemplate : ReasoningChatTemplate;

    public static LanguageModel Load(GgufFile file, WorkerPool pool) =>
        new Phi3Decoder(file, ModelConfig.FromGguf(file, Name, ropeNeox: true), pool);

    /// <summary>Rotated dims per head as llama.cpp's converter derives them: int(partial_rotary_factor · hidden) / heads.</summary>
    public static int RopeDims(double partialRotaryFactor, int dim, int heads) => (int)(partialRotaryFactor * dim) / heads;

    /// <summary>
    /// LongRoPE's attention factor as llama.cpp's converter writes it: √(1 + ln s / ln L₀) for s = context / L₀ &gt; 1
    /// (L₀ the original context), else 1. Phi-4-mini: 131072 / 4096 gives 1.19024.
    /// </summary>
    public static float LongRopeAttnFactor(int context, int originalContext)
    {
        double scale = (double)context / originalContext;
        return scale > 1 ? (float)Math.Sqrt(1 + Math.Log(scale) / Math.Log(originalContext)) : 1f;
    }

    /// <summary>The phi3 keys beyond <see cref="ModelConfig.WriteKeys"/>, as llama.cpp's converter writes them (sync with the reader below).</summary>
    public static void WriteKeys(GgufWriter w, int originalContext, float? attnFactor, int slidingWindow)
    {
        w.Set($"{Name}.{OriginalContextKey}", (uint)originalContext);
        if (attnFactor is { } f) w.Set($"{Name}.{AttnFactorKey}", f);
        w.Set($"{Name}.{SlidingWindowKey}", (uint)slidingWindow);
    }

    /// <summary>rope.scaling.attn_factor (1 when absent): a positive finite number.</summary>
    public static float AttnFactor(GgufFile file) => ModelConfig.FloatKey(file, $"{Name}.{AttnFactorKey}", 1f, 0f, 1e3f, aboveMin: true);
}

/// <summary>The phi3 layer: x += attn(rmsnorm(x)); x += down(SiLU(gate) ⊙ up)(rmsnorm(x)), from the shared blocks.</summary>
internal sealed class Phi3Decoder : DecoderModel
{
    private sealed record Layer(float[] AttnNorm, AttentionWeights Attention, float[] FfnNorm, FfnWeights Ffn);

    private readonly Layer[] _layers;
    private readonly float[]? _longFactors, _shortFactors;
    private readonly float _attnFactor;

    public Phi3Decoder(GgufFile file, ModelConfig config, WorkerPool pool) : base(file, config, pool)
    {
        int pairs = config.RopeDims / 2;
        _longFactors = OptionalVector(Phi3.RopeFactorsLong + ".weight", pairs);
        _shortFactors = OptionalVector(Phi3.RopeFactorsShort + ".weight", pairs);
        foreach (var factors in new[] { _longFactors, _shortFactors })
            if (factors != null && factors.Any(x => !(x > 0) || !float.IsFinite(x)))
                throw new GgufFormatException($"{file.Path}: a LongRoPE factor is not a positive finite number");
        _attnFactor = Phi3.AttnFactor(file);
        _layers = new Layer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
        {
            _layers[l] = new Layer(
                Vector(TensorNames.Weight(l, TensorNames.AttnNorm), config.Dim),
                LoadFusedAttention(l),
                Vector(TensorNames.Weight(l, TensorNames.FfnNorm), config.Dim),
                LoadFusedFfn(l));
        }
    }

    /// <summary>attn_qkv split into its Q, K and V rows (and its bias, if any), or separate attn_q/k/v as llama.cpp also accepts.</summary>
    private AttentionWeights LoadFusedAttention(int l)
    {
        var c = Config;
        string qkvName = TensorNames.Weight(l, Phi3.AttnQkv);
        if (File.FindTensor(qkvName) is null) return LoadAttention(l, qkNorm: false);
        var qkv = RowSplit(qkvName, c.Dim, c.QDim, c.KvDim, c.KvDim);
        var bias = OptionalVector(TensorNames.Bias(l, Phi3.AttnQkv), c.QDim + 2 * c.KvDim);
        return new AttentionWeights
        {
            Wq = qkv[0], Wk = qkv[1], Wv = qkv[2],
            Wo = Matrix(TensorNames.Weight(l, TensorNames.AttnOutput), c.QDim, c.Dim),
            Bq = bias?[..c.QDim], Bk = bias?[c.QDim..(c.QDim + c.KvDim)], Bv = bias?[(c.QDim + c.KvDim)..],
        };
    }

    /// <summary>ffn_up of 2·n_ff rows: the first half gates (ggml_swiglu's split), the second is up.</summary>
    private FfnWeights LoadFusedFfn(int l)
    {
        var c = Config;
        var gateUp = RowSplit(TensorNames.Weight(l, TensorNames.FfnUp), c.Dim, c.FfnDim, c.FfnDim);
        return new FfnWeights { Gate = gateUp[0], Up = gateUp[1], Down = Matrix(TensorNames.Weight(l, TensorNames.FfnDown), c.FfnDim, c.Dim) };
    }

    /// <summary>llama.cpp's get_rope_factors: rope_freqs if the file has it, else long factors past the original context, else short.</summary>
    protected override float[]? RopeFreqFactors(int contextLength) =>
        base.RopeFreqFactors(contextLength) ?? (contextLength > Config.RopeOriginalContext ? _longFactors : _shortFactors);

    protected override float RopeMagnitude => base.RopeMagnitude * _attnFactor;

    /// <summary>The LongRoPE attention factor this file scales cos/sin by.</summary>
    public float AttnFactor => _attnFactor;

    protected override void ForwardLayer(DecoderState w, int l, int n)
    {
        var layer = _layers[l];
        int dim = Config.Dim;
        NormRows(w, n, layer.AttnNorm);
        SelfAttention(w, l, n, layer.Attention);
        AddResidual(w, n, dim);
        NormRows(w, n, layer.FfnNorm);
        SwiGluFfn(w, n, layer.Ffn);
        AddResidual(w, n, dim);
    }
}
