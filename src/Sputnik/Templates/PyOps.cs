using System.Text;

namespace Sputnik.Templates;

/// <summary>Python semantics for truthiness, equality, ordering, arithmetic, membership and iteration.</summary>
internal static class PyOps
{
    public static string TypeName(object? v) => v switch
    {
        null => "NoneType",
        bool => "bool",
        long => "int",
        double => "float",
        string => "str",
        SafeString => "Markup",
        List<object?> => "list",
        PyDict => "dict",
        PyIterator it => it.TypeName,
        PyTuple => "tuple",
        Namespace => "Namespace",
        Undefined => "Undefined",
        Callable => "function",
        _ => v.GetType().Name,
    };

    public static bool Truthy(object? v) => v switch
    {
        null => false,
        bool b => b,
        long n => n != 0,
        double d => d != 0,
        string s => s.Length > 0,
        SafeString m => m.Value.Length > 0,
        Undefined => false,
        List<object?> l => l.Count > 0,
        PyDict d => d.Count > 0,
        PyTuple t => t.Count > 0,
        _ => true,
    };

    public static bool IsNumber(object? v) => v is long or double or bool;

    public static double ToDouble(object? v) => v switch
    {
        long n => n,
        double d => d,
        bool b => b ? 1 : 0,
        _ => throw new RuntimeFault($"expected a number, got {TypeName(v)}"),
    };

    private static long ToLong(object? v) => v switch
    {
        long n => n,
        bool b => b ? 1 : 0,
        _ => throw new RuntimeFault($"expected an integer, got {TypeName(v)}"),
    };

    /// <summary>The text of a str or Markup value, else null.</summary>
    public static string? Text(object? v) => v switch
    {
        string s => s,
        SafeString m => m.Value,
        _ => null,
    };

    public static new bool Equals(object? a, object? b)
    {
        if (ReferenceEquals(a, b)) return true;
        switch (a)
        {
            case null: return b is null;
            case string or SafeString: return Text(b) is { } textB && Text(a) == textB;
            case Undefined: return b is Undefined;
            case long or double or bool when IsNumber(b):
                if (a is double || b is double) return ToDouble(a) == ToDouble(b);
                return ToLong(a) == ToLong(b);
            case List<object?> la:
                if (b is not List<object?> lb || la.Count != lb.Count) return false;
                for (var i = 0; i < la.Count; i++)
                    if (!Equals(la[i], lb[i])) return false;
                return true;
            case PyTuple ta:
                if (b is not PyTuple tb || ta.Count != tb.Count) return false;
                for (var i = 0; i < ta.Count; i++)
                    if (!Equals(ta[i], tb[i])) return false;
                return true;
            case PyDict da:
                if (b is not PyDict db || da.Count != db.Count) return false;
                foreach (var kv in da)
                    if (!db.TryGetValue(kv.Key, out var ov) || !Equals(kv.Value, ov)) return false;
                return true;
            default: return a.Equals(b);
        }
    }

    /// <summary>Python ordering; raises for unorderable pairs like jinja2 (TypeError).</summary>
    public static int Compare(object? a, object? b, string op = "<")
    {
        if (IsNumber(a) && IsNumber(b))
        {
            if (a is double || b is double) return ToDouble(a).CompareTo(ToDouble(b));
            return ToLong(a).CompareTo(ToLong(b));
        }
        if (Text(a) is { } sa && Text(b) is { } sb) return string.CompareOrdinal(sa, sb) switch { < 0 => -1, > 0 => 1, _ => 0 };
        if ((a is List<object?> && b is List<object?>) || (a is PyTuple && b is PyTuple))
        {
            var la = (IReadOnlyList<object?>)a;
            var lb = (IReadOnlyList<object?>)b;
            for (var i = 0; i < Math.Min(la.Count, lb.Count); i++)
            {
                if (Equals(la[i], lb[i])) continue;
                return Compare(la[i], lb[i], op);
            }
            return la.Count.CompareTo(lb.Count);
        }
        if (a is Undefined ua) throw ua.Fault();
        if (b is Undefined ub) throw ub.Fault();
        throw new RuntimeFault($"'{op}' not supported between instances of '{TypeName(a)}' and '{TypeName(b)}'");
    }

