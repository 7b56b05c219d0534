using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors;

// The float inner loops of the attention kernel, one path per vector width (512, 256, 128; 0 is scalar). Decode at
// depth lives here: per position of one KV head and GQA group it is one score per query row and one multiply-add
// of the value row per query row, so these loops are written to keep the FMA units busy rather than wait on one
// dependency chain: several keys' dot products are in flight at once, and the output row is accumulated a whole
// 128-float block (8 registers) at a time. Grouping changes no float: every key's dot product and every output
// element sees the same operations in the same order as the one-at-a-time loop, so a row's result still depends
// only on its own position and the cache.
internal static partial class FlashAttention
{
    /// <summary>s[t] = (q · k_t)·scale for t &lt; n, key t at k + t·ks (kw floats each); returns the largest.</summary>
    private static float Scores(ref float q, ref float k, int ks, int kw, int n, float scale, Span<float> s, int width)
    {
        int t = 0;
        float max = float.NegativeInfinity;
        ref float s0 = ref MemoryMarshal.GetReference(s);
        if (width == 512 && kw % 16 == 0 && Avx512F.IsSupported)
        {
            for (; t + 8 <= n; t += 8)
            {
                ref float kt = ref Unsafe.Add(ref k, t * ks);
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                for (int c = 0; c < kw; c += 16)
                {
                    var qc = Vector512.LoadUnsafe(ref q, (nuint)c);
                    a0 = Vector512.FusedMultiplyAdd(qc, Vector512.LoadUnsafe(ref kt, (nuint)c), a0);
                    a1 = Vector512.FusedMultiplyAdd(qc, Vector512.LoadUnsafe(ref kt, (nuint)(ks + c)), a1);
                    a2 = Vector512.FusedMultiplyAdd(qc, Vector512.LoadUnsafe(ref kt, (nuint)(2 * ks + c)), a2);
                    a3 = Vector512.FusedMultiplyAdd(qc, Vector512.LoadUnsafe(ref kt, (nuint)(3 * ks + c)), a3);
                    a4 = Vector512.FusedMultiplyAdd(qc, Vector512.LoadUnsafe(ref kt, (nuint)(4 * ks + c)), a4);
                    a5 = Vector512.FusedMultiplyAdd(qc, Vector512.LoadUnsafe(ref kt, (nuint)(5 * ks + c)), a5);
                    a6 = Vector512.FusedMultiplyAdd(qc, Vector512.LoadUnsafe(ref kt, (nuint)(6 * ks + c)), a6);
                    a7 = Vector512.FusedMultiplyAdd(qc, Vector512.LoadUnsafe(ref kt, (nuint)(7 * ks + c)), a7);
                }
                var x = Sum8(a0, a1, a2, a3, a4, a5, a6, a7) * scale;
                x.StoreUnsafe(ref Unsafe.Add(ref s0, t));
                max = Math.Max(max, MaxLane(x));
            }
        }
        else if (width == 256 && kw % 8 == 0)
        {
            for (; t + 8 <= n; t += 8)
            {
                // A reference per key: a load then needs no index arithmetic (the JIT recomputed t·ks + c for each of
                // the eight, which made the loop wait on the integer units rather than the multiply-adds).
                ref float k0 = ref Unsafe.Add(ref k, t * ks);
                ref float k1 = ref Unsafe.Add(ref k0, ks);
                ref float k2 = ref Unsafe.Add(ref k1, ks);
                ref float k3 = ref Unsafe.Add(ref k2, ks);
                ref float k4 = ref Unsafe.Add(ref k3, ks);
                ref float k5 = ref Unsafe.Add(ref k4, ks);
                ref float k6 = ref Unsafe.Add(ref k5, ks);
                ref float k7 = ref Unsafe.Add(ref k6, ks);
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                for (nuint c = 0; c < (nuint)kw; c += 8)
                {
                    var qc = Vector256.LoadUnsafe(ref q, c);
                    a0 = Vector256.FusedMultiplyAdd(qc, Vector256.LoadUnsafe(ref k0, c), a0);
                    a1 = Vector256.FusedMultiplyAdd(qc, Vector256.LoadUnsafe(ref k1, c), a1);
                    a2 = Vector256.FusedMultiplyAdd(qc, Vector256.LoadUnsafe(ref k2, c), a2);
                    a3 = Vector256.FusedMultiplyAdd(qc, Vector256.LoadUnsafe(ref k3, c), a3);
                    a4 = Vector256.FusedMultiplyAdd(qc, Vector256.LoadUnsafe(ref k4, c), a4);
                    a5 = Vector256.FusedMultiplyAdd(qc, Vector256.LoadUnsafe(ref k5, c), a5);
                    a6 = Vector256.FusedMultiplyAdd(qc, Vector256.LoadUnsafe(ref k6, c), a6);
                    a7 = Vector256.FusedMultiplyAdd(qc, Vector256.LoadUnsafe(ref k7, c), a7);
                }
                var x = Sum8(a0, a1, a2, a3, a4, a5, a6, a7) * scale;
                x.StoreUnsafe(ref Unsafe.Add(ref s0, t));
                max = Math.Max(max, MaxLane(x));
            }
        }
        for (; t < n; t++)
        {
            float x = Dot(ref q, ref Unsafe.Add(ref k, t * ks), kw, width) * scale;
            Unsafe.Add(ref s0, t) = x;
            max = Math.Max(max, x);
        }
        return max;
    }

