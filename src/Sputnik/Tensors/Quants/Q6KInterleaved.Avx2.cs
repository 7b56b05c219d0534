using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// The AVX2 kernels over the same group layout (see <c>Q4KInterleaved.Avx2.cs</c>): each 64-byte field is two
/// 256-bit halves, rows 0–7 and 8–15, computed as the 512-bit kernel computes those lanes, so both paths give the
/// same bits. With 16 registers instead of 32, a unit of work is one quarter (4 weights of a sub-block) of two slot
/// groups: its two weight vectors are unpacked from L1 as they are needed and its scale read again, rather than
/// all eight weight vectors and four scales kept live, which would leave no registers for the sums.
/// </summary>
internal sealed unsafe partial class Q6KInterleaved
{
    /// <summary>The 256-bit <see cref="Patterns"/> (the same lane, twice), built per call.</summary>
    private readonly struct Patterns256
    {
        public readonly Vector256<byte> P0, P1, P2, P3, Pp0, Pp2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Patterns256()
        {
            P0 = Interleaving.Lanes256(SinglePattern(0)); P1 = Interleaving.Lanes256(SinglePattern(1)); P2 = Interleaving.Lanes256(SinglePattern(2)); P3 = Interleaving.Lanes256(SinglePattern(3));
            Pp0 = Interleaving.Lanes256(PairPattern(0)); Pp2 = Interleaving.Lanes256(PairPattern(2));
        }
    }

    /// <summary>The scale of quarter i of sub-blocks 8n + hq + 2i for the 8 rows of <paramref name="half"/>, as (s, s) pairs (the 512-bit <c>Scales</c>, one of its four).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Scale(in Patterns256 p, byte* o, int half, int n, int hq, int i)
    {
        var v = Vector256.Load(o + ScalesOffset + 128 * n + 64 * (i >> 1) + 32 * half);
        var pattern = (i & 1) == 0 ? (hq == 0 ? p.P0 : p.P1) : (hq == 0 ? p.P2 : p.P3);
        return Avx2.ShiftRightArithmetic(Avx2.Shuffle(v, pattern).AsInt16(), 8);
    }

