using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Models;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tensors;

// Single-token attention over an F16 cache at 512 or 256 bits (FlashAttention.FusedHalves256.cs), reading the halves
// where they lie. The tiled path decodes
// each tile of keys and values into a float buffer and the register-blocked loops read it back: at depth 4,096 on a
// Zen 4 that decode was 46 % of decode attention, and its stores and reloads cost more than the conversion. Here
// the query heads of a GQA group go through in blocks of up to eight, so each 16 halves loaded (8 at 256 bits) are
// widened once for all of a block's heads.
//
// The widening is three operations: a half's sign, exponent and mantissa put in a float's places
// (FloatConvert.HalfBitsInFloatPlace512) read as a float are the half's value times 2^-112, exactly, for every finite
// half (a subnormal half becomes a subnormal float, a zero a zero). The missing 2^112 goes into the other factor
// instead: the queries (rounded to F16, so at most 65504, and 65504·2^112 is a float) and the probabilities (at most
// 1) are scaled by it once per call and per tile. Each product is then the same real number as the tiled path's
// (power-of-two scalings are exact), each fused multiply-add rounds it the same, the per-key reduction is the same
// tree (Sum8; Sum4 at 256 bits), and the results are the same bits. Infinities and NaNs (a half's exponent 31) would come out finite,
// so every half loaded also feeds a running unsigned maximum of its bits doubled (the sign dropped); a tile whose keys
// hold one goes the tiled way, and value columns that hold one are finished the tiled way. A KvCache that has seen
// every value stored and none was infinite or NaN (KvCache.HalvesFinite, KvHead.Finite) lets the kernels skip that
// check (`attn 4096 F16 2 checked,trusted`, best per round: one thread 12.7–12.8 → 12.0–12.2 ms; the two-thread split,
// mean per round, 7.3 / 7.3 / 7.9 → 7.1 / 7.0 / 7.7).
//
// Zen 4, qwen2-1.5B's cache (28 layers, 2 KV heads of 128, 6 query heads each), alternating (`Sputnik.Bench attn
// 4096 F16 3 tiled,fused`, best per round): one thread 18.4–18.8 → 14.4–14.7 ms a token with the first six-row
// kernels; the two-thread decode split (`… split tiled,fused`), mean 10.9–12.0 → 8.8–9.6 ms. With the prefetch's
// addresses computed once a tile (`RowPrefetch`) and blocks of 4, 6 or 8 rows (`attn group=N 4096 F16 2 tiled,fused`,
// one thread, best): 6 heads a group 18.8 → 12.8 ms, 4 (qwen3-8B's) 16.5 → 9.9, 7 (qwen2-7B's) 19.5 → 16.6, 8 21.6 →
// 16.1; seven rows as a block of their own instead of eight with one padded (2026-12-07 evening): 7 heads 21.3–21.5
// (tiled) → 15.6–15.7. Prefetching fewer lines (keys only, a line a row, a line every 4 or 16 rows) was slower
// (14.6–18.0 against 12.1–12.6 ms).

internal static partial class FlashAttention
{
    /// <summary>The most query rows a fused block takes (blocks of 1–8: q·k in FlashAttention.FusedHalves.Kernels.cs and FusedHalves256.cs, p·v in FusedValues.cs).</summary>
    private const int FusedRows = 8;

    /// <summary>
    /// The next block's rows for <paramref name="remaining"/> rows: 8 for 8 or more, else all of them (blocks of 8
    /// until fewer than 8 remain). Groups of one to three heads (Phi-3's one, Gemma 3's two, Phi-4-mini's three) ran as
    /// blocks of four with padded rows before, and five (R1-Distill-Qwen-14B's) as six.
    /// </summary>
    private static int FusedBlock(int remaining) => Math.Min(remaining, FusedRows);

    /// <summary>
    /// Whether single-token attention over F16 keys and values reads the halves in place (settable for tests and the
    /// bench's A/B: `attn … tiled,fused`). Off on Intel: a subnormal half reaches the multiply-adds as a subnormal
    /// float, which a Xeon (family 6 model 207) served by a microcode assist per vector (RESULTS: the F16 weight kernel
    /// ran 3× slower with 0.3 % of its weights subnormal), and no Intel machine has measured this kernel. On the Zen 4
    /// here, caches with 0.1 %, 1 % and 12.5 % subnormal values ran at the speed of none (`attn tiny=F 1024 F16 1
    /// tiled,fused`: 3.09–3.26 against 3.16 ms a token), while the tiled path slowed from 4.6 to 5.2–5.6.
    /// </summary>
    internal static bool FusedHalves = !Prefetch.IsIntel;

