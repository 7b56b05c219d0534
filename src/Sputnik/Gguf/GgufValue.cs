namespace Sputnik.Gguf;

/// <summary>The metadata value types GGUF stores on disk (ids 0–12).</summary>
internal enum GgufValueType : uint
{
    UInt8 = 0,
    Int8 = 1,
    UInt16 = 2,
    Int16 = 3,
    UInt32 = 4,
    Int32 = 5,
    Float32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    UInt64 = 10,
    Int64 = 11,
    Float64 = 12,
}

/// <summary>
/// An array value: its element type and a typed .NET array (string[], float[], int[], GgufArray[] for nested arrays …).
/// A long string array read from a file (a vocabulary's tokens and merges: 150k strings, ≈ 15 MB as .NET strings) is
/// not kept: <see cref="Items"/> reads it from the file's mapping on each access, so a loaded model holds only its
/// tokenizer's compact copy.
/// </summary>
internal sealed class GgufArray
{
    private readonly Array? _items;
    private readonly Func<Array>? _read;

    public GgufArray(GgufValueType elementType, Array items)
    {
        ArgumentNullException.ThrowIfNull(items);
        ElementType = elementType;
        _items = items;
        Count = items.Length;
    }

    /// <summary>An array of <paramref name="count"/> elements that <paramref name="read"/> materialises on each access.</summary>
    internal GgufArray(GgufValueType elementType, int count, Func<Array> read)
    {
        ElementType = elementType;
        Count = count;
        _read = read;
    }

    public GgufValueType ElementType { get; }

    /// <summary>The elements; for a long string array of a file, read anew (the file must still be open).</summary>
    public Array Items => _items ?? _read!();

    public int Count { get; }
}

/// <summary>
/// One metadata value. <see cref="Value"/> holds the boxed .NET value: byte, sbyte, ushort, short, uint, int,
/// float, bool, string, ulong, long, double, or a <see cref="GgufArray"/>.
/// </summary>
internal sealed record GgufValue(GgufValueType Type, object Value)
{
    public static GgufValue Of(string s) => new(GgufValueType.String, s);
    public static GgufValue Of(ushort v) => new(GgufValueType.UInt16, v);
    public static GgufValue Of(uint v) => new(GgufValueType.UInt32, v);
    public static GgufValue Of(int v) => new(GgufValueType.Int32, v);
    public static GgufValue Of(ulong v) => new(GgufValueType.UInt64, v);
    public static GgufValue Of(long v) => new(GgufValueType.Int64, v);
    public static GgufValue Of(float v) => new(GgufValueType.Float32, v);
    public static GgufValue Of(double v) => new(GgufValueType.Float64, v);
    public static GgufValue Of(bool v) => new(GgufValueType.Bool, v);
    public static GgufValue Of(string[] v) => new(GgufValueType.Array, new GgufArray(GgufValueType.String, v));
    public static GgufValue Of(float[] v) => new(GgufValueType.Array, new GgufArray(GgufValueType.Float32, v));
    public static GgufValue Of(int[] v) => new(GgufValueType.Array, new GgufArray(GgufValueType.Int32, v));
    public static GgufValue Of(GgufArray v) => new(GgufValueType.Array, v);

    /// <summary>The value as a signed 64-bit integer when it is any integer type (or a bool), else null.</summary>
    public long? AsInt64() => Value switch
    {
        byte v => v, sbyte v => v, ushort v => v, short v => v, uint v => v, int v => v, long v => v,
        ulong v => v <= long.MaxValue ? (long)v : null,
        bool b => b ? 1 : 0,
        _ => null,
    };

    /// <summary>The value as a double when it is numeric, else null.</summary>
    public double? AsDouble() => Value switch
    {
        float f => f, double d => d,
        _ => AsInt64() is long l ? l : null,
    };

    public override string ToString() => Value switch
    {
        string s => s,
        GgufArray a => $"[{a.ElementType} × {a.Count}]",
        _ => Convert.ToString(Value, System.Globalization.CultureInfo.InvariantCulture) ?? "",
    };
}
