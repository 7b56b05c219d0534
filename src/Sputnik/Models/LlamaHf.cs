using Sputnik.Conversion;

namespace Sputnik.Models;

/// <summary>
/// The Hugging Face layout of a llama-layer checkpoint (llama, qwen2, qwen3, qwen3moe, smollm3, mistral3), as llama.cpp's
/// LlamaModel / Qwen2Model converters read it: the shared block of those architectures' <see cref="HfConversion"/>s,
/// which add their own keys or checks around it.
/// </summary>
internal static class LlamaHf
{
    /// <summary>The plain conversion: <see cref="ReadConfig"/> then <see cref="PlanTensors"/>.</summary>
    public static HfConversion Conversion { get; } = HfConversion.Of<ModelConfig>(ReadConfig, PlanTensors);

    /// <summary>
    /// config.json as <see cref="ModelConfig"/>: per-head Q/K norms when the checkpoint has them (qwen3), linear or YaRN
    /// rope scaling as keys (Llama 3's scaling becomes a tensor: <see cref="AddLlama3RopeFreqs"/>).
    /// </summary>
    public static ModelConfig ReadConfig(HfCheckpoint ck)
    {
        int heads = ck.Int("num_attention_heads"), dim = ck.Int("hidden_size");
        var c = ModelConfig.Create(ck.Architecture.Name, dim, ck.Int("num_hidden_layers"), ck.Int("intermediate_size"), heads,
            ck.Int("num_key_value_heads", heads), ck.Int("vocab_size"), ck.Int("max_position_embeddings", 4096), ck.RopeTheta(),
            ck.Float("rms_norm_eps", 1e-5f), ropeNeox: ck.Architecture.RopeNeox, ck.Int("head_dim", dim / heads)) with
        {
            QkNorm = ck.HasTensor("model.layers.0.self_attn.q_norm.weight"),
        };
        if (ck.RopeScaling() is { } rs && HfCheckpoint.RopeScalingType(rs) is "linear" or "yarn")
        {
            float factor = HfCheckpoint.Number(rs, "factor", 1f);
            c = c with
            {
                RopeScalingFactor = factor, RopeYarn = HfCheckpoint.RopeScalingType(rs) == "yarn" && factor != 1f,
                RopeOriginalContext = rs.TryGetProperty("original_max_position_embeddings", out var o) ? o.GetInt32() : c.ContextLength,
            };
        }
        return c;
    }

    /// <summary>
    /// The tensors: embeddings and head, Llama 3's rope_freqs, then per layer the attention (Q/K rows permuted to
    /// adjacent-pair RoPE unless the architecture pairs NeoX-style; biases and Q/K norms when present) and a SwiGLU or,
    /// when the config routes, stacked experts with their router.
    /// </summary>
    public static void PlanTensors(HfTensorPlan plan, ModelConfig c)
    {
        var ck = plan.Checkpoint;
        int heads = c.Heads, kvHeads = c.KvHeads, headDim = c.HeadDim;
        int experts = c.Moe?.ExpertCount ?? 0;
        plan.AddEmbeddingsAndHead();
        AddLlama3RopeFreqs(plan, headDim);
        // llama.cpp runs llama with consecutive-pair RoPE, so its converter permutes HF's rotate-half rows of Q and K:
        // within each head, row (half·hd/2 + i) moves to (2i + half).
        Func<int, int>? Permute(int nHeads) => c.RopeNeox ? null : r =>
        {
            int hd = headDim, h = r / hd, j = r % hd, i = j / 2, half = j % 2;
            return h * hd + half * (hd / 2) + i;
        };
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            string W(string name) => TensorNames.Weight(l, name);
            plan.Add(W(TensorNames.AttnNorm), p + "input_layernorm.weight");
            plan.Add(W(TensorNames.AttnQ), p + "self_attn.q_proj.weight", Permute(heads));
            plan.Add(W(TensorNames.AttnK), p + "self_attn.k_proj.weight", Permute(kvHeads));
            plan.Add(W(TensorNames.AttnV), p + "self_attn.v_proj.weight");
            foreach (var (g, hf, rows) in new[] { (TensorNames.AttnQ, "q_proj", Permute(heads)), (TensorNames.AttnK, "k_proj", Permute(kvHeads)), (TensorNames.AttnV, "v_proj", null) })
                if (ck.HasTensor(p + $"self_attn.{hf}.bias"))
                    plan.Add(TensorNames.Bias(l, g), p + $"self_attn.{hf}.bias", rows);
            if (c.QkNorm)
            {
                plan.Add(W(TensorNames.AttnQNorm), p + "self_attn.q_norm.weight");
                plan.Add(W(TensorNames.AttnKNorm), p + "self_attn.k_norm.weight");
            }
            plan.Add(W(TensorNames.AttnOutput), p + "self_attn.o_proj.weight");
            plan.Add(W(TensorNames.FfnNorm), p + "post_attention_layernorm.weight");
            if (experts > 0)
            {
                plan.Add(W(TensorNames.FfnGateInp), p + "mlp.gate.weight");
                AddStackedExperts(plan, l, p + "mlp.experts.{0}.", experts);
                continue;
            }
            AddSwiGlu(plan, l, p + "mlp.");
        }
    }

    /// <summary>A SwiGLU's gate_proj / up_proj / down_proj under <paramref name="prefix"/> as ffn_gate / ffn_up / ffn_down.</summary>
    public static void AddSwiGlu(HfTensorPlan plan, int layer, string prefix)
    {
        plan.Add(TensorNames.Weight(layer, TensorNames.FfnGate), prefix + "gate_proj.weight");
        plan.Add(TensorNames.Weight(layer, TensorNames.FfnUp), prefix + "up_proj.weight");
        plan.Add(TensorNames.Weight(layer, TensorNames.FfnDown), prefix + "down_proj.weight");
    }

    /// <summary>Each expert's gate/up/down under <paramref name="expertPrefix"/> ("…experts.{0}.") stacked as ffn_*_exps.</summary>
    public static void AddStackedExperts(HfTensorPlan plan, int layer, string expertPrefix, int experts)
    {
        foreach (var (g, hf) in new[] { (TensorNames.FfnGateExps, "gate_proj"), (TensorNames.FfnUpExps, "up_proj"), (TensorNames.FfnDownExps, "down_proj") })
            plan.AddStackedExperts(TensorNames.Weight(layer, g), expertPrefix + hf + ".weight", experts);
    }

    /// <summary>Llama 3's rope_scaling (rope_type "llama3") becomes a rope_freqs tensor of per-pair divisors, as llama.cpp generates it.</summary>
    public static void AddLlama3RopeFreqs(HfTensorPlan plan, int headDim)
    {
        var ck = plan.Checkpoint;
        if (ck.RopeScaling() is not { } rs || HfCheckpoint.RopeScalingType(rs) != "llama3") return;
        float Get(string k, float d) => HfCheckpoint.Number(rs, k, d);
        float factor = Get("factor", 8f), low = Get("low_freq_factor", 1f), high = Get("high_freq_factor", 4f), old = Get("original_max_position_embeddings", 8192f);
        float theta = ck.Float("rope_theta", 10000f);
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
        plan.AddValues(TensorNames.Weight(TensorNames.RopeFreqs), factors);
    }

}
