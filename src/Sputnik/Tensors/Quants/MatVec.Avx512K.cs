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
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> KQuants512(byte* w, int c, bool q5)
    {
        var low = Vector256.Create((byte)0x0F);
        if (!q5)
        {
            var b = Vector256.Load(w + 16 + 32 * c);
            return Join(b & low, (b.AsUInt16() >> 4).AsByte() & low);
        }
        var b5 = Vector256.Load(w + 48 + 32 * c);
        var qh = Vector256.Load(w + 16).AsUInt16();
        var one = Vector256.Create((byte)1);
        // bit k of each byte moved to bit 4 (16-bit shifts; the mask drops what crossed from the neighbour byte)
        var h0 = (((qh >> (2 * c)).AsByte() & one).AsUInt16() << 4).AsByte();
        var h1 = (((qh >> (2 * c + 1)).AsByte() & one).AsUInt16() << 4).AsByte();
        return Join((b5 & low) | h0, ((b5.AsUInt16() >> 4).AsByte() & low) | h1);
    }

    /// <summary>Sub-block scales 2c and 2c+1 as 16 shorts each.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<short> KScalePair(ulong scales, int c) =>
        Join(Vector256.Create((short)(byte)(scales >> (16 * c))), Vector256.Create((short)(byte)(scales >> (16 * c + 8))));

    /// <summary>m0 m0 m1 m1 … m7 m7 as shorts, to pair with the 16 bsums.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<short> KMins(ulong mins) =>
        Avx2.ConvertToVector256Int16(Vector128.Shuffle(Vector128.CreateScalar(mins).AsByte(),
            Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Scaled512(Vector512<byte> q, byte* x, Vector512<short> scale) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, Vector512.Load((sbyte*)x)), scale);

    /// <summary>One Q4_K/Q5_K super-block against one Q8_K block: the result is Σacc − ΣmAcc.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void KToken(Vector512<byte> q0, Vector512<byte> q1, Vector512<byte> q2, Vector512<byte> q3,
        Vector512<short> s0, Vector512<short> s1, Vector512<short> s2, Vector512<short> s3, Vector256<short> mins,
        byte* a, float d, float dmin, ref Vector512<float> acc, ref Vector256<float> mAcc)
    {
        byte* x = a + 4;
        var sumi = Scaled512(q0, x, s0) + Scaled512(q1, x + 64, s1) + (Scaled512(q2, x + 128, s2) + Scaled512(q3, x + 192, s3));
        float dx = *(float*)a;
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(dx * d), acc);
        var mt = Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(a + KQuants.Q8KBsumsOffset)), mins);
        mAcc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(mt), Vector256.Create(dx * dmin), mAcc);
    }

    private static float DotQ4_KAvx512(byte* w, byte* a, int nb) => DotK512(w, a, nb, false);

    private static float DotQ5_KAvx512(byte* w, byte* a, int nb) => DotK512(w, a, nb, true);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float DotK512(byte* w, byte* a, int nb, bool q5)
    {
        var acc = Vector512<float>.Zero;
        var mAcc = Vector256<float>.Zero;
        int blockBytes = q5 ? 176 : 144;
        for (int i = 0; i < nb; i++, w += blockBytes, a += Q8K)
        {
            ScalesMinsK(w + 4, out ulong sc, out ulong m);
            KToken(KQuants512(w, 0, q5), KQuants512(w, 1, q5), KQuants512(w, 2, q5), KQuants512(w, 3, q5),
                KScalePair(sc, 0), KScalePair(sc, 1), KScalePair(sc, 2), KScalePair(sc, 3), KMins(m),
                a, Half(w), Half(w + 2), ref acc, ref mAcc);
        }
        return Vector512.Sum(acc) - Vector256.Sum(mAcc);
    }

    /// <summary>The 16 Q6_K scales as shorts.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<short> Q6Scales(byte* w) => Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(w + KQuants.Q6KScalesOffset)));

    /// <summary>Scales 4k..4k+3, each repeated for the 8 shorts of its 16 weights.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<short> Q6Scale512(Vector256<short> scales, int k) =>
        Avx512BW.PermuteVar32x16(scales.ToVector512(), (Vector512<short>.Indices >>> 3) + Vector512.Create((short)(4 * k)));

    /// <summary>One Q6_K super-block against one Q8_K block: the result is Σacc − ΣoffAcc (the −32 offset as 32·Σ scale·bsum).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Q6Token(Vector512<byte> q0, Vector512<byte> q1, Vector512<byte> q2, Vector512<byte> q3,
        Vector512<short> s0, Vector512<short> s1, Vector512<short> s2, Vector512<short> s3, Vector256<short> scales,
        byte* a, float d, ref Vector512<float> acc, ref Vector256<float> offAcc)
    {
        byte* x = a + 4;
        var sumi = Scaled512(q0, x, s0) + Scaled512(q1, x + 64, s1) + (Scaled512(q2, x + 128, s2) + Scaled512(q3, x + 192, s3));
        float dd = *(float*)a * d;
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(dd), acc);
        var off = Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(a + KQuants.Q8KBsumsOffset)), scales);
        offAcc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(off), Vector256.Create(32 * dd), offAcc);
    }

    private static float DotQ6_KAvx512(byte* w, byte* a, int nb)
    {
        var acc = Vector512<float>.Zero;
        var offAcc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, w += 210, a += Q8K)
        {
            Q6Row(w, a, ref acc, ref offAcc);
        }
        return Vector512.Sum(acc) - Vector256.Sum(offAcc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void UnpackScalesMinsK(byte* s, out ulong scales, out ulong mins) => ScalesMinsK(s, out scales, out mins);
}
