using System.IO.MemoryMappedFiles;
using Sputnik.Tensors;

namespace Sputnik.Gguf;

/// <summary>
/// A GGUF v2/v3 file opened read-only. The header (metadata + tensor infos) is parsed eagerly; tensor data
/// stays in the memory-mapped file and is handed out as spans/pointers into the mapping, never copied.
/// A split model (llama.cpp's gguf-split shards) opens as one GgufFile: see GgufFile.Split.cs.
/// </summary>
internal sealed unsafe partial class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" little-endian
    public const int DefaultAlignment = 32;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;
    private bool _disposed;

    /// <summary>The file opened; for a split model, its first shard.</summary>
    public string Path { get; }
    public uint Version { get; }

    /// <summary>Bytes of the file at <see cref="Path"/> (for a split model, of the first shard only: see TotalFileSize).</summary>
    public long FileSize { get; }
    public int Alignment { get; }

    /// <summary>Absolute offset in the file at <see cref="Path"/> where its tensor data begins (aligned end of the header).</summary>
    public long DataOffset { get; }

    /// <summary>
    /// Whether models built from this file may re-lay weights at load for faster kernels (Q4_K: 16 rows interleaved).
    /// On by default; the environment variable SPUTNIK_REPACK=0 turns it off (A/B benchmarks, debugging).
    /// </summary>
    public bool RepackWeights { get; set; } = Environment.GetEnvironmentVariable("SPUTNIK_REPACK") != "0";

    /// <summary>
    /// With <see cref="RepackWeights"/>: whether MoE routed experts are re-laid too, each at its first use (see
    /// <c>TensorSlices.ExpertsRelay</c>). On by default; SPUTNIK_RELAY_EXPERTS=0 keeps them in the file layout.
    /// </summary>
    public bool RelayExperts { get; set; } = Environment.GetEnvironmentVariable("SPUTNIK_RELAY_EXPERTS") != "0";

    /// <summary>The cache of this file's re-laid weights (<see cref="Models.RelaidCache.Of"/>); disposed with the file.</summary>
    internal Models.RelaidCache? Relaid { get; set; }

    public IReadOnlyDictionary<string, GgufValue> Metadata { get; }
    /// <summary>Every tensor of the model, in file order (for a split model, of all shards in shard order).</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; private set; }

    /// <summary>Opens and validates one GGUF file; <see cref="Open"/> adds the other shards of a split model.</summary>
    private GgufFile(string path)
    {
        Path = path;
        _shards = [this];
        var fi = new FileInfo(path);
        // A symbolic link (the Hugging Face cache's snapshots link to blobs) has its own length: measure its target.
        if (fi.LinkTarget != null && fi.ResolveLinkTarget(returnFinalTarget: true) is FileInfo target) fi = target;
        if (!fi.Exists) throw new FileNotFoundException($"model file not found: {path}", path);
        FileSize = fi.Length;
        if (FileSize < 24)
            throw new GgufFormatException($"{path}: not a GGUF file (only {FileSize} bytes; the header alone needs 24)");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p + _view.PointerOffset;

            var r = new GgufHeaderReader(_base, FileSize, ReadStrings);
            uint magic = r.U32("magic");
            if (magic != Magic)
                throw new GgufFormatException($"{path}: not a GGUF file (magic 0x{magic:X8} at offset 0, expected 'GGUF')");
            Version = r.U32("version");
            if (Version is not (2 or 3))
                throw new GgufFormatException($"{path}: unsupported GGUF version {Version} at offset 4 (2 and 3 are supported)");
            // A tensor info takes at least 8 (name) + 4 + 8 + 4 + 8 bytes; a KV pair at least 8 + 4 + 1.
            long tensorCount = r.Count("tensor count", 32);
            long kvCount = r.Count("metadata count", 13);

            var meta = new Dictionary<string, GgufValue>((int)Math.Min(kvCount, 4096));
            for (long i = 0; i < kvCount; i++)
            {
                long at = r.Position;
                string key = r.String($"key of metadata entry #{i}");
                string shown = DisplayText.Name(key); // as messages quote it
                var type = (GgufValueType)r.U32($"value type of '{shown}'");
                if (GgufHeaderReader.MinEncodedSize(type) is null)
                    throw new GgufFormatException($"metadata '{shown}' at offset {at}: unknown value type {(uint)type}");
                var value = r.Value(type, key);
                if (!meta.TryAdd(key, value))
                    throw new GgufFormatException($"metadata key '{shown}' at offset {at} appears twice");
            }
            Metadata = meta;

            Alignment = DefaultAlignment;
            if (meta.TryGetValue("general.alignment", out var alignValue))
            {
                long a = alignValue.Value is bool ? -1 : alignValue.AsInt64() ?? -1;
                if (a <= 0 || a > 1 << 20 || (a & (a - 1)) != 0)
                    throw new GgufFormatException($"metadata 'general.alignment' = {alignValue} is not a power of two up to 1 MiB");
                Alignment = (int)a;
            }

            // The count is only bounded by the bytes left in the file (gigabytes of tensor data for a real model), so
            // size the collections modestly and let real entries grow them.
            var tensors = new List<GgufTensorInfo>((int)Math.Min(tensorCount, 4096));
            _tensorsByName = new Dictionary<string, GgufTensorInfo>((int)Math.Min(tensorCount, 4096));
            for (int i = 0; i < tensorCount; i++)
            {
                long at = r.Position;
                var t = r.TensorInfo(i);
                if (!_tensorsByName.TryAdd(t.Name, t))
                    throw new GgufFormatException($"tensor name '{DisplayText.Name(t.Name)}' at offset {at} appears twice");
                if (t.Offset % Alignment != 0)
                    throw new GgufFormatException($"tensor '{DisplayText.Name(t.Name)}': data offset {t.Offset} is not a multiple of the alignment {Alignment}");
                tensors.Add(t);
            }
            var tensorArray = tensors.ToArray();
            Tensors = tensorArray;

            DataOffset = AlignUp(r.Position, Alignment);
            CheckExtents(tensorArray);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>
    /// Opens and validates a GGUF file, or the whole split model that a shard of one belongs to (any shard's path).
    /// Throws <see cref="GgufFormatException"/> for any malformed content, FileNotFoundException for a missing file or shard.
    /// </summary>
    public static GgufFile Open(string path) => OpenWithShards(path);

    private void CheckExtents(GgufTensorInfo[] tensors)
    {
        long dataBytes = FileSize - DataOffset;
        if (tensors.Length > 0 && dataBytes < 0)
            throw new GgufFormatException($"truncated file: tensor data should start at offset {DataOffset} but the file ends at {FileSize}");
        foreach (var t in tensors)
            if (t.Offset > dataBytes || t.ByteSize > dataBytes - t.Offset)
                throw new GgufFormatException(
                    $"tensor '{DisplayText.Name(t.Name)}' ({t.ByteSize} bytes at data offset {t.Offset}, file offset {(ulong)DataOffset + (ulong)t.Offset}) extends past the end of the file ({FileSize} bytes)");
        var sorted = (GgufTensorInfo[])tensors.Clone();
        Array.Sort(sorted, (a, b) => a.Offset.CompareTo(b.Offset));
        for (int i = 1; i < sorted.Length; i++)
        {
            var prev = sorted[i - 1];
            if (prev.Offset + prev.ByteSize > sorted[i].Offset && prev.ByteSize > 0 && sorted[i].ByteSize > 0)
                throw new GgufFormatException($"tensors '{DisplayText.Name(prev.Name)}' and '{DisplayText.Name(sorted[i].Name)}' overlap at data offset {sorted[i].Offset}");
        }
    }

    /// <summary>
    /// Takes every page of the file's mapping (all shards) out of the resident set; they stay in the page cache. A load
    /// reads the header, copies the norms and re-lays most matrices, each touch mapping 64 KiB around it: ≈ 15 MB of
    /// the 1.5B qwen2's file that decode never reads again. Tensors still read from the mapping map back on first use.
    /// </summary>
    public void ReleaseMappedPages()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        foreach (var shard in _shards) HugePages.ReleaseMapped(shard._base, shard.FileSize);
    }

    // A long string array of the header, read again from the mapping (GgufArray's lazy items).
    private string[] ReadStrings(long position, int count, string key)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return new GgufHeaderReader(_base, FileSize).Strings(position, count, key);
    }

    internal static long AlignUp(long x, int alignment) => (x + alignment - 1) / alignment * alignment;

    public GgufTensorInfo? FindTensor(string name) => _tensorsByName.GetValueOrDefault(name);

    public GgufTensorInfo GetTensor(string name) =>
        _tensorsByName.GetValueOrDefault(name) ?? throw new GgufFormatException($"{Path}: required tensor '{DisplayText.Name(name)}' is missing");

    /// <summary>Pointer to the first byte of a tensor's data inside the mapping of its shard (valid until Dispose).</summary>
    public byte* DataPointer(GgufTensorInfo t)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        var shard = ShardOf(t);
        return shard._base + shard.DataOffset + t.Offset;
    }

    /// <summary>The tensor's bytes as a span into the mapping (tensors up to 2 GiB).</summary>
    public ReadOnlySpan<byte> GetData(GgufTensorInfo t)
    {
        if (t.ByteSize > int.MaxValue)
            throw new NotSupportedException($"tensor '{DisplayText.Name(t.Name)}' is {t.ByteSize} bytes; use DataPointer for tensors over 2 GiB");
        return new ReadOnlySpan<byte>(DataPointer(t), (int)t.ByteSize);
    }

    // ---- typed metadata accessors ---------------------------------------------------------------

    public bool TryGetString(string key, out string? value)
    {
        value = Metadata.TryGetValue(key, out var v) && v.Value is string s ? s : null;
        return value != null;
    }

    public string GetString(string key) =>
        TryGetString(key, out var s) ? s! : throw new GgufFormatException($"{Path}: metadata '{DisplayText.Name(key)}' is missing or not a string");

    public string? GetStringOrNull(string key) => TryGetString(key, out var s) ? s : null;

    public bool TryGetInt64(string key, out long value)
    {
        value = 0;
        if (!Metadata.TryGetValue(key, out var v) || v.Value is bool || v.AsInt64() is not long l) return false;
        value = l;
        return true;
    }

    public bool TryGetUInt32(string key, out uint value)
    {
        value = 0;
        if (!TryGetInt64(key, out long l) || l < 0 || l > uint.MaxValue) return false;
        value = (uint)l;
        return true;
    }

    public bool TryGetFloat(string key, out float value)
    {
        value = 0;
        if (!Metadata.TryGetValue(key, out var v) || v.Value is bool || v.AsDouble() is not double d) return false;
        value = (float)d;
        return true;
    }

    public bool TryGetBool(string key, out bool value)
    {
        value = false;
        if (!Metadata.TryGetValue(key, out var v) || v.Value is not bool b) return false;
        value = b;
        return true;
    }

    public bool TryGetStringArray(string key, out string[]? value)
    {
        value = Metadata.TryGetValue(key, out var v) && v.Value is GgufArray { Items: string[] s } ? s : null;
        return value != null;
    }

    public bool TryGetFloatArray(string key, out float[]? value)
    {
        value = null;
        if (!Metadata.TryGetValue(key, out var v) || v.Value is not GgufArray a) return false;
        value = a.Items switch
        {
            float[] f => f,
            double[] d => Array.ConvertAll(d, x => (float)x),
            _ => null,
        };
        return value != null;
    }

    public bool TryGetIntArray(string key, out int[]? value)
    {
        value = null;
        if (!Metadata.TryGetValue(key, out var v) || v.Value is not GgufArray a) return false;
        value = a.Items switch
        {
            int[] i => i,
            uint[] u => Array.ConvertAll(u, x => (int)x),
            short[] s => Array.ConvertAll(s, x => (int)x),
            ushort[] s => Array.ConvertAll(s, x => (int)x),
            sbyte[] s => Array.ConvertAll(s, x => (int)x),
            byte[] s => Array.ConvertAll(s, x => (int)x),
            long[] l => Array.ConvertAll(l, x => (int)x),
            _ => null,
        };
        return value != null;
    }

    public string? Architecture => GetStringOrNull("general.architecture");

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Relaid?.Dispose();
        for (int i = 1; i < _shards.Length; i++) _shards[i]?.Dispose();
        if (_view != null)
        {
            if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
