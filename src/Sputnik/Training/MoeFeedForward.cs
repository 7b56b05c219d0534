using System.Numerics.Tensors;

namespace Sputnik.Training;

/// <summary>
/// DeepSeek-V3 MoE feed-forward, forward and backward:
/// <code>
/// s   = sigmoid(x·Wgᵀ)                       [N, E] router affinities
/// sel = topk(s + bias, K)                    the bias steers SELECTION only (aux-loss-free balancing)
/// w_k = route_scale · s_k / Σ_{j∈sel} s_j    gate weights use the UNBIASED scores
/// y   = Σ_k w_k · SwiGLU_k(x) + SwiGLU_shared(x)
/// </code>
/// After each optimizer step <see cref="UpdateBias"/> nudges bias_e by ±γ toward the mean load; the bias gets no
/// gradient. Tokens are gathered per expert so each expert runs as one row-parallel matmul, not per-token matvecs.
/// Tensor names follow llama.cpp (ffn_gate_inp, exp_probs_b, ffn_{gate,up,down}_exps, ffn_{gate,up,down}_shexp).
/// </summary>
internal sealed class MoeFeedForward
{
    public int Dim { get; }
    public int Experts { get; }
    public int TopK { get; }
    public int Inter { get; }
    public int SharedInter { get; }
    public float RouteScale { get; }
    public float[] Bias { get; }
    public ParamSlice Router { get; }
    public ParamSlice GateExps { get; }
    public ParamSlice UpExps { get; }
    public ParamSlice DownExps { get; }
    public ParamSlice GateSh { get; }
    public ParamSlice UpSh { get; }
    public ParamSlice DownSh { get; }
    /// <summary>Tokens routed to each expert in the last forward pass.</summary>
    public int[] Load { get; }

    private readonly ParameterBuffer _p;
    private int _n;
    private float[] _x = [], _s = [], _w = [], _gs = [], _us = [], _hs = [];
    private int[] _sel = [];
    private ExpertBatch[] _batches = [];

    private sealed class ExpertBatch
    {
        public int[] Rows = [], Slots = [];
        public float[] X = [], G = [], U = [], H = [], Y = [];
    }

    public MoeFeedForward(ParameterBuffer p, string prefix, int dim, int experts, int topK, int inter, int sharedInter, float routeScale = 1f)
    {
        _p = p; Dim = dim; Experts = experts; TopK = topK; Inter = inter; SharedInter = sharedInter; RouteScale = routeScale;
        Bias = new float[experts];
        Load = new int[experts];
        Router = p.Add(prefix + "ffn_gate_inp.weight", experts, dim);
        GateExps = p.Add(prefix + "ffn_gate_exps.weight", experts, inter, dim);
        UpExps = p.Add(prefix + "ffn_up_exps.weight", experts, inter, dim);
        DownExps = p.Add(prefix + "ffn_down_exps.weight", experts, dim, inter);
        GateSh = p.Add(prefix + "ffn_gate_shexp.weight", sharedInter, dim);
        UpSh = p.Add(prefix + "ffn_up_shexp.weight", sharedInter, dim);
        DownSh = p.Add(prefix + "ffn_down_shexp.weight", dim, sharedInter);
    }

    private static Span<float> Expert(Span<float> all, int e, int size) => all.Slice(e * size, size);

