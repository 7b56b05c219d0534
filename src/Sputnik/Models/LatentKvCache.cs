using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// The compressed MLA cache: per layer and position one row of [normalised kv latent (kv_lora_rank) | roped k_pe
/// (qk_rope)], shared by all heads. This is all absorbed attention needs; keys and values are never
/// decompressed: the whole row is the key, its latent part the value. Layout [layer][position][rank + rope] keeps
/// one position of one layer contiguous. Stored as F16 by default (llama.cpp's size: 2 bytes per element), F32,
/// or Q8_0/Q4_0 blocks when rank and rope sizes are multiples of 32. Grows with use like <see cref="KvCache"/>.
/// </summary>
internal sealed class LatentKvCache : ICacheRows
{
    private readonly byte[][] _rows;
    private readonly int _rowBytes;

    public LatentKvCache(int layers, int capacity, int rank, int ropeDim, KvCacheType type = KvCacheType.F16)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), "context length must be at least 1");
        if (!Enum.IsDefined(type)) throw new ArgumentOutOfRangeException(nameof(type), type, "unknown KV cache type");
        if (KvRowCodec.IsBlockFormat(type) && (rank % KvRowCodec.Block != 0 || ropeDim % KvRowCodec.Block != 0))
            throw new NotSupportedException($"a {type} MLA latent cache needs rank and rope sizes that are multiples of {KvRowCodec.Block} (got {rank}, {ropeDim}); use F16");
        Type = type;
        Capacity = capacity;
        Rank = rank;
        RopeDim = ropeDim;
        _rowBytes = KvRowCodec.Bytes(type, RowLength);
        _rows = new byte[layers][];
        for (int l = 0; l < layers; l++) _rows[l] = [];
    }

    public KvCacheType Type { get; }
    public int Capacity { get; }
    public int Rank { get; }
    public int RopeDim { get; }
    public int RowLength => Rank + RopeDim;

    /// <summary>Positions memory is held for (≤ <see cref="Capacity"/>).</summary>
    public int Reserved { get; private set; }

    /// <summary>Makes room for positions [0, <paramref name="positions"/>) in every layer, keeping what is stored.</summary>
    public void Reserve(int positions)
    {
        if (positions <= Reserved) return;
        if (positions > Capacity) throw new InvalidOperationException($"context full: {positions} positions exceed the context of {Capacity}");
        int grown = Math.Max(positions, Reserved + Reserved / 2);
        grown = (int)Math.Min(Capacity, ((long)grown + KvCache.GrowthChunk - 1) / KvCache.GrowthChunk * KvCache.GrowthChunk);
        for (int l = 0; l < _rows.Length; l++)
        {
            var bigger = new byte[checked((long)grown * _rowBytes)];
            Tensors.HugePages.Advise(bigger);
            _rows[l].CopyTo(bigger, 0);
            _rows[l] = bigger;
        }
        Reserved = grown;
    }

    /// <summary>Stores the row (RowLength floats) of one position.</summary>
    public void Write(int layer, int pos, ReadOnlySpan<float> row)
    {
        if ((uint)pos >= (uint)Capacity) throw new ArgumentOutOfRangeException(nameof(pos), $"position {pos} outside the cache of {Capacity}");
        if (pos >= Reserved) Reserve(pos + 1);
        KvRowCodec.Encode(Type, row[..RowLength], _rows[layer].AsSpan(pos * _rowBytes, _rowBytes));
    }

    /// <summary>The rows of one layer as attention keys (the whole row).</summary>
    public KvHead Keys(int layer) => new(_rows[layer], _rowBytes, 0, RowLength, Type);

    /// <summary>The rows of one layer as attention values (the latent part; decoded once with the keys).</summary>
    public KvHead Values(int layer) => new(_rows[layer], _rowBytes, 0, Rank, Type);

    /// <summary>Decodes the rows of positions [pos0, pos0 + count) of one layer into dst, RowLength floats each.</summary>
    public void Read(int layer, int pos0, int count, Span<float> dst)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Reserved)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the {Reserved} held");
        for (int p = 0; p < count; p++)
            KvRowCodec.Decode(Type, _rows[layer].AsSpan((pos0 + p) * _rowBytes, _rowBytes), dst.Slice(p * RowLength, RowLength), FlashAttention.BestWidth);
    }

    /// <summary>Context shift of every layer, as <see cref="KvCache.Shift"/>: <paramref name="reposition"/> gets each moved row.</summary>
    public void Shift(int length, int keep, int discard, KvCache.SpanAction reposition)
    {
        if (keep < 0 || discard < 1 || keep + discard > length || length > Reserved)
            throw new ArgumentOutOfRangeException(nameof(discard), $"cannot drop [{keep}, {keep + discard}) of {length} positions");
        int moved = length - keep - discard;
        var row = new float[RowLength];
        foreach (var plane in _rows)
        {
            Array.Copy(plane, (keep + discard) * (long)_rowBytes, plane, keep * (long)_rowBytes, moved * (long)_rowBytes);
            for (int p = keep; p < keep + moved; p++)
            {
                var bytes = plane.AsSpan(p * _rowBytes, _rowBytes);
                KvRowCodec.DecodeReference(Type, bytes, row);
                reposition(row);
                KvRowCodec.Encode(Type, row, bytes);
            }
        }
    }

    /// <summary>Bytes held now (grows with <see cref="Reserved"/>).</summary>
    public long Bytes => (long)_rows.Length * Reserved * _rowBytes;

    // Snapshot planes: one per layer.
    int ICacheRows.Planes => _rows.Length;
    int ICacheRows.RowBytes(int plane) => _rowBytes;
    string ICacheRows.Layout => $"mla {Type} {_rows.Length}x{Rank}+{RopeDim}";

    ReadOnlySpan<byte> ICacheRows.Rows(int plane, int pos0, int count) => PlaneRows(plane, pos0, count);

    void ICacheRows.WriteRows(int plane, int pos0, ReadOnlySpan<byte> rows)
    {
        if (rows.Length % _rowBytes != 0) throw new ArgumentException($"{rows.Length} bytes are not whole rows of {_rowBytes}");
        rows.CopyTo(PlaneRows(plane, pos0, rows.Length / _rowBytes));
    }

    private Span<byte> PlaneRows(int plane, int pos0, int count)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the cache of {Capacity}");
        Reserve(pos0 + count);
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
