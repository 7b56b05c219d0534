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
//   exactly rounded product the single-row kernel multiplies out; d_x from the activation's float scales), and a
//   vpermps hands each row its two;
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
        // Read here, not in the kernel: a class-initialisation check there is a call ahead of the loop, and the
        // accumulators, live across it, were then kept in memory.
        int ahead = Prefetch.Enabled ? 4 * rb : 0;
        // A group's 64-byte loads reach 30 bytes past its last row: those rows must not be the last of the buffer.
        for (; r + 4 <= r1 && (long)(r + 4) * rb + 64 <= weightBytes; r += 4)
            Mxfp4Four(w + (long)r * rb, rb, a, nb, y + r, ahead);
        for (; r < r1; r++) y[r] = DotMxfp4Avx512(w + (long)r * rb, a, nb);
    }

    // Picks bytes 0 and 17 (the two scales) of the first row's pair, then of the second's (indices 32 + …).
    private static readonly Vector256<byte> Mxfp4ScalePick = Vector256.Create((byte)0, 17, 32, 49, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);

    /// <summary>Four consecutive rows (rb bytes apart) against one activation: y[0…3]; lines <paramref name="ahead"/> bytes on are prefetched.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Mxfp4Four(byte* w, int rb, byte* a, int nb, float* y, int ahead)
    {
        // Accumulators are values, never passed by reference: a by-reference accumulator kept them in memory (a load
        // and a store per row and pair, and the load-to-store chain bounding the loop).
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        // Constants are read inside the loop (as memory operands): hoisted into locals they outnumbered the registers
        // and the allocator spilled the accumulators instead.
        // The activation blocks' scales as floats, after the blocks and their sums (QuantizeActivation's layout).
        float* dx = (float*)(a + nb * (Q80 + 4));
        // The following group (ahead = 4 rows), prefetched a pair's share at a time; with ahead = 0 the lines being
        // read (a branch in the loop instead also cost the accumulators their registers).
        byte* next = w + ahead;
        for (int i = 0; i < nb; i += 2, w += 2 * Mx, a += 2 * Q80, next += 4 * 2 * Mx)
        {
            Sse.Prefetch0(next);
            Sse.Prefetch0(next + 64);
            Sse.Prefetch0(next + 128);
            var xLo = Vector256.Load((sbyte*)(a + 2));
            var xHi = Vector256.Load((sbyte*)(a + Q80 + 2));
            var x = Mxfp4Joined(xLo, xHi);
            var startLo = Mxfp4Start(xLo);
            var startHi = Mxfp4Start(xHi);
            var correction = Mxfp4Correction(x);
            var r0 = Vector512.Load(w);
            var r1 = Vector512.Load(w + rb);
            var r2 = Vector512.Load(w + 2 * rb);
            var r3 = Vector512.Load(w + 3 * rb);
            var d = Mxfp4Scales(Mxfp4Exponents(r0, r1, r2, r3), dx + i);
            acc0 = Mxfp4Step(acc0, Mxfp4Products(Mxfp4OffsetValues(r0), xLo, xHi, x, startLo, startHi, correction), d, Mxfp4RowScales0);
            acc1 = Mxfp4Step(acc1, Mxfp4Products(Mxfp4OffsetValues(r1), xLo, xHi, x, startLo, startHi, correction), d, Mxfp4RowScales1);
            acc2 = Mxfp4Step(acc2, Mxfp4Products(Mxfp4OffsetValues(r2), xLo, xHi, x, startLo, startHi, correction), d, Mxfp4RowScales2);
            acc3 = Mxfp4Step(acc3, Mxfp4Products(Mxfp4OffsetValues(r3), xLo, xHi, x, startLo, startHi, correction), d, Mxfp4RowScales3);
        }
        y[0] = Vector512.Sum(acc0);
        y[1] = Vector512.Sum(acc1);
        y[2] = Vector512.Sum(acc2);
        y[3] = Vector512.Sum(acc3);
    }

    // The steps of the four-row kernel, shared with the prefill kernel (Mxfp4Tokens.cs) so both give the same bits.

    /// <summary>A token's two blocks of x as one vector (only the kernels without AVX-VNNI use it).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<sbyte> Mxfp4Joined(Vector256<sbyte> xLo, Vector256<sbyte> xHi) =>
        AvxVnni.IsSupported ? default : Avx512F.InsertVector256(xLo.ToVector512Unsafe(), xHi, 1); // (Vector512.Create(lo, hi) went through the stack)

    /// <summary>−12·Σx per 4-byte lane of one block: the start of each row's vpdpbusd sums (AVX-VNNI only).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<int> Mxfp4Start(Vector256<sbyte> x) =>
        AvxVnni.IsSupported ? Vector256<int>.Zero - AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Vector256.Create((byte)Mxfp4Offset), x) : default;

    /// <summary>12·Σx per pair of bytes, subtracted after vpmaddubsw (without AVX-VNNI).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<short> Mxfp4Correction(Vector512<sbyte> x) =>
        AvxVnni.IsSupported ? default : Avx512BW.MultiplyAddAdjacent(Vector512.Create((byte)Mxfp4Offset), x);

    /// <summary>A row's pair of blocks (its 64-byte load) as the doubled E2M1 values plus 12, in activation order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> Mxfp4OffsetValues(Vector512<byte> pair)
    {
        var n = Avx512F.ShiftRightLogicalVariable(Avx512Vbmi.PermuteVar64x8(pair, Mxfp4NibbleOrder).AsUInt64(), Mxfp4HighShift).AsByte();
        return Avx512BW.Shuffle(Mxfp4OffsetTable, (n & Vector512.Create((byte)0x0F)).AsSByte()).AsByte();
    }

    /// <summary>The eight block exponents of four rows' pairs (row 0 block 0, row 0 block 1, row 1 block 0, …) minus 128.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<float> Mxfp4Exponents(Vector512<byte> r0, Vector512<byte> r1, Vector512<byte> r2, Vector512<byte> r3)
    {
        var e01 = Avx512Vbmi.VL.PermuteVar32x8x2(r0.GetLower(), Mxfp4ScalePick, r1.GetLower()).GetLower().AsInt32();
        var e23 = Avx512Vbmi.VL.PermuteVar32x8x2(r2.GetLower(), Mxfp4ScalePick, r3.GetLower()).GetLower().AsInt32();
        var e = Avx2.ConvertToVector256Int32(Sse2.UnpackLow(e01, e23).AsByte());
        return Avx.ConvertToVector256Single(e) - Vector256.Create(128f);
    }

    /// <summary>
    /// The eight scales d_x · 2^(e−128) by vscalefps (the exactly rounded product DotMxfp4Avx512 multiplies out), from
    /// <see cref="Mxfp4Exponents"/> and the token's two block scales at <paramref name="dx"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Mxfp4Scales(Vector256<float> exponents, float* dx) =>
        Avx512F.VL.Scale(Avx2.BroadcastScalarToVector256((double*)dx).AsSingle(), exponents).ToVector512Unsafe();

    /// <summary>
    /// Per 4-byte lane Σ(w + 12)·x − 12·Σx = Σw·x exactly: vpdpbusd from the shared start, or vpmaddubsw (sums below
    /// 2·24·127, their difference below 2·12·127: no 16-bit saturation) and vpmaddwd.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<int> Mxfp4Products(Vector512<byte> q, Vector256<sbyte> xLo, Vector256<sbyte> xHi, Vector512<sbyte> x,
        Vector256<int> startLo, Vector256<int> startHi, Vector512<short> correction) =>
        AvxVnni.IsSupported
            ? Avx512F.InsertVector256(AvxVnni.MultiplyWideningAndAdd(startLo, q.GetLower(), xLo).ToVector512Unsafe(),
                AvxVnni.MultiplyWideningAndAdd(startHi, q.GetUpper(), xHi), 1)
            : Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, x) - correction, Vector512<short>.One);

    /// <summary>DotMxfp4Avx512's float step (Mxfp4PairStep) with the row's two scales picked out of the eight.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Mxfp4Step(Vector512<float> acc, Vector512<int> products, Vector512<float> scales, Vector512<int> rowScales) =>
        Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(products), Avx512F.PermuteVar16x32(scales, rowScales), acc);

    // Indices 2r (eight lanes) then 2r + 1 (eight lanes): row r's block scales from the pair's eight.
    internal static readonly Vector512<int> Mxfp4RowScales0 = Vector512.Create(Vector256.Create(0), Vector256.Create(1));
    internal static readonly Vector512<int> Mxfp4RowScales1 = Vector512.Create(Vector256.Create(2), Vector256.Create(3));
    internal static readonly Vector512<int> Mxfp4RowScales2 = Vector512.Create(Vector256.Create(4), Vector256.Create(5));
    internal static readonly Vector512<int> Mxfp4RowScales3 = Vector512.Create(Vector256.Create(6), Vector256.Create(7));
}
