using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Models;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tensors;

/// <summary>
/// One KV head's keys or values as a cache stores them: <see cref="Width"/> values of <see cref="Type"/> starting
/// <see cref="RowOffset"/> bytes into each row of <see cref="Rows"/>, position t at byte t·<see cref="RowStride"/>,
/// stored rotated by <see cref="Hadamard"/> chunks of <see cref="Rotation"/> values (0: as computed). A sliding-window
/// layer's ring (<see cref="Ring"/> rows) keeps position t in row t mod Ring instead. <see cref="Finite"/>: the rows are known
/// to hold no infinity or NaN (a KvCache that has seen every value stored; false when unknown).
/// </summary>
internal readonly ref struct KvHead(ReadOnlySpan<byte> rows, int rowStride, int rowOffset, int width, KvCacheType type, int rotation = 0, int ring = 0,
    bool finite = false)
{
    public readonly ReadOnlySpan<byte> Rows = rows;
    public readonly int RowStride = rowStride, RowOffset = rowOffset, Width = width, Rotation = rotation, Ring = ring;
    public readonly KvCacheType Type = type;
    public readonly bool Finite = finite;

    /// <summary>Bytes of one position's <see cref="Width"/> values in <see cref="Type"/> (computed once: decode reads it per row).</summary>
    public readonly int RowBytes = KvRowCodec.Bytes(type, width);

    /// <summary>The row position <paramref name="pos"/> is stored in.</summary>
    public int Row(int pos) => Ring == 0 ? pos : pos % Ring;

    /// <summary>Whether positions first … last can all be read at once: rows exist for them and, in a ring, none overwrote another.</summary>
    public bool Holds(int first, int last) =>
        Ring == 0 ? last < Positions : last - first < Ring && (last < Positions || Positions >= Ring);

    /// <summary>Positions the rows hold.</summary>
    public int Positions => RowStride <= 0 || Rows.Length < RowOffset + RowBytes ? 0
        : (Rows.Length - RowOffset - RowBytes) / RowStride + 1;

    /// <summary>The same head seen from position <paramref name="position"/> on, which becomes its position 0 (one of several sequences packed into one cache).</summary>
    public KvHead From(int position) => Ring != 0 ? throw new InvalidOperationException("a ring cache's rows are not in position order")
        : new(Rows[(position * RowStride)..], RowStride, RowOffset, Width, Type, Rotation, finite: Finite);

    /// <summary>True when <paramref name="other"/> starts at the same stored values, so its decoded rows serve this head too (MLA: values are a prefix of the key rows).</summary>
    public bool SharesRowsWith(in KvHead other) =>
        Type == other.Type && RowStride == other.RowStride && RowOffset == other.RowOffset && Width <= other.Width && Rotation == other.Rotation && Ring == other.Ring &&
        Unsafe.AreSame(ref MemoryMarshal.GetReference(Rows), ref MemoryMarshal.GetReference(other.Rows));
}

/// <summary>
/// Causal attention of a block of query rows over one KV head, flash-attention style: keys and values are read a
/// tile of <see cref="Tile"/> positions at a time (decoded from the cache format into an L1-sized buffer once for
/// all query rows of the block: every query head of a GQA group and every token of a prefill block), and each row
/// keeps a running maximum, a running sum and an unnormalized output, rescaled when the maximum grows (online
/// softmax), so nothing grows with the context. Token i of the block sits at position pos0 + i and sees positions
/// max(0, pos0 + i − window + 1) … pos0 + i (window 0: from 0).
/// Tiles start at multiples of <see cref="Tile"/> whatever the block, so a row's result depends only on its own
/// position and the cache: a token attended alone and the same token inside a prefill block or a multi-sequence
/// step give the same bits. Tiles are absolute positions in a sliding-window ring too (a tile that wraps is gathered
/// from both ends of the ring), so a ring gives the bits of a whole-context cache masked to the same window.
/// With a Q8_0 or Q4_0 key cache the query rows are quantized to Q8_0 once per call and q·k runs on 8-bit integers
/// block by block (exact integer sums, one float multiply-add per block), as llama.cpp's flash attention does:
/// the keys are never widened to float, and a quantized cache gives llama.cpp's scores. With an F16 key cache the
/// queries are rounded to F16 first, as llama.cpp converts them for its F16 dot product. Keys stored Hadamard-rotated
/// get rotated queries; values stored rotated give a rotated output, rotated back at the end.
/// </summary>
internal static partial class FlashAttention
{
    public const int Tile = 64;

