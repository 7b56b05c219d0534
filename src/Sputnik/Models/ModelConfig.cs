using Sputnik.Gguf;

namespace Sputnik.Models;

/// <summary>Hyper-parameters of a llama-family decoder, read from `{arch}.*` GGUF keys with llama.cpp's defaults.</summary>
internal sealed record ModelConfig : IArchConfig
{
    public required string Architecture { get; init; }
    public required int Dim { get; init; }
    public required int Layers { get; init; }
    public required int Heads { get; init; }
    public required int KvHeads { get; init; }
    public required int HeadDim { get; init; }
    public required int FfnDim { get; init; }
    public required int VocabSize { get; init; }
    public required int ContextLength { get; init; }
    public float RopeBase { get; init; } = 10000f;
    public required int RopeDims { get; init; }
    public bool RopeNeox { get; init; }
    public float RmsEps { get; init; } = 1e-5f;

    /// <summary>rope.scaling.factor of a "linear" or "yarn" file (1 = no scaling).</summary>
    public float RopeScalingFactor { get; init; } = 1f;

    /// <summary>YaRN (rope.scaling.type "yarn"): blend interpolated and original angles per pair, scale cos/sin by 1 + 0.1·ln(factor).</summary>
    public bool RopeYarn { get; init; }

    /// <summary>rope.scaling.original_context_length (the context the model was trained at before YaRN), default context_length.</summary>
    public int RopeOriginalContext { get; init; }

    // llama.cpp's defaults; it reads no yarn_beta_* / yarn_attn_factor keys for these architectures, so neither do we.
    public float YarnBetaFast { get; init; } = 32f;
    public float YarnBetaSlow { get; init; } = 1f;

    /// <summary>Per-head RMSNorm of Q and K before RoPE (qwen3: attn_q_norm / attn_k_norm, head-size weights).</summary>
    public bool QkNorm { get; init; }

    /// <summary>Routed experts in every layer instead of a dense FFN (qwen3moe); null for a dense model.</summary>
    public RouterConfig? Moe { get; init; }

    /// <summary>Hidden size of one expert (expert_feed_forward_length); 0 for a dense model.</summary>
    public int ExpertFfnDim { get; init; }

    /// <summary>Hyper-parameters only this architecture has (declared in its file); written by <see cref="WriteKeys"/>.</summary>
    public IArchKeys? ArchParams { get; init; }

    public int QDim => Heads * HeadDim;
    public int KvDim => KvHeads * HeadDim;

    /// <summary>
    /// A config from the sizes a model card lists (for `synth` presets and training shapes): head size dim / heads
    /// unless <paramref name="headDim"/> is given, RoPE over the whole head, no scaling.
    /// </summary>
    public static ModelConfig Create(string arch, int dim, int layers, int ffn, int heads, int kvHeads, int vocab, int context,
        float ropeBase, float rmsEps, bool ropeNeox, int headDim = 0)
    {
        int head = headDim > 0 ? headDim : dim / heads;
        return new ModelConfig
        {
            Architecture = arch, Dim = dim, Layers = layers, Heads = heads, KvHeads = kvHeads, HeadDim = head, FfnDim = ffn,
            VocabSize = vocab, ContextLength = context, RopeBase = ropeBase, RopeDims = head, RopeNeox = ropeNeox, RmsEps = rmsEps,
            RopeOriginalContext = context,
        };
    }

