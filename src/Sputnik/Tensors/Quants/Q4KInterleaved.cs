using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Q4_K weights re-laid at load time so 16 rows are processed together (the same bytes, permuted; no extra memory).
/// In the file layout one 512-bit multiply covers 64 weights of a single row and every 32 of them need their own
/// scale multiply (vpmaddubsw then vpmaddwd per sub-block). Interleaved, a 64-byte load holds 4 weights × 2
/// sub-blocks of 16 rows, eight vpmaddubsw results of one sub-block are summed as 16-bit integers (they cannot
/// overflow: 8 × 2 × 15 × 128 = 30,720), and one vpmaddwd applies the 16 rows' scales at once: about half the
/// multiply µops and instructions per weight, for decode (memory-bound, but near the per-core instruction limit)
/// and prefill (multiply-bound) alike.
/// </summary>
/// <remarks>
/// Group g (rows 16g..16g+15), super-block b, at byte (g·nb + b)·2304:
/// <c>d[16]</c> and <c>dmin[16]</c> (halves), the three 32-bit words of each row's packed 6-bit scales/mins
/// (<c>u0[16]</c>, <c>u1[16]</c>, <c>u2[16]</c>), then 32 slots of 64 bytes: slot 8c+k holds, for each row, the
/// file's quant bytes 32c+4k..32c+4k+3 (low nibbles: sub-block 2c weights 4k..4k+3; high: sub-block 2c+1).
/// </remarks>
internal sealed unsafe partial class Q4KInterleaved : IGroupKernel
{
    private Q4KInterleaved() { }

    private const int GroupBlockBytes = Interleaving.Rows * 144;
    private const int Q8K = 292;
    private const int QsOffset = 256;

    /// <summary>The fields of a file block in the order the group block stores them, 16 rows of each (see remarks).</summary>
    public static readonly Interleaving.Field[] Layout =
    [
        new(0, 2), new(2, 2), new(4, 4), new(8, 4), new(12, 4),
        .. Enumerable.Range(0, 32).Select(slot => new Interleaving.Field(16 + 4 * slot, 4)),
    ];

    /// <summary>y[t·ldy + 16g + r] for groups [g0, g1), tokens [0, tokens); see <see cref="Interleaving.Compute"/>.</summary>
    public static void Compute(byte* w, int cols, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1) =>
        Interleaving.Run<Q4KInterleaved>(w, cols / 256, GroupBlockBytes, a, aStride, tokens, y, ldy, g0, g1);

    // The vpshufb patterns of one 128-bit lane (four rows; vpshufb works within lanes, so every lane of a 256- or
    // 512-bit register takes the same): (s_j, s_j) as a 16-bit pair per row, zero-extended.
    private static Vector128<byte> ScalePattern(int j) =>
        (Vector128.Create(0x80_00_80_00u | (uint)j | ((uint)j << 16)) + Vector128.Create(0x00_04_00_04u) * Vector128<uint>.Indices).AsByte();

    // (m_j, m_j+1) as a 16-bit pair per row
    private static Vector128<byte> MinPattern(int j) =>
        (Vector128.Create(0x80_00_80_00u | (uint)j | ((uint)(j + 1) << 16)) + Vector128.Create(0x00_04_00_04u) * Vector128<uint>.Indices).AsByte();

    /// <summary>
    /// The vpshufb patterns, built per call and kept in registers: as static readonly fields they were sometimes
    /// compiled as memory loads with class-initialisation checks (a kernel compiled before the class was
    /// initialised), which made whole-model prefill vary 2× from one process to the next.
    /// </summary>
    private readonly struct Patterns
    {
        public readonly Vector512<byte> Sc0, Sc1, Sc2, Sc3, Mn0, Mn2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Patterns()
        {
            Sc0 = Interleaving.Lanes512(ScalePattern(0)); Sc1 = Interleaving.Lanes512(ScalePattern(1)); Sc2 = Interleaving.Lanes512(ScalePattern(2)); Sc3 = Interleaving.Lanes512(ScalePattern(3));
            Mn0 = Interleaving.Lanes512(MinPattern(0)); Mn2 = Interleaving.Lanes512(MinPattern(2));
        }
    }

    /// <summary>The 6-bit scales (s) and mins (m) of 16 rows: bytes j of each row's word are entries 0..3 / 4..7.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scales(byte* o, out Vector512<byte> s03, out Vector512<byte> s47, out Vector512<byte> m03, out Vector512<byte> m47)
    {
        var u0 = Vector512.Load((uint*)(o + 64));
        var u1 = Vector512.Load((uint*)(o + 128));
        var u2 = Vector512.Load((uint*)(o + 192));
        var k6 = Vector512.Create(0x3F3F3F3Fu);
        var k4 = Vector512.Create(0x0F0F0F0Fu);
        var k2 = Vector512.Create(0x03030303u);
        s03 = (u0 & k6).AsByte();
        m03 = (u1 & k6).AsByte();
        s47 = ((u2 & k4) | (((u0 >> 6) & k2) << 4)).AsByte();
        m47 = (((u2 >> 4) & k4) | (((u1 >> 6) & k2) << 4)).AsByte();
    }

