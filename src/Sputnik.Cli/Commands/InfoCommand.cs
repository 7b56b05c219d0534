using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tokenizers;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik info MODEL [--json]` — what a GGUF file holds.</summary>
internal static class InfoCommand
{
    public static Command Create()
    {
        var path = new Argument<string>("MODEL") { Description = "Path to a GGUF file (of a split model: any of its shards)" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("info", "Show architecture, parameters, tensor types, context and tokenizer of a model") { path, json };
        cmd.SetAction(r => Run(CliOptions.ResolveModel(r.GetValue(path)), r.GetValue(json)));
        return cmd;
    }

    private static int Run(string path, bool asJson)
    {
        using var file = GgufFile.Open(path);
        Print(Describe(file), asJson);
        return 0;
    }

    /// <summary>The description as indented JSON, or as one "key value" line per field.</summary>
    internal static void Print(JsonObject info, bool asJson)
    {
        if (asJson)
        {
            Console.WriteLine(info.ToJsonString(JsonOutput.Indented));
            return;
        }
        foreach (var (key, value) in info)
        {
            string text = value switch
            {
                JsonObject o => string.Join(", ", o.Select(kv => $"{kv.Key} {kv.Value}")),
                null => "-",
                _ => value.ToString(),
            };
            // Strings come from the file: general.name could hold escape sequences that rewrite the terminal.
            Console.WriteLine($"{key,-22} {DisplayText.Safe(text)}");
        }
    }

    internal static JsonObject Describe(GgufFile file)
    {
        string arch = file.Architecture ?? "unknown";
        var types = new JsonObject();
        foreach (var g in file.Tensors.GroupBy(t => t.Type).OrderByDescending(g => g.Count()))
            types[g.Key.ToString()] = g.Count();
        var o = new JsonObject
        {
            ["path"] = file.Path,
            ["gguf_version"] = file.Version,
            ["file_bytes"] = file.TotalFileSize,
            ["split_count"] = file.SplitCount,
            ["architecture"] = arch,
            ["name"] = file.GetStringOrNull(GgufKeys.GeneralName),
            ["supported"] = ModelLoader.SupportedArchitectures.Contains(arch),
            ["parameters"] = file.Tensors.Sum(t => t.ElementCount),
            ["tensor_count"] = file.Tensors.Count,
            ["tensor_types"] = types,
            ["context_length"] = file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.ContextLength), out long ctx) ? ctx : null,
            ["embedding_length"] = file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.EmbeddingLength), out long e) ? e : null,
            ["block_count"] = file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.BlockCount), out long b) ? b : null,
            ["head_count"] = file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.HeadCount), out long h) ? h : null,
            ["head_count_kv"] = file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.HeadCountKv), out long hkv) ? hkv : null,
            ["tokenizer"] = file.GetStringOrNull(GgufKeys.TokenizerModel),
            ["tokenizer_pre"] = file.GetStringOrNull(GgufKeys.TokenizerPre),
            ["vocab_size"] = file.TryGetStringArray(GgufKeys.TokenizerTokens, out var toks) ? toks!.Length : null,
            ["chat_template"] = file.GetStringOrNull(GgufKeys.ChatTemplate) != null,
            ["kv_bytes_per_token"] = KvBytesPerToken(file, arch),
        };
        AddHyperParameters(o, file, arch);
        return o;
    }

    /// <summary>
    /// The hyper-parameters that tell architectures of one family apart, when the file states them: head size
    /// (Qwen3's 128 whatever the width), FFN and expert sizes, RoPE base and width, per-head Q/K norms, LongRoPE.
    /// </summary>
    private static void AddHyperParameters(JsonObject o, GgufFile file, string arch)
    {
        void Int(string name, string key)
        {
            if (file.TryGetInt64(GgufKeys.Of(arch, key), out long v)) o[name] = v;
        }
        Int("head_size", GgufKeys.KeyLength);
        Int("feed_forward_length", GgufKeys.FeedForwardLength);
        Int("expert_count", GgufKeys.ExpertCount);
        Int("expert_used_count", GgufKeys.ExpertUsedCount);
        Int("expert_ffn_length", GgufKeys.ExpertFeedForwardLength);
        if (file.TryGetFloat(GgufKeys.Of(arch, GgufKeys.RopeFreqBase), out float ropeBase)) o["rope_freq_base"] = ropeBase;
        if (file.TryGetFloat(GgufKeys.Of(arch, GgufKeys.LayerNormRmsEps), out float eps)) o["rms_epsilon"] = eps;
        if (file.FindTensor(TensorNames.Weight(0, TensorNames.AttnQNorm)) != null) o["qk_norm"] = true;
        // Context extension and the architecture-specific attention settings (mistral3's temperature).
        if (file.GetStringOrNull(GgufKeys.Of(arch, GgufKeys.RopeScalingType)) is { } scaling) o["rope_scaling"] = scaling;
        if (file.TryGetFloat(GgufKeys.Of(arch, GgufKeys.RopeScalingFactor), out float factor)) o["rope_scaling_factor"] = factor;
        Int("rope_original_context", GgufKeys.RopeScalingOriginalContextLength);
        if (file.TryGetFloat(GgufKeys.Of(arch, GgufKeys.RopeScalingYarnLogMultiplier), out float logMul)) o["yarn_log_multiplier"] = logMul;
        if (file.TryGetFloat(GgufKeys.Of(arch, GgufKeys.AttentionTemperatureScale), out float temp)) o["attention_temperature_scale"] = temp;
        // Partial RoPE and LongRoPE (phi3): rotated dims per head, the attention factor, the factor tensors; fused Q/K/V.
        Int("rope_dimension_count", GgufKeys.RopeDimensionCount);
        if (file.TryGetFloat(GgufKeys.Of(arch, GgufKeys.RopeScalingAttnFactor), out float attnFactor)) o["rope_attn_factor"] = attnFactor;
        if (file.FindTensor(TensorNames.Weight(TensorNames.RopeFactorsLong)) != null) o["rope_factors"] = "long/short (LongRoPE)";
        if (file.FindTensor(TensorNames.Weight(0, TensorNames.AttnQkv)) != null) o["fused_qkv"] = true;
        // What only one architecture has (smollm3's NoPE layers, gemma3's local layers), from its registry entry.
        ModelLoader.Find(arch)?.DescribeInfo?.Invoke(file, o);
        if (file.TryGetFloat(GgufKeys.Of(arch, GgufKeys.FinalLogitSoftcapping), out float softcap)) o["final_logit_softcapping"] = softcap;
    }

    /// <summary>
    /// KV-cache bytes per token at F16, from metadata: 2·layers·kv_heads·head_dim·2 for llama-family attention;
    /// layers·(kv_lora_rank + rope_dim)·2 for deepseek2's compressed latent cache. Null when the keys are missing.
    /// </summary>
    internal static long? KvBytesPerToken(GgufFile file, string arch)
    {
        if (!file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.BlockCount), out long layers)) return null;
        if (arch == DeepSeek2Config.Arch)
        {
            if (!file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.KvLoraRank), out long rank) || !file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.RopeDimensionCount), out long rope))
                return null;
            return layers * (rank + rope) * 2;
        }
        if (!file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.HeadCount), out long heads)) return null;
        long kvHeads = file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.HeadCountKv), out long hkv) ? hkv : heads;
        long headDim = file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.KeyLength), out long kl) ? kl
            : file.TryGetInt64(GgufKeys.Of(arch, GgufKeys.EmbeddingLength), out long e) && heads > 0 ? e / heads : 0;
        return headDim == 0 ? null : 2 * layers * kvHeads * headDim * 2;
    }
}
