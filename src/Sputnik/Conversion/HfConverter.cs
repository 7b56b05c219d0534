using System.Text.Json;
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
internal sealed class HfConverter : IDisposable
{
    public static readonly IReadOnlyDictionary<string, string> Architectures = new Dictionary<string, string>
    {
        ["LlamaForCausalLM"] = "llama",
        ["Qwen2ForCausalLM"] = "qwen2",
        ["Qwen3ForCausalLM"] = Qwen3.Name,
        ["Qwen3MoeForCausalLM"] = Qwen3Moe.Name,
        ["Gemma3ForCausalLM"] = Gemma3.Name,
        ["DeepseekV2ForCausalLM"] = "deepseek2",
        ["DeepseekV3ForCausalLM"] = "deepseek2",
    };

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
        using (var doc = JsonDocument.Parse(File.ReadAllText(cfgPath))) _cfg = doc.RootElement.Clone();
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
        int layers = Int("num_hidden_layers"), heads = Int("num_attention_heads"), dim = Int("hidden_size");
        w.Set("general.architecture", Arch);
        w.Set("general.name", Path.GetFileName(Path.TrimEndingDirectorySeparator(Path.GetFullPath(_dir))));
        w.Set("general.file_type", (uint)(_type switch { ConvertType.F32 => 0, ConvertType.F16 => 1, ConvertType.BF16 => 32, ConvertType.Q8_0 => 7, _ => 15 }));
        if (_type is ConvertType.Q8_0 or ConvertType.Q4_K_M) w.Set("general.quantization_version", 2u);
        string a = Arch;
        bool gemma = a == Gemma3.Name;
        if (gemma) _vocab = Math.Min(Int("vocab_size"), HfTokenizerJson.Load(Path.Combine(_dir, "tokenizer.json")).Tokens.Length);
        w.Set($"{a}.vocab_size", (uint)(_vocab ?? Int("vocab_size")));
        w.Set($"{a}.context_length", (uint)Int("max_position_embeddings", gemma ? 131072 : 4096));
        w.Set($"{a}.embedding_length", (uint)dim);
        w.Set($"{a}.block_count", (uint)layers);
        w.Set($"{a}.feed_forward_length", (uint)Int("intermediate_size"));
        w.Set($"{a}.attention.head_count", (uint)heads);
        w.Set($"{a}.rope.freq_base", Float("rope_theta", gemma ? 1e6f : 10000f));
        w.Set($"{a}.attention.layer_norm_rms_epsilon", Float("rms_norm_eps", a == "deepseek2" || gemma ? 1e-6f : 1e-5f));

        // Gemma's RMSNorm multiplies by (1 + w); llama.cpp's converter stores 1 + w so the norm applies as any other.
        float normShift = gemma ? 1f : 0f;
        Add("token_embd.weight", "model.embed_tokens.weight", rows: _vocab);
        Add("output_norm.weight", "model.norm.weight", shift: normShift);
        if (!Bool("tie_word_embeddings", gemma) && _st.Tensors.ContainsKey("lm_head.weight")) Add("output.weight", "lm_head.weight", rows: _vocab);

