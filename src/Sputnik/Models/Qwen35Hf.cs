using System.Text.Json;
using Sputnik.Conversion;

namespace Sputnik.Models;

/// <summary>
/// `convert` for Qwen3.5 checkpoints (Qwen3_5ForCausalLM / Qwen3_5MoeForCausalLM, and their ForConditionalGeneration
/// text part), as llama.cpp's Qwen3_5TextModel / Qwen3_5MoeTextModel (conversion/qwen.py) writes them:
/// - the zero-centred RMSNorm weights (input, post-attention, final, Q/K norms) are stored as 1 + w; the DeltaNet's
///   gated norm (linear_attn.norm) is not;
/// - A_log becomes ssm_a = −exp(A_log), dt_bias ssm_dt.bias, the [channels, 1, taps] conv1d [channels, taps];
/// - with fewer key than value heads, the value heads of in_proj_qkv's V rows, in_proj_z, in_proj_a/b, A_log,
///   dt_bias, conv1d's V channels and out_proj's columns go from HF's grouped order (per key head, its value heads)
///   to the tiled order ggml broadcasts in (value head h reads key head h mod key heads);
/// - MTP layers (mtp.*) are left out, so the file has no nextn_predict_layers (llama.cpp keeps them unless --no-mtp).
/// </summary>
internal static class Qwen35Hf
{
    public static HfConversion Conversion { get; } = HfConversion.Of<ModelConfig>(ReadConfig, PlanTensors);

    private static ModelConfig ReadConfig(HfCheckpoint ck)
    {
        string arch = ck.Architecture.Name;
        int heads = ck.Int("num_attention_heads"), dim = ck.Int("hidden_size"), layers = ck.Int("num_hidden_layers");
        int headDim = ck.Int("head_dim", dim / heads);
        var rp = ck.RopeScaling();
        float partial = rp is { } r0 ? HfCheckpoint.Number(r0, "partial_rotary_factor", ck.Float("partial_rotary_factor", 0.25f)) : ck.Float("partial_rotary_factor", 0.25f);
        int keyHeads = ck.Int("linear_num_key_heads"), valueHeads = ck.Int("linear_num_value_heads");
        int keySize = ck.Int("linear_key_head_dim"), valueSize = ck.Int("linear_value_head_dim");
        if (keySize != valueSize)
            throw new UnsupportedModelException($"config.json: linear_key_head_dim {keySize} ≠ linear_value_head_dim {valueSize} (qwen35 here needs one head size)");
        if (keyHeads < 1 || valueHeads % keyHeads != 0)
            throw new InvalidDataException($"config.json: linear_num_value_heads {valueHeads} is not a multiple of linear_num_key_heads {keyHeads}");

        bool[] recurrent;
        if (ck.TryGet("layer_types", out var types) && types.ValueKind == JsonValueKind.Array)
        {
            if (types.GetArrayLength() != layers)
                throw new InvalidDataException($"config.json: layer_types has {types.GetArrayLength()} entries, expected num_hidden_layers ({layers})");
            recurrent = types.EnumerateArray().Select(t => t.GetString() == "linear_attention").ToArray();
        }
        else recurrent = Qwen35.Params.Pattern(layers, ck.Int("full_attention_interval", Qwen35.Params.DefaultInterval));

        // M-RoPE sections from rope_parameters (rope_scaling), else Qwen3.5's default, as _Qwen35MRopeMixin writes them.
        int[] sections = [11, 11, 10, 0];
        if (rp is { } r1 && r1.TryGetProperty("mrope_section", out var ms) && ms.ValueKind == JsonValueKind.Array)
        {
            var given = ms.EnumerateArray().Select(e => e.GetInt32()).ToArray();
            if (given.Length is < 3 or > 4) throw new InvalidDataException($"config.json: mrope_section has {given.Length} entries; expected 3 or 4");
            sections = [.. given, .. new int[4 - given.Length]];
        }

        int experts = ck.OptionalInt("num_experts") ?? 0;
        int ffn = experts > 0 ? ck.Int("moe_intermediate_size") : ck.Int("intermediate_size");
        var c = ModelConfig.Create(arch, dim, layers, ffn, heads, ck.Int("num_key_value_heads", heads), ck.Int("vocab_size"),
            ck.Int("max_position_embeddings", 4096), ck.RopeTheta(), ck.Float("rms_norm_eps", 1e-6f), ropeNeox: true, headDim) with
        {
            QkNorm = true, RopeDims = (int)(headDim * partial),
        };
        int shared = 0;
        if (experts > 0)
        {
            int used = ck.Int("num_experts_per_tok");
            if (used < 1 || used > experts) throw new InvalidDataException($"config.json: num_experts_per_tok {used} must be in 1..num_experts {experts}");
            shared = ck.Int("shared_expert_intermediate_size");
            c = c with { Moe = Qwen3Moe.Routing with { ExpertCount = experts, ExpertsUsed = used }, ExpertFfnDim = ffn };
        }
        return c with
        {
            ArchParams = new Qwen35.Params(ck.Int("linear_conv_kernel_dim"), valueSize * valueHeads, keySize, valueHeads, keyHeads, recurrent, sections,
                SharedExpertFfn: shared),
        };
    }

