using System.Collections;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sputnik.Templates;

/// <summary>
/// jinja2's default Undefined: prints as empty, is falsy, iterates as empty; attribute access, item access,
/// arithmetic and JSON serialisation raise. <see cref="Hint"/> is the message those errors carry.
/// </summary>
internal sealed class Undefined
{
    public static readonly Undefined Instance = new("value is undefined");

    internal Undefined(string hint) => Hint = hint;

    public string Hint { get; }

    internal static Undefined Named(string name) => new($"'{name}' is undefined");

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
/// <see cref="Dictionary{TKey,TValue}"/> of string to object (dict, insertion ordered), <see cref="PyTuple"/>,
/// <see cref="Namespace"/>, <see cref="Callable"/>, <see cref="Undefined"/>.
/// </remarks>
internal static class ValueConverter
{
    public static object? FromDotNet(object? value) => value switch
    {
        null => null,
        string or bool or long or double or Undefined or Namespace or Callable or PyTuple => value,
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

    private static Dictionary<string, object?> FromDict(IDictionary<string, object?> d)
    {
        var r = new Dictionary<string, object?>(d.Count);
        foreach (var kv in d) r[kv.Key] = FromDotNet(kv.Value);
        return r;
    }

    private static Dictionary<string, object?> FromNonGenericDict(IDictionary d)
    {
        var r = new Dictionary<string, object?>(d.Count);
        foreach (DictionaryEntry kv in d) r[PyFormat.Str(FromDotNet(kv.Key))] = FromDotNet(kv.Value);
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
                var d = new Dictionary<string, object?>();
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

    private static object? FromJsonNode(JsonNode? n) => n switch
    {
        null => null,
        JsonObject o => o.ToDictionary(kv => kv.Key, kv => FromJsonNode(kv.Value)),
        JsonArray a => a.Select(FromJsonNode).ToList(),
        JsonValue v => FromJson(JsonDocument.Parse(v.ToJsonString()).RootElement),
        _ => null,
    };
}
