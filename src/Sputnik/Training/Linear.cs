using System.Numerics.Tensors;
using Sputnik.Models;

namespace Sputnik.Training;

/// <summary>
/// One weight matrix of a trainable decoder, y[N, Out] = x[N, In]·Wᵀ (+ bias) (+ LoRA), W stored as GGUF stores it
/// (one row per output). The weight is either a trainable F32 slice of a <see cref="ParameterBuffer"/> (training from
/// scratch), or frozen: a base model's tensor in its own file type (Q4_K, Q8_0, F16, F32…), decoded
/// <see cref="TileRows"/> rows at a time in the forward and the input-gradient pass and never held whole in F32
/// (QLoRA's idea), or a small F32 array built at load (MLA's kv_b from the file's k_b/v_b). A frozen matrix gets no
/// weight gradient, only dx; its <see cref="Lora"/> pair (when targeted) carries the trainable low-rank update.
/// </summary>
internal sealed unsafe class Linear
{
    /// <summary>Rows decoded per tile: 64 rows of a 4,864-wide FFN matrix are 1.2 MB of floats, a few L2s.</summary>
    public const int TileRows = 64;

    public string Name { get; }
    public int In { get; }
    public int Out { get; }
    /// <summary>The trainable weight, or null when the matrix is frozen.</summary>
    public ParamSlice? Slice { get; }
    /// <summary>Frozen bias added to every output row (qwen2's q/k/v), or null.</summary>
    public float[]? Bias { get; set; }
    /// <summary>The trainable low-rank update on this matrix, or null.</summary>
    public LoraDelta? Lora { get; set; }

    private readonly ParameterBuffer? _p;
    private readonly WeightMatrix? _file;
    private readonly float[]? _dense;

    private Linear(string name, int rows, int cols, ParameterBuffer? p, ParamSlice? slice, WeightMatrix? file, float[]? dense)
    {
        Name = name; Out = rows; In = cols; _p = p; Slice = slice; _file = file; _dense = dense;
    }

    /// <summary>A trainable F32 weight [rows, cols] in <paramref name="p"/> (a slice, or a row block of one for an expert).</summary>
    public static Linear Trainable(ParameterBuffer p, ParamSlice slice) => new(slice.Name, slice.Shape[^2], slice.Shape[^1], p, slice, null, null);

    /// <summary>A frozen base tensor read from its file in its own type.</summary>
    public static Linear Frozen(WeightMatrix w, string name) => new(name, w.Rows, w.Cols, null, null, w, null);

    /// <summary>A frozen F32 matrix [rows, cols] held in memory.</summary>
    public static Linear FrozenDense(string name, float[] w, int rows, int cols) => new(name, rows, cols, null, null, null, w);

    public bool IsFrozen => Slice == null;

    /// <summary>output[N, Out] = x·Wᵀ (+ bias) (+ scale·(x·Aᵀ)·Bᵀ); overwrites output.</summary>
    public void Forward(Span<float> output, ReadOnlySpan<float> x, int n)
    {
        if (Slice != null) TrainOps.MatMulForward(output, x, _p!.W(Slice), n, In, Out);
        else FrozenForward(output, x, n);
        if (Bias != null)
            for (int r = 0; r < n; r++) TensorPrimitives.Add(output.Slice(r * Out, Out), Bias, output.Slice(r * Out, Out));
        Lora?.Forward(output, x, n, In, Out);
    }

    /// <summary>Reverses <see cref="Forward"/> for input x: dx += dout·W (+ the LoRA path), and the weight's or the adapter's gradients.</summary>
    public void Backward(Span<float> dx, ReadOnlySpan<float> dout, ReadOnlySpan<float> x, int n)
    {
        if (Slice != null) TrainOps.MatMulBackward(dx, _p!.G(Slice), dout, x, _p.W(Slice), n, In, Out);
        else FrozenBackwardInput(dx, dout, n);
        Lora?.Backward(dx, dout, x, n, In, Out);
    }

    /// <summary>Decodes rows [r0, r0 + rows) of the frozen weight into dst (rows × In floats).</summary>
    public void DecodeRows(int r0, int rows, Span<float> dst)
    {
        if (_dense != null) { _dense.AsSpan(r0 * In, rows * In).CopyTo(dst); return; }
        if (_file != null) { for (int r = 0; r < rows; r++) _file.GetRow(r0 + r, dst.Slice(r * In, In)); return; }
        _p!.W(Slice!).Slice(r0 * In, rows * In).CopyTo(dst);
    }