    /// <summary>Widest vector path this CPU runs (the JIT folds it to a constant).</summary>
    public static int BestWidth =>
        Vector512.IsHardwareAccelerated ? 512 : Vector256.IsHardwareAccelerated ? 256 : Vector128.IsHardwareAccelerated ? 128 : 0;

    // Per-thread tile buffers, grown when a wider head or larger block shows up, never per call.
    private sealed class Scratch
    {
        public float[] Keys = [], Values = [], Max = [], Sum = [];
        // Per row: the tile's scores (then probabilities), Tile apart; the segment's running maximum, sum and
        // unnormalized output; the tile's rescale factor, largest score and the span of the tile it sees.
        public float[] Scores = [], SegMax = [], SegSum = [], SegOut = [], Alpha = [], TileMax = [];
        public int[] RowFrom = [], RowCount = [];
        // Quantized keys: the tile's 8-bit values and block scales, and the Q8_0 query rows.
        // KeyScales: block b of tile position t at b·Tile + t, so eight keys' scales of a block are one vector load.
        public sbyte[] KeyInts = [], QueryInts = [];
        public float[] KeyScales = [], QueryScales = [];
        // A block-format tile's F16 block scales as read (block b of position t at b·Tile + t), converted in one pass,
        // and a value tile's scales as floats.
        public ushort[] ScaleBits = [];
        public float[] ValueScales = [];
        public byte[] QueryBlocks = new byte[34];
        public float[] QueryRow = [], HalfQueries = [];
        public Half[] HalfRow = [];
        // The fused F16 kernels (FlashAttention.FusedHalves.cs): queries and probabilities times 2^112, and the
        // accumulators of eight keys (four at 256 bits) for a block's rows between their multiply-adds and Sum8 (Sum4).
        public float[] ScaledQueries = [], ScaledProbs = [];
        public readonly float[] DotParts = new float[FusedRows * 8 * 16];

        public void Ensure(int rows, int keyWidth, int valueWidth, bool quantizedKeys)
        {
            if (Values.Length < Tile * valueWidth) Values = new float[Tile * valueWidth];
            if (Max.Length < rows)
            {
                Max = new float[rows];
                Sum = new float[rows];
                Scores = new float[rows * Tile];
                SegMax = new float[rows];
                SegSum = new float[rows];
                Alpha = new float[rows];
                TileMax = new float[rows];
                RowFrom = new int[rows];
                RowCount = new int[rows];
            }
            if (SegOut.Length < rows * valueWidth) SegOut = new float[rows * valueWidth];
            if (ScaleBits.Length < Tile * Math.Max(keyWidth, valueWidth) / KvRowCodec.Block)
                ScaleBits = new ushort[Tile * Math.Max(keyWidth, valueWidth) / KvRowCodec.Block];
            if (ValueScales.Length < Tile * valueWidth / KvRowCodec.Block) ValueScales = new float[Tile * valueWidth / KvRowCodec.Block];
            if (!quantizedKeys)
            {
                if (Keys.Length < Tile * keyWidth) Keys = new float[Tile * keyWidth];
                if (HalfQueries.Length < rows * keyWidth)
                {
                    HalfQueries = new float[rows * keyWidth];
                    ScaledQueries = new float[rows * keyWidth];
                }
                // Sized apart: more rows of a narrower head fit the queries' buffers but not these.
                if (ScaledProbs.Length < rows * Tile) ScaledProbs = new float[rows * Tile];
                if (HalfRow.Length < keyWidth) HalfRow = new Half[keyWidth];
                return;
            }
            int blocks = keyWidth / KvRowCodec.Block;
            if (KeyInts.Length < Tile * keyWidth)
            {
                KeyInts = new sbyte[Tile * keyWidth];
                KeyScales = new float[Tile * blocks];
            }
            if (QueryRow.Length < keyWidth) QueryRow = new float[keyWidth];
            if (QueryInts.Length < rows * keyWidth)
            {
                QueryInts = new sbyte[rows * keyWidth];
                QueryScales = new float[rows * blocks];
            }
        }
    }

    [ThreadStatic] private static Scratch? t_scratch;

    /// <summary>First position token at <paramref name="pos"/> sees.</summary>
    public static int WindowStart(int pos, int window) => window > 0 ? Math.Max(0, pos - window + 1) : 0;

