using System.Text.Json;
using System.Text.RegularExpressions;

namespace Sputnik.Server.Api;

/// <summary>
/// Finds tool calls in generated text, in the Hermes/Qwen form
/// <c>&lt;tool_call&gt;{"name": ..., "arguments": {...}}&lt;/tool_call&gt;</c>; the rest stays content.
/// </summary>
internal static partial class ToolCallParser
{
    [GeneratedRegex(@"<tool_call>\s*(\{.*?\})\s*</tool_call>", RegexOptions.Singleline)]
    private static partial Regex Block();

    public static bool TryParse(string text, out List<ToolCallDto> calls, out string rest)
    {
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
                calls.Add(new ToolCallDto("call_" + Guid.NewGuid().ToString("N")[..24], "function", new FunctionCallDto(name.GetString()!, args)));
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
