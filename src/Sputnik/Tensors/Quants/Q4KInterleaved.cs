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
internal sealed unsafe class Q4KInterleaved : IGroupKernel
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


    private static Vector512<byte> ScalePattern(int j) =>
        (Vector512.Create(0x80_00_80_00u | (uint)j | ((uint)j << 16)) + Vector512.Create(0x00_04_00_04u) * (Vector512<uint>.Indices & Vector512.Create(3u))).AsByte();


    // (m_j, m_j+1) as a 16-bit pair per row
    private static Vector512<byte> MinPattern(int j) =>
        (Vector512.Create(0x80_00_80_00u | (uint)j | ((uint)(j + 1) << 16)) + Vector512.Create(0x00_04_00_04u) * (Vector512<uint>.Indices & Vector512.Create(3u))).AsByte();

    /// <summary>
    /// The vpshufb patterns, built per call and kept in registers: as static readonly fields they were sometimes
    /// compiled as memory loads with class-initialisation checks (a kernel compiled before the class was
    /// initialised), which made whole-model prefill vary 2× from one process to the next.
    /// </summary>
    private readonly struct Patterns
    {
        public readonly Vector512<byte> Sc0, Sc1, Sc2, Sc3, Mn0, Mn2;

        public Patterns()
        {
            Sc0 = ScalePattern(0); Sc1 = ScalePattern(1); Sc2 = ScalePattern(2); Sc3 = ScalePattern(3);
            Mn0 = MinPattern(0); Mn2 = MinPattern(2);
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
    private static Vector512<int> BlockSums(byte* a)
    {
        short* bs = (short*)(a + KQuants.Q8KBsumsOffset);
        return Ssse3.HorizontalAdd(Vector128.Load(bs), Vector128.Load(bs + 8)).AsInt32().ToVector256Unsafe().ToVector512Unsafe();
    }

    /// <summary>Sub-block pair c of one token: Σ over 32 weights per row for sub-blocks 2c and 2c+1, as 16-bit sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Step(Vector512<byte> lo, Vector512<byte> hi, byte* x, int k, ref Vector512<short> acc0, ref Vector512<short> acc1)
    {
        acc0 += Avx512BW.MultiplyAddAdjacent(lo, Vector512.Create(*(int*)(x + 4 * k)).AsSByte());
        acc1 += Avx512BW.MultiplyAddAdjacent(hi, Vector512.Create(*(int*)(x + 32 + 4 * k)).AsSByte());
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

    public static void Group1(byte* w, int nb, byte* a, float* y)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var m4 = Vector512.Create((byte)0x0F);
        var pat = new Patterns();
        var acc = Vector512<float>.Zero;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a += Q8K)
        {
            if (Prefetch.Enabled) Prefetch.Lines(w + ahead, GroupBlockBytes);
            Scales(w, out var s03, out var s47, out var m03, out var m47);
            var bsums = BlockSums(a);
            var isum = Vector512<int>.Zero;
            var msum = Vector512<int>.Zero;
            for (int c = 0; c < 4; c++)
            {
                byte* q = w + QsOffset + 512 * c;
                byte* x = a + 4 + 64 * c;
                var acc0 = Vector512<short>.Zero;
                var acc1 = Vector512<short>.Zero;
                for (int k = 0; k < 8; k++)
                {
                    var v = Vector512.Load(q + 64 * k);
                    Step(v & m4, (v.AsUInt16() >> 4).AsByte() & m4, x, k, ref acc0, ref acc1);
                }
                Pair(pat, c < 2 ? s03 : s47, c < 2 ? m03 : m47, c, out var sA, out var sB, out var mins);
                Fold(acc0, acc1, sA, sB, mins, bsums, c, ref isum, ref msum);
            }
            acc = Finish(isum, msum, FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w)), FloatConvert.HalfToFloat512(Vector256.Load((ushort*)(w + 32))), a, acc);
        }
        acc.Store(y);
    }

    public static void Group4(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var m4 = Vector512.Create((byte)0x0F);
        var pat = new Patterns();
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        byte* a0 = a, a1 = a + aStride, a2 = a + 2 * aStride, a3 = a + 3 * aStride;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a0 += Q8K, a1 += Q8K, a2 += Q8K, a3 += Q8K)
        {
            if (prefetch) Prefetch.Lines(w + ahead, GroupBlockBytes);
            Scales(w, out var s03, out var s47, out var m03, out var m47);
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            Vector512<int> n0 = default, n1 = default, n2 = default, n3 = default;
            for (int c = 0; c < 4; c++)
            {
                byte* q = w + QsOffset + 512 * c;
                int xo = 4 + 64 * c;
                Vector512<short> p0 = default, q0 = default, p1 = default, q1 = default, p2 = default, q2 = default, p3 = default, q3 = default;
                for (int k = 0; k < 8; k++)
                {
                    var v = Vector512.Load(q + 64 * k);
                    var lo = v & m4;
                    var hi = (v.AsUInt16() >> 4).AsByte() & m4;
                    Step(lo, hi, a0 + xo, k, ref p0, ref q0);
                    Step(lo, hi, a1 + xo, k, ref p1, ref q1);
                    Step(lo, hi, a2 + xo, k, ref p2, ref q2);
                    Step(lo, hi, a3 + xo, k, ref p3, ref q3);
                }
                Pair(pat, c < 2 ? s03 : s47, c < 2 ? m03 : m47, c, out var sA, out var sB, out var mins);
                Fold(p0, q0, sA, sB, mins, BlockSums(a0), c, ref i0, ref n0);
                Fold(p1, q1, sA, sB, mins, BlockSums(a1), c, ref i1, ref n1);
                Fold(p2, q2, sA, sB, mins, BlockSums(a2), c, ref i2, ref n2);
                Fold(p3, q3, sA, sB, mins, BlockSums(a3), c, ref i3, ref n3);
            }
            var d = FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w));
            var dmin = FloatConvert.HalfToFloat512(Vector256.Load((ushort*)(w + 32)));
            f0 = Finish(i0, n0, d, dmin, a0, f0);
            f1 = Finish(i1, n1, d, dmin, a1, f1);
            f2 = Finish(i2, n2, d, dmin, a2, f2);
            f3 = Finish(i3, n3, d, dmin, a3, f3);
        }
        f0.Store(y);
        f1.Store(y + ldy);
        f2.Store(y + 2 * ldy);
        f3.Store(y + 3 * ldy);
    }
}
