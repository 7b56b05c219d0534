using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Q6_K weights re-laid at load time 16 rows together (the same bytes, permuted), like <see cref="Q4KInterleaved"/>.
/// Three 64-byte loads (low nibbles of two quarters, their high bits) give 4 weights × 4 sub-blocks of 16 rows.
/// A 6-bit product pair can reach 2 × 63 × 128 = 16,128, so two vpmaddubsw results are summed in 16 bits before
/// the vpmaddwd that applies 16 rows' scales; the −32 offset is 32 · Σ scale · (Q8_K sum of 16), as in the file
/// layout kernel.
/// </summary>
/// <remarks>
/// Group g, super-block b at byte (g·nb + b)·3360: <c>d[16]</c> (halves); the 16 int8 scales of each row as four
/// 32-bit words per row (scales 4m..4m+3 of the 16 rows in the m-th 64 bytes); then for half n (0, 1) and k (0..7)
/// three slots of 64 bytes, each holding 4 bytes per row: ql[64n+4k..], ql[64n+32+4k..], qh[32n+4k..].
/// </remarks>
internal sealed unsafe partial class Q6KInterleaved : IGroupKernel
{
    private Q6KInterleaved() { }

    private const int GroupBlockBytes = Interleaving.Rows * 210;
    private const int Q8K = 292;
    private const int ScalesOffset = 32;
    private const int QsOffset = 288;

    /// <summary>The fields of a file block in the order the group block stores them, 16 rows of each (see remarks).</summary>
    public static readonly Interleaving.Field[] Layout =
    [
        new(208, 2),
        .. Enumerable.Range(0, 4).Select(m => new Interleaving.Field(192 + 4 * m, 4)),
        .. Enumerable.Range(0, 16).SelectMany(nk => new Interleaving.Field[]
        {
            new(64 * (nk / 8) + 4 * (nk % 8), 4),         // ql, quarters 0 and 2 of half n
            new(64 * (nk / 8) + 32 + 4 * (nk % 8), 4),    // ql, quarters 1 and 3
            new(128 + 32 * (nk / 8) + 4 * (nk % 8), 4),   // qh
        }),
    ];

    /// <summary>y[t·ldy + 16g + r] for groups [g0, g1), tokens [0, tokens); see <see cref="Interleaving.Compute"/>.</summary>
    public static void Compute(byte* w, int cols, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1) =>
        Interleaving.Run<Q6KInterleaved>(w, cols / 256, GroupBlockBytes, a, aStride, tokens, y, ldy, g0, g1);

    // The vpshufb patterns of one 128-bit lane (four rows; every lane of a wider register takes the same). Byte j of
    // each row's scale word into the high byte of both 16-bit halves (then >> 8 sign-extends): (s_j, s_j).
    private static Vector128<byte> SinglePattern(int j) =>
        (Vector128.Create(0x00_80_00_80u | ((uint)j << 8) | ((uint)j << 24)) + Vector128.Create(0x04_00_04_00u) * Vector128<uint>.Indices).AsByte();

    // (s_j, s_j+1) for the offset term.
    private static Vector128<byte> PairPattern(int j) =>
        (Vector128.Create(0x00_80_00_80u | ((uint)j << 8) | ((uint)(j + 1) << 24)) + Vector128.Create(0x04_00_04_00u) * Vector128<uint>.Indices).AsByte();


    // Built per call and kept in registers, not static readonly fields (see Q4KInterleaved.Patterns).
    private readonly struct Patterns
    {
        public readonly Vector512<byte> P0, P1, P2, P3, Pp0, Pp2;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public Patterns()
        {
            P0 = Interleaving.Lanes512(SinglePattern(0)); P1 = Interleaving.Lanes512(SinglePattern(1)); P2 = Interleaving.Lanes512(SinglePattern(2)); P3 = Interleaving.Lanes512(SinglePattern(3));
            Pp0 = Interleaving.Lanes512(PairPattern(0)); Pp2 = Interleaving.Lanes512(PairPattern(2));
        }
    }

