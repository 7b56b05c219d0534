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

    /// <summary>
    /// Pooled scratch of at least <paramref name="length"/> floats, the first <paramref name="length"/> cleared, for a
    /// value that lives only inside one Forward or Backward call; give it back with <see cref="Gemm.Return"/>. One such
    /// array then serves every layer in turn, where a field per layer would hold L copies (0.7 GB for the FFN
    /// gradients alone at 512 rows of qwen2-0.5B).
    /// </summary>
    public static float[] RentZeroed(int length)
    {
        var a = Gemm.Rent(length);
        Array.Clear(a, 0, length);
        return a;
    }
}

/// <summary>
/// The llama-family attention: q/k/v projections (qwen2: plus frozen biases), an RMSNorm over each head of q and k
/// (qwen3), RoPE on every head dim (adjacent pairs for llama, NeoX halves for qwen2/qwen3), causal GQA, output
/// projection. Tensor names as llama.cpp's (attn_q, attn_k, attn_v, attn_output, attn_q_norm, attn_k_norm).
/// </summary>
internal sealed class GqaAttention : ITrainSublayer
{
    public Linear Wq { get; }
    public Linear Wk { get; }
    public Linear Wv { get; }
    public Linear Wo { get; }
    public ParamSlice? QNorm { get; }
    public ParamSlice? KNorm { get; }

    private readonly ParameterBuffer _p;
    private readonly int _dim, _heads, _kvHeads, _headDim;
    private readonly float[] _cos, _sin;
    private readonly bool _neox;
    private readonly float _eps;
    private int _b, _t;
    // activations (N = B·T rows): input, roped q/k, v, attention probabilities [B, H, T, T], attention output;
    // with q/k norms also the pre-norm q/k and their per-head rstd
    private float[] _x = [], _q = [], _k = [], _v = [], _att = [], _y = [], _qRaw = [], _kRaw = [], _qRstd = [], _kRstd = [];

    private int QDim => _heads * _headDim;
    private int KvDim => _kvHeads * _headDim;

    /// <summary>Declares the slices in <paramref name="p"/> (call before p.Allocate()); cos/sin from <see cref="TrainOps.RopeTable"/>.</summary>
    public GqaAttention(ParameterBuffer p, int layer, int dim, int heads, int kvHeads, int headDim, float[] cos, float[] sin)
        : this(new ParamWeights(p), layer, dim, heads, kvHeads, headDim, cos, sin, neox: false, qkNorm: false, eps: 0) { }

    public GqaAttention(IWeightSource w, int layer, int dim, int heads, int kvHeads, int headDim, float[] cos, float[] sin, bool neox, bool qkNorm, float eps)
    {
        _p = w.P; _dim = dim; _heads = heads; _kvHeads = kvHeads; _headDim = headDim; _cos = cos; _sin = sin; _neox = neox; _eps = eps;
        Wq = WithBias(w, w.Matrix(TensorNames.Weight(layer, TensorNames.AttnQ), QDim, dim), TensorNames.Bias(layer, TensorNames.AttnQ));
        Wk = WithBias(w, w.Matrix(TensorNames.Weight(layer, TensorNames.AttnK), KvDim, dim), TensorNames.Bias(layer, TensorNames.AttnK));
        Wv = WithBias(w, w.Matrix(TensorNames.Weight(layer, TensorNames.AttnV), KvDim, dim), TensorNames.Bias(layer, TensorNames.AttnV));
        Wo = w.Matrix(TensorNames.Weight(layer, TensorNames.AttnOutput), dim, QDim);
        if (qkNorm)
        {
            QNorm = w.Vector(TensorNames.Weight(layer, TensorNames.AttnQNorm), headDim);
            KNorm = w.Vector(TensorNames.Weight(layer, TensorNames.AttnKNorm), headDim);
        }
    }

