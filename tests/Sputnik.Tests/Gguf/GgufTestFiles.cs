using System.Buffers.Binary;
using System.Text;
using Sputnik.Gguf;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Gguf;

/// <summary>A private temp folder deleted (with everything in it) on Dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("sputnik-gguf-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}

/// <summary>One field of a GGUF header as laid out on disk, found by <see cref="GgufLayout"/>.</summary>
/// <param name="Owner">The metadata key or tensor name the field belongs to (null for the fixed header).</param>
/// <param name="AfterName">True when the owner's name has already been read when this field is read.</param>
internal sealed record GgufField(long Offset, int Size, string What, string? Owner, bool AfterName);

/// <summary>Where a tensor info's fields sit in the file.</summary>
internal sealed record GgufTensorLayout(string Name, long NameOffset, long NDimsOffset, long DimsOffset, int NDims,
    long TypeOffset, long OffsetOffset, long DataOffset, long ByteSize);

/// <summary>Where a metadata entry's fields sit in the file.</summary>
internal sealed record GgufKvLayout(string Key, long KeyOffset, long TypeOffset, long ValueOffset, GgufValueType Type,
    long? ArrayCountOffset);

/// <summary>
/// An independent walker over a <em>valid</em> GGUF file that records where every field lies, so hostile tests can
/// patch exact fields and truncation tests know which key or tensor a cut falls into. Deliberately shares no code
/// with the reader under test.
/// </summary>
internal sealed class GgufLayout
{
    public List<GgufField> Fields { get; } = [];
    public Dictionary<string, GgufKvLayout> Kvs { get; } = [];
    public Dictionary<string, GgufTensorLayout> Tensors { get; } = [];
    public List<GgufTensorLayout> TensorOrder { get; } = [];
    public long HeaderEnd { get; private set; }
    public int Alignment { get; private set; } = 32;
    public long DataStart { get; private set; }

    public const long TensorCountOffset = 8;
    public const long KvCountOffset = 16;

    private readonly byte[] _b;
    private long _p;

    public GgufLayout(byte[] bytes)
    {
        _b = bytes;
        Field(4, "magic", null, false);
        Field(4, "version", null, false);
        long nt = (long)U64Field("tensor count", null, false);
        long nkv = (long)U64Field("kv count", null, false);
        for (long i = 0; i < nkv; i++)
        {
            long keyAt = _p;
            string key = StrField("key", null, false);
            long typeAt = _p;
            var type = (GgufValueType)U32Field("value type", key, true);
            long valueAt = _p;
            long? countAt = type == GgufValueType.Array ? _p + 4 : null;
            Value(type, key);
            Kvs[key] = new(key, keyAt, typeAt, valueAt, type, countAt);
            if (key == "general.alignment") Alignment = (int)BinaryPrimitives.ReadUInt32LittleEndian(_b.AsSpan((int)valueAt));
        }
        var pending = new List<(string, long, long, long, int, long, long, long, long[], GgmlType)>();
        for (long i = 0; i < nt; i++)
        {
            long nameAt = _p;
            string name = StrField("tensor name", null, false);
            long ndAt = _p;
            int nd = (int)U32Field("n_dims", name, true);
            long dimsAt = _p;
            var dims = new long[nd];
            for (int d = 0; d < nd; d++) dims[d] = (long)U64Field($"dim {d}", name, true);
            long typeAt = _p;
            var type = (GgmlType)U32Field("ggml type", name, true);
            long offAt = _p;
            long off = (long)U64Field("data offset", name, true);
            pending.Add((name, nameAt, ndAt, dimsAt, nd, typeAt, offAt, off, dims, type));
        }
        HeaderEnd = _p;
        DataStart = (HeaderEnd + Alignment - 1) / Alignment * Alignment;
        foreach (var (name, nameAt, ndAt, dimsAt, nd, typeAt, offAt, off, dims, type) in pending)
        {
            var t = new GgufTensorLayout(name, nameAt, ndAt, dimsAt, nd, typeAt, offAt, off, GgufWriter.ByteSize(type, dims));
            Tensors[name] = t;
            TensorOrder.Add(t);
        }
    }

    private void Field(int size, string what, string? owner, bool afterName)
    {
        Fields.Add(new(_p, size, what, owner, afterName));
        _p += size;
    }

    private uint U32Field(string what, string? owner, bool afterName)
    {
        uint v = BinaryPrimitives.ReadUInt32LittleEndian(_b.AsSpan((int)_p));
        Field(4, what, owner, afterName);
        return v;
    }

    private ulong U64Field(string what, string? owner, bool afterName)
    {
        ulong v = BinaryPrimitives.ReadUInt64LittleEndian(_b.AsSpan((int)_p));
        Field(8, what, owner, afterName);
        return v;
    }

