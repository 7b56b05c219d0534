using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// 512-bit K-quant kernels. The unpacking helpers and the per-token step are shared with the multi-token kernels
// in MatMul, so batched and single-token products use the same lanes in the same order and agree bit for bit.
// Everything is passed by value and inlined: a struct holding the unpacked block was not kept in registers by the
// JIT and ran at half the speed.
internal static unsafe partial class MatVec
{
    /// <summary>
    /// Chunk c (32 bytes) of a Q4_K/Q5_K super-block holds sub-block 2c in its low nibbles and 2c+1 in its high
    /// nibbles; unpacked as [low | high] it lines up with 64 contiguous activation bytes x[64c..64c+64).
    /// Q5_K adds bit 2c / 2c+1 of qh[l] as the fifth bit.
    /// </summary>
    /// <remarks>
    /// The 32 bytes are broadcast to both halves of a 512-bit register and shifted per half with one vpsrlvw
    /// (0 | 4 for the nibbles, 2c | 2c+1 for the fifth bits) instead of being split and joined 256 bits at a time:
    /// decode is close to compute-bound on this work, so every instruction per super-block counts.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> KQuants512(byte* w, int c, bool q5)
    {
        var low = Vector512.Create((byte)0x0F);
        // Shift counts per 16-bit lane, written through Indices so the JIT folds them into constants.
        var half = Vector512<ushort>.Indices >>> 4; // 0 in the low 256 bits, 1 in the high
        var nibbleShift = half << 2;
        if (!q5)
            return Avx512BW.ShiftRightLogicalVariable(Broadcast256(w + 16 + 32 * c), nibbleShift).AsByte() & low;
        var nib = Avx512BW.ShiftRightLogicalVariable(Broadcast256(w + 48 + 32 * c), nibbleShift).AsByte() & low;
        // bit k of every qh byte to bit 4 (16-bit shifts; the mask drops what crossed from the neighbour byte)
        var bitShift = half + Vector512.Create((ushort)(2 * c));
        var hi = Avx512BW.ShiftLeftLogical(Avx512BW.ShiftRightLogicalVariable(Broadcast256(w + 16), bitShift), 4).AsByte();
        return nib | (hi & Vector512.Create((byte)0x10));
    }

    /// <summary>32 bytes at p in both 256-bit halves (the JIT emits one vbroadcasti64x4 from memory).</summary>
    /// <remarks>
    /// Not Avx512F.BroadcastVector256ToVector512(ulong*): with optimizations on, .NET 10.0's JIT folded a computed
    /// address into that intrinsic wrongly and broadcast the stack slot holding the pointer (seen with
    /// DOTNET_TieredCompilation=0; tier-0 code was right, so only optimized code showed it).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Broadcast256(byte* p)
    {
        var v = Vector256.Load(p).AsUInt16();
        return Vector512.Create(v, v);
    }

