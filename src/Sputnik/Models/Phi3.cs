using System.Text.Json;
using Sputnik.Conversion;
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

    /// <summary>The hyper-parameters phi3 adds to <see cref="ModelConfig"/> (hung on its <see cref="ModelConfig.ArchParams"/>).</summary>
    /// <param name="AttnFactor">rope.scaling.attn_factor, LongRoPE's cos/sin scale; null when the file states none (1).</param>
    /// <param name="SlidingWindow">attention.sliding_window as llama.cpp's converter writes it (0 when absent); llama.cpp ignores it for phi3, and so does the forward.</param>
    public sealed record Params(float? AttnFactor, int SlidingWindow) : IArchKeys
    {
        /// <summary>Writes the keys <see cref="Read"/> reads beyond llama's (the original context is <see cref="ModelConfig.WriteKeys"/>'s).</summary>
        public void WriteKeys(GgufWriter w, string arch)
        {
            if (AttnFactor is { } f) w.Set(GgufKeys.Of(arch, GgufKeys.RopeScalingAttnFactor), f);
            w.Set(GgufKeys.Of(arch, GgufKeys.AttentionSlidingWindow), (uint)SlidingWindow);
        }
    }

    /// <summary>The config with phi3's own keys: the attention factor (a positive finite number) and the sliding window.</summary>
    public static ModelConfig Read(GgufFile file)
    {
        var c = ModelConfig.FromGguf(file, Name, Info.RopeNeox);
        string factorKey = GgufKeys.Of(Name, GgufKeys.RopeScalingAttnFactor);
        float? factor = file.TryGetFloat(factorKey, out _) ? ModelConfig.FloatKey(file, factorKey, 1f, 0f, 1e3f, aboveMin: true) : null;
        int window = file.TryGetInt64(GgufKeys.Of(Name, GgufKeys.AttentionSlidingWindow), out long sw) && sw > 0 && sw <= int.MaxValue ? (int)sw : 0;
        return c with { ArchParams = new Params(factor, window) };
    }

    public static LanguageModel Load(GgufFile file, WorkerPool pool) => new Phi3Decoder(file, Read(file), pool);

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

    /// <summary>True when a config extends its context with LongRoPE (an original context below the context).</summary>
    public static bool HasLongRope(ModelConfig c) => c.RopeOriginalContext < c.ContextLength;

    /// <summary>
    /// A preset shape: NeoX RoPE over <paramref name="partialRotary"/> of each head, LongRoPE over a 4,096-token
    /// original context with its attention factor.
    /// </summary>
    private static ModelConfig Shape(int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context, float partialRotary)
    {
        const int original = 4096;
        return ModelConfig.Create(Name, dim, layers, ffn, heads, kvHeads, vocab, context, ropeBase: 10000f, rmsEps: 1e-5f, ropeNeox: true) with
        {
            RopeDims = RopeDims(partialRotary, dim, heads), RopeOriginalContext = original,
            ArchParams = new Params(LongRopeAttnFactor(context, original), SlidingWindow: 0),
        };
    }

    /// <summary>
    /// The tensors of a phi3 file: llama's layer with attn_qkv (Q, K, V rows) and ffn_up (gate then up rows) fused as
    /// llama.cpp's converter writes them, and with LongRoPE the long and short factor vectors.
    /// </summary>
    private static IEnumerable<TensorDecl> DeclareTensors(SynthPreset p)
    {
        var c = p.Config;
        long dim = c.Dim, q = c.QDim, kv = c.KvDim, vocab = c.VocabSize;
        if (HasLongRope(c))
        {
            yield return new(TensorNames.Weight(TensorNames.RopeFactorsLong), [c.RopeDims / 2], TensorFill.Computed, v => SynthLongRopeFactors(c, isLong: true, v));
            yield return new(TensorNames.Weight(TensorNames.RopeFactorsShort), [c.RopeDims / 2], TensorFill.Computed, v => SynthLongRopeFactors(c, isLong: false, v));
        }
        yield return new(TensorNames.Weight(TensorNames.TokenEmbd), [dim, vocab], TensorFill.Matrix);
        for (int l = 0; l < c.Layers; l++)
        {
            yield return new(TensorNames.Weight(l, TensorNames.AttnNorm), [dim], TensorFill.Ones);
            yield return new(TensorNames.Weight(l, TensorNames.AttnQkv), [dim, q + 2 * kv], TensorFill.Matrix);
            yield return new(TensorNames.Weight(l, TensorNames.AttnOutput), [q, dim], TensorFill.Matrix);
            yield return new(TensorNames.Weight(l, TensorNames.FfnNorm), [dim], TensorFill.Ones);
            yield return new(TensorNames.Weight(l, TensorNames.FfnUp), [dim, 2L * c.FfnDim], TensorFill.Matrix);
            yield return new(TensorNames.Weight(l, TensorNames.FfnDown), [c.FfnDim, dim], TensorFill.Matrix);
        }
        yield return new(TensorNames.Weight(TensorNames.OutputNorm), [dim], TensorFill.Ones);
        if (!p.TiedEmbeddings) yield return new(TensorNames.Weight(TensorNames.Output), [dim, vocab], TensorFill.Matrix);
    }

    /// <summary>
    /// LongRoPE-shaped factors for synthetic files (not a real model's): short ones near 1, long ones rising from 1 at
    /// the fastest pair to the context ratio at the slowest, so the two give visibly different angles.
    /// </summary>
    private static void SynthLongRopeFactors(ModelConfig c, bool isLong, Span<float> dst)
    {
        double ratio = (double)c.ContextLength / c.RopeOriginalContext;
        for (int i = 0; i < dst.Length; i++)
        {
            double t = dst.Length > 1 ? (double)i / (dst.Length - 1) : 0;
            dst[i] = (float)(isLong ? 1 + (ratio - 1) * t * t * t : 1 + 0.5 * t * t);
        }
    }

    // ---- convert: Phi3ForCausalLM (Phi-3/3.5-mini, Phi-4-mini, Phi-4-mini-reasoning) as llama.cpp's Phi3MiniModel converts it ----

    /// <summary>
    /// A Phi3ForCausalLM config.json as <see cref="ModelConfig"/> with <see cref="Params"/>: RoPE covers
    /// int(partial_rotary_factor · hidden) / heads dims; rope_scaling "longrope" (or the older "su") gives
    /// rope.scaling.attn_factor √(1 + ln s / ln L₀), "yarn" 1 + 0.1·ln s, where s = max_position_embeddings /
    /// original_max_position_embeddings (the factors themselves are tensors, <see cref="PlanHfTensors"/>).
    /// </summary>
    private static ModelConfig ConfigFromHf(HfCheckpoint ck)
    {
        int heads = ck.Int("num_attention_heads"), dim = ck.Int("hidden_size"), context = ck.Int("max_position_embeddings", 4096);
        var scaling = HfScaling(ck);
        float Param(string key, float fallback) =>
            scaling is { } rs && rs.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : ck.Float(key, fallback);
        int original = (int)Param("original_max_position_embeddings", context);
        float partial = Param("partial_rotary_factor", 1f);
        if (!(partial > 0 && partial <= 1)) throw new InvalidDataException($"config.json: partial_rotary_factor {partial} must be in (0, 1]");
        int ropeDims = RopeDims(partial, dim, heads);
        if (dim % heads != 0 || ropeDims < 2 || ropeDims % 2 != 0)
            throw new InvalidDataException($"config.json: {heads} heads over hidden_size {dim} with partial_rotary_factor {partial} give no even RoPE width");
        if (original < 1 || original > context)
            throw new InvalidDataException($"config.json: original_max_position_embeddings {original} must be in 1..max_position_embeddings {context}");

        float? attnFactor = null;
        if (scaling is { } longRope && longRope.TryGetProperty("long_factor", out _))
        {
            string type = HfCheckpoint.RopeScalingType(longRope).ToLowerInvariant();
            double scale = (double)context / original;
            attnFactor = type switch
            {
                "longrope" or "su" => LongRopeAttnFactor(context, original),
                "yarn" => scale > 1 ? (float)(0.1 * Math.Log(scale) + 1) : 1f,
                "" => throw new InvalidDataException("config.json: rope_scaling has long_factor but no type"),
                _ => throw new UnsupportedModelException($"config.json: rope_scaling type '{type}' is not supported for phi3 (longrope, su, yarn)"),
            };
        }
        // llama.cpp's converter writes 0 for a missing sliding_window; its loader ignores the key for phi3 either way.
        int window = ck.TryGet("sliding_window", out var sw) && sw.ValueKind == JsonValueKind.Number && sw.TryGetInt32(out int n) && n > 0 ? n : 0;
        return ModelConfig.Create(Name, dim, ck.Int("num_hidden_layers"), ck.Int("intermediate_size"), heads, ck.Int("num_key_value_heads", heads),
            ck.Int("vocab_size"), context, ck.RopeTheta(), ck.Float("rms_norm_eps", 1e-5f), ropeNeox: Info.RopeNeox) with
        {
            RopeDims = ropeDims, RopeOriginalContext = original, ArchParams = new Params(attnFactor, window),
        };
    }

    /// <summary>rope_scaling when it is an object (phi3 configs have no rope_parameters).</summary>
    private static JsonElement? HfScaling(HfCheckpoint ck) =>
        ck.TryGet("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object ? rs : null;

    /// <summary>
    /// The phi3 tensors, as llama.cpp's Phi3MiniModel converts them: qkv_proj and gate_up_proj stay fused (attn_qkv,
    /// ffn_up), and rope_scaling's long/short factor lists become rope_factors_long/short.
    /// </summary>
    private static void PlanHfTensors(HfTensorPlan plan, ModelConfig c)
    {
        plan.AddEmbeddingsAndHead();
        if (HfScaling(plan.Checkpoint) is { } scaling && scaling.TryGetProperty("long_factor", out var longJson))
        {
            plan.AddValues(TensorNames.Weight(TensorNames.RopeFactorsLong), HfFactors(longJson, "long_factor", c.RopeDims / 2));
            plan.AddValues(TensorNames.Weight(TensorNames.RopeFactorsShort),
                HfFactors(scaling.TryGetProperty("short_factor", out var s) ? s : default, "short_factor", c.RopeDims / 2));
        }
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            plan.Add(TensorNames.Weight(l, TensorNames.AttnNorm), p + "input_layernorm.weight");
            plan.Add(TensorNames.Weight(l, TensorNames.AttnQkv), p + "self_attn.qkv_proj.weight");
            plan.Add(TensorNames.Weight(l, TensorNames.AttnOutput), p + "self_attn.o_proj.weight");
            plan.Add(TensorNames.Weight(l, TensorNames.FfnNorm), p + "post_attention_layernorm.weight");
            plan.Add(TensorNames.Weight(l, TensorNames.FfnUp), p + "mlp.gate_up_proj.weight");
            plan.Add(TensorNames.Weight(l, TensorNames.FfnDown), p + "mlp.down_proj.weight");
        }
    }

    /// <summary>A rope_scaling factor list: exactly <paramref name="pairs"/> positive numbers.</summary>
    private static float[] HfFactors(JsonElement list, string key, int pairs)
    {
        if (list.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"config.json: rope_scaling.{key} is missing or not a list");
        if (list.GetArrayLength() != pairs)
            throw new InvalidDataException($"config.json: rope_scaling.{key} has {list.GetArrayLength()} values; RoPE over these heads needs {pairs}");
        var f = new float[pairs];
        int i = 0;
        foreach (var e in list.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !(e.GetDouble() > 0) || !double.IsFinite(e.GetDouble()))
                throw new InvalidDataException($"config.json: rope_scaling.{key}[{i}] is not a positive number");
            f[i++] = e.GetSingle();
        }
        return f;
    }

    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        RopeNeox = true,
        HfArchitectures = ["Phi3ForCausalLM"],
        Convert = HfConversion.Of<ModelConfig>(ConfigFromHf, PlanHfTensors),
        // Phi-4-mini's o200k family (gpt-4o pre-tokenizer), no BOS; the vocabulary needs Phi-3's specials, since
        // llama.cpp looks up <s></s><unk> in any file named phi3.
        Synth = new SynthStyle("gpt-4o", AddBos: false, ReasoningChatTemplate)
        {
            CreateVocab = size => Tools.SyntheticVocab.Create(size, "gpt-4o", phi3: true),
        },
        Tensors = DeclareTensors,
        SynthPresets =
        [
            // Phi-4-mini's ratios (partial RoPE 96 of 128 → 48 of 64 here, LongRoPE 131,072 over 4,096) in a 4-layer
            // model for the llama.cpp check.
            new("phi3-tiny", Shape(256, 4, 512, 4, 2, 1000, 131072, 0.75f), TiedEmbeddings: true),
            new("phi-4-mini-reasoning", Shape(3072, 32, 8192, 24, 8, 200064, 131072, 0.75f), TiedEmbeddings: true),
            new("phi-3.5-mini", Shape(3072, 32, 8192, 32, 32, 32064, 131072, 1f), TiedEmbeddings: false) { ChatTemplate = Phi35ChatTemplate },
        ],
    };
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
        _longFactors = OptionalVector(TensorNames.Weight(TensorNames.RopeFactorsLong), pairs);
        _shortFactors = OptionalVector(TensorNames.Weight(TensorNames.RopeFactorsShort), pairs);
        foreach (var factors in new[] { _longFactors, _shortFactors })
            if (factors != null && factors.Any(x => !(x > 0) || !float.IsFinite(x)))
                throw new GgufFormatException($"{file.Path}: a LongRoPE factor is not a positive finite number");
        _attnFactor = (config.ArchParams as Phi3.Params)?.AttnFactor ?? 1f;
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
