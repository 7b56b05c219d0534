using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Inference;
using Sputnik.Inference.Json;

namespace Sputnik.Server.Api;

/// <summary>A /v1/chat/completions body, checked.</summary>
internal sealed record ChatRequest(
    string? Model, List<ChatMessage> Messages, bool Stream, bool IncludeUsage, int? MaxTokens,
    SamplingOptions Sampling, IReadOnlyList<string> Stop, SchemaNode? ResponseSchema, List<object?>? Tools, string? ToolChoice,
    int TopLogprobs, string? ReasoningEffort, bool? ThinkingEnabled, int? ThinkingBudget)
{
    /// <summary>Characters of text the messages and tools put into the prompt (before the template adds its own).</summary>
    public long PromptCharacters { get; init; }

    /// <summary>llama-server's per-request "lora": [{"id", "scale"}] (adapters not listed run at 0); null when absent.</summary>
    public IReadOnlyList<(int Id, float Scale)>? Lora { get; init; }
}

/// <summary>A /v1/completions body, checked.</summary>
internal sealed record CompletionRequest(
    string? Model, string? PromptText, int[]? PromptTokens, string? Suffix, bool Stream, bool IncludeUsage, int? MaxTokens,
    SamplingOptions Sampling, IReadOnlyList<string> Stop, int TopLogprobs, bool Echo)
{
    /// <summary>llama-server's per-request "lora": [{"id", "scale"}] (adapters not listed run at 0); null when absent.</summary>
    public IReadOnlyList<(int Id, float Scale)>? Lora { get; init; }
}

/// <summary>Reads request bodies field by field so each mistake becomes a 400 that names the field.</summary>
internal static class RequestReader
{
    public const int AbsurdMaxTokens = 1_000_000;
    private static readonly HashSet<string> Roles = ["system", "developer", "user", "assistant", "tool"];