        if (a == "deepseek2") PlanDeepSeek2(layers, heads);
        else if (gemma) PlanGemma3(layers, heads, dim);
        else PlanLlama(layers, heads, dim);
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
    /// Gemma3ForCausalLM as llama.cpp's Gemma3Model converts it: pre- and post-norms around attention and the
    /// feed-forward, per-head Q/K norms, every norm weight stored as 1 + w; the sliding window (unless every layer is
    /// global), the local layers' RoPE base and the pattern when they differ from llama.cpp's defaults.
    /// </summary>
    private void PlanGemma3(int layers, int heads, int dim)
    {
        string a = Arch;
        int kvHeads = Int("num_key_value_heads", 4), headDim = Int("head_dim", 256);
        Writer.Set($"{a}.attention.head_count_kv", (uint)kvHeads);
        Writer.Set($"{a}.{GgufKeys.KeyLength}", (uint)headDim);
        Writer.Set($"{a}.{GgufKeys.ValueLength}", (uint)headDim);
        if (_cfg.TryGetProperty("attn_logit_softcapping", out var als) && als.ValueKind == JsonValueKind.Number)
            throw new UnsupportedModelException("config.json: attn_logit_softcapping is set; Gemma 3 has none (llama.cpp's gemma3 cannot run it)");
        PlanRopeScaling(headDim);
        // Which layers are local: layer_types (newer transformers) or sliding_window_pattern (every n-th layer global).
        var local = Gemma3Params.Pattern(layers, Int("sliding_window_pattern", Gemma3Params.DefaultPattern));
        if (_cfg.TryGetProperty("layer_types", out var lt) && lt.ValueKind == JsonValueKind.Array && lt.GetArrayLength() == layers)
            local = lt.EnumerateArray().Select(e => e.GetString() == "sliding_attention").ToArray();
        int window = Int("sliding_window_pattern", Gemma3Params.DefaultPattern) == 1 || !local.Any(x => x) ? 0 : Int("sliding_window", 4096);
        new Gemma3Params(window, local, Float("rope_local_base_freq", Gemma3Params.DefaultRopeBaseSliding), 0f, Float("final_logit_softcapping", 0f))
            .WriteKeys(Writer, a);
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(TensorNames.Weight(l, TensorNames.AttnNorm), p + "input_layernorm.weight", shift: 1f);
            Add(TensorNames.Weight(l, TensorNames.AttnQ), p + "self_attn.q_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.AttnK), p + "self_attn.k_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.AttnV), p + "self_attn.v_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.AttnQNorm), p + "self_attn.q_norm.weight", shift: 1f);
            Add(TensorNames.Weight(l, TensorNames.AttnKNorm), p + "self_attn.k_norm.weight", shift: 1f);
            Add(TensorNames.Weight(l, TensorNames.AttnOutput), p + "self_attn.o_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.AttnPostNorm), p + "post_attention_layernorm.weight", shift: 1f);
            Add(TensorNames.Weight(l, TensorNames.FfnNorm), p + "pre_feedforward_layernorm.weight", shift: 1f);
            Add(TensorNames.Weight(l, TensorNames.FfnGate), p + "mlp.gate_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.FfnUp), p + "mlp.up_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.FfnDown), p + "mlp.down_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.FfnPostNorm), p + "post_feedforward_layernorm.weight", shift: 1f);
        }
    }

