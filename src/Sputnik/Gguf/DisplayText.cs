using System.Globalization;
using System.Text;

namespace Sputnik.Gguf;

/// <summary>
/// Makes text that came from a file (keys, names, whole error messages) safe to show: control characters (ESC, CR,
/// BEL, …), bidi overrides and other invisible format characters become visible escapes (\x1B, \r, \u202E), so a
/// string in a model file can neither move a terminal's cursor nor hide what surrounds it; text longer than the limit
/// keeps its beginning and its end (where an error message says what is wrong) and says how much was cut.
/// </summary>
internal static class DisplayText
{
    /// <summary>Longest message shown whole; GGUF errors and CLI error lines are capped at this.</summary>
    public const int MessageChars = 240;

    /// <summary>Longest key or tensor name quoted inside a message.</summary>
    public const int NameChars = 64;

    public static string Safe(string? text, int maxChars = MessageChars)
    {
        if (string.IsNullOrEmpty(text)) return text ?? "";
        if (text.Length <= maxChars && !text.Any(NeedsEscape)) return text;
        var sb = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            if (!NeedsEscape(c)) { sb.Append(c); continue; }
            sb.Append(c switch
            {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                < '\u0100' => $"\\x{(int)c:X2}",
                _ => $"\\u{(int)c:X4}",
            });
        }
        if (sb.Length <= maxChars) return sb.ToString();
        int tail = maxChars / 3, head = maxChars - tail;
        string escaped = sb.ToString();
        return $"{escaped[..head]}…[{escaped.Length - head - tail} chars cut]…{escaped[^tail..]}";
    }

    /// <summary>A key or tensor name from a file, for quoting inside a message.</summary>
    public static string Name(string? name) => Safe(name, NameChars);

    private static bool NeedsEscape(char c) => char.IsControl(c) || CharUnicodeInfo.GetUnicodeCategory(c) == UnicodeCategory.Format;
}
