using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// The AVX2 kernels over the same group layout, for CPUs without AVX-512 (AMD Zen 2/3, Intel client cores). A 64-byte
/// slot is two 256-bit halves, rows 0–7 and 8–15; each half is computed as the 512-bit kernel computes those lanes
/// (the same 16-bit sums, the same vpmaddwd by the scales, the same float steps per row), so both paths give the
/// same bits. Against the file-layout AVX2 kernel (one row and token at a time) this shares each weight's unpacking
/// among four tokens, applies eight rows' scales in one vpmaddwd, and ends no row in a horizontal sum.
/// </summary>
internal sealed unsafe partial class Q4KInterleaved
{
    /// <summary>The 256-bit <see cref="Patterns"/> (the same lane, twice), built per call.</summary>
    private readonly struct Patterns256
    {
        public readonly Vector256<byte> Sc0, Sc1, Sc2, Sc3, Mn0, Mn2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Patterns256()
        {
            Sc0 = Interleaving.Lanes256(ScalePattern(0)); Sc1 = Interleaving.Lanes256(ScalePattern(1)); Sc2 = Interleaving.Lanes256(ScalePattern(2)); Sc3 = Interleaving.Lanes256(ScalePattern(3));
            Mn0 = Interleaving.Lanes256(MinPattern(0)); Mn2 = Interleaving.Lanes256(MinPattern(2));
        }
    }

    /// <summary>
    /// The 6-bit scales and mins of sub-blocks 2c, 2c + 1 of the 8 rows of <paramref name="half"/>, shuffled into the
    /// 16-bit pairs Fold takes (see the 512-bit <c>Scales</c>). Read again for each pair: kept in
    /// registers across a whole block they left too few of the 16 for the slot loop, and the JIT spilled it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void PairScales(in Patterns256 p, byte* o, int half, int c, out Vector256<short> sA, out Vector256<short> sB, out Vector256<short> mins)
    {
        var u0 = Vector256.Load((uint*)(o + 64 + 32 * half));
        var u1 = Vector256.Load((uint*)(o + 128 + 32 * half));
        var k6 = Vector256.Create(0x3F3F3F3Fu);
        Vector256<byte> s, m;
        if (c < 2)
        {
            s = (u0 & k6).AsByte();
            m = (u1 & k6).AsByte();
        }
        else
        {
            var u2 = Vector256.Load((uint*)(o + 192 + 32 * half));
            var k4 = Vector256.Create(0x0F0F0F0Fu);
            var k2 = Vector256.Create(0x03030303u);
            s = ((u2 & k4) | (((u0 >> 6) & k2) << 4)).AsByte();
            m = (((u2 >> 4) & k4) | (((u1 >> 6) & k2) << 4)).AsByte();
        }
        bool first = (c & 1) == 0;
        sA = Avx2.Shuffle(s, first ? p.Sc0 : p.Sc2).AsInt16();
        sB = Avx2.Shuffle(s, first ? p.Sc1 : p.Sc3).AsInt16();
        mins = Avx2.Shuffle(m, first ? p.Mn0 : p.Mn2).AsInt16();
    }

    /// <summary>Per-32 sums of the Q8_K activation as 16-bit pairs: int32 lane c holds (B[2c], B[2c+1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> BlockSums128(byte* a)
    {
        short* bs = (short*)(a + KQuants.Q8KBsumsOffset);
        return Ssse3.HorizontalAdd(Vector128.Load(bs), Vector128.Load(bs + 8)).AsInt32();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector256<byte> lo, Vector256<byte> hi, byte* x, int k, ref Vector256<short> acc0, ref Vector256<short> acc1)
    {
        acc0 += Avx2.MultiplyAddAdjacent(lo, Vector256.Create(*(int*)(x + 4 * k)).AsSByte());
        acc1 += Avx2.MultiplyAddAdjacent(hi, Vector256.Create(*(int*)(x + 32 + 4 * k)).AsSByte());
    }

