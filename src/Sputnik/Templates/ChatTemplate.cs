using System.Collections.Concurrent;

namespace Sputnik.Templates;

/// <summary>
/// Chat templates as transformers' <c>apply_chat_template</c> renders them: trim_blocks and lstrip_blocks on,
/// <c>tojson</c> = <c>json.dumps(ensure_ascii=False)</c> without key sorting or HTML escaping,
/// <c>raise_exception</c> and <c>strftime_now</c> globals. Parsed templates are cached by source text.
/// </summary>
internal static class ChatTemplate
{
    private static readonly ConcurrentDictionary<string, JinjaTemplate> Cache = new(StringComparer.Ordinal);
    private const int MaxCached = 64;

    /// <summary>Parses (or fetches from the cache) a chat template with transformers' environment settings.</summary>
    public static JinjaTemplate Parse(string source)
    {
        if (Cache.TryGetValue(source, out var cached)) return cached;
        var t = JinjaTemplate.Parse(source, JinjaOptions.HuggingFace);
        if (Cache.Count >= MaxCached) Cache.Clear();
        Cache[source] = t;
        return t;
    }

    /// <summary>
    /// Renders <paramref name="messages"/> like <c>tokenizer.apply_chat_template(messages, tools=tools,
    /// add_generation_prompt=..., tokenize=False)</c>. <c>tools</c> is always defined (None when not given), as in
    /// transformers; <paramref name="extra"/> adds template kwargs (e.g. <c>date_string</c>, <c>enable_thinking</c>).
    /// </summary>
    public static string Apply(
        string source,
        IEnumerable<object?> messages,
        bool addGenerationPrompt = false,
        string? bosToken = null,
        string? eosToken = null,
        IEnumerable<object?>? tools = null,
        IDictionary<string, object?>? extra = null,
        DateTime? now = null)
    {
        var context = new Dictionary<string, object?>
        {
            ["messages"] = messages.ToList(),
            ["tools"] = tools?.ToList(),
            ["documents"] = null,
            ["add_generation_prompt"] = addGenerationPrompt,
        };
        if (bosToken != null) context["bos_token"] = bosToken;
        if (eosToken != null) context["eos_token"] = eosToken;
        if (extra != null)
            foreach (var kv in extra) context[kv.Key] = kv.Value;
        return Parse(source).Render(context, now);
    }
}
