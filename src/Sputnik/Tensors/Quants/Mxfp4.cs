using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// MXFP4 (OCP microscaling FP4, gpt-oss's expert format) as ggml stores it: blocks of 32 weights, one E8M0 scale byte
/// e (the power of two 2^(e−127)) and 16 bytes of E2M1 nibbles, weight j in the low nibble of byte j and weight
/// j + 16 in the high one. ggml keeps the E2M1 values doubled so they are integers (kvalues_mxfp4: 0, ±1, ±2, ±3,
/// ±4, ±6, ±8, ±12) and halves the scale instead (ggml_e8m0_to_fp32_half), which lets the dot product with a Q8_0
/// activation run on 8-bit integers exactly like Q4_0's.
/// </summary>
internal static class Mxfp4
{
    public const int BlockBytes = 17;

    /// <summary>The doubled E2M1 values, indexed by nibble (sign in bit 3).</summary>
    internal static ReadOnlySpan<sbyte> Values => [0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12];

    /// <summary>Half the E8M0 scale, 2^(e−128), exact for every byte (denormals for e &lt; 2), as ggml_e8m0_to_fp32_half.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float HalfScale(byte e) =>
        BitConverter.Int32BitsToSingle(e < 2 ? 0x00200000 << e : (e - 1) << 23);

    public static void Dequant(ReadOnlySpan<byte> b, Span<float> y)
    {
        float d = HalfScale(b[0]);
        var v = Values;
        for (int j = 0; j < 16; j++)
        {
            byte q = b[1 + j];
            y[j] = v[q & 0xF] * d;
            y[j + 16] = v[q >> 4] * d;
        }
    }

    /// <summary>
    /// quantize_row_mxfp4_ref: e = ⌊log2 amax⌋ − 2 + 127 (so the largest magnitude lands near the top value 6·2^(e−127)),
    /// then each weight takes the nearest representable value (first one on ties). A zero block gets e = 0.
    /// </summary>
    public static void Quant(ReadOnlySpan<float> x, Span<byte> b)
    {
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = Math.Max(amax, MathF.Abs(x[j]));
        byte e = amax > 0 ? (byte)(int)(MathF.Floor(MathF.Log2(amax)) - 2 + 127) : (byte)0;
        float d = HalfScale(e);
        b[0] = e;
        for (int j = 0; j < 16; j++) b[1 + j] = (byte)(Nearest(x[j], d) | (Nearest(x[j + 16], d) << 4));
    }

    private static int Nearest(float x, float d)
    {
        var v = Values;
        int best = 0;
        float bestErr = MathF.Abs(v[0] * d - x);
        for (int i = 1; i < 16; i++)
        {
            float err = MathF.Abs(v[i] * d - x);
            if (err < bestErr) { best = i; bestErr = err; }
        }
        return best;
    }
}

// The MXFP4 × Q8_0 dot kernels: per block the nibbles become the doubled E2M1 values by a 16-entry byte shuffle,
// then the signed 8-bit products are summed as for Q8_0 (|w| times x with w's sign), and one float multiply-add
// applies half-scale × activation scale.
internal static unsafe partial class MatVec
{
    private const int Mx = Mxfp4.BlockBytes;

    /// <summary>ggml_vec_dot_mxfp4_q8_0_generic: exact integer sums per block, then d_x · e8m0_half(e) per block.</summary>
    private static float DotMxfp4Scalar(byte* w, byte* a, int nb)
    {
        var v = Mxfp4.Values;
        float sum = 0;
        for (int i = 0; i < nb; i++, w += Mx, a += Q80)
        {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += v[w[1 + j] & 0xF] * (sbyte)a[2 + j] + v[w[1 + j] >> 4] * (sbyte)a[18 + j];
            sum += (Half(a) * Mxfp4.HalfScale(w[0])) * s;
        }
        return sum;
    }

    private static readonly Vector128<sbyte> Mxfp4Table = Vector128.Create((sbyte)0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12);

    /// <summary>The 32 weights of a block as signed bytes (the doubled E2M1 values), in activation order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<sbyte> Mxfp4Values256(byte* qs) =>
        Avx2.Shuffle(Vector256.Create(Mxfp4Table, Mxfp4Table), Nibbles(qs).AsSByte());

