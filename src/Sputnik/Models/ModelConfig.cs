using Sputnik.Gguf;

namespace Sputnik.Models;

/// <summary>Hyper-parameters of a llama-family decoder, read from `{arch}.*` GGUF keys with llama.cpp's defaults.</summary>
internal sealed record ModelConfig
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

    public int QDim => Heads * HeadDim;
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Reads the config; tensor shapes fill in keys that small or old files leave out.</summary>
    public static ModelConfig FromGguf(GgufFile f, string arch, bool ropeNeox)
    {
        int Key(string name, int? fallback)
        {
            string key = $"{arch}.{name}";
            if (f.TryGetInt64(key, out long v))
            {
                if (v <= 0 || v > 1 << 24) throw new GgufFormatException($"metadata '{key}' = {v} is out of range");
                return (int)v;
            }
            return fallback ?? throw new GgufFormatException($"{f.Path}: metadata '{key}' is missing");
        }

        var embd = f.GetTensor("token_embd.weight");
        int dim = Key("embedding_length", (int)embd.Columns);
        int layers = Key("block_count", CountBlocks(f));
        int heads = Key("attention.head_count", null);
        int kvHeads = Key("attention.head_count_kv", heads);
        int headDim = Key(GgufKeys.KeyLength, dim / heads);
        // MoE files need no dense size (llama.cpp only falls back on it for the expert size), so 0 when absent there.
        int ffn = Key("feed_forward_length", (int?)f.FindTensor("blk.0.ffn_gate.weight")?.Rows ?? (f.FindTensor("blk.0.ffn_gate_exps.weight") != null ? 0 : null));
        int vocab = Key("vocab_size", (int)embd.Rows);
        int ctx = Key("context_length", 2048);
        int ropeDims = Key("rope.dimension_count", headDim);
        if (heads % kvHeads != 0)
            throw new GgufFormatException($"{f.Path}: head_count {heads} is not a multiple of head_count_kv {kvHeads}");
        if (ropeDims > headDim || ropeDims % 2 != 0)
            throw new GgufFormatException($"{f.Path}: rope.dimension_count {ropeDims} does not fit head size {headDim}");
        float ropeBase = PositiveFloat(f, $"{arch}.rope.freq_base", 10000f);
        float eps = Epsilon(f, $"{arch}.attention.layer_norm_rms_epsilon", 1e-5f);
        // Context extension as llama.cpp applies it whenever the file asks (Qwen3's YaRN ×4 in DeepSeek-R1-0528-Qwen3-8B).
        string? scaling = f.GetStringOrNull($"{arch}.rope.scaling.type");
        float scale = scaling is "linear" or "yarn" ? PositiveFloat(f, $"{arch}.rope.scaling.factor", 1f) : 1f;
        return new ModelConfig
        {
            RopeScalingFactor = scale, RopeYarn = scaling == "yarn" && scale != 1f,
            RopeOriginalContext = Key("rope.scaling.original_context_length", ctx),

            Architecture = arch, Dim = dim, Layers = layers, Heads = heads, KvHeads = kvHeads, HeadDim = headDim,
            FfnDim = ffn, VocabSize = vocab, ContextLength = ctx, RopeBase = ropeBase, RopeDims = ropeDims,
            RopeNeox = ropeNeox, RmsEps = eps,
        };
    }

    /// <summary>
    /// Writes the `{arch}.*` hyper-parameter keys <see cref="FromGguf"/> reads, under llama.cpp's names (key and value
    /// lengths only when the head size is not dim / heads, or for qwen3). Shared by `sputnik synth` and the training export.
    /// </summary>
    public void WriteKeys(GgufWriter w)
    {
        string a = Architecture;
        w.Set($"{a}.block_count", (uint)Layers);
        w.Set($"{a}.context_length", (uint)ContextLength);
        w.Set($"{a}.embedding_length", (uint)Dim);
        w.Set($"{a}.feed_forward_length", (uint)FfnDim);
        w.Set($"{a}.attention.head_count", (uint)Heads);
        w.Set($"{a}.attention.head_count_kv", (uint)KvHeads);
        // Qwen3 files always carry the head size (its config.json states head_dim, which llama.cpp's converter copies).
        if (HeadDim != Dim / Heads || QkNorm) w.Set($"{a}.{GgufKeys.KeyLength}", (uint)HeadDim).Set($"{a}.{GgufKeys.ValueLength}", (uint)HeadDim);
        w.Set($"{a}.rope.freq_base", RopeBase);
        w.Set($"{a}.rope.dimension_count", (uint)RopeDims);
        if (RopeScalingFactor != 1f)
        {
            w.Set($"{a}.rope.scaling.type", RopeYarn ? "yarn" : "linear");
            w.Set($"{a}.rope.scaling.factor", RopeScalingFactor);
            if (RopeYarn) w.Set($"{a}.rope.scaling.original_context_length", (uint)RopeOriginalContext);
        }
        w.Set($"{a}.attention.layer_norm_rms_epsilon", RmsEps);
        w.Set($"{a}.vocab_size", (uint)VocabSize);
        if (Moe != null)
        {
            w.Set($"{a}.{GgufKeys.ExpertCount}", (uint)Moe.ExpertCount);
            w.Set($"{a}.{GgufKeys.ExpertUsedCount}", (uint)Moe.ExpertsUsed);
            w.Set($"{a}.{GgufKeys.ExpertFeedForwardLength}", (uint)ExpertFfnDim);
        }
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
            string key = $"{a}.{name}";
            if (!f.TryGetInt64(key, out long v)) throw new GgufFormatException($"{f.Path}: metadata '{key}' is missing");
            if (v < 1 || v > 1 << 16) throw new GgufFormatException($"metadata '{key}' = {v} is out of range");
            return (int)v;
        }
        int experts = Count(GgufKeys.ExpertCount), used = Count(GgufKeys.ExpertUsedCount);
        if (used > experts) throw new GgufFormatException($"{f.Path}: {a}.{GgufKeys.ExpertUsedCount} {used} exceeds {a}.{GgufKeys.ExpertCount} {experts}");
        int expertFfn = f.TryGetInt64($"{a}.{GgufKeys.ExpertFeedForwardLength}", out long e) && e > 0 && e <= 1 << 24 ? (int)e : FfnDim / used;
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
        while (f.FindTensor($"blk.{n}.attn_norm.weight") != null) n++;
        return n;
    }
}
