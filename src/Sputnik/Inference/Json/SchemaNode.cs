namespace Sputnik.Inference.Json;

/// <summary>What a compiled schema node accepts.</summary>
internal enum SchemaKind { Any, Object, Array, String, Number, Integer, Literal, AnyOf, Ref }

/// <summary>
/// One node of a compiled JSON schema, the form <see cref="JsonRecognizer"/> walks. Immutable once compiled;
/// nodes reached through <c>$ref</c> may point back up the tree (recursive schemas).
/// </summary>
internal sealed class SchemaNode
{
    /// <summary>Any JSON value (no schema, <c>{}</c>, or <c>json_object</c>'s object members).</summary>
    public static SchemaNode AnyValue { get; } = new() { Kind = SchemaKind.Any };

    /// <summary>Any JSON object: what <c>response_format: json_object</c> asks for.</summary>
    public static SchemaNode AnyObject { get; } = new() { Kind = SchemaKind.Object, AdditionalProperties = AnyValue };

    /// <summary>true / false / null, the literals a free value may be.</summary>
    public static SchemaNode Boolean { get; } = Literal("false"u8.ToArray(), "true"u8.ToArray());
    public static SchemaNode Null { get; } = Literal("null"u8.ToArray());
    public static SchemaNode AnyArray { get; } = new() { Kind = SchemaKind.Array };
    public static SchemaNode AnyString { get; } = new() { Kind = SchemaKind.String };
    public static SchemaNode AnyNumber { get; } = new() { Kind = SchemaKind.Number };

    public static SchemaNode Literal(params byte[][] values)
    {
        var sorted = values.Distinct(ByteArrayComparer.Instance).ToArray();
        Array.Sort(sorted, ByteArrayComparer.Instance);
        return new SchemaNode { Kind = SchemaKind.Literal, Literals = sorted, MinBytes = sorted.Min(l => l.Length) };
    }

    static SchemaNode() => ComputeMinBytes([AnyValue, AnyObject, AnyArray, AnyString, AnyNumber]);

    /// <summary>
    /// Bytes of the shortest value this node accepts (what closing an answer early costs); set for every node by
    /// <see cref="ComputeMinBytes"/>.
    /// </summary>
    public int MinBytes { get; set; } = Unreachable;

    private const int Unreachable = 1 << 20;

    /// <summary>Shortest-value sizes of a whole (possibly recursive) graph, by iterating to a fixpoint.</summary>
    public static void ComputeMinBytes(IReadOnlyList<SchemaNode> nodes)
    {
        for (bool changed = true; changed;)
        {
            changed = false;
            foreach (var n in nodes)
            {
                int v = Math.Min(n.LocalMinBytes(), Unreachable);
                if (v < n.MinBytes) { n.MinBytes = v; changed = true; }
            }
        }
    }

    private int LocalMinBytes()
    {
        switch (Kind)
        {
            case SchemaKind.Any or SchemaKind.Number or SchemaKind.Integer: return 1;
            // In long arithmetic: minLength / minItems near int.MaxValue must saturate at Unreachable, not wrap negative.
            case SchemaKind.String: return (int)Math.Min(2L + MinLength, Unreachable);
            case SchemaKind.Literal: return Literals.Min(l => l.Length);
            case SchemaKind.Ref: return Target!.MinBytes;
            case SchemaKind.AnyOf: return Alternatives.Min(a => a.MinBytes);
            case SchemaKind.Array: return (int)Math.Min(2L + (long)MinItems * (Items.MinBytes + 1) - (MinItems > 0 ? 1 : 0), Unreachable);
            default:
                long total = 2, count = 0;
                for (int i = 0; i < PropertyNames.Length; i++)
                    if ((Required & (1UL << i)) != 0) { total += MemberBytes(i); count++; }
                return (int)Math.Min(total - (count > 0 ? 1 : 0), Unreachable);
        }
    }

    /// <summary>,"name":value — the shortest way to add property <paramref name="i"/> after another member.</summary>
    public int MemberBytes(int i) => 1 + PropertyNames[i].Length + 1 + PropertySchemas[i].MinBytes;