    public void Forward(Span<float> output, ReadOnlySpan<float> x, int n)
    {
        int d = Dim, E = Experts, K = TopK, F = Inter;
        _n = n;
        _x = x[..(n * d)].ToArray();
        _s = new float[n * E]; _w = new float[n * K]; _sel = new int[n * K];
        TrainOps.MatMulForward(_s, _x, _p.W(Router), n, d, E);
        TensorPrimitives.Sigmoid(_s, _s);
        Array.Clear(Load);
        var biased = new float[E];
        var lists = Enumerable.Range(0, E).Select(_ => new List<(int Row, int Slot)>()).ToArray();
        for (int r = 0; r < n; r++)
        {
            var s = _s.AsSpan(r * E, E);
            TensorPrimitives.Add(s, Bias, biased);
            float sum = 0;
            for (int k = 0; k < K; k++)
            {
                int best = TensorPrimitives.IndexOfMax(biased);
                biased[best] = float.NegativeInfinity;
                _sel[r * K + k] = best;
                sum += s[best];
                lists[best].Add((r, k));
                Load[best]++;
            }
            for (int k = 0; k < K; k++) _w[r * K + k] = RouteScale * s[_sel[r * K + k]] / sum;
        }
        output[..(n * d)].Clear();
        _batches = new ExpertBatch[E];
        for (int e = 0; e < E; e++)
        {
            var bt = _batches[e] = new ExpertBatch { Rows = lists[e].Select(z => z.Row).ToArray(), Slots = lists[e].Select(z => z.Slot).ToArray() };
            int m = bt.Rows.Length;
            if (m == 0) continue;
            bt.X = new float[m * d]; bt.G = new float[m * F]; bt.U = new float[m * F]; bt.H = new float[m * F]; bt.Y = new float[m * d];
            for (int i = 0; i < m; i++) _x.AsSpan(bt.Rows[i] * d, d).CopyTo(bt.X.AsSpan(i * d, d));
            TrainOps.MatMulForward(bt.G, bt.X, Expert(_p.W(GateExps), e, F * d), m, d, F);
            TrainOps.MatMulForward(bt.U, bt.X, Expert(_p.W(UpExps), e, F * d), m, d, F);
            TrainOps.SwiGluForward(bt.H, bt.G, bt.U);
            TrainOps.MatMulForward(bt.Y, bt.H, Expert(_p.W(DownExps), e, d * F), m, F, d);
            for (int i = 0; i < m; i++)
            {
                var o = output.Slice(bt.Rows[i] * d, d);
                TensorPrimitives.MultiplyAdd(bt.Y.AsSpan(i * d, d), _w[bt.Rows[i] * K + bt.Slots[i]], o, o);
            }
        }
        // shared expert, always on
        int fs = SharedInter;
        _gs = new float[n * fs]; _us = new float[n * fs]; _hs = new float[n * fs];
        var ys = new float[n * d];
        TrainOps.MatMulForward(_gs, _x, _p.W(GateSh), n, d, fs);
        TrainOps.MatMulForward(_us, _x, _p.W(UpSh), n, d, fs);
        TrainOps.SwiGluForward(_hs, _gs, _us);
        TrainOps.MatMulForward(ys, _hs, _p.W(DownSh), n, fs, d);
        TensorPrimitives.Add(output[..(n * d)], ys, output[..(n * d)]);
    }

    public void Backward(Span<float> dx, ReadOnlySpan<float> dout)
    {
        int n = _n, d = Dim, E = Experts, K = TopK, F = Inter, fs = SharedInter;
        // shared expert
        var dhs = new float[n * fs]; var dgs = new float[n * fs]; var dus = new float[n * fs];
        TrainOps.MatMulBackward(dhs, _p.G(DownSh), dout, _hs, _p.W(DownSh), n, fs, d);
        TrainOps.SwiGluBackward(dgs, dus, dhs, _gs, _us);
        TrainOps.MatMulBackward(dx, _p.G(GateSh), dgs, _x, _p.W(GateSh), n, d, fs);
        TrainOps.MatMulBackward(dx, _p.G(UpSh), dus, _x, _p.W(UpSh), n, d, fs);
        // routed experts: y += w·Y_e, so dY_e = w·dout and dw = dout·Y_e
        var dw = new float[n * K];
        for (int e = 0; e < E; e++)
        {
            var bt = _batches[e];
            int m = bt.Rows.Length;
            if (m == 0) continue;
            var dY = new float[m * d]; var dH = new float[m * F]; var dG = new float[m * F]; var dU = new float[m * F]; var dX = new float[m * d];
            for (int i = 0; i < m; i++)
            {
                int r = bt.Rows[i], slot = r * K + bt.Slots[i];
                var dor = dout.Slice(r * d, d);
                TensorPrimitives.Multiply(dor, _w[slot], dY.AsSpan(i * d, d));
                dw[slot] = TensorPrimitives.Dot(dor, bt.Y.AsSpan(i * d, d));
            }
            TrainOps.MatMulBackward(dH, Expert(_p.G(DownExps), e, d * F), dY, bt.H, Expert(_p.W(DownExps), e, d * F), m, F, d);
            TrainOps.SwiGluBackward(dG, dU, dH, bt.G, bt.U);
            TrainOps.MatMulBackward(dX, Expert(_p.G(GateExps), e, F * d), dG, bt.X, Expert(_p.W(GateExps), e, F * d), m, d, F);
            TrainOps.MatMulBackward(dX, Expert(_p.G(UpExps), e, F * d), dU, bt.X, Expert(_p.W(UpExps), e, F * d), m, d, F);
            for (int i = 0; i < m; i++)
            {
                var dxr = dx.Slice(bt.Rows[i] * d, d);
                TensorPrimitives.Add(dxr, dX.AsSpan(i * d, d), dxr);
            }
        }
        // gate weights: w_k = R·s_k/S, S = Σ_sel s_j  ⇒  ds_j = R·(dw_j − Σ_k dw_k·s_k/S)/S; then through the sigmoid
        var dlogits = new float[n * E];
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
        TrainOps.MatMulBackward(dx, _p.G(Router), dlogits, _x, _p.W(Router), n, d, E);
    }

    /// <summary>Aux-loss-free balancing: bias_e += γ·sign(mean load − load_e) (overloaded experts get picked less).</summary>
    public void UpdateBias(float gamma)
    {
        double mean = Load.Average();
        for (int e = 0; e < Experts; e++) Bias[e] += gamma * Math.Sign(mean - Load[e]);
    }
}
