using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Sputnik.Tensors.Quants;

/// <summary>The per-group kernels of one interleaved format: 16 rows × all blocks, one token or four (or eight, where a format offers it).</summary>
internal unsafe interface IGroupKernel
{
    static abstract void Group1(byte* w, int nb, byte* a, float* y);
    /// <summary>Four tokens; <paramref name="prefetch"/> on the first pass over a group, whose weights come from DRAM (later passes find them in L2).</summary>
    static abstract void Group4(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch);

    /// <summary>Whether <see cref="Group8"/> is worth calling: a format whose per-load work (shared by the tokens) is a large share of a token's.</summary>
    static virtual bool EightTokens => false;

    /// <summary>Eight tokens (formats with <see cref="EightTokens"/>); the same bits as <see cref="Group4"/> twice.</summary>
    static virtual void Group8(byte* w, int nb, byte* a, int aStride, float* y, int ldy, bool prefetch) =>
        throw new NotSupportedException("no eight-token kernel");
}

/// <summary>
/// The weight types that have a 16-row interleaved layout and kernels (<see cref="Q4KInterleaved"/>,
/// <see cref="Q6KInterleaved"/>, <see cref="Q80Interleaved"/>, <see cref="Q50Interleaved"/>). A group of 16 rows occupies exactly the bytes of those 16 rows in the file.
/// </summary>
internal static unsafe class Interleaving
{
    public const int Rows = 16;

    /// <summary>
    /// A 2- or 4-byte field of a file block; a group block stores each field for its 16 rows together, in layout order.
    /// A <paramref name="Biased"/> field holds int8 values and is stored with each byte's top bit flipped (value + 128,
    /// unsigned), the operand form <c>vpdpbusd</c> takes.
    /// </summary>
    public readonly record struct Field(int Offset, int Width, bool Biased = false);

    private const byte Bias = 0x80;

    /// <summary>Whether a <paramref name="rows"/>×<paramref name="cols"/> matrix of <paramref name="type"/> can be interleaved and run here.</summary>
    public static bool Supports(GgmlType type, int rows, int cols) =>
        LayoutOf(type) is not null && KernelsRunHere(type)
        && rows > 0 && rows % Rows == 0 && cols > 0 && cols % GgmlTypeInfo.BlockSize(type) == 0;

    /// <summary>Every type's kernels have a 512-bit form (AVX-512 BW; Q5_0's needs VBMI too) and an AVX2 one.</summary>
    internal static bool KernelsRunHere(GgmlType type) => MatVec.DefaultPath is KernelPath.Avx512 or KernelPath.Avx2;

    /// <summary>Whether the kernels' 512-bit forms run here; otherwise their AVX2 ones (<c>*Interleaved.Avx2.cs</c>), over the same layout.</summary>
    internal static bool Wide512 => Vector512.IsHardwareAccelerated && Avx512BW.IsSupported;

    /// <summary>Four tokens' float sums of one 8-row half (the AVX2 four-token kernels).</summary>
    internal struct Floats4x8
    {
        public Vector256<float> F0, F1, F2, F3;

        /// <summary>Stores rows 0–7 (<paramref name="lo"/>) and 8–15 (<paramref name="hi"/>) of four tokens at y, ldy apart.</summary>
        public static void Store(in Floats4x8 lo, in Floats4x8 hi, float* y, int ldy)
        {
            lo.F0.Store(y); hi.F0.Store(y + 8);
            lo.F1.Store(y + ldy); hi.F1.Store(y + ldy + 8);
            lo.F2.Store(y + 2 * ldy); hi.F2.Store(y + 2 * ldy + 8);
            lo.F3.Store(y + 3 * ldy); hi.F3.Store(y + 3 * ldy + 8);
        }
    }

    /// <summary>A 128-bit <c>vpshufb</c> pattern in every lane of a 256-bit register (the shuffle works within lanes).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector256<byte> Lanes256(Vector128<byte> lane) => Vector256.Create(lane, lane);

    /// <summary>The same in every lane of a 512-bit register.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static Vector512<byte> Lanes512(Vector128<byte> lane) => Vector512.Create(Lanes256(lane), Lanes256(lane));

    private static Field[]? LayoutOf(GgmlType type) => type switch
    {
        GgmlType.Q4_K => Q4KInterleaved.Layout,
        GgmlType.Q6_K => Q6KInterleaved.Layout,
        GgmlType.Q8_0 => Q80Interleaved.Layout,
        GgmlType.Q5_0 => Q50Interleaved.Layout,
        _ => null,
    };

    internal static Field[] Layout(GgmlType type) => LayoutOf(type) ?? throw new NotSupportedException($"no interleaved layout for {type}");

    /// <summary>Interleaves the 16 file-layout rows at the start of <paramref name="src"/> into one group at the start of <paramref name="dst"/> (same size).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)] // runs a few times per matrix at load: tier-0 code would dominate
    public static void InterleaveGroup(GgmlType type, ReadOnlySpan<byte> src, Span<byte> dst, int cols)
    {
        var fields = Layout(type);
        int blockBytes = GgmlTypeInfo.BlockBytes(type), nb = cols / GgmlTypeInfo.BlockSize(type), rowBytes = nb * blockBytes;
        if (src.Length < Rows * rowBytes || dst.Length < Rows * rowBytes)
            throw new ArgumentException($"a group of {Rows} {type} rows of {cols} needs {Rows * rowBytes} bytes in and out");
        fixed (byte* s0 = src)
        fixed (byte* d0 = dst)
        {
            var rowsLo = Vector256<int>.Indices * rowBytes;
            var rowsHi = rowsLo + Vector256.Create(8 * rowBytes);
            for (int b = 0; b < nb; b++)
            {
                byte* blk = s0 + b * blockBytes, o = d0 + (long)b * Rows * blockBytes;
                foreach (var f in fields)
                {
                    if (Avx2.IsSupported) Gather(blk, f, blockBytes, rowsLo, rowsHi, o);
                    else
                    {
                        for (int r = 0; r < Rows; r++)
                            new ReadOnlySpan<byte>(blk + (long)r * rowBytes + f.Offset, f.Width).CopyTo(new Span<byte>(o + r * f.Width, f.Width));
                        if (f.Biased) FlipBias(new Span<byte>(o, Rows * f.Width));
                    }
                    o += Rows * f.Width;
                }
            }
        }
    }

