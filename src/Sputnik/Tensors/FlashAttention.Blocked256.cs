using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors;

// The register-blocked loops of FlashAttention.Blocked.cs at 256 bits (AVX2 CPUs: 16 registers). Three query rows
// still go together, over 4 keys (q·k) or 32 output columns (p·v) at a time: 12 accumulators, the rest for the rows'
// operands. One row at a time, a 64-position tile of 128-wide float keys or values (32 KiB) fills a 32 KiB L1 and
// every row read it again from L2 (one 256-bit load a multiply-add); three rows share each load. A (row, key) score
// and every output element see the one-row loops' operations in their order (a key's dot product: one accumulator
// over the columns, then Vector256.Sum's tree), so blocking changes no bit.
internal static partial class FlashAttention
{
    /// <summary><see cref="Scores3"/> at 256 bits (kw a multiple of 8).</summary>
    private static (float, float, float) Scores3x256(ref float q0, ref float q1, ref float q2, ref float k, int ks, int kw, int n, float scale,
        ref float s0, ref float s1, ref float s2)
    {
        float m0 = float.NegativeInfinity, m1 = m0, m2 = m0;
        int t = 0;
        for (; t + 4 <= n; t += 4)
        {
            ref float k0 = ref Unsafe.Add(ref k, t * ks);
            ref float k1 = ref Unsafe.Add(ref k0, ks);
            ref float k2 = ref Unsafe.Add(ref k1, ks);
            ref float k3 = ref Unsafe.Add(ref k2, ks);
            Vector256<float> a00 = default, a01 = default, a02 = default, a03 = default;
            Vector256<float> a10 = default, a11 = default, a12 = default, a13 = default;
            Vector256<float> a20 = default, a21 = default, a22 = default, a23 = default;
            for (nuint c = 0; c < (nuint)kw; c += 8)
            {
                var x0 = Vector256.LoadUnsafe(ref q0, c);
                var x1 = Vector256.LoadUnsafe(ref q1, c);
                var x2 = Vector256.LoadUnsafe(ref q2, c);
                var y = Vector256.LoadUnsafe(ref k0, c);
                a00 = Vector256.FusedMultiplyAdd(x0, y, a00); a10 = Vector256.FusedMultiplyAdd(x1, y, a10); a20 = Vector256.FusedMultiplyAdd(x2, y, a20);
                y = Vector256.LoadUnsafe(ref k1, c);
                a01 = Vector256.FusedMultiplyAdd(x0, y, a01); a11 = Vector256.FusedMultiplyAdd(x1, y, a11); a21 = Vector256.FusedMultiplyAdd(x2, y, a21);
                y = Vector256.LoadUnsafe(ref k2, c);
                a02 = Vector256.FusedMultiplyAdd(x0, y, a02); a12 = Vector256.FusedMultiplyAdd(x1, y, a12); a22 = Vector256.FusedMultiplyAdd(x2, y, a22);
                y = Vector256.LoadUnsafe(ref k3, c);
                a03 = Vector256.FusedMultiplyAdd(x0, y, a03); a13 = Vector256.FusedMultiplyAdd(x1, y, a13); a23 = Vector256.FusedMultiplyAdd(x2, y, a23);
            }
            var r0 = Sum4(a00, a01, a02, a03) * scale;
            r0.StoreUnsafe(ref Unsafe.Add(ref s0, t));
            m0 = Math.Max(m0, MaxLane(r0));
            var r1 = Sum4(a10, a11, a12, a13) * scale;
            r1.StoreUnsafe(ref Unsafe.Add(ref s1, t));
            m1 = Math.Max(m1, MaxLane(r1));
            var r2 = Sum4(a20, a21, a22, a23) * scale;
            r2.StoreUnsafe(ref Unsafe.Add(ref s2, t));
            m2 = Math.Max(m2, MaxLane(r2));
        }
        for (; t < n; t++)
        {
            ref float kt = ref Unsafe.Add(ref k, t * ks);
            float x0 = Dot(ref q0, ref kt, kw, 256) * scale, x1 = Dot(ref q1, ref kt, kw, 256) * scale, x2 = Dot(ref q2, ref kt, kw, 256) * scale;
            Unsafe.Add(ref s0, t) = x0;
            Unsafe.Add(ref s1, t) = x1;
            Unsafe.Add(ref s2, t) = x2;
            m0 = Math.Max(m0, x0);
            m1 = Math.Max(m1, x1);
            m2 = Math.Max(m2, x2);
        }
        return (m0, m1, m2);
    }

