using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors;

// The fused F16 q·k loops (FlashAttention.FusedHalves.cs) for a block of 1 to 8 query rows. The row count
// is a type argument, so the JIT compiles each block size apart and drops the statements of rows (and keys) the block
// has not: the statements for rows 1…7 and keys 2…3 below are guarded by constants.
// q·k goes four keys at a time for up to six rows (24 accumulators), two at a time for seven or eight (14, 16); p·v
// (the passes every in-place value format shares, FlashAttention.FusedValues.cs) four 16-column vectors at a time for
// up to six rows, two for seven or eight. The 32 vector registers hold the accumulators, the widened halves and a
// query or probability.
internal static partial class FlashAttention
{
    private interface IFusedRows { static abstract int Rows { get; } }
    private struct OneRow : IFusedRows { public static int Rows => 1; }
    private struct TwoRows : IFusedRows { public static int Rows => 2; }
    private struct ThreeRows : IFusedRows { public static int Rows => 3; }
    private struct FourRows : IFusedRows { public static int Rows => 4; }
    private struct FiveRows : IFusedRows { public static int Rows => 5; }
    private struct SixRows : IFusedRows { public static int Rows => 6; }
    private struct SevenRows : IFusedRows { public static int Rows => 7; }
    private struct EightRows : IFusedRows { public static int Rows => 8; }

