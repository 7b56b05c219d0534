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
/// <para>
/// A sliding-window layer (window W &gt; 0 in the constructor's per-layer windows) holds only a ring of
/// <see cref="RingRows"/> = W + batch − 1 positions, position p in row p mod rows (llama.cpp's SWA cache: n_swa +
/// n_ubatch cells), so its memory stays bounded by the window whatever the context; the extra batch − 1 rows keep
/// the whole window of a prefill batch's first token while the batch writes its later rows. A ring remembers the
/// lowest position it still holds, so cutting the cache back (<see cref="Reusable"/>) or shifting it never reads a
/// row that a later position overwrote. Global layers hold the context as before.
/// </para>
/// </summary>
internal sealed class KvCache : ICacheRows
{
    /// <summary>Fewest positions a growth step adds.</summary>
    public const int GrowthChunk = 256;

    private readonly byte[][] _layers;
    // Per layer: positions it holds (the context, or a sliding-window layer's ring), its window (0: global), and the
    // lowest position whose row is still intact (above 0 only once a ring has wrapped).
    private readonly int[] _rows, _windows, _floor;
    private readonly int _keyBytes, _rowBytes;
    // Rotated copies of the row being written (Write runs on one thread at a time).
    private readonly float[] _rotated;

    public KvCacheType KeyType { get; }
    public KvCacheType ValueType { get; }
    public int Capacity { get; }
    public int KvDim { get; }
    public int Length { get; set; }

    /// <summary>True when some sliding-window layer keeps a ring shorter than the context (no prefix rows to snapshot).</summary>
    public bool HasRing { get; }

    /// <summary>Most positions one forward pass may write at once: the batch the rings were sized for (unbounded without rings).</summary>
    public int MaxBatch { get; }

    /// <summary>Positions memory is held for (≤ <see cref="Capacity"/>).</summary>
    public int Reserved { get; private set; }

    /// <summary>Hadamard rotation size the keys / values are stored with (0: none).</summary>
    public int KeyRotation { get; }
    public int ValueRotation { get; }

    public KvCache(int layers, int capacity, int kvDim, KvCacheType type = KvCacheType.F16, int headDim = 0)
        : this(layers, capacity, kvDim, type, type, headDim)
    {
    }

