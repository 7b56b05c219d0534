using Sputnik.Gguf;

namespace Sputnik.Models;

/// <summary>How the router turns its logits into per-expert probabilities (`{arch}.expert_gating_func`).</summary>
internal enum ExpertGating
{
    /// <summary>DeepSeek-V2 / V2-Lite: softmax over all routed experts (llama.cpp value 1, also the default when the key is absent).</summary>
    Softmax = 1,

    /// <summary>DeepSeek-V3 / R1: independent sigmoid per expert (llama.cpp value 2).</summary>
    Sigmoid = 2,

    /// <summary>gpt-oss: top-k on the raw logits, then a softmax over the k selected (llama.cpp's SOFTMAX_WEIGHT, value 3).</summary>
    SoftmaxWeight = 3,
}

/// <summary>
/// Hyper-parameters of a `deepseek2` GGUF (DeepSeek-V2, V2-Lite, V3, R1), read from the keys llama.cpp's converter
/// writes. Both the MLA layout (key_length = kv_lora_rank + rope, key_length_mla = nope + rope) and older files
/// without the *_mla keys are understood.
/// </summary>
internal sealed record DeepSeek2Config : IArchConfig
{
    public const string Arch = "deepseek2";

    public string Architecture => Arch;

    public required int Dim { get; init; }
    /// <summary>Trunk blocks: block_count less the MTP blocks stored after them.</summary>
    public required int Layers { get; init; }
    /// <summary>
    /// nextn_predict_layers: Multi-Token Prediction blocks stored after the trunk ("blk.{Layers}.", counted in
    /// block_count, as llama.cpp stores them). The main forward never runs them.
    /// </summary>
    public int NextnLayers { get; init; }
    public required int Heads { get; init; }
    public required int VocabSize { get; init; }
    public int ContextLength { get; init; } = 4096;
    public float RmsEps { get; init; } = 1e-6f;

    // ---- attention (MLA) ----
    /// <summary>0 = no query low-rank path (V2-Lite: plain attn_q).</summary>
    public int QLoraRank { get; init; }
    public required int KvLoraRank { get; init; }
    public required int QkNopeDim { get; init; }
    public required int QkRopeDim { get; init; }
    public required int VHeadDim { get; init; }
    public int QkHeadDim => QkNopeDim + QkRopeDim;

    // ---- feed-forward / MoE ----
    public required int FfnDim { get; init; }
    public int LeadingDenseLayers { get; init; }
    public int ExpertCount { get; init; }
    public int ExpertsUsed { get; init; }
    public int SharedExperts { get; init; }
    public int ExpertFfnDim { get; init; }
    /// <summary>routed_scaling_factor; 1 when the file leaves it out (llama.cpp then skips the scaling).</summary>
    public float ExpertWeightsScale { get; init; } = 1f;
    public bool ExpertWeightsNorm { get; init; }
    public ExpertGating Gating { get; init; } = ExpertGating.Softmax;
    public int ExpertGroups { get; init; } = 1;
    public int ExpertGroupsUsed { get; init; } = 1;

    // ---- RoPE / YaRN ----
    public float RopeBase { get; init; } = 10000f;
    /// <summary>rope.scaling.factor (1 = no scaling).</summary>
    public float RopeScalingFactor { get; init; } = 1f;
    public bool Yarn { get; init; }
    public int RopeOriginalContext { get; init; }
    public float YarnBetaFast { get; init; } = 32f;
    public float YarnBetaSlow { get; init; } = 1f;
    /// <summary>mscale_all_dim, i.e. the GGUF's rope.scaling.yarn_log_multiplier with the converter's 0.1 factor undone.</summary>
    public float YarnLogMultiplier { get; init; }

    /// <summary>The routing settings of the MoE layers.</summary>
    public RouterConfig Router => new(ExpertCount, ExpertsUsed, Gating, ExpertWeightsNorm, ExpertWeightsScale, ExpertGroups, ExpertGroupsUsed);

    public bool IsMoeLayer(int layer) => ExpertCount > 0 && layer >= LeadingDenseLayers;

