using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// F16 and BF16 weight rows (kept as the file has them: no conversion at load, results exact to float arithmetic).
/// Every product of one row with one token follows one summation order per path, so batched prefill and single-token
/// decode give the same bits: one vector accumulator (16 lanes on AVX-512, 8 on AVX2) takes the row's whole vectors
/// in column order by fused multiply-add, <c>Vector.Sum</c> folds it, and the tail columns are added one by one
/// (multiply, then add). The scalar path (<see cref="MatVec"/>'s reference) keeps one float sum.
/// Decode converts the weights in registers, four rows at a time: four independent accumulator chains share each
/// activation load, and the next four rows are prefetched while these stream (decode of F16 weights only moves bytes:
/// a 1.5B model is 3.1 GB per token), into L2 (<see cref="Prefetch.WideIntoL2"/>). Prefill converts rows to float once per token tile (<see cref="MatMul"/>) and
/// multiplies them with <see cref="FloatDot"/>'s order.
/// </summary>
internal static unsafe class HalfWeights
{
    // F16 weights convert with FloatConvert's finite form (integer steps, a fused multiply-add and a min; exact for
    // every finite half) without its inf/NaN fix-up: decode keeps a running maximum of the halves' magnitudes instead
    // and redoes a row group with the exact scalar conversion when one is inf or NaN (never in real weights), so
    // results are the same.
    private const ushort HalfMagnitude = 0x7FFF, HalfInfNan = 0x7C00;

    /// <summary>The two 16-bit weight formats: how a vector of them becomes floats.</summary>
    private interface IFormat
    {
        static abstract Vector512<float> Load512(ushort* p); // finite values exact; F16 inf/NaN are caught by the caller's check
        static abstract Vector256<float> Load256(ushort* p);
        static abstract float Scalar(ushort h);
        static abstract bool MayHoldInfNan { get; }
        static abstract float ActivationScale { get; } // what the activation is multiplied by as it is loaded
    }

    private struct F16 : IFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load512(ushort* p) => FloatConvert.FiniteHalfToFloat512(Vector256.Load(p));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load256(ushort* p) => FloatConvert.FiniteHalfToFloat256(Vector128.Load(p));

