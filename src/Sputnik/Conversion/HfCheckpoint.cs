using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Models;
using Sputnik.Tokenizers;

namespace Sputnik.Conversion;

/// <summary>
/// A Hugging Face checkpoint folder as an architecture's <see cref="HfConversion"/> reads it: config.json (a
/// multimodal checkpoint's text_config lifted to the root), the memory-mapped safetensors, and the tokenizer.
/// </summary>
internal sealed class HfCheckpoint : IDisposable
{
    private readonly SafeTensorsSet _st;

    public string Dir { get; }

    /// <summary>The GGUF architecture config.json's `architectures[0]` maps to.</summary>
    public ArchitectureInfo Architecture { get; }

    /// <summary>config.json, text_config lifted.</summary>
    public JsonElement Config { get; }

    public string ConfigPath => Path.Combine(Dir, "config.json");
    public string TokenizerPath => Path.Combine(Dir, "tokenizer.json");

    public HfCheckpoint(string dir)
    {
        Dir = dir;
        if (!Directory.Exists(dir)) throw new DirectoryNotFoundException($"{dir}: model folder not found");
        if (!File.Exists(ConfigPath)) throw new FileNotFoundException($"{dir}: config.json is missing (not a Hugging Face model folder?)", ConfigPath);
        using (var doc = JsonDocument.Parse(File.ReadAllText(ConfigPath))) Config = WithTextConfig(doc.RootElement);
        string hfArch = Config.TryGetProperty("architectures", out var a) && a.ValueKind == JsonValueKind.Array && a.GetArrayLength() > 0
            ? a[0].GetString() ?? "" : "";
        string arch = HfConverter.Architectures.GetValueOrDefault(hfArch)
            ?? throw new UnsupportedModelException($"{ConfigPath}: architecture '{hfArch}' is not supported (supported: {string.Join(", ", HfConverter.Architectures.Keys)})");
        Architecture = ModelLoader.Find(arch)!;
        if (!File.Exists(TokenizerPath))
            throw new FileNotFoundException($"{dir}: tokenizer.json is missing (only Hugging Face fast tokenizers can be converted)", TokenizerPath);
        _st = new SafeTensorsSet(dir);
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

    // ---- config.json ---------------------------------------------------------------------------------------

    /// <summary>An integer key; without <paramref name="fallback"/> a missing key is an error naming it.</summary>
    public int Int(string key, int? fallback = null) =>
        Config.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32()
        : fallback ?? throw new InvalidDataException($"config.json: '{key}' is missing");

    /// <summary>An integer key, or null when it is absent or not a number (config.json's null).</summary>
    public int? OptionalInt(string key) =>
        Config.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetInt32() : null;

    public float Float(string key, float fallback) => Number(Config, key, fallback);

    public bool Bool(string key, bool fallback = false) =>
        Config.TryGetProperty(key, out var v) && v.ValueKind is JsonValueKind.True or JsonValueKind.False ? v.ValueKind == JsonValueKind.True : fallback;

    public bool Has(string key) => Config.TryGetProperty(key, out _);

    public bool TryGet(string key, out JsonElement value) => Config.TryGetProperty(key, out value);

    /// <summary>A number inside a config object (rope_scaling…), or <paramref name="fallback"/>.</summary>
    public static float Number(JsonElement obj, string key, float fallback) =>
        obj.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetSingle() : fallback;

    /// <summary>RoPE settings: rope_parameters (newer configs, rope_theta inside) or rope_scaling; null when neither is an object.</summary>
    public JsonElement? RopeScaling() =>
        Config.TryGetProperty("rope_parameters", out var rp) && rp.ValueKind == JsonValueKind.Object ? rp
        : Config.TryGetProperty("rope_scaling", out var rs) && rs.ValueKind == JsonValueKind.Object ? rs : null;

    /// <summary>rope_type (or the older type) of a rope_scaling object; "" when it has none.</summary>
    public static string RopeScalingType(JsonElement rs) =>
        rs.TryGetProperty("rope_type", out var t) || rs.TryGetProperty("type", out t) ? t.GetString() ?? "" : "";

    /// <summary>rope_theta at the root, else inside rope_parameters (Ministral 3), else 10000.</summary>
    public float RopeTheta() =>
        Float("rope_theta", RopeScaling() is { } rp && rp.TryGetProperty("rope_theta", out var theta) && theta.ValueKind == JsonValueKind.Number ? theta.GetSingle() : 10000f);

    // ---- safetensors and tokenizer -------------------------------------------------------------------------

    public bool HasTensor(string hfName) => _st.Tensors.ContainsKey(hfName);

    /// <summary>A checkpoint tensor; a missing one is an error naming it.</summary>
    public SafeTensorInfo Tensor(string hfName) => _st.Get(hfName);

    /// <summary>A tensor whose name is <paramref name="pattern"/> formatted with <paramref name="index"/> (experts).</summary>
    public SafeTensorInfo Tensor(string pattern, int index) => _st.Get(string.Format(CultureInfo.InvariantCulture, pattern, index));

    /// <summary>Tokens in tokenizer.json (added tokens included).</summary>
    public int TokenizerSize() => HfTokenizerJson.Load(TokenizerPath).Tokens.Length;

    public void Dispose() => _st.Dispose();
}