    /// <summary>
    /// Rows (token i, head j) for i &lt; tokens, j &lt; group: query at q[i·qStride + j·keys.Width], output (values.Width
    /// floats, overwritten) at output[i·oStride + j·values.Width]; scores are q·k·<paramref name="scale"/>.
    /// <paramref name="sinks"/> (gpt-oss's attention sinks; empty for none) holds one logit per head j that joins every
    /// softmax of that head's rows as a score with no value: it takes a share of the probability and returns nothing.
    /// </summary>
    public static void Attend(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, Span<float> output, int oStride,
        int tokens, int group, int pos0, int window, float scale, ReadOnlySpan<float> sinks = default) =>
        Attend(keys, values, q, qStride, output, oStride, tokens, group, pos0, window, scale, BestWidth, sinks);

    /// <summary>
    /// The kernel with an explicit vector width (512, 256, 128, or 0 for scalar; <see cref="BestWidth"/> in use, any in
    /// tests). <paramref name="keyEnd"/> &gt; 0 makes the attention bidirectional (an encoder's): every row sees
    /// positions [window start, keyEnd) instead of stopping at its own.
    /// </summary>
    internal static void Attend(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, Span<float> output, int oStride,
        int tokens, int group, int pos0, int window, float scale, int width, ReadOnlySpan<float> sinks = default, int keyEnd = 0)
    {
        int vw = values.Width, rows = tokens * group;
        Check(keys, values, q, qStride, output, oStride, tokens, group, pos0, window, keyEnd);
        if (!sinks.IsEmpty && sinks.Length != group) throw new ArgumentException($"{sinks.Length} sinks for {group} heads");
        var sc = Prepare(keys, values, q, qStride, tokens, group, width);
        var max = sc.Max.AsSpan(0, rows);
        var sum = sc.Sum.AsSpan(0, rows);
        max.Fill(float.NegativeInfinity);
        sum.Clear();
        for (int i = 0; i < tokens; i++) output.Slice(i * oStride, group * vw).Clear();
        int last = keyEnd > 0 ? keyEnd - 1 : pos0 + tokens - 1;
        for (int s0 = WindowStart(pos0, window) / Segment * Segment; s0 <= last; s0 += Segment)
        {
            RunSegment(keys, values, q, qStride, tokens, group, pos0, window, scale, s0, sc, width, keyEnd);
            for (int i = 0; i < tokens; i++)
                for (int j = 0; j < group; j++)
                {
                    int r = i * group + j;
                    Merge(ref max[r], ref sum[r], output.Slice(i * oStride + j * vw, vw), sc.SegMax[r], sc.SegSum[r], sc.SegOut.AsSpan(r * vw, vw), width);
                }
        }
        for (int i = 0; i < tokens; i++)
            for (int j = 0; j < group; j++)
                Normalize(output.Slice(i * oStride + j * vw, vw), max[i * group + j], sum[i * group + j], SinkOf(sinks, j), values.Rotation);
    }

    /// <summary>Head j's sink logit, −∞ (no effect) when there are none.</summary>
    private static float SinkOf(ReadOnlySpan<float> sinks, int j) => sinks.IsEmpty ? float.NegativeInfinity : sinks[j];

    /// <summary>
    /// Positions per segment. Each row's positions are attended segment by segment (a segment starts at a multiple of
    /// this, whatever the block), each segment from a fresh running maximum and sum, and the segments' partial results
    /// are folded into the row's result in order (<see cref="Merge"/>). A single-token decode splits its segments over
    /// threads (<c>AttendSegment</c>, <c>MergeSegments</c>) and gets the same bits as one call of
    /// <c>Attend</c>: with only a few KV heads there would otherwise be only a few work items per layer.
    /// </summary>
    public const int Segment = 4 * Tile;

    /// <summary>Segments a token at <paramref name="pos"/> reads (with window <paramref name="window"/>).</summary>
    public static int Segments(int pos, int window) => pos / Segment - WindowStart(pos, window) / Segment + 1;

    /// <summary>Floats one row's partial result takes: its maximum, its sum, then <paramref name="valueWidth"/> unnormalized outputs.</summary>
    public static int PartialFloats(int valueWidth) => valueWidth + 2;

    /// <summary>
    /// One token at <paramref name="pos"/>: its <paramref name="group"/> query rows (consecutive, keys.Width apart) over
    /// segment <paramref name="index"/> of its window (0: the segment holding its first visible position). Writes each
    /// row's partial result, <see cref="PartialFloats"/> floats, to <paramref name="partials"/>.
    /// </summary>
    public static void AttendSegment(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, Span<float> partials,
        int group, int pos, int window, float scale, int index) =>
        AttendSegment(keys, values, q, partials, group, pos, window, scale, index, BestWidth);

