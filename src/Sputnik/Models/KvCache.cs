using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// Keys and values of every layer for one sequence, laid out [layer][position][kvDim] so one position of one layer
/// is a contiguous row, stored as <see cref="Type"/>. <see cref="Length"/> is how many positions are filled.
/// Attention reads one head of a run of positions back as floats (<see cref="ReadKeys"/>), a chunk at a time, so the
/// conversion runs vectorized over many values instead of one System.Half conversion per value.
/// A sliding-window layer (gemma3's local layers) keeps only a ring of window + batch − 1 positions: position p
/// lives in row p mod ring, so its memory does not grow with the context (llama.cpp's SWA cache holds the same).
/// </summary>
internal sealed class KvCache : ICacheRows
{
    private const int QBlock = 32;          // values per Q8_0 block
    private const int QBlockBytes = 4 + QBlock; // float scale + 32 signed bytes

    private readonly byte[][] _keys;
    private readonly byte[][] _values;
    private readonly int _rowBytes;
    // Per layer: rows held (Capacity, or the ring of a sliding-window layer), the window (0: full attention) and the
    // first position whose row has not been overwritten by a later one.
    private readonly int[] _rows, _windows, _firstKept;
    private int _length;

    public KvCacheType Type { get; }
    public int Capacity { get; }
    public int KvDim { get; }

    public int Length
    {
        get => _length;
        set
        {
            _length = value;
            if (value == 0) Array.Clear(_firstKept); // empty: every row is free again
        }
    }

    /// <summary>True when some layer keeps only a sliding window (its rows cannot be snapshotted as a prefix).</summary>
    public bool Windowed { get; }

    /// <summary>Most tokens one forward pass may write: a ring must still hold the window of the batch's first token.</summary>
    public int MaxBatchTokens { get; } = int.MaxValue;

