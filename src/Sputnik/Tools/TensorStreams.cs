using Sputnik.Tensors;

namespace Sputnik.Tools;

/// <summary>Progress of a tool that writes a GGUF tensor by tensor.</summary>
/// <param name="Tensor">Name of the tensor being written.</param>
/// <param name="Index">0-based index of that tensor.</param>
/// <param name="Count">Number of tensors.</param>
/// <param name="BytesDone">Output bytes written so far (all tensors).</param>
/// <param name="BytesTotal">Output bytes of all tensors.</param>
public readonly record struct ToolProgress(string Tensor, int Index, int Count, long BytesDone, long BytesTotal);

/// <summary>Helpers that fill a tensor's bytes in slabs of rows, rows in parallel, and stream each slab out.</summary>
internal static class TensorStreams
{
    /// <summary>Target size of one slab (output bytes) — bounds memory to a few MiB per tensor.</summary>
    public const int SlabBytes = 8 << 20;

    /// <summary>
    /// Writes <paramref name="rows"/> rows of <paramref name="rowBytes"/> bytes each: <paramref name="fillRow"/>(row, dst)
    /// produces one row (called in parallel, so it must only touch its own row), slabs go to <paramref name="output"/> in order.
    /// </summary>
    public static void WriteRows(Stream output, long rows, long rowBytes, int threads, Action<long, Span<byte>> fillRow, Action<long>? written = null)
    {
        if (rowBytes > int.MaxValue / 2) throw new NotSupportedException($"rows of {rowBytes} bytes are too long");
        int perSlab = (int)Math.Clamp(SlabBytes / Math.Max(1, rowBytes), 1, rows);
        var slab = new byte[perSlab * rowBytes];
        var options = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) };
        for (long start = 0; start < rows; start += perSlab)
        {
            int n = (int)Math.Min(perSlab, rows - start);
            long first = start;
            if (n == 1 || threads == 1)
            {
                for (int i = 0; i < n; i++) fillRow(first + i, slab.AsSpan((int)(i * rowBytes), (int)rowBytes));
            }
            else
            {
                // Split the slab into one contiguous chunk of rows per worker: fewer, larger work items.
                int chunks = Math.Min(n, options.MaxDegreeOfParallelism * 4);
                Parallel.For(0, chunks, options, c =>
                {
                    int lo = (int)((long)n * c / chunks), hi = (int)((long)n * (c + 1) / chunks);
                    for (int i = lo; i < hi; i++) fillRow(first + i, slab.AsSpan((int)(i * rowBytes), (int)rowBytes));
                });
            }
            output.Write(slab, 0, (int)(n * rowBytes));
            written?.Invoke(n * rowBytes);
        }
    }

    /// <summary>Copies raw bytes from a pointer in slabs (tensors over 2 GiB included).</summary>
    public static unsafe void CopyRaw(Stream output, byte* src, long bytes, Action<long>? written = null)
    {
        for (long off = 0; off < bytes; off += SlabBytes)
        {
            int n = (int)Math.Min(SlabBytes, bytes - off);
            output.Write(new ReadOnlySpan<byte>(src + off, n));
            written?.Invoke(n);
        }
    }

    public static long RowBytes(GgmlType type, long cols) => GgmlTypeInfo.RowBytes(type, cols);
}
