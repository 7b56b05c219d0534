using System.Numerics.Tensors;
using Sputnik.Gguf;

namespace Sputnik.Models;

/// <summary>
/// Matrix views over a 3-D GGUF tensor with ggml dims [cols, rows, count] (the stacked routed experts
/// ffn_*_exps, or the per-head attn_k_b / attn_v_b): slice i is an ordinary <see cref="WeightMatrix"/> over its
/// own contiguous bytes, so a decode step touches only the slices it uses.
/// </summary>
internal static class TensorSlices
{
    /// <summary>
    /// The <paramref name="count"/> slices of tensor <paramref name="name"/> ([cols, rows, count]). Routed experts
    /// (<paramref name="experts"/>) are re-laid into the interleaved layout at their first use
    /// (<see cref="WeightMatrix.EnsureRelaid"/>) where <see cref="ExpertsRelay"/> allows it; slices every token uses
    /// (<paramref name="relayAtLoad"/>: MLA's per-head attn_k_b / attn_v_b) at load, like any matrix.
    /// </summary>
    public static WeightMatrix[] Split3D(GgufFile file, string name, int cols, int rows, int count, bool experts = false, bool relayAtLoad = false)
    {
        var info = file.GetTensor(name);
        long[] d = info.Dims;
        if (d.Length < 3 || d[0] != cols || d[1] != rows || d[2] != count || d.Skip(3).Any(x => x != 1))
            throw new GgufFormatException($"tensor '{name}' has shape [{string.Join(", ", d)}], expected [{cols}, {rows}, {count}]");
        return RowBlocks(file, info, cols, rows, count, rowStride: rows, rowOffset: 0, relayOnFirstUse: experts && ExpertsRelay(file),
            relayAtLoad: relayAtLoad && !experts);
    }

    /// <summary>
    /// Whether routed experts are re-laid at first use: in the interleaved layout their kernels read them faster
    /// (measured on a Xeon, Qwen3-30B-A3B shape: decode +5 %, prefill +80 %), but the re-laid copy is memory of the
    /// process, where mapped experts are page cache the kernel can drop. So only while the whole file is at most
    /// half of the memory the process may use: a model near the machine's size stays mapped.
    /// </summary>
    public static bool ExpertsRelay(GgufFile file) =>
        file.RepackWeights && file.RelayExperts && file.TotalFileSize <= GC.GetGCMemoryInfo().TotalAvailableMemoryBytes / 2;

    /// <summary>
    /// Views `count` blocks of `rows` rows each out of a 2-D tensor, block i starting at row i·rowStride + rowOffset
    /// (the per-head K and V parts of an unsplit attn_kv_b).
    /// </summary>
    public static WeightMatrix[] RowBlocks(GgufFile file, GgufTensorInfo info, int cols, int rows, int count, int rowStride, int rowOffset,
        bool relayOnFirstUse = false, bool relayAtLoad = false)
    {
        long rowBytes = Tensors.GgmlTypeInfo.RowBytes(info.Type, cols);
        if (info.Columns != cols || (long)(count - 1) * rowStride + rowOffset + rows > info.Rows)
            throw new GgufFormatException($"tensor '{info.Name}' [{string.Join(", ", info.Dims)}] is too small for {count} blocks of {rows}×{cols}");
        var slices = new WeightMatrix[count];
        for (int i = 0; i < count; i++)
        {
            long offset = info.Offset + ((long)i * rowStride + rowOffset) * rowBytes;
            var part = new GgufTensorInfo($"{info.Name}[{i}]", [cols, rows], info.Type, offset, rows * rowBytes) { Shard = info.Shard };
            slices[i] = new WeightMatrix(file, part, mayInterleave: relayOnFirstUse || relayAtLoad, relayOnFirstUse: relayOnFirstUse);
        }
        return slices;
    }
}

/// <summary>
/// One small matrix per attention head, logically mapping In → Out. Stored either in that orientation
/// (a plain mat-vec) or transposed (rows are inputs: y = Σ_r x[r]·row_r), which is how the MLA up-projections
/// appear in one of the two GGUF layouts for each of the absorbed and naive paths.
/// </summary>
internal sealed class HeadMatrices
{
    private readonly WeightMatrix[] _heads;

    public HeadMatrices(WeightMatrix[] heads, bool transposed)
    {
        _heads = heads;
        Transposed = transposed;
    }

    public bool Transposed { get; }
    public int In => Transposed ? _heads[0].Rows : _heads[0].Cols;
    public int Out => Transposed ? _heads[0].Cols : _heads[0].Rows;
    public int InputBytes => Transposed ? 0 : _heads[0].InputBytes;
    /// <summary>Floats of row scratch the transposed form needs.</summary>
    public int RowScratch => Transposed ? _heads[0].Cols : 0;

    /// <summary>y = M_h·x. Single-threaded: callers parallelise over heads. Scratch is per thread.</summary>
    public void Apply(int h, ReadOnlySpan<float> x, Span<float> y, Span<byte> inputScratch, Span<float> rowScratch)
    {
        var w = _heads[h];
        if (!Transposed)
        {
            w.PrepareInput(x, inputScratch);
            w.MatVecRows(inputScratch, y, 0, w.Rows);
            return;
        }
        y = y[..w.Cols];
        y.Clear();
        var row = rowScratch[..w.Cols];
        for (int r = 0; r < w.Rows; r++)
        {
            float xr = x[r];
            if (xr == 0) continue;
            w.GetRow(r, row);
            TensorPrimitives.MultiplyAdd(row, xr, y, y);
        }
    }
}
