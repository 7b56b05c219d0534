using System.Buffers;
using System.Numerics.Tensors;
using System.Runtime.Intrinsics;

namespace Sputnik.Training;

/// <summary>
/// The one hot kernel of training: C[m,n] (+)= A[m,k]·B[n,k]ᵀ, both operands row-major along k. Every matmul of the
/// forward and backward passes is put in this form (the backward ones after a cheap transpose), so only this loop
/// needs to be fast: a 4×4 register block of Vector512 accumulators (16 FMAs per 8 loads), rows of A split over threads.
/// </summary>
internal static unsafe class Gemm
{
    public static void ABt(float* c, float* a, float* b, int m, int n, int k, bool accumulate)
    {
        long flops = (long)m * n * k;
        int minRows = (int)Math.Clamp(4L * 262144 / Math.Max(1, (long)n * k), 4, 1 << 20);
        Par.For((m + 3) / 4, (blk0, blk1) =>
        {
            for (int blk = blk0; blk < blk1; blk++)
            {
                int i = blk * 4;
                if (i + 4 <= m && Vector512.IsHardwareAccelerated)
                {
                    int j = 0;
                    for (; j + 4 <= n; j += 4) Block4x4(c, a, b, i, j, n, k, accumulate);
                    for (; j < n; j++)
                        for (int ii = i; ii < i + 4; ii++) Single(c, a, b, ii, j, n, k, accumulate);
                }
                else
                {
                    for (int ii = i; ii < Math.Min(m, i + 4); ii++)
                        for (int j = 0; j < n; j++) Single(c, a, b, ii, j, n, k, accumulate);
                }
            }
        }, minPerChunk: flops < 65536 ? int.MaxValue : Math.Max(1, minRows / 4));
    }

    private static void Single(float* c, float* a, float* b, int i, int j, int n, int k, bool acc)
    {
        float d = TensorPrimitives.Dot(new ReadOnlySpan<float>(a + (long)i * k, k), new ReadOnlySpan<float>(b + (long)j * k, k));
        c[(long)i * n + j] = acc ? c[(long)i * n + j] + d : d;
    }

    private static void Block4x4(float* c, float* a, float* b, int i, int j, int n, int k, bool acc)
    {
        float* a0 = a + (long)i * k, a1 = a0 + k, a2 = a1 + k, a3 = a2 + k;
        float* b0 = b + (long)j * k, b1 = b0 + k, b2 = b1 + k, b3 = b2 + k;
        Vector512<float> c00 = default, c01 = default, c02 = default, c03 = default;
        Vector512<float> c10 = default, c11 = default, c12 = default, c13 = default;
        Vector512<float> c20 = default, c21 = default, c22 = default, c23 = default;
        Vector512<float> c30 = default, c31 = default, c32 = default, c33 = default;
        int p = 0;
        for (; p + 16 <= k; p += 16)
        {
            var x0 = Vector512.Load(a0 + p); var x1 = Vector512.Load(a1 + p); var x2 = Vector512.Load(a2 + p); var x3 = Vector512.Load(a3 + p);
            var y = Vector512.Load(b0 + p);
            c00 = Vector512.FusedMultiplyAdd(x0, y, c00); c10 = Vector512.FusedMultiplyAdd(x1, y, c10); c20 = Vector512.FusedMultiplyAdd(x2, y, c20); c30 = Vector512.FusedMultiplyAdd(x3, y, c30);
            y = Vector512.Load(b1 + p);
            c01 = Vector512.FusedMultiplyAdd(x0, y, c01); c11 = Vector512.FusedMultiplyAdd(x1, y, c11); c21 = Vector512.FusedMultiplyAdd(x2, y, c21); c31 = Vector512.FusedMultiplyAdd(x3, y, c31);
            y = Vector512.Load(b2 + p);
            c02 = Vector512.FusedMultiplyAdd(x0, y, c02); c12 = Vector512.FusedMultiplyAdd(x1, y, c12); c22 = Vector512.FusedMultiplyAdd(x2, y, c22); c32 = Vector512.FusedMultiplyAdd(x3, y, c32);
            y = Vector512.Load(b3 + p);
            c03 = Vector512.FusedMultiplyAdd(x0, y, c03); c13 = Vector512.FusedMultiplyAdd(x1, y, c13); c23 = Vector512.FusedMultiplyAdd(x2, y, c23); c33 = Vector512.FusedMultiplyAdd(x3, y, c33);
        }
        Span<float> s = stackalloc float[16];
        s[0] = Vector512.Sum(c00); s[1] = Vector512.Sum(c01); s[2] = Vector512.Sum(c02); s[3] = Vector512.Sum(c03);
        s[4] = Vector512.Sum(c10); s[5] = Vector512.Sum(c11); s[6] = Vector512.Sum(c12); s[7] = Vector512.Sum(c13);
        s[8] = Vector512.Sum(c20); s[9] = Vector512.Sum(c21); s[10] = Vector512.Sum(c22); s[11] = Vector512.Sum(c23);
        s[12] = Vector512.Sum(c30); s[13] = Vector512.Sum(c31); s[14] = Vector512.Sum(c32); s[15] = Vector512.Sum(c33);
        float** ar = stackalloc float*[4] { a0, a1, a2, a3 };
        float** br = stackalloc float*[4] { b0, b1, b2, b3 };
        for (; p < k; p++)
            for (int r = 0; r < 4; r++) for (int q = 0; q < 4; q++) s[r * 4 + q] += ar[r][p] * br[q][p];
        for (int r = 0; r < 4; r++)
        {
            float* crow = c + (long)(i + r) * n + j;
            for (int q = 0; q < 4; q++) crow[q] = acc ? crow[q] + s[r * 4 + q] : s[r * 4 + q];
        }
    }

    /// <summary>dst[cols, rows] = src[rows, cols]ᵀ (blocked so both sides stay in cache).</summary>
    public static void Transpose(float* dst, float* src, int rows, int cols)
    {
        const int B = 32;
        Par.For((rows + B - 1) / B, (b0, b1) =>
        {
            for (int rb = b0 * B; rb < Math.Min(rows, b1 * B); rb += B)
                for (int cb = 0; cb < cols; cb += B)
                    for (int r = rb; r < Math.Min(rows, rb + B); r++)
                        for (int q = cb; q < Math.Min(cols, cb + B); q++)
                            dst[(long)q * rows + r] = src[(long)r * cols + q];
        }, minPerChunk: Math.Max(1, 65536 / Math.Max(1, cols * B)));
    }

    /// <summary>Rented scratch of at least n floats (returned with <see cref="Return"/>).</summary>
    public static float[] Rent(int n) => ArrayPool<float>.Shared.Rent(n);
    public static void Return(float[] a) => ArrayPool<float>.Shared.Return(a);
}