    /// <summary>Reads the config; tensor shapes fill in keys that small or old files leave out.</summary>
    public static ModelConfig FromGguf(GgufFile f, string arch, bool ropeNeox)
    {
        int Key(string name, int? fallback)
        {
            string key = GgufKeys.Of(arch, name);
            if (f.TryGetInt64(key, out long v))
            {
                if (v <= 0 || v > 1 << 24) throw new GgufFormatException($"metadata '{key}' = {v} is out of range");
                return (int)v;
            }
            return fallback ?? throw new GgufFormatException($"{f.Path}: metadata '{key}' is missing");
        }

        var embd = f.GetTensor(TensorNames.Weight(TensorNames.TokenEmbd));
        int dim = Key(GgufKeys.EmbeddingLength, (int)embd.Columns);
        int layers = Key(GgufKeys.BlockCount, CountBlocks(f));
        int heads = Key(GgufKeys.HeadCount, null);
        int kvHeads = Key(GgufKeys.HeadCountKv, heads);
        int headDim = Key(GgufKeys.KeyLength, dim / heads);
        // MoE files need no dense size (llama.cpp only falls back on it for the expert size), so 0 when absent there.
        int ffn = Key(GgufKeys.FeedForwardLength, (int?)f.FindTensor(TensorNames.Weight(0, TensorNames.FfnGate))?.Rows ?? (f.FindTensor(TensorNames.Weight(0, TensorNames.FfnGateExps)) != null ? 0 : null));
        int vocab = Key(GgufKeys.VocabSize, (int)embd.Rows);
        int ctx = Key(GgufKeys.ContextLength, 2048);
        int ropeDims = Key(GgufKeys.RopeDimensionCount, headDim);
        if (heads % kvHeads != 0)
            throw new GgufFormatException($"{f.Path}: head_count {heads} is not a multiple of head_count_kv {kvHeads}");
        if (ropeDims > headDim || ropeDims % 2 != 0)
            throw new GgufFormatException($"{f.Path}: rope.dimension_count {ropeDims} does not fit head size {headDim}");
        float ropeBase = PositiveFloat(f, GgufKeys.Of(arch, GgufKeys.RopeFreqBase), 10000f);
        float eps = Epsilon(f, GgufKeys.Of(arch, GgufKeys.LayerNormRmsEps), 1e-5f);
        // Context extension as llama.cpp applies it whenever the file asks (Qwen3's YaRN ×4 in DeepSeek-R1-0528-Qwen3-8B).
        string? scaling = f.GetStringOrNull(GgufKeys.Of(arch, GgufKeys.RopeScalingType));
        float scale = scaling is "linear" or "yarn" ? PositiveFloat(f, GgufKeys.Of(arch, GgufKeys.RopeScalingFactor), 1f) : 1f;
        return new ModelConfig
        {
            RopeScalingFactor = scale, RopeYarn = scaling == "yarn" && scale != 1f,
            RopeOriginalContext = Key(GgufKeys.RopeScalingOriginalContextLength, ctx),

            Architecture = arch, Dim = dim, Layers = layers, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
            FfnDim = ffn, VocabSize = vocab, ContextLength = ctx, RopeBase = ropeBase, RopeDims = ropeDims,
            RopeNeox = ropeNeox, RmsEps = eps,
        };
    }

    /// <summary>
    /// Writes the `{arch}.*` hyper-parameter keys <see cref="FromGguf"/> reads, under llama.cpp's names (key and value
    /// lengths only when the head size is not dim / heads, or for qwen3). Shared by `synth`, `convert` and the training export.
    /// </summary>
    public void WriteKeys(GgufWriter w)
    {
        string K(string key) => GgufKeys.Of(Architecture, key);
        w.Set(K(GgufKeys.BlockCount), (uint)Layers);
        w.Set(K(GgufKeys.ContextLength), (uint)ContextLength);
        w.Set(K(GgufKeys.EmbeddingLength), (uint)Dim);
        w.Set(K(GgufKeys.FeedForwardLength), (uint)FfnDim);
        w.Set(K(GgufKeys.HeadCount), (uint)Heads);
        w.Set(K(GgufKeys.HeadCountKv), (uint)KvHeads);
        // Qwen3 files always carry the head size (its config.json states head_dim, which llama.cpp's converter copies).
        if (HeadDim != Dim / Heads || QkNorm) w.Set(K(GgufKeys.KeyLength), (uint)HeadDim).Set(K(GgufKeys.ValueLength), (uint)HeadDim);
        w.Set(K(GgufKeys.RopeFreqBase), RopeBase);
        w.Set(K(GgufKeys.RopeDimensionCount), (uint)RopeDims);
        // YaRN's original context, or LongRoPE's (phi3: no scaling type, the factors are tensors).
        if (RopeYarn || RopeOriginalContext != ContextLength) w.Set(K(GgufKeys.RopeScalingOriginalContextLength), (uint)RopeOriginalContext);
        if (RopeScalingFactor != 1f)
        {
            w.Set(K(GgufKeys.RopeScalingType), RopeYarn ? "yarn" : "linear");
            w.Set(K(GgufKeys.RopeScalingFactor), RopeScalingFactor);
            // Betas other than ggml's defaults (mistral3 reads them; no other family here writes them).
            if (RopeYarn && YarnBetaFast != 32f) w.Set(K(GgufKeys.RopeScalingYarnBetaFast), YarnBetaFast);
            if (RopeYarn && YarnBetaSlow != 1f) w.Set(K(GgufKeys.RopeScalingYarnBetaSlow), YarnBetaSlow);
        }
        w.Set(K(GgufKeys.LayerNormRmsEps), RmsEps);
        w.Set(K(GgufKeys.VocabSize), (uint)VocabSize);
        if (Moe != null)
        {
            w.Set(K(GgufKeys.ExpertCount), (uint)Moe.ExpertCount);
            w.Set(K(GgufKeys.ExpertUsedCount), (uint)Moe.ExpertsUsed);
            w.Set(K(GgufKeys.ExpertFeedForwardLength), (uint)ExpertFfnDim);
        }
        ArchParams?.WriteKeys(w, Architecture);
    }

