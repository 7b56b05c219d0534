using System.Text.Json;

namespace Sputnik.Tokenizers;

/// <summary>
/// Reads a Hugging Face <c>tokenizer.json</c> (byte-level BPE) into <see cref="TokenizerData"/> the way llama.cpp's
/// converter would write the GGUF: vocabulary plus added tokens (special or special-looking → control, others →
/// user-defined), merges, pre-tokenizer name inferred from the Split regex, BOS/EOS from the post-processor, a
/// sibling tokenizer_config.json when present, or well-known token texts. Callers may override with <c>with</c>.
/// </summary>
internal static class HfTokenizerJson
{
    internal const string Llama3Regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    internal const string Qwen2Regex = @"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // Mistral's tekken split (Mistral Nemo, Ministral 3), which llama.cpp's converter names "tekken".
    internal const string TekkenRegex = @"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    public static TokenizerData Load(string path)
    {
        using var stream = File.OpenRead(path);
        using var doc = JsonDocument.Parse(stream, new JsonDocumentOptions { MaxDepth = 256 });
        var root = doc.RootElement;
        var model = root.GetProperty("model");
        string type = model.TryGetProperty("type", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString()! : "BPE";
        if (type != "BPE") throw new NotSupportedException($"tokenizer.json model type '{type}' is not supported (BPE only)");

        var byId = new Dictionary<int, string>();
        foreach (var kv in model.GetProperty("vocab").EnumerateObject()) byId[kv.Value.GetInt32()] = kv.Name;
        var addedTypes = new Dictionary<int, TokenType>();
        if (root.TryGetProperty("added_tokens", out var added) && added.ValueKind == JsonValueKind.Array)
        {
            foreach (var a in added.EnumerateArray())
            {
                int id = a.GetProperty("id").GetInt32();
                string content = a.GetProperty("content").GetString()!;
                bool special = a.TryGetProperty("special", out var s) && s.ValueKind == JsonValueKind.True;
                byId[id] = content;
                addedTypes[id] = special || LooksSpecial(content) ? TokenType.Control : TokenType.UserDefined;
            }
        }

        int n = byId.Count == 0 ? 0 : byId.Keys.Max() + 1;
        var tokens = new string[n];
        var types = new int[n];
        for (int i = 0; i < n; i++)
        {
            if (byId.TryGetValue(i, out var text))
            {
                tokens[i] = text;
                types[i] = (int)(addedTypes.TryGetValue(i, out var at) ? at : TokenType.Normal);
            }
            else
            {
                tokens[i] = $"[PAD{i}]";
                types[i] = (int)TokenType.Unused;
            }
        }

        var merges = new List<string>();
        if (model.TryGetProperty("merges", out var mj))
        {
            foreach (var m in mj.EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.String) merges.Add(m.GetString()!);
                else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2) merges.Add(m[0].GetString() + " " + m[1].GetString());
            }
        }

        string pre = InferPre(root);
        var ids = byId.ToDictionary(kv => kv.Value, kv => kv.Key, StringComparer.Ordinal);
        int? Find(params string[] texts)
        {
            // only added tokens qualify: a plain vocabulary entry such as "<s>" in a byte-level BPE is ordinary text
            foreach (var s in texts) if (ids.TryGetValue(s, out int id) && addedTypes.ContainsKey(id)) return id;
            return null;
        }

        int? bos = null, eos = null;
        bool? addBos = null, addEos = null;
        // TemplateProcessing: a special token before $A means BOS is added
        if (root.TryGetProperty("post_processor", out var pp) && pp.ValueKind == JsonValueKind.Object)
            FindTemplateBos(pp, ids, ref bos, ref addBos);

