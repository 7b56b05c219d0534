using Sputnik.Conversion;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// `mistral3` (Ministral 3 3B/8B/14B Instruct and Reasoning, the text half of Mistral 3): llama's layer
/// (consecutive-pair RoPE, the converter permutes Q/K) with YaRN context extension that reads its own beta and
/// yarn_log_multiplier keys, and Llama 4's attention temperature: Q is scaled by 1 + β·ln(⌊pos / L0⌋ + 1) after RoPE,
/// L0 the original (pre-YaRN) context, so nothing changes inside the first L0 positions (16,384 in Ministral 3).
/// llama.cpp's mistral3 also allows routed experts and output/FFN biases; no released Ministral 3 has them, and a file
/// that does is refused rather than run wrong.
/// </summary>
internal static class Mistral3
{
    public const string Name = "mistral3";

    /// <summary>
    /// Ministral 3 Reasoning's chat format for synthetic files, as its template renders ordinary conversations: BOS,
    /// [SYSTEM_PROMPT]…[/SYSTEM_PROMPT] (a default one asking for [THINK]…[/THINK] before the answer when the
    /// conversation has none), [INST]…[/INST] per user turn, each assistant turn closed by EOS. The model opens
    /// [THINK] itself.
    /// </summary>
    public const string ChatTemplate =
        """
        {%- set default_system = 'First draft your thinking process (inner monologue) until you arrive at a response. Your thinking process must follow the template below:[THINK]Your thoughts or/and draft.[/THINK]Here, provide a self-contained response.' %}
        {{- bos_token }}
        {%- if messages[0].role == 'system' %}{{- '[SYSTEM_PROMPT]' + messages[0].content + '[/SYSTEM_PROMPT]' }}{%- set loop_messages = messages[1:] %}
        {%- else %}{{- '[SYSTEM_PROMPT]' + default_system + '[/SYSTEM_PROMPT]' }}{%- set loop_messages = messages %}{%- endif %}
        {%- for message in loop_messages %}
        {%- if message.role == 'user' %}{{- '[INST]' + message.content + '[/INST]' }}
        {%- elif message.role == 'assistant' %}{{- message.content + eos_token }}
        {%- elif message.role == 'tool' %}{{- '[TOOL_RESULTS]' + message.content + '[/TOOL_RESULTS]' }}
        {%- endif %}
        {%- endfor %}
        """;

    /// <summary>The hyper-parameters mistral3 adds to <see cref="ModelConfig"/> (hung on its <see cref="ModelConfig.ArchParams"/>).</summary>
    /// <param name="TemperatureScale">attention.temperature_scale (HF llama_4_scaling_beta); 0 = no temperature.</param>
    /// <param name="YarnLogMultiplier">rope.scaling.yarn_log_multiplier (HF mscale_all_dim); 0 = absent.</param>
    public sealed record Params(float TemperatureScale, float YarnLogMultiplier) : IArchKeys
    {
        /// <summary>
        /// Magnitude of YaRN's cos/sin as llama.cpp ends up with it: its attn_factor is
        /// mscale(f, 1) / mscale(f, log_mul) / mscale(f, 1) when the multiplier is set (mscale(f, 1) / mscale(f, 1) otherwise),
        /// and ggml multiplies that by mscale(f, 1) again; Ministral 3's multiplier 1 makes it exactly 1.
        /// </summary>
        public float RopeMagnitude(ModelConfig c) => !c.RopeYarn ? 1f
            : YarnLogMultiplier != 0f ? Yarn.MScale(c.RopeScalingFactor, 1f) / Yarn.MScale(c.RopeScalingFactor, YarnLogMultiplier)
            : Yarn.MScale(c.RopeScalingFactor, 1f);

        /// <summary>The query temperature, floored on the original context as llama.cpp's n_attn_temp_floor_scale; null when off.</summary>
        public QueryTemperature? Temperature(ModelConfig c) => TemperatureScale == 0f ? null : new(TemperatureScale, c.RopeOriginalContext);

        /// <summary>Writes the keys <see cref="Read"/> reads beyond llama's (the YaRN betas are <see cref="ModelConfig.WriteKeys"/>'s).</summary>
        public void WriteKeys(GgufWriter w, string arch)
        {
            if (TemperatureScale != 0f) w.Set(GgufKeys.Of(arch, GgufKeys.AttentionTemperatureScale), TemperatureScale);
            if (YarnLogMultiplier != 0f) w.Set(GgufKeys.Of(arch, GgufKeys.RopeScalingYarnLogMultiplier), YarnLogMultiplier);
        }
    }