    internal static void AttendSegment(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, Span<float> partials,
        int group, int pos, int window, float scale, int index, int width)
    {
        int vw = values.Width, pf = PartialFloats(vw);
        if ((uint)index >= (uint)Segments(pos, window))
            throw new ArgumentOutOfRangeException(nameof(index), $"segment {index} of a token at {pos} that reads {Segments(pos, window)}");
        if (partials.Length < group * pf) throw new ArgumentException($"partials hold {partials.Length} floats, {group} rows need {group * pf}");
        Check(keys, values, q, 0, partials, 0, 1, group, pos, window, keyEnd: 0);
        var sc = Prepare(keys, values, q, 0, 1, group, width);
        RunSegment(keys, values, q, 0, 1, group, pos, window, scale, (WindowStart(pos, window) / Segment + index) * Segment, sc, width, keyEnd: 0);
        for (int j = 0; j < group; j++)
        {
            var p = partials.Slice(j * pf, pf);
            p[0] = sc.SegMax[j];
            p[1] = sc.SegSum[j];
            sc.SegOut.AsSpan(j * vw, vw).CopyTo(p[2..]);
        }
    }

    /// <summary>
    /// The output rows (<paramref name="group"/> × values.Width, overwritten) of one token from the partial results of
    /// its <paramref name="segments"/> segments, segment s's rows at partials[(s·group + j)·PartialFloats]: the same
    /// bits as <c>Attend</c> gives that token.
    /// </summary>
    public static void MergeSegments(ReadOnlySpan<float> partials, int segments, int group, in KvHead values, Span<float> output,
        ReadOnlySpan<float> sinks = default) =>
        MergeSegments(partials, segments, group, values, output, BestWidth, sinks);

    internal static void MergeSegments(ReadOnlySpan<float> partials, int segments, int group, in KvHead values, Span<float> output, int width,
        ReadOnlySpan<float> sinks = default)
    {
        int vw = values.Width, pf = PartialFloats(vw);
        if (!sinks.IsEmpty && sinks.Length != group) throw new ArgumentException($"{sinks.Length} sinks for {group} heads");
        if (partials.Length < segments * group * pf || output.Length < group * vw)
            throw new ArgumentException($"{segments} segments × {group} rows: partials or output too short");
        for (int j = 0; j < group; j++)
        {
            var o = output.Slice(j * vw, vw);
            o.Clear();
            float max = float.NegativeInfinity, sum = 0;
            for (int s = 0; s < segments; s++)
            {
                var p = partials.Slice((s * group + j) * pf, pf);
                Merge(ref max, ref sum, o, p[0], p[1], p[2..], width);
            }
            Normalize(o, max, sum, SinkOf(sinks, j), values.Rotation);
        }
    }

    /// <summary>The thread's scratch, sized for the call, with the queries prepared for the key format.</summary>
    private static Scratch Prepare(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, int tokens, int group, int width)
    {
        int kw = keys.Width;
        var sc = t_scratch ??= new Scratch();
        bool quantized = KvRowCodec.IsBlockFormat(keys.Type);
        sc.Ensure(tokens * group, kw, values.Width, quantized);
        if (quantized) QuantizeQueries(q, qStride, tokens, group, kw, keys.Rotation, sc);
        if (keys.Type == KvCacheType.F16) RoundQueries(q, qStride, tokens, group, kw, sc);
        if (FusesHalves(keys, values, tokens, width)) ScaleQueries(sc, tokens * group, kw);
        return sc;
    }

