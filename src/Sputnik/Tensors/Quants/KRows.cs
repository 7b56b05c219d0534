using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// The Q4_K and Q6_K decode kernels over four rows at once, in the file layout: MoE routed experts (the stacked
// ffn_*_exps tensors) stay memory-mapped, not re-laid into the 16-row groups of Q4KInterleaved, so a decode step ran
// them through the single-row kernel (DotK512: ~90 instructions per row and super-block, bound by instructions at
// about half the read bandwidth). Here, per super-block:
// - Q4_K: the four rows' 16-byte headers are loaded as one vector and their 6-bit scales and mins unpacked together
//   (seven vector operations instead of ~15 scalar ones per row); each row's four scale vectors come out of one
//   vpermw each, and d, dmin of the four rows are converted in one vector. A row's 128 quant bytes are two 64-byte
//   loads, split into [sub-block 0 | 2], [1 | 3], [4 | 6], [5 | 7] by one mask or shift and mask each; the
//   activation is permuted to match once for the four rows. The even and odd sub-blocks' products are then folded
//   (one vshufi64x2 pair and an add) into exactly the integer lanes DotK512 forms.
// - Q6_K: the rows run the single-row kernel's steps (Q6Token) with the 6-bit unpack done on 64-byte vectors.
// - The next four rows are prefetched while these are multiplied.
// Integer lanes and float operations are DotK512's / DotQ6_KAvx512's, so the result is bit-identical to them and to
// the batched kernels (Kx4, Q6Kx4): which kernel computes a row never changes an answer.
internal static unsafe partial class MatVec
{
    private const int Q4KBytes = 144, Q6KBytes = 210;

    /// <summary>
    /// Whether AVX-512 decode runs Q4_K / Q6_K file-layout rows four at a time (<see cref="Q4KRows"/>, <see cref="Q6KRows"/>):
    /// SPUTNIK_K_ROWS=0 for a whole model, or set by bench/Sputnik.Bench's `dram` to alternate both in one process.
    /// </summary>
    internal static bool KFourRows { get; set; } = Environment.GetEnvironmentVariable("SPUTNIK_K_ROWS") != "0";

    /// <summary>y[r] = dot(row r, x) for rows [r0, r1) of Q4_K rows of <paramref name="nb"/> super-blocks: four rows at a time, the next four prefetched.</summary>
    internal static void Q4KRows(byte* w, byte* a, int nb, float* y, int r0, int r1)
    {
        int rb = nb * Q4KBytes;
        int r = r0;
        // Read here, not in the kernel (see Mxfp4Rows).
        int ahead = Prefetch.Enabled ? 4 * rb : 0;
        for (; r + 4 <= r1; r += 4) Q4KFour(w + (long)r * rb, rb, a, nb, y + r, ahead);
        for (; r < r1; r++) y[r] = DotK512(w + (long)r * rb, a, nb, false);
    }

