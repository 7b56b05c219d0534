using System.Text.Json;
using Sputnik.Models;
using Sputnik.Tensors;

namespace Sputnik.Conversion;

// Phi3ForCausalLM (Phi-3/3.5-mini, Phi-4-mini, Phi-4-mini-reasoning) as llama.cpp's Phi3MiniModel converts it.
internal sealed partial class HfConverter
{
    /// <summary>
    /// A Phi3ForCausalLM config.json as <see cref="ModelConfig"/> with <see cref="Phi3.Params"/>: RoPE covers
    /// int(partial_rotary_factor · hidden) / heads dims; rope_scaling "longrope" (or the older "su") gives
    /// rope.scaling.attn_factor √(1 + ln s / ln L₀), "yarn" 1 + 0.1·ln s, where s = max_position_embeddings /
    /// original_max_position_embeddings (the factors themselves are tensors, <see cref="PlanPhi3"/>).
    /// </summary>
    private ModelConfig Phi3FromHf()
    {
        int heads = Int("num_attention_heads"), dim = Int("hidden_size"), context = Int("max_position_embeddings", 4096);
        var scaling = Phi3Scaling();
        float Param(string key, float fallback) =>
            scaling is { } rs && rs.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : Float(key, fallback);
        int original = (int)Param("original_max_position_embeddings", context);
        float partial = Param("partial_rotary_factor", 1f);
        if (!(partial > 0 && partial <= 1)) throw new InvalidDataException($"config.json: partial_rotary_factor {partial} must be in (0, 1]");
        int ropeDims = Phi3.RopeDims(partial, dim, heads);
        if (dim % heads != 0 || ropeDims < 2 || ropeDims % 2 != 0)
            throw new InvalidDataException($"config.json: {heads} heads over hidden_size {dim} with partial_rotary_factor {partial} give no even RoPE width");
        if (original < 1 || original > context)
            throw new InvalidDataException($"config.json: original_max_position_embeddings {original} must be in 1..max_position_embeddings {context}");

        float? attnFactor = null;
        if (scaling is { } longRope && longRope.TryGetProperty("long_factor", out _))
        {
            string type = RopeScalingType(longRope).ToLowerInvariant();
            double scale = (double)context / original;
            attnFactor = type switch
            {
                "longrope" or "su" => Phi3.LongRopeAttnFactor(context, original),
                "yarn" => scale > 1 ? (float)(0.1 * Math.Log(scale) + 1) : 1f,
                "" => throw new InvalidDataException("config.json: rope_scaling has long_factor but no type"),
                _ => throw new UnsupportedModelException($"config.json: rope_scaling type '{type}' is not supported for phi3 (longrope, su, yarn)"),
            };
        }
        // llama.cpp's converter writes 0 for a missing sliding_window; its loader ignores the key for phi3 either way.
        int window = _cfg.TryGetProperty("sliding_window", out var sw) && sw.ValueKind == JsonValueKind.Number && sw.TryGetInt32(out int n) && n > 0 ? n : 0;
        return ModelConfig.Create(Arch, dim, Int("num_hidden_layers"), Int("intermediate_size"), heads, Int("num_key_value_heads", heads),
            Int("vocab_size"), context, RopeTheta(), Float("rms_norm_eps", 1e-5f), ropeNeox: Phi3.Info.RopeNeox) with
        {
            RopeDims = ropeDims, RopeOriginalContext = original, ArchParams = new Phi3.Params(attnFactor, window),
        };
    }

    /// <summary>rope_scaling when it is an object (phi3 configs have no rope_parameters).</summary>
    private JsonElement? Phi3Scaling() =>
        _cfg.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object ? rs : null;

    /// <summary>
    /// The phi3 tensors, as llama.cpp's Phi3MiniModel converts them: qkv_proj and gate_up_proj stay fused (attn_qkv,
    /// ffn_up), and rope_scaling's long/short factor lists become rope_factors_long/short.
    /// </summary>
    private void PlanPhi3(ModelConfig c)
    {
        if (Phi3Scaling() is { } scaling && scaling.TryGetProperty("long_factor", out var longJson))
        {
            var longFactors = Factors(longJson, "long_factor", c.RopeDims / 2);
            var shortFactors = Factors(scaling.TryGetProperty("short_factor", out var s) ? s : default, "short_factor", c.RopeDims / 2);
            _plan.Add(new Planned(TensorNames.Weight(TensorNames.RopeFactorsLong), [longFactors.Length], GgmlType.F32, (_, dst) => longFactors.CopyTo(dst, 0)));
            _plan.Add(new Planned(TensorNames.Weight(TensorNames.RopeFactorsShort), [shortFactors.Length], GgmlType.F32, (_, dst) => shortFactors.CopyTo(dst, 0)));
        }
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(TensorNames.Weight(l, TensorNames.AttnNorm), p + "input_layernorm.weight");
            Add(TensorNames.Weight(l, TensorNames.AttnQkv), p + "self_attn.qkv_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.AttnOutput), p + "self_attn.o_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.FfnNorm), p + "post_attention_layernorm.weight");
            Add(TensorNames.Weight(l, TensorNames.FfnUp), p + "mlp.gate_up_proj.weight", null, l);
            Add(TensorNames.Weight(l, TensorNames.FfnDown), p + "mlp.down_proj.weight", null, l);
        }
    }

    /// <summary>A rope_scaling factor list: exactly <paramref name="pairs"/> positive numbers.</summary>
    private static float[] Factors(JsonElement list, string key, int pairs)
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
}