    /// <summary>Whether the kernels watch the halves for infinities and NaNs (<see cref="CheckHalves"/>) or may skip it, the cache knowing it holds none (<see cref="TrustHalves"/>).</summary>
    private interface IHalfCheck { static abstract bool On { get; } }
    private struct CheckHalves : IHalfCheck { public static bool On => true; }
    private struct TrustHalves : IHalfCheck { public static bool On => false; }
    /// <summary>
    /// A block of query rows (scaled, kw apart from <paramref name="q"/>) against n keys of halves (ks apart): scores
    /// s_r[t] = (q_r·k_t)·scale at s + r·Tile, each row's largest into <paramref name="rowMax"/>. Every eight keys'
    /// accumulators are summed by Sum8, the tiled path's reduction (parts: row r's accumulator of key i of the eight at
    /// (r·8 + i)·16). False when a key holds an infinity or NaN (scores then partial and unused). Key t has row t of
    /// <paramref name="prefetch"/> fetched.
    /// </summary>
    private static bool FusedScores<TRows, TCheck>(ref float q, int kw, ref ushort k, int ks, int n, float scale, ref float s, float[] parts, Span<float> rowMax,
        RowPrefetch prefetch) where TRows : struct, IFusedRows where TCheck : struct, IHalfCheck
    {
        int R = TRows.Rows, K = R > 6 ? 2 : 4;
        var check = Vector256<ushort>.Zero;
        ref float pp = ref MemoryMarshal.GetArrayDataReference(parts);
        for (int r = 0; r < R; r++) rowMax[r] = float.NegativeInfinity;
        for (int t0 = 0; t0 < n; t0 += 8)
        {
            int keysHere = Math.Min(8, n - t0);
            for (int t = t0; t < t0 + keysHere; t += K)
            {
                for (int i = t; i < Math.Min(t + K, prefetch.Rows); i++) prefetch.Fetch(i);
                ref ushort k0 = ref Unsafe.Add(ref k, t * ks);
                // Past the last key a key repeats the step's first; its copies' sums are not used.
                ref ushort k1 = ref t + 1 < n ? ref Unsafe.Add(ref k0, ks) : ref k0;
                ref ushort k2 = ref K > 2 && t + 2 < n ? ref Unsafe.Add(ref k0, 2 * ks) : ref k0;
                ref ushort k3 = ref K > 2 && t + 3 < n ? ref Unsafe.Add(ref k0, 3 * ks) : ref k0;
                Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default;
                Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default;
                Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default;
                Vector512<float> a30 = default, a31 = default, a32 = default, a33 = default;
                Vector512<float> a40 = default, a41 = default, a42 = default, a43 = default;
                Vector512<float> a50 = default, a51 = default, a52 = default, a53 = default;
                Vector512<float> a60 = default, a61 = default, a62 = default, a63 = default;
                Vector512<float> a70 = default, a71 = default, a72 = default, a73 = default;
                for (int c = 0; c < kw; c += 16)
                {
                    var x0 = Widen<TCheck>(ref k0, (nuint)c, ref check);
                    var x1 = Widen<TCheck>(ref k1, (nuint)c, ref check);
                    Vector512<float> x2 = default, x3 = default;
                    if (K > 2)
                    {
                        x2 = Widen<TCheck>(ref k2, (nuint)c, ref check);
                        x3 = Widen<TCheck>(ref k3, (nuint)c, ref check);
                    }
                    var y0 = Vector512.LoadUnsafe(ref q, (nuint)(0 * kw + c));
                    a00 = Vector512.FusedMultiplyAdd(y0, x0, a00); a01 = Vector512.FusedMultiplyAdd(y0, x1, a01);
                    if (K > 2) { a02 = Vector512.FusedMultiplyAdd(y0, x2, a02); a03 = Vector512.FusedMultiplyAdd(y0, x3, a03); }
                    if (R > 1)
                    {
                        var y1 = Vector512.LoadUnsafe(ref q, (nuint)(1 * kw + c));
                        a10 = Vector512.FusedMultiplyAdd(y1, x0, a10); a11 = Vector512.FusedMultiplyAdd(y1, x1, a11);
                        if (K > 2) { a12 = Vector512.FusedMultiplyAdd(y1, x2, a12); a13 = Vector512.FusedMultiplyAdd(y1, x3, a13); }
                    }
                    if (R > 2)
                    {
                        var y2 = Vector512.LoadUnsafe(ref q, (nuint)(2 * kw + c));
                        a20 = Vector512.FusedMultiplyAdd(y2, x0, a20); a21 = Vector512.FusedMultiplyAdd(y2, x1, a21);
                        if (K > 2) { a22 = Vector512.FusedMultiplyAdd(y2, x2, a22); a23 = Vector512.FusedMultiplyAdd(y2, x3, a23); }
                    }
                    if (R > 3)
                    {
                        var y3 = Vector512.LoadUnsafe(ref q, (nuint)(3 * kw + c));
                        a30 = Vector512.FusedMultiplyAdd(y3, x0, a30); a31 = Vector512.FusedMultiplyAdd(y3, x1, a31);
                        if (K > 2) { a32 = Vector512.FusedMultiplyAdd(y3, x2, a32); a33 = Vector512.FusedMultiplyAdd(y3, x3, a33); }
                    }
                    if (R > 4)
                    {
                        var y4 = Vector512.LoadUnsafe(ref q, (nuint)(4 * kw + c));
                        a40 = Vector512.FusedMultiplyAdd(y4, x0, a40); a41 = Vector512.FusedMultiplyAdd(y4, x1, a41);
                        if (K > 2) { a42 = Vector512.FusedMultiplyAdd(y4, x2, a42); a43 = Vector512.FusedMultiplyAdd(y4, x3, a43); }
                        if (R > 5)
                        {
                            var y5 = Vector512.LoadUnsafe(ref q, (nuint)(5 * kw + c));
                            a50 = Vector512.FusedMultiplyAdd(y5, x0, a50); a51 = Vector512.FusedMultiplyAdd(y5, x1, a51);
                            if (K > 2) { a52 = Vector512.FusedMultiplyAdd(y5, x2, a52); a53 = Vector512.FusedMultiplyAdd(y5, x3, a53); }
                        }
                    }
                    if (R > 6)
                    {
                        var y6 = Vector512.LoadUnsafe(ref q, (nuint)(6 * kw + c));
                        a60 = Vector512.FusedMultiplyAdd(y6, x0, a60); a61 = Vector512.FusedMultiplyAdd(y6, x1, a61);
                        if (K > 2) { a62 = Vector512.FusedMultiplyAdd(y6, x2, a62); a63 = Vector512.FusedMultiplyAdd(y6, x3, a63); }
                        if (R > 7)
                        {
                            var y7 = Vector512.LoadUnsafe(ref q, (nuint)(7 * kw + c));
                            a70 = Vector512.FusedMultiplyAdd(y7, x0, a70); a71 = Vector512.FusedMultiplyAdd(y7, x1, a71);
                            if (K > 2) { a72 = Vector512.FusedMultiplyAdd(y7, x2, a72); a73 = Vector512.FusedMultiplyAdd(y7, x3, a73); }
                        }
                    }
                }
                ref float pk = ref Unsafe.Add(ref pp, (t - t0) * 16);
                a00.StoreUnsafe(ref pk, 0); a01.StoreUnsafe(ref pk, 16); if (K > 2) { a02.StoreUnsafe(ref pk, 32); a03.StoreUnsafe(ref pk, 48); }
                if (R > 1) { a10.StoreUnsafe(ref pk, 128); a11.StoreUnsafe(ref pk, 144); if (K > 2) { a12.StoreUnsafe(ref pk, 160); a13.StoreUnsafe(ref pk, 176); } }
                if (R > 2) { a20.StoreUnsafe(ref pk, 256); a21.StoreUnsafe(ref pk, 272); if (K > 2) { a22.StoreUnsafe(ref pk, 288); a23.StoreUnsafe(ref pk, 304); } }
                if (R > 3) { a30.StoreUnsafe(ref pk, 384); a31.StoreUnsafe(ref pk, 400); if (K > 2) { a32.StoreUnsafe(ref pk, 416); a33.StoreUnsafe(ref pk, 432); } }
                if (R > 4)
                {
                    a40.StoreUnsafe(ref pk, 512); a41.StoreUnsafe(ref pk, 528); if (K > 2) { a42.StoreUnsafe(ref pk, 544); a43.StoreUnsafe(ref pk, 560); }
                    if (R > 5) { a50.StoreUnsafe(ref pk, 640); a51.StoreUnsafe(ref pk, 656); if (K > 2) { a52.StoreUnsafe(ref pk, 672); a53.StoreUnsafe(ref pk, 688); } }
                }
                if (R > 6)
                {
                    a60.StoreUnsafe(ref pk, 768); a61.StoreUnsafe(ref pk, 784); if (K > 2) { a62.StoreUnsafe(ref pk, 800); a63.StoreUnsafe(ref pk, 816); }
                    if (R > 7) { a70.StoreUnsafe(ref pk, 896); a71.StoreUnsafe(ref pk, 912); if (K > 2) { a72.StoreUnsafe(ref pk, 928); a73.StoreUnsafe(ref pk, 944); } }
                }
            }
            for (int r = 0; r < R; r++)
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
    /// A block's outputs (vw floats, vw apart from <paramref name="o"/>) o_r = o_r·alpha_r + Σ_t p_r[t]·v_t over n value
    /// rows of halves (vs apart), p the scaled probabilities (Tile apart): 64 columns at a time (32 for seven or eight
    /// rows), then 16 (FusedColumns512). Returns the columns done: vw, or the first pass whose values hold an infinity
    /// or NaN (left as it was), or the start of the last vw mod 16.
    /// </summary>
    private static unsafe int FusedAccumulate<TRows, TCheck>(ref float o, int vw, ReadOnlySpan<float> alpha, ref float p, int n, ushort* v, int vs)
        where TRows : struct, IFusedRows where TCheck : struct, IHalfCheck
    {
        int c = 0;
        if (TRows.Rows <= 6)
        {
            for (; c + 64 <= vw; c += 64)
                if (!FusedColumns512<TRows, FourVectors, HalfVectors512<TCheck>>(ref Unsafe.Add(ref o, c), vw, alpha, ref p, n, new(v + c, vs))) return c;
        }
        else
            for (; c + 32 <= vw; c += 32)
                if (!FusedColumns512<TRows, TwoVectors, HalfVectors512<TCheck>>(ref Unsafe.Add(ref o, c), vw, alpha, ref p, n, new(v + c, vs))) return c;
        for (; c + 16 <= vw; c += 16)
            if (!FusedColumns512<TRows, OneVector, HalfVectors512<TCheck>>(ref Unsafe.Add(ref o, c), vw, alpha, ref p, n, new(v + c, vs))) return c;
        return c;
    }
}
