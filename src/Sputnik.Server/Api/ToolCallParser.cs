namespace Sputnik.Server.Api;

/// <summary>The library's <see cref="Sputnik.Inference.ToolCallParser"/> with its calls in the API's wire shape.</summary>
internal static class ToolCallParser
{
    public static bool TryParse(string text, out List<ToolCallDto> calls, out string rest)
    {
        bool found = Sputnik.Inference.ToolCallParser.TryParse(text, out var parsed, out rest);
        calls = parsed.Select(c => new ToolCallDto(c.Id, "function", new FunctionCallDto(c.Name, c.ArgumentsJson))).ToList();
        return found;
    }
}
