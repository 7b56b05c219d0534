using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors;

// Register-blocked inner loops (AVX-512 here, AVX2 in FlashAttention.Blocked256.cs) for query rows that see the same keys of a tile: the query heads of one GQA
// group always do, and in prefill every row of a block does on each tile below the diagonal. Three rows go together:
// each key vector (q·k) and each value vector (p·v) is loaded once for the three of them instead of once per row,
// 24 accumulators stay in the 32 vector registers, and the loop becomes bound by multiply-adds rather than loads.
// Every (row, key) dot product and every output element sees exactly the operations, in the same order, that the
// one-row loops of FlashAttention.Kernels.cs give it, so blocking changes no bit: a row's result still depends only
// on its own position and the cache, whichever rows it was blocked with.
internal static partial class FlashAttention
{
    /// <summary>Rows one blocked step handles.</summary>
    private const int BlockRows = 3;

    /// <summary>Whether rows sharing a tile's keys run through the register-blocked loops (settable for the bench's A/B: `attn prefill … old,new`).</summary>
    internal static bool BlockedRows = true;

    /// <summary>Whether the blocked loops run at this width (512 bits with AVX-512, 256 with AVX2 and FMA; q·k also needs float keys a multiple of the lanes wide).</summary>
    private static bool Blocks(int width) => BlockedRows && (width == 512 ? Avx512F.IsSupported : width == 256 && Avx2.IsSupported && Fma.IsSupported);

    /// <summary>Whether rows r … r + BlockRows − 1 exist and see the same positions of the tile (and at least one).</summary>
    private static bool SameRange(Scratch sc, int r, int rows)
    {
        if (r + BlockRows > rows || sc.RowCount[r] == 0) return false;
        for (int i = 1; i < BlockRows; i++)
            if (sc.RowFrom[r + i] != sc.RowFrom[r] || sc.RowCount[r + i] != sc.RowCount[r]) return false;
        return true;
    }

