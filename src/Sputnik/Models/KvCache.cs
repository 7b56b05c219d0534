using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// Keys and values of every layer for one sequence, laid out [layer][KV head][keys | values][position]: each head's
/// keys, and its values, are a plane of their own, one row per position. Decode attention streams a head's rows
/// from memory once per token. With every head's keys, then every head's values in one row per position (this
/// cache's earlier layout), a head's 256-byte key rows sat 1 KiB apart: the decode split at depth 4,096 took up to
/// 1.4× as long (three alternating rounds, best 26.3/26.1/25.9 against 26.8/20.7/18.1 ms a token; the first round
/// showed nothing); a row per head, keys then values, measured 24.3/21.9/22.5 (`Sputnik.Bench attn layout 4096 3
/// split`, bench/RESULTS.md). Keys are stored as <see cref="KeyType"/>, values as
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

    // Plane 2·(l·heads + g): the keys of head g of layer l, one row per position; the next plane its values.
    private readonly byte[][] _planes;
    private readonly int _layerCount, _heads, _headDim;
    // Per layer: positions it holds (the context, or a sliding-window layer's ring), its window (0: global), and the
    // lowest position whose row is still intact (above 0 only once a ring has wrapped).
    private readonly int[] _rows, _windows, _floor;
    // Bytes of one head's keys at one position, and of its values.
    private readonly int _keyBytes, _valueBytes;
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
        if (head > 0 && kvDim % head != 0) throw new ArgumentException($"{kvDim} key values are not whole heads of {head}", nameof(headDim));
        _layerCount = layers;
        _headDim = head;
        _heads = head > 0 ? kvDim / head : 0; // none: a cache that only counts positions (MLA models keep their own)
        _keyBytes = KvRowCodec.Bytes(keyType, head);
        _valueBytes = KvRowCodec.Bytes(valueType, head);
        _planes = new byte[2 * layers * _heads][];
        for (int i = 0; i < _planes.Length; i++) _planes[i] = [];
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
            for (int l = 0; l < _layerCount; l++) rows += Held(l);
            return rows * (_keyBytes + _valueBytes) * _heads;
        }
    }

    /// <summary>Bytes a full context takes (sliding-window layers count their rings).</summary>
    public long CapacityBytes
    {
        get
        {
            long rows = 0;
            foreach (int r in _rows) rows += r;
            return rows * (_keyBytes + _valueBytes) * _heads;
        }
    }

    /// <summary>Makes room for positions [0, <paramref name="positions"/>) in every layer, keeping what is stored.</summary>
    public void Reserve(int positions)
    {
        if (positions <= Reserved) return;
        if (positions > Capacity) throw new InvalidOperationException($"context full: {positions} positions exceed the context of {Capacity}");
        int grown = Math.Max(positions, Reserved + Reserved / 2);
        grown = (int)Math.Min(Capacity, ((long)grown + GrowthChunk - 1) / GrowthChunk * GrowthChunk);
        for (int i = 0; i < _planes.Length; i++)
        {
            // A ring grows only until it is whole; before that no position has wrapped, so rows keep their index.
            long bytes = (long)Math.Min(grown, _rows[i / (2 * _heads)]) * RowBytes(i);
            if (bytes == _planes[i].Length) continue;
            var bigger = new byte[checked(bytes)];
            Tensors.HugePages.Advise(bigger);
            _planes[i].CopyTo(bigger, 0); // whole rows: a batch in flight has rows past Length in earlier layers
            _planes[i] = bigger;
        }
        Reserved = grown;
    }

    // Planes alternate per layer and head: keys (even), then values (odd); see KeyPlane and ValuePlane.
    private static bool IsKeyPlane(int i) => i % 2 == 0;

    // Bytes of one position in plane i.
    private int RowBytes(int i) => IsKeyPlane(i) ? _keyBytes : _valueBytes;

    private byte[] KeyPlane(int layer, int head) => _planes[2 * (layer * _heads + head)];
    private byte[] ValuePlane(int layer, int head) => _planes[2 * (layer * _heads + head) + 1];

    // Snapshot planes: each head's keys and its values, per layer.
    int ICacheRows.Planes => _planes.Length;
    int ICacheRows.RowBytes(int plane) => RowBytes(plane);
    string ICacheRows.Layout => $"kv {KeyType}/{ValueType} {_layerCount}x{_heads}x{_headDim} planes";

    ReadOnlySpan<byte> ICacheRows.Rows(int plane, int pos0, int count) => PlaneRows(plane, pos0, count);

    void ICacheRows.WriteRows(int plane, int pos0, ReadOnlySpan<byte> rows)
    {
        int rowBytes = RowBytes(plane);
        if (rows.Length % rowBytes != 0) throw new ArgumentException($"{rows.Length} bytes are not whole rows of {rowBytes}");
        rows.CopyTo(PlaneRows(plane, pos0, rows.Length / rowBytes));
        if ((IsKeyPlane(plane) ? KeyType : ValueType) == KvCacheType.F16 && HalvesFinite && !KvRowCodec.HalvesFinite(rows)) HalvesFinite = false;
    }

    private Span<byte> PlaneRows(int plane, int pos0, int count)
    {
        if (HasRing) throw new InvalidOperationException("a sliding-window ring holds no prefix rows to snapshot");
        if (pos0 < 0 || count < 0 || pos0 + count > Capacity)
            throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the cache of {Capacity}");
        Reserve(pos0 + count);
        return _planes[plane].AsSpan(pos0 * RowBytes(plane), count * RowBytes(plane));
    }

    /// <summary>
    /// True while no F16 key or value row stored here holds an infinity or NaN (a float at or past F16's overflow, or
    /// NaN, or such halves copied in): attention over the cache may then skip its check for them
    /// (FlashAttention.FusedHalves.cs). Once false it stays false.
    /// </summary>
    public bool HalvesFinite { get; private set; } = true;

    /// <summary>Notes a row of floats about to be stored as <paramref name="type"/>.</summary>
    private void NoteRow(KvCacheType type, ReadOnlySpan<float> row)
    {
        if (type == KvCacheType.F16 && HalvesFinite && !KvRowCodec.FitsHalf(row)) HalvesFinite = false;
    }

    /// <summary>Stores the key and value rows (kvDim floats each) of one position.</summary>
    public void Write(int layer, int pos, ReadOnlySpan<float> key, ReadOnlySpan<float> value)
    {
        if ((uint)pos >= (uint)Capacity) throw new ArgumentOutOfRangeException(nameof(pos), $"position {pos} outside the cache of {Capacity}");
        if (pos >= Reserved) Reserve(pos + 1);
        int rows = _rows[layer];
        // Position pos takes the row of pos − rows in a ring: nothing at or below that is held any more.
        if (pos - rows >= _floor[layer]) _floor[layer] = pos - rows + 1;
        int row = pos < rows ? pos : pos % rows;
        var k = Rotated(key[..KvDim], KeyRotation);
        NoteRow(KeyType, k);
        for (int g = 0; g < _heads; g++)
            KvRowCodec.Encode(KeyType, k.Slice(g * _headDim, _headDim), KeyPlane(layer, g).AsSpan(row * _keyBytes, _keyBytes));
        var v = Rotated(value[..KvDim], ValueRotation); // after the keys: both rotate into one buffer
        NoteRow(ValueType, v);
        for (int g = 0; g < _heads; g++)
            KvRowCodec.Encode(ValueType, v.Slice(g * _headDim, _headDim), ValuePlane(layer, g).AsSpan(row * _valueBytes, _valueBytes));
    }

    private ReadOnlySpan<float> Rotated(ReadOnlySpan<float> x, int rotation)
    {
        if (rotation == 0) return x;
        x.CopyTo(_rotated);
        Hadamard.Rotate(_rotated, rotation); // chunks never straddle heads: the size divides the head
        return _rotated;
    }

    /// <summary>
    /// Keys of one head (<paramref name="width"/> values from element <paramref name="offset"/> of the layer's key row,
    /// within one head, on block boundaries for Q8_0/Q4_0) as attention reads them.
    /// </summary>
    public KvHead KeyHead(int layer, int offset, int width) =>
        new(KeyPlane(layer, HeadOf(offset, width)), _keyBytes, KvRowCodec.Bytes(KeyType, offset % _headDim), width, KeyType, KeyRotation, Ring(layer), HalvesFinite && KeyType == KvCacheType.F16);

    public KvHead ValueHead(int layer, int offset, int width) =>
        new(ValuePlane(layer, HeadOf(offset, width)), _valueBytes, KvRowCodec.Bytes(ValueType, offset % _headDim), width, ValueType, ValueRotation, Ring(layer), HalvesFinite && ValueType == KvCacheType.F16);

    // The head that holds elements [offset, offset + width) of a layer's key or value row.
    private int HeadOf(int offset, int width) =>
        offset < 0 || width < 1 || offset / _headDim != (offset + width - 1) / _headDim || offset + width > KvDim
            ? throw new ArgumentOutOfRangeException(nameof(width), $"elements [{offset}, {offset + width}) are not within one head of {_headDim} (of {KvDim})")
            : offset / _headDim;

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
    public void ReadKeys(int layer, int pos0, int count, int offset, int width, Span<float> dst) => Read(layer, keys: true, pos0, count, offset, width, dst);

    public void ReadValues(int layer, int pos0, int count, int offset, int width, Span<float> dst) => Read(layer, keys: false, pos0, count, offset, width, dst);

    // Rotated rows are read back in whole rotation chunks (whole heads).
    private static int Aligned(int n, int rotation) => rotation == 0 || n % rotation == 0 ? n
        : throw new ArgumentException($"{n} is not a multiple of the rotation size {rotation}: read whole heads");

    // Head by head (each is a plane of its own), rotated back to the values as computed.
    private void Read(int layer, bool keys, int pos0, int count, int offset, int width, Span<float> dst)
    {
        int rotation = keys ? KeyRotation : ValueRotation;
        Aligned(offset, rotation);
        Aligned(width, rotation);
        if (count < 0 || width < 0 || dst.Length < (long)count * width) throw new ArgumentException($"{dst.Length} floats cannot hold {count} positions of {width}");
        for (int c0 = offset, end = offset + width; c0 < end;)
        {
            int cw = Math.Min(end, (c0 / _headDim + 1) * _headDim) - c0;
            var h = keys ? KeyHead(layer, c0, cw) : ValueHead(layer, c0, cw);
            if (pos0 < _floor[layer] || pos0 + count > Reserved || count > 0 && !h.Holds(pos0, pos0 + count - 1))
                throw new ArgumentOutOfRangeException(nameof(count), $"positions [{pos0}, {pos0 + count}) outside the {Reserved} held");
            for (int p = 0; p < count; p++)
            {
                var d = dst.Slice(p * width + c0 - offset, cw);
                KvRowCodec.Decode(h.Type, h.Rows.Slice(h.Row(pos0 + p) * h.RowStride + h.RowOffset), d, FlashAttention.BestWidth);
                Hadamard.Rotate(d, h.Rotation);
            }
            c0 += cw;
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
        for (int l = 0; l < _layerCount; l++)
        {
            if (Ring(l) > 0)
            {
                ShiftRing(l, keep, discard, key, reposition);
                continue;
            }
            for (int i = 2 * l * _heads; i < 2 * (l + 1) * _heads; i++)
            {
                long rowBytes = RowBytes(i);
                Array.Copy(_planes[i], (keep + discard) * rowBytes, _planes[i], keep * rowBytes, moved * rowBytes);
            }
            for (int p = keep; p < keep + moved; p++) RepositionKeys(l, p, key, reposition);
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
        int first = 2 * l * _heads;
        var old = new byte[2 * _heads][]; // a context shift is rare: one copy of the ring
        for (int i = 0; i < old.Length; i++) old[i] = _planes[first + i].ToArray();
        int floor = length;
        for (int p = Math.Max(0, length - rows); p < length; p++)
        {
            int from = p < keep ? p : p + discard;
            if (from < _floor[l]) continue; // dropped from the ring before the shift
            floor = Math.Min(floor, p);
            for (int i = 0; i < old.Length; i++)
            {
                int rowBytes = RowBytes(i);
                old[i].AsSpan(from % rows * rowBytes, rowBytes).CopyTo(_planes[first + i].AsSpan(p % rows * rowBytes, rowBytes));
            }
            if (from != p) RepositionKeys(l, p % rows, key, reposition);
        }
        _floor[l] = floor;
    }

    /// <summary>The keys of every head of layer <paramref name="l"/> stored in row <paramref name="row"/>, re-rotated for a new position and stored back.</summary>
    private void RepositionKeys(int l, int row, float[] key, KeyAction reposition)
    {
        for (int g = 0; g < _heads; g++)
            KvRowCodec.DecodeReference(KeyType, KeyPlane(l, g).AsSpan(row * _keyBytes, _keyBytes), key.AsSpan(g * _headDim, _headDim));
        Hadamard.Rotate(key, KeyRotation); // un-rotate, reposition, rotate again
        reposition(l, key);
        Hadamard.Rotate(key, KeyRotation);
        NoteRow(KeyType, key);
        for (int g = 0; g < _heads; g++)
            KvRowCodec.Encode(KeyType, key.AsSpan(g * _headDim, _headDim), KeyPlane(l, g).AsSpan(row * _keyBytes, _keyBytes));
    }

    /// <summary>Re-positions one key row (as float, un-rotated) of layer <paramref name="layer"/> in place.</summary>
    public delegate void KeyAction(int layer, Span<float> key);

    /// <summary>Works on one float row in place (the MLA latent cache's shift).</summary>
    public delegate void SpanAction(Span<float> row);
}