    private static float DotMxfp4Avx2(byte* w, byte* a, int nb)
    {
        var acc = Vector256<float>.Zero;
        for (int i = 0; i < nb; i++, w += Mx, a += Q80)
        {
            var wq = Mxfp4Values256(w + 1);
            var p = MulAddBytes(Avx2.Abs(wq), Avx2.Sign(Vector256.Load((sbyte*)(a + 2)), wq));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(Half(a) * Mxfp4.HalfScale(w[0])), acc);
        }
        return Vector256.Sum(acc);
    }

    /// <summary>Two blocks' weights as signed bytes, for the 512-bit kernels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<sbyte> Mxfp4Values512(byte* w) =>
        Avx512BW.Shuffle(Vector512.Create(Vector256.Create(Mxfp4Table, Mxfp4Table), Vector256.Create(Mxfp4Table, Mxfp4Table)),
            Vector512.Create(Nibbles(w + 1), Nibbles(w + Mx + 1)).AsSByte());

    /// <summary>
    /// One pair of blocks of one token: the step <see cref="DotMxfp4Avx512"/> and the 4-token kernel share, so a token
    /// gives the same bits alone and batched.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Mxfp4PairStep(Vector512<byte> absW, Vector512<sbyte> w, float d0, float d1, byte* a, ref Vector512<float> acc)
    {
        var x = Vector512.Create(Vector256.Load((sbyte*)(a + 2)), Vector256.Load((sbyte*)(a + Q80 + 2)));
        var p = MulAddBytes512(absW, WithSignOf(x, w));
        var d = Vector512.Create(Vector256.Create(d0 * Half(a)), Vector256.Create(d1 * Half(a + Q80)));
        acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(p), d, acc);
    }

    private static float DotMxfp4Avx512(byte* w, byte* a, int nb)
    {
        var acc = Vector512<float>.Zero;
        int i = 0;
        for (; i + 2 <= nb; i += 2, w += 2 * Mx, a += 2 * Q80)
        {
            var wq = Mxfp4Values512(w);
            Mxfp4PairStep(Avx512BW.Abs(wq), wq,
                Mxfp4.HalfScale(w[0]), Mxfp4.HalfScale(w[Mx]), a, ref acc);
        }
        float sum = Vector512.Sum(acc);
        if (i < nb) sum += DotMxfp4Avx2(w, a, nb - i);
        return sum;
    }
}

internal static unsafe partial class MatMul
{
    /// <summary>
    /// One MXFP4 row × 4 Q8_0 tokens (rows of a multiple of 64 weights): each pair of blocks is looked up, its
    /// magnitudes and signs split once, and used for all four tokens through the single-token kernel's step.
    /// </summary>
    private static void Mxfp4x4(byte* w, byte* a, int stride, int pairs, float* y, int ldy)
    {
        Vector512<float> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        byte* a0 = a, a1 = a + stride, a2 = a + 2 * stride, a3 = a + 3 * stride;
        for (int i = 0; i < pairs; i++, w += 2 * Mxfp4.BlockBytes, a0 += 2 * Q80, a1 += 2 * Q80, a2 += 2 * Q80, a3 += 2 * Q80)
        {
            var wq = MatVec.Mxfp4Values512(w);
            var abs = Avx512BW.Abs(wq);
            float d0 = Mxfp4.HalfScale(w[0]), d1 = Mxfp4.HalfScale(w[Mxfp4.BlockBytes]);
            MatVec.Mxfp4PairStep(abs, wq, d0, d1, a0, ref acc0);
            MatVec.Mxfp4PairStep(abs, wq, d0, d1, a1, ref acc1);
            MatVec.Mxfp4PairStep(abs, wq, d0, d1, a2, ref acc2);
            MatVec.Mxfp4PairStep(abs, wq, d0, d1, a3, ref acc3);
        }
        y[0] = Vector512.Sum(acc0);
        y[ldy] = Vector512.Sum(acc1);
        y[2 * ldy] = Vector512.Sum(acc2);
        y[3 * ldy] = Vector512.Sum(acc3);
    }
}
