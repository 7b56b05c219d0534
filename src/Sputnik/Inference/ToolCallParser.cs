using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sputnik.Inference;

/// <summary>
/// Finds tool calls in generated text, in the Hermes/Qwen form
/// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c> or Qwen3.5's (and Qwen3-Coder's) XML form
/// <c>&lt;tool_call&gt;&lt;function=NAME&gt;&lt;parameter=P&gt;value&lt;/parameter&gt;…&lt;/function&gt;&lt;/tool_call&gt;</c>;
/// the rest stays content.
/// </summary>
internal static partial class ToolCallParser
{
    /// <summary>The tag that opens a tool call.</summary>
    public const string OpenTag = "<tool_call>";

    [GeneratedRegex(@"<tool_call>\s*(\{.*?\})\s*</tool_call>", RegexOptions.Singleline)]
    private static partial Regex Block();

    [GeneratedRegex(@"<tool_call>\s*<function=([^>\n]+)>(.*?)</function>\s*</tool_call>", RegexOptions.Singleline)]
    private static partial Regex XmlBlock();

    [GeneratedRegex(@"<parameter=([^>\n]+)>\n?(.*?)\n?</parameter>", RegexOptions.Singleline)]
    private static partial Regex XmlParameter();

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
        if (calls.Count == 0 && TryParseXml(text, calls, out rest)) return true;
        rest = calls.Count > 0 ? Block().Replace(text, "").Trim() : text;
        return calls.Count > 0;
    }

    /// <summary>
    /// The XML form: each parameter's text is its value, taken as JSON when it parses as JSON (numbers, booleans,
    /// objects, arrays; the template writes those with tojson) and as a string otherwise.
    /// </summary>
    private static bool TryParseXml(string text, List<ToolCall> calls, out string rest)
    {
        foreach (Match m in XmlBlock().Matches(text))
        {
            using var json = new MemoryStream();
            using (var w = new Utf8JsonWriter(json))
            {
                w.WriteStartObject();
                foreach (Match p in XmlParameter().Matches(m.Groups[2].Value))
                {
                    w.WritePropertyName(p.Groups[1].Value.Trim());
                    string value = p.Groups[2].Value;
                    if (IsJson(value)) w.WriteRawValue(value);
                    else w.WriteStringValue(value);
                }
                w.WriteEndObject();
            }
            calls.Add(new ToolCall("call_" + Guid.NewGuid().ToString("N")[..24], m.Groups[1].Value.Trim(), System.Text.Encoding.UTF8.GetString(json.ToArray())));
        }
        rest = calls.Count > 0 ? XmlBlock().Replace(text, "").Trim() : text;
        return calls.Count > 0;
    }

    private static bool IsJson(string value)
    {
        if (value.Length == 0 || char.IsWhiteSpace(value[0])) return false;
        try
        {
            using var doc = JsonDocument.Parse(value);
            return doc.RootElement.ValueKind != JsonValueKind.String || value.StartsWith('"');
        }
        catch (JsonException)
        {
            return false;
        }
    }
}