    /// <summary>Quarter i's 6-bit weights of one slot group, one half (q: that half's bytes of the group's first slot); the 512-bit <c>Unpack</c>, one of its four.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> Quarter(byte* q, int i)
    {
        var low = Vector256.Create((byte)0x0F);
        var ql = Vector256.Load(q + 64 * (i & 1));
        var h = Vector256.Load(q + 128).AsUInt16();
        var l = i < 2 ? ql & low : (ql.AsUInt16() >> 4).AsByte() & low;
        var hi = i switch { 0 => h << 4, 1 => h << 2, 2 => h, _ => h >> 2 };
        return l | (hi.AsByte() & Vector256.Create((byte)0x30));
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> Mul(Vector256<byte> w, byte* x) => Avx2.MultiplyAddAdjacent(w, Vector256.Create(*(int*)x).AsSByte());

    /// <summary>Quarter i of slot groups k, k + 1 (at q, q + 192) for one token (x: its activation of weight 128n + 4k).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unit1(byte* q, byte* x, int i, Vector256<short> s, ref Vector256<int> isum)
    {
        var wa = Quarter(q, i);
        var wb = Quarter(q + 192, i);
        isum += Avx2.MultiplyAddAdjacent(Mul(wa, x + 32 * i) + Mul(wb, x + 32 * i + 4), s);
    }

    /// <summary>Half n, quarter-offset hq of one token, one row half: slot-group pairs k = 4hq and 4hq + 2, all four quarters.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quarter1(in Patterns256 pat, byte* w, byte* a, int half, int n, int hq, ref Vector256<int> isum)
    {
        for (int p = 0; p < 2; p++)
        {
            int k = 4 * hq + 2 * p;
            byte* q = w + QsOffset + 192 * (8 * n + k) + 32 * half;
            byte* x = a + 4 + 128 * n + 4 * k;
            Unit1(q, x, 0, Scale(pat, w, half, n, hq, 0), ref isum);
            Unit1(q, x, 1, Scale(pat, w, half, n, hq, 1), ref isum);
            Unit1(q, x, 2, Scale(pat, w, half, n, hq, 2), ref isum);
            Unit1(q, x, 3, Scale(pat, w, half, n, hq, 3), ref isum);
        }
    }

    /// <summary>The offset term's scale pairs of the 8 rows of <paramref name="half"/>: (s_4m, s_4m+1) in l, (s_4m+2, s_4m+3) in h.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void OffsetPairs(in Patterns256 p, byte* o, int half, int m, out Vector256<short> l, out Vector256<short> h)
    {
        var v = Vector256.Load(o + ScalesOffset + 64 * m + 32 * half);
        l = Avx2.ShiftRightArithmetic(Avx2.Shuffle(v, p.Pp0).AsInt16(), 8);
        h = Avx2.ShiftRightArithmetic(Avx2.Shuffle(v, p.Pp2).AsInt16(), 8);
    }

    /// <summary>One token's part of the offset term for scale word m: its block sums 4m..4m+3, broadcast from memory.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> OffsetPart(Vector256<short> l, Vector256<short> h, byte* a, int m)
    {
        int* b = (int*)(a + KQuants.Q8KBsumsOffset);
        return Avx2.MultiplyAddAdjacent(l, Vector256.Create(b[2 * m]).AsInt16()) + Avx2.MultiplyAddAdjacent(h, Vector256.Create(b[2 * m + 1]).AsInt16());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Finish(Vector256<int> isum, Vector256<int> offsets, Vector256<float> d, byte* a, Vector256<float> acc) =>
        Fma.MultiplyAdd(Avx.ConvertToVector256Single(isum - (offsets << 5)), d * Vector256.Create(*(float*)a), acc);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> RowScales(byte* w, int half) => FloatConvert.HalfToFloat256(Vector128.Load((ushort*)w + 8 * half));

    /// <summary>One row half of one super-block, one token; the next block's lines requested in two parts per half. Not inlined (the JIT's budget; see Q4KInterleaved.Half1).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static Vector256<float> Half1(in Patterns256 pat, byte* w, byte* a, int half, byte* ahead, Vector256<float> acc)
    {
        var isum = Vector256<int>.Zero;
        if (Prefetch.Enabled) Prefetch.Part(ahead, GroupBlockBytes, 2 * half, 4);
        Quarter1(pat, w, a, half, 0, 0, ref isum);
        Quarter1(pat, w, a, half, 0, 1, ref isum);
        if (Prefetch.Enabled) Prefetch.Part(ahead, GroupBlockBytes, 2 * half + 1, 4);
        Quarter1(pat, w, a, half, 1, 0, ref isum);
        Quarter1(pat, w, a, half, 1, 1, ref isum);
        var offsets = Vector256<int>.Zero;
        for (int m = 0; m < 4; m++)
        {
            OffsetPairs(pat, w, half, m, out var l, out var h);
            offsets += OffsetPart(l, h, a, m);
        }
        return Finish(isum, offsets, RowScales(w, half), a, acc);
    }

    internal static void Group1Avx2(byte* w, int nb, byte* a, float* y)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var pat = new Patterns256();
        Vector256<float> lo = default, hi = default;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a += Q8K)
        {
            lo = Half1(pat, w, a, 0, w + ahead, lo);
            hi = Half1(pat, w, a, 1, w + ahead, hi);
        }
        lo.Store(y);
        hi.Store(y + 8);
    }