    /// <summary>The whole weight in F32 (merging and tests; never on the training path of a large frozen matrix).</summary>
    public float[] ToFloats()
    {
        var w = new float[(long)Out * In];
        DecodeRows(0, Out, w);
        return w;
    }

    private void FrozenForward(Span<float> output, ReadOnlySpan<float> x, int n)
    {
        int tileMax = Math.Min(TileRows, Out);
        var tile = Gemm.Rent(tileMax * In);
        var tileT = Gemm.Rent(tileMax * In);
        try
        {
            fixed (float* po = output, px = x, pt = tile, ptt = tileT)
                for (int r0 = 0; r0 < Out; r0 += TileRows)
                {
                    int rows = Math.Min(TileRows, Out - r0);
                    DecodeRows(r0, rows, tile);
                    Gemm.Transpose(ptt, pt, rows, In);                                 // [In, rows]
                    Gemm.Mul(po + r0, Out, px, In, 1, ptt, rows, n, rows, In, accumulate: false);
                }
        }
        finally { Gemm.Return(tile); Gemm.Return(tileT); }
    }

    /// <summary>dx[N, In] += Σ over tiles dout[:, tile]·W[tile, :], W decoded tile by tile as in the forward pass.</summary>
    private void FrozenBackwardInput(Span<float> dx, ReadOnlySpan<float> dout, int n)
    {
        if (dx.IsEmpty) return;
        int tileMax = Math.Min(TileRows, Out);
        var tile = Gemm.Rent(tileMax * In);
        try
        {
            fixed (float* pdx = dx, pdo = dout, pt = tile)
                for (int r0 = 0; r0 < Out; r0 += TileRows)
                {
                    int rows = Math.Min(TileRows, Out - r0);
                    DecodeRows(r0, rows, tile);
                    Gemm.Mul(pdx, In, pdo + r0, Out, 1, pt, In, n, In, rows, accumulate: true);
                }
        }
        finally { Gemm.Return(tile); }
    }
}

/// <summary>
/// A LoRA update on one matrix: y += scale·(x·Aᵀ)·Bᵀ with A [r, In] and B [Out, r] row-major — exactly llama.cpp's
/// lora_a (ggml dims [In, r]) and lora_b ([r, Out]), scale = alpha / r. A and B live in the adapter's own
/// <see cref="ParameterBuffer"/> (F32, with their AdamW state); B starts at 0, so a new adapter leaves the base exact.
/// </summary>
internal sealed class LoraDelta(ParameterBuffer p, ParamSlice a, ParamSlice b, int rank, float scale)
{
    public ParamSlice A => a;
    public ParamSlice B => b;
    public int Rank => rank;
    public float Scale { get; set; } = scale;

    // u = x·Aᵀ [N, r] is kept for the backward pass; the [N, Out] product and the scaled gradient are pooled scratch
    // (Buffers.RentZeroed), shared by every matrix in turn rather than one N × Out array per adapted matrix
    private float[] _u = [];

    public void Forward(Span<float> y, ReadOnlySpan<float> x, int n, int cin, int cout)
    {
        var u = Buffers.Grow(ref _u, n * rank);
        TrainOps.MatMulForward(u, x, p.W(a), n, cin, rank);
        var t = Gemm.Rent(n * cout);
        try
        {
            TrainOps.MatMulForward(t, u, p.W(b), n, rank, cout);
            TensorPrimitives.MultiplyAdd(t.AsSpan(0, n * cout), Scale, y[..(n * cout)], y[..(n * cout)]);
        }
        finally { Gemm.Return(t); }
    }

    /// <summary>u = x·Aᵀ was kept by Forward: dB += s·doutᵀ·u, du = s·dout·B, dA += duᵀ·x, dx += du·A.</summary>
    public void Backward(Span<float> dx, ReadOnlySpan<float> dout, ReadOnlySpan<float> x, int n, int cin, int cout)
    {
        var sdy = Gemm.Rent(n * cout);
        var du = Buffers.RentZeroed(n * rank);
        try
        {
            TensorPrimitives.Multiply(dout[..(n * cout)], Scale, sdy.AsSpan(0, n * cout));
            TrainOps.MatMulBackward(du, p.G(b), sdy, _u, p.W(b), n, rank, cout);
            TrainOps.MatMulBackward(dx, p.G(a), du, x, p.W(a), n, cin, rank);
        }
        finally { Gemm.Return(sdy); Gemm.Return(du); }
    }
}
