using System.Buffers.Binary;
using System.Text;
using Sputnik.Tensors;

namespace Sputnik.Gguf;

/// <summary>
/// Builds a GGUF v3 file: metadata in insertion order, then tensor infos, then aligned tensor data.
/// Tensor data can be given as bytes or as a callback that streams it, so writers (quantize, convert) never
/// need the whole model in memory. Sizes are known up front from type and dims, which fixes every offset.
/// </summary>
internal sealed class GgufWriter
{
    private readonly List<KeyValuePair<string, GgufValue>> _metadata = [];
    private readonly List<PendingTensor> _tensors = [];

    private sealed record PendingTensor(string Name, long[] Dims, GgmlType Type, long ByteSize, Action<Stream> WriteData);

    public int Alignment { get; private set; } = GgufFile.DefaultAlignment;

    public GgufWriter Set(string key, GgufValue value)
    {
        if (key == "general.alignment")
        {
            // Validate before storing: a zero, negative or non-power-of-two alignment would make the layout below divide
            // by zero or go backwards, and the reader rejects such files anyway.
            long a = value.Value is bool ? -1 : value.AsInt64() ?? -1;
            if (a <= 0 || a > 1 << 20 || (a & (a - 1)) != 0)
                throw new ArgumentException($"general.alignment must be an integer power of two up to 1 MiB, not {value.Type} {value}");
            Alignment = (int)a;
        }
        int i = _metadata.FindIndex(kv => kv.Key == key);
        if (i >= 0) _metadata[i] = new(key, value);
        else _metadata.Add(new(key, value));
        return this;
    }

    public GgufWriter Set(string key, string v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, uint v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, float v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, bool v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, string[] v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, float[] v) => Set(key, GgufValue.Of(v));
    public GgufWriter Set(string key, int[] v) => Set(key, GgufValue.Of(v));

    /// <summary>Copies every metadata entry of an existing file (e.g. when re-quantizing).</summary>
    public GgufWriter CopyMetadata(GgufFile source, Func<string, bool>? include = null)
    {
        foreach (var (k, v) in source.Metadata)
            if (include?.Invoke(k) ?? true) Set(k, v);
        return this;
    }

    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, ReadOnlyMemory<byte> data)
    {
        long size = ByteSize(type, dims);
        if (data.Length != size)
            throw new ArgumentException($"tensor '{name}': {data.Length} bytes given, {type} [{string.Join(", ", dims)}] needs {size}");
        return AddTensor(name, type, dims, s => s.Write(data.Span));
    }

    public GgufWriter AddTensor(string name, float[] data, params long[] dims) =>
        AddTensor(name, GgmlType.F32, dims, System.Runtime.InteropServices.MemoryMarshal.AsBytes(data.AsSpan()).ToArray());

    /// <summary>Adds a tensor whose bytes are produced later by <paramref name="writeData"/>, which must write exactly the tensor's size.</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] dims, Action<Stream> writeData)
    {
        if (_tensors.Exists(t => t.Name == name)) throw new ArgumentException($"tensor '{name}' added twice");
        _tensors.Add(new(name, (long[])dims.Clone(), type, ByteSize(type, dims), writeData));
        return this;
    }

    public static long ByteSize(GgmlType type, long[] dims)
    {
        long n = 1;
        foreach (long d in dims) n = checked(n * d);
        return GgmlTypeInfo.RowBytes(type, dims[0]) * (n / dims[0]);
    }

    public void Write(string path)
    {
        // Write beside the target and move into place, so a failed write never destroys an existing file.
        string tmp = path + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
                Write(fs);
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
    }

    public void Write(Stream output)
    {
        var header = new MemoryStream();
        var b8 = new byte[8];
        void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(b8, v); header.Write(b8, 0, 4); }
        void U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(b8, v); header.Write(b8, 0, 8); }

        U32(GgufFile.Magic);
        U32(3);
        U64((ulong)_tensors.Count);
        U64((ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(header, key);
            U32((uint)value.Type);
            WriteValue(header, value.Type, value.Value);
        }
        long offset = 0;
        var offsets = new long[_tensors.Count];
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            WriteString(header, t.Name);
            U32((uint)t.Dims.Length);
            foreach (long d in t.Dims) U64((ulong)d);
            U32((uint)t.Type);
            U64((ulong)offset);
            offsets[i] = offset;
            offset = GgufFile.AlignUp(offset + t.ByteSize, Alignment);
        }
        header.Write(new byte[GgufFile.AlignUp(header.Length, Alignment) - header.Length]);
        header.Position = 0;
        header.CopyTo(output);

        long written = 0;
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            output.Write(new byte[offsets[i] - written]);
            long before = output.CanSeek ? output.Position : -1;
            t.WriteData(output);
            if (before >= 0 && output.Position - before != t.ByteSize)
                throw new InvalidOperationException($"tensor '{t.Name}': wrote {output.Position - before} bytes, expected {t.ByteSize}");
            written = offsets[i] + t.ByteSize;
        }
        output.Flush();
    }

    private static void WriteString(Stream s, string v)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(v);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)bytes.Length);
        s.Write(len);
        s.Write(bytes);
    }

    private static void WriteValue(Stream s, GgufValueType type, object value)
    {
        Span<byte> b = stackalloc byte[8];
        switch (type)
        {
            case GgufValueType.UInt8: s.WriteByte(Convert.ToByte(value)); break;
            case GgufValueType.Int8: s.WriteByte((byte)Convert.ToSByte(value)); break;
            case GgufValueType.Bool: s.WriteByte((bool)value ? (byte)1 : (byte)0); break;
            case GgufValueType.UInt16: BinaryPrimitives.WriteUInt16LittleEndian(b, Convert.ToUInt16(value)); s.Write(b[..2]); break;
            case GgufValueType.Int16: BinaryPrimitives.WriteInt16LittleEndian(b, Convert.ToInt16(value)); s.Write(b[..2]); break;
            case GgufValueType.UInt32: BinaryPrimitives.WriteUInt32LittleEndian(b, Convert.ToUInt32(value)); s.Write(b[..4]); break;
            case GgufValueType.Int32: BinaryPrimitives.WriteInt32LittleEndian(b, Convert.ToInt32(value)); s.Write(b[..4]); break;
            case GgufValueType.Float32: BinaryPrimitives.WriteSingleLittleEndian(b, Convert.ToSingle(value)); s.Write(b[..4]); break;
            case GgufValueType.UInt64: BinaryPrimitives.WriteUInt64LittleEndian(b, Convert.ToUInt64(value)); s.Write(b); break;
            case GgufValueType.Int64: BinaryPrimitives.WriteInt64LittleEndian(b, Convert.ToInt64(value)); s.Write(b); break;
            case GgufValueType.Float64: BinaryPrimitives.WriteDoubleLittleEndian(b, Convert.ToDouble(value)); s.Write(b); break;
            case GgufValueType.String: WriteString(s, (string)value); break;
            case GgufValueType.Array:
            {
                var a = (GgufArray)value;
                BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)a.ElementType); s.Write(b[..4]);
                BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)a.Items.Length); s.Write(b);
                foreach (object? item in a.Items) WriteValue(s, a.ElementType, item!);
                break;
            }
            default: throw new ArgumentException($"unknown GGUF value type {(uint)type}");
        }
    }
}