    /// <summary>
    /// Every row's partial result over the positions of the segment starting at <paramref name="s0"/> (those its window
    /// and causality let it see) into sc.SegMax/SegSum/SegOut, a tile at a time. Per tile, the keys are decoded and
    /// every row's scores, softmax update and probabilities computed first, then the values decoded and accumulated:
    /// each phase's tile buffer stays in L1. Rows that see the same positions of a tile go through the register-blocked
    /// loops three at a time (FlashAttention.Blocked.cs), the others one at a time; both give the same bits. A single
    /// token reads the cache in place instead where the fused kernels take it, with the same bits: a whole tile of F16
    /// keys and values (FlashAttention.FusedHalves.cs), or the value pass over Q8_0/Q4_0 values
    /// (FlashAttention.FusedBlockValues.cs).
    /// </summary>
    private static void RunSegment(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, int tokens, int group,
        int pos0, int window, float scale, int s0, Scratch sc, int width, int keyEnd)
    {
        int kw = keys.Width, vw = values.Width, rows = tokens * group;
        bool quantized = KvRowCodec.IsBlockFormat(keys.Type), halfQueries = keys.Type == KvCacheType.F16;
        bool shared = values.SharesRowsWith(keys) && !quantized;
        bool blockValues = Blocks(width), blockScores = blockValues && !quantized && kw % (width / 32) == 0;
        bool fused = FusesHalves(keys, values, tokens, width), fusedValues = FusesBlockValues(keys, values, tokens, width);
        sc.SegMax.AsSpan(0, rows).Fill(float.NegativeInfinity);
        sc.SegSum.AsSpan(0, rows).Clear();
        sc.SegOut.AsSpan(0, rows * vw).Clear();
        int last = keyEnd > 0 ? keyEnd - 1 : pos0 + tokens - 1, lo0 = WindowStart(pos0, window), segEnd = Math.Min(s0 + Segment, last + 1);
        for (int t0 = Math.Max(s0, lo0) / Tile * Tile; t0 < segEnd; t0 += Tile)
        {
            int end = Math.Min(t0 + Tile, segEnd), first = Math.Max(t0, lo0);
            for (int i = 0; i < tokens; i++)
            {
                int pos = pos0 + i, a = Math.Max(WindowStart(pos, window), first), b = Math.Min(keyEnd > 0 ? keyEnd : pos + 1, end);
                for (int j = 0; j < group; j++)
                {
                    sc.RowFrom[i * group + j] = a - first;
                    sc.RowCount[i * group + j] = Math.Max(0, b - a); // 0: outside this token's window
                }
            }
            if (fused && sc.RowCount[0] > 0 && FusedHalfTile(keys, values, sc, rows, first, scale, width)) continue;
            scoped ReadOnlySpan<float> k = default;
            int ks = kw;
            // The key pass prefetches the next tile's values too (shared rows: the keys' prefetch covers them).
            scoped var valueRows = shared || !PrefetchValuesWithKeys ? default : values;
            scoped var keyInts = default(KeyInts);
            if (quantized)
            {
                UnpackKeyTile(keys, first, end - first, sc, width, valueRows);
                keyInts = KeyInts.Of(keys, first, sc);
            }
            else k = DecodeTile(keys, first, end - first, sc.Keys, width, sc, out ks, valueRows, prefetch: true);
            // Positions go through the scores, then through the values, a pass of `sub` at a time, so a pass's key rows
            // stay in L1 while every row block reads them (wide MLA rows: a tile of 64 is 147 KB, past L1 and read
            // from L2 once per block). A (row, key) score and each output element see the same operations in the same
            // order whatever the passes: bits unchanged.
            int sub = PassPositions(ks), count = end - first;
            for (int r = 0; r < rows; r++) sc.TileMax[r] = float.NegativeInfinity;
            for (int p0 = 0; p0 < count; p0 += sub)
            {
                int p1 = Math.Min(count, p0 + sub);
                for (int r = 0; r < rows;)
                {
                    if (!PassSpan(sc, r, p0, p1, out int from, out int a, out int b))
                    {
                        r++;
                        continue;
                    }
                    if (blockScores && SameRange(sc, r, rows))
                    {
                        ref float sr = ref sc.Scores[r * Tile + a - from];
                        var (m0, m1, m2) = Scores3(ref QueryRow(sc, q, halfQueries, r, group, qStride, kw),
                            ref QueryRow(sc, q, halfQueries, r + 1, group, qStride, kw), ref QueryRow(sc, q, halfQueries, r + 2, group, qStride, kw),
                            ref Unsafe.Add(ref MemoryMarshal.GetReference(k), a * ks), ks, kw, b - a, scale, ref sr, ref Unsafe.Add(ref sr, Tile), ref Unsafe.Add(ref sr, 2 * Tile), width);
                        sc.TileMax[r] = Math.Max(sc.TileMax[r], m0);
                        sc.TileMax[r + 1] = Math.Max(sc.TileMax[r + 1], m1);
                        sc.TileMax[r + 2] = Math.Max(sc.TileMax[r + 2], m2);
                        r += BlockRows;
                        continue;
                    }
                    float passMax;
                    if (quantized)
                        passMax = QuantScores(sc, keyInts, r, a, b, from, kw / KvRowCodec.Block, scale, sc.Scores.AsSpan(r * Tile, Tile), width);
                    else passMax = Scores(ref QueryRow(sc, q, halfQueries, r, group, qStride, kw), ref Unsafe.Add(ref MemoryMarshal.GetReference(k), a * ks), ks, kw, b - a,
                        scale, sc.Scores.AsSpan(r * Tile + a - from, Tile - (a - from)), width);
                    sc.TileMax[r] = Math.Max(sc.TileMax[r], passMax);
                    r++;
                }
            }
            for (int r = 0; r < rows; r++)
                if (sc.RowCount[r] > 0) Softmax(sc, r, sc.TileMax[r], width);
            if (fusedValues)
            {
                // One token: every row sees the same positions of the tile.
                if (sc.RowCount[0] > 0) FusedBlockValueTile(values, sc, rows, first + sc.RowFrom[0], sc.RowCount[0], width);
                continue;
            }
            int vs = ks;
            var v = shared ? k : DecodeTile(values, first, end - first, sc.Values, width, sc, out vs, default, prefetch: !PrefetchValuesWithKeys);
            for (int p0 = 0; p0 < count; p0 += sub)
            {
                int p1 = Math.Min(count, p0 + sub);
                for (int r = 0; r < rows;)
                {
                    if (!PassSpan(sc, r, p0, p1, out int from, out int a, out int b))
                    {
                        r++;
                        continue;
                    }
                    // The row's rescale applies once, in the first pass that reaches it; later passes go on from o·1.
                    bool firstPass = a == from;
                    ref float vr = ref Unsafe.Add(ref MemoryMarshal.GetReference(v), a * vs);
                    if (blockValues && SameRange(sc, r, rows))
                    {
                        Accumulate3(ref sc.SegOut[r * vw], ref sc.SegOut[(r + 1) * vw], ref sc.SegOut[(r + 2) * vw],
                            firstPass ? sc.Alpha[r] : 1f, firstPass ? sc.Alpha[r + 1] : 1f, firstPass ? sc.Alpha[r + 2] : 1f,
                            ref sc.Scores[r * Tile + a - from], ref sc.Scores[(r + 1) * Tile + a - from], ref sc.Scores[(r + 2) * Tile + a - from], b - a, ref vr, vs, vw, width);
                        r += BlockRows;
                        continue;
                    }
                    Accumulate(ref sc.SegOut[r * vw], firstPass ? sc.Alpha[r] : 1f, sc.Scores.AsSpan(r * Tile + a - from, b - a), ref vr, vs, vw, width);
                    r++;
                }
            }
        }
    }

