using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// The MXFP4 decode kernel over four rows at once, in the file layout (gpt-oss's routed experts stay memory-mapped).
// Profiling gpt-oss-20b decode put 55 % of the time in the single-row kernel for 1.27 GB of experts against 19 % for
// 1.3 GB of Q8_0 weights in the interleaved kernel: it was bound by instructions, not memory. Per pair of blocks the
// single-row kernel spends ~40 instructions (two nibble unpacks, |w| and sign select of x, two scalar E8M0 decodes and
// the half-scale broadcasts). Here:
// - one 64-byte load and one vpermb give both blocks' nibbles in activation order, one vpermb the two scale bytes;
// - the weights are looked up as w + 12 (unsigned, 0…24) so vpmaddubsw takes them directly, and 12·Σx (per 4-byte
//   lane) is subtracted once per pair for all four rows: Σ(w + 12)·x − 12·Σx = Σw·x exactly in integers;
// - the scale is vscalefps(d_x, e − 128), the same exactly rounded d_x · 2^(e−128) the scalar path multiplies out;
// - the activation pair, its scales and the correction are loaded once for four rows, and the next four rows are
//   prefetched while these are multiplied.
// Every integer lane and every float operation matches DotMxfp4Avx512's, so the result is bit-identical to it (and so to
// the batched kernel): which kernel a row takes never changes an answer.
internal static unsafe partial class MatVec
{
    /// <summary>Whether <see cref="Mxfp4Rows"/> can run: AVX-512 with VBMI, and an even number of blocks per row.</summary>
    internal static bool Mxfp4RowsSupported(int nb) => Avx512Vbmi.IsSupported && Avx512BW.IsSupported && nb % 2 == 0 && nb > 0;

    // Bytes 1…16 (block 0's nibbles) twice, then bytes 18…33 (block 1's) twice: low nibbles then high ones per block.
    private static readonly Vector512<byte> Mxfp4NibbleOrder = Vector512.Create(
        (byte)1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
        18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33);

    // Byte 0 (block 0's scale) into the low byte of dwords 0…7, byte 17 (block 1's) into dwords 8…15; the rest is masked off.
    private static readonly Vector512<byte> Mxfp4ScaleOrder = Vector512.Create(
        (byte)0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17, 17);

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

    /// <summary>Four consecutive rows (rb bytes apart) against one activation: y[0…3].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Mxfp4Four(byte* w, int rb, byte* a, int nb, float* y)
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        var nibbleOrder = Mxfp4NibbleOrder;
        var scaleOrder = Mxfp4ScaleOrder;
        var shift = Mxfp4HighShift;
        var table = Mxfp4OffsetTable;
        var low4 = Vector512.Create((byte)0x0F);
        var offset = Vector512.Create((byte)Mxfp4Offset);
        var byteMask = Vector512.Create(0xFF);
        var bias = Vector512.Create(128f);
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
            var x = Vector512.Create(Vector256.Load((sbyte*)(a + 2)), Vector256.Load((sbyte*)(a + Q80 + 2)));
            var correction = Avx512BW.MultiplyAddAdjacent(offset, x);
            var dx = Vector512.Create(Vector256.Create(Half(a)), Vector256.Create(Half(a + Q80)));
            Mxfp4FourStep(w, x, correction, dx, nibbleOrder, scaleOrder, shift, table, low4, byteMask, bias, ref acc0);
            Mxfp4FourStep(w + rb, x, correction, dx, nibbleOrder, scaleOrder, shift, table, low4, byteMask, bias, ref acc1);
            Mxfp4FourStep(w + 2 * rb, x, correction, dx, nibbleOrder, scaleOrder, shift, table, low4, byteMask, bias, ref acc2);
            Mxfp4FourStep(w + 3 * rb, x, correction, dx, nibbleOrder, scaleOrder, shift, table, low4, byteMask, bias, ref acc3);
        }
        y[0] = Vector512.Sum(acc0);
        y[1] = Vector512.Sum(acc1);
        y[2] = Vector512.Sum(acc2);
        y[3] = Vector512.Sum(acc3);
    }

    /// <summary>One row's pair of blocks at <paramref name="w"/>: the same lanes and float operations as <see cref="Mxfp4PairStep"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Mxfp4FourStep(byte* w, Vector512<sbyte> x, Vector512<short> correction, Vector512<float> dx,
        Vector512<byte> nibbleOrder, Vector512<byte> scaleOrder, Vector512<ulong> shift, Vector512<sbyte> table,
        Vector512<byte> low4, Vector512<int> byteMask, Vector512<float> bias, ref Vector512<float> acc)
    {
        var raw = Vector512.Load(w);
        var nibbles = Avx512F.ShiftRightLogicalVariable(Avx512Vbmi.PermuteVar64x8(raw, nibbleOrder).AsUInt64(), shift).AsByte() & low4;
        var wq = Avx512BW.Shuffle(table, nibbles.AsSByte()).AsByte();
        // |products| ≤ 2·24·127 per pair of bytes, and the difference ≤ 2·12·127: no 16-bit saturation.
        var pairs = Avx512BW.MultiplyAddAdjacent(wq, x) - correction;
        var p = Avx512BW.MultiplyAddAdjacent(pairs, Vector512<short>.One);
        var e = Avx512Vbmi.PermuteVar64x8(raw, scaleOrder).AsInt32() & byteMask;
        var d = Avx512F.Scale(dx, Avx512F.ConvertToVector512Single(e) - bias);
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), d, acc);
    }
}
