using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// Q5_0 on AVX-512 with VBMI: two 32-weight blocks (44 bytes) per step, in the file layout. DeepSeek-V2-Lite's routed
// expert down-projections (1,408 columns, not a multiple of 256) are Q5_0 in its Q4_K_M mix, and the 256-bit
// kernel (one block per step: a nibble split, a 32-bit → 32-byte high-bit spread, two half lookups and a scalar
// offset term per block and row) spent ≈ 25 instructions per 22 bytes. Here, per row and pair of blocks:
// - two 32-byte loads (bytes 0…31 and 12…43 of the pair: nothing is read past the pair), one vpermb + vpsrlvq + mask
//   give both blocks' nibbles in activation order, and one vpermb + test spread their 64 high bits to 0x10 bytes;
// - Q5_0's −16 offset is folded into the integers: vpmaddubsw(q, x) − 16·(x pair sums), computed once per
//   activation pair, then vpmaddwd, so there is no scalar offset term;
// - the four rows' eight block scales are converted in one vector (exactly, as the half table does) and multiplied
//   by the activation's two block scales, and vpermps hands each row its two.
// The single-row, four-row and four-token kernels run the same integer lanes and the same float operations in the
// same order (one 16-lane accumulator, the pair's blocks in its two halves; an odd last block on the lower half;
// Vector512.Sum at the end), so a row gives the same bits whichever of them computes it.
internal static unsafe partial class MatVec
{
    /// <summary>Whether the AVX-512 path runs Q5_0 through the pair kernels (they need VBMI's vpermb).</summary>
    internal static bool Q5_0PairsSupported => Avx512Vbmi.IsSupported && Avx512BW.IsSupported;

    private const int Q5_0Bytes = 22;

    /// <summary>The pair at <paramref name="w"/> as [bytes 0…31 | bytes 12…43].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<byte> Q5PairBytes(byte* w) =>
        Avx512F.InsertVector256(Vector256.Load(w).ToVector512Unsafe(), Vector256.Load(w + 12), 1);

    /// <summary>The 64 five-bit weights (0…31) of a pair loaded by <see cref="Q5PairBytes"/>, in activation order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> Q5PairQuants(Vector512<byte> v)
    {
        // Block 0's quants are bytes 6…21, block 1's bytes 28…43 (indices 48…63): each twice, low nibbles then high.
        var nibbleOrder = Vector512.Create((byte)6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
            48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63);
        // Weight j's high bit is bit j % 8 of qh byte j / 8 (block 0's qh: bytes 2…5; block 1's: bytes 24…27, indices 44…47).
        var highOrder = Vector512.Create((byte)2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5,
            44, 44, 44, 44, 44, 44, 44, 44, 45, 45, 45, 45, 45, 45, 45, 45, 46, 46, 46, 46, 46, 46, 46, 46, 47, 47, 47, 47, 47, 47, 47, 47);
        var nibbles = Avx512F.ShiftRightLogicalVariable(Avx512Vbmi.PermuteVar64x8(v, nibbleOrder).AsUInt64(),
            Vector512.Create(0ul, 0, 4, 4, 0, 0, 4, 4)).AsByte() & Vector512.Create((byte)0x0F);
        var bit = Vector512.Create(0x8040201008040201ul).AsByte();
        var high = Vector512.Equals(Avx512Vbmi.PermuteVar64x8(v, highOrder) & bit, bit) & Vector512.Create((byte)0x10);
        return nibbles | high;
    }

    /// <summary>Blocks 2i and 2i+1 of the activation <paramref name="a"/> (already advanced to block 2i) as one vector.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<sbyte> Q8PairX(byte* a) =>
        Avx512F.InsertVector256(Vector256.Load((sbyte*)(a + 2)).ToVector512Unsafe(), Vector256.Load((sbyte*)(a + Q80 + 2)), 1);

    /// <summary>16·(x[2k] + x[2k+1]) per 16-bit lane: the −16 offset's share of vpmaddubsw's pair sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Q5Offset(Vector512<sbyte> x) => Avx512BW.MultiplyAddAdjacent(Vector512.Create((byte)16), x);