    /// <summary>Whether a cache known to hold no infinity or NaN (<see cref="KvHead.Finite"/>) skips the kernels' check (settable for tests and the bench's A/B: `attn … checked,trusted`).</summary>
    internal static bool TrustFiniteCaches = true;

    /// <summary>A half's doubled bits at or above this: exponent 31 (infinity or NaN).</summary>
    private const ushort DoubledInfNan = 0xF800;

    /// <summary>Whether this call's tiles go the fused way: one token, F16 keys and values in plain rows (not a ring, not shared), 512- or 256-bit vectors.</summary>
    internal static bool FusesHalves(in KvHead keys, in KvHead values, int tokens, int width) =>
        FusedHalves && tokens == 1 && (width == 512 ? Avx512F.IsSupported : width == 256 && Fma.IsSupported) && Avx2.IsSupported &&
        keys.Type == KvCacheType.F16 && values.Type == KvCacheType.F16 && keys.Ring == 0 && values.Ring == 0 &&
        keys.Width % 16 == 0 && values.Width >= 16 && !values.SharesRowsWith(keys) &&
        (keys.RowStride | keys.RowOffset | values.RowStride | values.RowOffset) % 2 == 0;

    /// <summary>
    /// One tile of a single token's rows (all seeing positions first + RowFrom … + RowCount, set by the caller): scores,
    /// softmax update and values, as the tiled path does them. False, with nothing changed, when a key is infinite or
    /// NaN: the caller runs the tiled path for the tile.
    /// </summary>
    private static unsafe bool FusedHalfTile(in KvHead keys, in KvHead values, Scratch sc, int rows, int first, float scale, int width)
    {
        int a = sc.RowFrom[0], n = sc.RowCount[0], kw = keys.Width, vw = values.Width;
        ref ushort k = ref HalfRow(keys, first + a);
        int ks = keys.RowStride / 2, vs = values.RowStride / 2;
        fixed (byte* keyRows = keys.Rows, valueRows = values.Rows)
        {
            // The first block's pass prefetches the rows a tile ahead, keys' and values', as the tiled decode does.
            var prefetch = RowPrefetch.Ahead(keys, keyRows, values, valueRows, first + a, n);
            bool trusted = keys.Finite && TrustFiniteCaches;
            for (int r = 0, block; r < rows; r += block)
            {
                block = FusedBlock(rows - r);
                ref float qr = ref sc.ScaledQueries[r * kw];
                ref float sr = ref sc.Scores[r * Tile];
                var maxes = sc.TileMax.AsSpan(r, block);
                var fetch = r == 0 ? prefetch : default;
                bool finite = block switch
                {
                    8 => BlockScores<EightRows>(trusted, width, ref qr, kw, ref k, ks, n, scale, ref sr, sc.DotParts, maxes, fetch),
                    7 => BlockScores<SevenRows>(trusted, width, ref qr, kw, ref k, ks, n, scale, ref sr, sc.DotParts, maxes, fetch),
                    6 => BlockScores<SixRows>(trusted, width, ref qr, kw, ref k, ks, n, scale, ref sr, sc.DotParts, maxes, fetch),
                    5 => BlockScores<FiveRows>(trusted, width, ref qr, kw, ref k, ks, n, scale, ref sr, sc.DotParts, maxes, fetch),
                    4 => BlockScores<FourRows>(trusted, width, ref qr, kw, ref k, ks, n, scale, ref sr, sc.DotParts, maxes, fetch),
                    3 => BlockScores<ThreeRows>(trusted, width, ref qr, kw, ref k, ks, n, scale, ref sr, sc.DotParts, maxes, fetch),
                    2 => BlockScores<TwoRows>(trusted, width, ref qr, kw, ref k, ks, n, scale, ref sr, sc.DotParts, maxes, fetch),
                    _ => BlockScores<OneRow>(trusted, width, ref qr, kw, ref k, ks, n, scale, ref sr, sc.DotParts, maxes, fetch),
                };
                if (!finite) return false;
            }
        }
        for (int r = 0; r < rows; r++)
        {
            Softmax(sc, r, sc.TileMax[r], width);
            ScaleProbabilities(sc.Scores.AsSpan(r * Tile, Tile), sc.ScaledProbs.AsSpan(r * Tile, Tile));
        }
        bool decoded = false, trustedValues = values.Finite && TrustFiniteCaches;
        for (int r = 0, block; r < rows; r += block)
        {
            block = FusedBlock(rows - r);
            ref float outputs = ref sc.SegOut[r * vw];
            var alpha = sc.Alpha.AsSpan(r, block);
            ref float pr = ref sc.ScaledProbs[r * Tile];
            int done;
            fixed (byte* valueRows = values.Rows)
            {
                var v = (ushort*)(valueRows + (long)(first + a) * values.RowStride + values.RowOffset);
                done = block switch
                {
                    8 => BlockValues<EightRows>(trustedValues, width, ref outputs, vw, alpha, ref pr, n, v, vs),
                    7 => BlockValues<SevenRows>(trustedValues, width, ref outputs, vw, alpha, ref pr, n, v, vs),
                    6 => BlockValues<SixRows>(trustedValues, width, ref outputs, vw, alpha, ref pr, n, v, vs),
                    5 => BlockValues<FiveRows>(trustedValues, width, ref outputs, vw, alpha, ref pr, n, v, vs),
                    4 => BlockValues<FourRows>(trustedValues, width, ref outputs, vw, alpha, ref pr, n, v, vs),
                    3 => BlockValues<ThreeRows>(trustedValues, width, ref outputs, vw, alpha, ref pr, n, v, vs),
                    2 => BlockValues<TwoRows>(trustedValues, width, ref outputs, vw, alpha, ref pr, n, v, vs),
                    _ => BlockValues<OneRow>(trustedValues, width, ref outputs, vw, alpha, ref pr, n, v, vs),
                };
            }
            if (done == vw) continue;
            // Columns from `done` on hold an infinity or NaN (or are the last few of a width not a multiple of 16):
            // the tiled path's decode and loop for them, which give each column the same operations.
            // F16 rows decode to sc.Values, vw apart.
            if (!decoded) DecodeTile(values, first + a, n, sc.Values, width, sc, out _, default, prefetch: false);
            decoded = true;
            for (int j = r; j < Math.Min(rows, r + block); j++)
                Accumulate(ref sc.SegOut[j * vw + done], sc.Alpha[j], sc.Scores.AsSpan(j * Tile, n), ref sc.Values[done], vw, vw - done, width);
        }
        return true;
    }

