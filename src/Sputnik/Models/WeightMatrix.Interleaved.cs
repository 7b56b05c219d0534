using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

// Loading the re-laid layouts (16-row interleaved groups, scaled F16 rows) and running the interleaved ones.
internal sealed unsafe partial class WeightMatrix
{
    // Bytes per positioned read at load: few syscalls, the staging buffer stays in L2, and a matrix of a few MB
    // still splits into enough pieces for every core.
    private const int ReadBytes = 256 << 10;

    [ThreadStatic] private static byte[]? t_staging;

    /// <summary>
    /// Reads the tensor with positioned reads (not through the mapping) and re-lays it, in parallel pieces, into an
    /// array of its own or, given an <paramref name="arena"/> that holds a matrix this size, into the arena's current
    /// slab: 16-row groups interleaved, or F16 rows scaled (<see cref="ScaledHalves"/>). Null when an F16 matrix
    /// cannot be scaled (a weight of 64 or more, inf or NaN): it stays in the mapping.
    /// </summary>
    private static byte[]? ReadRelaid(GgufFile file, GgufTensorInfo info, int rows, int cols, out byte* data, RelayArena? arena = null)
    {
        bool scale = info.Type == Tensors.GgmlType.F16;
        int rowBytes = checked((int)Tensors.GgmlTypeInfo.RowBytes(info.Type, cols));
        int unitRows = scale ? 1 : Interleaving.Rows, unitBytes = unitRows * rowBytes;
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
        int units = rows / unitRows;
        int perRead = Math.Max(1, ReadBytes / unitBytes);
        int reads = (units + perRead - 1) / perRead;
        long fileOffset = file.FileOffset(info);
        bool refused = false;
        using var handle = File.OpenHandle(file.ShardPath(info), FileMode.Open, FileAccess.Read, FileShare.Read, FileOptions.RandomAccess);
        // Every matrix goes over the cores: faulting in (zeroing) the fresh pages is most of the cost, and a 1.5B
        // model's matrices are nearly all under 8 MB (the earlier cut-off left two thirds of its load on one core).
        var options = new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount };
        Parallel.For(0, reads, options, (i, loop) =>
        {
            int u0 = i * perRead, u1 = Math.Min(units, u0 + perRead);
            if (t_staging == null || t_staging.Length < perRead * unitBytes) t_staging = new byte[Math.Max(ReadBytes, perRead * unitBytes)];
            var chunk = t_staging.AsSpan(0, (u1 - u0) * unitBytes);
            int got = 0;
            while (got < chunk.Length)
            {
                int n = RandomAccess.Read(handle, chunk[got..], fileOffset + (long)u0 * unitBytes + got);
                if (n <= 0) throw new GgufFormatException($"tensor '{info.Name}': file ends inside its data");
                got += n;
            }
            if (scale)
            {
                var dst = buffer.AsSpan(offset + u0 * unitBytes, chunk.Length);
                if (!ScaledHalves.TryScale(MemoryMarshal.Cast<byte, ushort>(chunk), MemoryMarshal.Cast<byte, ushort>(dst)))
                {
                    refused = true;
                    loop.Stop();
                }
                return;
            }
            for (int g = u0; g < u1; g++)
                Interleaving.InterleaveGroup(info.Type, chunk.Slice((g - u0) * unitBytes, unitBytes),
                    buffer.AsSpan(offset + g * unitBytes, unitBytes), cols);
        });
        data = refused ? null : aligned;
        return refused ? null : buffer;
    }

    /// <summary>Whether this machine re-lays a matrix of this type and shape at load (<see cref="Interleaving"/> or <see cref="ScaledHalves"/>).</summary>
    internal static bool MayRelay(Tensors.GgmlType type, int rows, int cols) =>
        Interleaving.Supports(type, rows, cols) || ScaledHalves.Supports(type, cols);

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