    /// <summary>Bytes per token of the compressed (absorbed) cache at F16 as llama.cpp stores it: layers·(kv_lora_rank + rope)·2.</summary>
    public long LatentKvBytesPerToken => (long)Layers * (KvLoraRank + QkRopeDim) * 2;

    /// <summary>Bytes per token a decompressed MHA cache would need at F16: layers·heads·(qk_head + v_head)·2.</summary>
    public long NaiveKvBytesPerToken => (long)Layers * Heads * (QkHeadDim + VHeadDim) * 2;

    /// <summary>The softmax scale of Q·K, including YaRN's mscale² correction exactly as llama.cpp's deepseek2 graph applies it.</summary>
    public float KqScale => Models.Yarn.KqScale(QkHeadDim, Yarn ? RopeScalingFactor : 1f, YarnLogMultiplier);

    public static DeepSeek2Config FromGguf(GgufFile f)
    {
        const string a = Arch;
        int Key(string name, int? fallback)
        {
            string key = GgufKeys.Of(a, name);
            if (f.TryGetInt64(key, out long v))
            {
                if (v < 0 || v > 1 << 24) throw new GgufFormatException($"metadata '{key}' = {v} is out of range");
                return (int)v;
            }
            return fallback ?? throw new GgufFormatException($"{f.Path}: metadata '{key}' is missing");
        }
        // Sizes that must be at least 1: a zero here would leave nothing to compute and fail later without a name.
        int Size(string name, int? fallback)
        {
            int v = Key(name, fallback);
            return v >= 1 ? v : throw new GgufFormatException($"metadata '{a}.{name}' = {v} must be at least 1");
        }
        // Every float must be finite (a NaN epsilon or scale would silently turn every logit into NaN).
        float FloatKey(string name, float fallback) => ModelConfig.FloatKey(f, GgufKeys.Of(a, name), fallback, -1e6f, 1e6f);
        float PositiveFloat(string name, float fallback) => ModelConfig.PositiveFloat(f, GgufKeys.Of(a, name), fallback);

        var embd = f.GetTensor(TensorNames.Weight(TensorNames.TokenEmbd));
        int heads = Size(GgufKeys.HeadCount, null);
        int rope = Key(GgufKeys.RopeDimensionCount, null);
        int kvRank = Size(GgufKeys.KvLoraRank, null);
        // MLA files store the MQA view in key_length/value_length and the real head sizes in *_mla; older files
        // (before the k_b/v_b split) store the real head sizes directly.
        bool mla = f.TryGetInt64(GgufKeys.Of(a, GgufKeys.KeyLengthMla), out _);
        int headK = mla ? Key(GgufKeys.KeyLengthMla, null) : Key(GgufKeys.KeyLength, null);
        int headV = mla ? Size(GgufKeys.ValueLengthMla, null) : Size(GgufKeys.ValueLength, null);
        if (headK <= rope) throw new GgufFormatException($"{f.Path}: key length {headK} must exceed rope.dimension_count {rope}");
        if (rope % 2 != 0) throw new GgufFormatException($"{f.Path}: rope.dimension_count {rope} must be even");

        int gating = Key(GgufKeys.ExpertGatingFunc, 0);
        string? scaling = f.GetStringOrNull(GgufKeys.Of(a, GgufKeys.RopeScalingType));
        float factor = PositiveFloat(GgufKeys.RopeScalingFactor, 1f);
        if (scaling is null or "none") factor = 1f;
        float scale = ModelConfig.FloatKey(f, GgufKeys.Of(a, GgufKeys.ExpertWeightsScale), 0f, 0f, 1e6f);
        int blocks = Size(GgufKeys.BlockCount, null), nextn = Key(GgufKeys.NextnPredictLayers, 0);
        if (nextn >= blocks) throw new GgufFormatException($"{f.Path}: {a}.{GgufKeys.NextnPredictLayers} {nextn} leaves no trunk of {blocks} blocks");
        var c = new DeepSeek2Config
        {
            Dim = Size(GgufKeys.EmbeddingLength, (int)embd.Columns),
            Layers = blocks - nextn,
            NextnLayers = nextn,
            Heads = heads,
            VocabSize = Size(GgufKeys.VocabSize, (int)embd.Rows),
            ContextLength = Size(GgufKeys.ContextLength, 4096),
            RmsEps = ModelConfig.Epsilon(f, GgufKeys.Of(a, GgufKeys.LayerNormRmsEps), 1e-6f),
            QLoraRank = Key(GgufKeys.QLoraRank, 0),
            KvLoraRank = kvRank,
            QkNopeDim = headK - rope,
            QkRopeDim = rope,
            VHeadDim = headV,
            FfnDim = Key(GgufKeys.FeedForwardLength, 0),
            LeadingDenseLayers = Key(GgufKeys.LeadingDenseBlockCount, 0),
            ExpertCount = Key(GgufKeys.ExpertCount, 0),
            ExpertsUsed = Key(GgufKeys.ExpertUsedCount, 0),
            SharedExperts = Key(GgufKeys.ExpertSharedCount, 0),
            ExpertFfnDim = Key(GgufKeys.ExpertFeedForwardLength, 0),
            ExpertWeightsScale = scale == 0f ? 1f : scale,
            ExpertWeightsNorm = f.TryGetBool(GgufKeys.Of(a, GgufKeys.ExpertWeightsNorm), out bool norm) && norm,
            Gating = gating == 2 ? ExpertGating.Sigmoid : gating is 0 or 1 ? ExpertGating.Softmax
                : throw new UnsupportedModelException($"{f.Path}: expert_gating_func {gating} is not supported (1 softmax, 2 sigmoid)"),
            ExpertGroups = Math.Max(1, Key(GgufKeys.ExpertGroupCount, 1)),
            ExpertGroupsUsed = Math.Max(1, Key(GgufKeys.ExpertGroupUsedCount, 1)),
            RopeBase = PositiveFloat(GgufKeys.RopeFreqBase, 10000f),
            RopeScalingFactor = factor,
            Yarn = scaling == "yarn" && factor != 1f,
            RopeOriginalContext = Key(GgufKeys.RopeScalingOriginalContextLength, Key(GgufKeys.ContextLength, 4096)),
            YarnBetaFast = FloatKey(GgufKeys.RopeScalingYarnBetaFast, 32f),
            YarnBetaSlow = FloatKey(GgufKeys.RopeScalingYarnBetaSlow, 1f),
            // The converter writes 0.1·mscale_all_dim; llama.cpp divides the 0.1 back out on load.
            YarnLogMultiplier = FloatKey(GgufKeys.RopeScalingYarnLogMultiplier, 0f) / 0.1f,
        };
        c.Validate(f.Path);
        return c;
    }