    private static void CheckUndefined(object? a, object? b)
    {
        if (a is Undefined ua) throw ua.Fault();
        if (b is Undefined ub) throw ub.Fault();
    }

    private static RuntimeFault Unsupported(string op, object? a, object? b) =>
        new($"unsupported operand type(s) for {op}: '{TypeName(a)}' and '{TypeName(b)}'");

    public static object? Add(object? a, object? b)
    {
        CheckUndefined(a, b);
        if (a is SafeString || b is SafeString)
        {
            // Markup + str escapes the str (markupsafe's __add__ / __radd__), even without autoescape.
            if (Text(a) is { } textA && Text(b) is { } textB) return new SafeString(string.Concat(EscapeUnlessSafe(a, textA), EscapeUnlessSafe(b, textB)));
            throw Unsupported("+", a, b);
        }
        if (a is string sa)
            return b is string sb ? string.Concat(sa, sb) : throw new RuntimeFault($"can only concatenate str (not \"{TypeName(b)}\") to str");
        if (IsNumber(a) && IsNumber(b))
            return a is double || b is double ? (object)(ToDouble(a) + ToDouble(b)) : ToLong(a) + ToLong(b);
        if (a is List<object?> la && b is List<object?> lb) return new List<object?>(la.Concat(lb));
        if (a is PyTuple ta && b is PyTuple tb) return new PyTuple([.. ta.Items, .. tb.Items]);
        throw Unsupported("+", a, b);
    }

    public static object? Arith(string op, object? a, object? b)
    {
        CheckUndefined(a, b);
        if (op == "*")
        {
            if (a is string s && b is long or bool) return Repeat(s, ToLong(b));
            if (b is string s2 && a is long or bool) return Repeat(s2, ToLong(a));
            if (a is List<object?> l && b is long or bool) return RepeatList(l, ToLong(b));
        }
        if (op == "%" && a is string fmt) return PercentFormat(fmt, b);
        if (op == "%" && a is SafeString markup) return new SafeString(PercentFormat(markup.Value, EscapeArgs(b)));
        if (!IsNumber(a) || !IsNumber(b)) throw Unsupported(op, a, b);
        var isFloat = a is double || b is double;
        switch (op)
        {
            case "-": return isFloat ? (object)(ToDouble(a) - ToDouble(b)) : ToLong(a) - ToLong(b);
            case "*": return isFloat ? (object)(ToDouble(a) * ToDouble(b)) : ToLong(a) * ToLong(b);
            case "/":
                if (ToDouble(b) == 0) throw new RuntimeFault("division by zero");
                return ToDouble(a) / ToDouble(b);
            case "//":
                if (ToDouble(b) == 0) throw new RuntimeFault("integer division or modulo by zero");
                if (isFloat) return (object)Math.Floor(ToDouble(a) / ToDouble(b));
                return FloorDiv(ToLong(a), ToLong(b));
            case "%":
                if (ToDouble(b) == 0) throw new RuntimeFault("integer division or modulo by zero");
                if (isFloat)
                {
                    var x = ToDouble(a);
                    var y = ToDouble(b);
                    var m = x % y;
                    return (object)(m != 0 && (m < 0) != (y < 0) ? m + y : m);
                }
                var (la, lb) = (ToLong(a), ToLong(b));
                var r = la % lb;
                return r != 0 && (r < 0) != (lb < 0) ? r + lb : r;
            case "**":
                if (!isFloat && ToLong(b) >= 0)
                {
                    long acc = 1, bas = ToLong(a);
                    for (var e = ToLong(b); e > 0; e--) acc *= bas;
                    return acc;
                }
                return Math.Pow(ToDouble(a), ToDouble(b));
            default: throw new RuntimeFault($"unknown operator {op}");
        }
    }

    /// <summary>markupsafe.escape of a plain string operand; Markup passes through.</summary>
    private static string EscapeUnlessSafe(object? v, string text) => v is SafeString ? text : Filters.Escape(text);

    private static object? EscapeArgs(object? args) => args switch
    {
        PyTuple t => new PyTuple(t.Items.Select(EscapeArg).ToArray()),
        _ => EscapeArg(args),
    };