    // windows: per layer, its sliding window (0: global), null when every layer is global; batch: most positions one
    // forward pass writes (a ring's rows beyond the window).
    public KvCache(int layers, int capacity, int kvDim, KvCacheType keyType, KvCacheType valueType, int headDim,
        int[]? windows = null, int batch = 512)
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
        if (windows != null && windows.Length != layers) throw new ArgumentException($"{windows.Length} windows for {layers} layers", nameof(windows));
        if (batch < 1) throw new ArgumentOutOfRangeException(nameof(batch), "the batch must be at least 1");
        _windows = windows?.ToArray() ?? new int[layers];
        _rows = new int[layers];
        _floor = new int[layers];
        for (int l = 0; l < layers; l++)
        {
            if (_windows[l] < 0) throw new ArgumentOutOfRangeException(nameof(windows), $"layer {l}'s window {_windows[l]} is negative");
            _rows[l] = RingRows(_windows[l], batch, capacity);
            HasRing |= _rows[l] < capacity;
        }
        MaxBatch = HasRing ? batch : int.MaxValue;
    }

    /// <summary>
    /// Positions a layer with sliding window <paramref name="window"/> keeps: the window plus the batch's other
    /// rows (a batch token's window reaches back W − 1 before the batch, which writes all its rows first), never
    /// more than the context; a global layer (window 0) keeps the context.
    /// </summary>
    public static int RingRows(int window, int batch, int capacity) =>
        window > 0 ? (int)Math.Min(capacity, (long)window + batch - 1) : capacity;

    /// <summary>Positions layer <paramref name="layer"/> keeps at most (its ring, or the context).</summary>
    public int LayerRows(int layer) => _rows[layer];

    // Rows a layer has memory for now.
    private int Held(int layer) => Math.Min(Reserved, _rows[layer]);

    /// <summary>Bytes held now (grows with <see cref="Reserved"/>, up to each ring's size).</summary>
    public long Bytes
    {
        get
        {
            long rows = 0;
            for (int l = 0; l < _layers.Length; l++) rows += Held(l);
            return rows * _rowBytes;
        }
    }

    /// <summary>Bytes a full context takes (sliding-window layers count their rings).</summary>
    public long CapacityBytes
    {
        get
        {
            long rows = 0;
            foreach (int r in _rows) rows += r;
            return rows * _rowBytes;
        }
    }

    /// <summary>Makes room for positions [0, <paramref name="positions"/>) in every layer, keeping what is stored.</summary>
    public void Reserve(int positions)
    {
        if (positions <= Reserved) return;
        if (positions > Capacity) throw new InvalidOperationException($"context full: {positions} positions exceed the context of {Capacity}");
        int grown = Math.Max(positions, Reserved + Reserved / 2);
        grown = (int)Math.Min(Capacity, ((long)grown + GrowthChunk - 1) / GrowthChunk * GrowthChunk);
        for (int l = 0; l < _layers.Length; l++)
        {
            // A ring grows only until it is whole; before that no position has wrapped, so rows keep their index.
            long bytes = (long)Math.Min(grown, _rows[l]) * _rowBytes;
            if (bytes == _layers[l].Length) continue;
            var bigger = new byte[checked(bytes)];
            Tensors.HugePages.Advise(bigger);
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
        if (HasRing) throw new InvalidOperationException("a sliding-window ring holds no prefix rows to snapshot");
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
        int rows = _rows[layer];
        // Position pos takes the row of pos − rows in a ring: nothing at or below that is held any more.
        if (pos - rows >= _floor[layer]) _floor[layer] = pos - rows + 1;
        var row = _layers[layer].AsSpan((pos < rows ? pos : pos % rows) * _rowBytes, _rowBytes);
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
        new(_layers[layer], _rowBytes, KvRowCodec.Bytes(KeyType, offset), width, KeyType, KeyRotation, Ring(layer));

    public KvHead ValueHead(int layer, int offset, int width) =>
        new(_layers[layer], _rowBytes, _keyBytes + KvRowCodec.Bytes(ValueType, offset), width, ValueType, ValueRotation, Ring(layer));

    // Rows of a layer's ring (0: the layer holds the context, position = row).
    private int Ring(int layer) => _rows[layer] < Capacity ? _rows[layer] : 0;

    /// <summary>
    /// The longest prefix of at most <paramref name="length"/> positions the cache can go on from: that length
    /// unless a sliding-window ring has already overwritten part of the window the next position needs (a prefix
    /// more than ring − window + 1 positions back), then 0: such a prefix must be recomputed.
    /// </summary>
    public int Reusable(int length)
    {
        length = Math.Clamp(length, 0, Length);
        for (int l = 0; l < _floor.Length; l++)
            if (_floor[l] > FlashAttention.WindowStart(length, _windows[l])) return 0;
        return length;
    }

    /// <summary>Decodes elements [offset, offset+width) of the keys at positions [pos0, pos0+count) into dst, width floats per position.</summary>
    public void ReadKeys(int layer, int pos0, int count, int offset, int width, Span<float> dst) =>
        Read(layer, KeyHead(layer, Aligned(offset, KeyRotation), Aligned(width, KeyRotation)), pos0, count, dst);

    public void ReadValues(int layer, int pos0, int count, int offset, int width, Span<float> dst) =>
        Read(layer, ValueHead(layer, Aligned(offset, ValueRotation), Aligned(width, ValueRotation)), pos0, count, dst);

    // Rotated rows are read back in whole rotation chunks (whole heads).
    private static int Aligned(int n, int rotation) => rotation == 0 || n % rotation == 0 ? n
        : throw new ArgumentException($"{n} is not a multiple of the rotation size {rotation}: read whole heads");

    private void Read(int layer, KvHead h, int pos0, int count, Span<float> dst)
    {
        if (pos0 < _floor[layer] || count < 0 || pos0 + count > Reserved || count > 0 && !h.Holds(pos0, pos0 + count - 1) || KvRowCodec.Bytes(h.Type, h.Width) + h.RowOffset > _rowBytes)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the {Reserved} held");
        for (int p = 0; p < count; p++)
        {
            var d = dst.Slice(p * h.Width, h.Width);
            KvRowCodec.Decode(h.Type, h.Rows.Slice(h.Row(pos0 + p) * h.RowStride + h.RowOffset), d, FlashAttention.BestWidth);
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
            if (Ring(l) > 0)
            {
                ShiftRing(l, keep, discard, key, reposition);
                continue;
            }
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

    /// <summary>
    /// <see cref="Shift"/> of one ring layer: every position the ring still holds that survives the shift moves to
    /// the row of its new position (re-rotated if it moved); the lowest one held becomes the ring's floor, so a
    /// window that reached into positions the ring had already dropped shows up in <see cref="Reusable"/>.
    /// </summary>
    private void ShiftRing(int l, int keep, int discard, float[] key, KeyAction reposition)
    {
        int rows = _rows[l], length = Length - discard;
        var plane = _layers[l];
        var old = plane.ToArray(); // a context shift is rare: one copy of the ring
        int floor = length;
        for (int p = Math.Max(0, length - rows); p < length; p++)
        {
            int from = p < keep ? p : p + discard;
            if (from < _floor[l]) continue; // dropped from the ring before the shift
            floor = Math.Min(floor, p);
            var src = old.AsSpan(from % rows * _rowBytes, _rowBytes);
            var row = plane.AsSpan(p % rows * _rowBytes, _rowBytes);
            src.CopyTo(row);
            if (from == p) continue;
            var keyRow = row[.._keyBytes];
            KvRowCodec.DecodeReference(KeyType, keyRow, key);
            Hadamard.Rotate(key, KeyRotation);
            reposition(l, key);
            Hadamard.Rotate(key, KeyRotation);
            KvRowCodec.Encode(KeyType, key, keyRow);
        }
        _floor[l] = floor;
    }

    /// <summary>Re-positions one key row (as float, un-rotated) of layer <paramref name="layer"/> in place.</summary>
    public delegate void KeyAction(int layer, Span<float> key);

    /// <summary>Works on one float row in place (the MLA latent cache's shift).</summary>
    public delegate void SpanAction(Span<float> row);
}
