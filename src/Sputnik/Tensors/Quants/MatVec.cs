using System.Buffers.Binary;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>Which implementation of the dot kernels to run.</summary>
internal enum KernelPath
{
    Scalar,
    Avx2,
    Avx512,
}

/// <summary>
/// Matrix × vector products y[r] = dot(weight row r, x) for decode. x is converted once per call into an activation
/// buffer of ggml-cpu's vec_dot_type for the weight type, byte for byte as llama.cpp converts it: Q8_0 blocks (plus
/// per-block sums d*Σq) for Q4_0/Q5_0/Q8_0/MXFP4 weights, Q8_1 (the same blocks, sums as F16(d·Σq)) for Q4_1/Q5_1,
/// Q8_K blocks for Q4_K/Q5_K/Q6_K, floats rounded to F16 / BF16 for F16 / BF16 weights and plain floats for F32; the
/// dot products then run in integers like ggml_vec_dot_*.
/// </summary>
internal static unsafe partial class MatVec
{
    /// <summary>Bytes of one Q8_K activation block.</summary>
    internal const int Q8KBlockBytes = 292;

    internal static readonly KernelPath DefaultPath =
        Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && Avx512F.IsSupported ? KernelPath.Avx512
        : Vector256.IsHardwareAccelerated && Avx2.IsSupported && Fma.IsSupported ? KernelPath.Avx2
        : KernelPath.Scalar;

    /// <summary>True when <paramref name="wType"/> weights can be used here.</summary>
    public static bool IsSupported(GgmlType wType) => ActivationTypeOrNull(wType) is not null;

    /// <summary>The format x is converted to for <paramref name="wType"/> weights (ggml-cpu's vec_dot_type: F32, F16, BF16, Q8_0, Q8_1 or Q8_K; F16 and BF16 are held as rounded floats).</summary>
    public static GgmlType ActivationType(GgmlType wType) =>
        ActivationTypeOrNull(wType) ?? throw new NotSupportedException($"Matrix-vector product with ggml type {wType} weights is not supported");

    private static GgmlType? ActivationTypeOrNull(GgmlType wType) => wType switch
    {
        GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 => wType,
        GgmlType.Q8_0 or GgmlType.Q4_0 or GgmlType.Q5_0 or GgmlType.MXFP4 => GgmlType.Q8_0,
        GgmlType.Q4_1 or GgmlType.Q5_1 => GgmlType.Q8_1,
        GgmlType.Q4_K or GgmlType.Q5_K or GgmlType.Q6_K => GgmlType.Q8_K,
        _ => null,
    };

    /// <summary>Bytes of the activation (scratch) buffer needed for rows of <paramref name="cols"/> weights of <paramref name="wType"/>.</summary>
    public static int ScratchBytes(GgmlType wType, int cols)
    {
        GgmlType a = ActivationType(wType);
        GgmlTypeInfo.RowBytes(wType, cols); // validates the row length
        return a switch
        {
            GgmlType.F32 or GgmlType.F16 or GgmlType.BF16 => cols * 4,
            GgmlType.Q8_0 or GgmlType.Q8_1 => cols / 32 * (34 + 4 + 4 + 4),
            _ => cols / 256 * Q8KBlockBytes,
        };
    }

