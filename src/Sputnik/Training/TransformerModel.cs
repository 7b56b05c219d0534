using System.Numerics.Tensors;

namespace Sputnik.Training;

/// <summary>
/// The trainable dense decoder, laid out exactly like Sputnik's <c>llama</c> DecoderModel (pre-RMSNorm, GQA with
/// adjacent-pair RoPE, SwiGLU, untied output) so export is a copy of named slices. Forward keeps every activation
/// the backward pass needs (llm.c's ActivationTensors), sized lazily for the largest B×T seen.
/// </summary>
internal sealed class TransformerModel
{
    public TrainConfig Config { get; }
    public ParameterBuffer P { get; } = new();
    public bool[] DecayMask { get; }

    private readonly ParamSlice _wte, _normF, _wout;
    private readonly LayerSlices[] _l;
    private readonly float[] _cos, _sin;

    private sealed record LayerSlices(ParamSlice AttnNorm, ParamSlice Wq, ParamSlice Wk, ParamSlice Wv, ParamSlice Wo,
        ParamSlice FfnNorm, ParamSlice Gate, ParamSlice Up, ParamSlice Down);

    // activations (N = B·T rows)
    private int _capN, _capB, _capT, _b, _t;
    private int[] _tokens = [], _targets = [];
    private float[][] _resid = [];                          // (L+1) × [N, D]
    private float[][] _ln1 = [], _rstd1 = [], _q = [], _k = [], _v = [], _att = [], _atty = [], _x2 = [];
    private float[][] _ln2 = [], _rstd2 = [], _g = [], _u = [], _h = [];
    private float[] _lnf = [], _rstdf = [], _logits = [], _probs = [], _losses = [];
    // backward scratch
    private float[] _dres = [], _dln = [], _dq = [], _dk = [], _dv = [], _datty = [], _dg = [], _du = [], _dh = [], _dlogits = [];

    public TransformerModel(TrainConfig c, int seed = 1234)
    {
        Config = c;
        _wte = P.Add("token_embd.weight", c.Vocab, c.Dim);
        _l = new LayerSlices[c.Layers];
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            _l[l] = new LayerSlices(
                P.Add(p + "attn_norm.weight", c.Dim),
                P.Add(p + "attn_q.weight", c.QDim, c.Dim),
                P.Add(p + "attn_k.weight", c.KvDim, c.Dim),
                P.Add(p + "attn_v.weight", c.KvDim, c.Dim),
                P.Add(p + "attn_output.weight", c.Dim, c.QDim),
                P.Add(p + "ffn_norm.weight", c.Dim),
                P.Add(p + "ffn_gate.weight", c.FfnDim, c.Dim),
                P.Add(p + "ffn_up.weight", c.FfnDim, c.Dim),
                P.Add(p + "ffn_down.weight", c.Dim, c.FfnDim));
        }
        _normF = P.Add("output_norm.weight", c.Dim);
        _wout = P.Add("output.weight", c.Vocab, c.Dim);
        P.Allocate();

