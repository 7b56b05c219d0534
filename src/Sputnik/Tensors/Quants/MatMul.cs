using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Sputnik.Tensors.Quants;

/// <summary>
/// Matrix × matrix products for batched prefill: Y[t, r] = dot(weight row r, x_t) for a batch of tokens t. Each
/// token's activation is quantized once (same formats as <see cref="MatVec"/>), stored back to back with a stride
/// of <see cref="MatVec.ScratchBytes"/>; the product then walks tiles of weight rows × tokens so a weight tile is
/// read from memory once and reused against every token while it sits in L1, and a token tile stays in L2.
/// Independent row ranges may run on different threads sharing one activation buffer.
/// </summary>
internal static unsafe partial class MatMul
{
    // Budgets for the tile sizes: a row tile should stay in L1 (32-48 KiB) next to one activation row, a token tile
    // in L2 (1-2 MiB per core on current x86 server parts) next to the row tile.
    private const int RowTileBytes = 16 * 1024;
    private const int TokenTileBytes = 512 * 1024;

    /// <summary>Bytes of one token's activation; the buffer for <c>tokens</c> tokens needs tokens times this.</summary>
    public static int ActivationStride(GgmlType wType, int cols) => MatVec.ScratchBytes(wType, cols);

    /// <summary>Quantizes tokens [t0, t1) of the row-major batch <paramref name="x"/> (cols floats per token) into <paramref name="activations"/>.</summary>
    public static void QuantizeActivations(GgmlType wType, ReadOnlySpan<float> x, int cols, Span<byte> activations, int t0, int t1)
    {
        int stride = ActivationStride(wType, cols);
        for (int t = t0; t < t1; t++)
            MatVec.QuantizeActivation(wType, x.Slice(t * cols, cols), activations.Slice(t * stride, stride));
    }

    /// <summary>
    /// y[t * ldy + r] = dot(row r, token t) for rows [r0, r1) and tokens [0, tokens); <paramref name="weights"/> starts at row 0.
    /// </summary>
    public static void ComputeRows(GgmlType wType, ReadOnlySpan<byte> weights, int cols, ReadOnlySpan<byte> activations, int tokens,
        Span<float> y, int ldy, int r0, int r1) =>
        ComputeRows(wType, weights, cols, activations, tokens, y, ldy, r0, r1, MatVec.DefaultPath);

    // scaledHalves: F16 rows in ScaledHalves' layout (made only where a SIMD path exists).
    internal static void ComputeRows(GgmlType wType, ReadOnlySpan<byte> weights, int cols, ReadOnlySpan<byte> activations, int tokens,
        Span<float> y, int ldy, int r0, int r1, KernelPath path, bool scaledHalves = false)
    {
        if (scaledHalves && (wType != GgmlType.F16 || path == KernelPath.Scalar)) throw new ArgumentException($"scaled halves are F16 rows on a SIMD path, not {wType} on {path}");
        int rowBytes = checked((int)GgmlTypeInfo.RowBytes(wType, cols));
        int stride = ActivationStride(wType, cols);
        if (r0 < 0 || r1 < r0 || ldy < r1) throw new ArgumentOutOfRangeException(nameof(r1), $"row range [{r0}, {r1}) does not fit rows of {ldy}");
        if (tokens < 0 || (tokens > 0 && y.Length < (long)(tokens - 1) * ldy + r1)) throw new ArgumentException($"y of {y.Length} is too short for {tokens} tokens of stride {ldy}");
        if (weights.Length < (long)rowBytes * r1) throw new ArgumentException($"{wType} weights need {(long)rowBytes * r1} bytes for {r1} rows of {cols}, got {weights.Length}");
        if (activations.Length < (long)stride * tokens) throw new ArgumentException($"activations need {(long)stride * tokens} bytes, got {activations.Length}");
        if (r1 == r0 || tokens == 0) return;
        fixed (byte* w = weights)
        fixed (byte* a = activations)
        fixed (float* yp = y)
        {
            if (path == KernelPath.Scalar) Reference(wType, w, rowBytes, cols, a, stride, tokens, yp, ldy, r0, r1);
            else if (wType is GgmlType.F16 or GgmlType.BF16) DecodedRows(wType, w, rowBytes, cols, (float*)a, tokens, yp, ldy, r0, r1, path, scaledHalves);
            else Tiled(wType, w, weights.Length, rowBytes, cols, a, stride, tokens, yp, ldy, r0, r1, path);
        }
    }

