using System.Numerics.Tensors;
using Sputnik.Models;

namespace Sputnik.Training;

/// <summary>
/// DeepSeek-V3's Multi-Token Prediction module at depth 1 (§2.2), laid out as llama.cpp stores it (the block after the
/// trunk, "blk.{L}."): for position i it sees the trunk's final hidden state h_i (after output_norm, the state
/// llama.cpp hands its MTP graph) and the embedding of token i+1, and predicts token i+2:
/// <code>
/// x0 = eh_proj · [RMSNorm_enorm(Emb(t[i+1])) ; RMSNorm_hnorm(h[i])]     (d × 2d; llama.cpp's concat order)
/// x  = one MLA + DeepSeekMoE block (x0)                                 (its own attention over the positions)
/// p  = softmax(Output · RMSNorm_shared_head_norm(x))                     (the shared output head and embedding)
/// </code>
/// The loss of row i takes the weight of the trunk's row i+1 (the row with the same target) times λ, so it counts
/// exactly where the trunk's loss does. Gradients flow into the shared embedding, the shared head and h.
/// </summary>
internal sealed class MtpModule
{
    public ParamSlice AttnNorm { get; }
    public ParamSlice FfnNorm { get; }
    public ParamSlice EhProj { get; }
    public ParamSlice Enorm { get; }
    public ParamSlice Hnorm { get; }
    public ParamSlice HeadNorm { get; }
    public ITrainSublayer Attn { get; }
    public ITrainSublayer Ffn { get; }
    /// <summary>Start of the module's parameters in the buffer: it declares them last, so [Offset, Count) is all of it.</summary>
    public int Offset { get; }

    private readonly ParameterBuffer _p;
    private readonly int _dim, _vocab;
    private readonly float _eps;
    private int _b, _t;
    private int[] _next = [], _targets = [];
    private float[] _e = [], _en = [], _rstdE = [], _hn = [], _rstdH = [], _cat = [], _x0 = [], _ln1 = [], _rstd1 = [], _x2 = [],
        _ln2 = [], _rstd2 = [], _x3 = [], _hm = [], _rstdM = [], _logits = [], _ceStats = [], _losses = [];
    private float[] _dl = [], _dlogits = [], _dhm = [], _dx = [], _dln = [], _dcat = [], _den = [], _dhn = [], _de = [];

    public MtpModule(ParameterBuffer p, DeepSeek2Config c)
    {
        _p = p; _dim = c.Dim; _vocab = c.VocabSize; _eps = c.RmsEps;
        int l = c.Layers; // the MTP block is stored right after the trunk
        Offset = p.Count;
        AttnNorm = p.Add(TensorNames.Weight(l, TensorNames.AttnNorm), c.Dim);
        Attn = new MlaAttention(p, l, c.Dim, c.Heads, c.KvLoraRank, c.QkNopeDim, c.QkRopeDim, c.VHeadDim, c.ContextLength, c.RmsEps, c.RopeBase);
        FfnNorm = p.Add(TensorNames.Weight(l, TensorNames.FfnNorm), c.Dim);
        Ffn = c.IsMoeLayer(l)
            ? new MoeFeedForward(p, l, c.Dim, c.ExpertCount, c.ExpertsUsed, c.ExpertFfnDim, c.SharedExperts * c.ExpertFfnDim, c.ExpertWeightsScale)
            : new SwiGluFeedForward(p, l, c.Dim, c.FfnDim);
        EhProj = p.Add(TensorNames.Weight(l, TensorNames.NextnEhProj), c.Dim, 2 * c.Dim);
        Enorm = p.Add(TensorNames.Weight(l, TensorNames.NextnEnorm), c.Dim);
        Hnorm = p.Add(TensorNames.Weight(l, TensorNames.NextnHnorm), c.Dim);
        HeadNorm = p.Add(TensorNames.Weight(l, TensorNames.NextnSharedHeadNorm), c.Dim);
    }

    public ReadOnlySpan<float> Losses => _losses.AsSpan(0, _b * _t);
    /// <summary>Logits of the last Forward, row i predicting the token at i+2.</summary>
    public ReadOnlySpan<float> Logits => _logits.AsSpan(0, _b * _t * _vocab);
    /// <summary>Row i's target (the token at i+2 where the trunk's row i+1 has one, else −1).</summary>
    public ReadOnlySpan<int> Targets => _targets.AsSpan(0, _b * _t);