    /// <summary>Per-32 sums of the Q8_K activation as 16-bit pairs: int32 lane c holds (B[2c], B[2c+1]).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> BlockSums(byte* a) => BlockSums128(a).ToVector256Unsafe().ToVector512Unsafe();

    /// <summary>Slot k of one token: its 4 + 4 products per row added to the 16-bit sums of sub-blocks 2c (acc0) and 2c+1 (acc1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector512<byte> lo, Vector512<byte> hi, byte* x, int k, ref Vector512<short> acc0, ref Vector512<short> acc1)
    {
        acc0 += Avx512BW.MultiplyAddAdjacent(lo, Vector512.Create(*(int*)(x + 4 * k)).AsSByte());
        acc1 += Avx512BW.MultiplyAddAdjacent(hi, Vector512.Create(*(int*)(x + 32 + 4 * k)).AsSByte());
    }

    /// <summary>Slot k of sub-block pair c (at q), one token (x: its 64 activations of the pair).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Slot1(byte* q, byte* x, int k, Vector512<byte> m4, ref Vector512<short> acc0, ref Vector512<short> acc1)
    {
        var v = Vector512.Load(q + 64 * k);
        Step(v & m4, (v.AsUInt16() >> 4).AsByte() & m4, x, k, ref acc0, ref acc1);
    }

    /// <summary>Slot k of sub-block pair c (at q), four tokens (x0..x3: their 64 activations of the pair).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Slot4(byte* q, byte* x0, byte* x1, byte* x2, byte* x3, int k, Vector512<byte> m4, ref Sums4 s)
    {
        var v = Vector512.Load(q + 64 * k);
        var lo = v & m4;
        var hi = (v.AsUInt16() >> 4).AsByte() & m4;
        Step(lo, hi, x0, k, ref s.P0, ref s.Q0);
        Step(lo, hi, x1, k, ref s.P1, ref s.Q1);
        Step(lo, hi, x2, k, ref s.P2, ref s.Q2);
        Step(lo, hi, x3, k, ref s.P3, ref s.Q3);
    }

    /// <summary>The 16-bit sums of one sub-block pair for four tokens.</summary>
    private struct Sums4
    {
        public Vector512<short> P0, Q0, P1, Q1, P2, Q2, P3, Q3;
    }

