using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using System.Text.Json;

namespace Sputnik.Conversion;

/// <summary>One tensor entry of a safetensors header.</summary>
internal sealed record SafeTensorInfo(string Name, string DType, long[] Shape, long Begin, long End, SafeTensorsFile File)
{
    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>
/// A memory-mapped .safetensors file: 8-byte little-endian header length, a JSON header mapping names to
/// {dtype, shape, data_offsets}, then the raw little-endian data. Every offset is checked against the file before use.
/// F32, F16 and BF16 are decoded to float.
/// </summary>
internal sealed unsafe class SafeTensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly long _dataStart;
    private bool _disposed;

    public string Path { get; }
    public long Length { get; }
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }

    public SafeTensorsFile(string path)
    {
        Path = path;
        Length = new FileInfo(path).Length;
        if (Length < 8) throw new InvalidDataException($"{path}: not a safetensors file ({Length} bytes)");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, Length, MemoryMappedFileAccess.Read);
            byte* p = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            _base = p;
            ulong headerLen = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_base, 8));
            if (headerLen > (ulong)(Length - 8) || headerLen > 256 << 20)
                throw new InvalidDataException($"{path}: header length {headerLen} does not fit the file ({Length} bytes)");
            _dataStart = 8 + (long)headerLen;
            Tensors = ParseHeader(new ReadOnlySpan<byte>(_base + 8, (int)headerLen));
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    private Dictionary<string, SafeTensorInfo> ParseHeader(ReadOnlySpan<byte> json)
    {
        var result = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var reader = new Utf8JsonReader(json);
        using var doc = JsonDocument.ParseValue(ref reader);
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidDataException($"{Path}: header is not a JSON object");
        long dataBytes = Length - _dataStart;
        foreach (var prop in doc.RootElement.EnumerateObject())
        {
            if (prop.Name == "__metadata__") continue;
            var e = prop.Value;
            string dtype = e.GetProperty("dtype").GetString() ?? "";
            long[] shape = e.GetProperty("shape").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            var offs = e.GetProperty("data_offsets").EnumerateArray().Select(x => x.GetInt64()).ToArray();
            if (offs.Length != 2 || offs[0] < 0 || offs[1] < offs[0] || offs[1] > dataBytes)
                throw new InvalidDataException($"{Path}: tensor '{prop.Name}' data [{string.Join(", ", offs)}] lies outside the file's {dataBytes} data bytes");
            if (shape.Any(d => d < 0)) throw new InvalidDataException($"{Path}: tensor '{prop.Name}' has a negative dimension");
            var info = new SafeTensorInfo(prop.Name, dtype, shape, offs[0], offs[1], this);
            long expected = checked(info.ElementCount * ElementSize(dtype, prop.Name));
            if (expected != offs[1] - offs[0])
                throw new InvalidDataException($"{Path}: tensor '{prop.Name}' {dtype} [{string.Join(", ", shape)}] needs {expected} bytes, header gives {offs[1] - offs[0]}");
            result[prop.Name] = info;
        }
        return result;
    }

    private int ElementSize(string dtype, string name) => dtype switch
    {
        "F32" => 4,
        "F16" or "BF16" => 2,
        "F64" or "I64" => 8,
        "I32" => 4,
        "I8" or "U8" or "F8_E4M3" or "F8_E5M2" or "BOOL" => 1,
        _ => throw new InvalidDataException($"{Path}: tensor '{name}' has unknown dtype '{dtype}'"),
    };

    /// <summary>Decodes elements [start, start + dst.Length) of a tensor (row-major) to float.</summary>
    public void Read(SafeTensorInfo t, long start, Span<float> dst)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (start < 0 || start + dst.Length > t.ElementCount) throw new ArgumentOutOfRangeException(nameof(start));
        byte* p = _base + _dataStart + t.Begin;
        switch (t.DType)
        {
            case "F32":
                new ReadOnlySpan<float>(p + start * 4, dst.Length).CopyTo(dst);
                break;
            case "F16":
                System.Numerics.Tensors.TensorPrimitives.ConvertToSingle(new ReadOnlySpan<Half>(p + start * 2, dst.Length), dst);
                break;
            case "BF16":
            {
                var src = new ReadOnlySpan<ushort>(p + start * 2, dst.Length);
                var bits = MemoryMarshal.Cast<float, uint>(dst);
                for (int i = 0; i < src.Length; i++) bits[i] = (uint)src[i] << 16;
                break;
            }
            default:
                throw new NotSupportedException($"{Path}: tensor '{t.Name}' is {t.DType}; only F32, F16 and BF16 checkpoints can be converted");
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_base != null) _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view?.Dispose();
        _map.Dispose();
    }
}

