using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sputnik.Templates;

/// <summary>
/// jinja2's default Undefined: prints as empty, is falsy, iterates as empty (so <c>'x' in undefined</c> is false);
/// attribute access, item access, calls, arithmetic and JSON serialisation raise. <see cref="Hint"/> is the message
/// those errors carry.
/// </summary>
internal sealed class Undefined
{
    public static readonly Undefined Instance = new("value is undefined");

    internal Undefined(string hint, FaultKind kind = FaultKind.Undefined)
    {
        Hint = hint;
        Kind = kind;
    }

    public string Hint { get; }

    /// <summary>What using it raises: an UndefinedError, or (for a refused method of the sandbox) a SecurityError.</summary>
    public FaultKind Kind { get; }

    /// <summary>The error that using this value raises.</summary>
    public RuntimeFault Fault() => new(Hint, Kind);

    internal static Undefined Named(string name) => new($"'{name}' is undefined");

    /// <summary>
    /// What transformers' ImmutableSandboxedEnvironment gives for a method that would modify a list or dict
    /// (<c>l.append</c>, <c>d.update</c>...): prints as empty, raises a SecurityError when called.
    /// </summary>
    internal static Undefined Unsafe(object? obj, string attr) =>
        new($"access to attribute '{attr}' of '{PyOps.TypeName(obj)}' object is unsafe.", FaultKind.Type);

    internal static Undefined NoAttribute(object? obj, string attr) =>
        new($"'{PyOps.TypeName(obj)} object' has no attribute '{attr}'");

    public override string ToString() => "";
}

/// <summary>An immutable Python tuple (from <c>(a, b)</c>, <c>dict.items()</c>, <c>dictsort</c>...).</summary>
internal sealed class PyTuple(object?[] items) : IReadOnlyList<object?>
{
    public object?[] Items { get; } = items;

    public int Count => Items.Length;

    public object? this[int index] => Items[index];

    public IEnumerator<object?> GetEnumerator() => ((IEnumerable<object?>)Items).GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => Items.GetEnumerator();
}

/// <summary>
/// A Python dict: insertion ordered, keyed by any hashable value (<c>{0: 0, 512: 128}</c>) with Python's key
/// equality, so <c>1</c>, <c>1.0</c> and <c>True</c> are one key. Entries are never removed (the sandbox refuses
/// <c>pop</c>), which keeps <see cref="Dictionary{TKey,TValue}"/>'s enumeration in insertion order.
/// </summary>
internal sealed class PyDict : Dictionary<object, object?>
{
    public PyDict()
        : base(PyKeyComparer.Instance)
    {
    }

    public PyDict(int capacity)
        : base(capacity, PyKeyComparer.Instance)
    {
    }

    /// <summary>Sets <paramref name="key"/>, refusing what Python cannot hash (lists, dicts) with its TypeError text.</summary>
    public void Set(object? key, object? value)
    {
        this[CheckKey(key)] = value;
    }

    public bool TryGet(object? key, out object? value)
    {
        if (key is null || !IsHashable(key))
        {
            value = null;
            return false;
        }
        return TryGetValue(key, out value);
    }

    public static object CheckKey(object? key) => key switch
    {
        null => throw new RuntimeFault("None as a dict key is not supported"),
        _ when IsHashable(key) => key,
        _ => throw new RuntimeFault($"unhashable type: '{PyOps.TypeName(key)}'"),
    };

    private static bool IsHashable(object key) => key switch
    {
        string or long or double or bool or SafeString => true,
        PyTuple t => t.Items.All(x => x is not null && IsHashable(x)),
        _ => false,
    };
}

/// <summary>Python's hash and equality for dict keys: numbers compare by value across int, float and bool.</summary>
internal sealed class PyKeyComparer : IEqualityComparer<object>
{
    public static readonly PyKeyComparer Instance = new();

    public new bool Equals(object? x, object? y) => PyOps.Equals(x, y);

    public int GetHashCode(object obj) => obj switch
    {
        string s => s.GetHashCode(StringComparison.Ordinal),
        SafeString m => m.Value.GetHashCode(StringComparison.Ordinal),
        bool b => (b ? 1L : 0L).GetHashCode(),
        double d when d == Math.Floor(d) && Math.Abs(d) < 9e18 => ((long)d).GetHashCode(),
        PyTuple t => t.Items.Aggregate(17, (h, x) => (h * 31) + (x is null ? 0 : GetHashCode(x))),
        _ => obj.GetHashCode(),
    };
}

/// <summary>
/// markupsafe's Markup, what the <c>safe</c> and <c>escape</c> filters return: adding a plain string to it (either
/// side) or formatting one into it with <c>%</c> HTML-escapes the plain string first, as jinja2 does even with
/// autoescape off. Everything else treats it as its text.
/// </summary>
internal sealed class SafeString(string value)
{
    public string Value { get; } = value;

    public override string ToString() => Value;
}

/// <summary>
/// A one-shot Python iterator: what jinja2's <c>map</c>, <c>select</c>, <c>reject</c>, <c>selectattr</c>,
/// <c>rejectattr</c> (generators) and <c>reverse</c> return. Iterating consumes it (a second loop sees nothing);
/// it is always truthy, has no length and is not JSON serialisable, as in Python.
/// </summary>
internal sealed class PyIterator(string typeName, IEnumerable<object?> items)
{
    private IEnumerator<object?>? _rest = items.GetEnumerator();

    public string TypeName { get; } = typeName;

    /// <summary>The remaining items; afterwards the iterator is exhausted.</summary>
    public List<object?> Consume()
    {
        var result = new List<object?>();
        while (TryNext(out var item)) result.Add(item);
        return result;
    }

