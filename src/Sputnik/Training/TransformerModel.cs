using System.Numerics.Tensors;

namespace Sputnik.Training;

/// <summary>
/// The trainable decoder, laid out exactly like the Sputnik model that runs its GGUF, so export is a copy of named
/// slices: token embedding, L pre-RMSNorm residual blocks, final RMSNorm, untied output, cross-entropy. A block is
/// attention then feed-forward (<see cref="ITrainSublayer"/>): GQA + SwiGLU for the `llama` layout (DecoderModel);
/// MLA + (dense SwiGLU in the leading layers, DeepSeekMoE after) for the `deepseek2` layout (DeepSeek2). Forward keeps
/// every activation the backward pass needs (llm.c's ActivationTensors), sized lazily for the largest B×T seen.
/// </summary>
internal sealed class TransformerModel
{
    public TrainConfig Config { get; }
    public ParameterBuffer P { get; } = new();
    public bool[] DecayMask { get; }

    private readonly ParamSlice _wte, _normF, _wout;
    private readonly Block[] _l;

    private sealed record Block(ParamSlice AttnNorm, ITrainSublayer Attn, ParamSlice FfnNorm, ITrainSublayer Ffn);

    // activations (N = B·T rows)
    private int _b, _t;
    private int[] _tokens = [], _targets = [];
    private float[][] _resid = [];                          // (L+1) × [N, D]
    private float[][] _ln1 = [], _rstd1 = [], _x2 = [], _ln2 = [], _rstd2 = [];
    private float[] _lnf = [], _rstdf = [], _logits = [], _probs = [], _losses = [];
    // backward scratch
    private float[] _dres = [], _dln = [], _dlogits = [];

    public TransformerModel(TrainConfig c, int seed = 1234)
    {
        Config = c;
        _wte = P.Add("token_embd.weight", c.Vocab, c.Dim);
        _l = new Block[c.Layers];
        var (cos, sin) = c.DeepSeek == null ? TrainOps.RopeTable(c.MaxSeq, c.HeadDim, c.RopeBase) : ([], []);
        for (int l = 0; l < c.Layers; l++)
        {
            string p = $"blk.{l}.";
            var attnNorm = P.Add(p + "attn_norm.weight", c.Dim);
            ITrainSublayer attn = c.DeepSeek is { } a
                ? new MlaAttention(P, p, c.Dim, c.Heads, a.KvLoraRank, a.QkNopeDim, a.QkRopeDim, a.VHeadDim, c.MaxSeq, c.RmsEps, c.RopeBase)
                : new GqaAttention(P, p, c.Dim, c.Heads, c.KvHeads, c.HeadDim, cos, sin);
            var ffnNorm = P.Add(p + "ffn_norm.weight", c.Dim);
            ITrainSublayer ffn = c.DeepSeek is { } m && m.IsMoeLayer(l)
                ? new MoeFeedForward(P, p, c.Dim, m.Experts, m.ExpertsUsed, m.ExpertFfnDim, m.SharedExperts * m.ExpertFfnDim, m.RouteScale)
                : new SwiGluFeedForward(P, p, c.Dim, c.FfnDim);
            _l[l] = new Block(attnNorm, attn, ffnNorm, ffn);
        }
        _normF = P.Add("output_norm.weight", c.Dim);
        _wout = P.Add("output.weight", c.Vocab, c.Dim);
        P.Allocate();

        // GPT-2 init: N(0, 0.02), residual projections (attention output, every FFN down matrix) scaled by 1/sqrt(2L);
        // RMSNorm gains 1 and the MoE selection bias 0, neither decayed.
        var rng = new Random(seed);
        DecayMask = new bool[P.Count];
        foreach (var s in P.Slices)
        {
            if (s.Name.EndsWith(".bias", StringComparison.Ordinal)) continue;
            bool isNorm = s.Shape.Length == 1;
            if (isNorm) P.Fill(s, 1f);
            else P.InitNormal(s, s.Name.EndsWith("attn_output.weight") || s.Name.Contains(".ffn_down") ? 0.02f / MathF.Sqrt(2 * c.Layers) : 0.02f, rng);
            if (!isNorm) Array.Fill(DecayMask, true, s.Offset, s.Length);
        }
    }

    /// <summary>
    /// Sampling temperature the losses are taken at: logits are divided by it before the softmax (as TRL does for
    /// GRPO, so log-probs are those of the distribution the rollouts were sampled from). 1 for SFT.
    /// </summary>
    public float Temperature { get; set; } = 1f;

    public ReadOnlySpan<float> Logits => _logits.AsSpan(0, _b * _t * Config.Vocab);
    public ReadOnlySpan<float> Losses => _losses.AsSpan(0, _b * _t);

    /// <summary>The MoE layers (none in the llama layout).</summary>
    public IEnumerable<MoeFeedForward> MoeLayers => _l.Select(b => b.Ffn).OfType<MoeFeedForward>();

