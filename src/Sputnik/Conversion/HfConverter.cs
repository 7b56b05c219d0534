using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Sputnik.Tokenizers;

namespace Sputnik.Conversion;

/// <summary>Output weight format of <see cref="HfConverter"/> (norms, biases and routers stay F32 as in llama.cpp).</summary>
internal enum ConvertType { F32, F16, BF16, Q8_0, Q4_K_M }

/// <summary>
/// Converts a Hugging Face checkpoint folder (config.json, safetensors, tokenizer.json, tokenizer_config.json,
/// generation_config.json) into GGUF with llama.cpp's tensor names, layouts and metadata keys. Tensors are
/// streamed one row at a time from the memory-mapped safetensors into the writer, so the model is never held in
/// memory (only deepseek2's kv_b, a few MB per layer, is gathered whole to transpose its key half).
/// </summary>
internal sealed partial class HfConverter : IDisposable
{
    /// <summary>Hugging Face `architectures[0]` → GGUF architecture, as each architecture's file declares it (<see cref="ArchitectureInfo.HfArchitectures"/>).</summary>
    public static readonly IReadOnlyDictionary<string, string> Architectures =
        ModelLoader.All.SelectMany(a => a.HfArchitectures.Select(hf => (hf, a.Name))).ToDictionary(x => x.hf, x => x.Name);

    /// <summary>One GGUF tensor: ggml dims (columns first) and a producer of its rows as float.</summary>
    private sealed record Planned(string Name, long[] Dims, GgmlType Type, Action<int, float[]> ReadRow)
    {
        public int Cols => (int)Dims[0];
        public int RowCount => (int)(Dims.Aggregate(1L, (a, b) => a * b) / Dims[0]);
    }

    private readonly string _dir;
    private readonly JsonElement _cfg;
    private readonly SafeTensorsSet _st;
    private readonly ConvertType _type;
    private readonly List<Planned> _plan = [];
    // Gemma 3's embedding has rows beyond its tokenizer, which llama.cpp's converter drops; null keeps config.json's vocab_size.
    private int? _vocab;

    public string Arch { get; }
    public GgufWriter Writer { get; } = new();

    private HfConverter(string dir, ConvertType type)
    {
        _dir = dir;
        _type = type;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: model folder not found");
        string cfgPath = Path.Combine(dir, "config.json");
        if (!File.Exists(cfgPath)) throw new FileNotFoundException($"{dir}: config.json is missing (not a Hugging Face model folder?)", cfgPath);
        using (var doc = JsonDocument.Parse(File.ReadAllText(cfgPath))) _cfg = WithTextConfig(doc.RootElement);
        string hfArch = _cfg.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0
            ? a[0].GetString() ?? "" : "";
        Arch = Architectures.GetValueOrDefault(hfArch)
            ?? throw new UnsupportedModelException($"{cfgPath}: architecture '{hfArch}' is not supported (supported: {string.Join(", ", Architectures.Keys)})");
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
            throw new FileNotFoundException($"{dir}: tokenizer.json is missing (only Hugging Face fast tokenizers can be converted)", Path.Combine(dir, "tokenizer.json"));
        _st = new SafeTensorsSet(dir);
    }

    /// <summary>Converts <paramref name="hfDir"/> to <paramref name="outPath"/>; <paramref name="progress"/> gets (bytes written, total bytes, tensor).</summary>
    public static void Convert(string hfDir, string outPath, ConvertType type, Action<long, long, string>? progress = null)
    {
        using var c = new HfConverter(hfDir, type);
        c.Build(progress);
        c.Writer.Write(outPath);
    }

    /// <summary>
    /// A multimodal checkpoint (Mistral3ForConditionalGeneration) keeps the language model's keys in text_config;
    /// like llama.cpp's converter, they are lifted to the root, over the root's own.
    /// </summary>
    private static JsonElement WithTextConfig(JsonElement root)
    {
        if (!root.TryGetProperty("text_config", out var text) || text.ValueKind != JsonValueKind.Object) return root.Clone();
        var merged = JsonNode.Parse(root.GetRawText())!.AsObject();
        foreach (var p in text.EnumerateObject()) merged[p.Name] = JsonNode.Parse(p.Value.GetRawText());
        using var doc = JsonDocument.Parse(merged.ToJsonString());
        return doc.RootElement.Clone();
    }

    private int Int(string key, int? fallback = null) =>
        _cfg.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32()
        : fallback ?? throw new InvalidDataException($"config.json: '{key}' is missing");

    private float Float(string key, float fallback) =>
        _cfg.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : fallback;

