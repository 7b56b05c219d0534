using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Training;

/// <summary>Which part of a causal product can be skipped (see <see cref="Gemm.Mul"/>).</summary>
internal enum Causal
{
    None,
    /// <summary>Row i only needs columns j ≤ i (scores q·kᵀ): columns past the row block are not written.</summary>
    Columns,
    /// <summary>A[i, p] is zero for p &gt; i (probabilities times values): the depth loop stops at the row block's end.</summary>
    Depth,
    /// <summary>A[i, p] is zero for p &lt; i (transposed probabilities, for dK and dV): the depth loop starts at the row block.</summary>
    DepthFrom,
}

/// <summary>
/// The one hot kernel of training: C[m,n] (+)= A[m,k]·B[k,n] with B row-major along n, vectorised along n: a 4×32
/// register block (8 Vector512 accumulators) updated by broadcasting one A element per row against two rows of B,
/// so there is no horizontal sum and every FMA is useful. A is addressed through (row, column) strides, which makes
/// Aᵀ free (the weight-gradient and dK/dV products read the activations transposed in place). Depth is blocked in
/// 256-deep slices so the B panel a row block streams stays in L1; column tails use masked loads and stores.
/// </summary>
internal static unsafe class Gemm
{
    private const int Mr = 4, Nr = 32, Kc = 256;

    /// <summary>
    /// C[i*ldc + j] (+)= Σ_p A(i,p)·B[p*ldb + j] with A(i,p) = a[i*ars + p*acs]; rows split over <see cref="Par"/>.
    /// </summary>
    public static void Mul(float* c, int ldc, float* a, int ars, int acs, float* b, int ldb, int m, int n, int k, bool accumulate, Causal causal = Causal.None)
    {
        long flops = (long)m * n * k;
        int blocks = (m + Mr - 1) / Mr;
        int minBlocks = flops < 1 << 18 ? int.MaxValue : Math.Max(1, (int)(blocks * (1L << 18) / flops));
        Par.For(blocks, (b0, b1) => MulRows(c, ldc, a, ars, acs, b, ldb, m, n, k, accumulate, causal, b0 * Mr, Math.Min(m, b1 * Mr)), minBlocks);
    }

    /// <summary>The same product restricted to rows [i0, i1), on the calling thread (for callers that parallelise outside).</summary>
    public static void MulRows(float* c, int ldc, float* a, int ars, int acs, float* b, int ldb, int m, int n, int k, bool accumulate, Causal causal, int i0, int i1)
    {
        if (!Avx512F.IsSupported) { MulRowsPortable(c, ldc, a, ars, acs, b, ldb, n, k, accumulate, causal, i0, i1); return; }
        for (int p0 = 0; p0 < k; p0 += Kc)
        {
            int kc = Math.Min(Kc, k - p0);
            bool acc = accumulate || p0 > 0;
            for (int j = 0; j < n; j += Nr)
            {
                for (int i = i0; i < i1; i += Mr)
                {
                    int rows = Math.Min(Mr, i1 - i);
                    int rowEnd = i + rows;                       // causal limits are set by the block's last row
                    if (causal == Causal.Columns && j >= rowEnd) continue;
                    int pBeg = causal == Causal.DepthFrom ? Math.Clamp(i - p0, 0, kc) : 0;
                    int pEnd = causal == Causal.Depth ? Math.Clamp(rowEnd - p0, 0, kc) : kc;
                    int depth = pEnd - pBeg;
                    if (depth <= 0) { if (!acc) ZeroBlock(c, ldc, i, rows, j, Math.Min(Nr, n - j)); continue; }
                    var (m0, m1) = Masks(Math.Min(Nr, n - j));
                    float* ap = a + (long)i * ars + (long)(p0 + pBeg) * acs, bp = b + (long)(p0 + pBeg) * ldb + j, cp = c + (long)i * ldc + j;
                    if (rows == Mr) Kernel4(cp, ldc, ap, ars, acs, bp, ldb, depth, m0, m1, acc);
                    else for (int r = 0; r < rows; r++) Kernel1(cp + (long)r * ldc, ap + (long)r * ars, acs, bp, ldb, depth, m0, m1, acc);
                }
            }
        }
    }