    /// <summary>
    /// The scales of sub-blocks 8n + h + 2i (i = 0..3, the quarters) for the 16 rows, as 16-bit pairs: words 2n (i = 0, 1)
    /// and 2n + 1 (i = 2, 3), bytes h (even i) and h + 2 (odd i). The caller picks the two patterns for its h: chosen
    /// here from the sub-block index by a switch, the JIT compiled a jump table per scale, with the patterns on the stack.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scales(byte* o, int n, Vector512<byte> even, Vector512<byte> odd,
        out Vector512<short> s0, out Vector512<short> s1, out Vector512<short> s2, out Vector512<short> s3)
    {
        var a = Vector512.Load(o + ScalesOffset + 128 * n);
        var b = Vector512.Load(o + ScalesOffset + 128 * n + 64);
        s0 = Avx512BW.ShiftRightArithmetic(Avx512BW.Shuffle(a, even).AsInt16(), 8);
        s1 = Avx512BW.ShiftRightArithmetic(Avx512BW.Shuffle(a, odd).AsInt16(), 8);
        s2 = Avx512BW.ShiftRightArithmetic(Avx512BW.Shuffle(b, even).AsInt16(), 8);
        s3 = Avx512BW.ShiftRightArithmetic(Avx512BW.Shuffle(b, odd).AsInt16(), 8);
    }

    /// <summary>The 16 rows' scales as the offset term pairs them: (s_4m, s_4m+1) in L<i>m</i>, (s_4m+2, s_4m+3) in H<i>m</i>.</summary>
    private struct OffsetScales
    {
        public Vector512<short> L0, L1, L2, L3, H0, H1, H2, H3;
    }

    /// <summary>The scale pairs of the offset term, once per group block (four tokens share them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static OffsetScales PairedScales(in Patterns pat, byte* o)
    {
        var s0 = Vector512.Load(o + ScalesOffset);
        var s1 = Vector512.Load(o + ScalesOffset + 64);
        var s2 = Vector512.Load(o + ScalesOffset + 128);
        var s3 = Vector512.Load(o + ScalesOffset + 192);
        return new OffsetScales
        {
            L0 = Paired(s0, pat.Pp0), H0 = Paired(s0, pat.Pp2), L1 = Paired(s1, pat.Pp0), H1 = Paired(s1, pat.Pp2),
            L2 = Paired(s2, pat.Pp0), H2 = Paired(s2, pat.Pp2), L3 = Paired(s3, pat.Pp0), H3 = Paired(s3, pat.Pp2),
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Paired(Vector512<byte> scales, Vector512<byte> pattern) =>
        Avx512BW.ShiftRightArithmetic(Avx512BW.Shuffle(scales, pattern).AsInt16(), 8);

    /// <summary>
    /// 32 · Σ_j scale_j · bsum_j for the 16 rows (the −32 offset of every weight). Each pair of the activation's
    /// 16-bit block sums is broadcast straight from memory (a load, no shuffle).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Offsets(in OffsetScales s, byte* a)
    {
        int* b = (int*)(a + KQuants.Q8KBsumsOffset);
        var sum = Avx512BW.MultiplyAddAdjacent(s.L0, Vector512.Create(b[0]).AsInt16()) + Avx512BW.MultiplyAddAdjacent(s.H0, Vector512.Create(b[1]).AsInt16())
                + Avx512BW.MultiplyAddAdjacent(s.L1, Vector512.Create(b[2]).AsInt16()) + Avx512BW.MultiplyAddAdjacent(s.H1, Vector512.Create(b[3]).AsInt16())
                + Avx512BW.MultiplyAddAdjacent(s.L2, Vector512.Create(b[4]).AsInt16()) + Avx512BW.MultiplyAddAdjacent(s.H2, Vector512.Create(b[5]).AsInt16())
                + Avx512BW.MultiplyAddAdjacent(s.L3, Vector512.Create(b[6]).AsInt16()) + Avx512BW.MultiplyAddAdjacent(s.H3, Vector512.Create(b[7]).AsInt16());
        return sum << 5;
    }

    /// <summary>The four 6-bit weight vectors of slot group (n, k): quarters 0..3 of half n, weights 4k..4k+3 of each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Unpack(byte* q, out Vector512<byte> w0, out Vector512<byte> w1, out Vector512<byte> w2, out Vector512<byte> w3)
    {
        var low = Vector512.Create((byte)0x0F);
        var m30 = Vector512.Create((byte)0x30);
        var a = Vector512.Load(q);
        var b = Vector512.Load(q + 64);
        var h = Vector512.Load(q + 128).AsUInt16();
        w0 = (a & low) | ((h << 4).AsByte() & m30);
        w1 = (b & low) | ((h << 2).AsByte() & m30);
        w2 = ((a.AsUInt16() >> 4).AsByte() & low) | (h.AsByte() & m30);
        w3 = ((b.AsUInt16() >> 4).AsByte() & low) | ((h >> 2).AsByte() & m30);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Mul(Vector512<byte> w, byte* x) => Avx512BW.MultiplyAddAdjacent(w, Vector512.Create(*(int*)x).AsSByte());

    /// <summary>
    /// One token, half n, quarter-offset h (k = 4h..4h+3): the four sub-blocks 8n + 2i + h (i = quarter), two slot
    /// groups summed in 16 bits at a time, then scaled into the 32-bit sum.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Pair(Vector512<byte> a0, Vector512<byte> a1, Vector512<byte> a2, Vector512<byte> a3,
        Vector512<byte> b0, Vector512<byte> b1, Vector512<byte> b2, Vector512<byte> b3, byte* x,
        Vector512<short> s0, Vector512<short> s1, Vector512<short> s2, Vector512<short> s3, ref Vector512<int> isum)
    {
        // x points at the activation of weight 128n + 4k for the first of the two slot groups
        isum += Avx512BW.MultiplyAddAdjacent(Mul(a0, x) + Mul(b0, x + 4), s0)
              + Avx512BW.MultiplyAddAdjacent(Mul(a1, x + 32) + Mul(b1, x + 36), s1)
              + Avx512BW.MultiplyAddAdjacent(Mul(a2, x + 64) + Mul(b2, x + 68), s2)
              + Avx512BW.MultiplyAddAdjacent(Mul(a3, x + 96) + Mul(b3, x + 100), s3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Finish(Vector512<int> isum, Vector512<int> offsets, Vector512<float> d, byte* a, Vector512<float> acc) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(isum - offsets), d * Vector512.Create(*(float*)a), acc);

    /// <summary>
    /// Half n, quarter-offset h of one token: its two slot-group pairs (k = 4h, 4h + 2). Called with constant n and h,
    /// so offsets and pattern choices are fixed when compiled: as loops the JIT kept index arithmetic and branches
    /// that picked the patterns among the vector work.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Quarter1(in Patterns pat, byte* w, byte* a, int n, int h, ref Vector512<int> isum)
    {
        Scales(w, n, h == 0 ? pat.P0 : pat.P1, h == 0 ? pat.P2 : pat.P3, out var s0, out var s1, out var s2, out var s3);
        Slots1(w, a, n, 4 * h, s0, s1, s2, s3, ref isum);
        Slots1(w, a, n, 4 * h + 2, s0, s1, s2, s3, ref isum);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Slots1(byte* w, byte* a, int n, int k,
        Vector512<short> s0, Vector512<short> s1, Vector512<short> s2, Vector512<short> s3, ref Vector512<int> isum)
    {
        byte* q = w + QsOffset + 192 * (8 * n + k);
        Unpack(q, out var a0, out var a1, out var a2, out var a3);
        Unpack(q + 192, out var b0, out var b1, out var b2, out var b3);
        Pair(a0, a1, a2, a3, b0, b1, b2, b3, a + 4 + 128 * n + 4 * k, s0, s1, s2, s3, ref isum);
    }

    public static void Group1(byte* w, int nb, byte* a, float* y)
    {
        if (!Interleaving.Wide512) { Group1Avx2(w, nb, a, y); return; }
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var pat = new Patterns();
        var acc = Vector512<float>.Zero;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, a += Q8K)
        {
            // The block ahead is requested a quarter before each quarter of the work (Prefetch.Part: not 53 lines at once).
            if (Prefetch.Enabled) Prefetch.Part(w + ahead, GroupBlockBytes, 0, 4);
            var isum = Vector512<int>.Zero;
            Quarter1(pat, w, a, 0, 0, ref isum);
            if (Prefetch.Enabled) Prefetch.Part(w + ahead, GroupBlockBytes, 1, 4);
            Quarter1(pat, w, a, 0, 1, ref isum);
            if (Prefetch.Enabled) Prefetch.Part(w + ahead, GroupBlockBytes, 2, 4);
            Quarter1(pat, w, a, 1, 0, ref isum);
            if (Prefetch.Enabled) Prefetch.Part(w + ahead, GroupBlockBytes, 3, 4);
            Quarter1(pat, w, a, 1, 1, ref isum);
            acc = Finish(isum, Offsets(PairedScales(pat, w), a), FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w)), a, acc);
        }
        acc.Store(y);
    }

    public static void Group4(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch)
    {
        if (!Interleaving.Wide512) { Group4Avx2(w, nb, a, aStride, y, ldy, prefetch); return; }
        int ahead = Prefetch.Ahead(GroupBlockBytes);
        var pat = new Patterns();
        Vector512<float> f0 = default, f1 = default, f2 = default, f3 = default;
        byte* x0 = a, x1 = a + aStride, x2 = a + 2 * aStride, x3 = a + 3 * aStride;
        for (int b = 0; b < nb; b++, w += GroupBlockBytes, x0 += Q8K, x1 += Q8K, x2 += Q8K, x3 += Q8K)
        {
            if (prefetch) Prefetch.WideLines(w + ahead, GroupBlockBytes);
            Vector512<int> i0 = default, i1 = default, i2 = default, i3 = default;
            // Loops here: written out like Group1's, the method exceeded the JIT's inlining budget (calls, spills).
            for (int n = 0; n < 2; n++)
                for (int h = 0; h < 2; h++)
                {
                    Scales(w, n, h == 0 ? pat.P0 : pat.P1, h == 0 ? pat.P2 : pat.P3, out var s0, out var s1, out var s2, out var s3);
                    for (int p = 0; p < 2; p++)
                    {
                        int k = 4 * h + 2 * p;
                        byte* q = w + QsOffset + 192 * (8 * n + k);
                        Unpack(q, out var a0, out var a1, out var a2, out var a3);
                        Unpack(q + 192, out var b0, out var b1, out var b2, out var b3);
                        int xo = 4 + 128 * n + 4 * k;
                        Pair(a0, a1, a2, a3, b0, b1, b2, b3, x0 + xo, s0, s1, s2, s3, ref i0);
                        Pair(a0, a1, a2, a3, b0, b1, b2, b3, x1 + xo, s0, s1, s2, s3, ref i1);
                        Pair(a0, a1, a2, a3, b0, b1, b2, b3, x2 + xo, s0, s1, s2, s3, ref i2);
                        Pair(a0, a1, a2, a3, b0, b1, b2, b3, x3 + xo, s0, s1, s2, s3, ref i3);
                    }
                }
            var d = FloatConvert.HalfToFloat512(Vector256.Load((ushort*)w));
            var paired = PairedScales(pat, w);
            f0 = Finish(i0, Offsets(paired, x0), d, x0, f0);
            f1 = Finish(i1, Offsets(paired, x1), d, x1, f1);
            f2 = Finish(i2, Offsets(paired, x2), d, x2, f2);
            f3 = Finish(i3, Offsets(paired, x3), d, x3, f3);
        }
        f0.Store(y);
        f1.Store(y + ldy);
        f2.Store(y + 2 * ldy);
        f3.Store(y + 3 * ldy);
    }
}
