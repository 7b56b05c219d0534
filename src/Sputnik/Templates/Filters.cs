using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Sputnik.Templates;

/// <summary>jinja2's built-in filters (the subset chat templates use), with transformers' <c>tojson</c>.</summary>
internal static partial class Filters
{
    public static object? Apply(Evaluator ev, string name, object? v, Args a)
    {
        // Markup is its text to every filter but the few that keep or produce it.
        if (v is SafeString markup && name is not ("safe" or "escape" or "e" or "string" or "default" or "d")) v = markup.Value;
        a = a.WithPlainStrings();
        switch (name)
        {
            case "trim": return PyMethods.Strip(Str(v), a.Get(0, "chars") as string, true, true);
            case "tojson": return ToJson(v, a);
            case "length" or "count": return PyOps.Length(v);
            case "upper": return Str(v).ToUpperInvariant();
            case "lower": return Str(v).ToLowerInvariant();
            case "capitalize": return PyMethods.Capitalize(Str(v));
            case "title": return Title(Str(v));
            case "replace":
                var count = a.Get(2, "count") is long c ? c : -1;
                return PyMethods.Replace(Str(v), Str(a.Get(0, "old")), Str(a.Get(1, "new")), count);
            case "join":
                var attr = a.Get(1, "attribute") as string;
                var parts = PyOps.Iterate(v).Select(x => PyFormat.Str(attr == null ? x : GetPath(x, attr)));
                return string.Join(Str(a.Get(0, "d", "")), parts);
            case "first":
                if (v is PyIterator fi) return fi.TryNext(out var firstItem) ? firstItem : new Undefined("No first item, sequence was empty.");
                var fl = PyOps.Iterate(v);
                return fl.Count > 0 ? fl[0] : new Undefined("No first item, sequence was empty.");
            case "last":
                if (v is PyIterator li) throw new RuntimeFault($"'{li.TypeName}' object is not reversible");
                var ll = PyOps.Iterate(v);
                return ll.Count > 0 ? ll[^1] : new Undefined("No last item, sequence was empty.");
            case "default" or "d":
                var boolean = PyOps.Truthy(a.Get(1, "boolean", false));
                return v is Undefined || (boolean && !PyOps.Truthy(v)) ? a.Get(0, "default_value", "") : v;
            case "string": return v is SafeString ? v : PyFormat.Str(v);
            case "int": return ToInt(v, a.Get(0, "default", 0L), a.Get(1, "base", 10L));
            case "float": return ToFloat(v, a.Get(0, "default", 0.0));
            case "list": return PyOps.Iterate(v).ToList();
            case "items":
                if (v is Undefined) return new List<object?>();
                if (v is not PyDict dict) throw new RuntimeFault("Can only get item pairs from a mapping.");
                return dict.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList();
            case "selectattr" or "rejectattr":
                return SelectAttr(ev, v, a, name == "selectattr");
            case "select" or "reject":
                return Select(ev, v, a, name == "select");
            case "map": return Map(ev, v, a);
            case "unique": return Unique(v, a);
            case "safe": return v as SafeString ?? new SafeString(PyFormat.Str(v));
            case "escape" or "e": return v as SafeString ?? new SafeString(Escape(PyFormat.Str(v)));
            case "forceescape": return new SafeString(Escape(PyFormat.Str(v)));
            case "abs":
                return v switch
                {
                    long n => (object)Math.Abs(n),
                    double d => Math.Abs(d),
                    bool b => b ? 1L : 0L,
                    _ => throw new RuntimeFault($"bad operand type for abs(): '{PyOps.TypeName(v)}'"),
                };
            case "round": return Round(v, a);
            case "reverse":
                if (v is string rs)
                {
                    var chars = rs.ToCharArray();
                    Array.Reverse(chars);
                    return new string(chars);
                }
                // Python's reversed(): a one-shot iterator over a list, tuple or dict; a generator becomes a list.
                if (v is PyIterator)
                {
                    var rl = PyOps.Iterate(v).ToList();
                    rl.Reverse();
                    return rl;
                }
                var items = PyOps.Iterate(v);
                return new PyIterator(v is PyDict ? "dict_reversekeyiterator" : "list_reverseiterator", Reversed(items));
            case "sort":
                return SortItems(PyOps.Iterate(v), PyOps.Truthy(a.Get(0, "reverse", false)),
                    PyOps.Truthy(a.Get(1, "case_sensitive", false)), a.Get(2, "attribute") as string);
            case "dictsort": return DictSort(v, a);
            case "min" or "max":
                var mm = SortItems(PyOps.Iterate(v), false, PyOps.Truthy(a.Get(0, "case_sensitive", false)), a.Get(1, "attribute") as string);
                return mm.Count == 0 ? new Undefined($"No aggregated item, sequence was empty.") : name == "min" ? mm[0] : mm[^1];
            case "sum":
                var sattr = a.Get(0, "attribute") as string;
                object? total = a.Get(1, "start", 0L);
                foreach (var x in PyOps.Iterate(v)) total = PyOps.Add(total, sattr == null ? x : GetPath(x, sattr));
                return total;
            case "batch": return Batch(v, a);
            case "indent": return Indent(Str(v), a);
            case "wordcount": return (long)WordRegex().Matches(Str(v)).Count;
            case "center":
                var cs = Str(v);
                var width = (int)(a.Get(0, "width", 80L) as long? ?? 80);
                if (cs.Length >= width) return cs;
                var left = (width - cs.Length) / 2 + ((width - cs.Length) % 2 & width % 2);
                return new string(' ', left) + cs + new string(' ', width - cs.Length - left);
            case "attr": return Evaluator.GetAttr(v, Str(a.Get(0, "name")));
            case "format": return PyOps.Arith("%", Str(v), new PyTuple(a.Positional));
            case "pprint": return PyFormat.Repr(v);
            case "bool": return PyOps.Truthy(v);
            default: throw new RuntimeFault($"no filter named '{name}'");
        }
    }

