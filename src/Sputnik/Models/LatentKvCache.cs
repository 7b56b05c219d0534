using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// The compressed MLA cache: per layer and position one row of [normalised kv latent (kv_lora_rank) | roped k_pe
/// (qk_rope)], shared by all heads. This is all absorbed attention needs; keys and values are never
/// decompressed. Layout [layer][position][rank + rope] keeps one position of one layer contiguous. Stored as F16
/// by default (llama.cpp's size: 2 bytes per element) or F32; attention converts a chunk of rows at a time back
/// to float so the conversion runs vectorized.
/// </summary>
internal sealed class LatentKvCache : ICacheRows
{
    private readonly byte[][] _rows;
    private readonly int _rowBytes;

    public LatentKvCache(int layers, int capacity, int rank, int ropeDim, KvCacheType type = KvCacheType.F16)
    {
        if (type is not (KvCacheType.F16 or KvCacheType.F32))
            throw new NotSupportedException($"the MLA latent cache supports F16 and F32, not {type}");
        Type = type;
        Capacity = capacity;
        Rank = rank;
        RopeDim = ropeDim;
        _rowBytes = RowLength * (type == KvCacheType.F32 ? sizeof(float) : 2);
        _rows = new byte[layers][];
        for (int l = 0; l < layers; l++) _rows[l] = new byte[checked((long)capacity * _rowBytes)];
    }

    public KvCacheType Type { get; }
    public int Capacity { get; }
    public int Rank { get; }
    public int RopeDim { get; }
    public int RowLength => Rank + RopeDim;

    /// <summary>Stores the row (RowLength floats) of one position.</summary>
    public void Write(int layer, int pos, ReadOnlySpan<float> row)
    {
        var dst = _rows[layer].AsSpan(pos * _rowBytes, _rowBytes);
        if (Type == KvCacheType.F32) MemoryMarshal.AsBytes(row[..RowLength]).CopyTo(dst);
        else TensorPrimitives.ConvertToHalf(row[..RowLength], MemoryMarshal.Cast<byte, Half>(dst));
    }

    /// <summary>
    /// Rows of positions [pos0, pos0 + count) of one layer as floats, RowLength apart: a view of the cache for F32,
    /// otherwise decoded into <paramref name="buffer"/> (count × RowLength floats).
    /// </summary>
    public ReadOnlySpan<float> Rows(int layer, int pos0, int count, Span<float> buffer)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the cache of {Capacity}");
        var src = _rows[layer].AsSpan(pos0 * _rowBytes, count * _rowBytes);
        if (Type == KvCacheType.F32) return MemoryMarshal.Cast<byte, float>(src);
        var dst = buffer[..(count * RowLength)];
        FloatConvert.HalfToFloat(MemoryMarshal.Cast<byte, Half>(src), dst);
        return dst;
    }

    public long Bytes => (long)_rows.Length * Capacity * _rowBytes;

    // Snapshot planes: one per layer.
    int ICacheRows.Planes => _rows.Length;
    int ICacheRows.RowBytes => _rowBytes;
    string ICacheRows.Layout => $"mla {Type} {_rows.Length}x{Rank}+{RopeDim}";

    Span<byte> ICacheRows.Rows(int plane, int pos0, int count)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the cache of {Capacity}");
        return _rows[plane].AsSpan(pos0 * _rowBytes, count * _rowBytes);
    }
}

/// <summary>
/// The reference path's cache: fully decompressed per-head keys [k_nope | k_pe] and values, as plain multi-head
/// attention would store them. Used only to test the absorbed path against.
/// </summary>
internal sealed class NaiveMlaCache(int layers, int capacity, int heads, int qkHeadDim, int vHeadDim)
{
    private readonly float[][] _keys = Enumerable.Range(0, layers).Select(_ => new float[checked((long)capacity * heads * qkHeadDim)]).ToArray();
    private readonly float[][] _values = Enumerable.Range(0, layers).Select(_ => new float[checked((long)capacity * heads * vHeadDim)]).ToArray();

    public int KeyRow => heads * qkHeadDim;
    public int ValueRow => heads * vHeadDim;
    public Span<float> Key(int layer, int pos) => _keys[layer].AsSpan(pos * KeyRow, KeyRow);
    public Span<float> Value(int layer, int pos) => _values[layer].AsSpan(pos * ValueRow, ValueRow);
    public long Bytes => (long)_keys.Length * capacity * (KeyRow + ValueRow) * sizeof(float);
}