    public static (ModelConfig Config, Params Extra) Read(GgufFile file)
    {
        var c = ModelConfig.FromGguf(file, Name, Info.RopeNeox);
        c = c with
        {
            YarnBetaFast = ModelConfig.FloatKey(file, $"{Name}.{GgufKeys.RopeScalingYarnBetaFast}", c.YarnBetaFast, 0f, 1e4f, aboveMin: true),
            YarnBetaSlow = ModelConfig.FloatKey(file, $"{Name}.{GgufKeys.RopeScalingYarnBetaSlow}", c.YarnBetaSlow, 0f, 1e4f, aboveMin: true),
        };
        var extra = new Params(
            ModelConfig.FloatKey(file, $"{Name}.{GgufKeys.AttentionTemperatureScale}", 0f, 0f, 100f),
            ModelConfig.FloatKey(file, $"{Name}.{GgufKeys.RopeScalingYarnLogMultiplier}", 0f, 0f, 100f));
        if (file.TryGetInt64($"{Name}.{GgufKeys.ExpertCount}", out long experts) && experts > 0)
            throw new UnsupportedModelException($"{file.Path}: mistral3 with routed experts ({experts}) is not supported; only the dense Ministral 3 models are");
        foreach (string bias in new[] { TensorNames.Bias(0, TensorNames.AttnOutput), TensorNames.Bias(0, TensorNames.FfnUp), TensorNames.Bias(0, TensorNames.FfnDown), TensorNames.Bias(0, TensorNames.FfnGate) })
            if (file.FindTensor(bias) != null)
                throw new UnsupportedModelException($"{file.Path}: mistral3 with tensor '{bias}' is not supported (no released Ministral 3 has output or FFN biases)");
        return (c with { ArchParams = extra }, extra);
    }

    public static LanguageModel Load(GgufFile file, WorkerPool pool)
    {
        var (config, extra) = Read(file);
        return new Mistral3Decoder(file, config, extra, pool);
    }

    private static ModelConfig Shape(int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context, float yarnFactor, int yarnOriginal) =>
        ModelConfig.Create(Name, dim, layers, ffn, heads, kvHeads, vocab, context, ropeBase: 1e6f, rmsEps: 1e-5f, ropeNeox: false, headDim: 128) with
        {
            RopeScalingFactor = yarnFactor, RopeYarn = true, RopeOriginalContext = yarnOriginal,
            ArchParams = new Params(TemperatureScale: 0.1f, YarnLogMultiplier: 1f),
        };

    /// <summary>
    /// Ministral 3's config.json (text_config), converted as llama (llama.cpp's Ministral3Model derives from LlamaModel),
    /// with its keys beyond llama's under YaRN: yarn_log_multiplier = mscale_all_dim, attention.temperature_scale =
    /// llama_4_scaling_beta, and the YaRN betas when stated.
    /// </summary>
    private static ModelConfig ConfigFromHf(HfCheckpoint ck)
    {
        var c = LlamaHf.ReadConfig(ck);
        if (!c.RopeYarn || ck.RopeScaling() is not { } rope) return c;
        float Get(string key, float fallback) => HfCheckpoint.Number(rope, key, fallback);
        return c with
        {
            YarnBetaFast = Get("beta_fast", c.YarnBetaFast), YarnBetaSlow = Get("beta_slow", c.YarnBetaSlow),
            ArchParams = new Params(TemperatureScale: Get("llama_4_scaling_beta", 0f), YarnLogMultiplier: Get("mscale_all_dim", 0f)),
        };
    }

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        HfArchitectures = ["Mistral3ForConditionalGeneration", "Ministral3ForCausalLM"],
        Convert = HfConversion.Of<ModelConfig>(ConfigFromHf, LlamaHf.PlanTensors),
        Synth = new SynthStyle("llama-bpe", AddBos: true, ChatTemplate),
        Tensors = p => LlamaTensors.Declare(p, qkvBias: false),
        SynthPresets =
        [
            // Head size 128, YaRN ×16 with Llama 4's attention temperature β 0.1 from the original context on. The tiny
            // one starts YaRN and the temperature at 16 tokens so a short prompt crosses two steps.
            new("ministral3-tiny", Shape(256, 4, 512, 4, 2, 1000, 4096, 16f, 16), TiedEmbeddings: true),
            // Ministral-3-3B-Reasoning-2512's text model (config.json text_config).
            new("ministral3-3b", Shape(3072, 26, 9216, 32, 8, 131072, 262144, 16f, 16384), TiedEmbeddings: true),
        ],
    };
}

/// <summary>x += attn(rmsnorm(x)) with the query temperature; x += SwiGLU(rmsnorm(x)).</summary>
internal sealed class Mistral3Decoder : DecoderModel
{
    private sealed record Layer(float[] AttnNorm, AttentionWeights Attention, float[] FfnNorm, FfnWeights Ffn);

    private readonly Layer[] _layers;
    private readonly QueryTemperature? _temperature;
    private readonly float _ropeMagnitude;

    public Mistral3Decoder(GgufFile file, ModelConfig config, Mistral3.Params extra, WorkerPool pool) : base(file, config, pool)
    {
        _temperature = extra.Temperature(config);
        _ropeMagnitude = extra.RopeMagnitude(config);
        _layers = new Layer[config.Layers];
        for (int l = 0; l < config.Layers; l++)
            _layers[l] = new Layer(
                Vector(TensorNames.Weight(l, TensorNames.AttnNorm), config.Dim),
                LoadAttention(l, qkNorm: false),
                Vector(TensorNames.Weight(l, TensorNames.FfnNorm), config.Dim),
                LoadFfn(l));
    }

    protected override float RopeMagnitude => _ropeMagnitude;

    protected override void ForwardLayer(DecoderState w, int l, int n)
    {
        var layer = _layers[l];
        int dim = Config.Dim;
        NormRows(w, n, layer.AttnNorm);
        SelfAttention(w, l, n, layer.Attention, temperature: _temperature);
        AddResidual(w, n, dim);
        NormRows(w, n, layer.FfnNorm);
        SwiGluFfn(w, n, layer.Ffn);
        AddResidual(w, n, dim);
    }
}
