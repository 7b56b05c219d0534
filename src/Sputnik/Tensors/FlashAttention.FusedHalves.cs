using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using Sputnik.Models;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tensors;

// Single-token attention over an F16 cache at 512 bits, reading the halves where they lie. The tiled path decodes
// each tile of keys and values into a float buffer and the register-blocked loops read it back: at depth 4,096 on a
// Zen 4 that decode was 46 % of decode attention, and its stores and reloads cost more than the conversion. Here
// the query heads of a GQA group go six at a time (padded), so each 16 halves loaded are widened once for six rows.
//
// The widening is three operations: a half's sign, exponent and mantissa put in a float's places
// (FloatConvert.HalfBitsInFloatPlace512) read as a float are the half's value times 2^-112, exactly, for every finite
// half (a subnormal half becomes a subnormal float, a zero a zero). The missing 2^112 goes into the other factor
// instead: the queries (rounded to F16, so at most 65504, and 65504·2^112 is a float) and the probabilities (at most
// 1) are scaled by it once per call and per tile. Each product is then the same real number as the tiled path's
// (power-of-two scalings are exact), each fused multiply-add rounds it the same, the per-key reduction is the same
// tree (Sum8), and the results are the same bits. Infinities and NaNs (a half's exponent 31) would come out finite,
// so every half loaded also feeds a running unsigned maximum of its bits doubled (the sign dropped); a tile whose keys
// hold one goes the tiled way, and value columns that hold one are finished the tiled way.
//
// Zen 4, qwen2-1.5B's cache (28 layers, 2 KV heads of 128, 6 query heads each), alternating (`Sputnik.Bench attn
// 4096 F16 3 tiled,fused`, best per round): one thread 18.4–18.8 → 14.4–14.7 ms a token; the two-thread decode split
// (`… split tiled,fused`), mean 10.9–12.0 → 8.8–9.6 ms. The infinity check is about a tenth of the fused time (12.2
// against 13.6–14.0 ms without it, one thread); a cache that knew it held no infinity could skip it.
internal static partial class FlashAttention
{
    /// <summary>Query rows the fused kernels take at once (a group's rows padded to a multiple of it).</summary>
    private const int FusedRows = 6;

    /// <summary>Whether single-token attention over F16 keys and values reads the halves in place (settable for tests and the bench's A/B: `attn … tiled,fused`).</summary>
    internal static bool FusedHalves = true;

    /// <summary>A half's doubled bits at or above this: exponent 31 (infinity or NaN).</summary>
    private const ushort DoubledInfNan = 0xF800;

    /// <summary>Whether this call's tiles go the fused way: one token, F16 keys and values in plain rows (not a ring, not shared), 512-bit vectors.</summary>
    private static bool FusesHalves(in KvHead keys, in KvHead values, int tokens, int width) =>
        FusedHalves && width == 512 && tokens == 1 && Avx512F.IsSupported && Avx2.IsSupported &&
        keys.Type == KvCacheType.F16 && values.Type == KvCacheType.F16 && keys.Ring == 0 && values.Ring == 0 &&
        keys.Width % 16 == 0 && values.Width >= 16 && !values.SharesRowsWith(keys) &&
        (keys.RowStride | keys.RowOffset | values.RowStride | values.RowOffset) % 2 == 0;

    /// <summary>Rows padded to whole blocks of <see cref="FusedRows"/>.</summary>
    private static int FusedRowsPadded(int rows) => (rows + FusedRows - 1) / FusedRows * FusedRows;

