using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using SChatMessage = Sputnik.Inference.ChatMessage;
using ToolCall = Sputnik.Inference.ToolCall;

namespace Sputnik;

/// <summary>Maps Microsoft.Extensions.AI messages and tools to Sputnik's chat messages and template values.</summary>
internal static class ChatClientConversions
{
    /// <summary>MEAI's serializer settings, compact (arguments and results go into the prompt).</summary>
    private static readonly JsonSerializerOptions Compact = new(AIJsonUtilities.DefaultOptions) { WriteIndented = false };

    /// <summary>
    /// Messages in template order: system/user/assistant text, assistant <see cref="FunctionCallContent"/> as
    /// <c>tool_calls</c>, every <see cref="FunctionResultContent"/> as its own <c>tool</c> message.
    /// <paramref name="extraSystem"/> (instructions, a JSON hint) is added to the first system message.
    /// </summary>
    public static List<SChatMessage> ToMessages(IEnumerable<ChatMessage> messages, IReadOnlyList<string> extraSystem)
    {
        var result = new List<SChatMessage>();
        foreach (var m in messages)
        {
            ArgumentNullException.ThrowIfNull(m);
            var text = new StringBuilder();
            var reasoning = new StringBuilder();
            var calls = new List<ToolCall>();
            var results = new List<SChatMessage>();
            foreach (var c in m.Contents)
            {
                switch (c)
                {
                    case TextContent t: text.Append(t.Text); break;
                    case TextReasoningContent r: reasoning.Append(r.Text); break;
                    case FunctionCallContent f:
                        calls.Add(new ToolCall(f.CallId, f.Name, JsonSerializer.Serialize(f.Arguments ?? new Dictionary<string, object?>(), Compact)));
                        break;
                    case FunctionResultContent r:
                        results.Add(new SChatMessage("tool", ResultText(r)) { ToolCallId = r.CallId });
                        break;
                    case DataContent or UriContent:
                        throw new NotSupportedException($"{c.GetType().Name} in a {m.Role} message: Sputnik's models read text only");
                    default: break; // usage, errors and other annotations carry nothing for the model
                }
            }
            string role = m.Role.Value;
            if (calls.Count > 0)
                result.Add(new SChatMessage("assistant", text.Length > 0 ? text.ToString() : null)
                {
                    ToolCalls = calls,
                    ReasoningContent = reasoning.Length > 0 ? reasoning.ToString() : null,
                });
            else if (results.Count == 0 || text.Length > 0)
                result.Add(new SChatMessage(role, text.ToString())
                {
                    Name = m.AuthorName,
                    ReasoningContent = reasoning.Length > 0 ? reasoning.ToString() : null,
                });
            result.AddRange(results);
        }
        if (extraSystem.Count > 0)
        {
            string extra = string.Join("\n\n", extraSystem);
            if (result.Count > 0 && result[0].Role == "system")
                result[0] = result[0] with { Content = result[0].Content is { Length: > 0 } s ? s + "\n\n" + extra : extra };
            else result.Insert(0, SChatMessage.System(extra));
        }
        return result;
    }

    private static string ResultText(FunctionResultContent r) => r.Result switch
    {
        null => r.Exception is { } e ? "Error: " + e.Message : "",
        string s => s,
        JsonElement je => je.ValueKind == JsonValueKind.String ? je.GetString()! : je.GetRawText(),
        var o => JsonSerializer.Serialize(o, Compact),
    };

    /// <summary>Function declarations as OpenAI-style tool objects for the template's <c>tools</c> variable; null for none.</summary>
    public static List<object?>? ToTools(ChatOptions? options)
    {
        if (options?.Tools is not { Count: > 0 } tools || options.ToolMode is NoneChatToolMode) return null;
        var list = new List<object?>();
        foreach (var f in tools.OfType<AIFunctionDeclaration>())
        {
            list.Add(new JsonObject
            {
                ["type"] = "function",
                ["function"] = new JsonObject
                {
                    ["name"] = f.Name,
                    ["description"] = f.Description,
                    ["parameters"] = JsonNode.Parse(f.JsonSchema.GetRawText()),
                },
            });
        }
        return list.Count > 0 ? list : null;
    }

    /// <summary>A parsed tool call as <see cref="FunctionCallContent"/> (arguments that are not a JSON object stay unparsed under "arguments").</summary>
    public static FunctionCallContent ToFunctionCall(ToolCall call)
    {
        IDictionary<string, object?>? args;
        try
        {
            args = JsonSerializer.Deserialize<Dictionary<string, object?>>(call.ArgumentsJson, AIJsonUtilities.DefaultOptions);
        }
        catch (JsonException)
        {
            args = new Dictionary<string, object?> { ["arguments"] = call.ArgumentsJson };
        }
        return new FunctionCallContent(call.Id, call.Name, args);
    }

    /// <summary>The instruction added when a JSON response is asked for (the output is not constrained).</summary>
    public static string? JsonHint(ChatResponseFormat? format) => format switch
    {
        ChatResponseFormatJson { Schema: { } schema } j =>
            $"Respond with a JSON object only{(j.SchemaName != null ? $" ({j.SchemaName})" : "")} that matches this JSON schema: {schema.GetRawText()}",
        ChatResponseFormatJson => "Respond with a JSON object only.",
        _ => null,
    };
}

/// <summary>
/// Holds back answer text from the first <c>&lt;tool_call&gt;</c> on (and a trailing piece that may start one), so
/// a stream with tools never shows raw call markup; <see cref="Finish"/> parses what was held.
/// </summary>
internal sealed class ToolCallFilter
{
    private const string Tag = Inference.ToolCallParser.OpenTag;
    private readonly StringBuilder _held = new();
    private bool _inCall;

    public string Push(string text)
    {
        _held.Append(text);
        string s = _held.ToString();
        if (_inCall) return "";
        int at = s.IndexOf(Tag, StringComparison.Ordinal);
        if (at >= 0)
        {
            _inCall = true;
            _held.Remove(0, at);
            return s[..at];
        }
        int keep = 0;
        for (int n = Math.Min(Tag.Length - 1, s.Length); n > 0; n--)
            if (s.AsSpan(s.Length - n).SequenceEqual(Tag.AsSpan(0, n))) { keep = n; break; }
        _held.Remove(0, s.Length - keep);
        return s[..^keep];
    }

    /// <summary>The calls in the held text and the text that is not a call.</summary>
    public (string Text, List<ToolCall> Calls) Finish()
    {
        string s = _held.ToString();
        _held.Clear();
        return Inference.ToolCallParser.TryParse(s, out var calls, out string rest) ? (rest, calls) : (s, []);
    }
}
