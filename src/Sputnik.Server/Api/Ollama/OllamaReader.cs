using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Inference;
using Sputnik.Inference.Json;

namespace Sputnik.Server.Api.Ollama;

/// <summary>An /api/generate body: its prompt parts, and the rest as the chat request it runs as.</summary>
internal sealed record GenerateRequest(ChatRequest Chat, string Prompt, string? System, string? Suffix, bool Raw, int[]? Context);

/// <summary>
/// Reads Ollama's /api/chat and /api/generate bodies into the <see cref="ChatRequest"/> the OpenAI endpoint runs,
/// so both APIs share one generation path; every mistake is a 400 naming the field.
/// </summary>
internal static class OllamaReader
{
    private static readonly HashSet<string> Roles = ["system", "user", "assistant", "tool"];

    public static string ModelName(JsonFields f) =>
        f.String("model") is { Length: > 0 } m ? m : f.String("name") is { Length: > 0 } n ? n : throw ApiException.BadRequest("model is required", "model");

    public static ChatRequest Chat(JsonElement body, SamplingOptions defaults)
    {
        var f = new JsonFields(body);
        ModelName(f);
        var messages = new List<ChatMessage>();
        if (f.Get("messages") is { } msgs)
        {
            if (msgs.ValueKind != JsonValueKind.Array) throw f.Bad("messages", "an array of messages");
            int i = 0;
            foreach (var m in msgs.EnumerateArray()) messages.Add(Message(m, i++));
        }
        var tools = Tools(f);
        long characters = tools.Characters;
        foreach (var m in messages)
        {
            characters += (m.Content?.Length ?? 0) + (m.ReasoningContent?.Length ?? 0);
            foreach (var call in m.ToolCalls ?? []) characters += call.Name.Length + call.ArgumentsJson.Length;
        }
        return Common(f, messages, tools.List, defaults) with { PromptCharacters = characters };
    }