    /// <summary>
    /// <see cref="Scores"/> for three query rows over the same n keys (key t at k + t·ks, kw floats, kw a multiple of 16):
    /// s_r[t] = (q_r · k_t)·scale; returns each row's largest. At 512 bits here; other widths go to Scores3x256.
    /// </summary>
    private static (float, float, float) Scores3(ref float q0, ref float q1, ref float q2, ref float k, int ks, int kw, int n, float scale,
        ref float s0, ref float s1, ref float s2, int width)
    {
        if (width != 512) return Scores3x256(ref q0, ref q1, ref q2, ref k, ks, kw, n, scale, ref s0, ref s1, ref s2);
        float m0 = float.NegativeInfinity, m1 = m0, m2 = m0;
        int t = 0;
        for (; t + 8 <= n; t += 8)
        {
            ref float kt = ref Unsafe.Add(ref k, t * ks);
            Vector512<float> a00 = default, a01 = default, a02 = default, a03 = default, a04 = default, a05 = default, a06 = default, a07 = default;
            Vector512<float> a10 = default, a11 = default, a12 = default, a13 = default, a14 = default, a15 = default, a16 = default, a17 = default;
            Vector512<float> a20 = default, a21 = default, a22 = default, a23 = default, a24 = default, a25 = default, a26 = default, a27 = default;
            for (int c = 0; c < kw; c += 16)
            {
                var x0 = Vector512.LoadUnsafe(ref q0, (nuint)c);
                var x1 = Vector512.LoadUnsafe(ref q1, (nuint)c);
                var x2 = Vector512.LoadUnsafe(ref q2, (nuint)c);
                var y = Vector512.LoadUnsafe(ref kt, (nuint)c);
                a00 = Vector512.FusedMultiplyAdd(x0, y, a00); a10 = Vector512.FusedMultiplyAdd(x1, y, a10); a20 = Vector512.FusedMultiplyAdd(x2, y, a20);
                y = Vector512.LoadUnsafe(ref kt, (nuint)(ks + c));
                a01 = Vector512.FusedMultiplyAdd(x0, y, a01); a11 = Vector512.FusedMultiplyAdd(x1, y, a11); a21 = Vector512.FusedMultiplyAdd(x2, y, a21);
                y = Vector512.LoadUnsafe(ref kt, (nuint)(2 * ks + c));
                a02 = Vector512.FusedMultiplyAdd(x0, y, a02); a12 = Vector512.FusedMultiplyAdd(x1, y, a12); a22 = Vector512.FusedMultiplyAdd(x2, y, a22);
                y = Vector512.LoadUnsafe(ref kt, (nuint)(3 * ks + c));
                a03 = Vector512.FusedMultiplyAdd(x0, y, a03); a13 = Vector512.FusedMultiplyAdd(x1, y, a13); a23 = Vector512.FusedMultiplyAdd(x2, y, a23);
                y = Vector512.LoadUnsafe(ref kt, (nuint)(4 * ks + c));
                a04 = Vector512.FusedMultiplyAdd(x0, y, a04); a14 = Vector512.FusedMultiplyAdd(x1, y, a14); a24 = Vector512.FusedMultiplyAdd(x2, y, a24);
                y = Vector512.LoadUnsafe(ref kt, (nuint)(5 * ks + c));
                a05 = Vector512.FusedMultiplyAdd(x0, y, a05); a15 = Vector512.FusedMultiplyAdd(x1, y, a15); a25 = Vector512.FusedMultiplyAdd(x2, y, a25);
                y = Vector512.LoadUnsafe(ref kt, (nuint)(6 * ks + c));
                a06 = Vector512.FusedMultiplyAdd(x0, y, a06); a16 = Vector512.FusedMultiplyAdd(x1, y, a16); a26 = Vector512.FusedMultiplyAdd(x2, y, a26);
                y = Vector512.LoadUnsafe(ref kt, (nuint)(7 * ks + c));
                a07 = Vector512.FusedMultiplyAdd(x0, y, a07); a17 = Vector512.FusedMultiplyAdd(x1, y, a17); a27 = Vector512.FusedMultiplyAdd(x2, y, a27);
            }
            var r0 = Sum8(a00, a01, a02, a03, a04, a05, a06, a07) * scale;
            r0.StoreUnsafe(ref Unsafe.Add(ref s0, t));
            m0 = Math.Max(m0, MaxLane(r0));
            var r1 = Sum8(a10, a11, a12, a13, a14, a15, a16, a17) * scale;
            r1.StoreUnsafe(ref Unsafe.Add(ref s1, t));
            m1 = Math.Max(m1, MaxLane(r1));
            var r2 = Sum8(a20, a21, a22, a23, a24, a25, a26, a27) * scale;
            r2.StoreUnsafe(ref Unsafe.Add(ref s2, t));
            m2 = Math.Max(m2, MaxLane(r2));
        }
        for (; t < n; t++)
        {
            ref float kt = ref Unsafe.Add(ref k, t * ks);
            float x0 = Dot(ref q0, ref kt, kw, 512) * scale, x1 = Dot(ref q1, ref kt, kw, 512) * scale, x2 = Dot(ref q2, ref kt, kw, 512) * scale;
            Unsafe.Add(ref s0, t) = x0;
            Unsafe.Add(ref s1, t) = x1;
            Unsafe.Add(ref s2, t) = x2;
            m0 = Math.Max(m0, x0);
            m1 = Math.Max(m1, x1);
            m2 = Math.Max(m2, x2);
        }
        return (m0, m1, m2);
    }