    /// <summary>
    /// One tile of a single token's rows (all seeing positions first + RowFrom … + RowCount, set by the caller): scores,
    /// softmax update and values, as the tiled path does them. False, with nothing changed, when a key is infinite or
    /// NaN: the caller runs the tiled path for the tile.
    /// </summary>
    private static bool FusedHalfTile(in KvHead keys, in KvHead values, Scratch sc, int rows, int first, float scale)
    {
        int a = sc.RowFrom[0], n = sc.RowCount[0], kw = keys.Width, vw = values.Width, padded = FusedRowsPadded(rows);
        ref ushort k = ref HalfRow(keys, first + a);
        ref ushort v = ref HalfRow(values, first + a);
        int ks = keys.RowStride / 2, vs = values.RowStride / 2;
        for (int r = 0; r < padded; r += FusedRows)
            // The first block's pass prefetches the rows a tile ahead, keys' and values', as the tiled decode does.
            if (!FusedScores(ref sc.ScaledQueries[r * kw], kw, ref k, ks, n, scale, ref sc.Scores[r * Tile], sc.DotParts, sc.TileMax.AsSpan(r, FusedRows),
                    keys, values, r == 0 ? first + a + PrefetchAhead : -1))
                return false;
        for (int r = 0; r < rows; r++)
        {
            Softmax(sc, r, sc.TileMax[r], 512);
            ScaleProbabilities(sc.Scores.AsSpan(r * Tile, Tile), sc.ScaledProbs.AsSpan(r * Tile, Tile));
        }
        bool decoded = false;
        for (int r = 0; r < padded; r += FusedRows)
        {
            int done = FusedAccumulate(ref sc.SegOut[r * vw], vw, sc.Alpha.AsSpan(r, FusedRows), ref sc.ScaledProbs[r * Tile], n, ref v, vs);
            if (done == vw) continue;
            // Columns from `done` on hold an infinity or NaN (or are the last few of a width not a multiple of 16):
            // the tiled path's decode and loop for them, which give each column the same operations.
            // F16 rows decode to sc.Values, vw apart.
            if (!decoded) DecodeTile(values, first + a, n, sc.Values, 512, sc, out _, default, prefetch: false);
            decoded = true;
            for (int j = r; j < Math.Min(rows, r + FusedRows); j++)
                Accumulate(ref sc.SegOut[j * vw + done], sc.Alpha[j], sc.Scores.AsSpan(j * Tile, n), ref sc.Values[done], vw, vw - done, 512);
        }
        return true;
    }

    /// <summary>The halves of the row holding position <paramref name="pos"/>.</summary>
    private static ref ushort HalfRow(in KvHead h, int pos) =>
        ref Unsafe.As<byte, ushort>(ref Unsafe.Add(ref MemoryMarshal.GetReference(h.Rows), (nint)pos * h.RowStride + h.RowOffset));

    /// <summary>p·2^112 for the tile's probabilities (whole vectors: the lanes past a row's count are 0 or stale and never read).</summary>
    private static void ScaleProbabilities(ReadOnlySpan<float> p, Span<float> scaled)
    {
        var m = Vector512.Create(FloatConvert.HalfBitsScale);
        for (int t = 0; t < Tile; t += 16) (Vector512.LoadUnsafe(ref MemoryMarshal.GetReference(p), (nuint)t) * m).StoreUnsafe(ref MemoryMarshal.GetReference(scaled), (nuint)t);
    }

    /// <summary>Row i of q·2^112 for each F16-rounded query row (the fused kernels' other factor), pad rows zero.</summary>
    private static void ScaleQueries(Scratch sc, int rows, int kw)
    {
        var m = Vector512.Create(FloatConvert.HalfBitsScale);
        ref float src = ref MemoryMarshal.GetArrayDataReference(sc.HalfQueries);
        ref float dst = ref MemoryMarshal.GetArrayDataReference(sc.ScaledQueries);
        for (int i = 0; i < rows * kw; i += 16) (Vector512.LoadUnsafe(ref src, (nuint)i) * m).StoreUnsafe(ref dst, (nuint)i);
        sc.ScaledQueries.AsSpan(rows * kw, (FusedRowsPadded(rows) - rows) * kw).Clear();
    }

    /// <summary>Sixteen halves in float place (value·2^-112), and their doubled bits into the running maximum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Widen(ref ushort h, nuint at, ref Vector256<ushort> check)
    {
        var x = Vector256.LoadUnsafe(ref h, at);
        check = Avx2.Max(check, Avx2.Add(x, x));
        return FloatConvert.HalfBitsInFloatPlace512(x.AsInt16()).AsSingle();
    }

