using System.Numerics.Tensors;
using Sputnik.Models;

namespace Sputnik.Training;

/// <summary>
/// DeepSeek-V3 MoE feed-forward, forward and backward:
/// <code>
/// s   = sigmoid(x·Wgᵀ)                       [N, E] router affinities
/// sel = topk(s + bias, K)                    the bias steers SELECTION only (aux-loss-free balancing)
/// w_k = route_scale · s_k / Σ_{j∈sel} s_j    gate weights use the UNBIASED scores
/// y   = Σ_k w_k · SwiGLU_k(x) + SwiGLU_shared(x)
/// </code>
/// After each optimizer step <see cref="UpdateBias"/> nudges bias_e by ±γ toward the mean load of the forward passes
/// since the last update; the bias lives in the parameter buffer (so checkpoints and the GGUF carry it) but never
/// gets a gradient, so AdamW leaves it alone. Tokens are gathered per expert so each expert runs as one row-parallel
/// matmul, not per-token matvecs. Tensor names follow llama.cpp (ffn_gate_inp, exp_probs_b, ffn_{gate,up,down}_exps,
/// ffn_{gate,up,down}_shexp).
/// </summary>
internal sealed class MoeFeedForward : ITrainSublayer
{
    public int Dim { get; }
    public int Experts { get; }
    public int TopK { get; }
    public int Inter { get; }
    public int SharedInter => _shared.Inter;
    public float RouteScale { get; }
    public Linear Router { get; }
    /// <summary>Selection bias exp_probs_b [E]: steers top-k only, no gradient.</summary>
    public ParamSlice BiasSlice { get; }
    /// <summary>The stacked expert weights when trainable (null over a frozen base).</summary>
    public ParamSlice? GateExps { get; }
    public ParamSlice? UpExps { get; }
    public ParamSlice? DownExps { get; }
    public Linear GateSh => _shared.Gate;
    public Linear UpSh => _shared.Up;
    public Linear DownSh => _shared.Down;
    public Span<float> Bias => _p.W(BiasSlice);
    /// <summary>Tokens routed to each expert in the last forward pass.</summary>
    public int[] Load { get; }

    private readonly ParameterBuffer _p;
    private readonly SwiGluFeedForward _shared;
    private readonly SwiGluFeedForward[] _experts;
    private readonly long[] _pendingLoad;
    private int _n;
    private float[] _x = [], _s = [], _w = [], _ys = [], _biased, _dw = [], _dlogits = [];
    private int[] _sel = [];
    private readonly ExpertBatch[] _batches;

    /// <summary>The rows routed to one expert, gathered, and their outputs and gradients (the expert keeps its own activations).</summary>
    private sealed class ExpertBatch
    {
        public int Count;
        public int[] Rows = [], Slots = [];
        public float[] X = [], Y = [];
        public float[] DY = [], DX = [];
    }

    public MoeFeedForward(ParameterBuffer p, int layer, int dim, int experts, int topK, int inter, int sharedInter, float routeScale = 1f)
        : this(new ParamWeights(p), layer, dim, experts, topK, inter, sharedInter, routeScale) { }