    private static void PlanTensors(HfTensorPlan plan, ModelConfig c)
    {
        var ck = plan.Checkpoint;
        var p = (Qwen35.Params)c.ArchParams!;
        // A ForConditionalGeneration checkpoint keeps the language model under model.language_model.
        string root = ck.HasTensor("model.language_model.embed_tokens.weight") ? "model.language_model." : "model.";
        plan.Add(TensorNames.Weight(TensorNames.TokenEmbd), root + "embed_tokens.weight");
        int perKey = p.ValueHeads / p.KeyHeads, hs = p.HeadSize;
        // Grouped → tiled value heads: output row (j·K + k)·size + d comes from input row (k·perKey + j)·size + d.
        int Tiled(int r, int size)
        {
            int d = r % size, head = r / size, j = head / p.KeyHeads, k = head % p.KeyHeads;
            return (k * perKey + j) * size + d;
        }
        for (int l = 0; l < c.Layers; l++)
        {
            string pre = $"{root}layers.{l}.";
            string W(string name) => TensorNames.Weight(l, name);
            plan.Add(W(TensorNames.AttnNorm), pre + "input_layernorm.weight", shift: 1f);
            plan.Add(W(TensorNames.AttnPostNorm), pre + "post_attention_layernorm.weight", shift: 1f);
            if (p.Recurrent[l])
            {
                string la = pre + "linear_attn.";
                int vStart = 2 * p.KeyDim;
                plan.Add(W(TensorNames.AttnQkv), la + "in_proj_qkv.weight", r => r < vStart ? r : vStart + Tiled(r - vStart, hs));
                plan.Add(W(TensorNames.AttnGate), la + "in_proj_z.weight", r => Tiled(r, hs));
                var conv = ck.Tensor(la + "conv1d.weight");
                if (conv.Shape.Length != 3 || conv.Shape[0] != p.ConvDim || conv.Shape[1] != 1 || conv.Shape[2] != p.ConvKernel)
                    throw new InvalidDataException($"tensor '{la}conv1d.weight' has shape [{string.Join(", ", conv.Shape)}], expected [{p.ConvDim}, 1, {p.ConvKernel}]");
                plan.AddRows(W(TensorNames.SsmConv1d), [p.ConvKernel, p.ConvDim],
                    (r, dst) => conv.File.Read(conv, (long)(r < vStart ? r : vStart + Tiled(r - vStart, hs)) * p.ConvKernel, dst.AsSpan(0, p.ConvKernel)));
                AddHeadVector(plan, TensorNames.Bias(l, TensorNames.SsmDt), la + "dt_bias", p, negExp: false);
                AddHeadVector(plan, TensorNames.Bare(l, TensorNames.SsmA), la + "A_log", p, negExp: true);
                plan.Add(W(TensorNames.SsmBeta), la + "in_proj_b.weight", r => Tiled(r, 1));
                plan.Add(W(TensorNames.SsmAlpha), la + "in_proj_a.weight", r => Tiled(r, 1));
                plan.Add(W(TensorNames.SsmNorm), la + "norm.weight");
                var outProj = ck.Tensor(la + "out_proj.weight");
                if (outProj.Shape.Length != 2 || outProj.Shape[1] != p.ValueDim)
                    throw new InvalidDataException($"tensor '{la}out_proj.weight' has shape [{string.Join(", ", outProj.Shape)}], expected [{c.Dim}, {p.ValueDim}]");
                var source = new float[p.ValueDim];
                plan.AddRows(W(TensorNames.SsmOut), [p.ValueDim, outProj.Shape[0]], (r, dst) =>
                {
                    // Columns are value channels: the same grouped → tiled permutation, along the row.
                    outProj.File.Read(outProj, (long)r * p.ValueDim, source);
                    for (int col = 0; col < p.ValueDim; col++) dst[col] = source[Tiled(col, hs)];
                });
            }
            else
            {
                string sa = pre + "self_attn.";
                plan.Add(W(TensorNames.AttnQ), sa + "q_proj.weight");
                plan.Add(W(TensorNames.AttnK), sa + "k_proj.weight");
                plan.Add(W(TensorNames.AttnV), sa + "v_proj.weight");
                plan.Add(W(TensorNames.AttnOutput), sa + "o_proj.weight");
                plan.Add(W(TensorNames.AttnQNorm), sa + "q_norm.weight", shift: 1f);
                plan.Add(W(TensorNames.AttnKNorm), sa + "k_norm.weight", shift: 1f);
            }
            if (c.Moe is { } moe)
            {
                string mlp = pre + "mlp.";
                plan.Add(W(TensorNames.FfnGateInp), mlp + "gate.weight");
                LlamaHf.AddStackedExperts(plan, l, mlp + "experts.{0}.", moe.ExpertCount);
                var gate = ck.Tensor(mlp + "shared_expert_gate.weight"); // [1, dim]: one logit per token
                plan.AddRows(W(TensorNames.FfnGateInpShexp), [c.Dim], (_, dst) => gate.File.Read(gate, 0, dst.AsSpan(0, c.Dim)));
                plan.Add(W(TensorNames.FfnGateShexp), mlp + "shared_expert.gate_proj.weight");
                plan.Add(W(TensorNames.FfnUpShexp), mlp + "shared_expert.up_proj.weight");
                plan.Add(W(TensorNames.FfnDownShexp), mlp + "shared_expert.down_proj.weight");
                continue;
            }
            LlamaHf.AddSwiGlu(plan, l, pre + "mlp.");
        }
        plan.Add(TensorNames.Weight(TensorNames.OutputNorm), root + "norm.weight", shift: 1f);
        if (!ck.Bool("tie_word_embeddings") && ck.HasTensor("lm_head.weight"))
            plan.Add(TensorNames.Weight(TensorNames.Output), "lm_head.weight");
    }

    /// <summary>A per-value-head vector (dt_bias, A_log) in tiled order; A_log as −exp(A_log).</summary>
    private static void AddHeadVector(HfTensorPlan plan, string name, string hfName, Qwen35.Params p, bool negExp)
    {
        var t = plan.Checkpoint.Tensor(hfName);
        if (t.Shape.Length != 1 || t.Shape[0] != p.ValueHeads)
            throw new InvalidDataException($"tensor '{hfName}' has shape [{string.Join(", ", t.Shape)}], expected [{p.ValueHeads}]");
        var values = new float[p.ValueHeads];
        t.File.Read(t, 0, values);
        int perKey = p.ValueHeads / p.KeyHeads;
        var tiled = new float[p.ValueHeads];
        for (int h = 0; h < tiled.Length; h++)
        {
            float v = values[(h % p.KeyHeads) * perKey + h / p.KeyHeads];
            tiled[h] = negExp ? -MathF.Exp(v) : v;
        }
        plan.AddValues(name, tiled);
    }
}
