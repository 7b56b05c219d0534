using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// Keys and values of every layer for one sequence, laid out [layer][position][kvDim] so one position of one layer
/// is a contiguous row, stored as <see cref="Type"/>. <see cref="Length"/> is how many positions are filled.
/// Attention reads one head of a run of positions back as floats (<see cref="ReadKeys"/>), a chunk at a time, so the
/// conversion runs vectorized over many values instead of one System.Half conversion per value.
/// </summary>
internal sealed class KvCache : ICacheRows
{
    private const int QBlock = 32;          // values per Q8_0 block
    private const int QBlockBytes = 4 + QBlock; // float scale + 32 signed bytes

    private readonly byte[][] _keys;
    private readonly byte[][] _values;
    private readonly int _rowBytes;

    public KvCacheType Type { get; }
    public int Capacity { get; }
    public int KvDim { get; }
    public int Length { get; set; }

    public KvCache(int layers, int capacity, int kvDim, KvCacheType type = KvCacheType.F16, int headDim = 0)
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
        for (int l = 0; l < layers; l++)
        {
            _keys[l] = new byte[checked((long)capacity * _rowBytes)];
            _values[l] = new byte[checked((long)capacity * _rowBytes)];
        }
    }

    public long Bytes => 2L * _keys.Length * Capacity * _rowBytes;

    // Snapshot planes: 2l holds layer l's keys, 2l + 1 its values.
    int ICacheRows.Planes => 2 * _keys.Length;
    int ICacheRows.RowBytes => _rowBytes;
    string ICacheRows.Layout => $"kv {Type} {_keys.Length}x{KvDim}";

    Span<byte> ICacheRows.Rows(int plane, int pos0, int count)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the cache of {Capacity}");
        return (plane % 2 == 0 ? _keys : _values)[plane / 2].AsSpan(pos0 * _rowBytes, count * _rowBytes);
    }

    /// <summary>Stores the key and value rows (kvDim floats each) of one position.</summary>
    public void Write(int layer, int pos, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        Encode(key[..KvDim], _keys[layer].AsSpan(pos * _rowBytes, _rowBytes));
        Encode(value[..KvDim], _values[layer].AsSpan(pos * _rowBytes, _rowBytes));
    }

    /// <summary>
    /// Elements [offset, offset+width) of keys at positions [pos0, pos0+count) as floats, one position every
    /// <paramref name="stride"/> floats: a view of the cache itself for F32, otherwise decoded into <paramref name="buffer"/>.
    /// </summary>
    public ReadOnlySpan<float> KeysAsFloat(int layer, int pos0, int count, int offset, int width, Span<float> buffer, out int stride) =>
        AsFloat(_keys[layer], pos0, count, offset, width, buffer, out stride);

    public ReadOnlySpan<float> ValuesAsFloat(int layer, int pos0, int count, int offset, int width, Span<float> buffer, out int stride) =>
        AsFloat(_values[layer], pos0, count, offset, width, buffer, out stride);

    private ReadOnlySpan<float> AsFloat(byte[] data, int pos0, int count, int offset, int width, Span<float> buffer, out int stride)
    {
        if (Type == KvCacheType.F32)
        {
            if (pos0 < 0 || count < 1 || pos0 + count > Capacity || offset < 0 || offset + width > KvDim)
                throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) x [{offset}, {offset + width}) outside the cache");
            stride = KvDim;
            return MemoryMarshal.Cast<byte, float>(data.AsSpan(pos0 * _rowBytes, count * _rowBytes)).Slice(offset, (count - 1) * KvDim + width);
        }
        stride = width;
        Read(data, pos0, count, offset, width, buffer);
        return buffer[..(count * width)];
    }

    /// <summary>Decodes elements [offset, offset+width) of positions [pos0, pos0+count) into dst, width floats per position.</summary>
    public void ReadKeys(int layer, int pos0, int count, int offset, int width, Span<float> dst) => Read(_keys[layer], pos0, count, offset, width, dst);

    public void ReadValues(int layer, int pos0, int count, int offset, int width, Span<float> dst) => Read(_values[layer], pos0, count, offset, width, dst);

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

    private void Read(byte[] data, int pos0, int count, int offset, int width, Span<float> dst)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity || offset < 0 || offset + width > KvDim)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) x [{offset}, {offset + width}) outside the cache");
        for (int p = 0; p < count; p++)
        {
            var row = data.AsSpan((pos0 + p) * _rowBytes, _rowBytes);
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
