namespace Sputnik.Tensors;

/// <summary>ggml tensor element types, with the ids GGUF stores on disk.</summary>
public enum GgmlType : uint
{
    /// <summary>32-bit float.</summary>
    F32 = 0,
    /// <summary>IEEE half precision.</summary>
    F16 = 1,
    /// <summary>4-bit, 32-weight blocks with one F16 scale.</summary>
    Q4_0 = 2,
    /// <summary>4-bit, 32-weight blocks with F16 scale and minimum.</summary>
    Q4_1 = 3,
    /// <summary>5-bit, 32-weight blocks with one F16 scale.</summary>
    Q5_0 = 6,
    /// <summary>5-bit, 32-weight blocks with F16 scale and minimum.</summary>
    Q5_1 = 7,
    /// <summary>8-bit, 32-weight blocks with one F16 scale.</summary>
    Q8_0 = 8,
    /// <summary>8-bit blocks with scale and sum (activations).</summary>
    Q8_1 = 9,
    /// <summary>2-bit K-quant (256-weight super-blocks).</summary>
    Q2_K = 10,
    /// <summary>3-bit K-quant.</summary>
    Q3_K = 11,
    /// <summary>4-bit K-quant with 6-bit sub-block scales and minimums.</summary>
    Q4_K = 12,
    /// <summary>5-bit K-quant.</summary>
    Q5_K = 13,
    /// <summary>6-bit K-quant.</summary>
    Q6_K = 14,
    /// <summary>8-bit K-quant (activations for K-quant dot products).</summary>
    Q8_K = 15,
    /// <summary>8-bit integer.</summary>
    I8 = 24,
    /// <summary>16-bit integer.</summary>
    I16 = 25,
    /// <summary>32-bit integer.</summary>
    I32 = 26,
    /// <summary>64-bit integer.</summary>
    I64 = 27,
    /// <summary>64-bit float.</summary>
    F64 = 28,
    /// <summary>bfloat16: the top 16 bits of a float.</summary>
    BF16 = 30,
    /// <summary>OCP MXFP4: 32 E2M1 (4-bit float) weights sharing one E8M0 power-of-two scale (gpt-oss's experts).</summary>
    MXFP4 = 39,
}

/// <summary>Block geometry of each ggml type: how many weights share one block and how many bytes it takes.</summary>
internal static class GgmlTypeInfo
{
    /// <summary>Returns (weights per block, bytes per block), or false when the id is not a type Sputnik knows.</summary>
    public static bool TryGetBlock(GgmlType type, out int blockSize, out int blockBytes)
    {
        (blockSize, blockBytes) = type switch
        {
            GgmlType.F32 => (1, 4),
            GgmlType.F16 => (1, 2),
            GgmlType.BF16 => (1, 2),
            GgmlType.F64 => (1, 8),
            GgmlType.I8 => (1, 1),
            GgmlType.I16 => (1, 2),
            GgmlType.I32 => (1, 4),
            GgmlType.I64 => (1, 8),
            GgmlType.Q4_0 => (32, 18),
            GgmlType.Q4_1 => (32, 20),
            GgmlType.Q5_0 => (32, 22),
            GgmlType.Q5_1 => (32, 24),
            GgmlType.Q8_0 => (32, 34),
            GgmlType.Q8_1 => (32, 36),
            GgmlType.Q2_K => (256, 84),
            GgmlType.Q3_K => (256, 110),
            GgmlType.Q4_K => (256, 144),
            GgmlType.Q5_K => (256, 176),
            GgmlType.Q6_K => (256, 210),
            GgmlType.Q8_K => (256, 292),
            GgmlType.MXFP4 => (32, 17),
            _ => (0, 0),
        };
        return blockSize != 0;
    }

    public static int BlockSize(GgmlType type) => TryGetBlock(type, out int n, out _) ? n : throw new NotSupportedException($"unknown ggml type {(uint)type}");

    public static int BlockBytes(GgmlType type) => TryGetBlock(type, out _, out int b) ? b : throw new NotSupportedException($"unknown ggml type {(uint)type}");

    /// <summary>Bytes taken by one row of <paramref name="n"/> weights; n must be a multiple of the block size.</summary>
    public static long RowBytes(GgmlType type, long n)
    {
        TryGetBlock(type, out int bs, out int bb);
        if (bs == 0) throw new NotSupportedException($"unknown ggml type {(uint)type}");
        if (n % bs != 0) throw new ArgumentException($"row length {n} is not a multiple of the {type} block size {bs}");
        return n / bs * bb;
    }
}
