using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using Sputnik.Tensors.Quants;

namespace Sputnik.Tensors;

// The fused F16 kernels (FlashAttention.FusedHalves.cs) at 256 bits, for AVX2 CPUs (AMD Zen 2 and 3) and for width
// 256 anywhere: the same blocks of 1–8 query rows, each 8 halves loaded widened once for all of a block's
// rows (FloatConvert.HalfBitsInFloatPlace256, value·2^-112, the 2^112 in the queries and probabilities). Sixteen
// registers shape them: q·k takes two keys at a time for up to six rows (12 accumulators), one for seven or eight;
// p·v two 8-column vectors at a time for up to six rows, one for seven or eight. A key's score is the tiled path's at
// 256 bits (Scores3x256, Scores, Dot): one accumulator over the columns, then Vector256.Sum's tree, which Sum4 gives
// four keys at a time; an output element sees o·alpha and then one multiply-add per position, in order. So the bits
// are the tiled path's.
//
// Zen 4 with AVX-512 off (`DOTNET_EnableAVX512=0 Sputnik.Bench attn group=N 4096 F16 2 tiled,fused`, one thread, best
// per round, qwen2-1.5B's cache): 6 heads a group 22.8–23.4 → 14.4–14.6 ms a token, 4 heads 20.4–20.9 → 11.8–12.1,
// 7 heads 24.8–25.0 → 20.0–20.3, 8 heads 27.3–27.5 → 21.7–21.8. Per-row references for the queries (no r·kw + c per
// load) took 6 heads from 15.2–15.6 to 14.4–14.6.
internal static partial class FlashAttention
{
    /// <summary>
    /// <see cref="FusedScores{TRows, TCheck}"/> at 256 bits: every four keys' accumulators are summed by Sum4 (parts:
    /// row r's accumulator of key i of the four at (r·4 + i)·8), a last one, two or three by Vector256.Sum.
    /// </summary>
    private static bool FusedScores256<TRows, TCheck>(ref float q, int kw, ref ushort k, int ks, int n, float scale, ref float s, float[] parts,
        Span<float> rowMax, RowPrefetch prefetch) where TRows : struct, IFusedRows where TCheck : struct, IHalfCheck
    {
        int R = TRows.Rows, K = R > 6 ? 1 : 2;
        var check = Vector128<ushort>.Zero;
        ref float pp = ref MemoryMarshal.GetArrayDataReference(parts);
        // A reference per row: a load then needs no index arithmetic (r·kw + c took two or three integer operations a load).
        ref float q0 = ref q, q1 = ref Unsafe.Add(ref q, R > 1 ? kw : 0), q2 = ref Unsafe.Add(ref q, R > 2 ? 2 * kw : 0), q3 = ref Unsafe.Add(ref q, R > 3 ? 3 * kw : 0);
        ref float q4 = ref Unsafe.Add(ref q, R > 4 ? 4 * kw : 0), q5 = ref Unsafe.Add(ref q, R > 5 ? 5 * kw : 0);
        ref float q6 = ref Unsafe.Add(ref q, R > 6 ? 6 * kw : 0), q7 = ref Unsafe.Add(ref q, R > 7 ? 7 * kw : 0);
        for (int r = 0; r < R; r++) rowMax[r] = float.NegativeInfinity;
        for (int t0 = 0; t0 < n; t0 += 4)
        {
            int keysHere = Math.Min(4, n - t0);
            for (int t = t0; t < t0 + keysHere; t += K)
            {
                for (int i = t; i < Math.Min(t + K, prefetch.Rows); i++) prefetch.Fetch(i);
                ref ushort k0 = ref Unsafe.Add(ref k, t * ks);
                // Past the last key the second repeats the first; its copy's sum is not used.
                ref ushort k1 = ref K > 1 && t + 1 < n ? ref Unsafe.Add(ref k0, ks) : ref k0;
                Vector256<float> a00 = default, a01 = default, a10 = default, a11 = default, a20 = default, a21 = default, a30 = default, a31 = default;
                Vector256<float> a40 = default, a41 = default, a50 = default, a51 = default, a60 = default, a70 = default;
                for (nuint c = 0; c < (nuint)kw; c += 8)
                {
                    var x0 = Widen256<TCheck>(ref k0, c, ref check);
                    var x1 = K > 1 ? Widen256<TCheck>(ref k1, c, ref check) : default;
                    var y = Vector256.LoadUnsafe(ref q0, c);
                    a00 = Vector256.FusedMultiplyAdd(y, x0, a00); if (K > 1) a01 = Vector256.FusedMultiplyAdd(y, x1, a01);
                    if (R > 1) { y = Vector256.LoadUnsafe(ref q1, c); a10 = Vector256.FusedMultiplyAdd(y, x0, a10); if (K > 1) a11 = Vector256.FusedMultiplyAdd(y, x1, a11); }
                    if (R > 2) { y = Vector256.LoadUnsafe(ref q2, c); a20 = Vector256.FusedMultiplyAdd(y, x0, a20); if (K > 1) a21 = Vector256.FusedMultiplyAdd(y, x1, a21); }
                    if (R > 3) { y = Vector256.LoadUnsafe(ref q3, c); a30 = Vector256.FusedMultiplyAdd(y, x0, a30); if (K > 1) a31 = Vector256.FusedMultiplyAdd(y, x1, a31); }
                    if (R > 4)
                    {
                        y = Vector256.LoadUnsafe(ref q4, c);
                        a40 = Vector256.FusedMultiplyAdd(y, x0, a40); if (K > 1) a41 = Vector256.FusedMultiplyAdd(y, x1, a41);
                        if (R > 5) { y = Vector256.LoadUnsafe(ref q5, c); a50 = Vector256.FusedMultiplyAdd(y, x0, a50); if (K > 1) a51 = Vector256.FusedMultiplyAdd(y, x1, a51); }
                    }
                    if (R > 6)
                    {
                        a60 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref q6, c), x0, a60);
                        if (R > 7) a70 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref q7, c), x0, a70);
                    }
                }
                ref float pk = ref Unsafe.Add(ref pp, (t - t0) * 8);
                a00.StoreUnsafe(ref pk, 0); if (K > 1) a01.StoreUnsafe(ref pk, 8);
                if (R > 1) { a10.StoreUnsafe(ref pk, 32); if (K > 1) a11.StoreUnsafe(ref pk, 40); }
                if (R > 2) { a20.StoreUnsafe(ref pk, 64); if (K > 1) a21.StoreUnsafe(ref pk, 72); }
                if (R > 3) { a30.StoreUnsafe(ref pk, 96); if (K > 1) a31.StoreUnsafe(ref pk, 104); }
                if (R > 4)
                {
                    a40.StoreUnsafe(ref pk, 128); if (K > 1) a41.StoreUnsafe(ref pk, 136);
                    if (R > 5) { a50.StoreUnsafe(ref pk, 160); if (K > 1) a51.StoreUnsafe(ref pk, 168); }
                }
                if (R > 6)
                {
                    a60.StoreUnsafe(ref pk, 192);
                    if (R > 7) a70.StoreUnsafe(ref pk, 224);
                }
            }
            for (int r = 0; r < R; r++)
            {
                ref float pr = ref Unsafe.Add(ref pp, r * 32);
                ref float sr = ref Unsafe.Add(ref s, r * Tile + t0);
                if (keysHere == 4)
                {
                    var x = Sum4(Vector256.LoadUnsafe(ref pr), Vector256.LoadUnsafe(ref pr, 8), Vector256.LoadUnsafe(ref pr, 16), Vector256.LoadUnsafe(ref pr, 24)) * scale;
                    x.StoreUnsafe(ref sr);
                    rowMax[r] = Math.Max(rowMax[r], MaxLane(x));
                    continue;
                }
                for (int i = 0; i < keysHere; i++)
                {
                    float x = Vector256.Sum(Vector256.LoadUnsafe(ref pr, (nuint)i * 8)) * scale;
                    Unsafe.Add(ref sr, i) = x;
                    rowMax[r] = Math.Max(rowMax[r], x);
                }
            }
        }
        return !Vector128.GreaterThanOrEqualAny(check, Vector128.Create(DoubledInfNan));
    }

    /// <summary>
    /// <see cref="FusedAccumulate{TRows, TCheck}"/> at 256 bits: 16 columns at a time (8 for seven or eight rows), then 8
    /// (FusedColumns256). Returns the columns done: vw, or the first pass whose values hold an infinity or NaN (left as
    /// it was), or the start of the last vw mod 8.
    /// </summary>
    private static unsafe int FusedAccumulate256<TRows, TCheck>(ref float o, int vw, ReadOnlySpan<float> alpha, ref float p, int n, ushort* v, int vs)
        where TRows : struct, IFusedRows where TCheck : struct, IHalfCheck
    {
        int c = 0;
        if (TRows.Rows <= 6)
            for (; c + 16 <= vw; c += 16)
                if (!FusedColumns256<TRows, TwoVectors, HalfVectors256<TCheck>>(ref Unsafe.Add(ref o, c), vw, alpha, ref p, n, new(v + c, vs))) return c;
        for (; c + 8 <= vw; c += 8)
            if (!FusedColumns256<TRows, OneVector, HalfVectors256<TCheck>>(ref Unsafe.Add(ref o, c), vw, alpha, ref p, n, new(v + c, vs))) return c;
        return c;
    }

    /// <summary>Eight halves in float place (value·2^-112), and (when checking) their doubled bits into the running maximum.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Widen256<TCheck>(ref ushort h, nuint at, ref Vector128<ushort> check) where TCheck : struct, IHalfCheck
    {
        var x = Vector128.LoadUnsafe(ref h, at);
        if (TCheck.On) check = Vector128.Max(check, x + x);
        return FloatConvert.HalfBitsInFloatPlace256(x.AsInt16()).AsSingle();
    }
}