    /// <summary>
    /// The sums of 8 vectors, as a vector, by a transposing tree (Vector512.Sum is 26 instructions a vector here, more
    /// than the 8 multiply-adds of a 128-wide head's dot product). Lane j of a vector is summed as <see cref="Sum1"/> does.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Sum8(Vector512<float> a0, Vector512<float> a1, Vector512<float> a2, Vector512<float> a3,
        Vector512<float> a4, Vector512<float> a5, Vector512<float> a6, Vector512<float> a7)
    {
        // 256-bit halves added: [a.lo + a.hi of vector i, of vector i+1]
        var t01 = Avx512F.Shuffle4x128(a0, a1, 0b01_00_01_00) + Avx512F.Shuffle4x128(a0, a1, 0b11_10_11_10);
        var t23 = Avx512F.Shuffle4x128(a2, a3, 0b01_00_01_00) + Avx512F.Shuffle4x128(a2, a3, 0b11_10_11_10);
        var t45 = Avx512F.Shuffle4x128(a4, a5, 0b01_00_01_00) + Avx512F.Shuffle4x128(a4, a5, 0b11_10_11_10);
        var t67 = Avx512F.Shuffle4x128(a6, a7, 0b01_00_01_00) + Avx512F.Shuffle4x128(a6, a7, 0b11_10_11_10);
        // 128-bit quarters added: 128-bit lane k holds 4 partial sums of vector k (then k + 4)
        var v = Avx512F.Shuffle4x128(t01, t23, 0b10_00_10_00) + Avx512F.Shuffle4x128(t01, t23, 0b11_01_11_01);
        var w = Avx512F.Shuffle4x128(t45, t67, 0b10_00_10_00) + Avx512F.Shuffle4x128(t45, t67, 0b11_01_11_01);
        // pairs, then pairs of pairs: lane k = [Σ vector k, same, Σ vector k + 4, same]
        var r = Avx512F.Shuffle(v, w, 0b10_00_10_00) + Avx512F.Shuffle(v, w, 0b11_01_11_01);
        var f = r + Avx512F.Permute4x32(r, 0b10_11_00_01);
        return Avx512F.PermuteVar16x32(f, Vector512.Create(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0)).GetLower();
    }

    /// <summary>
    /// The sums of 8 vectors, as a vector, by horizontal adds (<see cref="Sum4"/> twice): a few instructions where eight
    /// Vector256.Sum calls and scalar stores took over 100, more than the 128 multiply-adds of eight 128-wide keys' dot
    /// products had cost. Lane j is Vector256.Sum's order, so a key's score has the same bits here as in <see cref="Dot"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Sum8(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3,
        Vector256<float> a4, Vector256<float> a5, Vector256<float> a6, Vector256<float> a7)
    {
        if (!Avx.IsSupported) return Vector256.Create(Vector256.Sum(a0), Vector256.Sum(a1), Vector256.Sum(a2), Vector256.Sum(a3),
            Vector256.Sum(a4), Vector256.Sum(a5), Vector256.Sum(a6), Vector256.Sum(a7));
        return Vector256.Create(Sum4(a0, a1, a2, a3), Sum4(a4, a5, a6, a7));
    }

    /// <summary>
    /// The sums of 4 vectors by horizontal adds (AVX). Lane j is ((x0 + x1) + (x2 + x3)) + ((x4 + x5) + (x6 + x7)) of
    /// vector j: Vector256.Sum's order.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> Sum4(Vector256<float> a0, Vector256<float> a1, Vector256<float> a2, Vector256<float> a3)
    {
        // Lane j of each 128-bit half: vector j's four-lane sum over that half, (x0 + x1) + (x2 + x3).
        var q = Avx.HorizontalAdd(Avx.HorizontalAdd(a0, a1), Avx.HorizontalAdd(a2, a3));
        return q.GetLower() + q.GetUpper();
    }

    /// <summary>One vector's sum in the 512-bit Sum8's order: halves, quarters, then (x0 + x1) + (x2 + x3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Sum1(Vector512<float> a)
    {
        var h = a.GetLower() + a.GetUpper();
        var q = h.GetLower() + h.GetUpper();
        return (q.GetElement(0) + q.GetElement(1)) + (q.GetElement(2) + q.GetElement(3));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxLane(Vector256<float> x) => MaxLane(Vector128.MaxNative(x.GetLower(), x.GetUpper()));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float MaxLane(Vector128<float> x)
    {
        var m = Vector128.MaxNative(x, Vector128.Shuffle(x, Vector128.Create(2, 3, 0, 1)));
        return Math.Max(m.GetElement(0), m.GetElement(1));
    }

    /// <summary>One key's dot product: the order <see cref="Scores"/>' grouped loops keep per key.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Dot(ref float a, ref float b, int n, int width)
    {
        int i = 0;
        float s = 0;
        if (width == 512 && n >= 16)
        {
            var acc = Vector512<float>.Zero;
            for (; i + 16 <= n; i += 16)
                acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref a, (nuint)i), Vector512.LoadUnsafe(ref b, (nuint)i), acc);
            s = Avx512F.IsSupported ? Sum1(acc) : Vector512.Sum(acc);
        }
        else if (width >= 256 && n >= 8)
        {
            var acc = Vector256<float>.Zero;
            for (; i + 8 <= n; i += 8)
                acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref a, (nuint)i), Vector256.LoadUnsafe(ref b, (nuint)i), acc);
            s = Vector256.Sum(acc);
        }
        else if (width >= 128 && n >= 4)
        {
            var acc = Vector128<float>.Zero;
            for (; i + 4 <= n; i += 4)
                acc += Vector128.LoadUnsafe(ref a, (nuint)i) * Vector128.LoadUnsafe(ref b, (nuint)i);
            s = Vector128.Sum(acc);
        }
        for (; i < n; i++) s += Unsafe.Add(ref a, i) * Unsafe.Add(ref b, i);
        return s;
    }

    /// <summary>
    /// s[t] = exp(s[t] − m) for t &lt; n; returns their sum. s holds a whole tile (a multiple of every vector width):
    /// the lanes past n are set to −∞ first and come out 0, so the vector loop needs no tail.
    /// </summary>
    private static float ExpShifted(Span<float> s, int n, float m, int width)
    {
        if (width == 0)
        {
            float total = 0;
            for (int t = 0; t < n; t++) total += s[t] = SoftmaxExp.Exp(s[t] - m);
            return total;
        }
        int step = width / 32, padded = (n + step - 1) / step * step;
        s[n..padded].Fill(float.NegativeInfinity);
        ref float p = ref MemoryMarshal.GetReference(s);
        if (width == 512)
        {
            var acc = Vector512<float>.Zero;
            var mv = Vector512.Create(m);
            for (int t = 0; t < padded; t += 16)
            {
                var e = SoftmaxExp.Exp(Vector512.LoadUnsafe(ref p, (nuint)t) - mv);
                e.StoreUnsafe(ref p, (nuint)t);
                acc += e;
            }
            return Vector512.Sum(acc);
        }
        if (width == 256)
        {
            var acc = Vector256<float>.Zero;
            var mv = Vector256.Create(m);
            for (int t = 0; t < padded; t += 8)
            {
                var e = SoftmaxExp.Exp(Vector256.LoadUnsafe(ref p, (nuint)t) - mv);
                e.StoreUnsafe(ref p, (nuint)t);
                acc += e;
            }
            return Vector256.Sum(acc);
        }
        var acc4 = Vector128<float>.Zero;
        var m4 = Vector128.Create(m);
        for (int t = 0; t < padded; t += 4)
        {
            var e = SoftmaxExp.Exp(Vector128.LoadUnsafe(ref p, (nuint)t) - m4);
            e.StoreUnsafe(ref p, (nuint)t);
            acc4 += e;
        }
        return Vector128.Sum(acc4);
    }

    /// <summary>
    /// o = o·alpha + Σ_t p[t]·v[t·vStride ..] over n output columns: blocks of 8 (then 4, then 1) vectors of the row stay
    /// in registers while the tile's values stream past, so 8 independent multiply-add chains are in flight.
    /// </summary>
    private static void Accumulate(ref float o, float alpha, ReadOnlySpan<float> p, ref float v, int vStride, int n, int width)
    {
        int c = 0, count = p.Length;
        ref float p0 = ref MemoryMarshal.GetReference(p);
        if (width == 512)
        {
            for (; c + 128 <= n; c += 128)
            {
                ref float oc = ref Unsafe.Add(ref o, c);
                ref float vc = ref Unsafe.Add(ref v, c);
                var a0 = Vector512.LoadUnsafe(ref oc) * alpha;
                var a1 = Vector512.LoadUnsafe(ref oc, 16) * alpha;
                var a2 = Vector512.LoadUnsafe(ref oc, 32) * alpha;
                var a3 = Vector512.LoadUnsafe(ref oc, 48) * alpha;
                var a4 = Vector512.LoadUnsafe(ref oc, 64) * alpha;
                var a5 = Vector512.LoadUnsafe(ref oc, 80) * alpha;
                var a6 = Vector512.LoadUnsafe(ref oc, 96) * alpha;
                var a7 = Vector512.LoadUnsafe(ref oc, 112) * alpha;
                for (int t = 0; t < count; t++)
                {
                    ref float vt = ref Unsafe.Add(ref vc, t * vStride);
                    var pt = Vector512.Create(Unsafe.Add(ref p0, t));
                    a0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt), pt, a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 16), pt, a1);
                    a2 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 32), pt, a2);
                    a3 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 48), pt, a3);
                    a4 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 64), pt, a4);
                    a5 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 80), pt, a5);
                    a6 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 96), pt, a6);
                    a7 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 112), pt, a7);
                }
                a0.StoreUnsafe(ref oc); a1.StoreUnsafe(ref oc, 16); a2.StoreUnsafe(ref oc, 32); a3.StoreUnsafe(ref oc, 48);
                a4.StoreUnsafe(ref oc, 64); a5.StoreUnsafe(ref oc, 80); a6.StoreUnsafe(ref oc, 96); a7.StoreUnsafe(ref oc, 112);
            }
            for (; c + 64 <= n; c += 64)
            {
                ref float oc = ref Unsafe.Add(ref o, c);
                ref float vc = ref Unsafe.Add(ref v, c);
                var a0 = Vector512.LoadUnsafe(ref oc) * alpha;
                var a1 = Vector512.LoadUnsafe(ref oc, 16) * alpha;
                var a2 = Vector512.LoadUnsafe(ref oc, 32) * alpha;
                var a3 = Vector512.LoadUnsafe(ref oc, 48) * alpha;
                for (int t = 0; t < count; t++)
                {
                    ref float vt = ref Unsafe.Add(ref vc, t * vStride);
                    var pt = Vector512.Create(Unsafe.Add(ref p0, t));
                    a0 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt), pt, a0);
                    a1 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 16), pt, a1);
                    a2 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 32), pt, a2);
                    a3 = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref vt, 48), pt, a3);
                }
                a0.StoreUnsafe(ref oc); a1.StoreUnsafe(ref oc, 16); a2.StoreUnsafe(ref oc, 32); a3.StoreUnsafe(ref oc, 48);
            }
            for (; c + 16 <= n; c += 16)
            {
                var acc = Vector512.LoadUnsafe(ref o, (nuint)c) * alpha;
                for (int t = 0; t < count; t++)
                    acc = Vector512.FusedMultiplyAdd(Vector512.LoadUnsafe(ref v, (nuint)(t * vStride + c)), Vector512.Create(Unsafe.Add(ref p0, t)), acc);
                acc.StoreUnsafe(ref o, (nuint)c);
            }
        }
        if (width >= 256)
        {
            for (; c + 64 <= n; c += 64)
            {
                ref float oc = ref Unsafe.Add(ref o, c);
                ref float vc = ref Unsafe.Add(ref v, c);
                var a0 = Vector256.LoadUnsafe(ref oc) * alpha;
                var a1 = Vector256.LoadUnsafe(ref oc, 8) * alpha;
                var a2 = Vector256.LoadUnsafe(ref oc, 16) * alpha;
                var a3 = Vector256.LoadUnsafe(ref oc, 24) * alpha;
                var a4 = Vector256.LoadUnsafe(ref oc, 32) * alpha;
                var a5 = Vector256.LoadUnsafe(ref oc, 40) * alpha;
                var a6 = Vector256.LoadUnsafe(ref oc, 48) * alpha;
                var a7 = Vector256.LoadUnsafe(ref oc, 56) * alpha;
                for (int t = 0; t < count; t++)
                {
                    ref float vt = ref Unsafe.Add(ref vc, t * vStride);
                    var pt = Vector256.Create(Unsafe.Add(ref p0, t));
                    a0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref vt), pt, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref vt, 8), pt, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref vt, 16), pt, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref vt, 24), pt, a3);
                    a4 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref vt, 32), pt, a4);
                    a5 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref vt, 40), pt, a5);
                    a6 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref vt, 48), pt, a6);
                    a7 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref vt, 56), pt, a7);
                }
                a0.StoreUnsafe(ref oc); a1.StoreUnsafe(ref oc, 8); a2.StoreUnsafe(ref oc, 16); a3.StoreUnsafe(ref oc, 24);
                a4.StoreUnsafe(ref oc, 32); a5.StoreUnsafe(ref oc, 40); a6.StoreUnsafe(ref oc, 48); a7.StoreUnsafe(ref oc, 56);
            }
            for (; c + 8 <= n; c += 8)
            {
                var acc = Vector256.LoadUnsafe(ref o, (nuint)c) * alpha;
                for (int t = 0; t < count; t++)
                    acc = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref v, (nuint)(t * vStride + c)), Vector256.Create(Unsafe.Add(ref p0, t)), acc);
                acc.StoreUnsafe(ref o, (nuint)c);
            }
        }
        if (width >= 128)
        {
            for (; c + 16 <= n; c += 16)
            {
                ref float oc = ref Unsafe.Add(ref o, c);
                ref float vc = ref Unsafe.Add(ref v, c);
                var a0 = Vector128.LoadUnsafe(ref oc) * alpha;
                var a1 = Vector128.LoadUnsafe(ref oc, 4) * alpha;
                var a2 = Vector128.LoadUnsafe(ref oc, 8) * alpha;
                var a3 = Vector128.LoadUnsafe(ref oc, 12) * alpha;
                for (int t = 0; t < count; t++)
                {
                    ref float vt = ref Unsafe.Add(ref vc, t * vStride);
                    float pt = Unsafe.Add(ref p0, t);
                    a0 += Vector128.LoadUnsafe(ref vt) * pt;
                    a1 += Vector128.LoadUnsafe(ref vt, 4) * pt;
                    a2 += Vector128.LoadUnsafe(ref vt, 8) * pt;
                    a3 += Vector128.LoadUnsafe(ref vt, 12) * pt;
                }
                a0.StoreUnsafe(ref oc); a1.StoreUnsafe(ref oc, 4); a2.StoreUnsafe(ref oc, 8); a3.StoreUnsafe(ref oc, 12);
            }
            for (; c + 4 <= n; c += 4)
            {
                var acc = Vector128.LoadUnsafe(ref o, (nuint)c) * alpha;
                for (int t = 0; t < count; t++)
                    acc += Vector128.LoadUnsafe(ref v, (nuint)(t * vStride + c)) * Unsafe.Add(ref p0, t);
                acc.StoreUnsafe(ref o, (nuint)c);
            }
        }
        for (; c < n; c++)
        {
            float acc = Unsafe.Add(ref o, c) * alpha;
            for (int t = 0; t < count; t++) acc += Unsafe.Add(ref v, t * vStride + c) * Unsafe.Add(ref p0, t);
            Unsafe.Add(ref o, c) = acc;
        }
    }

    /// <summary>o = o·a + x·b element by element (a multiply, a multiply and an add: the same floats on every width).</summary>
    private static void ScaleAdd(Span<float> o, float a, ReadOnlySpan<float> x, float b, int width)
    {
        int c = 0, n = o.Length;
        if (x.Length < n) throw new ArgumentException($"{x.Length} values to add to {n}");
        ref float od = ref MemoryMarshal.GetReference(o);
        ref float xd = ref MemoryMarshal.GetReference(x);
        if (width == 512)
            for (; c + 16 <= n; c += 16)
                (Vector512.LoadUnsafe(ref od, (nuint)c) * a + Vector512.LoadUnsafe(ref xd, (nuint)c) * b).StoreUnsafe(ref od, (nuint)c);
        if (width >= 256)
            for (; c + 8 <= n; c += 8)
                (Vector256.LoadUnsafe(ref od, (nuint)c) * a + Vector256.LoadUnsafe(ref xd, (nuint)c) * b).StoreUnsafe(ref od, (nuint)c);
        if (width >= 128)
            for (; c + 4 <= n; c += 4)
                (Vector128.LoadUnsafe(ref od, (nuint)c) * a + Vector128.LoadUnsafe(ref xd, (nuint)c) * b).StoreUnsafe(ref od, (nuint)c);
        for (; c < n; c++) Unsafe.Add(ref od, c) = Unsafe.Add(ref od, c) * a + Unsafe.Add(ref xd, c) * b;
    }
}
