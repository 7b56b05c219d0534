namespace Sputnik.Tensors.Quants;

/// <summary>
/// The weight types that have a 16-row interleaved layout and kernels (<see cref="Q4KInterleaved"/>,
/// <see cref="Q80Interleaved"/>). A group of 16 rows occupies exactly the bytes of those 16 rows in the file.
/// </summary>
internal static unsafe class Interleaving
{
    public const int Rows = 16;

    /// <summary>Whether a <paramref name="rows"/>×<paramref name="cols"/> matrix of <paramref name="type"/> can be interleaved and run here.</summary>
    public static bool Supports(GgmlType type, int rows, int cols) => type switch
    {
        GgmlType.Q4_K => Q4KInterleaved.IsSupported && Q4KInterleaved.CanInterleave(rows, cols),
        GgmlType.Q8_0 => Q80Interleaved.IsSupported && Q80Interleaved.CanInterleave(rows, cols),
        _ => false,
    };

    public static void InterleaveGroup(GgmlType type, ReadOnlySpan<byte> src, Span<byte> dst, int cols)
    {
        if (type == GgmlType.Q4_K) Q4KInterleaved.InterleaveGroup(src, dst, cols);
        else if (type == GgmlType.Q8_0) Q80Interleaved.InterleaveGroup(src, dst, cols);
        else throw new NotSupportedException($"no interleaved layout for {type}");
    }

    public static void ExtractRow(GgmlType type, ReadOnlySpan<byte> group, int r, Span<byte> row, int cols)
    {
        if (type == GgmlType.Q4_K) Q4KInterleaved.ExtractRow(group, r, row, cols);
        else if (type == GgmlType.Q8_0) Q80Interleaved.ExtractRow(group, r, row, cols);
        else throw new NotSupportedException($"no interleaved layout for {type}");
    }

    /// <summary>y[t·ldy + 16g + r] for groups [g0, g1), rows r of each, tokens [0, tokens); activations as <see cref="MatVec.QuantizeActivation"/> writes them, <paramref name="aStride"/> bytes apart.</summary>
    public static void Compute(GgmlType type, byte* w, int cols, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1)
    {
        if (type == GgmlType.Q4_K) Q4KInterleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else if (type == GgmlType.Q8_0) Q80Interleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else throw new NotSupportedException($"no interleaved layout for {type}");
    }
}