    /// <summary>
    /// Runs the module on the trunk's hidden states <paramref name="h"/> [B·T, D] (after output_norm) for the same
    /// tokens/targets the trunk saw; returns the mean loss over rows with a target two ahead.
    /// </summary>
    public float Forward(ReadOnlySpan<float> h, ReadOnlySpan<int> tokens, ReadOnlySpan<int> targets, int b, int t,
        ReadOnlySpan<float> wte, ReadOnlySpan<float> wout)
    {
        _b = b; _t = t;
        int n = b * t, d = _dim, v = _vocab;
        Grow(n);
        for (int bi = 0; bi < b; bi++)
            for (int ti = 0; ti < t; ti++)
            {
                int r = bi * t + ti;
                bool inside = ti + 1 < t;
                _next[r] = inside ? tokens[r + 1] : tokens[r];    // the last row has no next token: any input, no loss
                _targets[r] = inside ? targets[r + 1] : -1;
            }
        TrainOps.EmbeddingForward(_e, _next.AsSpan(0, n), wte, d);
        TrainOps.RmsNormForward(_en, _rstdE, _e, _p.W(Enorm), n, d, _eps);
        TrainOps.RmsNormForward(_hn, _rstdH, h, _p.W(Hnorm), n, d, _eps);
        for (int r = 0; r < n; r++)
        {
            _en.AsSpan(r * d, d).CopyTo(_cat.AsSpan(r * 2 * d, d));
            _hn.AsSpan(r * d, d).CopyTo(_cat.AsSpan(r * 2 * d + d, d));
        }
        TrainOps.MatMulForward(_x0, _cat, _p.W(EhProj), n, 2 * d, d);
        TrainOps.RmsNormForward(_ln1, _rstd1, _x0, _p.W(AttnNorm), n, d, _eps);
        Attn.Forward(_x2, _ln1, b, t);
        TensorPrimitives.Add(_x2.AsSpan(0, n * d), _x0.AsSpan(0, n * d), _x2.AsSpan(0, n * d));
        TrainOps.RmsNormForward(_ln2, _rstd2, _x2, _p.W(FfnNorm), n, d, _eps);
        Ffn.Forward(_x3, _ln2, b, t);
        TensorPrimitives.Add(_x3.AsSpan(0, n * d), _x2.AsSpan(0, n * d), _x3.AsSpan(0, n * d));
        TrainOps.RmsNormForward(_hm, _rstdM, _x3, _p.W(HeadNorm), n, d, _eps);
        TrainOps.MatMulForward(_logits, _hm, wout, n, d, v);
        TrainOps.CrossEntropyForward(_losses, _ceStats, _logits, _targets.AsSpan(0, n), n, v);
        double sum = 0; int count = 0;
        for (int r = 0; r < n; r++) if (_targets[r] >= 0) { sum += _losses[r]; count++; }
        return count == 0 ? 0f : (float)(sum / count);
    }

    /// <summary>
    /// Backpropagates λ·(the trunk's row weights shifted by one) through the last Forward: accumulates the module's
    /// parameter gradients, the shared embedding's and head's (<paramref name="dwte"/>, <paramref name="dwout"/>) and
    /// dL/dh into <paramref name="dh"/>.
    /// </summary>
    public void Backward(ReadOnlySpan<float> dlosses, float weight, ReadOnlySpan<float> h, Span<float> dh, Span<float> dwte,
        ReadOnlySpan<float> wout, Span<float> dwout)
    {
        int b = _b, t = _t, n = b * t, d = _dim, v = _vocab;
        Buffers.Grow(ref _dl, n);
        for (int bi = 0; bi < b; bi++)
            for (int ti = 0; ti < t; ti++)
            {
                int r = bi * t + ti;
                _dl[r] = ti + 1 < t ? weight * dlosses[r + 1] : 0f;
            }
        TrainOps.CrossEntropyBackward(Buffers.Grow(ref _dlogits, n * v), _dl, _logits, _ceStats, _targets.AsSpan(0, n), n, v);
        TrainOps.MatMulBackward(Buffers.Zeroed(ref _dhm, n * d), dwout, _dlogits, _hm, wout, n, d, v);
        // _dx: d x3, then (ffn) d x2, then (attention) d x0
        TrainOps.RmsNormBackward(Buffers.Zeroed(ref _dx, n * d), _p.G(HeadNorm), _dhm, _x3, _p.W(HeadNorm), _rstdM, n, d);
        Ffn.Backward(Buffers.Zeroed(ref _dln, n * d), _dx);
        TrainOps.RmsNormBackward(_dx, _p.G(FfnNorm), _dln, _x2, _p.W(FfnNorm), _rstd2, n, d);
        Attn.Backward(Buffers.Zeroed(ref _dln, n * d), _dx);
        TrainOps.RmsNormBackward(_dx, _p.G(AttnNorm), _dln, _x0, _p.W(AttnNorm), _rstd1, n, d);
        TrainOps.MatMulBackward(Buffers.Zeroed(ref _dcat, n * 2 * d), _p.G(EhProj), _dx, _cat, _p.W(EhProj), n, 2 * d, d);
        Buffers.Grow(ref _den, n * d); Buffers.Grow(ref _dhn, n * d);
        for (int r = 0; r < n; r++)
        {
            _dcat.AsSpan(r * 2 * d, d).CopyTo(_den.AsSpan(r * d, d));
            _dcat.AsSpan(r * 2 * d + d, d).CopyTo(_dhn.AsSpan(r * d, d));
        }
        TrainOps.RmsNormBackward(Buffers.Zeroed(ref _de, n * d), _p.G(Enorm), _den, _e, _p.W(Enorm), _rstdE, n, d);
        TrainOps.EmbeddingBackward(dwte, _de, _next.AsSpan(0, n), d);
        TrainOps.RmsNormBackward(dh, _p.G(Hnorm), _dhn, h, _p.W(Hnorm), _rstdH, n, d);
    }

    private void Grow(int n)
    {
        int d = _dim;
        Buffers.Grow(ref _next, n); Buffers.Grow(ref _targets, n);
        Buffers.Grow(ref _e, n * d); Buffers.Grow(ref _en, n * d); Buffers.Grow(ref _rstdE, n); Buffers.Grow(ref _hn, n * d);
        Buffers.Grow(ref _rstdH, n); Buffers.Grow(ref _cat, n * 2 * d); Buffers.Grow(ref _x0, n * d); Buffers.Grow(ref _ln1, n * d);
        Buffers.Grow(ref _rstd1, n); Buffers.Grow(ref _x2, n * d); Buffers.Grow(ref _ln2, n * d); Buffers.Grow(ref _rstd2, n);
        Buffers.Grow(ref _x3, n * d); Buffers.Grow(ref _hm, n * d); Buffers.Grow(ref _rstdM, n);
        Buffers.Grow(ref _logits, n * _vocab); Buffers.Grow(ref _ceStats, 2 * n); Buffers.Grow(ref _losses, n);
    }
}
