using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

// Multi-token AVX-512 kernels: one weight row against 4 tokens at once. The weights are unpacked (nibbles split,
// scales decoded) once per super-block and reused for every token, which is what makes prefill compute-bound work
// cheaper per token than decode.
public static unsafe partial class MatMul
{
    private const int Group = 4;
    private const int Q8K = 292;

    /// <summary>Computes tokens from t0 on in groups the kernels handle; returns the first token left for the single-token path.</summary>
    private static int MultiTokenAvx512(GgmlType wType, byte* w, int cols, byte* a, int stride, int t0, int t1, float* y, int ldy)
    {
        int t = t0;
        switch (wType)
        {
            case GgmlType.Q4_K:
                for (; t + Group <= t1; t += Group)
                    Q4Kx4(w, a + (long)t * stride, stride, cols / 256, y + (long)t * ldy, ldy);
                break;
        }
        return t;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> ScalePair(ulong scales, int lo, int hi) =>
        Vector512.Create(Vector256.Create((short)(byte)(scales >> (8 * lo))), Vector256.Create((short)(byte)(scales >> (8 * hi))));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Scaled(Vector512<byte> q, byte* x, Vector512<short> scale) =>
        Avx512BW.MultiplyAddAdjacent(Avx512BW.MultiplyAddAdjacent(q, Vector512.Load((sbyte*)x)), scale);

    /// <summary>
    /// One Q4_K row × 4 Q8_K tokens. Chunk c (32 bytes) holds sub-block 2c in its low nibbles and 2c+1 in its high
    /// nibbles; unpacking it as [low | high] lines it up with 64 contiguous activation bytes x[64c..64c+64).
    /// </summary>
    private static void Q4Kx4(byte* w, byte* a, int stride, int nb, float* y, int ldy)
    {
        var low = Vector256.Create((byte)0x0F);
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        Vector256<float> mAcc0 = default, mAcc1 = default, mAcc2 = default, mAcc3 = default;
        byte* a0 = a, a1 = a + stride, a2 = a + 2 * stride, a3 = a + 3 * stride;
        for (int i = 0; i < nb; i++, w += 144, a0 += Q8K, a1 += Q8K, a2 += Q8K, a3 += Q8K)
        {
            UnpackScalesMinsK(w + 4, out ulong sc, out ulong m);
            float d = Half(w), dmin = Half(w + 2);
            byte* qs = w + 16;
            var b0 = Vector256.Load(qs);
            var b1 = Vector256.Load(qs + 32);
            var b2 = Vector256.Load(qs + 64);
            var b3 = Vector256.Load(qs + 96);
            var q0 = Vector512.Create(b0 & low, (b0.AsUInt16() >> 4).AsByte() & low);
            var q1 = Vector512.Create(b1 & low, (b1.AsUInt16() >> 4).AsByte() & low);
            var q2 = Vector512.Create(b2 & low, (b2.AsUInt16() >> 4).AsByte() & low);
            var q3 = Vector512.Create(b3 & low, (b3.AsUInt16() >> 4).AsByte() & low);
            var s0 = ScalePair(sc, 0, 1);
            var s1 = ScalePair(sc, 2, 3);
            var s2 = ScalePair(sc, 4, 5);
            var s3 = ScalePair(sc, 6, 7);
            var mins = Avx2.ConvertToVector256Int16(Vector128.Shuffle(Vector128.CreateScalar(m).AsByte(),
                Vector128.Create((byte)0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7)));

            Token(q0, q1, q2, q3, s0, s1, s2, s3, mins, a0, d, dmin, ref acc0, ref mAcc0);
            Token(q0, q1, q2, q3, s0, s1, s2, s3, mins, a1, d, dmin, ref acc1, ref mAcc1);
            Token(q0, q1, q2, q3, s0, s1, s2, s3, mins, a2, d, dmin, ref acc2, ref mAcc2);
            Token(q0, q1, q2, q3, s0, s1, s2, s3, mins, a3, d, dmin, ref acc3, ref mAcc3);
        }
        y[0] = Vector512.Sum(acc0) - Vector256.Sum(mAcc0);
        y[ldy] = Vector512.Sum(acc1) - Vector256.Sum(mAcc1);
        y[2 * ldy] = Vector512.Sum(acc2) - Vector256.Sum(mAcc2);
        y[3 * ldy] = Vector512.Sum(acc3) - Vector256.Sum(mAcc3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Token(Vector512<byte> q0, Vector512<byte> q1, Vector512<byte> q2, Vector512<byte> q3,
        Vector512<short> s0, Vector512<short> s1, Vector512<short> s2, Vector512<short> s3, Vector256<short> mins,
        byte* a, float d, float dmin, ref Vector512<float> acc, ref Vector256<float> mAcc)
    {
        byte* x = a + 4;
        var sumi = Scaled(q0, x, s0) + Scaled(q1, x + 64, s1) + (Scaled(q2, x + 128, s2) + Scaled(q3, x + 192, s3));
        float dx = *(float*)a;
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(dx * d), acc);
        var mt = Avx2.MultiplyAddAdjacent(Vector256.Load((short*)(a + KQuants.Q8KBsumsOffset)), mins);
        mAcc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(mt), Vector256.Create(dx * dmin), mAcc);
    }

    // F16 scale → float through the matvec kernels' lookup table.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Half(byte* p) => MatVec.HalfToFloat(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void UnpackScalesMinsK(byte* s, out ulong scales, out ulong mins) => MatVec.UnpackScalesMinsK(s, out scales, out mins);
}