    // vpermw indices into a pair of rows' widened scales (row 0: scales 0…7, mins 8…15; row 1: 16…31): the scales
    // of the two sub-blocks a quant vector holds, 16 lanes each, and each row's mins twice over (pairing with bsums).
    private static readonly Vector512<short> KScales02 = KIndex(0, 2), KScales13 = KIndex(1, 3), KScales46 = KIndex(4, 6), KScales57 = KIndex(5, 7);
    private static readonly Vector512<short> KScales02B = KIndex(16, 18), KScales13B = KIndex(17, 19), KScales46B = KIndex(20, 22), KScales57B = KIndex(21, 23);
    private static readonly Vector512<short> KMinPairs = Vector512.Create(Vector256.Create((short)8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13, 14, 14, 15, 15),
        Vector256.Create((short)24, 24, 25, 25, 26, 26, 27, 27, 28, 28, 29, 29, 30, 30, 31, 31));
    // The d and dmin halves of the four rows (words 0 and 1 of each 128-bit lane of the headers).
    private static readonly Vector512<short> KHalfPick = Vector512.Create((short)0, 1, 8, 9, 16, 17, 24, 25, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    private static Vector512<short> KIndex(int lo, int hi) => Vector512.Create(Vector256.Create((short)lo), Vector256.Create((short)hi));

    /// <summary>
    /// The 6-bit scales and mins of four Q4_K rows from their headers (per 128-bit lane: d|dmin, u0, u1, u2 of the
    /// 12-byte field), as bytes sc0…7 then m0…7 per lane; ScalesMinsK's arithmetic on four rows at once.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> KScalesMins4(Vector512<uint> h)
    {
        // Per lane [u0, u2, u1, u2 >> 4] masked to 6 / 4 bits, plus the top two bits of u0 (u1) moved to bits 4…5 of
        // the high scales (mins): ((u >> 6) & 3) << 4 is (u >> 2) & 0x30 per byte.
        var low = Avx512F.ShiftRightLogicalVariable(Avx512F.Shuffle(h, 0b11_10_11_01), Vector512.Create(0u, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 4))
            & Vector512.Create(0x3F3F3F3Fu, 0x0F0F0F0Fu, 0x3F3F3F3Fu, 0x0F0F0F0Fu, 0x3F3F3F3Fu, 0x0F0F0F0Fu, 0x3F3F3F3Fu, 0x0F0F0F0Fu,
                0x3F3F3F3Fu, 0x0F0F0F0Fu, 0x3F3F3F3Fu, 0x0F0F0F0Fu, 0x3F3F3F3Fu, 0x0F0F0F0Fu, 0x3F3F3F3Fu, 0x0F0F0F0Fu);
        var high = (Avx512F.Shuffle(h, 0b10_00_01_00) >> 2)
            & Vector512.Create(0u, 0x30303030u, 0, 0x30303030u, 0, 0x30303030u, 0, 0x30303030u, 0, 0x30303030u, 0, 0x30303030u, 0, 0x30303030u, 0, 0x30303030u);
        return (low | high).AsByte();
    }

    /// <summary>
    /// One row's super-block: DotK512's sumi (lane i &lt; 8: the even sub-blocks' weights 4i…4i+3 times their scales;
    /// lane 8 + i: the odd ones') from the row's quants at <paramref name="q"/> and its widened scales <paramref name="z"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Q4KRowSums(byte* q, Vector512<sbyte> x02, Vector512<sbyte> x13, Vector512<sbyte> x46, Vector512<sbyte> x57,
        Vector512<short> z, Vector512<short> i02, Vector512<short> i13, Vector512<short> i46, Vector512<short> i57)
    {
        var m4 = Vector512.Create((byte)0x0F);
        var l0 = Vector512.Load(q);
        var l1 = Vector512.Load(q + 64);
        var p0 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(l0 & m4, x02), Avx512BW.PermuteVar32x16(z, i02));
        var p1 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent((l0.AsUInt16() >> 4).AsByte() & m4, x13), Avx512BW.PermuteVar32x16(z, i13));
        var p2 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(l1 & m4, x46), Avx512BW.PermuteVar32x16(z, i46));
        var p3 = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent((l1.AsUInt16() >> 4).AsByte() & m4, x57), Avx512BW.PermuteVar32x16(z, i57));
        var even = p0 + p2;
        var odd = p1 + p3;
        return Avx512F.Shuffle4x128(even, odd, 0b01_00_01_00) + Avx512F.Shuffle4x128(even, odd, 0b11_10_11_10);
    }

    /// <summary>Four consecutive Q4_K rows (rb bytes apart) against one Q8_K activation: y[0…3]; lines <paramref name="ahead"/> bytes on are prefetched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q4KFour(byte* w, int rb, byte* a, int nb, float* y, int ahead)
    {
        // Values, never references (see Mxfp4Four): acc per row, the mins' terms two rows per vector.
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default, mAcc01 = default, mAcc23 = default;
        byte* next = w + ahead;
        for (int i = 0; i < nb; i++, w += Q4KBytes, a += Q8K, next += 4 * Q4KBytes)
        {
            // The next four rows are contiguous: their super-block i's share (576 bytes, nine lines) per step.
            // Written out: the JIT does not unroll a counted loop, and its compare and branch cost a tenth of the step.
            Sse.Prefetch0(next); Sse.Prefetch0(next + 64); Sse.Prefetch0(next + 128); Sse.Prefetch0(next + 192); Sse.Prefetch0(next + 256);
            Sse.Prefetch0(next + 320); Sse.Prefetch0(next + 384); Sse.Prefetch0(next + 448); Sse.Prefetch0(next + 512);
            var h = Vector512.Create(Vector256.Create(Vector128.Load(w), Vector128.Load(w + rb)),
                Vector256.Create(Vector128.Load(w + 2 * rb), Vector128.Load(w + 3 * rb))).AsUInt32();
            var sm = KScalesMins4(h);
            var z01 = Avx512BW.ConvertToVector512Int16(sm.GetLower());
            var z23 = Avx512BW.ConvertToVector512Int16(sm.GetUpper());
            // d0 dmin0 d1 dmin1 … times the activation's scale: DotK512's dx·d and dx·dmin, exactly.
            var dd = (FloatConvert.HalfToFloat256(Avx512BW.PermuteVar32x16(h.AsInt16(), KHalfPick).GetLower().GetLower().AsUInt16())
                * Vector256.Create(*(float*)a)).ToVector512Unsafe();
            var x02 = Vector512.Create(Vector256.Load((sbyte*)(a + 4)), Vector256.Load((sbyte*)(a + 68)));
            var x13 = Vector512.Create(Vector256.Load((sbyte*)(a + 36)), Vector256.Load((sbyte*)(a + 100)));
            var x46 = Vector512.Create(Vector256.Load((sbyte*)(a + 132)), Vector256.Load((sbyte*)(a + 196)));
            var x57 = Vector512.Create(Vector256.Load((sbyte*)(a + 164)), Vector256.Load((sbyte*)(a + 228)));
            acc0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Q4KRowSums(w + 16, x02, x13, x46, x57, z01, KScales02, KScales13, KScales46, KScales57)),
                Avx512F.PermuteVar16x32(dd, Vector512.Create(0)), acc0);
            acc1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Q4KRowSums(w + rb + 16, x02, x13, x46, x57, z01, KScales02B, KScales13B, KScales46B, KScales57B)),
                Avx512F.PermuteVar16x32(dd, Vector512.Create(2)), acc1);
            acc2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Q4KRowSums(w + 2 * rb + 16, x02, x13, x46, x57, z23, KScales02, KScales13, KScales46, KScales57)),
                Avx512F.PermuteVar16x32(dd, Vector512.Create(4)), acc2);
            acc3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Q4KRowSums(w + 3 * rb + 16, x02, x13, x46, x57, z23, KScales02B, KScales13B, KScales46B, KScales57B)),
                Avx512F.PermuteVar16x32(dd, Vector512.Create(6)), acc3);
            // mins[j]·(bsums[2j] + bsums[2j+1]) per lane, two rows per vector (KToken's mt, row by row).
            var bsums = Vector256.Load((short*)(a + KQuants.Q8KBsumsOffset));
            var b2 = Vector512.Create(bsums, bsums);
            mAcc01 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(b2, Avx512BW.PermuteVar32x16(z01, KMinPairs))),
                Avx512F.PermuteVar16x32(dd, Vector512.Create(Vector256.Create(1), Vector256.Create(3))), mAcc01);
            mAcc23 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(b2, Avx512BW.PermuteVar32x16(z23, KMinPairs))),
                Avx512F.PermuteVar16x32(dd, Vector512.Create(Vector256.Create(5), Vector256.Create(7))), mAcc23);
        }
        y[0] = Vector512.Sum(acc0) - Vector256.Sum(mAcc01.GetLower());
        y[1] = Vector512.Sum(acc1) - Vector256.Sum(mAcc01.GetUpper());
        y[2] = Vector512.Sum(acc2) - Vector256.Sum(mAcc23.GetLower());
        y[3] = Vector512.Sum(acc3) - Vector256.Sum(mAcc23.GetUpper());
    }

    /// <summary>y[r] = dot(row r, x) for rows [r0, r1) of Q6_K rows of <paramref name="nb"/> super-blocks: four rows at a time, the next four prefetched.</summary>
    internal static void Q6KRows(byte* w, byte* a, int nb, float* y, int r0, int r1)
    {
        int rb = nb * Q6KBytes;
        int r = r0;
        int ahead = Prefetch.Enabled ? 4 * rb : 0;
        for (; r + 4 <= r1; r += 4) Q6KFour(w + (long)r * rb, rb, a, nb, y + r, ahead);
        for (; r < r1; r++) y[r] = DotQ6_KAvx512(w + (long)r * rb, a, nb);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q6KFour(byte* w, int rb, byte* a, int nb, float* y, int ahead)
    {
        // Values, never references (see Mxfp4Four); Q6Token's operations row by row.
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        Vector256<float> off0 = default, off1 = default, off2 = default, off3 = default;
        byte* next = w + ahead;
        for (int i = 0; i < nb; i++, w += Q6KBytes, a += Q8K, next += 4 * Q6KBytes)
        {
            // 840 bytes: fourteen lines.
            Sse.Prefetch0(next); Sse.Prefetch0(next + 64); Sse.Prefetch0(next + 128); Sse.Prefetch0(next + 192); Sse.Prefetch0(next + 256);
            Sse.Prefetch0(next + 320); Sse.Prefetch0(next + 384); Sse.Prefetch0(next + 448); Sse.Prefetch0(next + 512); Sse.Prefetch0(next + 576);
            Sse.Prefetch0(next + 640); Sse.Prefetch0(next + 704); Sse.Prefetch0(next + 768); Sse.Prefetch0(next + 832);
            float dx = *(float*)a;
            var bsums = Vector256.Load((short*)(a + KQuants.Q8KBsumsOffset));
            var sc0 = Q6Scales(w);
            var sc1 = Q6Scales(w + rb);
            var sc2 = Q6Scales(w + 2 * rb);
            var sc3 = Q6Scales(w + 3 * rb);
            float dd0 = dx * Half(w + KQuants.Q6KDOffset), dd1 = dx * Half(w + rb + KQuants.Q6KDOffset);
            float dd2 = dx * Half(w + 2 * rb + KQuants.Q6KDOffset), dd3 = dx * Half(w + 3 * rb + KQuants.Q6KDOffset);
            acc0 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Q6RowSums(w, a, sc0)), Vector512.Create(dd0), acc0);
            acc1 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Q6RowSums(w + rb, a, sc1)), Vector512.Create(dd1), acc1);
            acc2 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Q6RowSums(w + 2 * rb, a, sc2)), Vector512.Create(dd2), acc2);
            acc3 = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(Q6RowSums(w + 3 * rb, a, sc3)), Vector512.Create(dd3), acc3);
            off0 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(bsums, sc0)), Vector256.Create(32 * dd0), off0);
            off1 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(bsums, sc1)), Vector256.Create(32 * dd1), off1);
            off2 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(bsums, sc2)), Vector256.Create(32 * dd2), off2);
            off3 = Fma.MultiplyAdd(Avx.ConvertToVector256Single(Avx2.MultiplyAddAdjacent(bsums, sc3)), Vector256.Create(32 * dd3), off3);
        }
        y[0] = Vector512.Sum(acc0) - Vector256.Sum(off0);
        y[1] = Vector512.Sum(acc1) - Vector256.Sum(off1);
        y[2] = Vector512.Sum(acc2) - Vector256.Sum(off2);
        y[3] = Vector512.Sum(acc3) - Vector256.Sum(off3);
    }

    /// <summary>Q6Token's integer sums of one row's super-block (its scales <paramref name="sc"/>) against one Q8_K block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Q6RowSums(byte* w, byte* a, Vector256<short> sc)
    {
        Q6QuantPair512(w, 0, out var q0, out var q1);
        Q6QuantPair512(w, 1, out var q2, out var q3);
        byte* x = a + 4;
        return Scaled512(q0, x, Q6Scale512(sc, 0)) + Scaled512(q1, x + 64, Q6Scale512(sc, 1))
            + (Scaled512(q2, x + 128, Q6Scale512(sc, 2)) + Scaled512(q3, x + 192, Q6Scale512(sc, 3)));
    }

    /// <summary>One Q6_K super-block of a row against one Q8_K block (DotQ6_KAvx512's step).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Q6Row(byte* w, byte* a, ref Vector512<float> acc, ref Vector256<float> offAcc)
    {
        var sc = Q6Scales(w);
        Q6QuantPair512(w, 0, out var q0, out var q1);
        Q6QuantPair512(w, 1, out var q2, out var q3);
        Q6Token(q0, q1, q2, q3, Q6Scale512(sc, 0), Q6Scale512(sc, 1), Q6Scale512(sc, 2), Q6Scale512(sc, 3), sc,
            a, Half(w + KQuants.Q6KDOffset), ref acc, ref offAcc);
    }

    /// <summary>
    /// Q6_K half <paramref name="n"/> of a super-block: parts 2n ([q1|q2], pairing with x[128n..+64)) and 2n + 1
    /// ([q3|q4], x[128n+64..+64)), from one 64-byte load of the low bits and the 32 high-bit bytes loaded once for both
    /// (per-half shift counts instead of two 32-byte halves per part; shared by the single-row and batched kernels).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Q6QuantPair512(byte* w, int n, out Vector512<byte> even, out Vector512<byte> odd)
    {
        var low = Vector512.Create((byte)0x0F);
        var m30 = Vector512.Create((byte)0x30);
        var ql = Vector512.Load(w + 64 * n);
        var qh256 = Vector256.Load((ushort*)(w + KQuants.Q6KQhOffset + 32 * n));
        var qh = Vector512.Create(qh256, qh256);
        even = (ql & low) | (Avx512BW.ShiftLeftLogicalVariable(qh, KQ6EvenShift).AsByte() & m30);
        odd = ((ql.AsUInt16() >> 4).AsByte() & low) | (Avx512BW.ShiftRightLogicalVariable(qh, KQ6OddShift).AsByte() & m30);
    }

    private static readonly Vector512<ushort> KQ6EvenShift = Vector512.Create(Vector256.Create((ushort)4), Vector256.Create((ushort)2));
    private static readonly Vector512<ushort> KQ6OddShift = Vector512.Create(Vector256.Create((ushort)0), Vector256.Create((ushort)2));
}