    /// <summary>Converts x into the activation format for <paramref name="wType"/> weights; <paramref name="scratch"/> needs <see cref="ScratchBytes"/> bytes.</summary>
    public static void QuantizeActivation(GgmlType wType, ReadOnlySpan<float> x, Span<byte> scratch)
    {
        int need = ScratchBytes(wType, x.Length);
        if (scratch.Length < need) throw new ArgumentException($"scratch needs {need} bytes, got {scratch.Length}");
        switch (ActivationType(wType))
        {
            case GgmlType.F32:
                MemoryMarshal.AsBytes(x).CopyTo(scratch);
                break;
            // ggml-cpu converts the input of an F16 (BF16) matrix product to F16 (BF16) first, so the product sees
            // the activation rounded to that type; the kernels read it back as floats.
            case GgmlType.F16:
                FloatConvert.RoundThroughHalf(x, MemoryMarshal.Cast<byte, float>(scratch)[..x.Length]);
                break;
            case GgmlType.BF16:
                FloatConvert.RoundThroughBF16(x, MemoryMarshal.Cast<byte, float>(scratch)[..x.Length]);
                break;
            case GgmlType.Q8_0:
            case GgmlType.Q8_1:
            {
                int nb = x.Length / 32;
                // After the blocks: per-block sums d·Σq (the offset terms of Q4_0/Q4_1/Q5_x), the block scales as
                // floats (so multi-token kernels build their scale vectors without half lookups), then Σq as integers
                // (the correction of Q8_0's interleaved kernels, whose weights are stored plus 128).
                Span<float> sums = MemoryMarshal.Cast<byte, float>(scratch.Slice(nb * 34, nb * 4));
                Span<float> scales = MemoryMarshal.Cast<byte, float>(scratch.Slice(nb * 38, nb * 4));
                Span<int> quantSums = MemoryMarshal.Cast<byte, int>(scratch.Slice(nb * 42, nb * 4));
                bool hasMin = ActivationType(wType) == GgmlType.Q8_1;
                fixed (float* xp = x)
                fixed (byte* bp = scratch)
                {
                    for (int i = 0; i < nb; i++)
                    {
                        Span<byte> blk = scratch.Slice(i * 34, 34);
                        int s;
                        if (ActivationQuant.IsAccelerated) s = ActivationQuant.Q8_0(xp + i * 32, bp + i * 34);
                        else
                        {
                            LegacyQuants.QuantQ8_0Activation(x.Slice(i * 32, 32), blk);
                            s = 0;
                            for (int j = 0; j < 32; j++) s += (sbyte)blk[2 + j];
                        }
                        scales[i] = FloatConvert.ReadHalf(blk, 0);
                        quantSums[i] = s;
                        // Q4_1/Q5_1 weights take ggml's Q8_1 activations: the same quants, and s = d·Σq rounded to
                        // F16 from the unrounded d = amax/127 (quantize_row_q8_1), which their min term multiplies.
                        // Q4_0/Q5_0's kernels subtract their offset with d·Σq where ggml folds it into the integers.
                        sums[i] = hasMin ? Q8_1Sum(x.Slice(i * 32, 32), s) : scales[i] * s;
                    }
                }
                break;
            }
            default:
            {
                int nb = x.Length / 256;
                if (ActivationQuant.IsAccelerated)
                    for (int i = 0; i < nb; i++) ActivationQuant.Q8K(x.Slice(i * 256, 256), scratch.Slice(i * Q8KBlockBytes, Q8KBlockBytes));
                else Quant.Row(GgmlType.Q8_K, x, scratch.Slice(0, nb * Q8KBlockBytes));
                break;
            }
        }
    }

    /// <summary>ggml's Q8_1 block sum s: F16(d·Σq) with d = amax/127 in float, as quantize_row_q8_1 stores it.</summary>
    private static float Q8_1Sum(ReadOnlySpan<float> block, int quantSum)
    {
        float amax = 0;
        foreach (float v in block) amax = MathF.Max(amax, MathF.Abs(v));
        return FloatConvert.HalfToFloat(FloatConvert.FloatToHalf(amax / 127 * quantSum));
    }

    /// <summary>Dot product of one weight row (<paramref name="cols"/> weights) with an activation from <see cref="QuantizeActivation"/>.</summary>
    public static float Dot(GgmlType wType, ReadOnlySpan<byte> weightRow, ReadOnlySpan<byte> activation, int cols) =>
        Dot(wType, weightRow, activation, cols, DefaultPath);

    internal static float Dot(GgmlType wType, ReadOnlySpan<byte> weightRow, ReadOnlySpan<byte> activation, int cols, KernelPath path)
    {
        Check(wType, weightRow.Length, 1, cols, activation.Length);
        fixed (byte* w = weightRow)
        fixed (byte* a = activation)
            return DotRow(wType, w, a, cols, path);
    }

    /// <summary>
    /// y[r] = dot(row r, x) for r in [r0, r1) (y is indexed by absolute row), with x already in <paramref name="activation"/>.
    /// Independent row ranges may run on different threads sharing one activation buffer.
    /// </summary>
    public static void ComputeRows(GgmlType wType, ReadOnlySpan<byte> weights, int cols, ReadOnlySpan<byte> activation, Span<float> y, int r0, int r1) =>
        ComputeRows(wType, weights, cols, activation, y, r0, r1, DefaultPath);