    private void PlanLlama(int layers, int heads, int dim)
    {
        string a = Arch;
        int kvHeads = Int("num_key_value_heads", heads);
        int headDim = Int("head_dim", dim / heads);
        Writer.Set($"{a}.attention.head_count_kv", (uint)kvHeads);
        Writer.Set($"{a}.rope.dimension_count", (uint)headDim);
        // llama.cpp's converter writes the head size whenever config.json states it (Qwen3 always does: 128).
        if (headDim != dim / heads || _cfg.TryGetProperty("head_dim", out _))
        {
            Writer.Set($"{a}.{GgufKeys.KeyLength}", (uint)headDim);
            Writer.Set($"{a}.{GgufKeys.ValueLength}", (uint)headDim);
        }
        bool qkNorm = a is Qwen3.Name or Qwen3Moe.Name;
        int experts = a == Qwen3Moe.Name ? PlanQwen3MoeKeys() : 0;
        PlanRopeScaling(headDim);
        // llama.cpp runs llama with consecutive-pair RoPE, so the converter permutes HF's rotate-half rows of Q and K:
        // within each head, row (half·hd/2 + i) moves to (2i + half).
        Func<int, int> Permute(int nHeads) => r =>
        {
            int hd = headDim, h = r / hd, j = r % hd, i = j / 2, half = j % 2;
            return h * hd + half * (hd / 2) + i;
        };
        bool llama = a == "llama";
        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.";
            Add(b + "attn_norm.weight", p + "input_layernorm.weight");
            Add(b + "attn_q.weight", p + "self_attn.q_proj.weight", llama ? Permute(heads) : null, l);
            Add(b + "attn_k.weight", p + "self_attn.k_proj.weight", llama ? Permute(kvHeads) : null, l);
            Add(b + "attn_v.weight", p + "self_attn.v_proj.weight", null, l);
            foreach (var (g, hf) in new[] { ("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj") })
                if (_st.Tensors.ContainsKey(p + $"self_attn.{hf}.bias"))
                    Add(b + g + ".bias", p + $"self_attn.{hf}.bias", llama && g != "attn_v" ? Permute(g == "attn_q" ? heads : kvHeads) : null);
            if (qkNorm)
            {
                Add(TensorNames.Weight(l, TensorNames.AttnQNorm), p + "self_attn.q_norm.weight");
                Add(TensorNames.Weight(l, TensorNames.AttnKNorm), p + "self_attn.k_norm.weight");
            }
            Add(b + "attn_output.weight", p + "self_attn.o_proj.weight", null, l);
            Add(b + "ffn_norm.weight", p + "post_attention_layernorm.weight");
            if (experts > 0)
            {
                Add(TensorNames.Weight(l, TensorNames.FfnGateInp), p + "mlp.gate.weight", null, l);
                foreach (var (g, hf) in new[] { (TensorNames.FfnGateExps, "gate_proj"), (TensorNames.FfnUpExps, "up_proj"), (TensorNames.FfnDownExps, "down_proj") })
                    PlanStackedExperts(TensorNames.Weight(l, g), p + "mlp.experts.{0}." + hf + ".weight", experts, l);
                continue;
            }
            Add(b + "ffn_gate.weight", p + "mlp.gate_proj.weight", null, l);
            Add(b + "ffn_up.weight", p + "mlp.up_proj.weight", null, l);
            Add(b + "ffn_down.weight", p + "mlp.down_proj.weight", null, l);
        }
    }

    /// <summary>
    /// Qwen3-MoE's expert keys, as llama.cpp's Qwen3MoeModel writes them; returns the expert count. Every layer must
    /// be sparse (llama.cpp's qwen3moe has no dense layers: mlp_only_layers must be empty, decoder_sparse_step 1).
    /// </summary>
    private int PlanQwen3MoeKeys()
    {
        string a = Arch;
        if (_cfg.TryGetProperty("mlp_only_layers", out var dense) && dense.ValueKind == JsonValueKind.Array && dense.GetArrayLength() > 0)
            throw new UnsupportedModelException("config.json: mlp_only_layers is not empty; qwen3moe (as llama.cpp runs it) routes every layer to experts");
        if (Int("decoder_sparse_step", 1) != 1)
            throw new UnsupportedModelException($"config.json: decoder_sparse_step {Int("decoder_sparse_step")} is not supported; qwen3moe routes every layer to experts");
        int experts = Int("num_experts"), used = Int("num_experts_per_tok");
        if (experts < 1 || used < 1 || used > experts)
            throw new InvalidDataException($"config.json: num_experts_per_tok {used} must be in 1..num_experts {experts}");
        Writer.Set($"{a}.{GgufKeys.ExpertCount}", (uint)experts);
        Writer.Set($"{a}.{GgufKeys.ExpertUsedCount}", (uint)used);
        Writer.Set($"{a}.{GgufKeys.ExpertFeedForwardLength}", (uint)Int("moe_intermediate_size"));
        return experts;
    }

    /// <summary>Llama-3 style rope_scaling becomes a rope_freqs tensor of per-pair divisors, as llama.cpp generates it.</summary>
    private void PlanRopeScaling(int headDim)
    {
        if (!_cfg.TryGetProperty("rope_scaling", out var rs) || rs.ValueKind != JsonValueKind.Object) return;
        string type = rs.TryGetProperty("rope_type", out var t) || rs.TryGetProperty("type", out t) ? t.GetString() ?? "" : "";
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
            _plan.Add(new Planned("rope_freqs.weight", [factors.Length], GgmlType.F32, (_, dst) => factors.CopyTo(dst, 0)));
        }
        else if (type is "linear" or "yarn")
        {
            Writer.Set($"{Arch}.rope.scaling.type", type);
            Writer.Set($"{Arch}.rope.scaling.factor", Get("factor", 1f));
            if (rs.TryGetProperty("original_max_position_embeddings", out var o)) Writer.Set($"{Arch}.rope.scaling.original_context_length", (uint)o.GetInt32());
        }
    }

    private void PlanDeepSeek2(int layers, int heads)
    {
        string a = Arch;
        var w = Writer;
        int nope = Int("qk_nope_head_dim"), rope = Int("qk_rope_head_dim"), v = Int("v_head_dim"), rank = Int("kv_lora_rank", 512);
        int qLora = _cfg.TryGetProperty("q_lora_rank", out var ql) && ql.ValueKind == JsonValueKind.Number ? ql.GetInt32() : 0;
        bool moe = _cfg.TryGetProperty("n_routed_experts", out var ne) && ne.ValueKind == JsonValueKind.Number;
        int experts = moe ? ne.GetInt32() : 0;
        int dense = Int("first_k_dense_replace", moe ? 0 : layers);
        // MLA is stored as MQA with one "head" of the latent width; the real head sizes go to *_mla.
        w.Set($"{a}.attention.head_count_kv", 1u);
        w.Set($"{a}.leading_dense_block_count", (uint)dense);
        // Written as 0 without a query LoRA: llama.cpp only treats 26/27-layer files as "lite" (plain attn_q) and
        // otherwise requires this key, so a V2-Lite-style checkpoint of any other depth would not load there.
        w.Set($"{a}.attention.q_lora_rank", (uint)qLora);
        w.Set($"{a}.attention.kv_lora_rank", (uint)rank);
        w.Set($"{a}.attention.key_length", (uint)(rank + rope));
        w.Set($"{a}.attention.value_length", (uint)rank);
        w.Set($"{a}.attention.key_length_mla", (uint)(nope + rope));
        w.Set($"{a}.attention.value_length_mla", (uint)v);
        w.Set($"{a}.expert_feed_forward_length", (uint)Int("moe_intermediate_size", Int("intermediate_size")));
        if (moe)
        {
            w.Set($"{a}.expert_count", (uint)experts);
            w.Set($"{a}.expert_used_count", (uint)Int("num_experts_per_tok"));
        }
        w.Set($"{a}.expert_shared_count", (uint)Int("n_shared_experts", 0));
        if (_cfg.TryGetProperty("routed_scaling_factor", out var rsf) && rsf.ValueKind == JsonValueKind.Number) w.Set($"{a}.expert_weights_scale", rsf.GetSingle());
        if (Bool("norm_topk_prob")) w.Set($"{a}.expert_weights_norm", true);
        if (_cfg.TryGetProperty("n_group", out var ng) && ng.ValueKind == JsonValueKind.Number) w.Set($"{a}.expert_group_count", (uint)ng.GetInt32());
        if (_cfg.TryGetProperty("topk_group", out var tg) && tg.ValueKind == JsonValueKind.Number) w.Set($"{a}.expert_group_used_count", (uint)tg.GetInt32());
        string scoring = _cfg.TryGetProperty("scoring_func", out var sf) ? sf.GetString() ?? "softmax" : "softmax";
        w.Set($"{a}.expert_gating_func", scoring switch
        {
            "softmax" => 1u,
            "sigmoid" => 2u,
            _ => throw new UnsupportedModelException($"config.json: scoring_func '{scoring}' is not supported"),
        });
        w.Set($"{a}.rope.dimension_count", (uint)rope);
        if (_cfg.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object)
        {
            float Get(string k, float d) => rs.TryGetProperty(k, out var x) && x.ValueKind == JsonValueKind.Number ? x.GetSingle() : d;
            string type = rs.TryGetProperty("type", out var t) || rs.TryGetProperty("rope_type", out t) ? t.GetString() ?? "" : "";
            w.Set($"{a}.rope.scaling.type", type);
            w.Set($"{a}.rope.scaling.factor", Get("factor", 1f));
            if (rs.TryGetProperty("original_max_position_embeddings", out var o)) w.Set($"{a}.rope.scaling.original_context_length", (uint)o.GetInt32());
            // llama.cpp's converter writes 0.1·mscale_all_dim here and divides it back out on load.
            if (rs.TryGetProperty("mscale_all_dim", out var m) && m.ValueKind == JsonValueKind.Number) w.Set($"{a}.rope.scaling.yarn_log_multiplier", 0.1f * m.GetSingle());
            if (rs.TryGetProperty("beta_fast", out _)) w.Set($"{a}.rope.scaling.yarn_beta_fast", Get("beta_fast", 32f));
            if (rs.TryGetProperty("beta_slow", out _)) w.Set($"{a}.rope.scaling.yarn_beta_slow", Get("beta_slow", 1f));
        }

        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.", b = $"blk.{l}.";
            Add(b + "attn_norm.weight", p + "input_layernorm.weight");
            if (qLora > 0)
            {
                Add(b + "attn_q_a.weight", p + "self_attn.q_a_proj.weight", null, l);
                Add(b + "attn_q_a_norm.weight", p + "self_attn.q_a_layernorm.weight");
                Add(b + "attn_q_b.weight", p + "self_attn.q_b_proj.weight", null, l);
            }
            else
            {
                Add(b + "attn_q.weight", p + "self_attn.q_proj.weight", null, l);
            }
            Add(b + "attn_kv_a_mqa.weight", p + "self_attn.kv_a_proj_with_mqa.weight", null, l);
            Add(b + "attn_kv_a_norm.weight", p + "self_attn.kv_a_layernorm.weight");
            PlanKvBSplit(b, p + "self_attn.kv_b_proj.weight", heads, nope, v, rank, l);
            Add(b + "attn_output.weight", p + "self_attn.o_proj.weight", null, l);
            Add(b + "ffn_norm.weight", p + "post_attention_layernorm.weight");
            if (l < dense || !moe)
            {
                Add(b + "ffn_gate.weight", p + "mlp.gate_proj.weight", null, l);
                Add(b + "ffn_up.weight", p + "mlp.up_proj.weight", null, l);
                Add(b + "ffn_down.weight", p + "mlp.down_proj.weight", null, l);
                continue;
            }
            Add(b + "ffn_gate_inp.weight", p + "mlp.gate.weight", null, l);
            if (_st.Tensors.ContainsKey(p + "mlp.gate.e_score_correction_bias"))
                Add(b + "exp_probs_b.bias", p + "mlp.gate.e_score_correction_bias");
            foreach (var (g, hf) in new[] { ("ffn_gate_exps", "gate_proj"), ("ffn_up_exps", "up_proj"), ("ffn_down_exps", "down_proj") })
                PlanStackedExperts(b + g + ".weight", p + "mlp.experts.{0}." + hf + ".weight", experts, l);
            if (_st.Tensors.ContainsKey(p + "mlp.shared_experts.gate_proj.weight"))
            {
                Add(b + "ffn_gate_shexp.weight", p + "mlp.shared_experts.gate_proj.weight", null, l);
                Add(b + "ffn_up_shexp.weight", p + "mlp.shared_experts.up_proj.weight", null, l);
                Add(b + "ffn_down_shexp.weight", p + "mlp.shared_experts.down_proj.weight", null, l);
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
    private void PlanKvBSplit(string b, string hfName, int heads, int nope, int v, int rank, int layer)
    {
        var t = _st.Get(hfName);
        if (t.Shape.Length != 2 || t.Shape[0] != heads * (nope + v) || t.Shape[1] != rank)
            throw new InvalidDataException($"tensor '{hfName}' has shape [{string.Join(", ", t.Shape)}], expected [{heads * (nope + v)}, {rank}]");
        float[]? whole = null;
        long[] kd = [nope, rank, heads], vd = [rank, v, heads];
        _plan.Add(new Planned(b + "attn_k_b.weight", kd, TypeFor(b + "attn_k_b.weight", kd, layer), (r, dst) =>
        {
            // Gathering a column needs the whole (small) matrix; load it once, drop it after the last row.
            if (whole == null) { whole = new float[t.ElementCount]; t.File.Read(t, 0, whole); }
            int h = r / rank, c = r % rank;
            for (int d = 0; d < nope; d++) dst[d] = whole[(long)(h * (nope + v) + d) * rank + c];
            if (r == heads * rank - 1) whole = null;
        }));
        _plan.Add(new Planned(b + "attn_v_b.weight", vd, TypeFor(b + "attn_v_b.weight", vd, layer), (r, dst) =>
            t.File.Read(t, (long)((r / v) * (nope + v) + nope + r % v) * rank, dst)));
    }

    // ---- types ---------------------------------------------------------------------------------------------

    private GgmlType TypeFor(string name, long[] dims, int layer)
    {
        // 1-D tensors and the MoE router stay F32, as llama.cpp's converter keeps them.
        if (dims.Length == 1 || name.EndsWith("ffn_gate_inp.weight", StringComparison.Ordinal) || name.EndsWith(".bias", StringComparison.Ordinal))
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
        if (name == "output.weight") return GgmlType.Q6_K;
        int n = Int("num_hidden_layers");
        bool moreBits = layer >= 0 && (layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2);
        if (moreBits && (name.Contains(".attn_v.", StringComparison.Ordinal) || name.Contains(".ffn_down", StringComparison.Ordinal))) return GgmlType.Q6_K;
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
        if (ChatTemplate() is { } tpl) w.Set("tokenizer.chat_template", tpl);
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
