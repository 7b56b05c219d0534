using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// 512-bit kernels (AVX-512 F/BW): two 32-weight blocks, or 128 weights of a super-block, per iteration.
internal static unsafe partial class MatVec
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> MulAddBytes512(Vector512<byte> u, Vector512<sbyte> s) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(u, s), Vector512<short>.One);

    /// <summary>
    /// x negated where the signed weight w is negative: with |w| as vpmaddubsw's unsigned operand the products are
    /// w·x (AVX-512 has no vpsignb). The comparison is written inside the select so the JIT keeps it in a mask
    /// register and negates under it, one masked vpsubb; a select on a byte mask computed apart (and shared by the
    /// tokens of a 4-token kernel) compiled to a mask-to-vector move once a load, then a zeroing, a subtraction and a
    /// blend per token: the Q8_0 4-token kernel ran 2.48 → 2.20 ms (`Sputnik.Bench q4kx 1536 1536 64 Q8_0`, one thread).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<sbyte> WithSignOf(Vector512<sbyte> x, Vector512<sbyte> w) =>
        Vector512.ConditionalSelect(Vector512.LessThan(w, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - x, x);

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
            var p = MulAddBytes512(Avx512BW.Abs(wq), WithSignOf(xq, wq));
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
}