    /// <summary>After an optimizer step: nudges every MoE layer's selection bias toward balanced load (no-op for llama).</summary>
    public void UpdateRouterBias()
    {
        if (Config.DeepSeek is { } ds)
            foreach (var moe in MoeLayers) moe.UpdateBias(ds.BiasUpdateRate);
    }

    private void Ensure(int b, int t)
    {
        var c = Config;
        if (t > c.MaxSeq) throw new ArgumentException($"sequence length {t} exceeds the model's {c.MaxSeq}");
        _b = b; _t = t;
        int n = b * t, L = c.Layers;
        if (n <= _tokens.Length) return;
        float[][] Alloc(int count, int size) => Enumerable.Range(0, count).Select(_ => new float[size]).ToArray();
        _tokens = new int[n]; _targets = new int[n];
        _resid = Alloc(L + 1, n * c.Dim);
        _ln1 = Alloc(L, n * c.Dim); _rstd1 = Alloc(L, n); _x2 = Alloc(L, n * c.Dim); _ln2 = Alloc(L, n * c.Dim); _rstd2 = Alloc(L, n);
        _lnf = new float[n * c.Dim]; _rstdf = new float[n]; _logits = new float[n * c.Vocab]; _probs = new float[n * c.Vocab]; _losses = new float[n];
        _dres = new float[n * c.Dim]; _dln = new float[n * c.Dim]; _dlogits = new float[n * c.Vocab];
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
        TrainOps.EmbeddingForward(_resid[0], tokens, P.W(_wte), d);
        for (int l = 0; l < c.Layers; l++)
        {
            var s = _l[l];
            var x = _resid[l];
            // attention rmsnorm, attention, residual
            TrainOps.RmsNormForward(_ln1[l], _rstd1[l], x, P.W(s.AttnNorm), n, d, c.RmsEps);
            s.Attn.Forward(_x2[l], _ln1[l], b, t);
            TensorPrimitives.Add(_x2[l].AsSpan(0, n * d), x.AsSpan(0, n * d), _x2[l].AsSpan(0, n * d));
            // ffn rmsnorm, feed-forward, residual
            TrainOps.RmsNormForward(_ln2[l], _rstd2[l], _x2[l], P.W(s.FfnNorm), n, d, c.RmsEps);
            s.Ffn.Forward(_resid[l + 1], _ln2[l], b, t);
            TensorPrimitives.Add(_resid[l + 1].AsSpan(0, n * d), _x2[l].AsSpan(0, n * d), _resid[l + 1].AsSpan(0, n * d));
        }
        TrainOps.RmsNormForward(_lnf, _rstdf, _resid[c.Layers], P.W(_normF), n, d, c.RmsEps);
        TrainOps.MatMulForward(_logits, _lnf, P.W(_wout), n, d, c.Vocab);
        if (Temperature != 1f) TensorPrimitives.Multiply(_logits.AsSpan(0, n * c.Vocab), 1f / Temperature, _logits.AsSpan(0, n * c.Vocab));
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
        int n = _b * _t, d = c.Dim;
        Array.Clear(_dlogits, 0, n * c.Vocab);
        TrainOps.CrossEntropyBackward(_dlogits, dlosses, _probs, _targets, n, c.Vocab);
        // scaled = logits / T, so d logits = d scaled / T
        if (Temperature != 1f) TensorPrimitives.Multiply(_dlogits.AsSpan(0, n * c.Vocab), 1f / Temperature, _dlogits.AsSpan(0, n * c.Vocab));
        Array.Clear(_dln, 0, n * d);
        TrainOps.MatMulBackward(_dln, P.G(_wout), _dlogits, _lnf, P.W(_wout), n, d, c.Vocab);
        Array.Clear(_dres, 0, n * d);
        TrainOps.RmsNormBackward(_dres, P.G(_normF), _dln, _resid[c.Layers], P.W(_normF), _rstdf, n, d);
        for (int l = c.Layers - 1; l >= 0; l--)
        {
            var s = _l[l];
            // ffn: resid[l+1] = x2 + ffn(rmsnorm(x2)); _dres holds d resid[l+1] and becomes d x2
            Array.Clear(_dln, 0, n * d);
            s.Ffn.Backward(_dln, _dres);
            TrainOps.RmsNormBackward(_dres, P.G(s.FfnNorm), _dln, _x2[l], P.W(s.FfnNorm), _rstd2[l], n, d);
            // attention: x2 = x + attn(rmsnorm(x)); _dres becomes d x
            Array.Clear(_dln, 0, n * d);
            s.Attn.Backward(_dln, _dres);
            TrainOps.RmsNormBackward(_dres, P.G(s.AttnNorm), _dln, _resid[l], P.W(s.AttnNorm), _rstd1[l], n, d);
        }
        TrainOps.EmbeddingBackward(P.G(_wte), _dres, _tokens.AsSpan(0, n), d);
    }
}
