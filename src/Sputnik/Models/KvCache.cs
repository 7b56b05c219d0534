using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// Keys and values of every layer for one sequence, laid out [layer][position][key row | value row] so one
/// position of one layer is one contiguous row: keys stored as <see cref="KeyType"/>, values as
/// <see cref="ValueType"/> (llama.cpp's separate --cache-type-k / --cache-type-v). <see cref="Length"/> is how
/// many positions are filled. Memory grows with use: positions are reserved <see cref="GrowthChunk"/> or more at a
/// time (half again what is held, so a long generation reallocates a logarithmic number of times) up to
/// <see cref="Capacity"/>, never per token. Attention reads heads in place through <see cref="KeyHead"/> and
/// <see cref="ValueHead"/>. Quantized (Q8_0/Q4_0) keys and values are stored rotated by a per-head Walsh–Hadamard
/// transform, as llama.cpp stores them (<see cref="Hadamard"/>); reads through <see cref="ReadKeys"/> rotate back.
/// </summary>
internal sealed class KvCache : ICacheRows
{
    /// <summary>Fewest positions a growth step adds.</summary>
    public const int GrowthChunk = 256;

    private readonly byte[][] _layers;
    private readonly int _keyBytes, _rowBytes;
    // Rotated copies of the row being written (Write runs on one thread at a time).
    private readonly float[] _rotated;

    public KvCacheType KeyType { get; }
    public KvCacheType ValueType { get; }
    public int Capacity { get; }
    public int KvDim { get; }
    public int Length { get; set; }

    /// <summary>Positions memory is held for (≤ <see cref="Capacity"/>).</summary>
    public int Reserved { get; private set; }

    /// <summary>Hadamard rotation size the keys / values are stored with (0: none).</summary>
    public int KeyRotation { get; }
    public int ValueRotation { get; }

    public KvCache(int layers, int capacity, int kvDim, KvCacheType type = KvCacheType.F16, int headDim = 0)
        : this(layers, capacity, kvDim, type, type, headDim)
    {
    }

    public KvCache(int layers, int capacity, int kvDim, KvCacheType keyType, KvCacheType valueType, int headDim)
    {
        if (capacity < 1) throw new ArgumentOutOfRangeException(nameof(capacity), "context length must be at least 1");
        int head = headDim <= 0 ? kvDim : headDim;
        foreach (var (type, what) in new[] { (keyType, "K"), (valueType, "V") })
        {
            if (!Enum.IsDefined(type)) throw new ArgumentOutOfRangeException(nameof(keyType), type, "unknown KV cache type");
            if (KvRowCodec.IsBlockFormat(type) && head % KvRowCodec.Block != 0)
                throw new NotSupportedException($"a {type} {what} cache needs a head size that is a multiple of {KvRowCodec.Block} (got {head}); use F16");
        }
        KeyType = keyType;
        ValueType = valueType;
        Capacity = capacity;
        KvDim = kvDim;
        KeyRotation = KvRowCodec.IsBlockFormat(keyType) ? Hadamard.KeySize(head) : 0;
        ValueRotation = KvRowCodec.IsBlockFormat(valueType) ? Hadamard.ValueSize(head) : 0;
        _rotated = KeyRotation > 0 || ValueRotation > 0 ? new float[kvDim] : [];
        _keyBytes = KvRowCodec.Bytes(keyType, kvDim);
        _rowBytes = _keyBytes + KvRowCodec.Bytes(valueType, kvDim);
        _layers = new byte[layers][];
        for (int l = 0; l < layers; l++) _layers[l] = [];
    }

    /// <summary>Bytes held now (grows with <see cref="Reserved"/>).</summary>
    public long Bytes => (long)_layers.Length * Reserved * _rowBytes;

    /// <summary>Bytes a full context takes.</summary>
    public long CapacityBytes => (long)_layers.Length * Capacity * _rowBytes;

    /// <summary>Makes room for positions [0, <paramref name="positions"/>) in every layer, keeping what is stored.</summary>
    public void Reserve(int positions)
    {
        if (positions <= Reserved) return;
        if (positions > Capacity) throw new InvalidOperationException($"context full: {positions} positions exceed the context of {Capacity}");
        int grown = Math.Max(positions, Reserved + Reserved / 2);
        grown = (int)Math.Min(Capacity, ((long)grown + GrowthChunk - 1) / GrowthChunk * GrowthChunk);
        for (int l = 0; l < _layers.Length; l++)
        {
            var bigger = new byte[checked((long)grown * _rowBytes)];
            _layers[l].CopyTo(bigger, 0); // whole rows: a batch in flight has rows past Length in earlier layers
            _layers[l] = bigger;
        }
        Reserved = grown;
    }

    // Snapshot planes: one per layer, each row a position's keys then values.
    int ICacheRows.Planes => _layers.Length;
    int ICacheRows.RowBytes => _rowBytes;
    string ICacheRows.Layout => $"kv {KeyType}/{ValueType} {_layers.Length}x{KvDim}";