    /// <summary>
    /// Writes the `deepseek2.*` keys <see cref="FromGguf"/> reads, as llama.cpp's converter writes them (MLA layout:
    /// key/value_length are the MQA view of the latent, the real head sizes go to *_mla). Shared by `synth`, `convert`
    /// and the training export.
    /// </summary>
    public void WriteKeys(GgufWriter w)
    {
        static string K(string key) => GgufKeys.Of(Arch, key);
        w.Set(K(GgufKeys.VocabSize), (uint)VocabSize).Set(K(GgufKeys.ContextLength), (uint)ContextLength);
        w.Set(K(GgufKeys.EmbeddingLength), (uint)Dim).Set(K(GgufKeys.BlockCount), (uint)(Layers + NextnLayers)).Set(K(GgufKeys.FeedForwardLength), (uint)FfnDim);
        w.Set(K(GgufKeys.HeadCount), (uint)Heads).Set(K(GgufKeys.HeadCountKv), 1u);
        w.Set(K(GgufKeys.RopeFreqBase), RopeBase).Set(K(GgufKeys.LayerNormRmsEps), RmsEps);
        w.Set(K(GgufKeys.LeadingDenseBlockCount), (uint)LeadingDenseLayers);
        if (NextnLayers > 0) w.Set(K(GgufKeys.NextnPredictLayers), (uint)NextnLayers);
        // Always written (0 = plain attn_q): llama.cpp requires the key unless the file has 26 or 27 layers, so a
        // V2-Lite-style model of any other depth would not load there without it.
        w.Set(K(GgufKeys.QLoraRank), (uint)QLoraRank);
        w.Set(K(GgufKeys.KvLoraRank), (uint)KvLoraRank);
        w.Set(K(GgufKeys.KeyLength), (uint)(KvLoraRank + QkRopeDim)).Set(K(GgufKeys.ValueLength), (uint)KvLoraRank);
        w.Set(K(GgufKeys.KeyLengthMla), (uint)QkHeadDim).Set(K(GgufKeys.ValueLengthMla), (uint)VHeadDim);
        w.Set(K(GgufKeys.ExpertFeedForwardLength), (uint)ExpertFfnDim).Set(K(GgufKeys.ExpertCount), (uint)ExpertCount);
        w.Set(K(GgufKeys.ExpertUsedCount), (uint)ExpertsUsed).Set(K(GgufKeys.ExpertSharedCount), (uint)SharedExperts);
        w.Set(K(GgufKeys.ExpertWeightsScale), ExpertWeightsScale);
        if (ExpertWeightsNorm) w.Set(K(GgufKeys.ExpertWeightsNorm), true);
        w.Set(K(GgufKeys.ExpertGatingFunc), (uint)Gating);
        if (ExpertGroups > 1) w.Set(K(GgufKeys.ExpertGroupCount), (uint)ExpertGroups).Set(K(GgufKeys.ExpertGroupUsedCount), (uint)ExpertGroupsUsed);
        w.Set(K(GgufKeys.RopeDimensionCount), (uint)QkRopeDim);
        if (Yarn)
        {
            w.Set(K(GgufKeys.RopeScalingType), "yarn").Set(K(GgufKeys.RopeScalingFactor), RopeScalingFactor);
            w.Set(K(GgufKeys.RopeScalingOriginalContextLength), (uint)RopeOriginalContext);
            // The converter writes 0.1·mscale_all_dim (FromGguf divides it back out, as llama.cpp does).
            w.Set(K(GgufKeys.RopeScalingYarnLogMultiplier), 0.1f * YarnLogMultiplier);
            if (YarnBetaFast != 32f) w.Set(K(GgufKeys.RopeScalingYarnBetaFast), YarnBetaFast);
            if (YarnBetaSlow != 1f) w.Set(K(GgufKeys.RopeScalingYarnBetaSlow), YarnBetaSlow);
        }
    }