    /// <summary>Σ(q − 16)·x per 4-byte lane, exactly (the 16-bit pair sums stay within ±2·16·127).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q5PairProducts(Vector512<byte> q, Vector512<sbyte> x, Vector512<short> offset) =>
        Avx512F.ConvertToVector512Single(Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, x) - offset, Vector512<short>.One));

    /// <summary>An odd row's last block (at <paramref name="w"/>) against activation block <paramref name="a"/>, on the accumulator's lower half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Q5LastBlock(byte* w, byte* a, float dx, Vector512<float> acc)
    {
        var q = Nibbles(w + 6) | (BitsToBytes(*(uint*)(w + 2)) & Vector256.Create((byte)0x10));
        var x = Vector256.Load((sbyte*)(a + 2));
        var p = Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(q, x) - Avx2.MultiplyAddAdjacent(Vector256.Create((byte)16), x), Vector256<short>.One);
        var lower = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(Half(w) * dx), acc.GetLower());
        return Avx512F.InsertVector256(acc, lower, 0);
    }

    /// <summary>One Q5_0 row against one Q8_0 activation, pair by pair (the reference order of the kernels above).</summary>
    private static float DotQ5_0Avx512(byte* w, byte* a, int nb)
    {
        float* dx = (float*)(a + nb * (Q80 + 4));
        var acc = Vector512<float>.Zero;
        int i = 0;
        for (; i + 2 <= nb; i += 2, w += 2 * Q5_0Bytes)
        {
            byte* ai = a + i * Q80;
            var x = Q8PairX(ai);
            var scale = Vector512.Create(Vector256.Create(Half(w) * dx[i]), Vector256.Create(Half(w + Q5_0Bytes) * dx[i + 1]));
            acc = Avx512F.FusedMultiplyAdd(Q5PairProducts(Q5PairQuants(Q5PairBytes(w)), x, Q5Offset(x)), scale, acc);
        }
        if (i < nb) acc = Q5LastBlock(w, a + i * Q80, dx[i], acc);
        return Vector512.Sum(acc);
    }

    /// <summary>y[r] = dot(row r, x) for rows [r0, r1) of Q5_0 rows of <paramref name="nb"/> blocks: four rows at a time, the next four prefetched.</summary>
    internal static void Q5_0Rows(byte* w, byte* a, int nb, float* y, int r0, int r1)
    {
        int rb = nb * Q5_0Bytes;
        int r = r0;
        // Read here, not in the kernel (see Mxfp4Rows).
        int ahead = Prefetch.Enabled ? 4 * rb : 0;
        for (; r + 4 <= r1; r += 4) Q5_0Four(w + (long)r * rb, rb, a, nb, y + r, ahead);
        for (; r < r1; r++) y[r] = DotQ5_0Avx512(w + (long)r * rb, a, nb);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q5_0Four(byte* w, int rb, byte* a, int nb, float* y, int ahead)
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        float* dx = (float*)(a + nb * (Q80 + 4));
        byte* a0 = a, w0 = w;
        byte* next = w + ahead;
        int i = 0;
        for (; i + 2 <= nb; i += 2, w += 2 * Q5_0Bytes, a += 2 * Q80, next += 4 * 2 * Q5_0Bytes)
        {
            Sse.Prefetch0(next);
            Sse.Prefetch0(next + 64);
            Sse.Prefetch0(next + 128);
            var x = Q8PairX(a);
            var offset = Q5Offset(x);
            var v0 = Q5PairBytes(w);
            var v1 = Q5PairBytes(w + rb);
            var v2 = Q5PairBytes(w + 2 * rb);
            var v3 = Q5PairBytes(w + 3 * rb);
            // The eight block scales (row 0 block 0, row 0 block 1, row 1 block 0, …): words 0 and 11 of each pair.
            var pick = Vector256.Create((ushort)0, 11, 16, 27, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
            var h01 = Avx512BW.VL.PermuteVar16x16x2(v0.GetLower().AsUInt16(), pick, v1.GetLower().AsUInt16()).GetLower();
            var h23 = Avx512BW.VL.PermuteVar16x16x2(v2.GetLower().AsUInt16(), pick, v3.GetLower().AsUInt16()).GetLower();
            var halves = Sse2.UnpackLow(h01.AsUInt64(), h23.AsUInt64()).AsUInt16();
            var dPair = Avx2.BroadcastScalarToVector256((double*)(dx + i)).AsSingle(); // dx[i], dx[i + 1] four times
            var d = (FloatConvert.HalfToFloat256(halves) * dPair).ToVector512Unsafe();
            acc0 = Avx512F.FusedMultiplyAdd(Q5PairProducts(Q5PairQuants(v0), x, offset),
                Avx512F.PermuteVar16x32(d, Vector512.Create(Vector256.Create(0), Vector256.Create(1))), acc0);
            acc1 = Avx512F.FusedMultiplyAdd(Q5PairProducts(Q5PairQuants(v1), x, offset),
                Avx512F.PermuteVar16x32(d, Vector512.Create(Vector256.Create(2), Vector256.Create(3))), acc1);
            acc2 = Avx512F.FusedMultiplyAdd(Q5PairProducts(Q5PairQuants(v2), x, offset),
                Avx512F.PermuteVar16x32(d, Vector512.Create(Vector256.Create(4), Vector256.Create(5))), acc2);
            acc3 = Avx512F.FusedMultiplyAdd(Q5PairProducts(Q5PairQuants(v3), x, offset),
                Avx512F.PermuteVar16x32(d, Vector512.Create(Vector256.Create(6), Vector256.Create(7))), acc3);
        }
        if (i < nb)
        {
            byte* ai = a0 + i * Q80;
            byte* wi = w0 + i * Q5_0Bytes;
            acc0 = Q5LastBlock(wi, ai, dx[i], acc0);
            acc1 = Q5LastBlock(wi + rb, ai, dx[i], acc1);
            acc2 = Q5LastBlock(wi + 2 * rb, ai, dx[i], acc2);
            acc3 = Q5LastBlock(wi + 3 * rb, ai, dx[i], acc3);
        }
        y[0] = Vector512.Sum(acc0);
        y[1] = Vector512.Sum(acc1);
        y[2] = Vector512.Sum(acc2);
        y[3] = Vector512.Sum(acc3);
    }

    /// <summary>One Q5_0 row against four Q8_0 tokens (<paramref name="stride"/> bytes apart): each pair is unpacked once for all four.</summary>
    internal static void Q5_0Tokens4(byte* w, byte* a, int stride, int nb, float* y, int ldy)
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        int scalesAt = nb * (Q80 + 4);
        byte* a1 = a + stride, a2 = a + 2 * stride, a3 = a + 3 * stride;
        int i = 0;
        for (; i + 2 <= nb; i += 2, w += 2 * Q5_0Bytes)
        {
            var q = Q5PairQuants(Q5PairBytes(w));
            float d0 = Half(w), d1 = Half(w + Q5_0Bytes);
            int o = i * Q80;
            acc0 = Q5TokenPair(q, d0, d1, a + o, (float*)(a + scalesAt) + i, acc0);
            acc1 = Q5TokenPair(q, d0, d1, a1 + o, (float*)(a1 + scalesAt) + i, acc1);
            acc2 = Q5TokenPair(q, d0, d1, a2 + o, (float*)(a2 + scalesAt) + i, acc2);
            acc3 = Q5TokenPair(q, d0, d1, a3 + o, (float*)(a3 + scalesAt) + i, acc3);
        }
        if (i < nb)
        {
            int o = i * Q80;
            acc0 = Q5LastBlock(w, a + o, ((float*)(a + scalesAt))[i], acc0);
            acc1 = Q5LastBlock(w, a1 + o, ((float*)(a1 + scalesAt))[i], acc1);
            acc2 = Q5LastBlock(w, a2 + o, ((float*)(a2 + scalesAt))[i], acc2);
            acc3 = Q5LastBlock(w, a3 + o, ((float*)(a3 + scalesAt))[i], acc3);
        }
        y[0] = Vector512.Sum(acc0);
        y[ldy] = Vector512.Sum(acc1);
        y[2 * ldy] = Vector512.Sum(acc2);
        y[3 * ldy] = Vector512.Sum(acc3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Q5TokenPair(Vector512<byte> q, float d0, float d1, byte* a, float* dx, Vector512<float> acc)
    {
        var x = Q8PairX(a);
        var scale = Vector512.Create(Vector256.Create(d0 * dx[0]), Vector256.Create(d1 * dx[1]));
        return Avx512F.FusedMultiplyAdd(Q5PairProducts(q, x, Q5Offset(x)), scale, acc);
    }
}