    private static object? EscapeArg(object? v) => v is long or double or bool or SafeString ? v : new SafeString(Filters.Escape(PyFormat.Str(v)));

    private static long FloorDiv(long a, long b)
    {
        var q = a / b;
        return (a % b != 0) && ((a < 0) != (b < 0)) ? q - 1 : q;
    }

    private static string Repeat(string s, long n)
    {
        var sb = new StringBuilder();
        for (var i = 0; i < n; i++) sb.Append(s);
        return sb.ToString();
    }

    private static List<object?> RepeatList(List<object?> l, long n)
    {
        var r = new List<object?>();
        for (var i = 0; i < n; i++) r.AddRange(l);
        return r;
    }

    /// <summary>Minimal printf-style <c>"%s" % x</c>: %s, %d, %i, %r, %f, %%.</summary>
    private static string PercentFormat(string fmt, object? args)
    {
        var items = args is PyTuple t ? t.Items : [args];
        var sb = new StringBuilder();
        var k = 0;
        for (var i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            var c = fmt[++i];
            if (c == '%') { sb.Append('%'); continue; }
            if (k >= items.Length) throw new RuntimeFault("not enough arguments for format string");
            var v = items[k++];
            sb.Append(c switch
            {
                's' => PyFormat.Str(v),
                'r' => PyFormat.Repr(v),
                'd' or 'i' => ((long)Math.Truncate(ToDouble(v))).ToString(System.Globalization.CultureInfo.InvariantCulture),
                'f' => ToDouble(v).ToString("F6", System.Globalization.CultureInfo.InvariantCulture),
                _ => throw new RuntimeFault($"unsupported format character '{c}'"),
            });
        }
        return sb.ToString();
    }

    public static object? Negate(object? v) => v switch
    {
        long n => (object)(-n),
        double d => -d,
        bool b => b ? -1L : 0L,
        Undefined u => throw u.Fault(),
        _ => throw new RuntimeFault($"bad operand type for unary -: '{TypeName(v)}'"),
    };

    public static bool Contains(object? container, object? item)
    {
        switch (container)
        {
            case string or SafeString:
                if (Text(item) is not { } sub) throw new RuntimeFault($"'in <string>' requires string as left operand, not {TypeName(item)}");
                return Text(container)!.Contains(sub, StringComparison.Ordinal);
            case PyDict d: return d.TryGet(item, out _);
            case PyIterator it:
                while (it.TryNext(out var next))
                    if (Equals(next, item)) return true;
                return false;
            case List<object?> l:
                foreach (var x in l)
                    if (Equals(x, item)) return true;
                return false;
            case PyTuple t:
                foreach (var x in t)
                    if (Equals(x, item)) return true;
                return false;
            case Namespace ns: return item is string key && ns.Attrs.ContainsKey(key);
            case Undefined: return false; // Python falls back to Undefined.__iter__, which is empty
            default: throw new RuntimeFault($"argument of type '{TypeName(container)}' is not iterable");
        }
    }

    /// <summary>
    /// Python iteration: list/tuple items, dict keys, string characters, an iterator's remaining items (consuming
    /// it); Undefined iterates as empty.
    /// </summary>
    public static IReadOnlyList<object?> Iterate(object? v) => v switch
    {
        List<object?> l => l,
        PyTuple t => t,
        PyDict d => d.Keys.Cast<object?>().ToList(),
        string s => s.Select(c => (object?)c.ToString()).ToList(),
        SafeString m => m.Value.Select(c => (object?)c.ToString()).ToList(),
        PyIterator it => it.Consume(),
        Undefined => [],
        _ => throw new RuntimeFault($"'{TypeName(v)}' object is not iterable"),
    };

    public static long Length(object? v) => v switch
    {
        string s => s.Length,
        SafeString m => m.Value.Length,
        List<object?> l => l.Count,
        PyTuple t => t.Count,
        PyDict d => d.Count,
        Namespace ns => ns.Attrs.Count,
        Undefined => 0,
        _ => throw new RuntimeFault($"object of type '{TypeName(v)}' has no len()"),
    };
}