    /// <summary>Positions [a, b) of the tile row r sees within the pass [p0, p1) (from: its first position of the tile); false when none.</summary>
    private static bool PassSpan(Scratch sc, int r, int p0, int p1, out int from, out int a, out int b)
    {
        from = sc.RowFrom[r];
        a = Math.Max(from, p0);
        b = Math.Min(from + sc.RowCount[r], p1);
        return a < b;
    }

    /// <summary>Positions per pass forced (tests: whole tiles against passes; each gives the same bits); null: <see cref="PassPositions"/> chooses.</summary>
    internal static int? PassOverride;

    /// <summary>
    /// Positions per pass of a tile whose decoded rows are <paramref name="rowFloats"/> apart: the whole tile while it
    /// fits in 32 KiB (every GQA shape), else a multiple of 8 positions within three quarters of L1 (at least 8), the
    /// rest of L1 for the query rows of a block. MLA's 576-wide rows (DeepSeek-V2-Lite, one thread, `Sputnik.Bench
    /// attn mla 2048`, best of three alternating rounds): passes of 64 (the whole tile) 32.2–35.8 ms a token, of 8
    /// 27.7–31.7, of 16 25.5–30.6; 16 is what a 48 KiB L1 gives, 8 a 32 KiB one.
    /// </summary>
    private static int PassPositions(int rowFloats)
    {
        if (PassOverride is int forced) return forced;
        long rowBytes = 4L * rowFloats;
        if (Tile * rowBytes <= 32 << 10) return Tile;
        return (int)Math.Clamp(CacheSizes.L1Bytes * 3 / 4 / rowBytes / 8 * 8, 8, Tile);
    }

    /// <summary>Query row r (token r / group, head r % group) as q·k reads it: rounded to F16 for an F16 key cache.</summary>
    private static ref float QueryRow(Scratch sc, ReadOnlySpan<float> q, bool halfQueries, int r, int group, int qStride, int kw) =>
        ref halfQueries ? ref sc.HalfQueries[r * kw] : ref Unsafe.AsRef(in q[r / group * qStride + r % group * kw]);

