using System.Text;

namespace Sputnik.Templates;

/// <summary>Python str, dict and list methods that chat templates call (<c>s.strip()</c>, <c>d.items()</c>...).</summary>
internal static class PyMethods
{
    private static readonly HashSet<string> StringMethods =
    [
        "startswith", "endswith", "strip", "lstrip", "rstrip", "split", "rsplit", "splitlines", "replace", "upper",
        "lower", "title", "capitalize", "find", "rfind", "index", "count", "join", "format", "isdigit", "isalpha",
        "isalnum", "isspace", "isupper", "islower", "zfill", "removeprefix", "removesuffix",
    ];

    public static bool IsStringMethod(string name) => StringMethods.Contains(name);

    public static object? Call(object? target, string name, Args a) => target switch
    {
        string s => CallString(s, name, a),
        PyDict d => CallDict(d, name, a),
        List<object?> l => CallList(l, name, a),
        _ => throw new RuntimeFault($"'{PyOps.TypeName(target)}' object has no attribute '{name}'"),
    };

    private static string? OptStr(object? v, string what) => v switch
    {
        null => null,
        string s => s,
        _ => throw new RuntimeFault($"{what} arg must be None or str"),
    };

    public static string Strip(string s, string? chars, bool left, bool right)
    {
        int lo = 0, hi = s.Length;
        bool Strippable(char c) => chars == null ? char.IsWhiteSpace(c) : chars.Contains(c);
        if (left)
            while (lo < hi && Strippable(s[lo])) lo++;
        if (right)
            while (hi > lo && Strippable(s[hi - 1])) hi--;
        return s[lo..hi];
    }

    private static bool AffixMatch(string s, object? affix, bool start)
    {
        var options = affix switch
        {
            string one => [one],
            PyTuple t => t.Items.Select(x => x as string ?? throw new RuntimeFault("tuple for startswith must only contain str")).ToArray(),
            _ => throw new RuntimeFault($"startswith first arg must be str or a tuple of str, not {PyOps.TypeName(affix)}"),
        };
        return options.Any(o => start ? s.StartsWith(o, StringComparison.Ordinal) : s.EndsWith(o, StringComparison.Ordinal));
    }

    public static List<object?> Split(string s, string? sep, long maxsplit)
    {
        var result = new List<object?>();
        if (sep == null)
        {
            var i = 0;
            while (true)
            {
                while (i < s.Length && char.IsWhiteSpace(s[i])) i++;
                if (i >= s.Length) break;
                if (maxsplit >= 0 && result.Count == maxsplit)
                {
                    result.Add(s[i..].TrimEnd());
                    break;
                }
                var j = i;
                while (j < s.Length && !char.IsWhiteSpace(s[j])) j++;
                result.Add(s[i..j]);
                i = j;
            }
            return result;
        }
        if (sep.Length == 0) throw new RuntimeFault("empty separator");
        var start = 0;
        while (maxsplit < 0 || result.Count < maxsplit)
        {
            var k = s.IndexOf(sep, start, StringComparison.Ordinal);
            if (k < 0) break;
            result.Add(s[start..k]);
            start = k + sep.Length;
        }
        result.Add(s[start..]);
        return result;
    }

    private static List<object?> RSplit(string s, string? sep, long maxsplit)
    {
        if (maxsplit < 0 || sep == null) return Split(s, sep, maxsplit);
        var result = new List<object?>();
        var end = s.Length;
        while (result.Count < maxsplit)
        {
            var k = end - sep.Length < 0 ? -1 : s.LastIndexOf(sep, end - 1, end, StringComparison.Ordinal);
            if (k < 0) break;
            result.Insert(0, s[(k + sep.Length)..end]);
            end = k;
        }
        result.Insert(0, s[..end]);
        return result;
    }