    /// <summary>
    /// Six query rows (scaled, kw apart from <paramref name="q"/>) against n keys of halves (ks apart): scores
    /// s_r[t] = (q_r·k_t)·scale at s + r·Tile, each row's largest into <paramref name="rowMax"/>. Keys go four at a time
    /// (24 accumulators), and every eight keys' accumulators are summed by Sum8, the tiled path's reduction. False when
    /// a key holds an infinity or NaN (scores then partial and unused). From <paramref name="prefetchFrom"/> (−1: none)
    /// on, a row of keys and one of values are prefetched per key.
    /// </summary>
    private static bool FusedScores(ref float q, int kw, ref ushort k, int ks, int n, float scale, ref float s, float[] parts, Span<float> rowMax,
        in KvHead keys, in KvHead values, int prefetchFrom)
    {
        var check = Vector256<ushort>.Zero;
        ref float pp = ref MemoryMarshal.GetArrayDataReference(parts);
        for (int r = 0; r < FusedRows; r++) rowMax[r] = float.NegativeInfinity;
        for (int t0 = 0; t0 < n; t0 += 8)
        {
            int keysHere = Math.Min(8, n - t0);
            for (int t = t0; t < t0 + keysHere; t += 4)
            {
                if (prefetchFrom >= 0)
                    for (int i = t; i < Math.Min(t + 4, t0 + keysHere); i++) PrefetchRows(keys, values, prefetchFrom + i);
                ref ushort k0 = ref Unsafe.Add(ref k, t * ks);
                // Past the last key a key repeats the first of the four; its copies' sums are not used.
                ref ushort k1 = ref t + 1 < n ? ref Unsafe.Add(ref k0, ks) : ref k0;
                ref ushort k2 = ref t + 2 < n ? ref Unsafe.Add(ref k0, 2 * ks) : ref k0;
                ref ushort k3 = ref t + 3 < n ? ref Unsafe.Add(ref k0, 3 * ks) : ref k0;
                Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a10 = default, a11 = default, a12 = default, a13 = default;
                Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a30 = default, a31 = default, a32 = default, a33 = default;
                Vector512<float> a40 = default, a41 = default, a42 = default, a43 = default, a50 = default, a51 = default, a52 = default, a53 = default;
                for (int c = 0; c < kw; c += 16)
                {
                    var x0 = Widen(ref k0, (nuint)c, ref check);
                    var x1 = Widen(ref k1, (nuint)c, ref check);
                    var x2 = Widen(ref k2, (nuint)c, ref check);
                    var x3 = Widen(ref k3, (nuint)c, ref check);
                    var y = Vector512.LoadUnsafe(ref q, (nuint)c);
                    a00 = Vector512.FusedMultiplyAdd(y, x0, a00); a01 = Vector512.FusedMultiplyAdd(y, x1, a01);
                    a02 = Vector512.FusedMultiplyAdd(y, x2, a02); a03 = Vector512.FusedMultiplyAdd(y, x3, a03);
                    y = Vector512.LoadUnsafe(ref q, (nuint)(kw + c));
                    a10 = Vector512.FusedMultiplyAdd(y, x0, a10); a11 = Vector512.FusedMultiplyAdd(y, x1, a11);
                    a12 = Vector512.FusedMultiplyAdd(y, x2, a12); a13 = Vector512.FusedMultiplyAdd(y, x3, a13);
                    y = Vector512.LoadUnsafe(ref q, (nuint)(2 * kw + c));
                    a20 = Vector512.FusedMultiplyAdd(y, x0, a20); a21 = Vector512.FusedMultiplyAdd(y, x1, a21);
                    a22 = Vector512.FusedMultiplyAdd(y, x2, a22); a23 = Vector512.FusedMultiplyAdd(y, x3, a23);
                    y = Vector512.LoadUnsafe(ref q, (nuint)(3 * kw + c));
                    a30 = Vector512.FusedMultiplyAdd(y, x0, a30); a31 = Vector512.FusedMultiplyAdd(y, x1, a31);
                    a32 = Vector512.FusedMultiplyAdd(y, x2, a32); a33 = Vector512.FusedMultiplyAdd(y, x3, a33);
                    y = Vector512.LoadUnsafe(ref q, (nuint)(4 * kw + c));
                    a40 = Vector512.FusedMultiplyAdd(y, x0, a40); a41 = Vector512.FusedMultiplyAdd(y, x1, a41);
                    a42 = Vector512.FusedMultiplyAdd(y, x2, a42); a43 = Vector512.FusedMultiplyAdd(y, x3, a43);
                    y = Vector512.LoadUnsafe(ref q, (nuint)(5 * kw + c));
                    a50 = Vector512.FusedMultiplyAdd(y, x0, a50); a51 = Vector512.FusedMultiplyAdd(y, x1, a51);
                    a52 = Vector512.FusedMultiplyAdd(y, x2, a52); a53 = Vector512.FusedMultiplyAdd(y, x3, a53);
                }
                // parts: row r's accumulator of key t0 + i at (r·8 + i)·16.
                ref float pk = ref Unsafe.Add(ref pp, (t - t0) * 16);
                a00.StoreUnsafe(ref pk); a01.StoreUnsafe(ref pk, 16); a02.StoreUnsafe(ref pk, 32); a03.StoreUnsafe(ref pk, 48);
                a10.StoreUnsafe(ref pk, 128); a11.StoreUnsafe(ref pk, 144); a12.StoreUnsafe(ref pk, 160); a13.StoreUnsafe(ref pk, 176);
                a20.StoreUnsafe(ref pk, 256); a21.StoreUnsafe(ref pk, 272); a22.StoreUnsafe(ref pk, 288); a23.StoreUnsafe(ref pk, 304);
                a30.StoreUnsafe(ref pk, 384); a31.StoreUnsafe(ref pk, 400); a32.StoreUnsafe(ref pk, 416); a33.StoreUnsafe(ref pk, 432);
                a40.StoreUnsafe(ref pk, 512); a41.StoreUnsafe(ref pk, 528); a42.StoreUnsafe(ref pk, 544); a43.StoreUnsafe(ref pk, 560);
                a50.StoreUnsafe(ref pk, 640); a51.StoreUnsafe(ref pk, 656); a52.StoreUnsafe(ref pk, 672); a53.StoreUnsafe(ref pk, 688);
            }
            for (int r = 0; r < FusedRows; r++)
            {
                ref float pr = ref Unsafe.Add(ref pp, r * 128);
                ref float sr = ref Unsafe.Add(ref s, r * Tile + t0);
                if (keysHere == 8)
                {
                    var x = Sum8(Vector512.LoadUnsafe(ref pr), Vector512.LoadUnsafe(ref pr, 16), Vector512.LoadUnsafe(ref pr, 32), Vector512.LoadUnsafe(ref pr, 48),
                        Vector512.LoadUnsafe(ref pr, 64), Vector512.LoadUnsafe(ref pr, 80), Vector512.LoadUnsafe(ref pr, 96), Vector512.LoadUnsafe(ref pr, 112)) * scale;
                    x.StoreUnsafe(ref sr);
                    rowMax[r] = Math.Max(rowMax[r], MaxLane(x));
                    continue;
                }
                for (int i = 0; i < keysHere; i++)
                {
                    float x = Sum1(Vector512.LoadUnsafe(ref pr, (nuint)i * 16)) * scale;
                    Unsafe.Add(ref sr, i) = x;
                    rowMax[r] = Math.Max(rowMax[r], x);
                }
            }
        }
        return !Vector256.GreaterThanOrEqualAny(check, Vector256.Create(DoubledInfNan));
    }

