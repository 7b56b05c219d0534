using Sputnik.Models;

namespace Sputnik.Training;

/// <summary>
/// One half of a pre-norm residual block (the attention or the feed-forward), seen from <see cref="TransformerModel"/>:
/// rows [B·T, D] in, rows [B·T, D] out. The sub-layer keeps what its backward pass needs from the last Forward.
/// </summary>
internal interface ITrainSublayer
{
    /// <summary>output[B·T, D] = f(x); overwrites output.</summary>
    void Forward(Span<float> output, ReadOnlySpan<float> x, int b, int t);

    /// <summary>Reverses the last Forward: dx += dL/dx, and accumulates the parameter gradients.</summary>
    void Backward(Span<float> dx, ReadOnlySpan<float> dout);
}

/// <summary>Activation buffers sized for the largest call so far (llm.c allocates them once; shapes vary per batch here).</summary>
internal static class Buffers
{
    public static float[] Grow(ref float[] a, int length)
    {
        if (a.Length < length) a = new float[length];
        return a;
    }

    /// <summary>The buffer, grown to at least <paramref name="length"/>, with its first <paramref name="length"/> values cleared (for accumulating ops).</summary>
    public static float[] Zeroed(ref float[] a, int length)
    {
        Array.Clear(Grow(ref a, length), 0, length);
        return a;
    }

    public static int[] Grow(ref int[] a, int length)
    {
        if (a.Length < length) a = new int[length];
        return a;
    }
}

/// <summary>
/// The llama attention: q/k/v projections, adjacent-pair RoPE on every head dim, causal GQA, output projection.
/// Tensor names as llama.cpp's llama (attn_q, attn_k, attn_v, attn_output).
/// </summary>
internal sealed class GqaAttention : ITrainSublayer
{
    public ParamSlice Wq { get; }
    public ParamSlice Wk { get; }
    public ParamSlice Wv { get; }
    public ParamSlice Wo { get; }

    private readonly ParameterBuffer _p;
    private readonly int _dim, _heads, _kvHeads, _headDim;
    private readonly float[] _cos, _sin;
    private int _b, _t;
    // activations (N = B·T rows): input, roped q/k, v, attention probabilities [B, H, T, T], attention output
    private float[] _x = [], _q = [], _k = [], _v = [], _att = [], _y = [];
    // backward scratch
    private float[] _dq = [], _dk = [], _dv = [], _dy = [];

    private int QDim => _heads * _headDim;
    private int KvDim => _kvHeads * _headDim;

    /// <summary>Declares the slices in <paramref name="p"/> (call before p.Allocate()); cos/sin from <see cref="TrainOps.RopeTable"/>.</summary>
    public GqaAttention(ParameterBuffer p, int layer, int dim, int heads, int kvHeads, int headDim, float[] cos, float[] sin)
    {
        _p = p; _dim = dim; _heads = heads; _kvHeads = kvHeads; _headDim = headDim; _cos = cos; _sin = sin;
        Wq = p.Add(TensorNames.Weight(layer, TensorNames.AttnQ), QDim, dim);
        Wk = p.Add(TensorNames.Weight(layer, TensorNames.AttnK), KvDim, dim);
        Wv = p.Add(TensorNames.Weight(layer, TensorNames.AttnV), KvDim, dim);
        Wo = p.Add(TensorNames.Weight(layer, TensorNames.AttnOutput), dim, QDim);
    }

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int b, int t)
    {
        _b = b; _t = t;
        int n = b * t, d = _dim;
        x[..(n * d)].CopyTo(Buffers.Grow(ref _x, n * d));
        Buffers.Grow(ref _q, n * QDim); Buffers.Grow(ref _k, n * KvDim); Buffers.Grow(ref _v, n * KvDim);
        Buffers.Grow(ref _att, b * _heads * t * t); Buffers.Grow(ref _y, n * QDim);
        // q/k/v projections, rope
        TrainOps.MatMulForward(_q, _x, _p.W(Wq), n, d, QDim);
        TrainOps.MatMulForward(_k, _x, _p.W(Wk), n, d, KvDim);
        TrainOps.MatMulForward(_v, _x, _p.W(Wv), n, d, KvDim);
        TrainOps.RopeForward(_q, n, t, _heads, _headDim, 0, _headDim, _cos, _sin);
        TrainOps.RopeForward(_k, n, t, _kvHeads, _headDim, 0, _headDim, _cos, _sin);
        // causal GQA, output projection
        Attention.Forward(_y, _att, _q, _k, _v, b, t, _heads, _kvHeads, _headDim, _headDim, Scale);
        TrainOps.MatMulForward(output, _y, _p.W(Wo), n, QDim, d);
    }

    private float Scale => 1f / MathF.Sqrt(_headDim);

    public void Backward(Span<float> dx, ReadOnlySpan<float> dout)
    {
        int b = _b, t = _t, n = b * t, d = _dim;
        Buffers.Zeroed(ref _dy, n * QDim);
        TrainOps.MatMulBackward(_dy, _p.G(Wo), dout, _y, _p.W(Wo), n, QDim, d);
        Buffers.Zeroed(ref _dq, n * QDim); Buffers.Zeroed(ref _dk, n * KvDim); Buffers.Zeroed(ref _dv, n * KvDim);
        Attention.Backward(_dq, _dk, _dv, _dy, _q, _k, _v, _att, b, t, _heads, _kvHeads, _headDim, _headDim, Scale);
        TrainOps.RopeBackward(_dq, n, t, _heads, _headDim, 0, _headDim, _cos, _sin);
        TrainOps.RopeBackward(_dk, n, t, _kvHeads, _headDim, 0, _headDim, _cos, _sin);
        TrainOps.MatMulBackward(dx, _p.G(Wq), _dq, _x, _p.W(Wq), n, d, QDim);
        TrainOps.MatMulBackward(dx, _p.G(Wk), _dk, _x, _p.W(Wk), n, d, KvDim);
        TrainOps.MatMulBackward(dx, _p.G(Wv), _dv, _x, _p.W(Wv), n, d, KvDim);
    }
}