    /// <summary>The reference: one scalar dot per (row, token), no tiling.</summary>
    private static void Reference(GgmlType wType, byte* w, int rowBytes, int cols, byte* a, int stride, int tokens, float* y, int ldy, int r0, int r1)
    {
        for (int t = 0; t < tokens; t++)
            for (int r = r0; r < r1; r++)
                y[(long)t * ldy + r] = MatVec.DotRow(wType, w + (long)r * rowBytes, a + (long)t * stride, cols, KernelPath.Scalar);
    }

    /// <summary>
    /// Whether batched MXFP4 products take the four-row kernels (<see cref="Mxfp4RowBlocks"/>, <see cref="MatVec.Mxfp4Rows"/>)
    /// where they run, else the one-row ones: for A/B runs, SPUTNIK_MXFP4_ROWS=0 for a whole model, or set in
    /// bench/Sputnik.Bench's `matmul` to alternate both in one process. Single-token decode always takes them.
    /// </summary>
    internal static bool Mxfp4FourRows { get; set; } = Environment.GetEnvironmentVariable("SPUTNIK_MXFP4_ROWS") != "0";

    private static void Tiled(GgmlType wType, byte* w, long weightBytes, int rowBytes, int cols, byte* a, int stride, int tokens, float* y, int ldy,
        int r0, int r1, KernelPath path)
    {
        int rowTile = Math.Max(1, RowTileBytes / rowBytes);
        int tokTile = Math.Max(1, TokenTileBytes / stride);
        bool multi = path == KernelPath.Avx512 && HasMultiTokenKernel(wType, cols);
        // MXFP4 rows four at a time (gpt-oss's experts): tiles of whole groups of four rows.
        bool mxfp4 = wType == GgmlType.MXFP4 && path == KernelPath.Avx512 && Mxfp4FourRows && MatVec.Mxfp4RowsSupported(cols / 32);
        // Tokens left over from groups of four go through the four-row decode kernels where they exist (same bits).
        bool rowsKernel = wType != GgmlType.MXFP4 && MatVec.HasRowsKernel(wType, cols, path);
        if (mxfp4 || rowsKernel) rowTile = Math.Max(4, rowTile & ~3);
        for (int t0 = 0; t0 < tokens; t0 += tokTile)
        {
            int t1 = Math.Min(tokens, t0 + tokTile);
            // whole groups of tokens through the multi-token kernel; decode (one token) never enters it
            int grouped = multi ? t0 + (t1 - t0) / Group * Group : t0;
            for (int rb = r0; rb < r1; rb += rowTile)
            {
                int re = Math.Min(r1, rb + rowTile);
                // Token group outside, rows inside: the group's activations stay in L1 while every row of the tile
                // (also L1-sized) passes over them, instead of streaming all tokens from L2 once per row.
                for (int t = t0; t < grouped; t += Group)
                {
                    if (mxfp4) Mxfp4RowBlocks(w, weightBytes, rowBytes, cols / 32, a + (long)t * stride, stride, y + (long)t * ldy, ldy, rb, re);
                    else
                        for (int r = rb; r < re; r++)
                            MultiTokenAvx512(wType, w + (long)r * rowBytes, cols, a + (long)t * stride, stride, y + (long)t * ldy + r, ldy);
                }
                if (mxfp4 || rowsKernel)
                    for (int t = grouped; t < t1; t++)
                        MatVec.RowsKernel(wType, w, weightBytes, a + (long)t * stride, cols, y + (long)t * ldy, rb, re);
                else
                    for (int r = rb; r < re; r++)
                    {
                        byte* wr = w + (long)r * rowBytes;
                        for (int t = grouped; t < t1; t++)
                            y[(long)t * ldy + r] = MatVec.DotRow(wType, wr, a + (long)t * stride, cols, path);
                    }
            }
        }
    }

    // One decoded float row per thread for F16/BF16 weights, allocated once per thread.
    [ThreadStatic] private static float[]? t_row;