    public bool TryNext(out object? item)
    {
        if (_rest != null && _rest.MoveNext())
        {
            item = _rest.Current;
            return true;
        }
        _rest = null;
        item = null;
        return false;
    }
}

/// <summary>The object <c>namespace(...)</c> returns; its attributes can be assigned with <c>set ns.x = ...</c>.</summary>
internal sealed class Namespace
{
    public Dictionary<string, object?> Attrs { get; } = [];
}

/// <summary>Anything callable from a template: globals, macros, bound string/list/dict methods.</summary>
internal abstract class Callable
{
    public abstract object? Invoke(Evaluator ev, Args args);
}

internal sealed class BuiltinFunction(string name, Func<Evaluator, Args, object?> body) : Callable
{
    public string Name { get; } = name;

    public override object? Invoke(Evaluator ev, Args args) => body(ev, args);
}

/// <summary>Evaluated call arguments: positional then keyword.</summary>
internal readonly struct Args(object?[] positional, KeyValuePair<string, object?>[] keywords)
{
    public static readonly Args Empty = new([], []);

    public object?[] Positional { get; } = positional;

    public KeyValuePair<string, object?>[] Keywords { get; } = keywords;

    public int Count => Positional.Length;

    /// <summary>Argument by position or keyword name, or <paramref name="fallback"/>.</summary>
    public object? Get(int index, string name, object? fallback = null)
    {
        if (index >= 0 && index < Positional.Length) return Positional[index];
        foreach (var kv in Keywords)
            if (kv.Key == name) return kv.Value;
        return fallback;
    }

    /// <summary>These arguments with Markup values replaced by their text (itself when there are none).</summary>
    public Args WithPlainStrings()
    {
        var any = false;
        foreach (var p in Positional) any |= p is SafeString;
        foreach (var kv in Keywords) any |= kv.Value is SafeString;
        if (!any) return this;
        return new Args(
            Positional.Select(p => p is SafeString m ? m.Value : p).ToArray(),
            Keywords.Select(kv => kv.Value is SafeString m ? new KeyValuePair<string, object?>(kv.Key, m.Value) : kv).ToArray());
    }

    public bool Has(int index, string name)
    {
        if (index >= 0 && index < Positional.Length) return true;
        foreach (var kv in Keywords)
            if (kv.Key == name) return true;
        return false;
    }
}

/// <summary>Converts caller-supplied .NET values into the runtime's value model.</summary>
/// <remarks>
/// Runtime values are: null (None), bool, long, double, string, <see cref="List{T}"/> of object (list),
/// <see cref="PyDict"/> (dict), <see cref="PyTuple"/>, <see cref="SafeString"/> (Markup), <see cref="PyIterator"/>,
/// <see cref="Namespace"/>, <see cref="Callable"/>, <see cref="Undefined"/>.
/// </remarks>
internal static class ValueConverter
{
    public static object? FromDotNet(object? value) => value switch
    {
        null => null,
        string or bool or long or double or Undefined or Namespace or Callable or PyTuple or PyDict or SafeString or PyIterator => value,
        int i => (long)i,
        short s => (long)s,
        byte b => (long)b,
        sbyte sb => (long)sb,
        uint ui => (long)ui,
        ushort us => (long)us,
        ulong ul => (long)ul,
        float f => (double)f,
        decimal m => (double)m,
        char c => c.ToString(),
        JsonElement je => FromJson(je),
        JsonNode jn => FromJsonNode(jn),
        IDictionary<string, object?> d => FromDict(d),
        IDictionary d => FromNonGenericDict(d),
        IEnumerable e => FromEnumerable(e),
        Enum en => en.ToString(),
        _ => value,
    };

    private static PyDict FromDict(IDictionary<string, object?> d)
    {
        var r = new PyDict(d.Count);
        foreach (var kv in d) r[kv.Key] = FromDotNet(kv.Value);
        return r;
    }

    private static PyDict FromNonGenericDict(IDictionary d)
    {
        var r = new PyDict(d.Count);
        foreach (DictionaryEntry kv in d) r.Set(FromDotNet(kv.Key), FromDotNet(kv.Value));
        return r;
    }

    private static List<object?> FromEnumerable(IEnumerable e)
    {
        var r = new List<object?>();
        foreach (var item in e) r.Add(FromDotNet(item));
        return r;
    }

    public static object? FromJson(JsonElement e)
    {
        switch (e.ValueKind)
        {
            case JsonValueKind.Object:
                var d = new PyDict();
                foreach (var p in e.EnumerateObject()) d[p.Name] = FromJson(p.Value);
                return d;
            case JsonValueKind.Array:
                var l = new List<object?>(e.GetArrayLength());
                foreach (var item in e.EnumerateArray()) l.Add(FromJson(item));
                return l;
            case JsonValueKind.String: return e.GetString();
            case JsonValueKind.True: return true;
            case JsonValueKind.False: return false;
            case JsonValueKind.Number:
                return e.TryGetInt64(out var n) && !e.GetRawText().Contains('.') && !e.GetRawText().Contains('e', StringComparison.OrdinalIgnoreCase)
                    ? (object)n
                    : e.GetDouble();
            default: return null;
        }
    }

    private static PyDict FromJsonObject(JsonObject o)
    {
        var d = new PyDict(o.Count);
        foreach (var kv in o) d[kv.Key] = FromJsonNode(kv.Value);
        return d;
    }

    private static object? FromJsonNode(JsonNode? n) => n switch
    {
        null => null,
        JsonObject o => FromJsonObject(o),
        JsonArray a => a.Select(FromJsonNode).ToList(),
        JsonValue v => FromJson(JsonDocument.Parse(v.ToJsonString()).RootElement),
        _ => null,
    };
}