    internal static void ComputeRows(GgmlType wType, ReadOnlySpan<byte> weights, int cols, ReadOnlySpan<byte> activation, Span<float> y, int r0, int r1, KernelPath path)
    {
        int rowBytes = (int)GgmlTypeInfo.RowBytes(wType, cols);
        if (r0 < 0 || r1 < r0 || r1 > y.Length) throw new ArgumentOutOfRangeException(nameof(r1), $"row range [{r0}, {r1}) outside y of {y.Length}");
        Check(wType, weights.Length, r1, cols, activation.Length);
        fixed (byte* w = weights)
        fixed (byte* a = activation)
        {
            if (HasRowsKernel(wType, cols, path))
            {
                fixed (float* py = y) RowsKernel(wType, w, weights.Length, a, cols, py, r0, r1); // four rows at a time, prefetching
                return;
            }
            if (wType is GgmlType.F16 or GgmlType.BF16 && path != KernelPath.Scalar)
            {
                fixed (float* yp = y) HalfWeights.Rows(wType, w, cols, (float*)a, yp, r0, r1, path); // four rows at a time, prefetching
                return;
            }
            if (Prefetch.Enabled && path != KernelPath.Scalar)
            {
                int ahead = Prefetch.Ahead(rowBytes);
                for (int r = r0; r < r1; r++)
                {
                    byte* row = w + (long)r * rowBytes;
                    Prefetch.Lines(row + ahead, rowBytes);
                    y[r] = DotRow(wType, row, a, cols, path);
                }
            }
            else
                for (int r = r0; r < r1; r++) y[r] = DotRow(wType, w + (long)r * rowBytes, a, cols, path);
        }
    }

    /// <summary>
    /// Whether <paramref name="wType"/> rows of <paramref name="cols"/> weights have a kernel that takes four rows at a
    /// time in the file layout on <paramref name="path"/> (MXFP4, Q5_0, Q4_K, Q6_K on AVX-512: MoE experts), giving the
    /// single-row kernel's bits. Decode takes it, and so do the tokens of a batch left over from groups of four.
    /// </summary>
    internal static bool HasRowsKernel(GgmlType wType, int cols, KernelPath path) => path == KernelPath.Avx512 && wType switch
    {
        GgmlType.MXFP4 => Mxfp4RowsSupported(cols / 32),
        GgmlType.Q5_0 => Q5_0PairsSupported,
        GgmlType.Q4_K or GgmlType.Q6_K => KFourRows,
        _ => false,
    };

    /// <summary>y[r] for rows [r0, r1) of the <paramref name="weightBytes"/> of rows at w, one activation: the kernel <see cref="HasRowsKernel"/> found.</summary>
    internal static void RowsKernel(GgmlType wType, byte* w, long weightBytes, byte* a, int cols, float* y, int r0, int r1)
    {
        switch (wType)
        {
            case GgmlType.MXFP4: Mxfp4Rows(w, weightBytes, a, cols / 32, y, r0, r1); break;
            case GgmlType.Q5_0: Q5_0Rows(w, a, cols / 32, y, r0, r1); break;
            case GgmlType.Q4_K: Q4KRows(w, a, cols / 256, y, r0, r1); break;
            case GgmlType.Q6_K: Q6KRows(w, a, cols / 256, y, r0, r1); break;
            default: throw new System.Diagnostics.UnreachableException($"no rows kernel for {wType}; HasRowsKernel guards this");
        }
    }

    /// <summary>y = W x for a row-major <paramref name="rows"/>×<paramref name="cols"/> matrix; <paramref name="scratch"/> needs <see cref="ScratchBytes"/> bytes.</summary>
    public static void Compute(GgmlType wType, ReadOnlySpan<byte> weights, int rows, int cols, ReadOnlySpan<float> x, Span<float> y, Span<byte> scratch)
    {
        if (x.Length != cols) throw new ArgumentException($"x has {x.Length} values, expected {cols}");
        if (y.Length < rows) throw new ArgumentException($"y has {y.Length} values, expected {rows}");
        QuantizeActivation(wType, x, scratch);
        ComputeRows(wType, weights, cols, scratch.Slice(0, ScratchBytes(wType, cols)), y, 0, rows);
    }

    private static void Check(GgmlType wType, int weightBytes, int rows, int cols, int activationBytes)
    {
        long rowBytes = GgmlTypeInfo.RowBytes(wType, cols);
        if (weightBytes < rowBytes * rows) throw new ArgumentException($"{wType} weights need {rowBytes * rows} bytes for {rows} rows of {cols}, got {weightBytes}");
        int need = ScratchBytes(wType, cols);
        if (activationBytes < need) throw new ArgumentException($"activation needs {need} bytes, got {activationBytes}");
    }