    /// <summary>Field f of 16 rows by two 8-lane gathers (a 2-byte field: the 32-bit word holding it, then its halves).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Gather(byte* blk, Field f, int blockBytes, Vector256<int> rowsLo, Vector256<int> rowsHi, byte* dst)
    {
        bool last = f.Offset + 4 > blockBytes; // a 2-byte field at the end of the block: read the word ending with it
        int* p = (int*)(blk + (last ? f.Offset - 2 : f.Offset));
        var lo = Avx2.GatherVector256(p, rowsLo, 1).AsUInt32();
        var hi = Avx2.GatherVector256(p, rowsHi, 1).AsUInt32();
        var bias = Vector256.Create(f.Biased ? (byte)Bias : (byte)0).AsUInt32();
        if (f.Width == 4)
        {
            (lo ^ bias).Store((uint*)dst);
            (hi ^ bias).Store((uint*)(dst + 32));
            return;
        }
        if (last) { lo >>= 16; hi >>= 16; }
        (Vector256.Narrow(lo & Vector256.Create(0xFFFFu), hi & Vector256.Create(0xFFFFu)) ^ bias.AsUInt16()).Store((ushort*)dst);
    }

    private static void FlipBias(Span<byte> bytes)
    {
        foreach (ref byte v in bytes) v ^= Bias;
    }

    /// <summary>Copies row <paramref name="r"/> (0..15) of an interleaved group back into the file layout (for row decoding).</summary>
    public static void ExtractRow(GgmlType type, ReadOnlySpan<byte> group, int r, Span<byte> row, int cols)
    {
        var fields = Layout(type);
        int blockBytes = GgmlTypeInfo.BlockBytes(type), nb = cols / GgmlTypeInfo.BlockSize(type);
        if ((uint)r >= Rows || group.Length < Rows * nb * blockBytes || row.Length < nb * blockBytes)
            throw new ArgumentException($"row {r} of an interleaved {type} group of {cols} columns");
        fixed (byte* g0 = group)
        fixed (byte* d0 = row)
        {
            for (int b = 0; b < nb; b++)
            {
                byte* o = g0 + (long)b * Rows * blockBytes, blk = d0 + b * blockBytes;
                foreach (var f in fields)
                {
                    new ReadOnlySpan<byte>(o + r * f.Width, f.Width).CopyTo(new Span<byte>(blk + f.Offset, f.Width));
                    if (f.Biased) FlipBias(new Span<byte>(blk + f.Offset, f.Width));
                    o += Rows * f.Width;
                }
            }
        }
    }

    /// <summary>y[t·ldy + 16g + r] for groups [g0, g1), rows r of each, tokens [0, tokens); activations as <see cref="MatVec.QuantizeActivation"/> writes them, <paramref name="aStride"/> bytes apart.</summary>
    public static void Compute(GgmlType type, byte* w, int cols, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1)
    {
        if (type == GgmlType.Q4_K) Q4KInterleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else if (type == GgmlType.Q8_0) Q80Interleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else if (type == GgmlType.Q6_K) Q6KInterleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else if (type == GgmlType.Q5_0) Q50Interleaved.Compute(w, cols, a, aStride, tokens, y, ldy, g0, g1);
        else throw new NotSupportedException($"no interleaved layout for {type}");
    }

    // Token tiles whose activations stay in L2 while every group of the range streams past them.
    private const int TokenTileBytes = 256 * 1024;

    /// <summary>The shared driver: token tiles outside, groups inside, eight tokens at a time (formats with <see cref="IGroupKernel.EightTokens"/>), then four, then one.</summary>
    internal static void Run<TKernel>(byte* w, int nb, int groupBlockBytes, byte* a, int aStride, int tokens, float* y, int ldy, int g0, int g1)
        where TKernel : IGroupKernel
    {
        // Tiles in whole multiples of the widest kernel, so no tile ends in a narrower one it need not.
        bool eight = TKernel.EightTokens;
        int tile = eight ? Math.Max(8, TokenTileBytes / aStride & ~7) : Math.Max(4, TokenTileBytes / aStride & ~3);
        for (int t0 = 0; t0 < tokens; t0 += tile)
        {
            int t1 = Math.Min(tokens, t0 + tile);
            for (int g = g0; g < g1; g++)
            {
                byte* wg = w + (long)g * nb * groupBlockBytes;
                int t = t0;
                if (eight)
                    for (; t + 8 <= t1; t += 8)
                        TKernel.Group8(wg, nb, a + (long)t * aStride, aStride, y + (long)t * ldy + g * Rows, ldy, Prefetch.Enabled && t == t0);
                for (; t + 4 <= t1; t += 4)
                    TKernel.Group4(wg, nb, a + (long)t * aStride, aStride, y + (long)t * ldy + g * Rows, ldy, Prefetch.Enabled && t == t0);
                for (; t < t1; t++)
                    TKernel.Group1(wg, nb, a + (long)t * aStride, y + (long)t * ldy + g * Rows);
            }
        }
    }
}
