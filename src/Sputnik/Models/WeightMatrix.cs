using System.Numerics.Tensors;
using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// A read-only weight matrix living in the memory-mapped GGUF file: Rows rows of Cols weights of one ggml
/// type. y = W·x computes one dot product per row, in parallel over row ranges.
/// </summary>
public sealed unsafe class WeightMatrix
{
    private readonly byte* _data;

    public string Name { get; }
    public GgmlType Type { get; }
    public int Rows { get; }
    public int Cols { get; }
    public int RowBytes { get; }

    public WeightMatrix(GgufFile file, GgufTensorInfo info)
    {
        if (info.Dims.Length > 2 && info.Dims[2..].Any(d => d != 1))
            throw new GgufFormatException($"tensor '{info.Name}' has shape [{string.Join(", ", info.Dims)}], expected a matrix");
        Name = info.Name;
        Type = info.Type;
        Cols = checked((int)info.Columns);
        Rows = checked((int)info.Rows);
        RowBytes = checked((int)GgmlTypeInfo.RowBytes(Type, Cols));
        _data = file.DataPointer(info);
    }

    public ReadOnlySpan<byte> RowData(int r) => new(_data + (long)r * RowBytes, RowBytes);

    /// <summary>Decodes row r into float (embedding lookups, norms, biases).</summary>
    public void GetRow(int r, Span<float> dst)
    {
        if ((uint)r >= (uint)Rows) throw new ArgumentOutOfRangeException(nameof(r), $"row {r} of '{Name}' ({Rows} rows)");
        RowFormats.Decode(Type, RowData(r), dst[..Cols]);
    }

    public float[] ToFloatVector()
    {
        var v = new float[(long)Rows * Cols];
        for (int r = 0; r < Rows; r++) GetRow(r, v.AsSpan(r * Cols, Cols));
        return v;
    }

    // One decoded row per thread for types without a direct kernel; allocated once per thread, not per call.
    [ThreadStatic] private static float[]? t_rowScratch;

    /// <summary>y[r] = dot(W[r], x) for rows [r0, r1).</summary>
    public void MatVec(ReadOnlySpan<float> x, Span<float> y, int r0, int r1)
    {
        if (Type == GgmlType.F32)
        {
            var w = new ReadOnlySpan<float>(_data, checked(Rows * Cols));
            for (int r = r0; r < r1; r++) y[r] = TensorPrimitives.Dot(w.Slice(r * Cols, Cols), x);
            return;
        }
        if (t_rowScratch == null || t_rowScratch.Length < Cols) t_rowScratch = new float[Cols];
        var scratch = t_rowScratch.AsSpan(0, Cols);
        for (int r = r0; r < r1; r++)
        {
            RowFormats.Decode(Type, RowData(r), scratch[..Cols]);
            y[r] = TensorPrimitives.Dot(scratch[..Cols], x);
        }
    }
}

/// <summary>Row decoding dispatch for weight rows: float formats inline, quantized formats via the Dequant reference.</summary>
internal static class RowFormats
{
    public static void Decode(GgmlType type, ReadOnlySpan<byte> src, Span<float> dst)
    {
        switch (type)
        {
            case GgmlType.F32:
                MemoryMarshal.Cast<byte, float>(src).CopyTo(dst);
                break;
            case GgmlType.F16:
                TensorPrimitives.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(src), dst);
                break;
            default:
                throw new NotSupportedException($"weights of type {type} are not supported yet");
        }
    }
}