    public static string Replace(string s, string old, string @new, long count)
    {
        if (count < 0) return old.Length == 0 ? ReplaceEmpty(s, @new, -1) : s.Replace(old, @new, StringComparison.Ordinal);
        if (old.Length == 0) return ReplaceEmpty(s, @new, count);
        var sb = new StringBuilder();
        var start = 0;
        for (var n = 0; n < count; n++)
        {
            var k = s.IndexOf(old, start, StringComparison.Ordinal);
            if (k < 0) break;
            sb.Append(s, start, k - start).Append(@new);
            start = k + old.Length;
        }
        return sb.Append(s, start, s.Length - start).ToString();
    }

    private static string ReplaceEmpty(string s, string @new, long count)
    {
        var sb = new StringBuilder();
        long n = 0;
        for (var i = 0; i <= s.Length; i++)
        {
            if (count < 0 || n < count)
            {
                sb.Append(@new);
                n++;
            }
            if (i < s.Length) sb.Append(s[i]);
        }
        return sb.ToString();
    }

    public static string Capitalize(string s) => s.Length == 0 ? s : char.ToUpperInvariant(s[0]) + s[1..].ToLowerInvariant();

    /// <summary>Python's str.title: uppercase after any non-letter, lowercase otherwise.</summary>
    public static string PyTitle(string s)
    {
        var sb = new StringBuilder(s.Length);
        var prevLetter = false;
        foreach (var c in s)
        {
            sb.Append(prevLetter ? char.ToLowerInvariant(c) : char.ToUpperInvariant(c));
            prevLetter = char.IsLetter(c);
        }
        return sb.ToString();
    }

    private static long Long(object? v, long fallback) => v switch
    {
        null => fallback,
        long n => n,
        bool b => b ? 1 : 0,
        _ => throw new RuntimeFault($"an integer is required, got {PyOps.TypeName(v)}"),
    };

    private static object? CallString(string s, string name, Args a)
    {
        switch (name)
        {
            case "startswith": return AffixMatch(s, a.Get(0, "prefix"), true);
            case "endswith": return AffixMatch(s, a.Get(0, "suffix"), false);
            case "strip": return Strip(s, OptStr(a.Get(0, "chars"), "strip"), true, true);
            case "lstrip": return Strip(s, OptStr(a.Get(0, "chars"), "lstrip"), true, false);
            case "rstrip": return Strip(s, OptStr(a.Get(0, "chars"), "rstrip"), false, true);
            case "split": return Split(s, OptStr(a.Get(0, "sep"), "split"), Long(a.Get(1, "maxsplit"), -1));
            case "rsplit": return RSplit(s, OptStr(a.Get(0, "sep"), "rsplit"), Long(a.Get(1, "maxsplit"), -1));
            case "splitlines":
                var lines = s.Split('\n').Select(x => (object?)x).ToList();
                if (lines.Count > 0 && (string?)lines[^1] == "") lines.RemoveAt(lines.Count - 1);
                return lines;
            case "replace":
                return Replace(s, Str(a.Get(0, "old")), Str(a.Get(1, "new")), Long(a.Get(2, "count"), -1));
            case "upper": return s.ToUpperInvariant();
            case "lower": return s.ToLowerInvariant();
            case "title": return PyTitle(s);
            case "capitalize": return Capitalize(s);
            case "find": return (long)s.IndexOf(Str(a.Get(0, "sub")), StringComparison.Ordinal);
            case "rfind": return (long)s.LastIndexOf(Str(a.Get(0, "sub")), StringComparison.Ordinal);
            case "index":
                var at = s.IndexOf(Str(a.Get(0, "sub")), StringComparison.Ordinal);
                return at >= 0 ? (long)at : throw new RuntimeFault("substring not found");
            case "count": return CountOf(s, Str(a.Get(0, "sub")));
            case "join": return string.Join(s, PyOps.Iterate(a.Get(0, "iterable")).Select(x => x as string ?? throw new RuntimeFault($"sequence item: expected str instance, {PyOps.TypeName(x)} found")));
            case "format": return Format(s, a);
            case "isdigit": return s.Length > 0 && s.All(char.IsDigit);
            case "isalpha": return s.Length > 0 && s.All(char.IsLetter);
            case "isalnum": return s.Length > 0 && s.All(char.IsLetterOrDigit);
            case "isspace": return s.Length > 0 && s.All(char.IsWhiteSpace);
            case "isupper": return s.Any(char.IsLetter) && !s.Any(char.IsLower);
            case "islower": return s.Any(char.IsLetter) && !s.Any(char.IsUpper);
            case "zfill": return s.PadLeft((int)Long(a.Get(0, "width"), 0), '0');
            case "removeprefix": var p = Str(a.Get(0, "prefix")); return s.StartsWith(p, StringComparison.Ordinal) ? s[p.Length..] : s;
            case "removesuffix": var x2 = Str(a.Get(0, "suffix")); return x2.Length > 0 && s.EndsWith(x2, StringComparison.Ordinal) ? s[..^x2.Length] : s;
            default: throw new RuntimeFault($"'str' object has no attribute '{name}'");
        }
    }