    /// <summary>
    /// The body as a JSON object; the document reads <paramref name="body"/> in place (no copy). Dispose it once the
    /// request is read: its index is rented from the shared pool.
    /// </summary>
    public static JsonDocument ParseBody(byte[] body)
    {
        if (body.Length == 0) throw ApiException.BadRequest("the request body is empty; send a JSON object");
        try
        {
            var doc = JsonDocument.Parse(body.AsMemory(), new JsonDocumentOptions { MaxDepth = 64 });
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                doc.Dispose();
                throw ApiException.BadRequest("the request body must be a JSON object");
            }
            return doc;
        }
        catch (JsonException ex)
        {
            throw ApiException.BadRequest($"the request body is not valid JSON: {ex.Message}", code: "invalid_json");
        }
    }

    public static ChatRequest Chat(JsonElement body, SamplingOptions? defaults = null)
    {
        var f = new JsonFields(body);
        CheckN(f);
        if (f.Get("messages") is not { ValueKind: JsonValueKind.Array } msgs) throw f.Bad("messages", "a non-empty array of messages");
        var messages = new List<ChatMessage>();
        int i = 0;
        foreach (var m in msgs.EnumerateArray()) messages.Add(Message(m, i++));
        if (messages.Count == 0) throw f.Bad("messages", "a non-empty array of messages");

        var responseSchema = ResponseFormat(f, messages);

        List<object?>? tools = null;
        var toolNames = new HashSet<string>(StringComparer.Ordinal);
        long toolCharacters = 0;
        if (f.Get("tools") is { } t)
        {
            if (t.ValueKind != JsonValueKind.Array) throw f.Bad("tools", "an array");
            tools = [];
            foreach (var tool in t.EnumerateArray())
            {
                if (tool.ValueKind != JsonValueKind.Object || !tool.TryGetProperty("function", out var fn) || fn.ValueKind != JsonValueKind.Object)
                    throw ApiException.BadRequest("each tool must be {\"type\":\"function\",\"function\":{...}}", "tools");
                if (fn.TryGetProperty("name", out var toolName) && toolName.ValueKind == JsonValueKind.String) toolNames.Add(toolName.GetString()!);
                string raw = tool.GetRawText();
                toolCharacters += raw.Length;
                tools.Add(JsonNode.Parse(raw));
            }
        }
        string? toolChoice = ToolChoice(f, toolNames, tools != null);

        int topLogprobs = -1;
        if (f.Bool("logprobs") == true) topLogprobs = (int)(f.Integer("top_logprobs", 0, 20) ?? 0);
        else if (f.Has("top_logprobs")) throw ApiException.BadRequest("'top_logprobs' needs 'logprobs': true", "top_logprobs");

        string? effort = f.String("reasoning_effort");
        if (effort is not (null or "low" or "medium" or "high"))
            throw ApiException.BadRequest($"'reasoning_effort' must be low, medium or high (got '{effort}')", "reasoning_effort");
        bool? thinking = null;
        int? budget = null;
        if (f.Has("thinking"))
        {
            var th = f.Object("thinking");
            thinking = th.String("type") switch
            {
                "enabled" => true,
                "disabled" => false,
                null => null,
                var other => throw ApiException.BadRequest($"'thinking.type' must be enabled or disabled (got '{other}')", "thinking.type"),
            };
            budget = (int?)th.Integer("budget_tokens", 0, AbsurdMaxTokens);
        }

        var streamOptions = f.Has("stream_options") ? f.Object("stream_options") : default;
        long promptCharacters = toolCharacters;
        foreach (var m in messages)
        {
            promptCharacters += m.Content?.Length ?? 0;
            foreach (var call in m.ToolCalls ?? []) promptCharacters += call.Name.Length + call.ArgumentsJson.Length;
        }
        return new ChatRequest(
            f.String("model"), messages, f.Bool("stream") ?? false,
            f.Has("stream_options") && streamOptions.Bool("include_usage") == true,
            MaxTokens(f), Sampling(f, defaults), f.StopStrings(), responseSchema, tools, toolChoice, topLogprobs, effort, thinking, budget)
        {
            PromptCharacters = promptCharacters,
            Lora = Lora(body),
        };
    }

    /// <summary>
    /// A list of adapter scales as llama-server takes it, in a request's "lora" field and in POST /lora-adapters:
    /// [{"id": 0, "scale": 0.5}, …], a missing scale 0; null when <paramref name="list"/> is absent. Ids are checked
    /// against the model's adapters where they are used (<see cref="ModelHost.AdaptersFor"/>).
    /// </summary>
    internal static IReadOnlyList<(int Id, float Scale)>? Lora(JsonElement body) =>
        body.TryGetProperty("lora", out var list) ? LoraList(list, "lora") : null;

    internal static IReadOnlyList<(int Id, float Scale)> LoraList(JsonElement list, string name)
    {
        if (list.ValueKind != JsonValueKind.Array)
            throw ApiException.BadRequest($"'{name}' must be an array of {{\"id\": …, \"scale\": …}} objects", name);
        var scales = new List<(int, float)>();
        int i = 0;
        foreach (var entry in list.EnumerateArray())
        {
            string at = $"{name}[{i++}]";
            if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("id", out var id) || id.ValueKind != JsonValueKind.Number
                || !id.TryGetInt32(out int adapter) || adapter < 0)
                throw ApiException.BadRequest($"'{at}.id' must be the id of a loaded adapter (see GET /lora-adapters)", at + ".id");
            float scale = 0;
            if (entry.TryGetProperty("scale", out var s))
            {
                if (s.ValueKind != JsonValueKind.Number || !s.TryGetDouble(out double d) || !double.IsFinite(d) || Math.Abs(d) > 1e6)
                    throw ApiException.BadRequest($"'{at}.scale' must be a number", at + ".scale");
                scale = (float)d;
            }
            scales.Add((adapter, scale));
        }
        return scales;
    }

    /// <summary>
    /// tool_choice as OpenAI defines it: "none", "auto", "required", or {"type":"function","function":{"name":…}}
    /// naming one of the given tools. Returns the string form (a named function as its name).
    /// </summary>
    private static string? ToolChoice(JsonFields f, HashSet<string> toolNames, bool hasTools)
    {
        const string Param = "tool_choice";
        switch (f.Get(Param))
        {
            case null:
                return null;
            case { ValueKind: JsonValueKind.String } s:
                string choice = s.GetString()!;
                if (choice is not ("none" or "auto" or "required"))
                    throw ApiException.BadRequest($"'tool_choice' is '{choice}'; it must be none, auto, required or {{\"type\":\"function\",\"function\":{{\"name\":...}}}}", Param);
                if (choice == "required" && !hasTools) throw ApiException.BadRequest("'tool_choice' is 'required' but no 'tools' were given", Param);
                return choice;
            case { ValueKind: JsonValueKind.Object }:
                var tc = f.Object(Param);
                if (tc.String("type") != "function") throw tc.Bad("type", "\"function\"");
                string name = tc.Object("function").String("name") ?? throw ApiException.BadRequest("'tool_choice.function.name' is required", "tool_choice.function.name");
                if (!toolNames.Contains(name))
                    throw ApiException.BadRequest($"'tool_choice' names the function '{name}', which is not among 'tools'", "tool_choice.function.name");
                return name;
            default:
                throw f.Bad(Param, "a string (none, auto, required) or an object naming a function");
        }
    }

    /// <summary>
    /// response_format → the compiled schema the answer is constrained to: json_object is any object, json_schema
    /// OpenAI's {"type":"json_schema","json_schema":{"name":…,"schema":{…},"strict":true}}; null for text.
    /// </summary>
    private static SchemaNode? ResponseFormat(JsonFields f, List<ChatMessage> messages)
    {
        if (!f.Has("response_format")) return null;
        var rf = f.Object("response_format");
        string type = rf.String("type") ?? throw ApiException.BadRequest("'response_format.type' is required", "response_format.type");
        switch (type)
        {
            case "text":
                return null;
            case "json_object":
                // OpenAI's rule: without the word in the prompt, the model has no idea it should write JSON.
                if (!messages.Any(m => m.Content?.Contains("json", StringComparison.OrdinalIgnoreCase) == true))
                    throw ApiException.BadRequest("'messages' must contain the word 'json' in some form to use 'response_format' of type 'json_object'", "response_format");
                return SchemaNode.AnyObject;
            case "json_schema":
                var js = rf.Object("json_schema");
                if (js.String("name") is { } name && (name.Length is 0 or > 64 || !name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-')))
                    throw ApiException.BadRequest("'response_format.json_schema.name' must be 1 to 64 letters, digits, '_' or '-'", "response_format.json_schema.name");
                js.Bool("strict");
                if (js.Get("schema") is not { ValueKind: JsonValueKind.Object or JsonValueKind.True } schema)
                    throw js.Bad("schema", "a JSON schema object");
                try
                {
                    return JsonSchemaCompiler.Compile(schema);
                }
                catch (JsonSchemaException ex)
                {
                    throw ApiException.BadRequest(ex.Message, "response_format.json_schema.schema", "unsupported_schema");
                }
            default:
                throw ApiException.BadRequest($"response_format type '{type}' is unknown (text, json_object, json_schema)", "response_format.type");
        }
    }

    public static CompletionRequest Completion(JsonElement body, SamplingOptions? defaults = null)
    {
        var f = new JsonFields(body);
        CheckN(f);
        string? text = null;
        int[]? tokens = null;
        var p = f.Get("prompt") ?? throw ApiException.BadRequest("'prompt' is required", "prompt");
        switch (p.ValueKind)
        {
            case JsonValueKind.String: text = p.GetString(); break;
            case JsonValueKind.Array when p.GetArrayLength() == 1 && p[0].ValueKind == JsonValueKind.String: text = p[0].GetString(); break;
            case JsonValueKind.Array when p.EnumerateArray().All(e => e.ValueKind == JsonValueKind.Number):
                tokens = p.EnumerateArray().Select(e => e.TryGetInt32(out int id) ? id : throw f.Bad("prompt", "a string or an array of token ids")).ToArray();
                break;
            case JsonValueKind.Array: throw ApiException.BadRequest("'prompt' as a batch of several prompts is not supported; send one", "prompt");
            default: throw f.Bad("prompt", "a string or an array of token ids");
        }
        if (f.Bool("echo") == true && f.Bool("stream") == true) throw ApiException.BadRequest("'echo' is not supported with streaming", "echo");
        int top = f.Has("logprobs") ? (int)f.Integer("logprobs", 0, 20)! : -1;
        var streamOptions = f.Has("stream_options") ? f.Object("stream_options") : default;
        return new CompletionRequest(f.String("model"), text, tokens, f.String("suffix"), f.Bool("stream") ?? false,
            f.Has("stream_options") && streamOptions.Bool("include_usage") == true,
            MaxTokens(f), Sampling(f, defaults), f.StopStrings(), top, f.Bool("echo") ?? false)
        {
            Lora = Lora(body),
        };
    }

    private static void CheckN(JsonFields f)
    {
        if (f.Integer("n", 1, 128) is > 1) throw ApiException.BadRequest("only n = 1 is supported", "n");
    }

    private static int? MaxTokens(JsonFields f)
    {
        string name = f.Has("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
        return (int?)f.Integer(name, 1, AbsurdMaxTokens);
    }

    /// <summary>Request fields over <paramref name="defaults"/> (the model's recommended settings; the library's when null).</summary>
    internal static SamplingOptions Sampling(JsonFields f, SamplingOptions? defaults)
    {
        var d = defaults ?? new SamplingOptions();
        long? seed = f.Integer("seed");
        var s = new SamplingOptions
        {
            Temperature = (float)(f.Number("temperature", 0, 2) ?? d.Temperature),
            TopP = (float)(f.Number("top_p", 0, 1) ?? d.TopP),
            TopK = (int)(f.Integer("top_k", 0, 1_000_000) ?? d.TopK),
            MinP = (float)(f.Number("min_p", 0, 1) ?? d.MinP),
            PresencePenalty = (float)(f.Number("presence_penalty", -2, 2) ?? 0),
            FrequencyPenalty = (float)(f.Number("frequency_penalty", -2, 2) ?? 0),
            RepeatPenalty = (float)(f.Number("repeat_penalty", 0.01, 10) ?? d.RepeatPenalty),
            PenaltyLastN = d.PenaltyLastN,
            Seed = seed.HasValue ? unchecked((ulong)seed.Value) : null,
        };
        if (s.TopP <= 0) s = s with { TopP = 1e-6f }; // top_p 0 means "only the best token" to OpenAI clients
        try
        {
            s.Validate();
        }
        catch (ArgumentException ex)
        {
            throw ApiException.BadRequest(ex.Message, ex.Message.Split(' ')[0]);
        }
        return s;
    }

    private static ChatMessage Message(JsonElement m, int index)
    {
        string at = $"messages[{index}]";
        if (m.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"'{at}' must be an object", at);
        var f = new JsonFields(m, at + ".");
        string role = f.String("role") ?? throw ApiException.BadRequest($"'{at}.role' is required", at + ".role");
        if (!Roles.Contains(role))
            throw ApiException.BadRequest($"'{at}.role' is '{role}'; it must be one of system, user, assistant, tool", at + ".role", "invalid_role");
        if (role == "developer") role = "system";
        string? content = Content(f, at);
        List<ToolCall>? calls = null;
        if (f.Get("tool_calls") is { } tcs)
        {
            if (role != "assistant" || tcs.ValueKind != JsonValueKind.Array) throw f.Bad("tool_calls", "an array on an assistant message");
            calls = [];
            int callIndex = 0;
            foreach (var tc in tcs.EnumerateArray())
            {
                string callAt = $"{at}.tool_calls[{callIndex++}]";
                if (tc.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"'{callAt}' must be an object", callAt);
                var tf = new JsonFields(tc, callAt + ".");
                var fn = tf.Object("function");
                calls.Add(new ToolCall(tf.String("id") ?? $"call_{calls.Count}", fn.String("name") ?? throw fn.Bad("name", "a string"), fn.String("arguments") ?? "{}"));
            }
        }
        if (content == null && calls == null && role != "assistant") throw ApiException.BadRequest($"'{at}.content' is required", at + ".content");
        string? toolCallId = f.String("tool_call_id");
        if (role == "tool" && toolCallId == null) throw ApiException.BadRequest($"'{at}.tool_call_id' is required for tool messages", at + ".tool_call_id");
        return new ChatMessage(role, content) { ToolCalls = calls, ToolCallId = toolCallId, Name = f.String("name") };
    }

    /// <summary>content: a string, null, or an array of {"type":"text","text":...} parts.</summary>
    internal static string? Content(JsonFields f, string at)
    {
        if (f.Get("content") is not { } c) return null;
        if (c.ValueKind == JsonValueKind.String) return c.GetString();
        if (c.ValueKind != JsonValueKind.Array) throw f.Bad("content", "a string or an array of content parts");
        var sb = new System.Text.StringBuilder();
        int index = 0;
        foreach (var part in c.EnumerateArray())
        {
            string partAt = $"{at}.content[{index++}]";
            if (part.ValueKind != JsonValueKind.Object) throw ApiException.BadRequest($"'{partAt}' must be an object like {{\"type\":\"text\",\"text\":\"...\"}}", partAt);
            var pf = new JsonFields(part, partAt + ".");
            string type = pf.String("type") ?? "text";
            if (type != "text") throw ApiException.BadRequest($"content part type '{type}' is not supported (text only)", at + ".content", "unsupported_content");
            sb.Append(pf.String("text") ?? throw pf.Bad("text", "a string"));
        }
        return sb.ToString();
    }
}
