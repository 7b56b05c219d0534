using System.Globalization;
using System.Text;

namespace Sputnik.Templates;

/// <summary>Python's <c>str()</c> and <c>repr()</c> for runtime values, so printed values match jinja2.</summary>
internal static class PyFormat
{
    public static string Str(object? v) => v switch
    {
        string s => s,
        SafeString m => m.Value,
        null => "None",
        bool b => b ? "True" : "False",
        long n => n.ToString(CultureInfo.InvariantCulture),
        double d => Float(d),
        Undefined => "",
        _ => Repr(v),
    };

    public static string Repr(object? v)
    {
        var sb = new StringBuilder();
        AppendRepr(sb, v);
        return sb.ToString();
    }

    public static void AppendRepr(StringBuilder sb, object? v)
    {
        switch (v)
        {
            case string s: AppendStringRepr(sb, s); break;
            case List<object?> list:
                sb.Append('[');
                for (var i = 0; i < list.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, list[i]);
                }
                sb.Append(']');
                break;
            case PyTuple t:
                sb.Append('(');
                for (var i = 0; i < t.Count; i++)
                {
                    if (i > 0) sb.Append(", ");
                    AppendRepr(sb, t[i]);
                }
                if (t.Count == 1) sb.Append(',');
                sb.Append(')');
                break;
            case PyDict d:
                AppendDictRepr(sb, d.Select(kv => new KeyValuePair<object?, object?>(kv.Key, kv.Value)));
                break;
            case Namespace ns:
                sb.Append("<Namespace ");
                AppendDictRepr(sb, ns.Attrs.Select(kv => new KeyValuePair<object?, object?>(kv.Key, kv.Value)));
                sb.Append('>');
                break;
            case SafeString m:
                sb.Append("Markup(");
                AppendStringRepr(sb, m.Value);
                sb.Append(')');
                break;
            case PyIterator it: sb.Append('<').Append(it.TypeName).Append(" object>"); break;
            case Undefined: break;
            case Callable c: sb.Append("<function ").Append(c is BuiltinFunction bf ? bf.Name : c.GetType().Name).Append('>'); break;
            case null or bool or long or double: sb.Append(Str(v)); break;
            default: sb.Append(v.ToString()); break;
        }
    }

    private static void AppendDictRepr(StringBuilder sb, IEnumerable<KeyValuePair<object?, object?>> pairs)
    {
        sb.Append('{');
        var first = true;
        foreach (var kv in pairs)
        {
            if (!first) sb.Append(", ");
            first = false;
            AppendRepr(sb, kv.Key);
            sb.Append(": ");
            AppendRepr(sb, kv.Value);
        }
        sb.Append('}');
    }

    /// <summary>Python's repr of a str: single quotes unless the text has ' and no ".</summary>
    public static void AppendStringRepr(StringBuilder sb, string s)
    {
        var q = s.Contains('\'') && !s.Contains('"') ? '"' : '\'';
        sb.Append(q);
        foreach (var c in s)
        {
            switch (c)
            {
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c == q) sb.Append('\\').Append(c);
                    else if (c < 0x20 || c == 0x7f) sb.Append("\\x").Append(((int)c).ToString("x2", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append(q);
    }

    /// <summary>Python's float repr: shortest round-trip digits, ".0" on integral values, exponent outside [1e-4, 1e16).</summary>
    public static string Float(double d)
    {
        if (double.IsNaN(d)) return "nan";
        if (double.IsPositiveInfinity(d)) return "inf";
        if (double.IsNegativeInfinity(d)) return "-inf";
        if (d == 0) return double.IsNegative(d) ? "-0.0" : "0.0";
        // Shortest round-trip digits come from "R"; decompose it into digits and a decimal exponent.
        var shortest = d.ToString("R", CultureInfo.InvariantCulture);
        var neg = shortest.StartsWith('-');
        if (neg) shortest = shortest[1..];
        int exp10;
        string mant;
        var ei = shortest.IndexOfAny(['E', 'e']);
        if (ei >= 0)
        {
            mant = shortest[..ei];
            exp10 = int.Parse(shortest[(ei + 1)..], CultureInfo.InvariantCulture);
        }
        else
        {
            mant = shortest;
            exp10 = 0;
        }
        var dot = mant.IndexOf('.');
        var intPart = dot >= 0 ? mant[..dot] : mant;
        var fracPart = dot >= 0 ? mant[(dot + 1)..] : "";
        var digits = (intPart + fracPart).TrimStart('0');
        var lead = (intPart + fracPart).Length - digits.Length;
        // value = 0.d1d2d3... * 10^(pointPos)
        var pointPos = intPart.Length + exp10 - lead;
        digits = digits.TrimEnd('0');
        if (digits.Length == 0) digits = "0";
        var sciExp = pointPos - 1;
        var sb = new StringBuilder();
        if (neg) sb.Append('-');
        if (sciExp < -4 || sciExp >= 16)
        {
            sb.Append(digits[0]);
            if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
            sb.Append('e').Append(sciExp < 0 ? '-' : '+').Append(Math.Abs(sciExp).ToString("00", CultureInfo.InvariantCulture));
        }
        else if (pointPos <= 0)
        {
            sb.Append("0.").Append('0', -pointPos).Append(digits);
        }
        else if (pointPos >= digits.Length)
        {
            sb.Append(digits).Append('0', pointPos - digits.Length).Append(".0");
        }
        else
        {
            sb.Append(digits, 0, pointPos).Append('.').Append(digits, pointPos, digits.Length - pointPos);
        }
        return sb.ToString();
    }
}
