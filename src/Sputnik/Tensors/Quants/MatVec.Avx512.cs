using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// 512-bit kernels (AVX-512 F/BW): two 32-weight blocks, or 128 weights of a super-block, per iteration.
public static unsafe partial class MatVec
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> MulAddBytes512(Vector512<byte> u, Vector512<sbyte> s) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, s), Vector512<short>.One);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<T> Join<T>(Vector256<T> lo, Vector256<T> hi) => Vector512.Create(lo, hi);

    private static float DotQ8_0Avx512(byte* w, byte* a, int nb)
    {
        var acc = Vector512<float>.Zero;
        int i = 0;
        for (; i + 2 <= nb; i += 2, w += 2 * Q80, a += 2 * Q80)
        {
            var wq = Join(Vector256.Load((sbyte*)(w + 2)), Vector256.Load((sbyte*)(w + Q80 + 2)));
            var xq = Join(Vector256.Load((sbyte*)(a + 2)), Vector256.Load((sbyte*)(a + Q80 + 2)));
            var sx = Vector512.ConditionalSelect(Vector512.LessThan(wq, Vector512<sbyte>.Zero), -xq, xq);
            var p = MulAddBytes512(Avx512BW.Abs(wq), sx);
            var d = Join(Vector256.Create(Half(w) * Half(a)), Vector256.Create(Half(w + Q80) * Half(a + Q80)));
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), d, acc);
        }
        float sum = Vector512.Sum(acc);
        if (i < nb) sum += DotQ8_0Avx2(w, a, nb - i);
        return sum;
    }

    private static float DotQ4_0Avx512(byte* w, byte* a, float* sums, int nb)
    {
        var acc = Vector512<float>.Zero;
        float corr = 0;
        int i = 0;
        for (; i + 2 <= nb; i += 2, w += 36, a += 2 * Q80)
        {
            float d0 = Half(w), d1 = Half(w + 18);
            var q = Join(Nibbles(w + 2), Nibbles(w + 20));
            var xq = Join(Vector256.Load((sbyte*)(a + 2)), Vector256.Load((sbyte*)(a + Q80 + 2)));
            var p = MulAddBytes512(q, xq);
            var d = Join(Vector256.Create(d0 * Half(a)), Vector256.Create(d1 * Half(a + Q80)));
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), d, acc);
            corr += d0 * sums[i] + d1 * sums[i + 1];
        }
        float sum = Vector512.Sum(acc) - 8 * corr;
        if (i < nb) sum += DotQ4_0Avx2(w, a, sums + i, nb - i);
        return sum;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> ScaledPairs512(Vector512<byte> q, Vector512<sbyte> x, int s0, int s1)
    {
        var p = Avx512BW.MultiplyAddAdjacent(q, x);
        return Avx512BW.MultiplyAddAdjacent(p, Join(Vector256.Create((short)s0), Vector256.Create((short)s1)));
    }

    /// <summary>
    /// Q4_K × Q8_K. Chunk c (32 bytes) of a super-block holds sub-block 2c in its low nibbles and 2c+1 in its high
    /// nibbles; unpacked as [low | high] it lines up with 64 contiguous activation bytes x[64c..64c+64). The
    /// multi-token kernel (MatMul) uses the same unpacking and lane order, so batched and single-token products
    /// are bit-identical.
    /// </summary>
    private static float DotQ4_KAvx512(byte* w, byte* a, int nb)
    {
        var acc = Vector512<float>.Zero;
        var minsAcc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, w += 144, a += Q8K)
        {
            var b = Q4KBlock.Unpack(w);
            b.Token(a, ref acc, ref minsAcc);
        }
        return Vector512.Sum(acc) - Vector256.Sum(minsAcc);
    }

    /// <summary>One Q4_K super-block unpacked for the 512-bit kernels: four [low|high] nibble vectors, their scale pairs, the mins.</summary>
    internal readonly struct Q4KBlock
    {
        private readonly Vector512<byte> _q0, _q1, _q2, _q3;
        private readonly Vector512<short> _s0, _s1, _s2, _s3;
        private readonly Vector256<short> _mins;
        private readonly float _d, _dmin;

        private Q4KBlock(byte* w, bool q5)
        {
            var low = Vector256.Create((byte)0x0F);
            ScalesMinsK(w + 4, out ulong sc, out ulong m);
            _d = Half(w);
            _dmin = Half(w + 2);
            if (q5)
            {
                // Q5_K: bit 2c / 2c+1 of qh[l] is the fifth bit of weight l of sub-block 2c / 2c+1
                var qh = Vector256.Load(w + 16).AsUInt16();
                byte* qs = w + 48;
                _q0 = Split5(Vector256.Load(qs), qh, 0, low);
                _q1 = Split5(Vector256.Load(qs + 32), qh, 2, low);
                _q2 = Split5(Vector256.Load(qs + 64), qh, 4, low);
                _q3 = Split5(Vector256.Load(qs + 96), qh, 6, low);
            }
            else
            {
                byte* qs = w + 16;
                _q0 = Split(Vector256.Load(qs), low);
                _q1 = Split(Vector256.Load(qs + 32), low);
                _q2 = Split(Vector256.Load(qs + 64), low);
                _q3 = Split(Vector256.Load(qs + 96), low);
            }
            _s0 = ScalePair(sc, 0);
            _s1 = ScalePair(sc, 2);
            _s2 = ScalePair(sc, 4);
            _s3 = ScalePair(sc, 6);
            _mins = Avx2.ConvertToVector256Int16(Vector128.Shuffle(Vector128.CreateScalar(m).AsByte(),
                Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Q4KBlock Unpack(byte* w) => new(w, false);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Q4KBlock Unpack5(byte* w) => new(w, true);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<byte> Split5(Vector256<byte> b, Vector256<ushort> qh, int bit, Vector256<byte> low)
        {
            var one = Vector256.Create((byte)1);
            // bit k of each byte moved to bit 4 (16-bit shifts; the mask drops what crossed from the neighbour byte)
            var h0 = (((qh >> bit).AsByte() & one).AsUInt16() << 4).AsByte();
            var h1 = (((qh >> (bit + 1)).AsByte() & one).AsUInt16() << 4).AsByte();
            return Join((b & low) | h0, ((b.AsUInt16() >> 4).AsByte() & low) | h1);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<byte> Split(Vector256<byte> b, Vector256<byte> low) => Join(b & low, (b.AsUInt16() >> 4).AsByte() & low);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<short> ScalePair(ulong scales, int lo) =>
            Join(Vector256.Create((short)(byte)(scales >> (8 * lo))), Vector256.Create((short)(byte)(scales >> (8 * lo + 8))));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<int> Scaled(Vector512<byte> q, byte* x, Vector512<short> scale) =>
            Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, Vector512.Load((sbyte*)x)), scale);

        /// <summary>Accumulates this block's product with one Q8_K block <paramref name="a"/>.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Token(byte* a, ref Vector512<float> acc, ref Vector256<float> minsAcc)
        {
            byte* x = a + 4;
            var sumi = Scaled(_q0, x, _s0) + Scaled(_q1, x + 64, _s1) + (Scaled(_q2, x + 128, _s2) + Scaled(_q3, x + 192, _s3));
            float dx = *(float*)a;
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(dx * _d), acc);
            var mt = Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(a + KQuants.Q8KBsumsOffset)), _mins);
            minsAcc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(mt), Vector256.Create(dx * _dmin), minsAcc);
        }
    }

    private static float DotQ5_KAvx512(byte* w, byte* a, int nb)
    {
        var acc = Vector512<float>.Zero;
        var minsAcc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, w += 176, a += Q8K)
            Q4KBlock.Unpack5(w).Token(a, ref acc, ref minsAcc);
        return Vector512.Sum(acc) - Vector256.Sum(minsAcc);
    }

    private static float DotQ6_KAvx512(byte* w, byte* a, int nb)
    {
        var acc = Vector512<float>.Zero;
        var offAcc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, w += 210, a += Q8K)
            Q6KBlock.Unpack(w).Token(a, ref acc, ref offAcc);
        return Vector512.Sum(acc) - Vector256.Sum(offAcc);
    }

    /// <summary>
    /// One Q6_K super-block unpacked for the 512-bit kernels. Per 128-weight half n, [q1|q2] pairs with x[128n..+64)
    /// and [q3|q4] with x[128n+64..+64); the −32 offset is applied once per block as 32·Σ scale_j·bsum_j.
    /// </summary>
    internal readonly struct Q6KBlock
    {
        private readonly Vector512<byte> _q0, _q1, _q2, _q3;
        private readonly Vector512<short> _s0, _s1, _s2, _s3;
        private readonly Vector256<short> _scales;
        private readonly float _d;

        private Q6KBlock(byte* w)
        {
            var low = Vector256.Create((byte)0x0F);
            var m30 = Vector256.Create((byte)0x30);
            _d = Half(w + KQuants.Q6KDOffset);
            _scales = Avx2.ConvertToVector256Int16(Vector128.Load((sbyte*)(w + KQuants.Q6KScalesOffset)));
            var sc = _scales.ToVector512();
            _s0 = Avx512BW.PermuteVar32x16(sc, Vector512.Create((short)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
            _s1 = Avx512BW.PermuteVar32x16(sc, Vector512.Create((short)4, 4, 4, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 7, 7, 7, 7, 7, 7, 7, 7));
            _s2 = Avx512BW.PermuteVar32x16(sc, Vector512.Create((short)8, 8, 8, 8, 8, 8, 8, 8, 9, 9, 9, 9, 9, 9, 9, 9, 10, 10, 10, 10, 10, 10, 10, 10, 11, 11, 11, 11, 11, 11, 11, 11));
            _s3 = Avx512BW.PermuteVar32x16(sc, Vector512.Create((short)12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 13, 13, 13, 13, 14, 14, 14, 14, 14, 14, 14, 14, 15, 15, 15, 15, 15, 15, 15, 15));
            Half6(w, 0, low, m30, out _q0, out _q1);
            Half6(w, 1, low, m30, out _q2, out _q3);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static void Half6(byte* w, int n, Vector256<byte> low, Vector256<byte> m30, out Vector512<byte> q12, out Vector512<byte> q34)
        {
            var ql0 = Vector256.Load(w + 64 * n);
            var ql1 = Vector256.Load(w + 64 * n + 32);
            var qh = Vector256.Load(w + KQuants.Q6KQhOffset + 32 * n).AsUInt16();
            var q1 = (ql0 & low) | ((qh << 4).AsByte() & m30);
            var q2 = (ql1 & low) | ((qh << 2).AsByte() & m30);
            var q3 = ((ql0.AsUInt16() >> 4).AsByte() & low) | (qh.AsByte() & m30);
            var q4 = ((ql1.AsUInt16() >> 4).AsByte() & low) | ((qh >> 2).AsByte() & m30);
            q12 = Join(q1, q2);
            q34 = Join(q3, q4);
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Q6KBlock Unpack(byte* w) => new(w);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        private static Vector512<int> Scaled(Vector512<byte> q, byte* x, Vector512<short> scale) =>
            Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, Vector512.Load((sbyte*)x)), scale);

        /// <summary>Accumulates this block's product with one Q8_K block <paramref name="a"/>; the result is Σacc − Σoff.</summary>
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public void Token(byte* a, ref Vector512<float> acc, ref Vector256<float> offAcc)
        {
            byte* x = a + 4;
            var sumi = Scaled(_q0, x, _s0) + Scaled(_q1, x + 64, _s1) + (Scaled(_q2, x + 128, _s2) + Scaled(_q3, x + 192, _s3));
            float dd = *(float*)a * _d;
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(dd), acc);
            var off = Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(a + KQuants.Q8KBsumsOffset)), _scales);
            offAcc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(off), Vector256.Create(32 * dd), offAcc);
        }
    }
}