    /// <summary>Folds one token's sub-block pair c into its integer sums (scales) and min sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Fold(Vector512<short> acc0, Vector512<short> acc1, Vector512<short> sA, Vector512<short> sB, Vector512<short> mins,
        Vector512<int> bsums, int c, ref Vector512<int> isum, ref Vector512<int> msum)
    {
        isum += Avx512BW.MultiplyAddAdjacent(acc0, sA) + Avx512BW.MultiplyAddAdjacent(acc1, sB);
        msum += Avx512BW.MultiplyAddAdjacent(mins, Avx512F.PermuteVar16x32(bsums, Vector512.Create(c)).AsInt16());
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish(Vector512<int> isum, Vector512<int> msum, Vector512<float> d, Vector512<float> dmin, byte* a, Vector512<float> acc)
    {
        var dx = Vector512.Create(*(float*)a);
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum), d * dx, acc);
        return Avx512F.FusedMultiplyAddNegated(Avx512F.ConvertToVector512Single(msum), dmin * dx, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pair(in Patterns p, Vector512<byte> s, Vector512<byte> m, int c, out Vector512<short> sA, out Vector512<short> sB, out Vector512<short> mins)
    {
        bool first = (c & 1) == 0;
        sA = Avx512BW.Shuffle(s, first ? p.Sc0 : p.Sc2).AsInt16();
        sB = Avx512BW.Shuffle(s, first ? p.Sc1 : p.Sc3).AsInt16();
        mins = Avx512BW.Shuffle(m, first ? p.Mn0 : p.Mn2).AsInt16();
    }

    /// <summary>
    /// Sub-block pair c of one token into its integer and min sums. The eight slots are written out (and c is a
    /// constant at each call): as loops the JIT kept them, with index arithmetic, a loop counter and branches
    /// choosing the scale patterns among the vector work, about five scalar µops per seven vector ones.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pair1(in Patterns pat, byte* w, byte* a, int c, Vector512<byte> m4, Vector512<byte> s, Vector512<byte> m, Vector512<int> bsums,
        ref Vector512<int> isum, ref Vector512<int> msum)
    {
        byte* q = w + QsOffset + 512 * c;
        byte* x = a + 4 + 64 * c;
        var acc0 = Vector512<short>.Zero;
        var acc1 = Vector512<short>.Zero;
        Slot1(q, x, 0, m4, ref acc0, ref acc1);
        Slot1(q, x, 1, m4, ref acc0, ref acc1);
        Slot1(q, x, 2, m4, ref acc0, ref acc1);
        Slot1(q, x, 3, m4, ref acc0, ref acc1);
        Slot1(q, x, 4, m4, ref acc0, ref acc1);
        Slot1(q, x, 5, m4, ref acc0, ref acc1);
        Slot1(q, x, 6, m4, ref acc0, ref acc1);
        Slot1(q, x, 7, m4, ref acc0, ref acc1);
        Pair(pat, s, m, c, out var sA, out var sB, out var mins);
        Fold(acc0, acc1, sA, sB, mins, bsums, c, ref isum, ref msum);
    }

    public static void Group1(byte* w, int nb, byte* a, float* y)
    {
        if (!Interleaving.Wide512) { Group1Avx2(w, nb, a, y); return; }
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var m4 = Vector512.Create((byte)0x0F);
        var pat = new Patterns();
        var acc = Vector512<float>.Zero;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a += Q8K)
        {
            // The block ahead is requested a quarter before each sub-block pair (Prefetch.Part: not 36 lines at once).
            if (Prefetch.Enabled) Prefetch.Part(w + ahead, GroupBlockBytes, 0, 4);
            Scales(w, out var s03, out var s47, out var m03, out var m47);
            var bsums = BlockSums(a);
            var isum = Vector512<int>.Zero;
            var msum = Vector512<int>.Zero;
            Pair1(pat, w, a, 0, m4, s03, m03, bsums, ref isum, ref msum);
            if (Prefetch.Enabled) Prefetch.Part(w + ahead, GroupBlockBytes, 1, 4);
            Pair1(pat, w, a, 1, m4, s03, m03, bsums, ref isum, ref msum);
            if (Prefetch.Enabled) Prefetch.Part(w + ahead, GroupBlockBytes, 2, 4);
            Pair1(pat, w, a, 2, m4, s47, m47, bsums, ref isum, ref msum);
            if (Prefetch.Enabled) Prefetch.Part(w + ahead, GroupBlockBytes, 3, 4);
            Pair1(pat, w, a, 3, m4, s47, m47, bsums, ref isum, ref msum);
            acc = Finish(isum, msum, FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w)), FloatConvert.HalfToFloat512(Vector256.Load((ushort*)(w + 32))), a, acc);
        }
        acc.Store(y);
    }

    /// <summary>The integer and min sums of four tokens over one super-block.</summary>
    private struct Ints4
    {
        public Vector512<int> I0, I1, I2, I3, N0, N1, N2, N3;
    }

    /// <summary>Sub-block pair c of four tokens (slots written out as in the one-token <c>Pair1</c>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pair4(in Patterns pat, byte* w, byte* a0, byte* a1, byte* a2, byte* a3, int c, Vector512<byte> m4,
        Vector512<byte> s, Vector512<byte> m, ref Ints4 t)
    {
        byte* q = w + QsOffset + 512 * c;
        int xo = 4 + 64 * c;
        byte* x0 = a0 + xo, x1 = a1 + xo, x2 = a2 + xo, x3 = a3 + xo;
        var sums = default(Sums4);
        Slot4(q, x0, x1, x2, x3, 0, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 1, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 2, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 3, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 4, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 5, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 6, m4, ref sums);
        Slot4(q, x0, x1, x2, x3, 7, m4, ref sums);
        Pair(pat, s, m, c, out var sA, out var sB, out var mins);
        Fold(sums.P0, sums.Q0, sA, sB, mins, BlockSums(a0), c, ref t.I0, ref t.N0);
        Fold(sums.P1, sums.Q1, sA, sB, mins, BlockSums(a1), c, ref t.I1, ref t.N1);
        Fold(sums.P2, sums.Q2, sA, sB, mins, BlockSums(a2), c, ref t.I2, ref t.N2);
        Fold(sums.P3, sums.Q3, sA, sB, mins, BlockSums(a3), c, ref t.I3, ref t.N3);
    }

    public static void Group4(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        if (!Interleaving.Wide512) { Group4Avx2(w, nb, a, aStride, y, ldy, prefetch); return; }
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var m4 = Vector512.Create((byte)0x0F);
        var pat = new Patterns();
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        byte* a0 = a, a1 = a + aStride, a2 = a + 2 * aStride, a3 = a + 3 * aStride;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a0 += Q8K, a1 += Q8K, a2 += Q8K, a3 += Q8K)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            Scales(w, out var s03, out var s47, out var m03, out var m47);
            var t = default(Ints4);
            Pair4(pat, w, a0, a1, a2, a3, 0, m4, s03, m03, ref t);
            Pair4(pat, w, a0, a1, a2, a3, 1, m4, s03, m03, ref t);
            Pair4(pat, w, a0, a1, a2, a3, 2, m4, s47, m47, ref t);
            Pair4(pat, w, a0, a1, a2, a3, 3, m4, s47, m47, ref t);
            var d = FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w));
            var dmin = FloatConvert.HalfToFloat512(Vector256.Load((ushort*)(w + 32)));
            f0 = Finish(t.I0, t.N0, d, dmin, a0, f0);
            f1 = Finish(t.I1, t.N1, d, dmin, a1, f1);
            f2 = Finish(t.I2, t.N2, d, dmin, a2, f2);
            f3 = Finish(t.I3, t.N3, d, dmin, a3, f3);
        }
        f0.Store(y);
        f1.Store(y + ldy);
        f2.Store(y + 2 * ldy);
        f3.Store(y + 3 * ldy);
    }
}