    // windows: per layer, the sliding window (0 or absent: the layer sees every position); batch: most tokens a
    // forward pass writes at once, which sizes the rings of sliding-window layers.
    public KvCache(int layers, int capacity, int kvDim, KvCacheType type = KvCacheType.F16, int headDim = 0,
        ReadOnlySpan<int> windows = default, int batch = 512)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), "context length must be at least 1");
        if (type == KvCacheType.Q8_0 && (headDim <= 0 ? kvDim : headDim) % QBlock != 0)
            throw new NotSupportedException($"a Q8_0 KV cache needs a head size that is a multiple of {QBlock} (got {(headDim <= 0 ? kvDim : headDim)}); use F16");
        Type = type;
        Capacity = capacity;
        KvDim = kvDim;
        _rowBytes = type switch
        {
            KvCacheType.F32 => kvDim * 4,
            KvCacheType.F16 => kvDim * 2,
            KvCacheType.Q8_0 => kvDim / QBlock * QBlockBytes,
            _ => throw new ArgumentOutOfRangeException(nameof(type), type, null),
        };
        _keys = new byte[layers][];
        _values = new byte[layers][];
        _rows = new int[layers];
        _windows = new int[layers];
        _firstKept = new int[layers];
        for (int l = 0; l < layers; l++)
        {
            int window = l < windows.Length ? Math.Max(0, windows[l]) : 0;
            long ring = window > 0 ? (long)window + Math.Max(1, batch) - 1 : capacity;
            if (ring < capacity)
            {
                _windows[l] = window;
                Windowed = true;
                MaxBatchTokens = Math.Min(MaxBatchTokens, (int)ring - window + 1);
            }
            _rows[l] = (int)Math.Min(ring, capacity);
            _keys[l] = new byte[checked((long)_rows[l] * _rowBytes)];
            _values[l] = new byte[checked((long)_rows[l] * _rowBytes)];
        }
    }

    public long Bytes => 2L * _rows.Sum(r => (long)r) * _rowBytes;

    /// <summary>
    /// The longest prefix not above <paramref name="length"/> that a forward pass can continue from: a ring that
    /// has overwritten rows the next token's window needs forces a restart from 0 (llama.cpp recomputes then too).
    /// </summary>
    public int Reusable(int length)
    {
        for (int l = 0; l < _rows.Length; l++)
            if (_windows[l] > 0 && Math.Max(0, length - _windows[l] + 1) < _firstKept[l]) return 0;
        return length;
    }

    // Snapshot planes: 2l holds layer l's keys, 2l + 1 its values.
    int ICacheRows.Planes => 2 * _keys.Length;
    int ICacheRows.RowBytes => _rowBytes;
    string ICacheRows.Layout => $"kv {Type} {_keys.Length}x{KvDim}";

    Span<byte> ICacheRows.Rows(int plane, int pos0, int count)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the cache of {Capacity}");
        if (Windowed) throw new NotSupportedException("a sliding-window cache keeps no prefix rows to snapshot");
        return (plane % 2 == 0 ? _keys : _values)[plane / 2].AsSpan(pos0 * _rowBytes, count * _rowBytes);
    }

    /// <summary>Stores the key and value rows (kvDim floats each) of one position.</summary>
    public void Write(int layer, int pos, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        int rows = _rows[layer], row = pos % rows;
        if (rows < Capacity) _firstKept[layer] = Math.Max(_firstKept[layer], pos - rows + 1);
        Encode(key[..KvDim], _keys[layer].AsSpan(row * _rowBytes, _rowBytes));
        Encode(value[..KvDim], _values[layer].AsSpan(row * _rowBytes, _rowBytes));
    }

    /// <summary>
    /// Elements [offset, offset+width) of keys at positions [pos0, pos0+count) as floats, one position every
    /// <paramref name="stride"/> floats: a view of the cache itself for F32, otherwise decoded into <paramref name="buffer"/>.
    /// </summary>
    public ReadOnlySpan<float> KeysAsFloat(int layer, int pos0, int count, int offset, int width, Span<float> buffer, out int stride) =>
        AsFloat(_keys[layer], _rows[layer], pos0, count, offset, width, buffer, out stride);

    public ReadOnlySpan<float> ValuesAsFloat(int layer, int pos0, int count, int offset, int width, Span<float> buffer, out int stride) =>
        AsFloat(_values[layer], _rows[layer], pos0, count, offset, width, buffer, out stride);

    private ReadOnlySpan<float> AsFloat(byte[] data, int rows, int pos0, int count, int offset, int width, Span<float> buffer, out int stride)
    {
        // An F32 run that does not wrap around a ring is read in place; anything else is copied into the buffer.
        if (Type == KvCacheType.F32 && (rows == Capacity || pos0 % rows + count <= rows))
        {
            if (pos0 < 0 || count < 1 || pos0 + count > Capacity || offset < 0 || offset + width > KvDim)
                throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) x [{offset}, {offset + width}) outside the cache");
            stride = KvDim;
            int row = pos0 % rows;
            return MemoryMarshal.Cast<byte, float>(data.AsSpan(row * _rowBytes, count * _rowBytes)).Slice(offset, (count - 1) * KvDim + width);
        }
        stride = width;
        Read(data, rows, pos0, count, offset, width, buffer);
        return buffer[..(count * width)];
    }

    /// <summary>Decodes elements [offset, offset+width) of positions [pos0, pos0+count) into dst, width floats per position.</summary>
    public void ReadKeys(int layer, int pos0, int count, int offset, int width, Span<float> dst) => Read(_keys[layer], _rows[layer], pos0, count, offset, width, dst);

    public void ReadValues(int layer, int pos0, int count, int offset, int width, Span<float> dst) => Read(_values[layer], _rows[layer], pos0, count, offset, width, dst);

    private void Encode(ReadOnlySpan<float> src, Span<byte> row)
    {
        switch (Type)
        {
            case KvCacheType.F32:
                MemoryMarshal.AsBytes(src).CopyTo(row);
                break;
            case KvCacheType.F16:
                TensorPrimitives.ConvertToHalf(src, MemoryMarshal.Cast<byte, Half>(row));
                break;
            default:
                for (int b = 0; b < src.Length / QBlock; b++)
                {
                    var x = src.Slice(b * QBlock, QBlock);
                    var blk = row.Slice(b * QBlockBytes, QBlockBytes);
                    float amax = TensorPrimitives.MaxMagnitude(x);
                    float d = amax / 127f, id = d == 0 ? 0 : 1f / d;
                    MemoryMarshal.Write(blk, d);
                    for (int i = 0; i < QBlock; i++) blk[4 + i] = (byte)(sbyte)MathF.Round(x[i] * id);
                }
                break;
        }
    }

    private void Read(byte[] data, int rows, int pos0, int count, int offset, int width, Span<float> dst)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity || offset < 0 || offset + width > KvDim)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) x [{offset}, {offset + width}) outside the cache");
        for (int p = 0; p < count; p++)
        {
            var row = data.AsSpan((pos0 + p) % rows * _rowBytes, _rowBytes);
            var d = dst.Slice(p * width, width);
            switch (Type)
            {
                case KvCacheType.F32:
                    MemoryMarshal.Cast<byte, float>(row).Slice(offset, width).CopyTo(d);
                    break;
                case KvCacheType.F16:
                    FloatConvert.HalfToFloat(MemoryMarshal.Cast<byte, Half>(row).Slice(offset, width), d);
                    break;
                default:
                    // Caller keeps offset and width on block boundaries (whole heads of a multiple-of-32 size).
                    for (int b = 0; b < width / QBlock; b++)
                    {
                        var blk = row.Slice((offset / QBlock + b) * QBlockBytes, QBlockBytes);
                        float scale = MemoryMarshal.Read<float>(blk);
                        var q = MemoryMarshal.Cast<byte, sbyte>(blk.Slice(4, QBlock));
                        var o = d.Slice(b * QBlock, QBlock);
                        TensorPrimitives.ConvertChecked<sbyte, float>(q, o);
                        TensorPrimitives.Multiply(o, scale, o);
                    }
                    break;
            }
        }
    }
}