        // tokenizer_config.json next to the file
        string config = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path)) ?? ".", "tokenizer_config.json");
        if (File.Exists(config))
        {
            using var cdoc = JsonDocument.Parse(File.ReadAllText(config));
            var c = cdoc.RootElement;
            bos = TokenField(c, "bos_token", ids) ?? bos;
            eos = TokenField(c, "eos_token", ids) ?? eos;
            if (c.TryGetProperty("add_bos_token", out var ab) && ab.ValueKind is JsonValueKind.True or JsonValueKind.False) addBos = ab.GetBoolean();
            if (c.TryGetProperty("add_eos_token", out var ae) && ae.ValueKind is JsonValueKind.True or JsonValueKind.False) addEos = ae.GetBoolean();
        }

        bos ??= Find("<|begin_of_text|>", "<｜begin▁of▁sentence｜>", "<s>", "<|endoftext|>");
        eos ??= Find("<|end_of_text|>", "<｜end▁of▁sentence｜>", "</s>", "<|endoftext|>");

        return new TokenizerData
        {
            Model = "gpt2",
            Pre = pre,
            Tokens = tokens,
            TokenTypes = types,
            Merges = merges.ToArray(),
            BosId = bos,
            EosId = eos,
            PadId = Find("<|finetune_right_pad_id|>", "<pad>", "<|pad|>"),
            AddBos = addBos,
            AddEos = addEos,
        };
    }

    /// <summary>llama.cpp's converter treats these added tokens as control even when not marked special.</summary>
    internal static bool LooksSpecial(string text) =>
        text is "<pad>" or "<mask>" or "<2mass>" or "[@BOS@]"
        || (text.StartsWith("<|", StringComparison.Ordinal) && text.EndsWith("|>", StringComparison.Ordinal))
        || (text.StartsWith("<｜", StringComparison.Ordinal) && text.EndsWith("｜>", StringComparison.Ordinal))
        || (text.StartsWith("<unused", StringComparison.Ordinal) && text.EndsWith('>'));

    private static string InferPre(JsonElement root)
    {
        if (!root.TryGetProperty("pre_tokenizer", out var pt) || pt.ValueKind != JsonValueKind.Object) return "default";
        var patterns = new List<string>();
        bool byteLevel = false, byteLevelRegex = false;
        void Walk(JsonElement e)
        {
            string? type = e.TryGetProperty("type", out var ty) ? ty.GetString() : null;
            if (type == "Sequence" && e.TryGetProperty("pretokenizers", out var list))
                foreach (var x in list.EnumerateArray()) Walk(x);
            else if (type == "Split" && e.TryGetProperty("pattern", out var p) && p.TryGetProperty("Regex", out var r))
                patterns.Add(r.GetString() ?? "");
            else if (type == "ByteLevel")
            {
                byteLevel = true;
                byteLevelRegex = !e.TryGetProperty("use_regex", out var ur) || ur.ValueKind != JsonValueKind.False;
            }
        }
        Walk(pt);
        if (patterns.Count == 1 && patterns[0] == Llama3Regex) return "llama-bpe";
        if (patterns.Count == 1 && patterns[0] == Qwen2Regex) return "qwen2";
        if (patterns.Count == 1 && patterns[0] == TekkenRegex) return "tekken";
        if (patterns.Count == 0 && byteLevel && byteLevelRegex) return "gpt2";
        return "default";
    }

    private static void FindTemplateBos(JsonElement pp, Dictionary<string, int> ids, ref int? bos, ref bool? addBos)
    {
        string? type = pp.TryGetProperty("type", out var t) ? t.GetString() : null;
        if (type == "Sequence" && pp.TryGetProperty("processors", out var procs))
        {
            foreach (var p in procs.EnumerateArray()) FindTemplateBos(p, ids, ref bos, ref addBos);
            return;
        }
        if (type != "TemplateProcessing" || !pp.TryGetProperty("single", out var single)) return;
        foreach (var item in single.EnumerateArray())
        {
            if (item.TryGetProperty("Sequence", out _)) { addBos ??= false; return; }
            if (item.TryGetProperty("SpecialToken", out var st) && st.TryGetProperty("id", out var sid) &&
                ids.TryGetValue(sid.GetString() ?? "", out int id))
            {
                bos = id;
                addBos = true;
                return;
            }
        }
    }

    private static int? TokenField(JsonElement config, string name, Dictionary<string, int> ids)
    {
        if (!config.TryGetProperty(name, out var v)) return null;
        string? text = v.ValueKind switch
        {
            JsonValueKind.String => v.GetString(),
            JsonValueKind.Object when v.TryGetProperty("content", out var c) => c.GetString(),
            _ => null,
        };
        return text != null && ids.TryGetValue(text, out int id) ? id : null;
    }
}