    private static string Str(object? v) => v as string ?? throw new RuntimeFault($"expected a string, got {PyOps.TypeName(v)}");

    private static long CountOf(string s, string sub)
    {
        if (sub.Length == 0) return s.Length + 1;
        long n = 0;
        for (var i = s.IndexOf(sub, StringComparison.Ordinal); i >= 0; i = s.IndexOf(sub, i + sub.Length, StringComparison.Ordinal)) n++;
        return n;
    }

    /// <summary>str.format with <c>{}</c>, <c>{0}</c> and <c>{name}</c> fields (no format specs).</summary>
    private static string Format(string s, Args a)
    {
        var sb = new StringBuilder();
        var auto = 0;
        for (var i = 0; i < s.Length; i++)
        {
            var c = s[i];
            if (c == '{' && i + 1 < s.Length && s[i + 1] == '{') { sb.Append('{'); i++; continue; }
            if (c == '}' && i + 1 < s.Length && s[i + 1] == '}') { sb.Append('}'); i++; continue; }
            if (c != '{') { sb.Append(c); continue; }
            var close = s.IndexOf('}', i);
            if (close < 0) throw new RuntimeFault("Single '{' encountered in format string");
            var field = s[(i + 1)..close];
            object? v = field.Length == 0 ? a.Get(auto++, "\0")
                : long.TryParse(field, out var n) ? a.Get((int)n, "\0")
                : a.Get(-1, field, Undefined.Instance);
            sb.Append(PyFormat.Str(v));
            i = close;
        }
        return sb.ToString();
    }

    // The sandbox refuses the mutating dict and list methods before they get here (Evaluator.GetAttr).
    private static object? CallDict(PyDict d, string name, Args a)
    {
        switch (name)
        {
            case "get":
                return d.TryGet(a.Get(0, "key"), out var v) ? v : a.Get(1, "default");
            case "items": return d.Select(kv => (object?)new PyTuple([kv.Key, kv.Value])).ToList();
            case "keys": return d.Keys.Select(k => (object?)k).ToList();
            case "values": return d.Values.ToList();
            case "copy":
                var copy = new PyDict(d.Count);
                foreach (var kv in d) copy[kv.Key] = kv.Value;
                return copy;
            default: throw new RuntimeFault($"'dict' object has no attribute '{name}'");
        }
    }

    private static object? CallList(List<object?> l, string name, Args a)
    {
        switch (name)
        {
            case "index":
                var fi = l.FindIndex(x => PyOps.Equals(x, a.Get(0, "value")));
                return fi >= 0 ? (long)fi : throw new RuntimeFault("value is not in list");
            case "count": return (long)l.Count(x => PyOps.Equals(x, a.Get(0, "value")));
            case "copy": return new List<object?>(l);
            default: throw new RuntimeFault($"'list' object has no attribute '{name}'");
        }
    }
}