    public static GenerateRequest Generate(JsonElement body, SamplingOptions defaults)
    {
        var f = new JsonFields(body);
        ModelName(f);
        string prompt = f.String("prompt") ?? "";
        string? system = f.String("system");
        if (f.String("template") is { Length: > 0 })
            throw ApiException.BadRequest("'template' (a Go template) is not supported; the model's own chat template is used, or send 'raw': true with a formatted prompt", "template");
        Images(f, "");
        bool raw = f.Bool("raw") ?? false;
        if (raw && system != null) throw ApiException.BadRequest("raw mode does not support template, system, or context", "system");
        int[]? context = null;
        if (f.Get("context") is { } c)
        {
            if (c.ValueKind != JsonValueKind.Array) throw f.Bad("context", "an array of token ids");
            context = c.EnumerateArray().Select(e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int id) ? id : throw f.Bad("context", "an array of token ids")).ToArray();
        }
        var messages = new List<ChatMessage>();
        if (system != null) messages.Add(new ChatMessage("system", system));
        messages.Add(new ChatMessage("user", prompt));
        var chat = Common(f, messages, null, defaults) with { PromptCharacters = prompt.Length + (system?.Length ?? 0) };
        return new GenerateRequest(chat, prompt, system, f.String("suffix"), raw, context);
    }

    /// <summary>The fields /api/chat and /api/generate share: stream, think, format, options, keep_alive.</summary>
    private static ChatRequest Common(JsonFields f, List<ChatMessage> messages, List<object?>? tools, SamplingOptions defaults)
    {
        KeepAlive(f);
        var options = f.Has("options") ? f.Object("options") : new JsonFields(EmptyObject, "options.");
        var (thinking, effort) = Think(f);
        int? maxTokens = options.Integer("num_predict", -2, RequestReader.AbsurdMaxTokens) switch
        {
            null or -1 or -2 => null, // -1: until the model stops; -2: until the context is full — both the room left
            0 => throw ApiException.BadRequest("'options.num_predict' is 0; use -1 (no limit), -2 (fill the context) or a positive count", "options.num_predict"),
            var n => (int)n,
        };
        // Accepted for compatibility: the context and the threads are the server's (--ctx-size, --threads).
        options.Integer("num_ctx", 1, int.MaxValue);
        options.Integer("num_thread", 0, 4096);
        options.Integer("num_batch", 1, int.MaxValue);
        options.Integer("num_gpu", -1, int.MaxValue);
        options.Integer("num_keep", -1, int.MaxValue);
        return new ChatRequest(null, messages, f.Bool("stream") ?? true, false, maxTokens,
            RequestReader.Sampling(options, defaults), options.StopStrings(), Format(f), tools, null, -1, effort, thinking, null);
    }

    private static readonly JsonElement EmptyObject = JsonDocument.Parse("{}").RootElement;

    /// <summary>think: true/false, or a level ("low", "medium", "high", "max") that also enables thinking.</summary>
    private static (bool? Thinking, string? Effort) Think(JsonFields f) => f.Get("think") switch
    {
        null => (null, null),
        { ValueKind: JsonValueKind.True } => (true, null),
        { ValueKind: JsonValueKind.False } => (false, null),
        { ValueKind: JsonValueKind.String } s => s.GetString() switch
        {
            "low" or "medium" or "high" => (true, s.GetString()),
            "max" => (true, null),
            var other => throw ApiException.BadRequest($"'think' is '{other}'; it must be true, false, \"low\", \"medium\", \"high\" or \"max\"", "think"),
        },
        _ => throw f.Bad("think", "a boolean or a level (\"low\", \"medium\", \"high\", \"max\")"),
    };

    /// <summary>format: "json" (any JSON object), a JSON schema, or ""/absent for free text.</summary>
    private static SchemaNode? Format(JsonFields f)
    {
        switch (f.Get("format"))
        {
            case null:
                return null;
            case { ValueKind: JsonValueKind.String } s:
                return s.GetString() switch
                {
                    "" => null,
                    "json" => SchemaNode.AnyObject,
                    var other => throw ApiException.BadRequest($"'format' is '{other}'; it must be \"json\" or a JSON schema object", "format"),
                };
            case { ValueKind: JsonValueKind.Object } schema:
                try
                {
                    return JsonSchemaCompiler.Compile(schema);
                }
                catch (JsonSchemaException ex)
                {
                    throw ApiException.BadRequest($"'format': {ex.Message}", "format", "unsupported_schema");
                }
            default:
                throw f.Bad("format", "\"json\" or a JSON schema object");
        }
    }

    /// <summary>
    /// keep_alive: a Go duration ("5m", "1h30m", "-1s") or a number of seconds; negative keeps the model loaded,
    /// zero unloads it after the request. Checked here; the model provider is who acts on it.
    /// </summary>
    public static TimeSpan? KeepAlive(JsonFields f)
    {
        switch (f.Get("keep_alive"))
        {
            case null:
                return null;
            case { ValueKind: JsonValueKind.Number } n:
                double seconds = n.GetDouble();
                return seconds < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(Math.Min(seconds, TimeSpan.MaxValue.TotalSeconds / 2));
            case { ValueKind: JsonValueKind.String } s:
                return ParseDuration(s.GetString()!) ?? throw ApiException.BadRequest(
                    $"'keep_alive' is '{Printable(s.GetString()!)}'; it must be a duration such as \"5m\", \"1h\", \"30s\", \"0\" or \"-1\", or a number of seconds", "keep_alive");
            default:
                throw f.Bad("keep_alive", "a duration string (\"5m\") or a number of seconds");
        }
    }

    /// <summary>Go's time.ParseDuration (units ns, us, µs, ms, s, m, h), plus a bare number meaning seconds, as Ollama reads it.</summary>
    internal static TimeSpan? ParseDuration(string text)
    {
        if (text.Length is 0 or > 64) return null;
        if (double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double bare))
            return bare < 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(Math.Min(bare, 1e10));
        int i = 0;
        bool negative = text[0] == '-';
        if (text[0] is '-' or '+') i++;
        double totalSeconds = 0;
        bool any = false;
        while (i < text.Length)
        {
            int start = i;
            while (i < text.Length && (char.IsAsciiDigit(text[i]) || text[i] == '.')) i++;
            if (i == start || !double.TryParse(text.AsSpan(start, i - start), NumberStyles.Float, CultureInfo.InvariantCulture, out double value)) return null;
            int unitStart = i;
            while (i < text.Length && !char.IsAsciiDigit(text[i]) && text[i] != '.') i++;
            double scale = text[unitStart..i] switch
            {
                "ns" => 1e-9, "us" or "µs" or "μs" => 1e-6, "ms" => 1e-3, "s" => 1, "m" => 60, "h" => 3600,
                _ => double.NaN,
            };
            if (double.IsNaN(scale)) return null;
            totalSeconds += value * scale;
            any = true;
        }
        if (!any) return null;
        return negative && totalSeconds > 0 ? Timeout.InfiniteTimeSpan : TimeSpan.FromSeconds(Math.Min(totalSeconds, 1e10));
    }

    private static (List<object?>? List, long Characters) Tools(JsonFields f)
    {
        if (f.Get("tools") is not { } t) return (null, 0);
        if (t.ValueKind != JsonValueKind.Array) throw f.Bad("tools", "an array");
        var list = new List<object?>();
        long characters = 0;
        int i = 0;
        foreach (var tool in t.EnumerateArray())
        {
            if (tool.ValueKind != JsonValueKind.Object || !tool.TryGetProperty("function", out var fn) || fn.ValueKind != JsonValueKind.Object
                || !fn.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String)
                throw ApiException.BadRequest($"'tools[{i}]' must be {{\"type\":\"function\",\"function\":{{\"name\":...,\"parameters\":{{...}}}}}}", $"tools[{i}]");
            string raw = tool.GetRawText();
            characters += raw.Length;
            list.Add(JsonNode.Parse(raw));
            i++;
        }
        return (list.Count > 0 ? list : null, characters);
    }

    private static void Images(JsonFields f, string at)
    {
        if (f.Get("images") is { ValueKind: JsonValueKind.Array } images && images.GetArrayLength() == 0) return;
        if (f.Has("images")) throw ApiException.BadRequest("images are not supported: the models Sputnik runs read text only", at + "images");
    }

    /// <summary>
    /// One message: role, content, thinking (earlier reasoning, shown to the template as reasoning_content),
    /// tool_calls whose arguments are JSON objects, and tool results named by tool_name (or tool_call_id).
    /// </summary>
    private static ChatMessage Message(JsonElement m, int index)
    {
        string at = $"messages[{index}]";
        if (m.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"'{at}' must be an object", at);
        var f = new JsonFields(m, at + ".");
        string role = f.String("role") ?? throw ApiException.BadRequest($"'{at}.role' is required", at + ".role");
        if (!Roles.Contains(role))
            throw ApiException.BadRequest($"'{at}.role' is '{role}'; it must be one of system, user, assistant, tool", at + ".role");
        string content = RequestReader.Content(f, at) ?? "";
        Images(f, at + ".");
        List<ToolCall>? calls = null;
        if (f.Get("tool_calls") is { } tcs)
        {
            if (role != "assistant" || tcs.ValueKind != JsonValueKind.Array) throw f.Bad("tool_calls", "an array on an assistant message");
            calls = [];
            foreach (var tc in tcs.EnumerateArray())
            {
                string callAt = $"{at}.tool_calls[{calls.Count}]";
                if (tc.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"'{callAt}' must be an object", callAt);
                var tf = new JsonFields(tc, callAt + ".");
                var fn = tf.Object("function");
                string name = fn.String("name") ?? throw fn.Bad("name", "a string");
                string arguments = fn.Get("arguments") switch
                {
                    null => "{}",
                    { ValueKind: JsonValueKind.Object } o => o.GetRawText(),
                    { ValueKind: JsonValueKind.String } s => s.GetString()!, // OpenAI's habit; accepted
                    _ => throw fn.Bad("arguments", "a JSON object"),
                };
                calls.Add(new ToolCall(tf.String("id") ?? $"call_{calls.Count}", name, arguments));
            }
        }
        string? toolName = f.String("tool_name");
        string? toolCallId = f.String("tool_call_id") ?? (role == "tool" ? toolName ?? "call_0" : null);
        string? thinking = f.String("thinking");
        return new ChatMessage(role, content)
        {
            ToolCalls = calls, ToolCallId = toolCallId, Name = toolName, ReasoningContent = thinking is { Length: > 0 } ? thinking : null,
        };
    }

    private static string Printable(string s) => s.Length > 40 ? s[..40] + "…" : s;
}
