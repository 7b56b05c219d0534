using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// The MXFP4 decode kernel over four rows at once, in the file layout (gpt-oss's routed experts stay memory-mapped).
// Profiling gpt-oss-20b decode put 55 % of the time in the single-row kernel for 1.27 GB of experts against 19 % for
// 1.3 GB of Q8_0 weights in the interleaved kernel, and with the matrix in L2 it ran no faster than from DRAM: it was
// bound by instructions (~40 per row and pair of blocks: two nibble unpacks, |w| and a sign select of x, two scalar
// E8M0 decodes and the scale broadcasts). Here, per row and pair:
// - one 64-byte load; one vpermb, shift and mask give both blocks' nibbles in activation order;
// - the weights are looked up as w + 12 (unsigned, 0…24) so vpdpbusd (AVX-VNNI; else vpmaddubsw + vpmaddwd) takes
//   them directly, starting from −12·Σx per 4-byte lane, computed once for the four rows: Σ(w + 12)·x − 12·Σx = Σw·x
//   exactly in integers;
// - the eight scales of the four rows come out of two vpermi2b as one vector, d_x · 2^(e−128) by vscalefps (the same
//   exactly rounded product the single-row kernel multiplies out), and a vpermps hands each row its two;
// - the next four rows are prefetched while these are multiplied.
// Every integer lane and every float operation matches DotMxfp4Avx512's, so the result is bit-identical to it (and so to
// the batched kernel): which kernel a row takes never changes an answer.
internal static unsafe partial class MatVec
{
    /// <summary>Whether <see cref="Mxfp4Rows"/> can run: AVX-512 with VBMI (and VL), and an even number of blocks per row.</summary>
    internal static bool Mxfp4RowsSupported(int nb) => Avx512Vbmi.VL.IsSupported && Avx512BW.IsSupported && nb % 2 == 0 && nb > 0;

    // Bytes 1…16 (block 0's nibbles) twice, then bytes 18…33 (block 1's) twice: low nibbles then high ones per block.
    private static readonly Vector512<byte> Mxfp4NibbleOrder = Vector512.Create(
        (byte)1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33);

    // Shift counts per qword: the second and fourth 16 bytes hold the high nibbles.
    private static readonly Vector512<ulong> Mxfp4HighShift = Vector512.Create(0ul, 0, 4, 4, 0, 0, 4, 4);

    // The doubled E2M1 values plus 12, by nibble, in every 128-bit lane (vpshufb looks up per lane).
    private static readonly Vector512<sbyte> Mxfp4OffsetTable = Vector512.Create(Vector128.Create(
        (sbyte)12, 13, 14, 15, 16, 18, 20, 24, 12, 11, 10, 9, 8, 6, 4, 0)).AsSByte();

    private const int Mxfp4Offset = 12;

    /// <summary>y[r] = dot(row r, x) for rows [r0, r1) of <paramref name="weightBytes"/> bytes of MXFP4 rows; nb even.</summary>
    internal static void Mxfp4Rows(byte* w, long weightBytes, byte* a, int nb, float* y, int r0, int r1)
    {
        int rb = nb * Mx;
        int r = r0;
        // A group's 64-byte loads reach 30 bytes past its last row: those rows must not be the last of the buffer.
        for (; r + 4 <= r1 && (long)(r + 4) * rb + 64 <= weightBytes; r += 4)
            Mxfp4Four(w + (long)r * rb, rb, a, nb, y + r);
        for (; r < r1; r++) y[r] = DotMxfp4Avx512(w + (long)r * rb, a, nb);
    }