    Span<byte> ICacheRows.Rows(int plane, int pos0, int count)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the cache of {Capacity}");
        Reserve(pos0 + count);
        return _layers[plane].AsSpan(pos0 * _rowBytes, count * _rowBytes);
    }

    /// <summary>Stores the key and value rows (kvDim floats each) of one position.</summary>
    public void Write(int layer, int pos, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        if ((uint)pos >= (uint)Capacity) throw new ArgumentOutOfRangeException(nameof(pos), $"position {pos} outside the cache of {Capacity}");
        if (pos >= Reserved) Reserve(pos + 1);
        var row = _layers[layer].AsSpan(pos * _rowBytes, _rowBytes);
        KvRowCodec.Encode(KeyType, Rotated(key[..KvDim], KeyRotation), row[.._keyBytes]);
        KvRowCodec.Encode(ValueType, Rotated(value[..KvDim], ValueRotation), row[_keyBytes..]);
    }

    private ReadOnlySpan<float> Rotated(ReadOnlySpan<float> x, int rotation)
    {
        if (rotation == 0) return x;
        x.CopyTo(_rotated);
        Hadamard.Rotate(_rotated, rotation); // chunks never straddle heads: the size divides the head
        return _rotated;
    }

    /// <summary>Keys of one head (<paramref name="width"/> values from element <paramref name="offset"/>, on block boundaries for Q8_0/Q4_0) as attention reads them.</summary>
    public KvHead KeyHead(int layer, int offset, int width) =>
        new(_layers[layer], _rowBytes, KvRowCodec.Bytes(KeyType, offset), width, KeyType, KeyRotation);

    public KvHead ValueHead(int layer, int offset, int width) =>
        new(_layers[layer], _rowBytes, _keyBytes + KvRowCodec.Bytes(ValueType, offset), width, ValueType, ValueRotation);

    /// <summary>Decodes elements [offset, offset+width) of the keys at positions [pos0, pos0+count) into dst, width floats per position.</summary>
    public void ReadKeys(int layer, int pos0, int count, int offset, int width, Span<float> dst) =>
        Read(KeyHead(layer, Aligned(offset, KeyRotation), Aligned(width, KeyRotation)), pos0, count, dst);

    public void ReadValues(int layer, int pos0, int count, int offset, int width, Span<float> dst) =>
        Read(ValueHead(layer, Aligned(offset, ValueRotation), Aligned(width, ValueRotation)), pos0, count, dst);

    // Rotated rows are read back in whole rotation chunks (whole heads).
    private static int Aligned(int n, int rotation) => rotation == 0 || n % rotation == 0 ? n
        : throw new ArgumentException($"{n} is not a multiple of the rotation size {rotation}: read whole heads");

    private void Read(KvHead h, int pos0, int count, Span<float> dst)
    {
        if (pos0 < 0 || count < 0 || pos0 + count > Reserved || KvRowCodec.Bytes(h.Type, h.Width) + h.RowOffset > _rowBytes)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the {Reserved} held");
        for (int p = 0; p < count; p++)
        {
            var d = dst.Slice(p * h.Width, h.Width);
            KvRowCodec.Decode(h.Type, h.Rows.Slice((pos0 + p) * h.RowStride + h.RowOffset), d, FlashAttention.BestWidth);
            Hadamard.Rotate(d, h.Rotation); // back to the values as computed
        }
    }

    /// <summary>
    /// Context shift: forgets positions [keep, keep + discard) and moves the later ones down by
    /// <paramref name="discard"/>. <paramref name="reposition"/> gets each moved key row (kvDim floats) to re-rotate
    /// for its new position; it is stored back in the key format.
    /// </summary>
    public void Shift(int keep, int discard, KeyAction reposition)
    {
        if (keep < 0 || discard < 1 || keep + discard > Length)
            throw new ArgumentOutOfRangeException(nameof(discard), $"cannot drop [{keep}, {keep + discard}) of {Length} positions");
        int moved = Length - keep - discard;
        var key = new float[KvDim];
        for (int l = 0; l < _layers.Length; l++)
        {
            var plane = _layers[l];
            Array.Copy(plane, (keep + discard) * (long)_rowBytes, plane, keep * (long)_rowBytes, moved * (long)_rowBytes);
            for (int p = keep; p < keep + moved; p++)
            {
                var row = plane.AsSpan(p * _rowBytes, _keyBytes);
                KvRowCodec.DecodeReference(KeyType, row, key);
                Hadamard.Rotate(key, KeyRotation); // un-rotate, reposition, rotate again
                reposition(l, key);
                Hadamard.Rotate(key, KeyRotation);
                KvRowCodec.Encode(KeyType, key, row);
            }
        }
        Length = keep + moved;
    }

    /// <summary>Re-positions one key row (as float, un-rotated) of layer <paramref name="layer"/> in place.</summary>
    public delegate void KeyAction(int layer, Span<float> key);

    /// <summary>Works on one float row in place (the MLA latent cache's shift).</summary>
    public delegate void SpanAction(Span<float> row);
}