    /// <summary>A block's q·k (<see cref="FusedScores{TRows, TCheck}"/>) at the call's width, checking the halves unless <paramref name="trusted"/>.</summary>
    private static bool BlockScores<TRows>(bool trusted, int width, ref float q, int kw, ref ushort k, int ks, int n, float scale, ref float s,
        float[] parts, Span<float> rowMax, RowPrefetch prefetch) where TRows : struct, IFusedRows => (trusted, width) switch
    {
        (true, 512) => FusedScores<TRows, TrustHalves>(ref q, kw, ref k, ks, n, scale, ref s, parts, rowMax, prefetch),
        (false, 512) => FusedScores<TRows, CheckHalves>(ref q, kw, ref k, ks, n, scale, ref s, parts, rowMax, prefetch),
        (true, _) => FusedScores256<TRows, TrustHalves>(ref q, kw, ref k, ks, n, scale, ref s, parts, rowMax, prefetch),
        (false, _) => FusedScores256<TRows, CheckHalves>(ref q, kw, ref k, ks, n, scale, ref s, parts, rowMax, prefetch),
    };

    /// <summary>A block's p·v (<see cref="FusedAccumulate{TRows, TCheck}"/>) at the call's width, checking the halves unless <paramref name="trusted"/>.</summary>
    private static unsafe int BlockValues<TRows>(bool trusted, int width, ref float o, int vw, ReadOnlySpan<float> alpha, ref float p, int n, ushort* v, int vs)
        where TRows : struct, IFusedRows => (trusted, width) switch
    {
        (true, 512) => FusedAccumulate<TRows, TrustHalves>(ref o, vw, alpha, ref p, n, v, vs),
        (false, 512) => FusedAccumulate<TRows, CheckHalves>(ref o, vw, alpha, ref p, n, v, vs),
        (true, _) => FusedAccumulate256<TRows, TrustHalves>(ref o, vw, alpha, ref p, n, v, vs),
        (false, _) => FusedAccumulate256<TRows, CheckHalves>(ref o, vw, alpha, ref p, n, v, vs),
    };