    // Picks bytes 0 and 17 (the two scales) of the first row's pair, then of the second's (indices 32 + …).
    private static readonly Vector256<byte> Mxfp4ScalePick = Vector256.Create((byte)0, 17, 32, 49, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>Four consecutive rows (rb bytes apart) against one activation: y[0…3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Mxfp4Four(byte* w, int rb, byte* a, int nb, float* y)
    {
        // Per row the two 256-bit halves of DotMxfp4Avx512's accumulator: block 0's lanes and block 1's.
        Vector256<float> lo0 = default, hi0 = default, lo1 = default, hi1 = default, lo2 = default, hi2 = default, lo3 = default, hi3 = default;
        var nibbleOrder = Mxfp4NibbleOrder;
        var shift = Mxfp4HighShift;
        var table = Mxfp4OffsetTable;
        var low4 = Vector512.Create((byte)0x0F);
        var offset = Vector512.Create((byte)Mxfp4Offset);
        var scalePick = Mxfp4ScalePick;
        var bias = Vector256.Create(128f);
        var offset256 = Vector256.Create((byte)Mxfp4Offset);
        byte* next = w + 4 * rb; // the following group, prefetched a pair's share at a time
        bool prefetch = Prefetch.Enabled;
        for (int i = 0; i < nb; i += 2, w += 2 * Mx, a += 2 * Q80, next += 4 * 2 * Mx)
        {
            if (prefetch)
            {
                Sse.Prefetch0(next);
                Sse.Prefetch0(next + 64);
                Sse.Prefetch0(next + 128);
            }
            var xLo = Vector256.Load((sbyte*)(a + 2));
            var xHi = Vector256.Load((sbyte*)(a + Q80 + 2));
            var x = Vector512.Create(xLo, xHi);
            // 12·Σx per 4-byte lane: with AVX-VNNI the negated start of each row's vpdpbusd sums, otherwise 16-bit pair
            // sums subtracted after vpmaddubsw.
            Vector256<int> startLo = default, startHi = default;
            Vector512<short> correction = default;
            if (AvxVnni.IsSupported)
            {
                startLo = Vector256<int>.Zero - AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, offset256, xLo);
                startHi = Vector256<int>.Zero - AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, offset256, xHi);
            }
            else correction = Avx512BW.MultiplyAddAdjacent(offset, x);
            var r0 = Vector512.Load(w);
            var r1 = Vector512.Load(w + rb);
            var r2 = Vector512.Load(w + 2 * rb);
            var r3 = Vector512.Load(w + 3 * rb);
            // The eight block scales (row-major: row 0 block 0, row 0 block 1, row 1 block 0, …) as d_x · 2^(e−128).
            var e01 = Avx512Vbmi.VL.PermuteVar32x8x2(r0.GetLower(), scalePick, r1.GetLower()).GetLower().AsInt32();
            var e23 = Avx512Vbmi.VL.PermuteVar32x8x2(r2.GetLower(), scalePick, r3.GetLower()).GetLower().AsInt32();
            var e = Avx2.ConvertToVector256Int32(Sse2.UnpackLow(e01, e23).AsByte());
            float dx0 = Half(a), dx1 = Half(a + Q80);
            var dx = Vector128.Create(dx0, dx1, dx0, dx1);
            var d = Avx512F.VL.Scale(Vector256.Create(dx, dx), Avx.ConvertToVector256Single(e) - bias);
            Mxfp4RowStep(r0, xLo, xHi, x, startLo, startHi, correction, nibbleOrder, shift, table, low4,
                Avx2.PermuteVar8x32(d, Vector256.Create(0)), Avx2.PermuteVar8x32(d, Vector256.Create(1)), ref lo0, ref hi0);
            Mxfp4RowStep(r1, xLo, xHi, x, startLo, startHi, correction, nibbleOrder, shift, table, low4,
                Avx2.PermuteVar8x32(d, Vector256.Create(2)), Avx2.PermuteVar8x32(d, Vector256.Create(3)), ref lo1, ref hi1);
            Mxfp4RowStep(r2, xLo, xHi, x, startLo, startHi, correction, nibbleOrder, shift, table, low4,
                Avx2.PermuteVar8x32(d, Vector256.Create(4)), Avx2.PermuteVar8x32(d, Vector256.Create(5)), ref lo2, ref hi2);
            Mxfp4RowStep(r3, xLo, xHi, x, startLo, startHi, correction, nibbleOrder, shift, table, low4,
                Avx2.PermuteVar8x32(d, Vector256.Create(6)), Avx2.PermuteVar8x32(d, Vector256.Create(7)), ref lo3, ref hi3);
        }
        y[0] = Vector512.Sum(Vector512.Create(lo0, hi0));
        y[1] = Vector512.Sum(Vector512.Create(lo1, hi1));
        y[2] = Vector512.Sum(Vector512.Create(lo2, hi2));
        y[3] = Vector512.Sum(Vector512.Create(lo3, hi3));
    }

    /// <summary>One row's pair of blocks: the same integer lanes and float operations as <see cref="Mxfp4PairStep"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mxfp4RowStep(Vector512<byte> raw, Vector256<sbyte> xLo, Vector256<sbyte> xHi, Vector512<sbyte> x,
        Vector256<int> startLo, Vector256<int> startHi, Vector512<short> correction, Vector512<byte> nibbleOrder, Vector512<ulong> shift,
        Vector512<sbyte> table, Vector512<byte> low4, Vector256<float> dLo, Vector256<float> dHi, ref Vector256<float> accLo, ref Vector256<float> accHi)
    {
        var nibbles = Avx512F.ShiftRightLogicalVariable(Avx512Vbmi.PermuteVar64x8(raw, nibbleOrder).AsUInt64(), shift).AsByte() & low4;
        var wq = Avx512BW.Shuffle(table, nibbles.AsSByte()).AsByte();
        Vector256<int> pLo, pHi;
        if (AvxVnni.IsSupported)
        {
            pLo = AvxVnni.MultiplyWideningAndAdd(startLo, wq.GetLower(), xLo);
            pHi = AvxVnni.MultiplyWideningAndAdd(startHi, wq.GetUpper(), xHi);
        }
        else
        {
            // |products| ≤ 2·24·127 per pair of bytes, and the difference ≤ 2·12·127: no 16-bit saturation.
            var p = Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(wq, x) - correction, Vector512<short>.One);
            pLo = p.GetLower();
            pHi = p.GetUpper();
        }
        accLo = Fma.MultiplyAdd(Avx.ConvertToVector256Single(pLo), dLo, accLo);
        accHi = Fma.MultiplyAdd(Avx.ConvertToVector256Single(pHi), dHi, accHi);
    }
}