    /// <summary>
    /// <see cref="Accumulate"/> for three rows over the same values: o_r = o_r·alpha_r + Σ_t p_r[t]·v[t·vStride ..] for
    /// t &lt; count, over n output columns. Blocks of 128 columns (8 vectors × 3 rows) stay in registers while the
    /// values stream past; columns past the last multiple of 16 go through the one-row loop. At 512 bits here; other widths go to Accumulate3x256.
    /// </summary>
    private static void Accumulate3(ref float o0, ref float o1, ref float o2, float alpha0, float alpha1, float alpha2,
        ref float p0, ref float p1, ref float p2, int count, ref float v, int vStride, int n, int width)
    {
        if (width != 512)
        {
            Accumulate3x256(ref o0, ref o1, ref o2, alpha0, alpha1, alpha2, ref p0, ref p1, ref p2, count, ref v, vStride, n);
            return;
        }
        int c = 0;
        for (; c + 128 <= n; c += 128)
        {
            ref float c0 = ref Unsafe.Add(ref o0, c);
            ref float c1 = ref Unsafe.Add(ref o1, c);
            ref float c2 = ref Unsafe.Add(ref o2, c);
            ref float vc = ref Unsafe.Add(ref v, c);
            var a00 = Vector512.LoadUnsafe(ref c0) * alpha0; var a01 = Vector512.LoadUnsafe(ref c0, 16) * alpha0;
            var a02 = Vector512.LoadUnsafe(ref c0, 32) * alpha0; var a03 = Vector512.LoadUnsafe(ref c0, 48) * alpha0;
            var a04 = Vector512.LoadUnsafe(ref c0, 64) * alpha0; var a05 = Vector512.LoadUnsafe(ref c0, 80) * alpha0;
            var a06 = Vector512.LoadUnsafe(ref c0, 96) * alpha0; var a07 = Vector512.LoadUnsafe(ref c0, 112) * alpha0;
            var a10 = Vector512.LoadUnsafe(ref c1) * alpha1; var a11 = Vector512.LoadUnsafe(ref c1, 16) * alpha1;
            var a12 = Vector512.LoadUnsafe(ref c1, 32) * alpha1; var a13 = Vector512.LoadUnsafe(ref c1, 48) * alpha1;
            var a14 = Vector512.LoadUnsafe(ref c1, 64) * alpha1; var a15 = Vector512.LoadUnsafe(ref c1, 80) * alpha1;
            var a16 = Vector512.LoadUnsafe(ref c1, 96) * alpha1; var a17 = Vector512.LoadUnsafe(ref c1, 112) * alpha1;
            var a20 = Vector512.LoadUnsafe(ref c2) * alpha2; var a21 = Vector512.LoadUnsafe(ref c2, 16) * alpha2;
            var a22 = Vector512.LoadUnsafe(ref c2, 32) * alpha2; var a23 = Vector512.LoadUnsafe(ref c2, 48) * alpha2;
            var a24 = Vector512.LoadUnsafe(ref c2, 64) * alpha2; var a25 = Vector512.LoadUnsafe(ref c2, 80) * alpha2;
            var a26 = Vector512.LoadUnsafe(ref c2, 96) * alpha2; var a27 = Vector512.LoadUnsafe(ref c2, 112) * alpha2;
            for (int t = 0; t < count; t++)
            {
                ref float vt = ref Unsafe.Add(ref vc, t * vStride);
                var b0 = Vector512.Create(Unsafe.Add(ref p0, t));
                var b1 = Vector512.Create(Unsafe.Add(ref p1, t));
                var b2 = Vector512.Create(Unsafe.Add(ref p2, t));
                var y = Vector512.LoadUnsafe(ref vt);
                a00 = Vector512.FusedMultiplyAdd(y, b0, a00); a10 = Vector512.FusedMultiplyAdd(y, b1, a10); a20 = Vector512.FusedMultiplyAdd(y, b2, a20);
                y = Vector512.LoadUnsafe(ref vt, 16);
                a01 = Vector512.FusedMultiplyAdd(y, b0, a01); a11 = Vector512.FusedMultiplyAdd(y, b1, a11); a21 = Vector512.FusedMultiplyAdd(y, b2, a21);
                y = Vector512.LoadUnsafe(ref vt, 32);
                a02 = Vector512.FusedMultiplyAdd(y, b0, a02); a12 = Vector512.FusedMultiplyAdd(y, b1, a12); a22 = Vector512.FusedMultiplyAdd(y, b2, a22);
                y = Vector512.LoadUnsafe(ref vt, 48);
                a03 = Vector512.FusedMultiplyAdd(y, b0, a03); a13 = Vector512.FusedMultiplyAdd(y, b1, a13); a23 = Vector512.FusedMultiplyAdd(y, b2, a23);
                y = Vector512.LoadUnsafe(ref vt, 64);
                a04 = Vector512.FusedMultiplyAdd(y, b0, a04); a14 = Vector512.FusedMultiplyAdd(y, b1, a14); a24 = Vector512.FusedMultiplyAdd(y, b2, a24);
                y = Vector512.LoadUnsafe(ref vt, 80);
                a05 = Vector512.FusedMultiplyAdd(y, b0, a05); a15 = Vector512.FusedMultiplyAdd(y, b1, a15); a25 = Vector512.FusedMultiplyAdd(y, b2, a25);
                y = Vector512.LoadUnsafe(ref vt, 96);
                a06 = Vector512.FusedMultiplyAdd(y, b0, a06); a16 = Vector512.FusedMultiplyAdd(y, b1, a16); a26 = Vector512.FusedMultiplyAdd(y, b2, a26);
                y = Vector512.LoadUnsafe(ref vt, 112);
                a07 = Vector512.FusedMultiplyAdd(y, b0, a07); a17 = Vector512.FusedMultiplyAdd(y, b1, a17); a27 = Vector512.FusedMultiplyAdd(y, b2, a27);
            }
            a00.StoreUnsafe(ref c0); a01.StoreUnsafe(ref c0, 16); a02.StoreUnsafe(ref c0, 32); a03.StoreUnsafe(ref c0, 48);
            a04.StoreUnsafe(ref c0, 64); a05.StoreUnsafe(ref c0, 80); a06.StoreUnsafe(ref c0, 96); a07.StoreUnsafe(ref c0, 112);
            a10.StoreUnsafe(ref c1); a11.StoreUnsafe(ref c1, 16); a12.StoreUnsafe(ref c1, 32); a13.StoreUnsafe(ref c1, 48);
            a14.StoreUnsafe(ref c1, 64); a15.StoreUnsafe(ref c1, 80); a16.StoreUnsafe(ref c1, 96); a17.StoreUnsafe(ref c1, 112);
            a20.StoreUnsafe(ref c2); a21.StoreUnsafe(ref c2, 16); a22.StoreUnsafe(ref c2, 32); a23.StoreUnsafe(ref c2, 48);
            a24.StoreUnsafe(ref c2, 64); a25.StoreUnsafe(ref c2, 80); a26.StoreUnsafe(ref c2, 96); a27.StoreUnsafe(ref c2, 112);
        }
        for (; c + 16 <= n; c += 16)
        {
            var a0 = Vector512.LoadUnsafe(ref o0, (nuint)c) * alpha0;
            var a1 = Vector512.LoadUnsafe(ref o1, (nuint)c) * alpha1;
            var a2 = Vector512.LoadUnsafe(ref o2, (nuint)c) * alpha2;
            for (int t = 0; t < count; t++)
            {
                var y = Vector512.LoadUnsafe(ref v, (nuint)(t * vStride + c));
                a0 = Vector512.FusedMultiplyAdd(y, Vector512.Create(Unsafe.Add(ref p0, t)), a0);
                a1 = Vector512.FusedMultiplyAdd(y, Vector512.Create(Unsafe.Add(ref p1, t)), a1);
                a2 = Vector512.FusedMultiplyAdd(y, Vector512.Create(Unsafe.Add(ref p2, t)), a2);
            }
            a0.StoreUnsafe(ref o0, (nuint)c);
            a1.StoreUnsafe(ref o1, (nuint)c);
            a2.StoreUnsafe(ref o2, (nuint)c);
        }
        if (c == n) return;
        // The last columns (fewer than 16): the one-row loop on the rest of each row treats them as it would the whole row.
        Accumulate(ref Unsafe.Add(ref o0, c), alpha0, MemoryMarshal.CreateReadOnlySpan(ref p0, count), ref Unsafe.Add(ref v, c), vStride, n - c, 512);
        Accumulate(ref Unsafe.Add(ref o1, c), alpha1, MemoryMarshal.CreateReadOnlySpan(ref p1, count), ref Unsafe.Add(ref v, c), vStride, n - c, 512);
        Accumulate(ref Unsafe.Add(ref o2, c), alpha2, MemoryMarshal.CreateReadOnlySpan(ref p2, count), ref Unsafe.Add(ref v, c), vStride, n - c, 512);
    }
}