    /// <summary>
    /// F16/BF16 weights: convert six rows at a time to float (exactly), then a 6-row × 4-token register block of FMAs
    /// (24 accumulators, 10 loads per 24 FMAs; <see cref="Block6x4"/>, or four rows with <see cref="HalfSixRows"/> off
    /// or five left; three rows on AVX2, <see cref="Block3x4Avx2"/>) over each group of four tokens; leftover rows and tokens use
    /// <see cref="HalfWeights.FloatDot"/>. Both keep <see cref="HalfWeights"/>' summation order, so a token
    /// gives the same bits here as in single-token decode. One dot per (row, token) was load-bound at a third of the FMA rate.
    /// </summary>
    private static void DecodedRows(GgmlType wType, byte* w, int rowBytes, int cols, float* x, int tokens, float* y, int ldy, int r0, int r1, KernelPath path,
        bool scaledHalves)
    {
        if (t_row == null || t_row.Length < 6 * cols) t_row = new float[6 * cols];
        // Whole groups of four: a tile's leftover tokens go through FloatDot's single dependency chain, several times
        // slower a product (a 14-token tile of ffn_down's 8,960 columns left 2 of its 14 there: ~40 % of F16 prefill).
        // The tile's activations take half of L2 (2 MiB on the Xeon: a tile of ffn_down's 8,960 columns went from 12
        // tokens to 28, and its blocks from 50-53 to 62 GFLOP/s, each row's conversion shared by more tokens).
        // On AVX2 (3-row blocks) a tile of 2 MiB, from L3: with half of a 512 KiB L2 (AMD Zen 3) ffn_down's tile was 4
        // tokens, every 4 tokens streamed its weights from DRAM again and their conversion took a third of prefill;
        // qwen2-1.5B F16 pp64 went from 26–28 to 40–44 t/s (2 MiB; 1 MiB gave 37–40, 4 MiB 41–43).
        int tileBytes = path == KernelPath.Avx2 ? 2 << 20 : CacheSizes.L2Bytes / 2;
        int tokTile = Math.Max(4, tileBytes / (cols * sizeof(float)) & ~3);
        // Register blocks: 6 (or 4) rows × 4 tokens with AVX-512's 32 registers, 3 × 4 with AVX2's 16.
        int rowStep = path switch { KernelPath.Avx512 => HalfSixRows ? 6 : 4, KernelPath.Avx2 => 3, _ => 4 };
        fixed (float* rows = t_row)
        {
            for (int t0 = 0; t0 < tokens; t0 += tokTile)
            {
                int t1 = Math.Min(tokens, t0 + tokTile);
                for (int r = r0; r < r1; r += rowStep)
                {
                    int nr = Math.Min(rowStep, r1 - r);
                    for (int i = 0; i < nr; i++)
                    {
                        var src = new ReadOnlySpan<byte>(w + (long)(r + i) * rowBytes, rowBytes);
                        var dst = new Span<float>(rows + i * cols, cols);
                        if (scaledHalves) ScaledHalves.ToWeights((ushort*)(w + (long)(r + i) * rowBytes), rows + i * cols, cols, path);
                        else if (wType == GgmlType.F16) FloatConvert.HalfToFloat(src, dst);
                        else FloatConvert.BF16ToFloat(src, dst);
                    }
                    int t = t0, blockedRows = path switch
                    {
                        KernelPath.Avx512 => nr == 6 ? 6 : nr >= 4 ? 4 : 0,
                        KernelPath.Avx2 => nr == 3 ? 3 : 0,
                        _ => 0,
                    };
                    if (blockedRows > 0)
                        for (; t + 4 <= t1; t += 4)
                        {
                            if (blockedRows == 6) Block6x4(rows, cols, x + (long)t * cols, y + (long)t * ldy + r, ldy);
                            else if (blockedRows == 4) Block4x4(rows, cols, x + (long)t * cols, y + (long)t * ldy + r, ldy);
                            else Block3x4Avx2(rows, cols, x + (long)t * cols, y + (long)t * ldy + r, ldy);
                            for (int i = blockedRows; i < nr; i++)
                                for (int u = t; u < t + 4; u++)
                                    y[(long)u * ldy + r + i] = HalfWeights.FloatDot(rows + i * cols, x + (long)u * cols, cols, path);
                        }
                    for (; t < t1; t++)
                        for (int i = 0; i < nr; i++)
                            y[(long)t * ldy + r + i] = HalfWeights.FloatDot(rows + i * cols, x + (long)t * cols, cols, path);
                }
            }
        }
    }
}