    public MoeFeedForward(IWeightSource w, int layer, int dim, int experts, int topK, int inter, int sharedInter, float routeScale = 1f)
    {
        var p = w.P;
        _p = p; Dim = dim; Experts = experts; TopK = topK; Inter = inter; RouteScale = routeScale;
        Load = new int[experts];
        _pendingLoad = new long[experts];
        _biased = new float[experts];
        _batches = Enumerable.Range(0, experts).Select(_ => new ExpertBatch()).ToArray();
        Router = w.Matrix(TensorNames.Weight(layer, TensorNames.FfnGateInp), experts, dim);
        BiasSlice = w.Vector(TensorNames.Bias(layer, TensorNames.ExpProbsB), experts);
        Linear[] gate, up, down;
        (gate, GateExps) = w.Experts(TensorNames.Weight(layer, TensorNames.FfnGateExps), experts, inter, dim);
        (up, UpExps) = w.Experts(TensorNames.Weight(layer, TensorNames.FfnUpExps), experts, inter, dim);
        (down, DownExps) = w.Experts(TensorNames.Weight(layer, TensorNames.FfnDownExps), experts, dim, inter);
        _experts = Enumerable.Range(0, experts).Select(e => new SwiGluFeedForward(gate[e], up[e], down[e])).ToArray();
        _shared = new SwiGluFeedForward(w, layer, dim, sharedInter, shared: true);
    }

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int b, int t) => Forward(output, x, b * t);

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int n)
    {
        int d = Dim, E = Experts, K = TopK;
        _n = n;
        x[..(n * d)].CopyTo(Buffers.Grow(ref _x, n * d));
        Buffers.Grow(ref _s, n * E); Buffers.Grow(ref _w, n * K); Buffers.Grow(ref _sel, n * K);
        Router.Forward(_s, _x, n);
        TensorPrimitives.Sigmoid(_s.AsSpan(0, n * E), _s.AsSpan(0, n * E));
        Array.Clear(Load);
        var bias = Bias;
        for (int r = 0; r < n; r++)
        {
            var s = _s.AsSpan(r * E, E);
            TensorPrimitives.Add(s, bias, _biased);
            float sum = 0;
            for (int k = 0; k < K; k++)
            {
                int best = TensorPrimitives.IndexOfMax(_biased);
                _biased[best] = float.NegativeInfinity;
                _sel[r * K + k] = best;
                sum += s[best];
                Load[best]++;
            }
            for (int k = 0; k < K; k++) _w[r * K + k] = RouteScale * s[_sel[r * K + k]] / sum;
        }
        for (int e = 0; e < E; e++)
        {
            _pendingLoad[e] += Load[e];
            var bt = _batches[e];
            bt.Count = 0;
            Buffers.Grow(ref bt.Rows, Load[e]); Buffers.Grow(ref bt.Slots, Load[e]);
        }
        // gather (row, slot) pairs per expert, rows ascending
        for (int r = 0; r < n; r++)
            for (int k = 0; k < K; k++)
            {
                var bt = _batches[_sel[r * K + k]];
                bt.Rows[bt.Count] = r; bt.Slots[bt.Count] = k; bt.Count++;
            }
        output[..(n * d)].Clear();
        for (int e = 0; e < E; e++)
        {
            var bt = _batches[e];
            int m = bt.Count;
            if (m == 0) continue;
            Buffers.Grow(ref bt.X, m * d); Buffers.Grow(ref bt.Y, m * d);
            for (int i = 0; i < m; i++) _x.AsSpan(bt.Rows[i] * d, d).CopyTo(bt.X.AsSpan(i * d, d));
            _experts[e].Forward(bt.Y, bt.X, m);
            for (int i = 0; i < m; i++)
            {
                var o = output.Slice(bt.Rows[i] * d, d);
                TensorPrimitives.MultiplyAdd(bt.Y.AsSpan(i * d, d), _w[bt.Rows[i] * K + bt.Slots[i]], o, o);
            }
        }
        // shared expert, always on
        Buffers.Grow(ref _ys, n * d);
        _shared.Forward(_ys, _x, n);
        TensorPrimitives.Add(output[..(n * d)], _ys.AsSpan(0, n * d), output[..(n * d)]);
    }

    public void Backward(Span<float> dx, ReadOnlySpan<float> dout)
    {
        int n = _n, d = Dim, E = Experts, K = TopK;
        _shared.Backward(dx, dout);
        // routed experts: y += w·Y_e, so dY_e = w·dout and dw = dout·Y_e
        var dw = Buffers.Zeroed(ref _dw, n * K);
        for (int e = 0; e < E; e++)
        {
            var bt = _batches[e];
            int m = bt.Count;
            if (m == 0) continue;
            var dY = Buffers.Grow(ref bt.DY, m * d);
            var dX = Buffers.Zeroed(ref bt.DX, m * d);
            for (int i = 0; i < m; i++)
            {
                int r = bt.Rows[i], slot = r * K + bt.Slots[i];
                var dor = dout.Slice(r * d, d);
                TensorPrimitives.Multiply(dor, _w[slot], dY.AsSpan(i * d, d));
                dw[slot] = TensorPrimitives.Dot(dor, bt.Y.AsSpan(i * d, d));
            }
            _experts[e].Backward(dX, dY.AsSpan(0, m * d));
            for (int i = 0; i < m; i++)
            {
                var dxr = dx.Slice(bt.Rows[i] * d, d);
                TensorPrimitives.Add(dxr, dX.AsSpan(i * d, d), dxr);
            }
        }
        // gate weights: w_k = R·s_k/S, S = Σ_sel s_j  ⇒  ds_j = R·(dw_j − Σ_k dw_k·s_k/S)/S; then through the sigmoid
        var dlogits = Buffers.Zeroed(ref _dlogits, n * E);
        for (int r = 0; r < n; r++)
        {
            float sum = 0, dot = 0;
            for (int k = 0; k < K; k++) { float s = _s[r * E + _sel[r * K + k]]; sum += s; dot += dw[r * K + k] * s; }
            for (int k = 0; k < K; k++)
            {
                int e = _sel[r * K + k];
                float s = _s[r * E + e];
                float ds = RouteScale * (dw[r * K + k] - dot / sum) / sum;
                dlogits[r * E + e] += ds * s * (1 - s);
            }
        }
        Router.Backward(dx, dlogits, _x, n);
    }

    /// <summary>
    /// Aux-loss-free balancing: bias_e += γ·sign(mean load − load_e) (overloaded experts get picked less), with the
    /// load summed over every forward pass since the previous update (all micro-batches of an optimizer step).
    /// </summary>
    public void UpdateBias(float gamma)
    {
        double mean = _pendingLoad.Average();
        var bias = Bias;
        for (int e = 0; e < Experts; e++) bias[e] += gamma * Math.Sign(mean - _pendingLoad[e]);
        Array.Clear(_pendingLoad);
    }
}
