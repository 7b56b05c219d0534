using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

// Loading and running the 16-row interleaved layouts.
internal sealed unsafe partial class WeightMatrix
{
    // Bytes per positioned read at load: few syscalls, the staging buffer stays in L2, and a matrix of a few MB
    // still splits into enough pieces for every core.
    private const int ReadBytes = 256 << 10;

    [ThreadStatic] private static byte[]? t_staging;

    /// <summary>
    /// Reads the tensor with positioned reads (not through the mapping) and interleaves it, groups in parallel, into an
    /// array of its own or, given an <paramref name="arena"/> that holds a matrix this size, into the arena's current slab.
    /// </summary>
    private static byte[] ReadInterleaved(GgufFile file, GgufTensorInfo info, int rows, int cols, out byte* data, RelayArena? arena = null)
    {
        int rowBytes = checked((int)Tensors.GgmlTypeInfo.RowBytes(info.Type, cols));
        int groupBytes = Interleaving.Rows * rowBytes;
        long total = (long)rows * rowBytes;
        byte[] buffer;
        int offset;
        if (arena != null && RelayArena.Holds(total)) buffer = arena.Rent(total, out offset);
        else
        {
            buffer = GC.AllocateUninitializedArray<byte>((int)(total + 64), pinned: true);
            byte* p = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(buffer, 0);
            offset = (int)((((nint)p + 63) & ~(nint)63) - (nint)p);
            Tensors.HugePages.Advise(p + offset, total);
        }
        byte* aligned = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(buffer, offset);
        int groups = rows / Interleaving.Rows;
        int perRead = Math.Max(1, ReadBytes / groupBytes);
        int reads = (groups + perRead - 1) / perRead;
        long fileOffset = file.FileOffset(info);
        using var handle = File.OpenHandle(file.ShardPath(info), FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        // Every matrix goes over the cores: faulting in (zeroing) the fresh pages is most of the cost, and a 1.5B
        // model's matrices are nearly all under 8 MB (the earlier cut-off left two thirds of its load on one core).
        var options = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount };
        Parallel.For(0, reads, options, i =>
        {
            int g0 = i * perRead, g1 = Math.Min(groups, g0 + perRead);
            if (t_staging == null || t_staging.Length < perRead * groupBytes) t_staging = new byte[Math.Max(ReadBytes, perRead * groupBytes)];
            var chunk = t_staging.AsSpan(0, (g1 - g0) * groupBytes);
            int got = 0;
            while (got < chunk.Length)
            {
                int n = RandomAccess.Read(handle, chunk[got..], fileOffset + (long)g0 * groupBytes + got);
                if (n <= 0) throw new GgufFormatException($"tensor '{info.Name}': file ends inside its data");
                got += n;
            }
            for (int g = g0; g < g1; g++)
                Interleaving.InterleaveGroup(info.Type, chunk.Slice((g - g0) * groupBytes, groupBytes),
                    buffer.AsSpan(offset + g * groupBytes, groupBytes), cols);
        });
        data = aligned;
        return buffer;
    }

    // Edge groups of a row range that does not start or end on a group boundary are computed whole into this.
    [ThreadStatic] private static float[]? t_edge;

    /// <summary>y[t·Rows + r] for rows [r0, r1), tokens [0, tokens), through the interleaved kernels.</summary>
    private void InterleavedRows(ReadOnlySpan<byte> input, int tokens, Span<float> y, int r0, int r1)
    {
        const int G = Interleaving.Rows;
        int stride = InputBytes;
        if (input.Length < tokens * stride) throw new ArgumentException($"'{Name}': {tokens} tokens need {tokens * stride} input bytes, got {input.Length}");
        if (r0 < 0 || r1 > Rows || y.Length < (long)(tokens - 1) * Rows + r1)
            throw new ArgumentOutOfRangeException(nameof(r1), $"'{Name}': rows [{r0}, {r1}) of {Rows} for {tokens} tokens do not fit y of {y.Length}");
        int full0 = (r0 + G - 1) / G, full1 = r1 / G;
        fixed (byte* a = input)
        fixed (float* py = y)
        {
            if (full0 < full1) Interleaving.Compute(Type, _data, Cols, a, stride, tokens, py, Rows, full0, full1);
            if (full0 > full1) Edge(a, stride, tokens, py, r0 / G, r0, r1);           // both ends in one group
            else
            {
                if (r0 % G != 0) Edge(a, stride, tokens, py, r0 / G, r0, full0 * G);
                if (r1 % G != 0) Edge(a, stride, tokens, py, full1, full1 * G, r1);
            }
        }
    }

    private void Edge(byte* a, int stride, int tokens, float* y, int g, int lo, int hi)
    {
        const int G = Interleaving.Rows;
        if (t_edge == null || t_edge.Length < tokens * G) t_edge = new float[Math.Max(64, tokens * G)];
        fixed (float* e = t_edge)
        {
            // Shifted so group g lands at e[t·16 .. t·16+16).
            Interleaving.Compute(Type, _data, Cols, a, stride, tokens, e - g * G, G, g, g + 1);
            for (int t = 0; t < tokens; t++)
                for (int r = lo; r < hi; r++) y[(long)t * Rows + r] = e[t * G + r - g * G];
        }
    }
}