    /// <summary>
    /// Six rows' outputs (vw floats, vw apart from <paramref name="o"/>) o_r = o_r·alpha_r + Σ_t p_r[t]·v_t over n value
    /// rows of halves (vs apart), p the scaled probabilities (Tile apart): 64 columns at a time, then 32, then 16. Returns the
    /// columns done: vw, or the first block whose values hold an infinity or NaN (left as it was), or the start of the
    /// last vw mod 16.
    /// </summary>
    private static int FusedAccumulate(ref float o, int vw, ReadOnlySpan<float> alpha, ref float p, int n, ref ushort v, int vs)
    {
        int c = 0;
        for (; c + 64 <= vw; c += 64)
        {
            var check = Vector256<ushort>.Zero;
            ref float o0 = ref Unsafe.Add(ref o, c);
            ref float o1 = ref Unsafe.Add(ref o0, vw);
            ref float o2 = ref Unsafe.Add(ref o1, vw);
            ref float o3 = ref Unsafe.Add(ref o2, vw);
            ref float o4 = ref Unsafe.Add(ref o3, vw);
            ref float o5 = ref Unsafe.Add(ref o4, vw);
            Vector512<float> a00 = Vector512.LoadUnsafe(ref o0) * alpha[0], a01 = Vector512.LoadUnsafe(ref o0, 16) * alpha[0];
            Vector512<float> a02 = Vector512.LoadUnsafe(ref o0, 32) * alpha[0], a03 = Vector512.LoadUnsafe(ref o0, 48) * alpha[0];
            Vector512<float> a10 = Vector512.LoadUnsafe(ref o1) * alpha[1], a11 = Vector512.LoadUnsafe(ref o1, 16) * alpha[1];
            Vector512<float> a12 = Vector512.LoadUnsafe(ref o1, 32) * alpha[1], a13 = Vector512.LoadUnsafe(ref o1, 48) * alpha[1];
            Vector512<float> a20 = Vector512.LoadUnsafe(ref o2) * alpha[2], a21 = Vector512.LoadUnsafe(ref o2, 16) * alpha[2];
            Vector512<float> a22 = Vector512.LoadUnsafe(ref o2, 32) * alpha[2], a23 = Vector512.LoadUnsafe(ref o2, 48) * alpha[2];
            Vector512<float> a30 = Vector512.LoadUnsafe(ref o3) * alpha[3], a31 = Vector512.LoadUnsafe(ref o3, 16) * alpha[3];
            Vector512<float> a32 = Vector512.LoadUnsafe(ref o3, 32) * alpha[3], a33 = Vector512.LoadUnsafe(ref o3, 48) * alpha[3];
            Vector512<float> a40 = Vector512.LoadUnsafe(ref o4) * alpha[4], a41 = Vector512.LoadUnsafe(ref o4, 16) * alpha[4];
            Vector512<float> a42 = Vector512.LoadUnsafe(ref o4, 32) * alpha[4], a43 = Vector512.LoadUnsafe(ref o4, 48) * alpha[4];
            Vector512<float> a50 = Vector512.LoadUnsafe(ref o5) * alpha[5], a51 = Vector512.LoadUnsafe(ref o5, 16) * alpha[5];
            Vector512<float> a52 = Vector512.LoadUnsafe(ref o5, 32) * alpha[5], a53 = Vector512.LoadUnsafe(ref o5, 48) * alpha[5];
            for (int t = 0; t < n; t++)
            {
                ref ushort vt = ref Unsafe.Add(ref v, t * vs + c);
                var y0 = Widen(ref vt, 0, ref check);
                var y1 = Widen(ref vt, 16, ref check);
                var y2 = Widen(ref vt, 32, ref check);
                var y3 = Widen(ref vt, 48, ref check);
                ref float pt = ref Unsafe.Add(ref p, t);
                var b = Vector512.Create(pt);
                a00 = Vector512.FusedMultiplyAdd(y0, b, a00); a01 = Vector512.FusedMultiplyAdd(y1, b, a01);
                a02 = Vector512.FusedMultiplyAdd(y2, b, a02); a03 = Vector512.FusedMultiplyAdd(y3, b, a03);
                b = Vector512.Create(Unsafe.Add(ref pt, Tile));
                a10 = Vector512.FusedMultiplyAdd(y0, b, a10); a11 = Vector512.FusedMultiplyAdd(y1, b, a11);
                a12 = Vector512.FusedMultiplyAdd(y2, b, a12); a13 = Vector512.FusedMultiplyAdd(y3, b, a13);
                b = Vector512.Create(Unsafe.Add(ref pt, 2 * Tile));
                a20 = Vector512.FusedMultiplyAdd(y0, b, a20); a21 = Vector512.FusedMultiplyAdd(y1, b, a21);
                a22 = Vector512.FusedMultiplyAdd(y2, b, a22); a23 = Vector512.FusedMultiplyAdd(y3, b, a23);
                b = Vector512.Create(Unsafe.Add(ref pt, 3 * Tile));
                a30 = Vector512.FusedMultiplyAdd(y0, b, a30); a31 = Vector512.FusedMultiplyAdd(y1, b, a31);
                a32 = Vector512.FusedMultiplyAdd(y2, b, a32); a33 = Vector512.FusedMultiplyAdd(y3, b, a33);
                b = Vector512.Create(Unsafe.Add(ref pt, 4 * Tile));
                a40 = Vector512.FusedMultiplyAdd(y0, b, a40); a41 = Vector512.FusedMultiplyAdd(y1, b, a41);
                a42 = Vector512.FusedMultiplyAdd(y2, b, a42); a43 = Vector512.FusedMultiplyAdd(y3, b, a43);
                b = Vector512.Create(Unsafe.Add(ref pt, 5 * Tile));
                a50 = Vector512.FusedMultiplyAdd(y0, b, a50); a51 = Vector512.FusedMultiplyAdd(y1, b, a51);
                a52 = Vector512.FusedMultiplyAdd(y2, b, a52); a53 = Vector512.FusedMultiplyAdd(y3, b, a53);
            }
            if (Vector256.GreaterThanOrEqualAny(check, Vector256.Create(DoubledInfNan))) return c;
            a00.StoreUnsafe(ref o0); a01.StoreUnsafe(ref o0, 16); a02.StoreUnsafe(ref o0, 32); a03.StoreUnsafe(ref o0, 48);
            a10.StoreUnsafe(ref o1); a11.StoreUnsafe(ref o1, 16); a12.StoreUnsafe(ref o1, 32); a13.StoreUnsafe(ref o1, 48);
            a20.StoreUnsafe(ref o2); a21.StoreUnsafe(ref o2, 16); a22.StoreUnsafe(ref o2, 32); a23.StoreUnsafe(ref o2, 48);
            a30.StoreUnsafe(ref o3); a31.StoreUnsafe(ref o3, 16); a32.StoreUnsafe(ref o3, 32); a33.StoreUnsafe(ref o3, 48);
            a40.StoreUnsafe(ref o4); a41.StoreUnsafe(ref o4, 16); a42.StoreUnsafe(ref o4, 32); a43.StoreUnsafe(ref o4, 48);
            a50.StoreUnsafe(ref o5); a51.StoreUnsafe(ref o5, 16); a52.StoreUnsafe(ref o5, 32); a53.StoreUnsafe(ref o5, 48);
        }
        for (; c + 16 <= vw; c += c + 32 <= vw ? 32 : 16)
        {
            bool two = c + 32 <= vw;
            var check = Vector256<ushort>.Zero;
            ref float o0 = ref Unsafe.Add(ref o, c);
            Vector512<float> a00 = Vector512.LoadUnsafe(ref o0) * alpha[0], a10 = Vector512.LoadUnsafe(ref o0, (nuint)vw) * alpha[1];
            Vector512<float> a20 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw)) * alpha[2], a30 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw)) * alpha[3];
            Vector512<float> a40 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw)) * alpha[4], a50 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw)) * alpha[5];
            Vector512<float> a01 = default, a11 = default, a21 = default, a31 = default, a41 = default, a51 = default;
            if (two)
            {
                a01 = Vector512.LoadUnsafe(ref o0, 16) * alpha[0]; a11 = Vector512.LoadUnsafe(ref o0, (nuint)(vw + 16)) * alpha[1];
                a21 = Vector512.LoadUnsafe(ref o0, (nuint)(2 * vw + 16)) * alpha[2]; a31 = Vector512.LoadUnsafe(ref o0, (nuint)(3 * vw + 16)) * alpha[3];
                a41 = Vector512.LoadUnsafe(ref o0, (nuint)(4 * vw + 16)) * alpha[4]; a51 = Vector512.LoadUnsafe(ref o0, (nuint)(5 * vw + 16)) * alpha[5];
                for (int t = 0; t < n; t++)
                {
                    ref ushort vt = ref Unsafe.Add(ref v, t * vs + c);
                    var y0 = Widen(ref vt, 0, ref check);
                    var y1 = Widen(ref vt, 16, ref check);
                    ref float pt = ref Unsafe.Add(ref p, t);
                    var b = Vector512.Create(pt);
                    a00 = Vector512.FusedMultiplyAdd(y0, b, a00); a01 = Vector512.FusedMultiplyAdd(y1, b, a01);
                    b = Vector512.Create(Unsafe.Add(ref pt, Tile));
                    a10 = Vector512.FusedMultiplyAdd(y0, b, a10); a11 = Vector512.FusedMultiplyAdd(y1, b, a11);
                    b = Vector512.Create(Unsafe.Add(ref pt, 2 * Tile));
                    a20 = Vector512.FusedMultiplyAdd(y0, b, a20); a21 = Vector512.FusedMultiplyAdd(y1, b, a21);
                    b = Vector512.Create(Unsafe.Add(ref pt, 3 * Tile));
                    a30 = Vector512.FusedMultiplyAdd(y0, b, a30); a31 = Vector512.FusedMultiplyAdd(y1, b, a31);
                    b = Vector512.Create(Unsafe.Add(ref pt, 4 * Tile));
                    a40 = Vector512.FusedMultiplyAdd(y0, b, a40); a41 = Vector512.FusedMultiplyAdd(y1, b, a41);
                    b = Vector512.Create(Unsafe.Add(ref pt, 5 * Tile));
                    a50 = Vector512.FusedMultiplyAdd(y0, b, a50); a51 = Vector512.FusedMultiplyAdd(y1, b, a51);
                }
            }
            else
            {
                for (int t = 0; t < n; t++)
                {
                    var y0 = Widen(ref Unsafe.Add(ref v, t * vs + c), 0, ref check);
                    ref float pt = ref Unsafe.Add(ref p, t);
                    a00 = Vector512.FusedMultiplyAdd(y0, Vector512.Create(pt), a00);
                    a10 = Vector512.FusedMultiplyAdd(y0, Vector512.Create(Unsafe.Add(ref pt, Tile)), a10);
                    a20 = Vector512.FusedMultiplyAdd(y0, Vector512.Create(Unsafe.Add(ref pt, 2 * Tile)), a20);
                    a30 = Vector512.FusedMultiplyAdd(y0, Vector512.Create(Unsafe.Add(ref pt, 3 * Tile)), a30);
                    a40 = Vector512.FusedMultiplyAdd(y0, Vector512.Create(Unsafe.Add(ref pt, 4 * Tile)), a40);
                    a50 = Vector512.FusedMultiplyAdd(y0, Vector512.Create(Unsafe.Add(ref pt, 5 * Tile)), a50);
                }
            }
            if (Vector256.GreaterThanOrEqualAny(check, Vector256.Create(DoubledInfNan))) return c;
            a00.StoreUnsafe(ref o0); a10.StoreUnsafe(ref o0, (nuint)vw); a20.StoreUnsafe(ref o0, (nuint)(2 * vw));
            a30.StoreUnsafe(ref o0, (nuint)(3 * vw)); a40.StoreUnsafe(ref o0, (nuint)(4 * vw)); a50.StoreUnsafe(ref o0, (nuint)(5 * vw));
            if (!two) continue;
            a01.StoreUnsafe(ref o0, 16); a11.StoreUnsafe(ref o0, (nuint)(vw + 16)); a21.StoreUnsafe(ref o0, (nuint)(2 * vw + 16));
            a31.StoreUnsafe(ref o0, (nuint)(3 * vw + 16)); a41.StoreUnsafe(ref o0, (nuint)(4 * vw + 16)); a51.StoreUnsafe(ref o0, (nuint)(5 * vw + 16));
        }
        return c;
    }
}