    public SchemaKind Kind { get; set; }

    // Object: property names as their JSON text with quotes ("name"), sorted by bytes, with their schemas in the same
    // order; bit i of Required is property i. AdditionalProperties is null when other keys are not allowed.
    public byte[][] PropertyNames { get; set; } = [];
    public SchemaNode[] PropertySchemas { get; set; } = [];
    public ulong Required { get; set; }
    public SchemaNode? AdditionalProperties { get; set; }

    // Array.
    public SchemaNode Items { get; set; } = AnyValue;
    public int MinItems { get; set; }
    public int MaxItems { get; set; } = int.MaxValue;

    // String: lengths in code points, as JSON Schema counts them.
    public int MinLength { get; set; }
    public int MaxLength { get; set; } = int.MaxValue;

    /// <summary>Literal (enum/const, also true/false/null): the allowed values as compact JSON text, sorted by bytes.</summary>
    public byte[][] Literals { get; set; } = [];

    /// <summary>AnyOf: alternatives that each start with a different first byte, so the first byte picks one.</summary>
    public SchemaNode[] Alternatives { get; set; } = [];

    /// <summary>Ref: the node a $ref points to (resolved when a value starts, so recursive schemas work).</summary>
    public SchemaNode? Target { get; set; }

    /// <summary>Bits of all properties (for "every property seen").</summary>
    public ulong AllProperties => PropertyNames.Length == 64 ? ulong.MaxValue : (1UL << PropertyNames.Length) - 1;

    /// <summary>Whether a value of this node can start with <paramref name="b"/>.</summary>
    public bool CanStartWith(byte b)
    {
        switch (Kind)
        {
            case SchemaKind.Any: return b is (byte)'{' or (byte)'[' or (byte)'"' or (byte)'t' or (byte)'f' or (byte)'n' || IsNumberStart(b);
            case SchemaKind.Object: return b == '{';
            case SchemaKind.Array: return b == '[';
            case SchemaKind.String: return b == '"';
            case SchemaKind.Number or SchemaKind.Integer: return IsNumberStart(b);
            case SchemaKind.Literal:
                foreach (var l in Literals) if (l[0] == b) return true;
                return false;
            case SchemaKind.Ref: return Target!.CanStartWith(b);
            default:
                foreach (var a in Alternatives) if (a.CanStartWith(b)) return true;
                return false;
        }
    }

    /// <summary>The alternative of an anyOf (or the node itself) a value starting with <paramref name="b"/> belongs to; null if none.</summary>
    public SchemaNode? Resolve(byte b)
    {
        if (Kind == SchemaKind.Any)
        {
            return b switch
            {
                (byte)'{' => AnyObject,
                (byte)'[' => AnyArray,
                (byte)'"' => AnyString,
                (byte)'t' or (byte)'f' => Boolean,
                (byte)'n' => Null,
                _ => IsNumberStart(b) ? AnyNumber : null,
            };
        }
        if (Kind == SchemaKind.Ref) return Target!.Resolve(b);
        if (Kind != SchemaKind.AnyOf) return CanStartWith(b) ? this : null;
        foreach (var a in Alternatives)
            if (a.CanStartWith(b)) return a.Resolve(b);
        return null;
    }

    private static bool IsNumberStart(byte b) => b == '-' || (b >= '0' && b <= '9');
}

/// <summary>Ordinal byte order, the order literal ranges are narrowed in.</summary>
internal sealed class ByteArrayComparer : IComparer<byte[]>, IEqualityComparer<byte[]>
{
    public static ByteArrayComparer Instance { get; } = new();
    public int Compare(byte[]? x, byte[]? y) => x.AsSpan().SequenceCompareTo(y);
    public bool Equals(byte[]? x, byte[]? y) => x.AsSpan().SequenceEqual(y);
    public int GetHashCode(byte[] obj)
    {
        var h = new HashCode();
        h.AddBytes(obj);
        return h.ToHashCode();
    }
}