    /// <summary>
    /// The 6-bit scales and mins of a Q4_K/Q5_K super-block (the 12 bytes at <paramref name="s"/>) as 16 shorts:
    /// scales 0..7 in lanes 0..7, mins 0..7 in lanes 8..15.
    /// </summary>
    /// <remarks>
    /// Vector form of get_scale_min_k4: two byte shuffles gather, for every output, the byte holding its low bits and
    /// the byte holding its top two bits; sub-blocks 0..3 keep 6 bits, 4..7 take a nibble plus two bits from the
    /// first row. About a dozen vector instructions instead of the scalar unpacking's thirty-odd, which mattered:
    /// it ran once per super-block on the decode path. Reads 16 bytes; the block's quants follow the 12 used.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<short> KScalesMins(byte* s)
    {
        var raw = Vector128.Load(s);
        const byte Z = 0x80; // pshufb writes zero for an index with the top bit set
        var lowBytes = Ssse3.Shuffle(raw, Vector128.Create((byte)0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
        var topBytes = Ssse3.Shuffle(raw, Vector128.Create(Z, Z, Z, Z, 0, 1, 2, 3, Z, Z, Z, Z, 4, 5, 6, 7));
        // mins 4..7 sit in the high nibbles of bytes 8..11 (dword 3 of lowBytes)
        var shifted = (lowBytes.AsUInt16() >> 4).AsByte();
        var low = Avx2.Blend(lowBytes.AsInt32(), shifted.AsInt32(), 0b1000).AsByte()
            & Vector128.Create((byte)0x3F, 0x3F, 0x3F, 0x3F, 0x0F, 0x0F, 0x0F, 0x0F, 0x3F, 0x3F, 0x3F, 0x3F, 0x0F, 0x0F, 0x0F, 0x0F);
        var top = (topBytes.AsUInt16() >> 2).AsByte() & Vector128.Create((byte)0x30); // bits 6,7 → 4,5
        return Avx2.ConvertToVector256Int16(low | top);
    }

    /// <summary>Sub-block scales 2c and 2c+1 as 16 shorts each: one vpermw from <see cref="KScalesMins"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<short> KScalePair(Vector256<short> scalesMins, int c) =>
        Avx512BW.PermuteVar32x16(scalesMins.ToVector512Unsafe(), (Vector512<short>.Indices >>> 4) + Vector512.Create((short)(2 * c)));

    /// <summary>
    /// dmin·m0 dmin·m0 dmin·m1 dmin·m1 … dmin·m7 dmin·m7 as floats: the min term of a super-block is this times the
    /// token's float block sums (bsum·d of each 16 quants), one FMA per token.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> KMins(Vector256<short> scalesMins, float dmin)
    {
        var pairs = Avx512BW.VL.PermuteVar16x16(scalesMins, (Vector256<short>.Indices >>> 1) + Vector256.Create((short)8));
        return Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(pairs)) * Vector512.Create(dmin);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Scaled512(Vector512<byte> q, byte* x, Vector512<short> scale) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, Vector512.Load((sbyte*)x)), scale);