    private string StrField(string what, string? owner, bool afterName)
    {
        int n = (int)U64Field($"length of {what}", owner, afterName);
        string s = Encoding.UTF8.GetString(_b, (int)_p, n);
        if (n > 0) Field(n, what, owner, afterName);
        return s;
    }

    private void Value(GgufValueType type, string key)
    {
        switch (type)
        {
            case GgufValueType.UInt8 or GgufValueType.Int8 or GgufValueType.Bool: Field(1, "value", key, true); break;
            case GgufValueType.UInt16 or GgufValueType.Int16: Field(2, "value", key, true); break;
            case GgufValueType.UInt32 or GgufValueType.Int32 or GgufValueType.Float32: Field(4, "value", key, true); break;
            case GgufValueType.UInt64 or GgufValueType.Int64 or GgufValueType.Float64: Field(8, "value", key, true); break;
            case GgufValueType.String: StrField("string value", key, true); break;
            case GgufValueType.Array:
            {
                var et = (GgufValueType)U32Field("array element type", key, true);
                long n = (long)U64Field("array count", key, true);
                for (long i = 0; i < n; i++) Value(et, key);
                break;
            }
            default: throw new InvalidOperationException($"layout walker: unknown type {type}");
        }
    }
}

internal static class GgufTestFiles
{
    public static readonly string[] Tokens = ["<s>", "</s>", "hello", "wörld", "日本"];

    /// <summary>
    /// The small valid file the hostile and fuzz suites start from: a handful of metadata keys (string, u32, bool,
    /// f32, a string array, a float array, an explicit general.alignment) and three tensors of different types.
    /// Keys test.key_a/test.key_b and tensor names tensor.a/b/c have equal lengths so a one-byte patch can make
    /// them collide.
    /// </summary>
    public static byte[] Small()
    {
        var rng = new Random(1234);
        var w = new GgufWriter()
            .Set("general.architecture", "llama")
            .Set("general.alignment", 32u)
            .Set("test.key_a", 7u)
            .Set("test.key_b", 9u)
            .Set("test.flag", true)
            .Set("test.eps", 1e-5f)
            .Set("tokenizer.ggml.tokens", Tokens)
            .Set("tokenizer.ggml.scores", new[] { 0f, -1f, -2f, -3f, -4f })
            .AddTensor("tensor.a", GgmlType.F32, [8, 2], RandomBytes(rng, 64))
            .AddTensor("tensor.b", GgmlType.Q8_0, [32, 2], RandomBytes(rng, 68))
            .AddTensor("tensor.c", GgmlType.F16, [4, 2, 2], RandomBytes(rng, 32));
        return ToBytes(w);
    }

    public static byte[] ToBytes(GgufWriter w)
    {
        var ms = new MemoryStream();
        w.Write(ms);
        return ms.ToArray();
    }

    public static byte[] RandomBytes(Random rng, long n)
    {
        var b = new byte[n];
        rng.NextBytes(b);
        return b;
    }

    public static void PutU32(byte[] b, long at, uint v) => BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan((int)at), v);
    public static void PutU64(byte[] b, long at, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan((int)at), v);

    /// <summary>
    /// Touches everything a caller could read after a successful Open: every metadata value (recursively, with the
    /// typed accessors) and every tensor's bytes. Returns a checksum so the work cannot be optimised away.
    /// </summary>
    public static long ReadEverything(GgufFile f)
    {
        long sum = 0;
        foreach (var (key, v) in f.Metadata)
        {
            sum += key.Length + v.ToString().Length;
            sum += Walk(v.Value);
            f.TryGetString(key, out _);
            f.TryGetInt64(key, out _);
            f.TryGetUInt32(key, out _);
            f.TryGetFloat(key, out _);
            f.TryGetBool(key, out _);
            f.TryGetStringArray(key, out _);
            f.TryGetFloatArray(key, out _);
            f.TryGetIntArray(key, out _);
        }
        _ = f.Architecture;
        foreach (var t in f.Tensors)
        {
            Assert.Same(t, f.FindTensor(t.Name));
            var data = f.GetData(t);
            Assert.Equal(t.ByteSize, data.Length);
            foreach (byte x in data) sum += x;
            sum += t.ElementCount + t.Rows + t.Columns + t.ToString().Length;
        }
        return sum;
    }

    private static long Walk(object v)
    {
        if (v is not GgufArray a) return v is string s ? s.Length : 1;
        long sum = a.Count;
        foreach (object? item in a.Items) sum += Walk(item!);
        return sum;
    }
}