    /// <summary>The halves of the row holding position <paramref name="pos"/>.</summary>
    private static ref ushort HalfRow(in KvHead h, int pos) =>
        ref Unsafe.As<byte, ushort>(ref Unsafe.Add(ref MemoryMarshal.GetReference(h.Rows), (nint)pos * h.RowStride + h.RowOffset));

    /// <summary>p·2^112 for the tile's probabilities (whole vectors: the lanes past a row's count are 0 or stale and never read).</summary>
    private static void ScaleProbabilities(ReadOnlySpan<float> p, Span<float> scaled)
    {
        var m = Vector256.Create(FloatConvert.HalfBitsScale);
        for (int t = 0; t < Tile; t += 8) (Vector256.LoadUnsafe(ref MemoryMarshal.GetReference(p), (nuint)t) * m).StoreUnsafe(ref MemoryMarshal.GetReference(scaled), (nuint)t);
    }

    /// <summary>Row i of q·2^112 for each F16-rounded query row (the fused kernels' other factor).</summary>
    private static void ScaleQueries(Scratch sc, int rows, int kw)
    {
        var m = Vector256.Create(FloatConvert.HalfBitsScale);
        ref float src = ref MemoryMarshal.GetArrayDataReference(sc.HalfQueries);
        ref float dst = ref MemoryMarshal.GetArrayDataReference(sc.ScaledQueries);
        for (int i = 0; i < rows * kw; i += 8) (Vector256.LoadUnsafe(ref src, (nuint)i) * m).StoreUnsafe(ref dst, (nuint)i);
    }

    /// <summary>Sixteen halves in float place (value·2^-112), and (when checking) their doubled bits into the running maximum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen<TCheck>(ref ushort h, nuint at, ref Vector256<ushort> check) where TCheck : struct, IHalfCheck
    {
        var x = Vector256.LoadUnsafe(ref h, at);
        if (TCheck.On) check = Avx2.Max(check, Avx2.Add(x, x));
        return FloatConvert.HalfBitsInFloatPlace512(x.AsInt16()).AsSingle();
    }

    /// <summary>
    /// The rows a tile ahead that a pass over a tile asks for as it reads each of its rows, one of keys and one of values
    /// a row: row i (i &lt; <see cref="Rows"/>, those the cache holds) starts i·stride bytes on. The pointers are into
    /// rows pinned for the tile. default: none.
    /// </summary>
    private readonly unsafe struct RowPrefetch(byte* keys, int keyStride, int keyBytes, byte* values, int valueStride, int valueBytes, int rows)
    {
        public readonly int Rows = rows;

        /// <summary>
        /// <see cref="PrefetchAhead"/> rows on from <paramref name="from"/>, for a pass over <paramref name="count"/> rows of
        /// <paramref name="keys"/> (pinned at <paramref name="keyRows"/>) and of <paramref name="values"/> (a head with
        /// no rows: the keys' alone). None when prefetching is off or a head is a ring (sliding windows are short).
        /// </summary>
        public static RowPrefetch Ahead(in KvHead keys, byte* keyRows, in KvHead values, byte* valueRows, int from, int count)
        {
            if (PrefetchAhead == 0 || !Sse.IsSupported || keys.Ring != 0 || values.Ring != 0) return default;
            int ahead = from + PrefetchAhead, held = values.Rows.IsEmpty ? keys.Positions : Math.Min(keys.Positions, values.Positions);
            return values.Rows.IsEmpty
                ? new RowPrefetch(keyRows + (long)ahead * keys.RowStride + keys.RowOffset, keys.RowStride, keys.RowBytes, null, 0, 0, Math.Clamp(held - ahead, 0, count))
                : new RowPrefetch(keyRows + (long)ahead * keys.RowStride + keys.RowOffset, keys.RowStride, keys.RowBytes,
                    valueRows + (long)ahead * values.RowStride + values.RowOffset, values.RowStride, values.RowBytes, Math.Clamp(held - ahead, 0, count));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Fetch(int i)
        {
            PrefetchLines(keys + (long)i * keyStride, keyBytes);
            if (valueBytes > 0) PrefetchLines(values + (long)i * valueStride, valueBytes);
        }
    }
}