    /// <summary>Row r's running maximum, rescale factor and sum once its scores of this tile (largest: tileMax) are in; the scores become probabilities.</summary>
    private static void Softmax(Scratch sc, int r, float tileMax, int width)
    {
        float m = Math.Max(sc.SegMax[r], tileMax);
        sc.Alpha[r] = MathF.Exp(sc.SegMax[r] - m); // 0 on the row's first tile (−∞)
        sc.SegSum[r] = sc.SegSum[r] * sc.Alpha[r] + ExpShifted(sc.Scores.AsSpan(r * Tile, Tile), sc.RowCount[r], m, width);
        sc.SegMax[r] = m;
    }

    /// <summary>
    /// Folds a segment's partial result (its maximum, sum and unnormalized output) into a row's running ones; a segment
    /// the row saw nothing of (maximum −∞) leaves them as they are. Element-wise without fused multiply-adds, so
    /// every vector width gives the same floats.
    /// </summary>
    private static void Merge(ref float max, ref float sum, Span<float> o, float segMax, float segSum, ReadOnlySpan<float> segOut, int width)
    {
        if (float.IsNegativeInfinity(segMax)) return;
        float m = Math.Max(max, segMax);
        float a = MathF.Exp(max - m), b = MathF.Exp(segMax - m); // a = 0 when the row had nothing yet
        sum = sum * a + segSum * b;
        max = m;
        ScaleAdd(o, a, segOut, b, width);
    }

    /// <summary>
    /// The output row divided by its sum, rotated back when the values are stored rotated. A sink (gpt-oss; −∞ for
    /// none) joins the sum as one more score with no value, in ggml's order: a sink above the row's maximum rescales
    /// the output and the sum to it.
    /// </summary>
    private static void Normalize(Span<float> o, float max, float sum, float sink, int rotation)
    {
        if (sink > max)
        {
            float shrink = MathF.Exp(max - sink);
            for (int c = 0; c < o.Length; c++) o[c] *= shrink;
            sum = sum * shrink + 1f;
        }
        else if (!float.IsNegativeInfinity(sink)) sum += MathF.Exp(sink - max);
        float inv = 1f / sum;
        for (int c = 0; c < o.Length; c++) o[c] *= inv;
        Hadamard.Rotate(o, rotation);
    }

    private static void Check(in KvHead keys, in KvHead values, ReadOnlySpan<float> q, int qStride, Span<float> output, int oStride,
        int tokens, int group, int pos0, int window, int keyEnd)
    {
        if (tokens < 1 || group < 1 || pos0 < 0 || window < 0)
            throw new ArgumentOutOfRangeException(nameof(tokens), $"{tokens} tokens × {group} heads at position {pos0}, window {window}");
        if ((tokens - 1) * (long)qStride + group * keys.Width > q.Length || (tokens - 1) * (long)oStride + group * values.Width > output.Length)
            throw new ArgumentException("query or output rows run past their buffers");
        if (keyEnd < 0 || keyEnd > 0 && keyEnd < pos0 + tokens)
            throw new ArgumentOutOfRangeException(nameof(keyEnd), $"keys end at {keyEnd}, before the last query row at {pos0 + tokens - 1}");
        int first = WindowStart(pos0, window), last = keyEnd > 0 ? keyEnd - 1 : pos0 + tokens - 1;
        if (!keys.Holds(first, last) || !values.Holds(first, last))
            throw new ArgumentOutOfRangeException(nameof(pos0), $"the cache holds {Math.Min(keys.Positions, values.Positions)} rows (ring {keys.Ring}), attention needs positions {first}…{last}");
        if (KvRowCodec.IsBlockFormat(keys.Type) && keys.Width % KvRowCodec.Block != 0 || KvRowCodec.IsBlockFormat(values.Type) && values.Width % KvRowCodec.Block != 0)
            throw new ArgumentException($"a block-quantized head must be a multiple of {KvRowCodec.Block} values");
    }

    /// <summary>
    /// How many rows ahead of the one being decoded the cache is prefetched (into L2; 0: none). Decode attention streams
    /// the whole cache once per token, and the hardware prefetcher did not keep up: half of single-token attention time
    /// was the first load of each row waiting on memory (perf at depth 4,096; this VM backs nothing with huge pages, so
    /// each 4 KiB page is also a page walk). A tile ahead: 1.2–1.8× over none, as good as 16 rows at depth 4,096 and
    /// better at 16,384 (bench/RESULTS.md). Settable for the bench's A/B (`attn DEPTH TYPE SECONDS 0,16,64`).
    /// </summary>
    internal static int PrefetchAhead = Tile;