    /// <summary>Slot k of one half (q: that half's 32 bytes of slot 0 of the pair), one token.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Slot1(byte* q, byte* x, int k, Vector256<byte> m4, ref Vector256<short> acc0, ref Vector256<short> acc1)
    {
        var v = Vector256.Load(q + 64 * k);
        Step(v & m4, (v.AsUInt16() >> 4).AsByte() & m4, x, k, ref acc0, ref acc1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fold(Vector256<short> acc0, Vector256<short> acc1, Vector256<short> sA, Vector256<short> sB, Vector256<short> mins,
        Vector128<int> bsums, int c, ref Vector256<int> isum, ref Vector256<int> msum)
    {
        isum += Avx2.MultiplyAddAdjacent(acc0, sA) + Avx2.MultiplyAddAdjacent(acc1, sB);
        var pair = c switch { 0 => bsums, 1 => Sse2.Shuffle(bsums, 0x55), 2 => Sse2.Shuffle(bsums, 0xAA), _ => Sse2.Shuffle(bsums, 0xFF) };
        msum += Avx2.MultiplyAddAdjacent(mins, Avx2.BroadcastScalarToVector256(pair).AsInt16());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<int> isum, Vector256<int> msum, Vector256<float> d, Vector256<float> dmin, byte* a, Vector256<float> acc)
    {
        var dx = Vector256.Create(*(float*)a);
        acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum), d * dx, acc);
        return Fma.MultiplyAddNegated(Avx.ConvertToVector256Single(msum), dmin * dx, acc);
    }

    /// <summary>The rows' d and dmin of <paramref name="half"/> as floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void BlockScales(byte* w, int half, out Vector256<float> d, out Vector256<float> dmin)
    {
        d = FloatConvert.HalfToFloat256(Vector128.Load((ushort*)w + 8 * half));
        dmin = FloatConvert.HalfToFloat256(Vector128.Load((ushort*)(w + 32) + 8 * half));
    }