/// <summary>All tensors of a Hugging Face model folder: model.safetensors, a sharded index, or every *.safetensors.</summary>
internal sealed class SafeTensorsSet : IDisposable
{
    private readonly List<SafeTensorsFile> _files = [];
    private readonly Dictionary<string, SafeTensorInfo> _tensors = new(StringComparer.Ordinal);

    public SafeTensorsSet(string dir)
    {
        try
        {
            string index = System.IO.Path.Combine(dir, "model.safetensors.index.json");
            IEnumerable<string> shards;
            if (System.IO.File.Exists(index))
            {
                using var doc = JsonDocument.Parse(System.IO.File.ReadAllText(index));
                shards = doc.RootElement.GetProperty("weight_map").EnumerateObject().Select(p => p.Value.GetString()!).Distinct().ToList();
            }
            else
            {
                shards = Directory.GetFiles(dir, "*.safetensors").Select(System.IO.Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal).ToList();
            }
            foreach (string shard in shards)
            {
                if (shard.Contains("..") || System.IO.Path.IsPathRooted(shard)) throw new InvalidDataException($"{index}: shard name '{shard}' leaves the model folder");
                string path = System.IO.Path.Combine(dir, shard);
                if (!System.IO.File.Exists(path)) throw new FileNotFoundException($"{dir}: shard '{shard}' listed in model.safetensors.index.json is missing", path);
                var f = new SafeTensorsFile(path);
                _files.Add(f);
                foreach (var (name, info) in f.Tensors)
                {
                    _tensors[name] = info;
                    // Multimodal checkpoints nest the text model (model.language_model.layers…, language_model.lm_head…);
                    // llama.cpp's converter drops "language_model." from every name, so the text tensors answer to both.
                    if (name.Contains("language_model.", StringComparison.Ordinal)) _tensors.TryAdd(name.Replace("language_model.", "", StringComparison.Ordinal), info);
                }
            }
            if (_files.Count == 0) throw new FileNotFoundException($"{dir}: no *.safetensors files (PyTorch .bin checkpoints are not supported)");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors => _tensors;

    public SafeTensorInfo Get(string name) =>
        _tensors.GetValueOrDefault(name) ?? throw new InvalidDataException($"tensor '{name}' is missing from the checkpoint");

    public void Dispose()
    {
        foreach (var f in _files) f.Dispose();
    }
}

/// <summary>Writes .safetensors files (tests build tiny Hugging Face checkpoints with it).</summary>
internal static class SafeTensorsWriter
{
    public static void Write(string path, IEnumerable<(string Name, long[] Shape, float[] Data)> tensors, string dtype = "F32")
    {
        var list = tensors.ToList();
        int size = dtype switch { "F32" => 4, "F16" or "BF16" => 2, _ => throw new ArgumentException($"dtype {dtype}") };
        var ms = new MemoryStream();
        using (var jw = new Utf8JsonWriter(ms))
        {
            jw.WriteStartObject();
            long offset = 0;
            foreach (var (name, shape, data) in list)
            {
                jw.WriteStartObject(name);
                jw.WriteString("dtype", dtype);
                jw.WriteStartArray("shape");
                foreach (long d in shape) jw.WriteNumberValue(d);
                jw.WriteEndArray();
                jw.WriteStartArray("data_offsets");
                jw.WriteNumberValue(offset);
                offset += (long)data.Length * size;
                jw.WriteNumberValue(offset);
                jw.WriteEndArray();
                jw.WriteEndObject();
            }
            jw.WriteEndObject();
        }
        byte[] json = ms.ToArray();
        using var fs = System.IO.File.Create(path);
        Span<byte> len = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)json.Length);
        fs.Write(len);
        fs.Write(json);
        foreach (var (_, _, data) in list)
        {
            if (dtype == "F32") fs.Write(MemoryMarshal.AsBytes(data.AsSpan()));
            else if (dtype == "F16") foreach (float v in data) { BinaryPrimitives.WriteHalfLittleEndian(len, (Half)v); fs.Write(len[..2]); }
            else foreach (float v in data) { BinaryPrimitives.WriteUInt16LittleEndian(len, (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)); fs.Write(len[..2]); }
        }
    }
}
