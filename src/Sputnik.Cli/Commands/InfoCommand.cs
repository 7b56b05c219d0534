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
        var path = new Argument<string>("MODEL") { Description = "Path to a GGUF file" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var cmd = new Command("info", "Show architecture, parameters, tensor types, context and tokenizer of a model") { path, json };
        cmd.SetAction(r => Run(r.GetValue(path)!, r.GetValue(json)));
        return cmd;
    }

    private static int Run(string path, bool asJson)
    {
        using var file = GgufFile.Open(path);
        var info = Describe(file);
        if (asJson)
        {
            Console.WriteLine(info.ToJsonString(JsonOutput.Indented));
            return 0;
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
        return 0;
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
            ["file_bytes"] = file.FileSize,
            ["architecture"] = arch,
            ["name"] = file.GetStringOrNull("general.name"),
            ["supported"] = ModelLoader.SupportedArchitectures.Contains(arch),
            ["parameters"] = file.Tensors.Sum(t => t.ElementCount),
            ["tensor_count"] = file.Tensors.Count,
            ["tensor_types"] = types,
            ["context_length"] = file.TryGetInt64($"{arch}.context_length", out long ctx) ? ctx : null,
            ["embedding_length"] = file.TryGetInt64($"{arch}.embedding_length", out long e) ? e : null,
            ["block_count"] = file.TryGetInt64($"{arch}.block_count", out long b) ? b : null,
            ["head_count"] = file.TryGetInt64($"{arch}.attention.head_count", out long h) ? h : null,
            ["head_count_kv"] = file.TryGetInt64($"{arch}.attention.head_count_kv", out long hkv) ? hkv : null,
            ["tokenizer"] = file.GetStringOrNull("tokenizer.ggml.model"),
            ["tokenizer_pre"] = file.GetStringOrNull("tokenizer.ggml.pre"),
            ["vocab_size"] = file.TryGetStringArray("tokenizer.ggml.tokens", out var toks) ? toks!.Length : null,
            ["chat_template"] = file.GetStringOrNull("tokenizer.chat_template") != null,
            ["kv_bytes_per_token"] = KvBytesPerToken(file, arch),
        };
        AddHyperParameters(o, file, arch);
        return o;
    }

    /// <summary>
    /// The hyper-parameters that tell architectures of one family apart, when the file states them: head size
    /// (Qwen3's 128 whatever the width), FFN and expert sizes, RoPE base, per-head Q/K norms.
    /// </summary>
    private static void AddHyperParameters(JsonObject o, GgufFile file, string arch)
    {
        void Int(string name, string key)
        {
            if (file.TryGetInt64($"{arch}.{key}", out long v)) o[name] = v;
        }
        Int("head_size", GgufKeys.KeyLength);
        Int("feed_forward_length", "feed_forward_length");
        Int("expert_count", GgufKeys.ExpertCount);
        Int("expert_used_count", GgufKeys.ExpertUsedCount);
        Int("expert_ffn_length", GgufKeys.ExpertFeedForwardLength);
        if (file.TryGetFloat($"{arch}.rope.freq_base", out float ropeBase)) o["rope_freq_base"] = ropeBase;
        if (file.TryGetFloat($"{arch}.attention.layer_norm_rms_epsilon", out float eps)) o["rms_epsilon"] = eps;
        if (file.FindTensor(TensorNames.Weight(0, TensorNames.AttnQNorm)) != null) o["qk_norm"] = true;
        if (file.GetStringOrNull($"{arch}.rope.scaling.type") is { } scaling && file.TryGetFloat($"{arch}.rope.scaling.factor", out float factor))
            o["rope_scaling"] = $"{scaling} x{factor.ToString(System.Globalization.CultureInfo.InvariantCulture)}";
        // gemma3's local layers: their window, which layers use it, their RoPE base; and final soft-capping.
        if (arch == Gemma3.Name && file.TryGetInt64($"{arch}.{Gemma3Params.SlidingWindowKey}", out long window) && window > 0
            && file.TryGetInt64($"{arch}.block_count", out long layers) && layers is > 0 and <= 4096)
        {
            o["sliding_window"] = window;
            var p = Gemma3Params.FromGguf(file, Gemma3.Config(file));
            o["local_layers"] = $"{p.SlidingLayers.Count(x => x)} of {layers} (global: {string.Join(", ", Enumerable.Range(0, p.SlidingLayers.Length).Where(l => !p.SlidingLayers[l]))})";
            o["rope_freq_base_local"] = p.RopeBaseSliding;
            o["attention_scale"] = p.AttentionScale;
        }
        if (file.TryGetFloat($"{arch}.{Gemma3Params.FinalLogitSoftcapKey}", out float softcap)) o["final_logit_softcapping"] = softcap;
    }

    /// <summary>
    /// KV-cache bytes per token at F16, from metadata: 2·layers·kv_heads·head_dim·2 for llama-family attention;
    /// layers·(kv_lora_rank + rope_dim)·2 for deepseek2's compressed latent cache. Null when the keys are missing.
    /// </summary>
    internal static long? KvBytesPerToken(GgufFile file, string arch)
    {
        if (!file.TryGetInt64($"{arch}.block_count", out long layers)) return null;
        if (arch == DeepSeek2Config.Arch)
        {
            if (!file.TryGetInt64($"{arch}.attention.kv_lora_rank", out long rank) || !file.TryGetInt64($"{arch}.rope.dimension_count", out long rope))
                return null;
            return layers * (rank + rope) * 2;
        }
        if (!file.TryGetInt64($"{arch}.attention.head_count", out long heads)) return null;
        long kvHeads = file.TryGetInt64($"{arch}.attention.head_count_kv", out long hkv) ? hkv : heads;
        long headDim = file.TryGetInt64($"{arch}.attention.key_length", out long kl) ? kl
            : file.TryGetInt64($"{arch}.embedding_length", out long e) && heads > 0 ? e / heads : 0;
        return headDim == 0 ? null : 2 * layers * kvHeads * headDim * 2;
    }
}