    /// <summary>Sub-block pair c of one token, one half (slots written out, as in the 512-bit <c>Pair1</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pair1(in Patterns256 pat, byte* w, byte* a, int half, int c, Vector256<byte> m4,
        Vector128<int> bsums, ref Vector256<int> isum, ref Vector256<int> msum)
    {
        byte* q = w + QsOffset + 512 * c + 32 * half;
        byte* x = a + 4 + 64 * c;
        var acc0 = Vector256<short>.Zero;
        var acc1 = Vector256<short>.Zero;
        Slot1(q, x, 0, m4, ref acc0, ref acc1);
        Slot1(q, x, 1, m4, ref acc0, ref acc1);
        Slot1(q, x, 2, m4, ref acc0, ref acc1);
        Slot1(q, x, 3, m4, ref acc0, ref acc1);
        Slot1(q, x, 4, m4, ref acc0, ref acc1);
        Slot1(q, x, 5, m4, ref acc0, ref acc1);
        Slot1(q, x, 6, m4, ref acc0, ref acc1);
        Slot1(q, x, 7, m4, ref acc0, ref acc1);
        PairScales(pat, w, half, c, out var sA, out var sB, out var mins);
        Fold(acc0, acc1, sA, sB, mins, bsums, c, ref isum, ref msum);
    }

    /// <summary>
    /// One half of one super-block, one token. The next block's lines are requested in four parts, two per half,
    /// before a pair's work (as the 512-bit kernel does: not 36 requests at once). Not inlined: both halves in one
    /// method went past the JIT's inlining budget, which left helpers as calls and most vectors on the stack.
    /// </summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector256<float> Half1(in Patterns256 pat, byte* w, byte* a, int half, Vector256<byte> m4, Vector128<int> bsums, byte* ahead, Vector256<float> acc)
    {
        if (Prefetch.Enabled) Prefetch.Part(ahead, GroupBlockBytes, 2 * half, 4);
        var isum = Vector256<int>.Zero;
        var msum = Vector256<int>.Zero;
        Pair1(pat, w, a, half, 0, m4, bsums, ref isum, ref msum);
        Pair1(pat, w, a, half, 1, m4, bsums, ref isum, ref msum);
        if (Prefetch.Enabled) Prefetch.Part(ahead, GroupBlockBytes, 2 * half + 1, 4);
        Pair1(pat, w, a, half, 2, m4, bsums, ref isum, ref msum);
        Pair1(pat, w, a, half, 3, m4, bsums, ref isum, ref msum);
        BlockScales(w, half, out var d, out var dmin);
        return Finish(isum, msum, d, dmin, a, acc);
    }

    internal static void Group1Avx2(byte* w, int nb, byte* a, float* y)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var m4 = Vector256.Create((byte)0x0F);
        var pat = new Patterns256();
        Vector256<float> lo = default, hi = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a += Q8K)
        {
            var bsums = BlockSums128(a);
            lo = Half1(pat, w, a, 0, m4, bsums, w + ahead, lo);
            hi = Half1(pat, w, a, 1, m4, bsums, w + ahead, hi);
        }
        lo.Store(y);
        hi.Store(y + 8);
    }

    /// <summary>The 16-bit sums of one sub-block pair, one half, four tokens.</summary>
    private struct Sums4x8
    {
        public Vector256<short> P0, Q0, P1, Q1, P2, Q2, P3, Q3;
    }

    /// <summary>The integer and min sums of four tokens over one super-block, one half, and the tokens' block sums.</summary>
    private struct Ints4x8
    {
        public Vector256<int> I0, I1, I2, I3, N0, N1, N2, N3;
        public Vector128<int> B0, B1, B2, B3; // BlockSums128 of each token, once per super-block
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Slot4(byte* q, byte* x0, byte* x1, byte* x2, byte* x3, int k, Vector256<byte> m4, ref Sums4x8 s)
    {
        var v = Vector256.Load(q + 64 * k);
        var lo = v & m4;
        var hi = (v.AsUInt16() >> 4).AsByte() & m4;
        Step(lo, hi, x0, k, ref s.P0, ref s.Q0);
        Step(lo, hi, x1, k, ref s.P1, ref s.Q1);
        Step(lo, hi, x2, k, ref s.P2, ref s.Q2);
        Step(lo, hi, x3, k, ref s.P3, ref s.Q3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pair4(in Patterns256 pat, byte* w, byte* a0, byte* a1, byte* a2, byte* a3, int half, int c, Vector256<byte> m4, Ints4x8* t)
    {
        byte* q = w + QsOffset + 512 * c + 32 * half;
        int xo = 4 + 64 * c;
        byte* x0 = a0 + xo, x1 = a1 + xo, x2 = a2 + xo, x3 = a3 + xo;
        var sums = default(Sums4x8);
        Slot4(q, x0, x1, x2, x3, 0, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 1, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 2, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 3, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 4, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 5, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 6, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 7, m4, ref sums);
        PairScales(pat, w, half, c, out var sA, out var sB, out var mins);
        Fold(sums.P0, sums.Q0, sA, sB, mins, t->B0, c, ref t->I0, ref t->N0);
        Fold(sums.P1, sums.Q1, sA, sB, mins, t->B1, c, ref t->I1, ref t->N1);
        Fold(sums.P2, sums.Q2, sA, sB, mins, t->B2, c, ref t->I2, ref t->N2);
        Fold(sums.P3, sums.Q3, sA, sB, mins, t->B3, c, ref t->I3, ref t->N3);
    }

    /// <summary>One half of one super-block, four tokens (not inlined, as <see cref="Half1"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Half4(in Patterns256 pat, byte* w, byte* a0, byte* a1, byte* a2, byte* a3, int half, Vector256<byte> m4, ref Interleaving.Floats4x8 f, Ints4x8* t)
    {
        (t->I0, t->I1, t->I2, t->I3, t->N0, t->N1, t->N2, t->N3) = (default, default, default, default, default, default, default, default);
        Pair4(pat, w, a0, a1, a2, a3, half, 0, m4, t);
        Pair4(pat, w, a0, a1, a2, a3, half, 1, m4, t);
        Pair4(pat, w, a0, a1, a2, a3, half, 2, m4, t);
        Pair4(pat, w, a0, a1, a2, a3, half, 3, m4, t);
        BlockScales(w, half, out var d, out var dmin);
        f.F0 = Finish(t->I0, t->N0, d, dmin, a0, f.F0);
        f.F1 = Finish(t->I1, t->N1, d, dmin, a1, f.F1);
        f.F2 = Finish(t->I2, t->N2, d, dmin, a2, f.F2);
        f.F3 = Finish(t->I3, t->N3, d, dmin, a3, f.F3);
    }

    internal static void Group4Avx2(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var m4 = Vector256.Create((byte)0x0F);
        var pat = new Patterns256();
        Interleaving.Floats4x8 lo = default, hi = default;
        // The integer sums live in memory, written through a pointer (kept in registers across a block's four pairs,
        // they left too few of the 16 for the slot loop, and the JIT spilled its sums instead).
        Ints4x8 ints;
        byte* a0 = a, a1 = a + aStride, a2 = a + 2 * aStride, a3 = a + 3 * aStride;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a0 += Q8K, a1 += Q8K, a2 += Q8K, a3 += Q8K)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            (ints.B0, ints.B1, ints.B2, ints.B3) = (BlockSums128(a0), BlockSums128(a1), BlockSums128(a2), BlockSums128(a3));
            Half4(pat, w, a0, a1, a2, a3, 0, m4, ref lo, &ints);
            Half4(pat, w, a0, a1, a2, a3, 1, m4, ref hi, &ints);
        }
        Interleaving.Floats4x8.Store(lo, hi, y, ldy);
    }
}