    private bool Bool(string key, bool fallback = false) =>
        _cfg.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.ValueKind == JsonValueKind.True : fallback;

    private void Build(Action<long, long, string>? progress)
    {
        var w = Writer;
        w.Set(GgufKeys.GeneralArchitecture, Arch);
        w.Set(GgufKeys.GeneralName, Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(_dir))));
        w.Set(GgufKeys.GeneralFileType, (uint)(_type switch { ConvertType.F32 => 0, ConvertType.F16 => 1, ConvertType.BF16 => 32, ConvertType.Q8_0 => 7, _ => 15 }));
        if (_type is ConvertType.Q8_0 or ConvertType.Q4_K_M) w.Set(GgufKeys.GeneralQuantizationVersion, 2u);
        // config.json → the architecture family's hyper-parameter record, which writes its own keys (as for synth and export).
        bool gemma = Arch == Gemma3.Name;
        IArchConfig config = Arch == DeepSeek2Config.Arch ? DeepSeek2FromHf() : Arch == Phi3.Name ? Phi3FromHf() : gemma ? Gemma3FromHf() : LlamaFromHf();
        config.WriteKeys(w);

        // Gemma's RMSNorm multiplies by (1 + w); llama.cpp's converter stores 1 + w so the norm applies as any other.
        float normShift = gemma ? 1f : 0f;
        Add(TensorNames.Weight(TensorNames.TokenEmbd), "model.embed_tokens.weight", rows: _vocab);
        Add(TensorNames.Weight(TensorNames.OutputNorm), "model.norm.weight", shift: normShift);
        if (!Bool("tie_word_embeddings", gemma) && _st.Tensors.ContainsKey("lm_head.weight"))
            Add(TensorNames.Weight(TensorNames.Output), "lm_head.weight", rows: _vocab);

        if (config is DeepSeek2Config ds) PlanDeepSeek2(ds);
        else if (Arch == Phi3.Name) PlanPhi3((ModelConfig)config);
        else if (gemma) PlanGemma3((ModelConfig)config);
        else PlanLlama((ModelConfig)config);
        WriteTokenizer();

        long total = _plan.Sum(p => GgufWriter.ByteSize(p.Type, p.Dims)), done = 0;
        foreach (var p in _plan)
        {
            var planned = p;
            w.AddTensor(p.Name, p.Type, p.Dims, stream =>
            {
                var row = new float[planned.Cols];
                var bytes = new byte[GgmlTypeInfo.RowBytes(planned.Type, planned.Cols)];
                for (int r = 0; r < planned.RowCount; r++)
                {
                    planned.ReadRow(r, row);
                    Quant.Row(planned.Type, row, bytes);
                    stream.Write(bytes);
                    done += bytes.Length;
                    if ((r & 255) == 0 || r == planned.RowCount - 1) progress?.Invoke(done, total, planned.Name);
                }
            });
        }
    }

    // ---- tensor plans ----------------------------------------------------------------------------------------

    /// <summary>
    /// Plain 1-D or 2-D tensor; `rowMap` reorders rows (llama's Q/K permutation), `shift` is added to every value
    /// (gemma's norms), `rows` keeps only the first rows of a matrix (gemma's embedding beyond its tokenizer).
    /// </summary>
    private void Add(string name, string hfName, Func<int, int>? rowMap = null, int layer = -1, float shift = 0f, int? rows = null)
    {
        var t = _st.Get(hfName);
        long[] dims = t.Shape.Length switch
        {
            1 => [t.Shape[0]],
            2 => [t.Shape[1], rows is { } n && n < t.Shape[0] ? n : t.Shape[0]],
            _ => throw new InvalidDataException($"tensor '{hfName}' has {t.Shape.Length} dimensions; expected 1 or 2"),
        };
        int cols = (int)dims[0];
        _plan.Add(new Planned(name, dims, TypeFor(name, dims, layer), (r, dst) =>
        {
            t.File.Read(t, (long)(rowMap?.Invoke(r) ?? r) * cols, dst);
            if (shift != 0f) System.Numerics.Tensors.TensorPrimitives.Add(dst, shift, dst);
        }));
    }

    /// <summary>
    /// Gemma3ForCausalLM's config.json as llama.cpp's Gemma3Model reads it: Gemma's defaults (head size 256, 4 KV heads,
    /// θ 1e6, ε 1e-6), the vocabulary trimmed to the tokenizer (the embedding has rows beyond it, which llama.cpp drops),
    /// linear rope scaling on the global layers, and <see cref="Gemma3.Params"/>: the sliding window (none when every
    /// layer is global), which layers are local, the local RoPE base and the final soft-capping.
    /// </summary>
    private ModelConfig Gemma3FromHf()
    {
        if (_cfg.TryGetProperty("attn_logit_softcapping", out var als) && als.ValueKind == JsonValueKind.Number)
            throw new UnsupportedModelException("config.json: attn_logit_softcapping is set; Gemma 3 has none (llama.cpp's gemma3 cannot run it)");
        _vocab = Math.Min(Int("vocab_size"), HfTokenizerJson.Load(Path.Combine(_dir, "tokenizer.json")).Tokens.Length);
        int layers = Int("num_hidden_layers");
        var c = ModelConfig.Create(Arch, Int("hidden_size"), layers, Int("intermediate_size"), Int("num_attention_heads"), Int("num_key_value_heads", 4),
            _vocab.Value, Int("max_position_embeddings", 131072), Float("rope_theta", 1e6f), Float("rms_norm_eps", 1e-6f),
            ropeNeox: Gemma3.Info.RopeNeox, Int("head_dim", 256)) with { QkNorm = true };
        if (RopeScaling() is { } rs && RopeScalingType(rs) == "linear")
            c = c with { RopeScalingFactor = rs.TryGetProperty("factor", out var f) && f.ValueKind == JsonValueKind.Number ? f.GetSingle() : 1f };
        // Which layers are local: layer_types (newer transformers) or sliding_window_pattern (every n-th layer global).
        int pattern = Int("sliding_window_pattern", Gemma3.Params.DefaultPattern);
        var local = Gemma3.Params.Pattern(layers, pattern);
        if (_cfg.TryGetProperty("layer_types", out var lt) && lt.ValueKind == JsonValueKind.Array && lt.GetArrayLength() == layers)
            local = lt.EnumerateArray().Select(e => e.GetString() == "sliding_attention").ToArray();
        int window = pattern == 1 || !local.Any(x => x) ? 0 : Int("sliding_window", 4096);
        return c with
        {
            ArchParams = new Gemma3.Params(window, local, Float("rope_local_base_freq", Gemma3.Params.DefaultRopeBaseSliding),
                Gemma3.Params.Scale(c), Float("final_logit_softcapping", 0f)),
        };
    }

    /// <summary>Gemma3ForCausalLM's tensors as llama.cpp's Gemma3Model maps them: pre- and post-norms around attention and the feed-forward, per-head Q/K norms, every norm weight stored as 1 + w.</summary>
    private void PlanGemma3(ModelConfig c)
    {
        PlanRopeScaling(c.HeadDim);
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            string W(string name) => TensorNames.Weight(l, name);
            Add(W(TensorNames.AttnNorm), p + "input_layernorm.weight", shift: 1f);
            Add(W(TensorNames.AttnQ), p + "self_attn.q_proj.weight", null, l);
            Add(W(TensorNames.AttnK), p + "self_attn.k_proj.weight", null, l);
            Add(W(TensorNames.AttnV), p + "self_attn.v_proj.weight", null, l);
            Add(W(TensorNames.AttnQNorm), p + "self_attn.q_norm.weight", shift: 1f);
            Add(W(TensorNames.AttnKNorm), p + "self_attn.k_norm.weight", shift: 1f);
            Add(W(TensorNames.AttnOutput), p + "self_attn.o_proj.weight", null, l);
            Add(W(TensorNames.AttnPostNorm), p + "post_attention_layernorm.weight", shift: 1f);
            Add(W(TensorNames.FfnNorm), p + "pre_feedforward_layernorm.weight", shift: 1f);
            Add(W(TensorNames.FfnGate), p + "mlp.gate_proj.weight", null, l);
            Add(W(TensorNames.FfnUp), p + "mlp.up_proj.weight", null, l);
            Add(W(TensorNames.FfnDown), p + "mlp.down_proj.weight", null, l);
            Add(W(TensorNames.FfnPostNorm), p + "post_feedforward_layernorm.weight", shift: 1f);
        }
    }

    /// <summary>
    /// A llama-family config.json (llama, qwen2, qwen3, qwen3moe) as <see cref="ModelConfig"/>: per-head Q/K norms when
    /// the checkpoint has them (qwen3), routed experts when config.json counts them (qwen3moe, as llama.cpp's
    /// Qwen3MoeModel writes them), linear or YaRN rope scaling.
    /// </summary>
    private ModelConfig LlamaFromHf()
    {
        int heads = Int("num_attention_heads"), dim = Int("hidden_size");
        var c = ModelConfig.Create(Arch, dim, Int("num_hidden_layers"), Int("intermediate_size"), heads, Int("num_key_value_heads", heads),
            Int("vocab_size"), Int("max_position_embeddings", 4096), RopeTheta(), Float("rms_norm_eps", 1e-5f),
            ropeNeox: ModelLoader.Find(Arch)!.RopeNeox, Int("head_dim", dim / heads)) with
        {
            QkNorm = _st.Tensors.ContainsKey("model.layers.0.self_attn.q_norm.weight"),
        };
        if (_cfg.TryGetProperty("num_experts", out _))
        {
            if (_cfg.TryGetProperty("mlp_only_layers", out var dense) && dense.ValueKind == JsonValueKind.Array && dense.GetArrayLength() > 0)
                throw new UnsupportedModelException("config.json: mlp_only_layers is not empty; qwen3moe (as llama.cpp runs it) routes every layer to experts");
            if (Int("decoder_sparse_step", 1) != 1)
                throw new UnsupportedModelException($"config.json: decoder_sparse_step {Int("decoder_sparse_step")} is not supported; qwen3moe routes every layer to experts");
            int experts = Int("num_experts"), used = Int("num_experts_per_tok");
            if (experts < 1 || used < 1 || used > experts)
                throw new InvalidDataException($"config.json: num_experts_per_tok {used} must be in 1..num_experts {experts}");
            c = c with { Moe = Qwen3Moe.Routing with { ExpertCount = experts, ExpertsUsed = used }, ExpertFfnDim = Int("moe_intermediate_size") };
        }
        if (RopeScaling() is { } rs && RopeScalingType(rs) is "linear" or "yarn")
        {
            float factor = rs.TryGetProperty("factor", out var f) && f.ValueKind == JsonValueKind.Number ? f.GetSingle() : 1f;
            c = c with
            {
                RopeScalingFactor = factor, RopeYarn = RopeScalingType(rs) == "yarn" && factor != 1f,
                RopeOriginalContext = rs.TryGetProperty("original_max_position_embeddings", out var o) ? o.GetInt32() : c.ContextLength,
            };
            if (Arch == Mistral3.Name && c.RopeYarn) c = WithMistral3Keys(c, rs);
        }
        return c;
    }

    /// <summary>RoPE settings: rope_parameters (newer configs, rope_theta inside) or rope_scaling; null when neither is an object.</summary>
    private JsonElement? RopeScaling() =>
        _cfg.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object ? rp
        : _cfg.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object ? rs : null;

    /// <summary>rope_theta at the root, else inside rope_parameters (Ministral 3), else 10000.</summary>
    private float RopeTheta() =>
        Float("rope_theta", RopeScaling() is { } rp && rp.TryGetProperty("rope_theta", out var theta) && theta.ValueKind == JsonValueKind.Number ? theta.GetSingle() : 10000f);

    /// <summary>
    /// mistral3's keys beyond llama's, as llama.cpp's Ministral3Model writes them: yarn_log_multiplier = mscale_all_dim,
    /// attention.temperature_scale = llama_4_scaling_beta, and the YaRN betas when stated.
    /// </summary>
    private static ModelConfig WithMistral3Keys(ModelConfig c, JsonElement rope)
    {
        float Get(string key, float fallback) => rope.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : fallback;
        return c with
        {
            YarnBetaFast = Get("beta_fast", c.YarnBetaFast), YarnBetaSlow = Get("beta_slow", c.YarnBetaSlow),
            ArchParams = new Mistral3.Params(TemperatureScale: Get("llama_4_scaling_beta", 0f), YarnLogMultiplier: Get("mscale_all_dim", 0f)),
        };
    }

    /// <summary>
    /// llama.cpp's smollm3 skips RoPE on every fourth layer whatever the checkpoint says (the GGUF has no key for it), so a
    /// SmolLM3 with another NoPE pattern (no_rope_layer_interval, or a no_rope_layers list) is refused rather than run wrong.
    /// </summary>
    private void CheckSmolLm3NoRopeLayers(int layers)
    {
        int interval = Int("no_rope_layer_interval", SmolLm3.NoRopeLayerStep);
        if (interval != SmolLm3.NoRopeLayerStep)
            throw new UnsupportedModelException($"config.json: no_rope_layer_interval {interval} is not supported (smollm3 skips RoPE on every {SmolLm3.NoRopeLayerStep}th layer)");
        if (!_cfg.TryGetProperty("no_rope_layers", out var list) || list.ValueKind != JsonValueKind.Array) return;
        bool matches = list.GetArrayLength() == layers && list.EnumerateArray().Select((v, l) => (v, l))
            .All(x => x.v.ValueKind == JsonValueKind.Number && (x.v.GetInt32() != 0) == SmolLm3.UsesRope(x.l));
        if (!matches)
            throw new UnsupportedModelException($"config.json: no_rope_layers does not skip RoPE on exactly every {SmolLm3.NoRopeLayerStep}th of the {layers} layers, the only pattern smollm3 files can express");
    }

    private static string RopeScalingType(JsonElement rs) =>
        rs.TryGetProperty("rope_type", out var t) || rs.TryGetProperty("type", out t) ? t.GetString() ?? "" : "";

    private void PlanLlama(ModelConfig c)
    {
        int heads = c.Heads, kvHeads = c.KvHeads, headDim = c.HeadDim;
        int experts = c.Moe?.ExpertCount ?? 0;
        PlanRopeScaling(headDim);
        // llama.cpp runs llama with consecutive-pair RoPE, so the converter permutes HF's rotate-half rows of Q and K:
        // within each head, row (half·hd/2 + i) moves to (2i + half).
        Func<int, int> Permute(int nHeads) => r =>
        {
            int hd = headDim, h = r / hd, j = r % hd, i = j / 2, half = j % 2;
            return h * hd + half * (hd / 2) + i;
        };
        // smollm3 and mistral3 are converted as llama (llama.cpp's SmolLM3Model and Ministral3Model derive from LlamaModel).
        bool llama = !c.RopeNeox;
        if (Arch == SmolLm3.Name) CheckSmolLm3NoRopeLayers(c.Layers);
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            string W(string name) => TensorNames.Weight(l, name);
            Add(W(TensorNames.AttnNorm), p + "input_layernorm.weight");
            Add(W(TensorNames.AttnQ), p + "self_attn.q_proj.weight", llama ? Permute(heads) : null, l);
            Add(W(TensorNames.AttnK), p + "self_attn.k_proj.weight", llama ? Permute(kvHeads) : null, l);
            Add(W(TensorNames.AttnV), p + "self_attn.v_proj.weight", null, l);
            foreach (var (g, hf) in new[] { (TensorNames.AttnQ, "q_proj"), (TensorNames.AttnK, "k_proj"), (TensorNames.AttnV, "v_proj") })
                if (_st.Tensors.ContainsKey(p + $"self_attn.{hf}.bias"))
                    Add(TensorNames.Bias(l, g), p + $"self_attn.{hf}.bias", llama && g != TensorNames.AttnV ? Permute(g == TensorNames.AttnQ ? heads : kvHeads) : null);
            if (c.QkNorm)
            {
                Add(W(TensorNames.AttnQNorm), p + "self_attn.q_norm.weight");
                Add(W(TensorNames.AttnKNorm), p + "self_attn.k_norm.weight");
            }
            Add(W(TensorNames.AttnOutput), p + "self_attn.o_proj.weight", null, l);
            Add(W(TensorNames.FfnNorm), p + "post_attention_layernorm.weight");
            if (experts > 0)
            {
                Add(W(TensorNames.FfnGateInp), p + "mlp.gate.weight", null, l);
                foreach (var (g, hf) in new[] { (TensorNames.FfnGateExps, "gate_proj"), (TensorNames.FfnUpExps, "up_proj"), (TensorNames.FfnDownExps, "down_proj") })
                    PlanStackedExperts(W(g), p + "mlp.experts.{0}." + hf + ".weight", experts, l);
                continue;
            }
            Add(W(TensorNames.FfnGate), p + "mlp.gate_proj.weight", null, l);
            Add(W(TensorNames.FfnUp), p + "mlp.up_proj.weight", null, l);
            Add(W(TensorNames.FfnDown), p + "mlp.down_proj.weight", null, l);
        }
    }

    /// <summary>Llama-3 style rope_scaling becomes a rope_freqs tensor of per-pair divisors, as llama.cpp generates it (linear and YaRN are keys: <see cref="LlamaFromHf"/>).</summary>
    private void PlanRopeScaling(int headDim)
    {
        if (RopeScaling() is not { } rs) return;
        string type = RopeScalingType(rs);
        float Get(string k, float d) => rs.TryGetProperty(k, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : d;
        if (type == "llama3")
        {
            float factor = Get("factor", 8f), low = Get("low_freq_factor", 1f), high = Get("high_freq_factor", 4f), old = Get("original_max_position_embeddings", 8192f);
            float theta = Float("rope_theta", 10000f);
            var factors = new float[headDim / 2];
            for (int i = 0; i < factors.Length; i++)
            {
                double freq = 1 / Math.Pow(theta, 2.0 * i / headDim), wavelen = 2 * Math.PI / freq;
                if (wavelen < old / high) factors[i] = 1f;
                else if (wavelen > old / low) factors[i] = factor;
                else
                {
                    double smooth = (old / wavelen - low) / (high - low);
                    factors[i] = (float)(1 / ((1 - smooth) / factor + smooth));
                }
            }
            _plan.Add(new Planned(TensorNames.Weight(TensorNames.RopeFreqs), [factors.Length], GgmlType.F32, (_, dst) => factors.CopyTo(dst, 0)));
        }
    }

    /// <summary>A DeepseekV2/V3 config.json as <see cref="DeepSeek2Config"/>, the way llama.cpp's DeepseekV2Model reads it.</summary>
    private DeepSeek2Config DeepSeek2FromHf()
    {
        int layers = Int("num_hidden_layers");
        int? Optional(string key) => _cfg.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;
        int experts = Optional("n_routed_experts") ?? 0;
        string scoring = _cfg.TryGetProperty("scoring_func", out var sf) ? sf.GetString() ?? "softmax" : "softmax";
        var c = new DeepSeek2Config
        {
            Dim = Int("hidden_size"), Layers = layers, Heads = Int("num_attention_heads"), VocabSize = Int("vocab_size"),
            ContextLength = Int("max_position_embeddings", 4096), RmsEps = Float("rms_norm_eps", 1e-6f),
            QLoraRank = Optional("q_lora_rank") ?? 0, KvLoraRank = Int("kv_lora_rank", 512),
            QkNopeDim = Int("qk_nope_head_dim"), QkRopeDim = Int("qk_rope_head_dim"), VHeadDim = Int("v_head_dim"),
            FfnDim = Int("intermediate_size"), LeadingDenseLayers = Int("first_k_dense_replace", experts > 0 ? 0 : layers),
            ExpertCount = experts, ExpertsUsed = experts > 0 ? Int("num_experts_per_tok") : 0, SharedExperts = Int("n_shared_experts", 0),
            ExpertFfnDim = Int("moe_intermediate_size", Int("intermediate_size")),
            ExpertWeightsScale = Float("routed_scaling_factor", 1f), ExpertWeightsNorm = Bool("norm_topk_prob"),
            Gating = scoring switch
            {
                "softmax" => ExpertGating.Softmax,
                "sigmoid" => ExpertGating.Sigmoid,
                _ => throw new UnsupportedModelException($"config.json: scoring_func '{scoring}' is not supported"),
            },
            ExpertGroups = Optional("n_group") ?? 1, ExpertGroupsUsed = Optional("topk_group") ?? 1,
            RopeBase = Float("rope_theta", 10000f),
        };
        c = c with { RopeOriginalContext = c.ContextLength };
        if (RopeScaling() is { } rs && RopeScalingType(rs) == "yarn")
        {
            float Get(string k, float d) => rs.TryGetProperty(k, out var x) && x.ValueKind == JsonValueKind.Number ? x.GetSingle() : d;
            float factor = Get("factor", 1f);
            c = c with
            {
                RopeScalingFactor = factor, Yarn = factor != 1f,
                RopeOriginalContext = rs.TryGetProperty("original_max_position_embeddings", out var o) ? o.GetInt32() : c.ContextLength,
                YarnLogMultiplier = Get("mscale_all_dim", 0f), YarnBetaFast = Get("beta_fast", 32f), YarnBetaSlow = Get("beta_slow", 1f),
            };
        }
        return c;
    }

    private void PlanDeepSeek2(DeepSeek2Config c)
    {
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            string W(string name) => TensorNames.Weight(l, name);
            Add(W(TensorNames.AttnNorm), p + "input_layernorm.weight");
            if (c.QLoraRank > 0)
            {
                Add(W(TensorNames.AttnQA), p + "self_attn.q_a_proj.weight", null, l);
                Add(W(TensorNames.AttnQANorm), p + "self_attn.q_a_layernorm.weight");
                Add(W(TensorNames.AttnQB), p + "self_attn.q_b_proj.weight", null, l);
            }
            else
            {
                Add(W(TensorNames.AttnQ), p + "self_attn.q_proj.weight", null, l);
            }
            Add(W(TensorNames.AttnKvAMqa), p + "self_attn.kv_a_proj_with_mqa.weight", null, l);
            Add(W(TensorNames.AttnKvANorm), p + "self_attn.kv_a_layernorm.weight");
            PlanKvBSplit(l, p + "self_attn.kv_b_proj.weight", c.Heads, c.QkNopeDim, c.VHeadDim, c.KvLoraRank);
            Add(W(TensorNames.AttnOutput), p + "self_attn.o_proj.weight", null, l);
            Add(W(TensorNames.FfnNorm), p + "post_attention_layernorm.weight");
            if (!c.IsMoeLayer(l))
            {
                Add(W(TensorNames.FfnGate), p + "mlp.gate_proj.weight", null, l);
                Add(W(TensorNames.FfnUp), p + "mlp.up_proj.weight", null, l);
                Add(W(TensorNames.FfnDown), p + "mlp.down_proj.weight", null, l);
                continue;
            }
            Add(W(TensorNames.FfnGateInp), p + "mlp.gate.weight", null, l);
            if (_st.Tensors.ContainsKey(p + "mlp.gate.e_score_correction_bias"))
                Add(TensorNames.Bias(l, TensorNames.ExpProbsB), p + "mlp.gate.e_score_correction_bias");
            foreach (var (g, hf) in new[] { (TensorNames.FfnGateExps, "gate_proj"), (TensorNames.FfnUpExps, "up_proj"), (TensorNames.FfnDownExps, "down_proj") })
                PlanStackedExperts(W(g), p + "mlp.experts.{0}." + hf + ".weight", c.ExpertCount, l);
            if (_st.Tensors.ContainsKey(p + "mlp.shared_experts.gate_proj.weight"))
            {
                Add(W(TensorNames.FfnGateShexp), p + "mlp.shared_experts.gate_proj.weight", null, l);
                Add(W(TensorNames.FfnUpShexp), p + "mlp.shared_experts.up_proj.weight", null, l);
                Add(W(TensorNames.FfnDownShexp), p + "mlp.shared_experts.down_proj.weight", null, l);
            }
        }
    }

    /// <summary>Stacks expert e's [out, in] matrices into ggml dims [in, out, n_expert].</summary>
    private void PlanStackedExperts(string name, string hfPattern, int experts, int layer)
    {
        var parts = Enumerable.Range(0, experts).Select(e => _st.Get(string.Format(System.Globalization.CultureInfo.InvariantCulture, hfPattern, e))).ToArray();
        long rows = parts[0].Shape[0], cols = parts[0].Shape[1];
        if (parts.Any(t => t.Shape.Length != 2 || t.Shape[0] != rows || t.Shape[1] != cols))
            throw new InvalidDataException($"experts of '{hfPattern}' differ in shape");
        long[] dims = [cols, rows, experts];
        _plan.Add(new Planned(name, dims, TypeFor(name, dims, layer), (r, dst) =>
        {
            var t = parts[r / rows];
            t.File.Read(t, r % rows * cols, dst);
        }));
    }

    /// <summary>
    /// llama.cpp's MLA split of kv_b [heads·(nope+v), rank]: attn_k_b = the key half transposed per head, ggml dims
    /// [nope, rank, heads]; attn_v_b = the value half, ggml dims [rank, v, heads].
    /// </summary>
    private void PlanKvBSplit(int layer, string hfName, int heads, int nope, int v, int rank)
    {
        var t = _st.Get(hfName);
        if (t.Shape.Length != 2 || t.Shape[0] != heads * (nope + v) || t.Shape[1] != rank)
            throw new InvalidDataException($"tensor '{hfName}' has shape [{string.Join(", ", t.Shape)}], expected [{heads * (nope + v)}, {rank}]");
        float[]? whole = null;
        long[] kd = [nope, rank, heads], vd = [rank, v, heads];
        string kName = TensorNames.Weight(layer, TensorNames.AttnKB), vName = TensorNames.Weight(layer, TensorNames.AttnVB);
        _plan.Add(new Planned(kName, kd, TypeFor(kName, kd, layer), (r, dst) =>
        {
            // Gathering a column needs the whole (small) matrix; load it once, drop it after the last row.
            if (whole == null) { whole = new float[t.ElementCount]; t.File.Read(t, 0, whole); }
            int h = r / rank, c = r % rank;
            for (int d = 0; d < nope; d++) dst[d] = whole[(long)(h * (nope + v) + d) * rank + c];
            if (r == heads * rank - 1) whole = null;
        }));
        _plan.Add(new Planned(vName, vd, TypeFor(vName, vd, layer), (r, dst) =>
            t.File.Read(t, (long)((r / v) * (nope + v) + nope + r % v) * rank, dst)));
    }

    // ---- types ---------------------------------------------------------------------------------------------

    private GgmlType TypeFor(string name, long[] dims, int layer)
    {
        // 1-D tensors and the MoE router stay F32, as llama.cpp's converter keeps them.
        if (dims.Length == 1 || TensorNames.IsLayer(name, TensorNames.FfnGateInp) || name.EndsWith(".bias", StringComparison.Ordinal))
            return GgmlType.F32;
        long cols = dims[0];
        GgmlType want = _type switch
        {
            ConvertType.F32 => GgmlType.F32,
            ConvertType.F16 => GgmlType.F16,
            ConvertType.BF16 => GgmlType.BF16,
            ConvertType.Q8_0 => GgmlType.Q8_0,
            _ => Q4KMType(name, layer),
        };
        // Rows that do not fill whole blocks fall back like llama-quantize does.
        if (want is GgmlType.Q4_K or GgmlType.Q6_K && cols % 256 != 0) want = want == GgmlType.Q4_K ? GgmlType.Q5_0 : GgmlType.Q8_0;
        if (want is GgmlType.Q8_0 or GgmlType.Q5_0 && cols % 32 != 0) want = GgmlType.F16;
        return want;
    }

    /// <summary>llama.cpp's Q4_K_M mix: Q6_K for the output head and for attn_v / ffn_down in the "more bits" layers, Q4_K elsewhere.</summary>
    private GgmlType Q4KMType(string name, int layer)
    {
        if (name == TensorNames.Weight(TensorNames.Output)) return GgmlType.Q6_K;
        int n = Int("num_hidden_layers");
        bool moreBits = layer >= 0 && (layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2);
        if (moreBits && (TensorNames.IsLayer(name, TensorNames.AttnV) || name.Contains("." + TensorNames.FfnDown, StringComparison.Ordinal))) return GgmlType.Q6_K;
        if (TensorNames.IsLayer(name, TensorNames.AttnQkv)) return GgmlType.Q5_K; // fused Q/K/V gets one step up, as llama-quantize gives it
        return GgmlType.Q4_K;
    }

    // ---- tokenizer -----------------------------------------------------------------------------------------

    private void WriteTokenizer()
    {
        var w = Writer;
        var tok = HfTokenizerJson.Load(Path.Combine(_dir, "tokenizer.json"));
        var tokens = tok.Tokens;
        var types = tok.TokenTypes ?? Enumerable.Repeat((int)TokenType.Normal, tokens.Length).ToArray();
        int vocab = _vocab ?? Int("vocab_size", tokens.Length);
        if (vocab > tokens.Length)
        {
            // llama.cpp pads the vocabulary to the embedding's rows with unused [PADn] tokens.
            tokens = [.. tokens, .. Enumerable.Range(tokens.Length, vocab - tokens.Length).Select(i => $"[PAD{i}]")];
            types = [.. types, .. Enumerable.Repeat((int)TokenType.Unused, vocab - types.Length)];
        }
        (tok with
        {
            Tokens = tokens,
            TokenTypes = types,
            BosId = tok.BosId ?? GenerationConfigId("bos_token_id"),
            EosId = tok.EosId ?? GenerationConfigId("eos_token_id"),
        }).WriteTo(w);
        if (ChatTemplate() is { } tpl) w.Set(GgufKeys.ChatTemplate, tpl);
    }

    /// <summary>bos/eos ids from generation_config.json, then config.json (first entry when a list).</summary>
    private int? GenerationConfigId(string key)
    {
        foreach (string file in new[] { "generation_config.json", "config.json" })
        {
            string path = Path.Combine(_dir, file);
            if (!File.Exists(path)) continue;
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (!doc.RootElement.TryGetProperty(key, out var v)) continue;
            if (v.ValueKind == JsonValueKind.Number) return v.GetInt32();
            if (v.ValueKind == JsonValueKind.Array && v.GetArrayLength() > 0 && v[0].ValueKind == JsonValueKind.Number) return v[0].GetInt32();
        }
        return null;
    }

    private string? ChatTemplate()
    {
        string path = Path.Combine(_dir, "tokenizer_config.json");
        if (File.Exists(path))
        {
            using var doc = JsonDocument.Parse(File.ReadAllText(path));
            if (doc.RootElement.TryGetProperty("chat_template", out var t))
            {
                if (t.ValueKind == JsonValueKind.String) return t.GetString();
                // A list of named templates: llama.cpp keeps "default" as the chat template.
                if (t.ValueKind == JsonValueKind.Array)
                    foreach (var e in t.EnumerateArray())
                        if (e.TryGetProperty("name", out var n) && n.GetString() == "default") return e.GetProperty("template").GetString();
            }
        }
        string jinja = Path.Combine(_dir, "chat_template.jinja");
        return File.Exists(jinja) ? File.ReadAllText(jinja) : null;
    }

    public void Dispose() => _st.Dispose();
}
