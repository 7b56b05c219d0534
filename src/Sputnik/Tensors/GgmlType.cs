namespace Sputnik.Tensors;

/// <summary>ggml tensor element types, with the ids GGUF stores on disk.</summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
}

/// <summary>Block geometry of each ggml type: how many weights share one block and how many bytes it takes.</summary>
public static class GgmlTypeInfo
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
