using System.Globalization;
using System.Text;

namespace Sputnik.Templates;

/// <summary>
/// Python's <c>json.dumps</c> as transformers binds it for chat templates:
/// <c>json.dumps(x, ensure_ascii=False, indent=indent, separators=separators, sort_keys=sort_keys)</c>.
/// </summary>
internal static class PyJson
{
    public static string Dumps(object? value, string? indent, string? itemSep, string? keySep, bool sortKeys, bool ensureAscii)
    {
        var sb = new StringBuilder();
        itemSep ??= indent != null ? "," : ", ";
        keySep ??= ": ";
        Write(sb, value, indent, itemSep, keySep, sortKeys, ensureAscii, 0);
        return sb.ToString();
    }

    private static void NewLine(StringBuilder sb, string? indent, int level)
    {
        if (indent == null) return;
        sb.Append('\n');
        for (var i = 0; i < level; i++) sb.Append(indent);
    }

    private static void Write(StringBuilder sb, object? v, string? indent, string itemSep, string keySep, bool sortKeys, bool ascii, int level)
    {
        switch (v)
        {
            case null: sb.Append("null"); break;
            case bool b: sb.Append(b ? "true" : "false"); break;
            case long n: sb.Append(n.ToString(CultureInfo.InvariantCulture)); break;
            case double d:
                sb.Append(double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyFormat.Float(d));
                break;
            case string s: WriteString(sb, s, ascii); break;
            case SafeString m: WriteString(sb, m.Value, ascii); break;
            case IReadOnlyList<object?> list:
                if (list.Count == 0)
                {
                    sb.Append("[]");
                    break;
                }
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(itemSep);
                    NewLine(sb, indent, level + 1);
                    Write(sb, list[i], indent, itemSep, keySep, sortKeys, ascii, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append(']');
                break;
            case PyDict dict:
                if (dict.Count == 0)
                {
                    sb.Append("{}");
                    break;
                }
                sb.Append('{');
                // json.dumps writes int, float, bool keys as their JSON text ("1", "1.5", "true"); sort_keys compares
                // the original keys, so mixed str and int keys cannot be sorted (TypeError, as in Python).
                IEnumerable<KeyValuePair<object, object?>> pairs = sortKeys
                    ? dict.OrderBy(kv => kv.Key, Comparer<object>.Create((l, r) => PyOps.Compare(l, r)))
                    : dict;
                var first = true;
                foreach (var kv in pairs)
                {
                    if (!first) sb.Append(itemSep);
                    first = false;
                    NewLine(sb, indent, level + 1);
                    WriteString(sb, KeyText(kv.Key), ascii);
                    sb.Append(keySep);
                    Write(sb, kv.Value, indent, itemSep, keySep, sortKeys, ascii, level + 1);
                }
                NewLine(sb, indent, level);
                sb.Append('}');
                break;
            default:
                throw new RuntimeFault($"Object of type {PyOps.TypeName(v)} is not JSON serializable");
        }
    }

    private static string KeyText(object key) => key switch
    {
        string s => s,
        SafeString m => m.Value,
        bool b => b ? "true" : "false",
        long n => n.ToString(CultureInfo.InvariantCulture),
        double d => double.IsNaN(d) ? "NaN" : double.IsPositiveInfinity(d) ? "Infinity" : double.IsNegativeInfinity(d) ? "-Infinity" : PyFormat.Float(d),
        _ => throw new RuntimeFault($"keys must be str, int, float, bool or None, not {PyOps.TypeName(key)}"),
    };

    private static void WriteString(StringBuilder sb, string s, bool ascii)
    {
        sb.Append('"');
        foreach (var c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20 || (ascii && c > 0x7f)) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}