    private static Linear WithBias(IWeightSource w, Linear l, string biasName)
    {
        l.Bias = w.Bias(biasName, l.Out);
        return l;
    }

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int b, int t)
    {
        _b = b; _t = t;
        int n = b * t, d = _dim;
        x[..(n * d)].CopyTo(Buffers.Grow(ref _x, n * d));
        Buffers.Grow(ref _q, n * QDim); Buffers.Grow(ref _k, n * KvDim); Buffers.Grow(ref _v, n * KvDim);
        Buffers.Grow(ref _att, b * _heads * t * t); Buffers.Grow(ref _y, n * QDim);
        // q/k/v projections, per-head norms, rope
        if (QNorm != null)
        {
            Wq.Forward(Buffers.Grow(ref _qRaw, n * QDim), _x, n);
            Wk.Forward(Buffers.Grow(ref _kRaw, n * KvDim), _x, n);
            TrainOps.RmsNormForward(_q, Buffers.Grow(ref _qRstd, n * _heads), _qRaw, _p.W(QNorm), n * _heads, _headDim, _eps);
            TrainOps.RmsNormForward(_k, Buffers.Grow(ref _kRstd, n * _kvHeads), _kRaw, _p.W(KNorm!), n * _kvHeads, _headDim, _eps);
        }
        else
        {
            Wq.Forward(_q, _x, n);
            Wk.Forward(_k, _x, n);
        }
        Wv.Forward(_v, _x, n);
        TrainOps.RopeForward(_q, n, t, _heads, _headDim, 0, _headDim, _cos, _sin, neox: _neox);
        TrainOps.RopeForward(_k, n, t, _kvHeads, _headDim, 0, _headDim, _cos, _sin, neox: _neox);
        // causal GQA, output projection
        Attention.Forward(_y, _att, _q, _k, _v, b, t, _heads, _kvHeads, _headDim, _headDim, Scale);
        Wo.Forward(output, _y, n);
    }

    private float Scale => 1f / MathF.Sqrt(_headDim);

    public void Backward(Span<float> dx, ReadOnlySpan<float> dout)
    {
        int b = _b, t = _t, n = b * t;
        var dy = Buffers.RentZeroed(n * QDim);
        var dq = Buffers.RentZeroed(n * QDim); var dk = Buffers.RentZeroed(n * KvDim); var dv = Buffers.RentZeroed(n * KvDim);
        try
        {
            Wo.Backward(dy, dout, _y, n);
            Attention.Backward(dq, dk, dv, dy, _q, _k, _v, _att, b, t, _heads, _kvHeads, _headDim, _headDim, Scale);
            TrainOps.RopeBackward(dq, n, t, _heads, _headDim, 0, _headDim, _cos, _sin, neox: _neox);
            TrainOps.RopeBackward(dk, n, t, _kvHeads, _headDim, 0, _headDim, _cos, _sin, neox: _neox);
            if (QNorm != null)
            {
                // dy is spent: it takes d q_raw; dv's turn comes last, so d k_raw gets its own
                var dqRaw = dy; Array.Clear(dqRaw, 0, n * QDim);
                var dkRaw = Buffers.RentZeroed(n * KvDim);
                try
                {
                    TrainOps.RmsNormBackward(dqRaw, _p.G(QNorm), dq, _qRaw, _p.W(QNorm), _qRstd, n * _heads, _headDim);
                    TrainOps.RmsNormBackward(dkRaw, _p.G(KNorm!), dk, _kRaw, _p.W(KNorm!), _kRstd, n * _kvHeads, _headDim);
                    Wq.Backward(dx, dqRaw, _x, n);
                    Wk.Backward(dx, dkRaw, _x, n);
                }
                finally { Gemm.Return(dkRaw); }
            }
            else
            {
                Wq.Backward(dx, dq, _x, n);
                Wk.Backward(dx, dk, _x, n);
            }
            Wv.Backward(dx, dv, _x, n);
        }
        finally { Gemm.Return(dy); Gemm.Return(dq); Gemm.Return(dk); Gemm.Return(dv); }
    }
}

/// <summary>
/// SwiGLU feed-forward: out = down(silu(gate·x) ⊙ up·x). The dense FFN of llama blocks and of DeepSeek's leading
/// layers (ffn_gate/up/down), and DeepSeekMoE's shared expert (ffn_*_shexp).
/// </summary>
internal sealed class SwiGluFeedForward : ITrainSublayer
{
    public Linear Gate { get; }
    public Linear Up { get; }
    public Linear Down { get; }
    public int Inter { get; }

    private readonly int _dim;
    private int _n;
    // kept for the backward pass: the input and both projections; silu(g)·u is recomputed there (bit for bit), not kept
    private float[] _x = [], _g = [], _u = [];

    public SwiGluFeedForward(ParameterBuffer p, int layer, int dim, int inter, bool shared = false)
        : this(new ParamWeights(p), layer, dim, inter, shared) { }

    public SwiGluFeedForward(IWeightSource w, int layer, int dim, int inter, bool shared = false)
    {
        _dim = dim; Inter = inter;
        Gate = w.Matrix(TensorNames.Weight(layer, shared ? TensorNames.FfnGateShexp : TensorNames.FfnGate), inter, dim);
        Up = w.Matrix(TensorNames.Weight(layer, shared ? TensorNames.FfnUpShexp : TensorNames.FfnUp), inter, dim);
        Down = w.Matrix(TensorNames.Weight(layer, shared ? TensorNames.FfnDownShexp : TensorNames.FfnDown), dim, inter);
    }

    /// <summary>The three matrices of one expert of a stack (MoE routed experts).</summary>
    public SwiGluFeedForward(Linear gate, Linear up, Linear down)
    {
        Gate = gate; Up = up; Down = down; _dim = gate.In; Inter = gate.Out;
    }

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int b, int t) => Forward(output, x, b * t);

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int n)
    {
        _n = n;
        int d = _dim, f = Inter;
        x[..(n * d)].CopyTo(Buffers.Grow(ref _x, n * d));
        Buffers.Grow(ref _g, n * f); Buffers.Grow(ref _u, n * f);
        Gate.Forward(_g, _x, n);
        Up.Forward(_u, _x, n);
        var h = Gemm.Rent(n * f);
        try
        {
            TrainOps.SwiGluForward(h.AsSpan(0, n * f), _g, _u);
            Down.Forward(output, h, n);
        }
        finally { Gemm.Return(h); }
    }

    public void Backward(Span<float> dx, ReadOnlySpan<float> dout)
    {
        int n = _n, f = Inter;
        var h = Gemm.Rent(n * f);
        var dh = Buffers.RentZeroed(n * f); var dg = Buffers.RentZeroed(n * f); var du = Buffers.RentZeroed(n * f);
        try
        {
            TrainOps.SwiGluForward(h.AsSpan(0, n * f), _g, _u);
            Down.Backward(dh, dout, h, n);
            TrainOps.SwiGluBackward(dg, du, dh.AsSpan(0, n * f), _g, _u);
            Gate.Backward(dx, dg, _x, n);
            Up.Backward(dx, du, _x, n);
        }
        finally { Gemm.Return(h); Gemm.Return(dh); Gemm.Return(dg); Gemm.Return(du); }
    }
}
