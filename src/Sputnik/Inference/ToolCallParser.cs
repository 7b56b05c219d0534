using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sputnik.Inference;

/// <summary>
/// Finds tool calls in generated text, in the Hermes/Qwen form
/// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>; the rest stays content.
/// </summary>
public static partial class ToolCallParser
{
    /// <summary>The tag that opens a tool call.</summary>
    public const string OpenTag = "<tool_call>";

    [GeneratedRegex(@"<tool_call>\s*(\{.*?\})\s*</tool_call>", RegexOptions.Singleline)]
    private static partial Regex Block();

    /// <summary>
    /// Extracts every well-formed call (a JSON object with a string <c>name</c>; <c>arguments</c> as an object or a
    /// JSON string) and returns the text without them. Calls get fresh ids (<c>call_…</c>).
    /// </summary>
    /// <param name="text">The generated answer text.</param>
    /// <param name="calls">The calls found, in order.</param>
    /// <param name="rest">The text with the call blocks removed and trimmed (unchanged when no call was found).</param>
    /// <returns>True when at least one call was found.</returns>
    public static bool TryParse(string text, out List<ToolCall> calls, out string rest)
    {
        ArgumentNullException.ThrowIfNull(text);
        calls = [];
        foreach (Match m in Block().Matches(text))
        {
            try
            {
                using var doc = JsonDocument.Parse(m.Groups[1].Value);
                var root = doc.RootElement;
                if (!root.TryGetProperty("name", out var name) || name.ValueKind != JsonValueKind.String) continue;
                string args = root.TryGetProperty("arguments", out var a)
                    ? (a.ValueKind == JsonValueKind.String ? a.GetString()! : a.GetRawText())
                    : "{}";
                calls.Add(new ToolCall("call_" + Guid.NewGuid().ToString("N")[..24], name.GetString()!, args));
            }
            catch (JsonException)
            {
                // not a call after all; leave it in the content
            }
        }
        rest = calls.Count > 0 ? Block().Replace(text, "").Trim() : text;
        return calls.Count > 0;
    }
}