    /// <summary><see cref="Accumulate3"/> at 256 bits: blocks of 32 columns (4 vectors × 3 rows), then of 8, then the one-row loop.</summary>
    private static void Accumulate3x256(ref float o0, ref float o1, ref float o2, float alpha0, float alpha1, float alpha2,
        ref float p0, ref float p1, ref float p2, int count, ref float v, int vStride, int n)
    {
        int c = 0;
        for (; c + 32 <= n; c += 32)
        {
            ref float c0 = ref Unsafe.Add(ref o0, c);
            ref float c1 = ref Unsafe.Add(ref o1, c);
            ref float c2 = ref Unsafe.Add(ref o2, c);
            ref float vc = ref Unsafe.Add(ref v, c);
            var a00 = Vector256.LoadUnsafe(ref c0) * alpha0; var a01 = Vector256.LoadUnsafe(ref c0, 8) * alpha0;
            var a02 = Vector256.LoadUnsafe(ref c0, 16) * alpha0; var a03 = Vector256.LoadUnsafe(ref c0, 24) * alpha0;
            var a10 = Vector256.LoadUnsafe(ref c1) * alpha1; var a11 = Vector256.LoadUnsafe(ref c1, 8) * alpha1;
            var a12 = Vector256.LoadUnsafe(ref c1, 16) * alpha1; var a13 = Vector256.LoadUnsafe(ref c1, 24) * alpha1;
            var a20 = Vector256.LoadUnsafe(ref c2) * alpha2; var a21 = Vector256.LoadUnsafe(ref c2, 8) * alpha2;
            var a22 = Vector256.LoadUnsafe(ref c2, 16) * alpha2; var a23 = Vector256.LoadUnsafe(ref c2, 24) * alpha2;
            for (int t = 0; t < count; t++)
            {
                ref float vt = ref Unsafe.Add(ref vc, t * vStride);
                var b0 = Vector256.Create(Unsafe.Add(ref p0, t));
                var b1 = Vector256.Create(Unsafe.Add(ref p1, t));
                var b2 = Vector256.Create(Unsafe.Add(ref p2, t));
                var y = Vector256.LoadUnsafe(ref vt);
                a00 = Vector256.FusedMultiplyAdd(y, b0, a00); a10 = Vector256.FusedMultiplyAdd(y, b1, a10); a20 = Vector256.FusedMultiplyAdd(y, b2, a20);
                y = Vector256.LoadUnsafe(ref vt, 8);
                a01 = Vector256.FusedMultiplyAdd(y, b0, a01); a11 = Vector256.FusedMultiplyAdd(y, b1, a11); a21 = Vector256.FusedMultiplyAdd(y, b2, a21);
                y = Vector256.LoadUnsafe(ref vt, 16);
                a02 = Vector256.FusedMultiplyAdd(y, b0, a02); a12 = Vector256.FusedMultiplyAdd(y, b1, a12); a22 = Vector256.FusedMultiplyAdd(y, b2, a22);
                y = Vector256.LoadUnsafe(ref vt, 24);
                a03 = Vector256.FusedMultiplyAdd(y, b0, a03); a13 = Vector256.FusedMultiplyAdd(y, b1, a13); a23 = Vector256.FusedMultiplyAdd(y, b2, a23);
            }
            a00.StoreUnsafe(ref c0); a01.StoreUnsafe(ref c0, 8); a02.StoreUnsafe(ref c0, 16); a03.StoreUnsafe(ref c0, 24);
            a10.StoreUnsafe(ref c1); a11.StoreUnsafe(ref c1, 8); a12.StoreUnsafe(ref c1, 16); a13.StoreUnsafe(ref c1, 24);
            a20.StoreUnsafe(ref c2); a21.StoreUnsafe(ref c2, 8); a22.StoreUnsafe(ref c2, 16); a23.StoreUnsafe(ref c2, 24);
        }
        for (; c + 8 <= n; c += 8)
        {
            var a0 = Vector256.LoadUnsafe(ref o0, (nuint)c) * alpha0;
            var a1 = Vector256.LoadUnsafe(ref o1, (nuint)c) * alpha1;
            var a2 = Vector256.LoadUnsafe(ref o2, (nuint)c) * alpha2;
            for (int t = 0; t < count; t++)
            {
                var y = Vector256.LoadUnsafe(ref v, (nuint)(t * vStride + c));
                a0 = Vector256.FusedMultiplyAdd(y, Vector256.Create(Unsafe.Add(ref p0, t)), a0);
                a1 = Vector256.FusedMultiplyAdd(y, Vector256.Create(Unsafe.Add(ref p1, t)), a1);
                a2 = Vector256.FusedMultiplyAdd(y, Vector256.Create(Unsafe.Add(ref p2, t)), a2);
            }
            a0.StoreUnsafe(ref o0, (nuint)c);
            a1.StoreUnsafe(ref o1, (nuint)c);
            a2.StoreUnsafe(ref o2, (nuint)c);
        }
        if (c == n) return;
        // The last columns (fewer than 8): the one-row loop on the rest of each row treats them as it would the whole row.
        Accumulate(ref Unsafe.Add(ref o0, c), alpha0, MemoryMarshal.CreateReadOnlySpan(ref p0, count), ref Unsafe.Add(ref v, c), vStride, n - c, 256);
        Accumulate(ref Unsafe.Add(ref o1, c), alpha1, MemoryMarshal.CreateReadOnlySpan(ref p1, count), ref Unsafe.Add(ref v, c), vStride, n - c, 256);
        Accumulate(ref Unsafe.Add(ref o2, c), alpha2, MemoryMarshal.CreateReadOnlySpan(ref p2, count), ref Unsafe.Add(ref v, c), vStride, n - c, 256);
    }
}