/// <summary>
/// SwiGLU feed-forward: out = down(silu(gate·x) ⊙ up·x). The dense FFN of llama blocks and of DeepSeek's leading
/// layers (ffn_gate/up/down), and DeepSeekMoE's shared expert (ffn_*_shexp).
/// </summary>
internal sealed class SwiGluFeedForward : ITrainSublayer
{
    public ParamSlice Gate { get; }
    public ParamSlice Up { get; }
    public ParamSlice Down { get; }
    public int Inter { get; }

    private readonly ParameterBuffer _p;
    private readonly int _dim;
    private int _n;
    private float[] _x = [], _g = [], _u = [], _h = [];
    private float[] _dh = [], _dg = [], _du = [];

    public SwiGluFeedForward(ParameterBuffer p, int layer, int dim, int inter, bool shared = false)
    {
        _p = p; _dim = dim; Inter = inter;
        Gate = p.Add(TensorNames.Weight(layer, shared ? TensorNames.FfnGateShexp : TensorNames.FfnGate), inter, dim);
        Up = p.Add(TensorNames.Weight(layer, shared ? TensorNames.FfnUpShexp : TensorNames.FfnUp), inter, dim);
        Down = p.Add(TensorNames.Weight(layer, shared ? TensorNames.FfnDownShexp : TensorNames.FfnDown), dim, inter);
    }

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int b, int t) => Forward(output, x, b * t);

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int n)
    {
        _n = n;
        int d = _dim, f = Inter;
        x[..(n * d)].CopyTo(Buffers.Grow(ref _x, n * d));
        Buffers.Grow(ref _g, n * f); Buffers.Grow(ref _u, n * f); Buffers.Grow(ref _h, n * f);
        TrainOps.MatMulForward(_g, _x, _p.W(Gate), n, d, f);
        TrainOps.MatMulForward(_u, _x, _p.W(Up), n, d, f);
        TrainOps.SwiGluForward(_h.AsSpan(0, n * f), _g, _u);
        TrainOps.MatMulForward(output, _h, _p.W(Down), n, f, d);
    }

    public void Backward(Span<float> dx, ReadOnlySpan<float> dout)
    {
        int n = _n, d = _dim, f = Inter;
        Buffers.Zeroed(ref _dh, n * f);
        TrainOps.MatMulBackward(_dh, _p.G(Down), dout, _h, _p.W(Down), n, f, d);
        Buffers.Zeroed(ref _dg, n * f); Buffers.Zeroed(ref _du, n * f);
        TrainOps.SwiGluBackward(_dg, _du, _dh.AsSpan(0, n * f), _g, _u);
        TrainOps.MatMulBackward(dx, _p.G(Gate), _dg, _x, _p.W(Gate), n, d, f);
        TrainOps.MatMulBackward(dx, _p.G(Up), _du, _x, _p.W(Up), n, d, f);
    }
}