    private void Validate(string path)
    {
        if (ExpertCount > 0)
        {
            if (ExpertsUsed < 1 || ExpertsUsed > ExpertCount)
                throw new GgufFormatException($"{path}: expert_used_count {ExpertsUsed} must be in 1..{ExpertCount}");
            if (ExpertCount % ExpertGroups != 0 || ExpertGroupsUsed > ExpertGroups)
                throw new GgufFormatException($"{path}: {ExpertCount} experts do not split into {ExpertGroups} groups of which {ExpertGroupsUsed} are used");
            if (ExpertFfnDim < 1) throw new GgufFormatException($"{path}: expert_feed_forward_length is missing");
        }
        if (LeadingDenseLayers > 0 && FfnDim < 1) throw new GgufFormatException($"{path}: feed_forward_length is missing for the dense layers");
    }

    /// <summary>The generic view other code (context length, vocabulary, samplers) reads.</summary>
    public ModelConfig ToModelConfig() => new()
    {
        Architecture = Arch, Dim = Dim, Layers = Layers, Heads = Heads, KvHeads = 1, HeadDim = QkHeadDim,
        FfnDim = FfnDim, VocabSize = VocabSize, ContextLength = ContextLength, RopeBase = RopeBase,
        RopeDims = QkRopeDim, RopeNeox = false, RmsEps = RmsEps,
    };
}