    /// <summary>The four tokens' integer sums of one row half.</summary>
    private struct Ints4x8
    {
        public Vector256<int> I0, I1, I2, I3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unit4(byte* q, byte* x0, byte* x1, byte* x2, byte* x3, int i, Vector256<short> s, ref Ints4x8 t)
    {
        var wa = Quarter(q, i);
        var wb = Quarter(q + 192, i);
        int o = 32 * i;
        t.I0 += Avx2.MultiplyAddAdjacent(Mul(wa, x0 + o) + Mul(wb, x0 + o + 4), s);
        t.I1 += Avx2.MultiplyAddAdjacent(Mul(wa, x1 + o) + Mul(wb, x1 + o + 4), s);
        t.I2 += Avx2.MultiplyAddAdjacent(Mul(wa, x2 + o) + Mul(wb, x2 + o + 4), s);
        t.I3 += Avx2.MultiplyAddAdjacent(Mul(wa, x3 + o) + Mul(wb, x3 + o + 4), s);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quarter4(in Patterns256 pat, byte* w, byte* a0, byte* a1, byte* a2, byte* a3, int half, int n, int hq, ref Ints4x8 t)
    {
        for (int p = 0; p < 2; p++)
        {
            int k = 4 * hq + 2 * p;
            byte* q = w + QsOffset + 192 * (8 * n + k) + 32 * half;
            int xo = 4 + 128 * n + 4 * k;
            byte* x0 = a0 + xo, x1 = a1 + xo, x2 = a2 + xo, x3 = a3 + xo;
            Unit4(q, x0, x1, x2, x3, 0, Scale(pat, w, half, n, hq, 0), ref t);
            Unit4(q, x0, x1, x2, x3, 1, Scale(pat, w, half, n, hq, 1), ref t);
            Unit4(q, x0, x1, x2, x3, 2, Scale(pat, w, half, n, hq, 2), ref t);
            Unit4(q, x0, x1, x2, x3, 3, Scale(pat, w, half, n, hq, 3), ref t);
        }
    }

    /// <summary>One row half of one super-block, four tokens (not inlined, as <see cref="Half1"/>).</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Half4(in Patterns256 pat, byte* w, byte* a0, byte* a1, byte* a2, byte* a3, int half, ref Interleaving.Floats4x8 f)
    {
        var t = default(Ints4x8);
        Quarter4(pat, w, a0, a1, a2, a3, half, 0, 0, ref t);
        Quarter4(pat, w, a0, a1, a2, a3, half, 0, 1, ref t);
        Quarter4(pat, w, a0, a1, a2, a3, half, 1, 0, ref t);
        Quarter4(pat, w, a0, a1, a2, a3, half, 1, 1, ref t);
        var o = default(Ints4x8);
        for (int m = 0; m < 4; m++)
        {
            OffsetPairs(pat, w, half, m, out var l, out var h);
            o.I0 += OffsetPart(l, h, a0, m);
            o.I1 += OffsetPart(l, h, a1, m);
            o.I2 += OffsetPart(l, h, a2, m);
            o.I3 += OffsetPart(l, h, a3, m);
        }
        var d = RowScales(w, half);
        f.F0 = Finish(t.I0, o.I0, d, a0, f.F0);
        f.F1 = Finish(t.I1, o.I1, d, a1, f.F1);
        f.F2 = Finish(t.I2, o.I2, d, a2, f.F2);
        f.F3 = Finish(t.I3, o.I3, d, a3, f.F3);
    }

    internal static void Group4Avx2(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var pat = new Patterns256();
        Interleaving.Floats4x8 lo = default, hi = default;
        byte* a0 = a, a1 = a + aStride, a2 = a + 2 * aStride, a3 = a + 3 * aStride;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a0 += Q8K, a1 += Q8K, a2 += Q8K, a3 += Q8K)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            Half4(pat, w, a0, a1, a2, a3, 0, ref lo);
            Half4(pat, w, a0, a1, a2, a3, 1, ref hi);
        }
        Interleaving.Floats4x8.Store(lo, hi, y, ldy);
    }
}