    private static string Str(object? v) => PyFormat.Str(v);

    [GeneratedRegex(@"\w+")]
    private static partial Regex WordRegex();

    [GeneratedRegex(@"([-\s({\[<]+)")]
    private static partial Regex WordBeginRegex();

    private static string Title(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var item in WordBeginRegex().Split(s))
        {
            if (item.Length == 0) continue;
            sb.Append(char.ToUpperInvariant(item[0])).Append(item[1..].ToLowerInvariant());
        }
        return sb.ToString();
    }

    public static string Escape(string s) => s.Replace("&", "&amp;").Replace("<", "&lt;").Replace(">", "&gt;")
        .Replace("\"", "&#34;").Replace("'", "&#39;");

    private static string ToJson(object? v, Args a)
    {
        var indentArg = a.Get(-1, "indent");
        if (a.Count > 0) indentArg = a.Positional[0];
        var indent = indentArg switch
        {
            null => null,
            long n => new string(' ', (int)Math.Max(0, n)),
            string s => s,
            _ => throw new RuntimeFault("indent must be an int or a string"),
        };
        string? itemSep = null, keySep = null;
        if (a.Get(-1, "separators") is IReadOnlyList<object?> { Count: 2 } seps)
        {
            itemSep = seps[0] as string;
            keySep = seps[1] as string;
        }
        return PyJson.Dumps(v, indent, itemSep, keySep, PyOps.Truthy(a.Get(-1, "sort_keys", false)),
            PyOps.Truthy(a.Get(-1, "ensure_ascii", false)));
    }

    private static object? ToInt(object? v, object? fallback, object? baseArg)
    {
        switch (v)
        {
            case long n: return n;
            case bool b: return b ? 1L : 0L;
            case double d: return double.IsFinite(d) ? (long)Math.Truncate(d) : fallback;
            case string s:
                var t = s.Trim().Replace("_", "");
                var bas = baseArg is long bl ? (int)bl : 10;
                try
                {
                    if (bas == 10 && long.TryParse(t, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var parsed)) return parsed;
                    if (bas != 10) return Convert.ToInt64(t, bas);
                }
                catch (FormatException)
                {
                    return fallback;
                }
                return double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out var f) && double.IsFinite(f) ? (long)Math.Truncate(f) : fallback;
            default: return fallback;
        }
    }

    private static object? ToFloat(object? v, object? fallback) => v switch
    {
        double d => d,
        long n => (double)n,
        bool b => b ? 1.0 : 0.0,
        string s when double.TryParse(s.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out var f) => f,
        _ => fallback,
    };

    private static object? Round(object? v, Args a)
    {
        var precision = a.Get(0, "precision", 0L) is long p ? (int)p : 0;
        var method = a.Get(1, "method", "common") as string ?? "common";
        var x = PyOps.ToDouble(v);
        var scale = Math.Pow(10, precision);
        return method switch
        {
            "common" => v is long or bool ? v is bool bb ? (bb ? 1L : 0L) : v : Math.Round(x, Math.Max(0, precision), MidpointRounding.ToEven),
            "ceil" => Math.Ceiling(x * scale) / scale,
            "floor" => Math.Floor(x * scale) / scale,
            _ => throw new RuntimeFault("method must be common, ceil or floor"),
        };
    }

    /// <summary>Follows a dotted attribute path (<c>"function.name"</c>, numeric parts index) like jinja2's attrgetter.</summary>
    public static object? GetPath(object? item, string path)
    {
        foreach (var part in path.Split('.'))
            item = long.TryParse(part, out var idx) ? Evaluator.GetItem(item, idx) : Evaluator.GetItem(item, part);
        return item;
    }

    private static IEnumerable<object?> Reversed(IReadOnlyList<object?> items)
    {
        for (var i = items.Count - 1; i >= 0; i--) yield return items[i];
    }

    // jinja2's select/reject/selectattr/rejectattr/map are generators: lazy, one-shot, and an empty or None input
    // gives an empty one (they start with `if value:`).
    private static IReadOnlyList<object?> Source(object? v) => PyOps.Truthy(v) ? PyOps.Iterate(v) : [];

    private static PyIterator SelectAttr(Evaluator ev, object? v, Args a, bool select)
    {
        var attr = a.Get(0, "attr") as string ?? throw new RuntimeFault("selectattr needs an attribute name");
        return new PyIterator("generator", Source(v).Where(item =>
        {
            var value = GetPath(item, attr);
            var ok = a.Count > 1
                ? Tests.Apply(ev, a.Positional[1] as string ?? "", value, new Args(a.Positional[2..], []))
                : PyOps.Truthy(value);
            return ok == select;
        }));
    }

    private static PyIterator Select(Evaluator ev, object? v, Args a, bool select)
    {
        return new PyIterator("generator", Source(v).Where(item =>
        {
            var ok = a.Count > 0
                ? Tests.Apply(ev, a.Positional[0] as string ?? "", item, new Args(a.Positional[1..], []))
                : PyOps.Truthy(item);
            return ok == select;
        }));
    }

    private static PyIterator Map(Evaluator ev, object? v, Args a)
    {
        var items = Source(v);
        if (a.Get(-1, "attribute") is string attr)
        {
            var hasDefault = a.Has(-1, "default");
            var def = a.Get(-1, "default");
            return new PyIterator("generator", items.Select(x =>
            {
                var r = GetPath(x, attr);
                return r is Undefined && hasDefault ? def : r;
            }));
        }
        if (a.Count == 0) return new PyIterator("generator", items);
        var filter = a.Positional[0] as string ?? throw new RuntimeFault("map needs a filter name or attribute=");
        var rest = new Args(a.Positional[1..], a.Keywords);
        return new PyIterator("generator", items.Select(x => Apply(ev, filter, x, rest)));
    }

    private static object? SortKey(object? x, bool caseSensitive, string? attribute)
    {
        if (attribute != null) x = GetPath(x, attribute);
        return !caseSensitive && x is string s ? s.ToLowerInvariant() : x;
    }

    public static List<object?> SortItems(IEnumerable<object?> items, bool reverse, bool caseSensitive, string? attribute)
    {
        var keyed = items.Select(x => (Key: SortKey(x, caseSensitive, attribute), Item: x)).ToList();
        var sorted = keyed.OrderBy(p => p.Key, Comparer<object?>.Create((l, r) => PyOps.Compare(l, r))).ToList();
        if (reverse)
        {
            // Python's sort(reverse=True) keeps equal items in their original order.
            sorted = keyed.OrderByDescending(p => p.Key, Comparer<object?>.Create((l, r) => PyOps.Compare(l, r))).ToList();
        }
        return sorted.Select(p => p.Item).ToList();
    }

    private static List<object?> Unique(object? v, Args a)
    {
        var caseSensitive = PyOps.Truthy(a.Get(0, "case_sensitive", false));
        var attr = a.Get(1, "attribute") as string;
        var seen = new List<object?>();
        var result = new List<object?>();
        foreach (var item in PyOps.Iterate(v))
        {
            var key = SortKey(item, caseSensitive, attr);
            if (seen.Any(s => PyOps.Equals(s, key))) continue;
            seen.Add(key);
            result.Add(item);
        }
        return result;
    }

    private static List<object?> DictSort(object? v, Args a)
    {
        if (v is not PyDict d) throw new RuntimeFault("dictsort expects a mapping");
        var caseSensitive = PyOps.Truthy(a.Get(0, "case_sensitive", false));
        var by = a.Get(1, "by", "key") as string;
        var reverse = PyOps.Truthy(a.Get(2, "reverse", false));
        var pos = by == "value" ? 1 : 0;
        var pairs = d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList();
        var keyed = pairs.Select(p => (Key: SortKey(((PyTuple)p!)[pos], caseSensitive, null), Item: p));
        var cmp = Comparer<object?>.Create((l, r) => PyOps.Compare(l, r));
        var sorted = reverse ? keyed.OrderByDescending(p => p.Key, cmp) : keyed.OrderBy(p => p.Key, cmp);
        return sorted.Select(p => (object?)p.Item).ToList();
    }

    private static List<object?> Batch(object? v, Args a)
    {
        var size = a.Get(0, "linecount") is long n && n > 0 ? (int)n : throw new RuntimeFault("batch needs a positive size");
        var fill = a.Has(1, "fill_with") ? a.Get(1, "fill_with") : null;
        var hasFill = a.Has(1, "fill_with") && fill != null;
        var result = new List<object?>();
        List<object?>? cur = null;
        foreach (var item in PyOps.Iterate(v))
        {
            cur ??= [];
            cur.Add(item);
            if (cur.Count == size)
            {
                result.Add(cur);
                cur = null;
            }
        }
        if (cur != null)
        {
            while (hasFill && cur.Count < size) cur.Add(fill);
            result.Add(cur);
        }
        return result;
    }

    private static string Indent(string s, Args a)
    {
        var w = a.Get(0, "width", 4L);
        var indention = w is string ws ? ws : new string(' ', (int)(w as long? ?? 4));
        var first = PyOps.Truthy(a.Get(1, "first", false));
        var blank = PyOps.Truthy(a.Get(2, "blank", false));
        var lines = (s + "\n").Split('\n').ToList();
        lines.RemoveAt(lines.Count - 1);
        string rv;
        if (blank)
        {
            rv = string.Join("\n" + indention, lines);
        }
        else
        {
            rv = lines[0];
            if (lines.Count > 1)
                rv += "\n" + string.Join("\n", lines.Skip(1).Select(l => l.Length > 0 ? indention + l : l));
        }
        return first ? indention + rv : rv;
    }
}
