using Sputnik.Models;

namespace Sputnik.Training;

/// <summary>
/// DeepSeek-V2/V3 Multi-head Latent Attention (naive form, q_lora_rank = 0 as in V2-Lite), forward and backward:
/// <code>
/// q      = x·Wqᵀ                        [N, H, nope+rope];  q_pe = RoPE(q[..., nope:])
/// kva    = x·Wkv_aᵀ                     [N, rank+rope];     c = kva[:, :rank], k_pe = RoPE(kva[:, rank:]) (one head, shared)
/// kvb    = RMSNorm(c)·Wkv_bᵀ            [N, H, nope+v];     k = [kvb[..., :nope], k_pe], v = kvb[..., nope:]
/// out    = Attn(q, k, v)·Woᵀ            softmax scale (nope+rope)^-½
/// </code>
/// Tensor names follow llama.cpp's deepseek2 mapping (attn_q, attn_kv_a_mqa, attn_kv_a_norm, attn_kv_b, attn_output);
/// the GGUF export splits attn_kv_b into the attn_k_b / attn_v_b pair current llama.cpp files carry.
/// </summary>
internal sealed class MlaAttention : ITrainSublayer
{
    public int Dim { get; }
    public int Heads { get; }
    public int Rank { get; }
    public int Nope { get; }
    public int Rope { get; }
    public int VDim { get; }
    public Linear Wq { get; }
    public Linear WkvA { get; }
    public ParamSlice KvNorm { get; }
    public Linear WkvB { get; }
    public Linear Wo { get; }

    private readonly ParameterBuffer _p;
    private readonly float[] _cos, _sin;
    private readonly float _eps;
    private int _b, _t;
    // activations, sized for the largest B×T so far
    private float[] _x = [], _q = [], _kva = [], _c = [], _cn = [], _rstd = [], _kvb = [], _k = [], _v = [], _att = [], _o = [];
    // backward scratch
    private float[] _dO = [], _dq = [], _dk = [], _dv = [], _dkvb = [], _dkva = [], _dcn = [], _dc = [];

    public int QkDim => Nope + Rope;

    /// <summary>Declares the slices in <paramref name="p"/> (call before p.Allocate()).</summary>
    public MlaAttention(ParameterBuffer p, int layer, int dim, int heads, int rank, int nope, int rope, int vDim, int maxT,
        float eps = 1e-6f, float ropeBase = 10000f)
        : this(new ParamWeights(p), layer, dim, heads, rank, nope, rope, vDim, maxT, eps, ropeBase) { }

