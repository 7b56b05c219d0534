using System.Text.Json;

namespace Sputnik.Server.Api;

/// <summary>Typed reads of request fields that turn every type or range error into a 400 naming the field.</summary>
internal readonly struct JsonFields(JsonElement obj, string prefix = "")
{
    public JsonElement Element => obj;

    public bool Has(string name) => obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null;

    public JsonElement? Get(string name) =>
        obj.TryGetProperty(name, out var v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public string Param(string name) => prefix + name;

    public string? String(string name)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.String) throw Bad(name, "a string");
        return v.GetString();
    }

    public bool? Bool(string name)
    {
        if (Get(name) is not { } v) return null;
        return v.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw Bad(name, "a boolean"),
        };
    }

    public long? Integer(string name, long min = long.MinValue, long max = long.MaxValue)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt64(out long n))
        {
            // 3.0 is an integer too.
            if (v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d == Math.Floor(d) && Math.Abs(d) < 9e15) n = (long)d;
            else throw Bad(name, "an integer");
        }
        if (n < min || n > max)
            throw ApiException.BadRequest($"'{Param(name)}' is {n}; it must be between {min} and {max}", Param(name));
        return n;
    }

    public double? Number(string name, double min, double max)
    {
        if (Get(name) is not { } v) return null;
        if (v.ValueKind != JsonValueKind.Number) throw Bad(name, "a number");
        double d = v.GetDouble();
        if (!(d >= min && d <= max))
            throw ApiException.BadRequest($"'{Param(name)}' is {d}; it must be between {min} and {max}", Param(name));
        return d;
    }

    public JsonFields Object(string name)
    {
        var v = Get(name) ?? throw ApiException.BadRequest($"'{Param(name)}' is required", Param(name));
        if (v.ValueKind != JsonValueKind.Object) throw Bad(name, "an object");
        return new JsonFields(v, Param(name) + ".");
    }

    public ApiException Bad(string name, string expected) =>
        ApiException.BadRequest($"'{Param(name)}' must be {expected}", Param(name));

    /// <summary>stop: a string or an array of up to 16 strings.</summary>
    public IReadOnlyList<string> StopStrings(string name = "stop")
    {
        if (Get(name) is not { } v) return [];
        if (v.ValueKind == JsonValueKind.String) return v.GetString() is { Length: > 0 } s ? [s] : [];
        if (v.ValueKind != JsonValueKind.Array) throw Bad(name, "a string or an array of strings");
        var list = new List<string>();
        foreach (var e in v.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.String) throw Bad(name, "a string or an array of strings");
            if (e.GetString() is { Length: > 0 } s) list.Add(s);
        }
        if (list.Count > 16) throw ApiException.BadRequest($"'{Param(name)}' has {list.Count} entries; at most 16 are allowed", Param(name));
        return list;
    }
}
