using System.Text.Json;
using Sputnik.Models;
using Sputnik.Tensors;

namespace Sputnik.Conversion;

// Phi3ForCausalLM (Phi-3/3.5-mini, Phi-4-mini, Phi-4-mini-reasoning) as llama.cpp's Phi3MiniModel converts it.
internal sealed partial class HfConverter
{
    /// <summary>
    /// The phi3 keys and tensors: qkv_proj and gate_up_proj stay fused (attn_qkv, ffn_up); RoPE covers
    /// int(partial_rotary_factor · hidden) / heads dims; rope_scaling "longrope" (or the older "su") becomes the
    /// rope_factors_long/short tensors plus rope.scaling.attn_factor √(1 + ln s / ln L₀), "yarn" the factor 1 + 0.1·ln s,
    /// where s = max_position_embeddings / original_max_position_embeddings.
    /// </summary>
    private void PlanPhi3(int layers, int heads, int dim)
    {
        string a = Arch;
        var w = Writer;
        int kvHeads = Int("num_key_value_heads", heads), context = Int("max_position_embeddings", 4096);
        JsonElement scaling = _cfg.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object ? rs : default;
        float Param(string key, float fallback) =>
            scaling.ValueKind == JsonValueKind.Object && scaling.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : Float(key, fallback);
        int original = (int)Param("original_max_position_embeddings", context);
        float partial = Param("partial_rotary_factor", 1f);
        if (!(partial > 0 && partial <= 1)) throw new InvalidDataException($"config.json: partial_rotary_factor {partial} must be in (0, 1]");
        int ropeDims = Phi3.RopeDims(partial, dim, heads);
        if (dim % heads != 0 || ropeDims < 2 || ropeDims % 2 != 0)
            throw new InvalidDataException($"config.json: {heads} heads over hidden_size {dim} with partial_rotary_factor {partial} give no even RoPE width");
        w.Set($"{a}.attention.head_count_kv", (uint)kvHeads);
        w.Set($"{a}.rope.dimension_count", (uint)ropeDims);

        float? attnFactor = null;
        if (scaling.ValueKind == JsonValueKind.Object && scaling.TryGetProperty("long_factor", out var longJson))
        {
            string type = (scaling.TryGetProperty("rope_type", out var t) || scaling.TryGetProperty("type", out t) ? t.GetString() ?? "" : "").ToLowerInvariant();
            double scale = (double)context / original;
            attnFactor = type switch
            {
                "longrope" or "su" => Phi3.LongRopeAttnFactor(context, original),
                "yarn" => scale > 1 ? (float)(0.1 * Math.Log(scale) + 1) : 1f,
                "" => throw new InvalidDataException("config.json: rope_scaling has long_factor but no type"),
                _ => throw new UnsupportedModelException($"config.json: rope_scaling type '{type}' is not supported for phi3 (longrope, su, yarn)"),
            };
            var longFactors = Factors(longJson, "long_factor", ropeDims / 2);
            var shortFactors = Factors(scaling.TryGetProperty("short_factor", out var s) ? s : default, "short_factor", ropeDims / 2);
            _plan.Add(new Planned(Phi3.RopeFactorsLong + ".weight", [longFactors.Length], GgmlType.F32, (_, dst) => longFactors.CopyTo(dst, 0)));
            _plan.Add(new Planned(Phi3.RopeFactorsShort + ".weight", [shortFactors.Length], GgmlType.F32, (_, dst) => shortFactors.CopyTo(dst, 0)));
        }
        // llama.cpp's converter writes 0 for a missing sliding_window; its loader ignores the key for phi3 either way.
        Phi3.WriteKeys(w, original, attnFactor, _cfg.TryGetProperty("sliding_window", out var sw) && sw.ValueKind == JsonValueKind.Number ? sw.GetInt32() : 0);

        for (int l = 0; l < layers; l++)
        {
            string p = $"model.layers.{l}.";
            Add(TensorNames.Weight(l, TensorNames.AttnNorm), p + "input_layernorm.weight");
            Add(TensorNames.Weight(l, Phi3.AttnQkv), p + "self_attn.qkv_proj.weight", null, l);
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