    /// <summary>
    /// Reads the routed-expert keys of a llama-family MoE file (expert_count, expert_used_count,
    /// expert_feed_forward_length; without the last, llama.cpp takes feed_forward_length / expert_used_count).
    /// </summary>
    public ModelConfig WithExperts(GgufFile f, RouterConfig routing)
    {
        string a = Architecture;
        int Count(string name)
        {
            string key = GgufKeys.Of(a, name);
            if (!f.TryGetInt64(key, out long v)) throw new GgufFormatException($"{f.Path}: metadata '{key}' is missing");
            if (v < 1 || v > 1 << 16) throw new GgufFormatException($"metadata '{key}' = {v} is out of range");
            return (int)v;
        }
        int experts = Count(GgufKeys.ExpertCount), used = Count(GgufKeys.ExpertUsedCount);
        if (used > experts) throw new GgufFormatException($"{f.Path}: {a}.{GgufKeys.ExpertUsedCount} {used} exceeds {a}.{GgufKeys.ExpertCount} {experts}");
        int expertFfn = f.TryGetInt64(GgufKeys.Of(a, GgufKeys.ExpertFeedForwardLength), out long e) && e > 0 && e <= 1 << 24 ? (int)e : FfnDim / used;
        if (expertFfn < 1) throw new GgufFormatException($"{f.Path}: metadata '{a}.{GgufKeys.ExpertFeedForwardLength}' is missing");
        return this with { Moe = routing with { ExpertCount = experts, ExpertsUsed = used }, ExpertFfnDim = expertFfn };
    }

    /// <summary>
    /// A float hyper-parameter that must be finite and in [min, max] (above min when <paramref name="aboveMin"/>);
    /// the fallback when the key is absent. A NaN or infinite epsilon, RoPE base or scale would otherwise turn every
    /// logit into NaN without a word, so the file is refused naming the key.
    /// </summary>
    internal static float FloatKey(GgufFile f, string key, float fallback, float min, float max, bool aboveMin = false)
    {
        if (!f.TryGetFloat(key, out float v)) return fallback;
        if (!float.IsFinite(v))
            throw new GgufFormatException($"metadata '{key}' = {v} is not a finite number");
        if (v < min || v > max || aboveMin && v == min)
        {
            string range = max == float.MaxValue ? $"above {min}" : $"{(aboveMin ? "above" : "from")} {min} to {max}";
            throw new GgufFormatException($"metadata '{key}' = {v} is out of range (must be {range})");
        }
        return v;
    }

    /// <summary>A positive finite float such as rope.freq_base.</summary>
    internal static float PositiveFloat(GgufFile f, string key, float fallback) => FloatKey(f, key, fallback, 0f, float.MaxValue, aboveMin: true);

    /// <summary>A normalization epsilon: positive and below 1.</summary>
    internal static float Epsilon(GgufFile f, string key, float fallback) => FloatKey(f, key, fallback, 0f, 1f, aboveMin: true);

    private static int CountBlocks(GgufFile f)
    {
        int n = 0;
        while (f.FindTensor(TensorNames.Weight(n, TensorNames.AttnNorm)) != null) n++;
        return n;
    }
}