    /// <summary>
    /// Whether the key pass of a tile prefetches the values' rows a tile ahead along with the keys' (else each pass
    /// prefetches its own). One thread streaming a head of a 128 MiB F16 cache from DRAM (4 KiB pages: this VM grants
    /// no transparent huge pages), with the tile's work in between: 327–354 ns a position apart, 249–281 together
    /// (three rounds); the decode split of a qwen2-1.5B cache at depth 4,096 on 2 threads (`attn 4096 F16 3 split
    /// apart,together`), best 25.3 / 23.5 / 23.0 → 22.7 / 22.6 / 22.4 ms a token. The key pass is where the loads wait
    /// on memory; the value pass then finds its rows in L2. Settable for the bench's A/B (`attn … apart,together`).
    /// </summary>
    internal static bool PrefetchValuesWithKeys = true;

    /// <summary>Prefetches row <paramref name="row"/> of <paramref name="h"/> and of <paramref name="companion"/> (a head with no rows: nothing).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PrefetchRows(in KvHead h, in KvHead companion, int row)
    {
        PrefetchRow(h, row);
        if (!companion.Rows.IsEmpty) PrefetchRow(companion, row);
    }

    /// <summary>Asks for the cache lines of row <paramref name="row"/> if the head holds it (not in a ring: sliding windows are short).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PrefetchRow(in KvHead h, int row)
    {
        int bytes = h.RowBytes;
        if (!Sse.IsSupported || h.Ring != 0 || PrefetchAhead == 0) return;
        long at = (long)row * h.RowStride + h.RowOffset;
        if (at + bytes > h.Rows.Length) return;
        fixed (byte* rows = h.Rows) PrefetchLines(rows + at, bytes);
    }

    /// <summary>Asks for every cache line [row, row + bytes) touches, into L2 (rows need not start on a line).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PrefetchLines(byte* row, int bytes)
    {
        for (byte* line = (byte*)((nuint)row & ~(nuint)63); line < row + bytes; line += 64) Sse.Prefetch1(line);
    }

    /// <summary>
    /// Positions [first, first + count) of a head as floats: a view of an F32 cache, otherwise decoded into buffer.
    /// With <paramref name="prefetch"/>, each row decoded prefetches the row <see cref="PrefetchAhead"/> positions on,
    /// and the same position's row of <paramref name="companion"/> (default: none).
    /// </summary>
    private static ReadOnlySpan<float> DecodeTile(in KvHead h, int first, int count, float[] buffer, int width, Scratch sc, out int stride,
        in KvHead companion, bool prefetch)
    {
        int bytes = h.RowBytes;
        int start = h.Row(first);
        if (h.Ring > 0 && start + count > h.Ring)
        {
            // The tile wraps around the ring: its rows decoded (F32 copied) in position order.
            stride = h.Width;
            for (int t = 0, r = start; t < count; t++, r = r + 1 == h.Ring ? 0 : r + 1)
                KvRowCodec.Decode(h.Type, h.Rows.Slice(r * h.RowStride + h.RowOffset, bytes), buffer.AsSpan(t * h.Width, h.Width), width);
            return buffer.AsSpan(0, count * h.Width);
        }
        if (h.Type == KvCacheType.F32 && h.RowStride % 4 == 0 && h.RowOffset % 4 == 0)
        {
            stride = h.RowStride / 4;
            var all = MemoryMarshal.Cast<byte, float>(h.Rows);
            return all.Slice(start * stride + h.RowOffset / 4, (count - 1) * stride + h.Width);
        }
        stride = h.Width;
        if (KvRowCodec.IsBlockFormat(h.Type) && width >= 256)
        {
            DecodeBlockTile(h, first, count, buffer, width, sc, companion, prefetch);
            return buffer.AsSpan(0, count * h.Width);
        }
        bool half = h.Type == KvCacheType.F16 && width >= 256;
        for (int t = 0; t < count; t++)
        {
            if (prefetch) PrefetchRows(h, companion, start + t + PrefetchAhead);
            var row = h.Rows.Slice((start + t) * h.RowStride + h.RowOffset, bytes);
            if (half) KvRowCodec.DecodeHalf(row, buffer.AsSpan(t * h.Width, h.Width), width);
            else KvRowCodec.Decode(h.Type, row, buffer.AsSpan(t * h.Width, h.Width), width);
        }
        return buffer.AsSpan(0, count * h.Width);
    }

}