    /// <summary>Row-at-a-time fallback for CPUs without AVX-512 (same results up to summation order).</summary>
    internal static void MulRowsPortable(float* c, int ldc, float* a, int ars, int acs, float* b, int ldb, int n, int k, bool accumulate, Causal causal, int i0, int i1)
    {
        for (int i = i0; i < i1; i++)
        {
            var crow = new Span<float>(c + (long)i * ldc, causal == Causal.Columns ? Math.Min(n, i + 1) : n);
            if (!accumulate) crow.Clear();
            int pBeg = causal == Causal.DepthFrom ? Math.Min(k, i) : 0, pEnd = causal == Causal.Depth ? Math.Min(k, i + 1) : k;
            for (int p = pBeg; p < pEnd; p++)
                System.Numerics.Tensors.TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(b + (long)p * ldb, crow.Length), a[(long)i * ars + (long)p * acs], crow, crow);
        }
    }

    private static void ZeroBlock(float* c, int ldc, int i, int rows, int j, int cols)
    {
        for (int r = 0; r < rows; r++) new Span<float>(c + (long)(i + r) * ldc + j, cols).Clear();
    }

    /// <summary>Lane masks for a column block of width w ≤ 32 (all ones for full blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static (Vector512<float>, Vector512<float>) Masks(int w)
    {
        var lane = Vector512<int>.Indices;
        return (Vector512.LessThan(lane, Vector512.Create(w)).AsSingle(), Vector512.LessThan(lane, Vector512.Create(w - 16)).AsSingle());
    }

    private static void Kernel4(float* c, int ldc, float* a, int ars, int acs, float* b, int ldb, int k, Vector512<float> m0, Vector512<float> m1, bool acc)
    {
        var z = Vector512<float>.Zero;
        Vector512<float> c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
        float* a0 = a, a1 = a + ars, a2 = a1 + ars, a3 = a2 + ars;
        for (int p = 0; p < k; p++)
        {
            float* bp = b + (long)p * ldb;
            var y0 = Avx512F.MaskLoad(bp, m0, z);
            var y1 = Avx512F.MaskLoad(bp + 16, m1, z);
            long o = (long)p * acs;
            var x = Vector512.Create(a0[o]);
            c00 = Vector512.FusedMultiplyAdd(x, y0, c00); c01 = Vector512.FusedMultiplyAdd(x, y1, c01);
            x = Vector512.Create(a1[o]);
            c10 = Vector512.FusedMultiplyAdd(x, y0, c10); c11 = Vector512.FusedMultiplyAdd(x, y1, c11);
            x = Vector512.Create(a2[o]);
            c20 = Vector512.FusedMultiplyAdd(x, y0, c20); c21 = Vector512.FusedMultiplyAdd(x, y1, c21);
            x = Vector512.Create(a3[o]);
            c30 = Vector512.FusedMultiplyAdd(x, y0, c30); c31 = Vector512.FusedMultiplyAdd(x, y1, c31);
        }
        Store(c, m0, m1, c00, c01, acc);
        Store(c + ldc, m0, m1, c10, c11, acc);
        Store(c + 2L * ldc, m0, m1, c20, c21, acc);
        Store(c + 3L * ldc, m0, m1, c30, c31, acc);
    }

    private static void Kernel1(float* c, float* a, int acs, float* b, int ldb, int k, Vector512<float> m0, Vector512<float> m1, bool acc)
    {
        var z = Vector512<float>.Zero;
        Vector512<float> c0 = z, c1 = z;
        for (int p = 0; p < k; p++)
        {
            float* bp = b + (long)p * ldb;
            var x = Vector512.Create(a[(long)p * acs]);
            c0 = Vector512.FusedMultiplyAdd(x, Avx512F.MaskLoad(bp, m0, z), c0);
            c1 = Vector512.FusedMultiplyAdd(x, Avx512F.MaskLoad(bp + 16, m1, z), c1);
        }
        Store(c, m0, m1, c0, c1, acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store(float* c, Vector512<float> m0, Vector512<float> m1, Vector512<float> v0, Vector512<float> v1, bool acc)
    {
        if (acc)
        {
            v0 += Avx512F.MaskLoad(c, m0, Vector512<float>.Zero);
            v1 += Avx512F.MaskLoad(c + 16, m1, Vector512<float>.Zero);
        }
        Avx512F.MaskStore(c, m0, v0);
        Avx512F.MaskStore(c + 16, m1, v1);
    }

    /// <summary>C[m,n] (+)= A[m,k]·B[n,k]ᵀ with both operands row-major along k (B is transposed into scratch first).</summary>
    public static void ABt(float* c, float* a, float* b, int m, int n, int k, bool accumulate)
    {
        var bt = Rent(n * k);
        try
        {
            fixed (float* pbt = bt)
            {
                Transpose(pbt, b, n, k);
                Mul(c, n, a, k, 1, pbt, n, m, n, k, accumulate);
            }
        }
        finally { Return(bt); }
    }

    /// <summary>dst[cols, rows] = src[rows, cols]ᵀ, row blocks split over <see cref="Par"/>.</summary>
    public static void Transpose(float* dst, float* src, int rows, int cols)
    {
        const int B = 32;
        Par.For((rows + B - 1) / B, (b0, b1) =>
        {
            int r0 = b0 * B, r1 = Math.Min(rows, b1 * B);
            Transpose(dst + r0, rows, src + (long)r0 * cols, cols, r1 - r0, cols);
        }, minPerChunk: Math.Max(1, 65536 / Math.Max(1, cols * B)));
    }

    /// <summary>dst[q*ldd + r] = src[r*lds + q] for r &lt; rows, q &lt; cols, on the calling thread (32×32 tiles stay in cache).</summary>
    public static void Transpose(float* dst, int ldd, float* src, int lds, int rows, int cols)
    {
        const int B = 32;
        for (int rb = 0; rb < rows; rb += B)
            for (int cb = 0; cb < cols; cb += B)
                for (int r = rb; r < Math.Min(rows, rb + B); r++)
                    for (int q = cb; q < Math.Min(cols, cb + B); q++)
                        dst[(long)q * ldd + r] = src[(long)r * lds + q];
    }

    /// <summary>Rented scratch of at least n floats (returned with <see cref="Return"/>).</summary>
    public static float[] Rent(int n) => ArrayPool<float>.Shared.Rent(n);
    public static void Return(float[] a) => ArrayPool<float>.Shared.Return(a);
}
