using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>Load-time helpers shared by the interleaving routines: 16 rows' 32-bit words gathered into one slot.</summary>
internal static unsafe class Interleaved
{
    /// <summary>The 32-bit words at p + rowsLo[i] (rows 0..7) and p + rowsHi[i] (rows 8..15).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Gather16(byte* p, Vector256<int> rowsLo, Vector256<int> rowsHi, out Vector256<int> lo, out Vector256<int> hi)
    {
        lo = Avx2.GatherVector256((int*)p, rowsLo, 1);
        hi = Avx2.GatherVector256((int*)p, rowsHi, 1);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Gather16To(byte* p, Vector256<int> rowsLo, Vector256<int> rowsHi, byte* dst)
    {
        Gather16(p, rowsLo, rowsHi, out var lo, out var hi);
        lo.Store((int*)dst);
        hi.Store((int*)(dst + 32));
    }

    /// <summary>The low 16 bits of each of the 16 words, in order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<ushort> LowHalves(Vector256<int> lo, Vector256<int> hi) =>
        Vector256.Narrow(lo.AsUInt32() & Vector256.Create(0xFFFFu), hi.AsUInt32() & Vector256.Create(0xFFFFu));
}

/// <summary>The per-group kernels of one interleaved format: 16 rows × all blocks, one token or four.</summary>
internal unsafe interface IGroupKernel
{
    static abstract void Group1(byte* w, int nb, byte* a, float* y);
    static abstract void Group4(byte* w, int nb, byte* a, int aStride, float* y, int ldy);
}

/// <summary>
/// The weight types that have a 16-row interleaved layout and kernels (<see cref="Q4KInterleaved"/>,
/// <see cref="Q6KInterleaved"/>, <see cref="Q80Interleaved"/>). A group of 16 rows occupies exactly the bytes of those 16 rows in the file.
/// </summary>
internal static unsafe class Interleaving
{
    public const int Rows = 16;

    /// <summary>Whether a <paramref name="rows"/>×<paramref name="cols"/> matrix of <paramref name="type"/> can be interleaved and run here.</summary>
    public static bool Supports(GgmlType type, int rows, int cols) => type switch
    {
        GgmlType.Q4_K => Q4KInterleaved.IsSupported && Q4KInterleaved.CanInterleave(rows, cols),
        GgmlType.Q8_0 => Q80Interleaved.IsSupported && Q80Interleaved.CanInterleave(rows, cols),
        GgmlType.Q6_K => Q6KInterleaved.IsSupported && Q6KInterleaved.CanInterleave(rows, cols),
        _ => false,
    };

    public static void InterleaveGroup(GgmlType type, ReadOnlySpan<byte> src, Span<byte> dst, int cols)
    {
        if (type == GgmlType.Q4_K) Q4KInterleaved.InterleaveGroup(src, dst, cols);
        else if (type == GgmlType.Q8_0) Q80Interleaved.InterleaveGroup(src, dst, cols);
        else if (type == GgmlType.Q6_K) Q6KInterleaved.InterleaveGroup(src, dst, cols);
        else throw new NotSupportedException($"no interleaved layout for {type}");
    }

    public static void ExtractRow(GgmlType type, ReadOnlySpan<byte> group, int r, Span<byte> row, int cols)
    {
        if (type == GgmlType.Q4_K) Q4KInterleaved.ExtractRow(group, r, row, cols);
        else if (type == GgmlType.Q8_0) Q80Interleaved.ExtractRow(group, r, row, cols);
        else if (type == GgmlType.Q6_K) Q6KInterleaved.ExtractRow(group, r, row, cols);
        else throw new NotSupportedException($"no interleaved layout for {type}");
    }

    /// <summary>y[t·ldy + 16g + r] for groups [g0, g1), rows r of each, tokens [0, tokens); activations as <see cref="MatVec.QuantizeActivation"/> writes them, <paramref name="aStride"/> bytes apart.</summary>
    public static void Compute(GgmlType type, byte* w, int cols, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1)
    {
        if (type == GgmlType.Q4_K) Q4KInterleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else if (type == GgmlType.Q8_0) Q80Interleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else if (type == GgmlType.Q6_K) Q6KInterleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else throw new NotSupportedException($"no interleaved layout for {type}");
    }

    // Token tiles whose activations stay in L2 while every group of the range streams past them.
    private const int TokenTileBytes = 256 * 1024;

    /// <summary>The shared driver: token tiles outside, groups inside, four tokens at a time then one.</summary>
    internal static void Run<TKernel>(byte* w, int nb, int groupBlockBytes, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1)
        where TKernel : IGroupKernel
    {
        int tile = Math.Max(4, TokenTileBytes / aStride & ~3);
        for (int t0 = 0; t0 < tokens; t0 += tile)
        {
            int t1 = Math.Min(tokens, t0 + tile);
            for (int g = g0; g < g1; g++)
            {
                byte* wg = w + (long)g * nb * groupBlockBytes;
                int t = t0;
                for (; t + 4 <= t1; t += 4)
                    TKernel.Group4(wg, nb, a + (long)t * aStride, aStride, y + (long)t * ldy + g * Rows, ldy);
                for (; t < t1; t++)
                    TKernel.Group1(wg, nb, a + (long)t * aStride, y + (long)t * ldy + g * Rows);
            }
        }
    }
}