    internal static float DotRow(GgmlType wType, byte* w, byte* a, int cols, KernelPath path)
    {
        int nb32 = cols / 32;
        float* sums = (float*)(a + nb32 * 34);
        int nbK = cols / 256;
        switch (wType)
        {
            case GgmlType.F32:
                return TensorPrimitives.Dot(new ReadOnlySpan<float>(w, cols), new ReadOnlySpan<float>(a, cols));
            case GgmlType.F16:
                return path == KernelPath.Scalar ? DotF16Scalar(w, (float*)a, cols) : HalfWeights.Dot(wType, w, cols, (float*)a, path);
            case GgmlType.BF16:
                return path == KernelPath.Scalar ? DotBF16Scalar(w, (float*)a, cols) : HalfWeights.Dot(wType, w, cols, (float*)a, path);
            case GgmlType.Q8_0:
                return path switch { KernelPath.Avx512 => DotQ8_0Avx512(w, a, nb32), KernelPath.Avx2 => DotQ8_0Avx2(w, a, nb32), _ => DotQ8_0Scalar(w, a, nb32) };
            case GgmlType.Q4_0:
                return path switch { KernelPath.Avx512 => DotQ4_0Avx512(w, a, sums, nb32), KernelPath.Avx2 => DotQ4_0Avx2(w, a, sums, nb32), _ => DotQ4_0Scalar(w, a, nb32) };
            case GgmlType.Q4_1:
                return path == KernelPath.Scalar ? DotQ4_1Scalar(w, a, sums, nb32) : DotQ4_1Avx2(w, a, sums, nb32);
            case GgmlType.Q5_0:
                return path == KernelPath.Scalar ? DotQ5_0Scalar(w, a, nb32)
                    : path == KernelPath.Avx512 && Q5_0PairsSupported ? DotQ5_0Avx512(w, a, nb32) : DotQ5Avx2(w, a, sums, nb32, false);
            case GgmlType.Q5_1:
                return path == KernelPath.Scalar ? DotQ5_1Scalar(w, a, sums, nb32) : DotQ5Avx2(w, a, sums, nb32, true);
            case GgmlType.MXFP4:
                return path switch { KernelPath.Avx512 => DotMxfp4Avx512(w, a, nb32), KernelPath.Avx2 => DotMxfp4Avx2(w, a, nb32), _ => DotMxfp4Scalar(w, a, nb32) };
            case GgmlType.Q4_K:
                return path switch { KernelPath.Avx512 => DotK512(w, a, nbK, false), KernelPath.Avx2 => DotQ4_KAvx2(w, a, nbK), _ => DotQ4_KScalar(w, a, nbK) };
            case GgmlType.Q5_K:
                return path switch { KernelPath.Avx512 => DotK512(w, a, nbK, true), KernelPath.Avx2 => DotQ5_KAvx2(w, a, nbK), _ => DotQ5_KScalar(w, a, nbK) };
            case GgmlType.Q6_K:
                return path switch { KernelPath.Avx512 => DotQ6_KAvx512(w, a, nbK), KernelPath.Avx2 => DotQ6_KAvx2(w, a, nbK), _ => DotQ6_KScalar(w, a, nbK) };
            default:
                throw new NotSupportedException($"Matrix-vector product with ggml type {wType} weights is not supported");
        }
    }

    // F16 -> float through a 256 KiB table (like ggml's table_f32_f16): .NET converts Half in software, which is
    // slower than one L1/L2 load per block scale.
    private static readonly float[] HalfTable = BuildHalfTable();
    private static readonly float* HalfTablePtr = (float*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(HalfTable));

    private static float[] BuildHalfTable()
    {
        float[] t = GC.AllocateUninitializedArray<float>(65536, pinned: true);
        for (int i = 0; i < t.Length; i++) t[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return t;
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    private static float Half(byte* p) => HalfTablePtr[*(ushort*)p];

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveInlining)]
    internal static float HalfToFloat(byte* p) => HalfTablePtr[*(ushort*)p];


    // ======================= float weights =======================

    // The scalar references; the SIMD paths are HalfWeights'.
    private static float DotF16Scalar(byte* w, float* x, int n)
    {
        ushort* h = (ushort*)w;
        float sum = 0;
        for (int i = 0; i < n; i++) sum += HalfTablePtr[h[i]] * x[i];
        return sum;
    }

    private static float DotBF16Scalar(byte* w, float* x, int n)
    {
        ushort* h = (ushort*)w;
        float sum = 0;
        for (int i = 0; i < n; i++) sum += BitConverter.Int32BitsToSingle(h[i] << 16) * x[i];
        return sum;
    }
}