    public MlaAttention(IWeightSource w, int layer, int dim, int heads, int rank, int nope, int rope, int vDim, int maxT,
        float eps = 1e-6f, float ropeBase = 10000f)
    {
        _p = w.P; Dim = dim; Heads = heads; Rank = rank; Nope = nope; Rope = rope; VDim = vDim; _eps = eps;
        Wq = w.Matrix(TensorNames.Weight(layer, TensorNames.AttnQ), heads * (nope + rope), dim);
        WkvA = w.Matrix(TensorNames.Weight(layer, TensorNames.AttnKvAMqa), rank + rope, dim);
        KvNorm = w.Vector(TensorNames.Weight(layer, TensorNames.AttnKvANorm), rank);
        WkvB = w.MlaKvB(layer, heads, rank, nope, vDim);
        Wo = w.Matrix(TensorNames.Weight(layer, TensorNames.AttnOutput), dim, heads * vDim);
        (_cos, _sin) = TrainOps.RopeTable(maxT, rope, ropeBase);
    }

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int b, int t)
    {
        _b = b; _t = t;
        int n = b * t, h = Heads, qk = QkDim, kvw = Nope + VDim;
        x[..(n * Dim)].CopyTo(Buffers.Grow(ref _x, n * Dim));
        Buffers.Grow(ref _q, n * h * qk); Buffers.Grow(ref _kva, n * (Rank + Rope)); Buffers.Grow(ref _c, n * Rank); Buffers.Grow(ref _cn, n * Rank);
        Buffers.Grow(ref _rstd, n); Buffers.Grow(ref _kvb, n * h * kvw); Buffers.Grow(ref _k, n * h * qk); Buffers.Grow(ref _v, n * h * VDim);
        Buffers.Grow(ref _att, b * h * t * t); Buffers.Grow(ref _o, n * h * VDim);

        Wq.Forward(_q, _x, n);
        TrainOps.RopeForward(_q, n, t, h, qk, Nope, Rope, _cos, _sin);
        WkvA.Forward(_kva, _x, n);
        TrainOps.RopeForward(_kva, n, t, 1, Rank + Rope, Rank, Rope, _cos, _sin);
        for (int r = 0; r < n; r++) _kva.AsSpan(r * (Rank + Rope), Rank).CopyTo(_c.AsSpan(r * Rank, Rank));
        TrainOps.RmsNormForward(_cn, _rstd, _c, _p.W(KvNorm), n, Rank, _eps);
        WkvB.Forward(_kvb, _cn, n);
        // assemble per-head keys [k_nope, k_pe] (k_pe broadcast to every head) and values
        for (int r = 0; r < n; r++)
        {
            var kpe = _kva.AsSpan(r * (Rank + Rope) + Rank, Rope);
            for (int hh = 0; hh < h; hh++)
            {
                var src = _kvb.AsSpan((r * h + hh) * kvw, kvw);
                var k = _k.AsSpan((r * h + hh) * qk, qk);
                src[..Nope].CopyTo(k);
                kpe.CopyTo(k[Nope..]);
                src[Nope..].CopyTo(_v.AsSpan((r * h + hh) * VDim, VDim));
            }
        }
        Attention.Forward(_o, _att, _q, _k, _v, b, t, h, h, qk, VDim, 1f / MathF.Sqrt(qk));
        Wo.Forward(output, _o, n);
    }

    /// <summary>Reverses <see cref="Forward"/> line by line; accumulates into dx and the parameter gradients.</summary>
    public void Backward(Span<float> dx, ReadOnlySpan<float> dout)
    {
        int b = _b, t = _t, n = b * t, h = Heads, qk = QkDim, kvw = Nope + VDim;
        var dO = Buffers.Zeroed(ref _dO, n * h * VDim);
        Wo.Backward(dO, dout, _o, n);
        var dq = Buffers.Zeroed(ref _dq, n * h * qk); var dk = Buffers.Zeroed(ref _dk, n * h * qk); var dv = Buffers.Zeroed(ref _dv, n * h * VDim);
        Attention.Backward(dq, dk, dv, dO, _q, _k, _v, _att, b, t, h, h, qk, VDim, 1f / MathF.Sqrt(qk));
        // scatter key/value gradients back to kv_b outputs and the shared k_pe (summed over heads)
        var dkvb = Buffers.Zeroed(ref _dkvb, n * h * kvw); var dkva = Buffers.Zeroed(ref _dkva, n * (Rank + Rope));
        for (int r = 0; r < n; r++)
        {
            var dkpe = dkva.AsSpan(r * (Rank + Rope) + Rank, Rope);
            for (int hh = 0; hh < h; hh++)
            {
                var dst = dkvb.AsSpan((r * h + hh) * kvw, kvw);
                var dkh = dk.AsSpan((r * h + hh) * qk, qk);
                dkh[..Nope].CopyTo(dst);
                System.Numerics.Tensors.TensorPrimitives.Add(dkpe, dkh[Nope..], dkpe);
                dv.AsSpan((r * h + hh) * VDim, VDim).CopyTo(dst[Nope..]);
            }
        }
        var dcn = Buffers.Zeroed(ref _dcn, n * Rank);
        WkvB.Backward(dcn, dkvb, _cn, n);
        var dc = Buffers.Zeroed(ref _dc, n * Rank);
        TrainOps.RmsNormBackward(dc, _p.G(KvNorm), dcn, _c, _p.W(KvNorm), _rstd, n, Rank);
        for (int r = 0; r < n; r++) dc.AsSpan(r * Rank, Rank).CopyTo(dkva.AsSpan(r * (Rank + Rope), Rank));
        TrainOps.RopeBackward(dkva, n, t, 1, Rank + Rope, Rank, Rope, _cos, _sin);
        WkvA.Backward(dx, dkva, _x, n);
        TrainOps.RopeBackward(dq, n, t, h, qk, Nope, Rope, _cos, _sin);
        Wq.Backward(dx, dq, _x, n);
    }
}
