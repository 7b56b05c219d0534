using System.Numerics.Tensors;
using Sputnik.Models;

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
    /// <summary>The hyper-parameters, exactly the record the export writes: <see cref="ModelConfig"/> (llama) or <see cref="DeepSeek2Config"/>.</summary>
    public IArchConfig Config { get; }
    public ParameterBuffer P { get; }
    public bool[] DecayMask { get; }
    /// <summary>True over a frozen base (LoRA): the matrices are the file's, only adapters train.</summary>
    public bool IsFrozenBase { get; }

    /// <summary>γ of the auxiliary-loss-free balancing: selection-bias change per optimizer step (V3 uses 0.001).</summary>
    public const float RouterBiasUpdateRate = 1e-3f;

    private readonly ParamSlice _normF;
    private readonly Linear _wte, _wout;
    private readonly Block[] _l;
    private readonly MtpModule? _mtp;

    private sealed record Block(ParamSlice AttnNorm, ITrainSublayer Attn, ParamSlice FfnNorm, ITrainSublayer Ffn);

    // activations (N = B·T rows)
    private int _b, _t;
    private int[] _tokens = [], _targets = [];
    private float[][] _resid = [];                          // (L+1) × [N, D]
    private float[][] _rstd1 = [], _x2 = [], _rstd2 = [];
    // the normed input of the sub-layer being run: each sub-layer keeps its own copy, so one array serves all layers
    private float[] _ln = [];
    // the head's logits [N, V] (Backward turns them into their gradient in place) and per row max and 1/Σexp
    // (TrainOps.CrossEntropyForward): no separate probabilities or logit-gradient arrays of the same size
    private float[] _lnf = [], _rstdf = [], _logits = [], _ceStats = [], _losses = [];
    // backward scratch
    private float[] _dres = [], _dln = [];
    private bool _mtpRan;

    public TransformerModel(IArchConfig c, int seed = 1234) : this(c, new ParamWeights(new ParameterBuffer()), seed) { }

    /// <summary>
    /// Builds the decoder over <paramref name="w"/>: fresh trainable F32 weights (<see cref="ParamWeights"/>, then the
    /// GPT-2 init below) or a frozen GGUF base with LoRA pairs (<see cref="FrozenBase"/>; no init, the file's weights).
    /// </summary>
    public TransformerModel(IArchConfig c, IWeightSource w, int seed = 1234)
    {
        Config = c;
        P = w.P;
        var llama = c as ModelConfig;
        var ds = c as DeepSeek2Config;
        if (llama == null && ds == null) throw new ArgumentException($"architecture '{c.Architecture}' is not one Sputnik trains");
        _wte = w.Matrix(TensorNames.Weight(TensorNames.TokenEmbd), c.VocabSize, c.Dim);
        _l = new Block[c.Layers];
        var (cos, sin) = llama != null ? TrainOps.RopeTable(c.ContextLength, llama.HeadDim, c.RopeBase) : ([], []);
        for (int l = 0; l < c.Layers; l++)
        {
            var attnNorm = w.Vector(TensorNames.Weight(l, TensorNames.AttnNorm), c.Dim);
            ITrainSublayer attn = ds != null
                ? new MlaAttention(w, l, c.Dim, c.Heads, ds.KvLoraRank, ds.QkNopeDim, ds.QkRopeDim, ds.VHeadDim, c.ContextLength, c.RmsEps, c.RopeBase)
                : new GqaAttention(w, l, c.Dim, c.Heads, llama!.KvHeads, llama.HeadDim, cos, sin, llama.RopeNeox, llama.QkNorm, c.RmsEps);
            var ffnNorm = w.Vector(TensorNames.Weight(l, TensorNames.FfnNorm), c.Dim);
            ITrainSublayer ffn = ds != null && ds.IsMoeLayer(l)
                ? new MoeFeedForward(w, l, c.Dim, ds.ExpertCount, ds.ExpertsUsed, ds.ExpertFfnDim, ds.SharedExperts * ds.ExpertFfnDim, ds.ExpertWeightsScale)
                : new SwiGluFeedForward(w, l, c.Dim, c.FfnDim);
            _l[l] = new Block(attnNorm, attn, ffnNorm, ffn);
        }
        _normF = w.Vector(TensorNames.Weight(TensorNames.OutputNorm), c.Dim);
        _wout = w is FrozenBase fb ? fb.OutputHead(c.VocabSize, c.Dim) : w.Matrix(TensorNames.Weight(TensorNames.Output), c.VocabSize, c.Dim);
        // Declared last, so the trunk's slices (and its random init below) are the same with or without it. A frozen
        // LoRA base leaves its MTP head (if the file has one) untouched and unused.
        if (ds is { NextnLayers: > 0 } && w is not FrozenBase) _mtp = new MtpModule(P, ds);
        P.Allocate();
        w.Loaded();
        IsFrozenBase = w is FrozenBase;
        DecayMask = new bool[P.Count];
        if (IsFrozenBase) return;

        // GPT-2 init: N(0, 0.02), residual projections (attention output, every FFN down matrix) scaled by 1/sqrt(2L);
        // RMSNorm gains 1 and the MoE selection bias 0, neither decayed.
        var rng = new Random(seed);
        foreach (var s in P.Slices)
        {
            if (s.Name.EndsWith(".bias", StringComparison.Ordinal)) continue;
            bool isNorm = s.Shape.Length == 1;
            bool residual = TensorNames.IsLayer(s.Name, TensorNames.AttnOutput) || TensorNames.IsLayer(s.Name, TensorNames.FfnDown)
                || TensorNames.IsLayer(s.Name, TensorNames.FfnDownExps) || TensorNames.IsLayer(s.Name, TensorNames.FfnDownShexp);
            if (isNorm) P.Fill(s, 1f);
            else P.InitNormal(s, residual ? 0.02f / MathF.Sqrt(2 * c.Layers) : 0.02f, rng);
            if (!isNorm) Array.Fill(DecayMask, true, s.Offset, s.Length);
        }
    }

    /// <summary>
    /// Sampling temperature the losses are taken at: logits are divided by it before the softmax (as TRL does for
    /// GRPO, so log-probs are those of the distribution the rollouts were sampled from). 1 for SFT.
    /// </summary>
    public float Temperature { get; set; } = 1f;

    /// <summary>The last Forward's logits (divided by <see cref="Temperature"/>); Backward overwrites them with their gradient.</summary>
    public ReadOnlySpan<float> Logits => _logits.AsSpan(0, _b * _t * Config.VocabSize);
    public ReadOnlySpan<float> Losses => _losses.AsSpan(0, _b * _t);

    /// <summary>The trunk's MoE layers (none in the llama layout).</summary>
    public IEnumerable<MoeFeedForward> MoeLayers => _l.Select(b => b.Ffn).OfType<MoeFeedForward>();

    /// <summary>The Multi-Token Prediction module (deepseek2 with nextn_predict_layers = 1), or null.</summary>
    public MtpModule? Mtp => _mtp;

    /// <summary>λ, the weight of the MTP loss in the total (DeepSeek-V3: 0.3, then 0.1 late); 0 skips the module.</summary>
    public float MtpWeight { get; set; } = 0.3f;

    /// <summary>Mean MTP loss of the last Forward (0 without the module).</summary>
    public float MtpLoss { get; private set; }

    /// <summary>
    /// Trains only the MTP module: the trunk, the shared embedding and head keep their weights (no gradient, no
    /// decay, no router-bias update), and Backward skips the trunk.
    /// </summary>
    public bool TrunkFrozen { get; private set; }

    public void FreezeTrunk()
    {
        if (_mtp == null) throw new InvalidOperationException("only a model with an MTP module can train with its trunk frozen");
        TrunkFrozen = true;
        Array.Fill(DecayMask, false, 0, _mtp.Offset);
    }

    /// <summary>After an optimizer step: nudges every MoE layer's selection bias toward balanced load (no-op for llama).</summary>
    public void UpdateRouterBias()
    {
        if (!TrunkFrozen)
            foreach (var moe in MoeLayers) moe.UpdateBias(RouterBiasUpdateRate);
        if (_mtp?.Ffn is MoeFeedForward mtpMoe && MtpWeight > 0) mtpMoe.UpdateBias(RouterBiasUpdateRate);
    }

    private void Ensure(int b, int t)
    {
        var c = Config;
        if (t > c.ContextLength) throw new ArgumentException($"sequence length {t} exceeds the model's {c.ContextLength}");
        _b = b; _t = t;
        int n = b * t, L = c.Layers;
        if (n <= _tokens.Length) return;
        float[][] Alloc(int count, int size) => Enumerable.Range(0, count).Select(_ => new float[size]).ToArray();
        _tokens = new int[n]; _targets = new int[n];
        _resid = Alloc(L + 1, n * c.Dim);
        _rstd1 = Alloc(L, n); _x2 = Alloc(L, n * c.Dim); _rstd2 = Alloc(L, n); _ln = new float[n * c.Dim];
        _lnf = new float[n * c.Dim]; _rstdf = new float[n]; _logits = new float[(long)n * c.VocabSize]; _ceStats = new float[2 * n]; _losses = new float[n];
        _dres = new float[n * c.Dim]; _dln = new float[n * c.Dim];
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
        if (_wte.Slice != null) TrainOps.EmbeddingForward(_resid[0], tokens, P.W(_wte.Slice), d);
        else for (int i = 0; i < n; i++) _wte.DecodeRows(tokens[i], 1, _resid[0].AsSpan(i * d, d));
        for (int l = 0; l < c.Layers; l++)
        {
            var s = _l[l];
            var x = _resid[l];
            // attention rmsnorm, attention, residual
            TrainOps.RmsNormForward(_ln, _rstd1[l], x, P.W(s.AttnNorm), n, d, c.RmsEps);
            s.Attn.Forward(_x2[l], _ln, b, t);
            TensorPrimitives.Add(_x2[l].AsSpan(0, n * d), x.AsSpan(0, n * d), _x2[l].AsSpan(0, n * d));
            // ffn rmsnorm, feed-forward, residual
            TrainOps.RmsNormForward(_ln, _rstd2[l], _x2[l], P.W(s.FfnNorm), n, d, c.RmsEps);
            s.Ffn.Forward(_resid[l + 1], _ln, b, t);
            TensorPrimitives.Add(_resid[l + 1].AsSpan(0, n * d), _x2[l].AsSpan(0, n * d), _resid[l + 1].AsSpan(0, n * d));
        }
        TrainOps.RmsNormForward(_lnf, _rstdf, _resid[c.Layers], P.W(_normF), n, d, c.RmsEps);
        _wout.Forward(_logits, _lnf, n);
        if (Temperature != 1f) TensorPrimitives.Multiply(_logits.AsSpan(0, n * c.VocabSize), 1f / Temperature, _logits.AsSpan(0, n * c.VocabSize));
        TrainOps.CrossEntropyForward(_losses, _ceStats, _logits, targets, n, c.VocabSize);
        _mtpRan = _mtp != null && MtpWeight > 0;
        MtpLoss = _mtpRan ? _mtp!.Forward(_lnf, tokens, targets, b, t, P.W(_wte.Slice!), P.W(_wout.Slice!)) : 0f;
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
        if (TrunkFrozen)
        {
            // Only the module learns: dL/dh and the shared tensors' gradients go to scratch that is then dropped.
            if (_mtpRan) _mtp!.Backward(dlosses, MtpWeight, _lnf, _dln.AsSpan(0, n * d), P.G(_wte.Slice!), P.W(_wout.Slice!), P.G(_wout.Slice!));
            Array.Clear(P.Grad, 0, _mtp!.Offset);
            return;
        }
        var dlogits = _logits.AsSpan(0, n * c.VocabSize);          // in place: the logits become their gradient
        TrainOps.CrossEntropyBackward(dlogits, dlosses, dlogits, _ceStats, _targets, n, c.VocabSize);
        // scaled = logits / T, so d logits = d scaled / T
        if (Temperature != 1f) TensorPrimitives.Multiply(dlogits, 1f / Temperature, dlogits);
        Array.Clear(_dln, 0, n * d);
        _wout.Backward(_dln, dlogits, _lnf, n);
        // the MTP loss reaches the trunk through h = output_norm(resid[L]), the same tensor as the head's input
        if (_mtpRan) _mtp!.Backward(dlosses, MtpWeight, _lnf, _dln.AsSpan(0, n * d), P.G(_wte.Slice!), P.W(_wout.Slice!), P.G(_wout.Slice!));
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
        if (_wte.Slice != null) TrainOps.EmbeddingBackward(P.G(_wte.Slice), _dres, _tokens.AsSpan(0, n), d);
    }
}
