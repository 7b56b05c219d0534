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

    /// <summary>
    /// Copies every metadata entry of an existing model (e.g. when re-quantizing) except the split.* keys, which
    /// describe how the source was cut into files, not the model (llama-quantize drops them too).
    /// </summary>
    public GgufWriter CopyMetadata(GgufFile source, Func<string, bool>? include = null)
    {
        foreach (var (k, v) in source.Metadata)
            if (!GgufSplit.IsSplitKey(k) && (include?.Invoke(k) ?? true)) Set(k, v);
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

    public void Write(string path) => WriteFiles([path], [s => Write(s)]);

    public void Write(Stream output) => Write(output, _metadata, _tensors, Alignment);

    /// <summary>
    /// Writes the model as a split set (llama.cpp's gguf-split layout, see <see cref="GgufSplit"/>) next to
    /// <paramref name="path"/>: <c>&lt;path without .gguf&gt;-00001-of-0000n.gguf</c> …, cut where <paramref name="limits"/>
    /// say. The first shard carries all metadata, every shard the split keys. Returns the paths written, in order.
    /// </summary>
    public IReadOnlyList<string> WriteSplit(string path, GgufSplitLimits limits)
    {
        limits.Validate();
        var shards = new List<List<PendingTensor>> { new() };
        long shardBytes = 0;
        foreach (var t in _tensors)
        {
            // gguf-split's rule: a tensor that would take the shard past the limit starts the next one.
            long padded = GgufFile.AlignUp(t.ByteSize, Alignment);
            var current = shards[^1];
            if (current.Count > 0 && (current.Count >= limits.MaxTensors || padded > limits.MaxBytes - shardBytes))
            {
                shards.Add(current = []);
                shardBytes = 0;
            }
            current.Add(t);
            shardBytes += padded;
        }
        int count = shards.Count;
        if (count > GgufSplit.MaxShards)
            throw new ArgumentException($"the limits would cut the model into {count} shards; the format allows {GgufSplit.MaxShards}");

        string prefix = GgufSplit.OutputPrefix(path);
        var paths = new string[count];
        var writes = new Action<Stream>[count];
        for (int i = 0; i < count; i++)
        {
            paths[i] = GgufSplit.ShardPath(prefix, i, count);
            var metadata = new List<KeyValuePair<string, GgufValue>>();
            if (i == 0) metadata.AddRange(_metadata.Where(kv => !GgufSplit.IsSplitKey(kv.Key)));
            metadata.Add(new(GgufSplit.NoKey, GgufValue.Of((ushort)i)));
            metadata.Add(new(GgufSplit.CountKey, GgufValue.Of((ushort)count)));
            metadata.Add(new(GgufSplit.TensorsCountKey, GgufValue.Of(_tensors.Count)));
            // Later shards have no general.alignment key, so readers lay them out with the default.
            int alignment = i == 0 ? Alignment : GgufFile.DefaultAlignment;
            var tensors = shards[i];
            writes[i] = s => Write(s, metadata, tensors, alignment);
        }
        WriteFiles(paths, writes);
        return paths;
    }

    /// <summary>
    /// Writes each file beside its target and moves them all into place only once every one is complete, so a failed
    /// write never destroys an existing file or leaves half a split set.
    /// </summary>
    private static void WriteFiles(string[] paths, Action<Stream>[] writes)
    {
        var tmps = Array.ConvertAll(paths, p => p + ".tmp");
        try
        {
            for (int i = 0; i < paths.Length; i++)
                using (var fs = new FileStream(tmps[i], FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
                    writes[i](fs);
            for (int i = 0; i < paths.Length; i++) File.Move(tmps[i], paths[i], overwrite: true);
        }
        catch
        {
            foreach (string tmp in tmps) File.Delete(tmp);
            throw;
        }
    }

    private static void Write(Stream output, IReadOnlyList<KeyValuePair<string, GgufValue>> metadata, IReadOnlyList<PendingTensor> tensors, int alignment)
    {
        var header = new MemoryStream();
        var b8 = new byte[8];
        void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(b8, v); header.Write(b8, 0, 4); }
        void U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(b8, v); header.Write(b8, 0, 8); }

        U32(GgufFile.Magic);
        U32(3);
        U64((ulong)tensors.Count);
        U64((ulong)metadata.Count);
        foreach (var (key, value) in metadata)
        {
            WriteString(header, key);
            U32((uint)value.Type);
            WriteValue(header, value.Type, value.Value);
        }
        long offset = 0;
        var offsets = new long[tensors.Count];
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            WriteString(header, t.Name);
            U32((uint)t.Dims.Length);
            foreach (long d in t.Dims) U64((ulong)d);
            U32((uint)t.Type);
            U64((ulong)offset);
            offsets[i] = offset;
            offset = GgufFile.AlignUp(offset + t.ByteSize, alignment);
        }
        header.Write(new byte[GgufFile.AlignUp(header.Length, alignment) - header.Length]);
        header.Position = 0;
        header.CopyTo(output);

        long written = 0;
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
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
                var items = a.Items; // once: a long string array of a file is read anew on each access
                BinaryPrimitives.WriteUInt32LittleEndian(b, (uint)a.ElementType); s.Write(b[..4]);
                BinaryPrimitives.WriteUInt64LittleEndian(b, (ulong)items.Length); s.Write(b);
                foreach (object? item in items) WriteValue(s, a.ElementType, item!);
                break;
            }
            default: throw new ArgumentException($"unknown GGUF value type {(uint)type}");
        }
    }
}