    /// <summary>
    /// One Q4_K/Q5_K super-block against one Q8_K block (<paramref name="a"/>) whose float block sums are at
    /// <paramref name="floatSums"/>: the result is Σacc − ΣmAcc.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void KToken(Vector512<byte> q0, Vector512<byte> q1, Vector512<byte> q2, Vector512<byte> q3,
        Vector512<short> s0, Vector512<short> s1, Vector512<short> s2, Vector512<short> s3, Vector512<float> mins,
        byte* a, float* floatSums, float d, ref Vector512<float> acc, ref Vector512<float> mAcc)
    {
        byte* x = a + 4;
        var sumi = Scaled512(q0, x, s0) + Scaled512(q1, x + 64, s1) + (Scaled512(q2, x + 128, s2) + Scaled512(q3, x + 192, s3));
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(*(float*)a * d), acc);
        mAcc = Avx512F.FusedMultiplyAdd(mins, Vector512.Load(floatSums), mAcc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotK512(byte* w, byte* a, int nb, bool q5)
    {
        var acc = Vector512<float>.Zero;
        var mAcc = Vector512<float>.Zero;
        int blockBytes = q5 ? 176 : 144;
        float* fs = (float*)(a + nb * Q8KBlockBytes);
        for (int i = 0; i < nb; i++, w += blockBytes, a += Q8K, fs += 16)
        {
            var sm = KScalesMins(w + 4);
            KToken(KQuants512(w, 0, q5), KQuants512(w, 1, q5), KQuants512(w, 2, q5), KQuants512(w, 3, q5),
                KScalePair(sm, 0), KScalePair(sm, 1), KScalePair(sm, 2), KScalePair(sm, 3), KMins(sm, Half(w + 2)),
                a, fs, Half(w), ref acc, ref mAcc);
        }
        return Vector512.Sum(acc) - Vector512.Sum(mAcc);
    }

    /// <summary>
    /// Q6_K, part k of 4: half n = k/2 of the super-block; k even gives [q1|q2] pairing with x[128n..+64), k odd
    /// [q3|q4] pairing with x[128n+64..+64).
    /// </summary>
    /// <remarks>
    /// ql[64n..64n+64) is one 512-bit load whose halves are exactly [ql0 | ql1]; the two high bits come from qh
    /// broadcast to both halves and shifted per half with one vpsllvw/vpsrlvw (k even: 4 | 2 left; k odd: 0 | 2 right).
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> Q6Quants512(byte* w, int k)
    {
        var low = Vector512.Create((byte)0x0F);
        var m30 = Vector512.Create((byte)0x30);
        int n = k >> 1;
        var ql = Vector512.Load(w + 64 * n);
        var qh = Broadcast256(w + KQuants.Q6KQhOffset + 32 * n);
        if ((k & 1) == 0)
        {
            var up = Avx512BW.ShiftLeftLogicalVariable(qh, Vector512.Create((ushort)4) - ((Vector512<ushort>.Indices >>> 4) << 1));
            return (ql & low) | (up.AsByte() & m30);
        }
        var down = Avx512BW.ShiftRightLogicalVariable(qh, (Vector512<ushort>.Indices >>> 4) << 1);
        return ((ql.AsUInt16() >> 4).AsByte() & low) | (down.AsByte() & m30);
    }

    /// <summary>The 16 Q6_K scales as shorts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<short> Q6Scales(byte* w) => Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(w + KQuants.Q6KScalesOffset)));

    /// <summary>32·d·scale_j as 16 floats: Q6_K's −32 offset is this times the token's float block sums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<float> Q6Offsets(Vector256<short> scales, float d) =>
        Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(scales)) * Vector512.Create(32 * d);

    /// <summary>Scales 4k..4k+3, each repeated for the 8 shorts of its 16 weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<short> Q6Scale512(Vector256<short> scales, int k) =>
        Avx512BW.PermuteVar32x16(scales.ToVector512(), (Vector512<short>.Indices >>> 3) + Vector512.Create((short)(4 * k)));

    /// <summary>One Q6_K super-block against one Q8_K block: the result is Σacc − ΣoffAcc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Q6Token(Vector512<byte> q0, Vector512<byte> q1, Vector512<byte> q2, Vector512<byte> q3,
        Vector512<short> s0, Vector512<short> s1, Vector512<short> s2, Vector512<short> s3, Vector512<float> offsets,
        byte* a, float* floatSums, float d, ref Vector512<float> acc, ref Vector512<float> offAcc)
    {
        byte* x = a + 4;
        var sumi = Scaled512(q0, x, s0) + Scaled512(q1, x + 64, s1) + (Scaled512(q2, x + 128, s2) + Scaled512(q3, x + 192, s3));
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(*(float*)a * d), acc);
        offAcc = Avx512F.FusedMultiplyAdd(offsets, Vector512.Load(floatSums), offAcc);
    }

    private static float DotQ6_KAvx512(byte* w, byte* a, int nb)
    {
        var acc = Vector512<float>.Zero;
        var offAcc = Vector512<float>.Zero;
        float* fs = (float*)(a + nb * Q8KBlockBytes);
        for (int i = 0; i < nb; i++, w += 210, a += Q8K, fs += 16)
        {
            var sc = Q6Scales(w);
            float d = Half(w + KQuants.Q6KDOffset);
            Q6Token(Q6Quants512(w, 0), Q6Quants512(w, 1), Q6Quants512(w, 2), Q6Quants512(w, 3),
                Q6Scale512(sc, 0), Q6Scale512(sc, 1), Q6Scale512(sc, 2), Q6Scale512(sc, 3), Q6Offsets(sc, d),
                a, fs, d, ref acc, ref offAcc);
        }
        return Vector512.Sum(acc) - Vector512.Sum(offAcc);
    }
}