        // GPT-2 init: N(0, 0.02), residual projections scaled by 1/sqrt(2L); RMSNorm gains 1, never decayed.
        var rng = new Random(seed);
        DecayMask = new bool[P.Count];
        foreach (var s in P.Slices)
        {
            bool isNorm = s.Shape.Length == 1;
            if (isNorm) P.Fill(s, 1f);
            else P.InitNormal(s, s.Name.EndsWith("attn_output.weight") || s.Name.EndsWith("ffn_down.weight") ? 0.02f / MathF.Sqrt(2 * c.Layers) : 0.02f, rng);
            if (!isNorm) Array.Fill(DecayMask, true, s.Offset, s.Length);
        }
        (_cos, _sin) = TrainOps.RopeTable(c.MaxSeq, c.HeadDim, c.RopeBase);
    }

    /// <summary>
    /// Sampling temperature the losses are taken at: logits are divided by it before the softmax (as TRL does for
    /// GRPO, so log-probs are those of the distribution the rollouts were sampled from). 1 for SFT.
    /// </summary>
    public float Temperature { get; set; } = 1f;

    public ReadOnlySpan<float> Logits => _logits.AsSpan(0, _b * _t * Config.Vocab);
    public ReadOnlySpan<float> Losses => _losses.AsSpan(0, _b * _t);

    private void Ensure(int b, int t)
    {
        var c = Config;
        if (t > c.MaxSeq) throw new ArgumentException($"sequence length {t} exceeds the model's {c.MaxSeq}");
        _b = b; _t = t;
        int n = b * t;
        if (n <= _capN && b * t * t <= _capB * _capT * _capT && b <= _capB) return;
        _capN = Math.Max(n, _capN); _capB = Math.Max(b, _capB); _capT = Math.Max(t, _capT);
        int N = _capN, L = c.Layers, attN = _capB * c.Heads * _capT * _capT;
        float[][] Alloc(int count, int size) => Enumerable.Range(0, count).Select(_ => new float[size]).ToArray();
        _tokens = new int[N]; _targets = new int[N];
        _resid = Alloc(L + 1, N * c.Dim);
        _ln1 = Alloc(L, N * c.Dim); _rstd1 = Alloc(L, N); _q = Alloc(L, N * c.QDim); _k = Alloc(L, N * c.KvDim); _v = Alloc(L, N * c.KvDim);
        _att = Alloc(L, attN); _atty = Alloc(L, N * c.QDim); _x2 = Alloc(L, N * c.Dim);
        _ln2 = Alloc(L, N * c.Dim); _rstd2 = Alloc(L, N); _g = Alloc(L, N * c.FfnDim); _u = Alloc(L, N * c.FfnDim); _h = Alloc(L, N * c.FfnDim);
        _lnf = new float[N * c.Dim]; _rstdf = new float[N]; _logits = new float[N * c.Vocab]; _probs = new float[N * c.Vocab]; _losses = new float[N];
        _dres = new float[N * c.Dim]; _dln = new float[N * c.Dim]; _dq = new float[N * c.QDim]; _dk = new float[N * c.KvDim]; _dv = new float[N * c.KvDim];
        _datty = new float[N * c.QDim]; _dg = new float[N * c.FfnDim]; _du = new float[N * c.FfnDim]; _dh = new float[N * c.FfnDim];
        _dlogits = new float[N * c.Vocab];
    }

    /// <summary>
    /// Runs the model on tokens [B, T]. targets[n] is the token expected after position n, or −1 where no loss is
    /// taken (prompt, padding). Fills per-row losses (−log p(target)) and returns their mean over counted rows.
    /// </summary>
    public float Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<int> targets, int b, int t)
    {
        var c = Config;
        Ensure(b, t);
        int n = b * t, d = c.Dim;
        tokens.CopyTo(_tokens); targets.CopyTo(_targets);
        var w = P.Data.AsSpan();
        TrainOps.EmbeddingForward(_resid[0], tokens, w.Slice(_wte.Offset, _wte.Length), d);
        float scale = 1f / MathF.Sqrt(c.HeadDim);
        for (int l = 0; l < c.Layers; l++)
        {
            var s = _l[l];
            var x = _resid[l];
            // attention rmsnorm, q/k/v projections, rope
            TrainOps.RmsNormForward(_ln1[l], _rstd1[l], x, P.W(s.AttnNorm), n, d, c.RmsEps);
            TrainOps.MatMulForward(_q[l], _ln1[l], P.W(s.Wq), n, d, c.QDim);
            TrainOps.MatMulForward(_k[l], _ln1[l], P.W(s.Wk), n, d, c.KvDim);
            TrainOps.MatMulForward(_v[l], _ln1[l], P.W(s.Wv), n, d, c.KvDim);
            TrainOps.RopeForward(_q[l], n, t, c.Heads, c.HeadDim, 0, c.HeadDim, _cos, _sin);
            TrainOps.RopeForward(_k[l], n, t, c.KvHeads, c.HeadDim, 0, c.HeadDim, _cos, _sin);
            // causal GQA, output projection, residual
            Attention.Forward(_atty[l], _att[l], _q[l], _k[l], _v[l], b, t, c.Heads, c.KvHeads, c.HeadDim, c.HeadDim, scale);
            TrainOps.MatMulForward(_x2[l], _atty[l], P.W(s.Wo), n, c.QDim, d);
            TensorPrimitives.Add(_x2[l].AsSpan(0, n * d), x.AsSpan(0, n * d), _x2[l].AsSpan(0, n * d));
            // ffn rmsnorm, SwiGLU, down projection, residual
            TrainOps.RmsNormForward(_ln2[l], _rstd2[l], _x2[l], P.W(s.FfnNorm), n, d, c.RmsEps);
            TrainOps.MatMulForward(_g[l], _ln2[l], P.W(s.Gate), n, d, c.FfnDim);
            TrainOps.MatMulForward(_u[l], _ln2[l], P.W(s.Up), n, d, c.FfnDim);
            TrainOps.SwiGluForward(_h[l].AsSpan(0, n * c.FfnDim), _g[l], _u[l]);
            TrainOps.MatMulForward(_resid[l + 1], _h[l], P.W(s.Down), n, c.FfnDim, d);
            TensorPrimitives.Add(_resid[l + 1].AsSpan(0, n * d), _x2[l].AsSpan(0, n * d), _resid[l + 1].AsSpan(0, n * d));
        }
        TrainOps.RmsNormForward(_lnf, _rstdf, _resid[c.Layers], P.W(_normF), n, d, c.RmsEps);
        TrainOps.MatMulForward(_logits, _lnf, P.W(_wout), n, d, c.Vocab);
        if (Temperature != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(_logits.AsSpan(0, n * c.Vocab), 1f / Temperature, _logits.AsSpan(0, n * c.Vocab));
        TrainOps.CrossEntropyForward(_losses, _probs, _logits, targets, n, c.Vocab);
        double sum = 0; int count = 0;
        for (int i = 0; i < n; i++) if (targets[i] >= 0) { sum += _losses[i]; count++; }
        return count == 0 ? 0f : (float)(sum / count);
    }

    /// <summary>Mean-over-counted-rows cross-entropy gradient weights (SFT): dloss[n] = 1/count where target ≥ 0.</summary>
    public float[] MeanLossWeights()
    {
        int n = _b * _t, count = 0;
        for (int i = 0; i < n; i++) if (_targets[i] >= 0) count++;
        var dl = new float[n];
        for (int i = 0; i < n; i++) dl[i] = _targets[i] >= 0 ? 1f / Math.Max(1, count) : 0f;
        return dl;
    }

    /// <summary>Backpropagates dL/dloss[n] (per row) through the last Forward, accumulating into P.Grad.</summary>
    public void Backward(ReadOnlySpan<float> dlosses)
    {
        var c = Config;
        int b = _b, t = _t, n = b * t, d = c.Dim;
        float scale = 1f / MathF.Sqrt(c.HeadDim);
        Array.Clear(_dlogits, 0, n * c.Vocab);
        TrainOps.CrossEntropyBackward(_dlogits, dlosses, _probs, _targets, n, c.Vocab);
        // scaled = logits / T, so d logits = d scaled / T
        if (Temperature != 1f) System.Numerics.Tensors.TensorPrimitives.Multiply(_dlogits.AsSpan(0, n * c.Vocab), 1f / Temperature, _dlogits.AsSpan(0, n * c.Vocab));
        Array.Clear(_dln, 0, n * d);
        TrainOps.MatMulBackward(_dln, P.G(_wout), _dlogits, _lnf, P.W(_wout), n, d, c.Vocab);
        Array.Clear(_dres, 0, n * d);
        TrainOps.RmsNormBackward(_dres, P.G(_normF), _dln, _resid[c.Layers], P.W(_normF), _rstdf, n, d);
        for (int l = c.Layers - 1; l >= 0; l--)
        {
            var s = _l[l];
            // ffn: resid[l+1] = x2 + down(swiglu(gate(ln2), up(ln2))); _dres holds d resid[l+1] and becomes d x2
            Array.Clear(_dh, 0, n * c.FfnDim);
            TrainOps.MatMulBackward(_dh, P.G(s.Down), _dres, _h[l], P.W(s.Down), n, c.FfnDim, d);
            Array.Clear(_dg, 0, n * c.FfnDim); Array.Clear(_du, 0, n * c.FfnDim);
            TrainOps.SwiGluBackward(_dg, _du, _dh.AsSpan(0, n * c.FfnDim), _g[l], _u[l]);
            Array.Clear(_dln, 0, n * d);
            TrainOps.MatMulBackward(_dln, P.G(s.Gate), _dg, _ln2[l], P.W(s.Gate), n, d, c.FfnDim);
            TrainOps.MatMulBackward(_dln, P.G(s.Up), _du, _ln2[l], P.W(s.Up), n, d, c.FfnDim);
            TrainOps.RmsNormBackward(_dres, P.G(s.FfnNorm), _dln, _x2[l], P.W(s.FfnNorm), _rstd2[l], n, d);
            // attention: x2 = x + wo(attn(rope(q), rope(k), v)); _dres becomes d x
            Array.Clear(_datty, 0, n * c.QDim);
            TrainOps.MatMulBackward(_datty, P.G(s.Wo), _dres, _atty[l], P.W(s.Wo), n, c.QDim, d);
            Array.Clear(_dq, 0, n * c.QDim); Array.Clear(_dk, 0, n * c.KvDim); Array.Clear(_dv, 0, n * c.KvDim);
            Attention.Backward(_dq, _dk, _dv, _datty, _q[l], _k[l], _v[l], _att[l], b, t, c.Heads, c.KvHeads, c.HeadDim, c.HeadDim, scale);
            TrainOps.RopeBackward(_dq, n, t, c.Heads, c.HeadDim, 0, c.HeadDim, _cos, _sin);
            TrainOps.RopeBackward(_dk, n, t, c.KvHeads, c.HeadDim, 0, c.HeadDim, _cos, _sin);
            Array.Clear(_dln, 0, n * d);
            TrainOps.MatMulBackward(_dln, P.G(s.Wq), _dq, _ln1[l], P.W(s.Wq), n, d, c.QDim);
            TrainOps.MatMulBackward(_dln, P.G(s.Wk), _dk, _ln1[l], P.W(s.Wk), n, d, c.KvDim);
            TrainOps.MatMulBackward(_dln, P.G(s.Wv), _dv, _ln1[l], P.W(s.Wv), n, d, c.KvDim);
            TrainOps.RmsNormBackward(_dres, P.G(s.AttnNorm), _dln, _resid[l], P.W(s.AttnNorm), _rstd1[l], n, d);
        }
        TrainOps.EmbeddingBackward(P.G(_wte), _dres, _tokens.AsSpan(0, n), d);
    }
}
