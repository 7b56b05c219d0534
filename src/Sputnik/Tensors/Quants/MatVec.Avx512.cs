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

        private Q4KBlock(byte* w)
        {
            var low = Vector256.Create((byte)0x0F);
            ScalesMinsK(w + 4, out ulong sc, out ulong m);
            _d = Half(w);
            _dmin = Half(w + 2);
            byte* qs = w + 16;
            _q0 = Split(Vector256.Load(qs), low);
            _q1 = Split(Vector256.Load(qs + 32), low);
            _q2 = Split(Vector256.Load(qs + 64), low);
            _q3 = Split(Vector256.Load(qs + 96), low);
            _s0 = ScalePair(sc, 0);
            _s1 = ScalePair(sc, 2);
            _s2 = ScalePair(sc, 4);
            _s3 = ScalePair(sc, 6);
            _mins = Avx2.ConvertToVector256Int16(Vector128.Shuffle(Vector128.CreateScalar(m).AsByte(),
                Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Q4KBlock Unpack(byte* w) => new(w);

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
}
