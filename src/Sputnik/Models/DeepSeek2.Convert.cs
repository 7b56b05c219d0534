using Sputnik.Conversion;

namespace Sputnik.Models;

// `sputnik convert` for DeepseekV2/V3ForCausalLM, as llama.cpp's DeepseekV2Model converter reads them.
internal sealed partial class DeepSeek2
{
    private static HfConversion HfConvert => HfConversion.Of<DeepSeek2Config>(ConfigFromHf, PlanHfTensors);

    /// <summary>A DeepseekV2/V3 config.json as <see cref="DeepSeek2Config"/>.</summary>
    private static DeepSeek2Config ConfigFromHf(HfCheckpoint ck)
    {
        int layers = ck.Int("num_hidden_layers");
        int experts = ck.OptionalInt("n_routed_experts") ?? 0;
        string scoring = ck.TryGet("scoring_func", out var sf) ? sf.GetString() ?? "softmax" : "softmax";
        var c = new DeepSeek2Config
        {
            Dim = ck.Int("hidden_size"), Layers = layers, Heads = ck.Int("num_attention_heads"), VocabSize = ck.Int("vocab_size"),
            ContextLength = ck.Int("max_position_embeddings", 4096), RmsEps = ck.Float("rms_norm_eps", 1e-6f),
            QLoraRank = ck.OptionalInt("q_lora_rank") ?? 0, KvLoraRank = ck.Int("kv_lora_rank", 512),
            QkNopeDim = ck.Int("qk_nope_head_dim"), QkRopeDim = ck.Int("qk_rope_head_dim"), VHeadDim = ck.Int("v_head_dim"),
            FfnDim = ck.Int("intermediate_size"), LeadingDenseLayers = ck.Int("first_k_dense_replace", experts > 0 ? 0 : layers),
            ExpertCount = experts, ExpertsUsed = experts > 0 ? ck.Int("num_experts_per_tok") : 0, SharedExperts = ck.Int("n_shared_experts", 0),
            ExpertFfnDim = ck.Int("moe_intermediate_size", ck.Int("intermediate_size")),
            ExpertWeightsScale = ck.Float("routed_scaling_factor", 1f), ExpertWeightsNorm = ck.Bool("norm_topk_prob"),
            Gating = scoring switch
            {
                "softmax" => ExpertGating.Softmax,
                "sigmoid" => ExpertGating.Sigmoid,
                _ => throw new UnsupportedModelException($"config.json: scoring_func '{scoring}' is not supported"),
            },
            ExpertGroups = ck.OptionalInt("n_group") ?? 1, ExpertGroupsUsed = ck.OptionalInt("topk_group") ?? 1,
            RopeBase = ck.Float("rope_theta", 10000f),
        };
        c = c with { RopeOriginalContext = c.ContextLength };
        if (ck.RopeScaling() is { } rs && HfCheckpoint.RopeScalingType(rs) == "yarn")
        {
            float Get(string k, float d) => HfCheckpoint.Number(rs, k, d);
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

    /// <summary>
    /// MLA (q-LoRA or a plain q_proj; kv_b split into attn_k_b / attn_v_b) and DeepSeekMoE (router, selection bias,
    /// stacked routed experts, shared experts) on the leading-dense-then-MoE layer pattern.
    /// </summary>
    private static void PlanHfTensors(HfTensorPlan plan, DeepSeek2Config c)
    {
        var ck = plan.Checkpoint;
        plan.AddEmbeddingsAndHead();
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            string W(string name) => TensorNames.Weight(l, name);
            plan.Add(W(TensorNames.AttnNorm), p + "input_layernorm.weight");
            if (c.QLoraRank > 0)
            {
                plan.Add(W(TensorNames.AttnQA), p + "self_attn.q_a_proj.weight");
                plan.Add(W(TensorNames.AttnQANorm), p + "self_attn.q_a_layernorm.weight");
                plan.Add(W(TensorNames.AttnQB), p + "self_attn.q_b_proj.weight");
            }
            else
            {
                plan.Add(W(TensorNames.AttnQ), p + "self_attn.q_proj.weight");
            }
            plan.Add(W(TensorNames.AttnKvAMqa), p + "self_attn.kv_a_proj_with_mqa.weight");
            plan.Add(W(TensorNames.AttnKvANorm), p + "self_attn.kv_a_layernorm.weight");
            AddKvBSplit(plan, l, p + "self_attn.kv_b_proj.weight", c.Heads, c.QkNopeDim, c.VHeadDim, c.KvLoraRank);
            plan.Add(W(TensorNames.AttnOutput), p + "self_attn.o_proj.weight");
            plan.Add(W(TensorNames.FfnNorm), p + "post_attention_layernorm.weight");
            if (!c.IsMoeLayer(l))
            {
                LlamaHf.AddSwiGlu(plan, l, p + "mlp.");
                continue;
            }
            plan.Add(W(TensorNames.FfnGateInp), p + "mlp.gate.weight");
            if (ck.HasTensor(p + "mlp.gate.e_score_correction_bias"))
                plan.Add(TensorNames.Bias(l, TensorNames.ExpProbsB), p + "mlp.gate.e_score_correction_bias");
            LlamaHf.AddStackedExperts(plan, l, p + "mlp.experts.{0}.", c.ExpertCount);
            if (ck.HasTensor(p + "mlp.shared_experts.gate_proj.weight"))
            {
                plan.Add(W(TensorNames.FfnGateShexp), p + "mlp.shared_experts.gate_proj.weight");
                plan.Add(W(TensorNames.FfnUpShexp), p + "mlp.shared_experts.up_proj.weight");
                plan.Add(W(TensorNames.FfnDownShexp), p + "mlp.shared_experts.down_proj.weight");
            }
        }
    }

    /// <summary>
    /// llama.cpp's MLA split of kv_b [heads·(nope+v), rank]: attn_k_b = the key half transposed per head, ggml dims
    /// [nope, rank, heads]; attn_v_b = the value half, ggml dims [rank, v, heads].
    /// </summary>
    private static void AddKvBSplit(HfTensorPlan plan, int layer, string hfName, int heads, int nope, int v, int rank)
    {
        var t = plan.Checkpoint.Tensor(hfName);
        if (t.Shape.Length != 2 || t.Shape[0] != heads * (nope + v) || t.Shape[1] != rank)
            throw new InvalidDataException($"tensor '{hfName}' has shape [{string.Join(", ", t.Shape)}], expected [{heads * (nope + v)}, {rank}]");
        float[]? whole = null;
        plan.AddRows(TensorNames.Weight(layer, TensorNames.AttnKB), [nope, rank, heads], (r, dst) =>
        {
            // Gathering a column needs the whole (small) matrix; load it once, drop it after the last row.
            if (whole == null) { whole = new float[t.ElementCount]; t.File.Read(t, 0, whole); }
            int h = r / rank, c = r % rank;
            for (int d = 0; d < nope; d++) dst[d] = whole[(long)(h * (nope + v) + d) * rank + c];
            if (r == heads * rank - 1) whole = null;
        });
        plan.AddRows(TensorNames.Weight(layer, TensorNames.AttnVB), [rank, v, heads], (r, dst) =>
            t.File.Read(t, (long)((r / v) * (nope + v) + nope + r % v) * rank, dst));
    }
}