        public static float Scalar(ushort h) => FloatConvert.HalfToFloat(h);
        public static bool MayHoldInfNan => true;
        public static float ActivationScale => 1f;
    }

    /// <summary>F16 rows re-laid by <see cref="ScaledHalves"/>: sign-extend, shift, mask gives w·2^-102, the activation is loaded times 2^102.</summary>
    private struct ScaledF16 : IFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load512(ushort* p) => ScaledHalves.Widen512(Vector256.Load((short*)p));

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load256(ushort* p) => ScaledHalves.Widen256(Vector128.Load((short*)p));

        public static float Scalar(ushort h) => ScaledHalves.Weight(h);
        public static bool MayHoldInfNan => false;
        public static float ActivationScale => ScaledHalves.ActivationScale;
    }

    private struct BF16 : IFormat
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<float> Load512(ushort* p) => (Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe()) << 16).AsSingle();

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<float> Load256(ushort* p) => (Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe()) << 16).AsSingle();

        public static float Scalar(ushort h) => FloatConvert.BF16ToFloat(h);
        public static bool MayHoldInfNan => false;
        public static float ActivationScale => 1f;
    }

    /// <summary>Vector width in floats of a SIMD path (0 for scalar, which this class does not run).</summary>
    public static int Lanes(KernelPath path) => path switch { KernelPath.Avx512 => 16, KernelPath.Avx2 => 8, _ => 0 };

    /// <summary>y[r] = dot(row r, x) for rows [r0, r1) of row-major <paramref name="cols"/>-wide F16/BF16 rows at w (y indexed by absolute row).</summary>
    public static void Rows(GgmlType type, byte* w, int cols, float* x, float* y, int r0, int r1, KernelPath path)
    {
        if (type == GgmlType.F16) Rows<F16>((ushort*)w, cols, x, y, r0, r1, path);
        else Rows<BF16>((ushort*)w, cols, x, y, r0, r1, path);
    }

    /// <summary><see cref="Rows"/> for F16 rows in <see cref="ScaledHalves"/>' layout: the same results, to the bit.</summary>
    public static void ScaledRows(byte* w, int cols, float* x, float* y, int r0, int r1, KernelPath path) =>
        Rows<ScaledF16>((ushort*)w, cols, x, y, r0, r1, path);

    /// <summary>One row's product, in the same order as <see cref="Rows"/>.</summary>
    public static float Dot(GgmlType type, byte* row, int cols, float* x, KernelPath path)
    {
        float y = 0;
        Rows(type, row, cols, x, &y, 0, 1, path);
        return y;
    }

    private static void Rows<TF>(ushort* w, int cols, float* x, float* y, int r0, int r1, KernelPath path) where TF : struct, IFormat
    {
        int r = r0;
        for (; r < r1; r += 4)
        {
            // A short last group repeats its first row in the missing slots (same order, results dropped).
            int count = Math.Min(4, r1 - r);
            ushort* w0 = w + (long)r * cols;
            ushort* w1 = count > 1 ? w0 + cols : w0, w2 = count > 2 ? w0 + 2L * cols : w0, w3 = count > 3 ? w0 + 3L * cols : w0;
            Vector4 sums = path == KernelPath.Avx512 ? Quad512<TF>(w0, w1, w2, w3, cols, x) : Quad256<TF>(w0, w1, w2, w3, cols, x);
            y[r] = sums.S0;
            if (count > 1) y[r + 1] = sums.S1;
            if (count > 2) y[r + 2] = sums.S2;
            if (count > 3) y[r + 3] = sums.S3;
        }
    }

    private struct Vector4
    {
        public float S0, S1, S2, S3;
    }

    private static Vector4 Quad512<TF>(ushort* w0, ushort* w1, ushort* w2, ushort* w3, int cols, float* x) where TF : struct, IFormat
    {
        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector512<ushort> top = default;
        int n = cols & ~15, k = 0;
        long next = 4L * cols; // the following group's rows, prefetched a 64-byte line per row every 32 columns
        for (; k + 32 <= n; k += 32)
        {
            if (Prefetch.Enabled)
            {
                Prefetch.WideLine(w0 + next + k); Prefetch.WideLine(w1 + next + k);
                Prefetch.WideLine(w2 + next + k); Prefetch.WideLine(w3 + next + k);
            }
            if (TF.MayHoldInfNan)
                top = Vector512.Max(top, Vector512.Max(Vector512.Max(Magnitudes(Vector512.Load(w0 + k)), Magnitudes(Vector512.Load(w1 + k))),
                    Vector512.Max(Magnitudes(Vector512.Load(w2 + k)), Magnitudes(Vector512.Load(w3 + k)))));
            var xv = Activation512<TF>(x + k);
            a0 = Vector512.FusedMultiplyAdd(TF.Load512(w0 + k), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(TF.Load512(w1 + k), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(TF.Load512(w2 + k), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(TF.Load512(w3 + k), xv, a3);
            xv = Activation512<TF>(x + k + 16);
            a0 = Vector512.FusedMultiplyAdd(TF.Load512(w0 + k + 16), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(TF.Load512(w1 + k + 16), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(TF.Load512(w2 + k + 16), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(TF.Load512(w3 + k + 16), xv, a3);
        }
        if (k < n)
        {
            if (TF.MayHoldInfNan) // the upper half of each load is zero
                top = Vector512.Max(top, Vector512.Max(Vector512.Max(Magnitudes(Vector256.Load(w0 + k).ToVector512()), Magnitudes(Vector256.Load(w1 + k).ToVector512())),
                    Vector512.Max(Magnitudes(Vector256.Load(w2 + k).ToVector512()), Magnitudes(Vector256.Load(w3 + k).ToVector512()))));
            var xv = Activation512<TF>(x + k);
            a0 = Vector512.FusedMultiplyAdd(TF.Load512(w0 + k), xv, a0);
            a1 = Vector512.FusedMultiplyAdd(TF.Load512(w1 + k), xv, a1);
            a2 = Vector512.FusedMultiplyAdd(TF.Load512(w2 + k), xv, a2);
            a3 = Vector512.FusedMultiplyAdd(TF.Load512(w3 + k), xv, a3);
        }
        if (TF.MayHoldInfNan && Vector512.GreaterThanOrEqualAny(top, Vector512.Create(HalfInfNan)))
            return ExactQuad<TF>(w0, w1, w2, w3, cols, x, KernelPath.Avx512);
        return new Vector4
        {
            S0 = Tail<TF>(Vector512.Sum(a0), w0, x, n, cols), S1 = Tail<TF>(Vector512.Sum(a1), w1, x, n, cols),
            S2 = Tail<TF>(Vector512.Sum(a2), w2, x, n, cols), S3 = Tail<TF>(Vector512.Sum(a3), w3, x, n, cols),
        };
    }

    private static Vector4 Quad256<TF>(ushort* w0, ushort* w1, ushort* w2, ushort* w3, int cols, float* x) where TF : struct, IFormat
    {
        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
        Vector128<ushort> top = default;
        int n = cols & ~7;
        long next = 4L * cols;
        for (int k = 0; k < n; k += 8)
        {
            if (Prefetch.Enabled && (k & 31) == 0)
            {
                Prefetch.WideLine(w0 + next + k); Prefetch.WideLine(w1 + next + k);
                Prefetch.WideLine(w2 + next + k); Prefetch.WideLine(w3 + next + k);
            }
            if (TF.MayHoldInfNan)
                top = Vector128.Max(top, Vector128.Max(Vector128.Max(Vector128.Load(w0 + k) & Vector128.Create(HalfMagnitude), Vector128.Load(w1 + k) & Vector128.Create(HalfMagnitude)),
                    Vector128.Max(Vector128.Load(w2 + k) & Vector128.Create(HalfMagnitude), Vector128.Load(w3 + k) & Vector128.Create(HalfMagnitude))));
            var xv = Activation256<TF>(x + k);
            a0 = Vector256.FusedMultiplyAdd(TF.Load256(w0 + k), xv, a0);
            a1 = Vector256.FusedMultiplyAdd(TF.Load256(w1 + k), xv, a1);
            a2 = Vector256.FusedMultiplyAdd(TF.Load256(w2 + k), xv, a2);
            a3 = Vector256.FusedMultiplyAdd(TF.Load256(w3 + k), xv, a3);
        }
        if (TF.MayHoldInfNan && Vector128.GreaterThanOrEqualAny(top, Vector128.Create(HalfInfNan)))
            return ExactQuad<TF>(w0, w1, w2, w3, cols, x, KernelPath.Avx2);
        return new Vector4
        {
            S0 = Tail<TF>(Vector256.Sum(a0), w0, x, n, cols), S1 = Tail<TF>(Vector256.Sum(a1), w1, x, n, cols),
            S2 = Tail<TF>(Vector256.Sum(a2), w2, x, n, cols), S3 = Tail<TF>(Vector256.Sum(a3), w3, x, n, cols),
        };
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Activation512<TF>(float* x) where TF : struct, IFormat =>
        TF.ActivationScale == 1f ? Vector512.Load(x) : Vector512.Load(x) * Vector512.Create(TF.ActivationScale);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Activation256<TF>(float* x) where TF : struct, IFormat =>
        TF.ActivationScale == 1f ? Vector256.Load(x) : Vector256.Load(x) * Vector256.Create(TF.ActivationScale);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ushort> Magnitudes(Vector512<ushort> h) => h & Vector512.Create(HalfMagnitude);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Tail<TF>(float sum, ushort* w, float* x, int n, int cols) where TF : struct, IFormat
    {
        for (int k = n; k < cols; k++) sum += TF.Scalar(w[k]) * x[k];
        return sum;
    }

    // Rows holding an F16 inf or NaN: each converted exactly into a per-thread row, then the float dot (same order).
    [ThreadStatic] private static float[]? t_exactRow;

    private static Vector4 ExactQuad<TF>(ushort* w0, ushort* w1, ushort* w2, ushort* w3, int cols, float* x, KernelPath path) where TF : struct, IFormat
    {
        if (t_exactRow == null || t_exactRow.Length < cols) t_exactRow = new float[cols];
        fixed (float* row = t_exactRow)
            return new Vector4
            {
                S0 = ExactDot<TF>(w0, row, cols, x, path), S1 = ExactDot<TF>(w1, row, cols, x, path),
                S2 = ExactDot<TF>(w2, row, cols, x, path), S3 = ExactDot<TF>(w3, row, cols, x, path),
            };
    }

    private static float ExactDot<TF>(ushort* w, float* row, int cols, float* x, KernelPath path) where TF : struct, IFormat
    {
        for (int k = 0; k < cols; k++) row[k] = TF.Scalar(w[k]);
        return FloatDot(row, x, cols, path);
    }

    /// <summary>
    /// dot(row, x) for a row already converted to float, in the order of the F16/BF16 kernels on <paramref name="path"/>
    /// (one accumulator over whole vectors, Sum, then the tail multiply-then-add).
    /// </summary>
    public static float FloatDot(float* row, float* x, int cols, KernelPath path)
    {
        if (path == KernelPath.Avx512)
        {
            int n = cols & ~15;
            Vector512<float> acc = default;
            for (int k = 0; k < n; k += 16) acc = Vector512.FusedMultiplyAdd(Vector512.Load(row + k), Vector512.Load(x + k), acc);
            return FloatTail(Vector512.Sum(acc), row, x, n, cols);
        }
        else
        {
            int n = cols & ~7;
            Vector256<float> acc = default;
            for (int k = 0; k < n; k += 8) acc = Vector256.FusedMultiplyAdd(Vector256.Load(row + k), Vector256.Load(x + k), acc);
            return FloatTail(Vector256.Sum(acc), row, x, n, cols);
        }
    }

    /// <summary>Adds columns [n, cols) one by one, multiply then add, as the kernels' tails do.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float FloatTail(float sum, float* row, float* x, int n, int cols)
    {
        for (int k = n; k < cols; k++) sum += row[k] * x[k];
        return sum;
    }
}
