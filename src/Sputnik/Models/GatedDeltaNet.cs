using System.Numerics.Tensors;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>The weights of one Gated DeltaNet layer (qwen35's linear attention).</summary>
internal sealed class DeltaNetWeights
{
    /// <summary>attn_qkv: x → the convolution's input channels, [q | k | v].</summary>
    public required WeightMatrix Qkv;
    /// <summary>attn_gate: x → z, the output gate (value width).</summary>
    public required WeightMatrix Gate;
    /// <summary>ssm_beta / ssm_alpha: x → one write strength / one decay input per value head.</summary>
    public required WeightMatrix Beta, Alpha;
    /// <summary>ssm_conv1d transposed to taps × channels (tap 0 is applied to the oldest input).</summary>
    public required float[] ConvTaps;
    /// <summary>ssm_dt.bias and ssm_a (−exp(A_log)) per value head; ssm_norm over a value head.</summary>
    public required float[] DtBias, A, Norm;
    /// <summary>ssm_out: value width → model width.</summary>
    public required WeightMatrix Out;
}

/// <summary>
/// The recurrent part of one sequence: per DeltaNet layer the convolution's last (taps − 1) inputs (time-major,
/// oldest first) and the delta-rule state, per value head a matrix stored value row by value row (row j holds
/// S[·, j] over the key dimension, as ggml's gated_delta_net keeps it). It stands for the whole prefix fed so far and
/// cannot be cut back, so it keeps a few checkpoints — copies at prefix lengths the generator asked for — which
/// <see cref="RestoreTo"/> can return to, as llama.cpp's server keeps context checkpoints for these models.
/// </summary>
internal sealed class RecurrentState
{
    /// <summary>Checkpoints kept per sequence (the oldest is replaced): each costs as much memory as the live state.</summary>
    public const int MaxCheckpoints = 3;

    private readonly Qwen35.Params _p;
    private readonly int _layers;
    private readonly List<Checkpoint> _checkpoints = [];
    private readonly List<int> _pending = [];
    private readonly Capture[] _captures = new Capture[MaxCheckpoints];
    private long _clock;

    public RecurrentState(Qwen35.Params p, int layers)
    {
        _p = p;
        _layers = layers;
        Conv = NewConv();
        Ssm = NewSsm();
    }

    /// <summary>Per layer: the last (taps − 1) convolution inputs, each ConvDim wide.</summary>
    public float[][] Conv { get; }

    /// <summary>Per layer: value heads × value head size × key head size.</summary>
    public float[][] Ssm { get; }

    /// <summary>Lengths checkpoints are held for.</summary>
    public IEnumerable<int> CheckpointLengths => _checkpoints.Select(c => c.Length);

    /// <summary>Bytes of one copy of the state (the live one or a checkpoint).</summary>
    public long Bytes => (long)_layers * ((_p.ConvKernel - 1L) * _p.ConvDim + (long)_p.ValueHeads * _p.HeadSize * _p.HeadSize) * sizeof(float);

    private float[][] NewConv() => Enumerable.Range(0, _layers).Select(_ => new float[(_p.ConvKernel - 1) * _p.ConvDim]).ToArray();

    private float[][] NewSsm() => Enumerable.Range(0, _layers).Select(_ => new float[_p.ValueHeads * _p.HeadSize * _p.HeadSize]).ToArray();

    private sealed class Checkpoint(int length, float[][] conv, float[][] ssm)
    {
        public int Length = length;
        public readonly float[][] Conv = conv, Ssm = ssm;
        public long Made;
    }

    /// <summary>A checkpoint being filled by the current feed: the state after its token <see cref="Row"/> of the batch.</summary>
    internal readonly record struct Capture(int Row, int Length, float[][] Conv, float[][] Ssm);

    /// <summary>The checkpoints the current feed fills (set by <see cref="BeginFeed"/>).</summary>
    internal ReadOnlySpan<Capture> Captures => _captures.AsSpan(0, _captureCount);

    private int _captureCount;

    /// <summary>The longest restorable prefix of at most <paramref name="length"/> (≤ <paramref name="position"/>).</summary>
    public int Restorable(int length, int position)
    {
        if (length >= position) return position;
        int best = 0;
        foreach (var c in _checkpoints)
            if (c.Length <= length && c.Length > best) best = c.Length;
        return best;
    }

    /// <summary>
    /// Makes the live state that of the first <paramref name="length"/> positions: itself, a checkpoint, or empty at 0.
    /// Checkpoints past the new length (of a history being replaced) and pending requests are dropped.
    /// </summary>
    public void RestoreTo(int length, int position)
    {
        _pending.Clear();
        if (length == position) return;
        _checkpoints.RemoveAll(c => c.Length > length);
        if (length == 0)
        {
            foreach (var a in Conv) Array.Clear(a);
            foreach (var a in Ssm) Array.Clear(a);
            return;
        }
        var cp = _checkpoints.Find(c => c.Length == length)
            ?? throw new InvalidOperationException($"a recurrent state cannot go back to {length} of {position} positions (no checkpoint there)");
        for (int l = 0; l < _layers; l++)
        {
            cp.Conv[l].CopyTo(Conv[l], 0);
            cp.Ssm[l].CopyTo(Ssm[l], 0);
        }
    }

    /// <summary>Keeps a checkpoint at <paramref name="length"/>: now when the state is there, else when a feed passes it.</summary>
    public void RequestCheckpoint(int length, int position)
    {
        if (length <= 0 || length < position || _checkpoints.Exists(c => c.Length == length)) return;
        if (length == position)
        {
            var cp = Slot(length);
            for (int l = 0; l < _layers; l++)
            {
                Conv[l].CopyTo(cp.Conv[l], 0);
                Ssm[l].CopyTo(cp.Ssm[l], 0);
            }
            return;
        }
        if (!_pending.Contains(length)) _pending.Add(length);
    }

    /// <summary>A checkpoint to fill for <paramref name="length"/>: a new one, or the oldest one's memory when all are taken.</summary>
    private Checkpoint Slot(int length)
    {
        Checkpoint cp;
        if (_checkpoints.Count < MaxCheckpoints) _checkpoints.Add(cp = new Checkpoint(length, NewConv(), NewSsm()));
        else
        {
            cp = _checkpoints.MinBy(c => c.Made)!;
            cp.Length = length;
        }
        cp.Made = ++_clock;
        return cp;
    }

    /// <summary>Before a feed of n positions from pos0: the pending checkpoints it reaches become captures of that feed.</summary>
    public void BeginFeed(int pos0, int n)
    {
        _captureCount = 0;
        for (int i = _pending.Count - 1; i >= 0; i--)
        {
            int length = _pending[i];
            if (length <= pos0 || length > pos0 + n) continue;
            _pending.RemoveAt(i);
            if (_captureCount == MaxCheckpoints) continue;
            var cp = Slot(length);
            cp.Length = -1; // not valid until the feed has run every layer
            _captures[_captureCount++] = new Capture(length - pos0 - 1, length, cp.Conv, cp.Ssm);
        }
    }

    /// <summary>After every layer of the feed ran: its captures become checkpoints.</summary>
    public void EndFeed()
    {
        foreach (var cap in Captures)
            if (_checkpoints.Find(c => ReferenceEquals(c.Conv, cap.Conv)) is { } cp) cp.Length = cap.Length;
        _captureCount = 0;
    }
}

/// <summary>
/// Gated DeltaNet (llama.cpp's delta-net-base.cpp with ggml's gated_delta_net, as qwen35 builds it): per token
/// conv → SiLU → q, k, v; q and k L2-normalised per head; g = softplus(α + dt_bias)·A, β = sigmoid(b); per value head
/// S ← exp(g)·S; S ← S + k ⊗ β(v − Sᵀk); o = Sᵀq / √d; then RMSNorm(o)·SiLU(z) per head.
/// </summary>
internal static class GatedDeltaNet
{
    /// <summary>Per-batch activations of the DeltaNet layers (rows × widths), grown on demand, and the worker delegates.</summary>
    internal sealed class Scratch
    {
        private readonly Qwen35.Params _p;
        private readonly float _eps;
        private readonly WorkerPool _pool;
        private readonly Action<int, int> _recurBody;
        private int _rows;

        public float[] Qkv = [], Conv = [], Z = [], Beta = [], Alpha = [], Core = [];
        /// <summary>qwen35moe: the shared expert's weight per row.</summary>
        public float[] SharedWeights = [];

        // The current layer's job, read by the workers.
        private DecoderState? _w;
        private int _layer, _n;
        private bool _chunked;
        // Per value head, the chunked form's work space: S₀ᵀk, S₀ᵀq and the updates δ (chunk × head size each),
        // the cumulative log-decays (chunk) and the chunk's k·k products (chunk × chunk).
        private float[] _chunkWork = [];

        public Scratch(Qwen35.Params p, float eps, WorkerPool pool)
        {
            _p = p;
            _eps = eps;
            _pool = pool;
            _recurBody = (i0, i1) => RecurItems(i0, i1);
        }

        public void Reserve(int rows)
        {
            if (rows <= _rows) return;
            Qkv = new float[rows * _p.ConvDim];
            Conv = new float[rows * _p.ConvDim];
            Z = new float[rows * _p.ValueDim];
            Beta = new float[rows * _p.ValueHeads];
            Alpha = new float[rows * _p.ValueHeads];
            Core = new float[rows * _p.ValueDim];
            SharedWeights = new float[rows];
            _rows = rows;
        }

        private RecurrentState StateOf(DecoderState w, int row) =>
            (w.Seqs == null ? w.Recurrent : ((DecoderState)w.Seqs[row]).Recurrent)
            ?? throw new InvalidOperationException("the state has no recurrent part (created by another model?)");

        /// <summary>
        /// Given the projections (Qkv, Z, Beta, Alpha) of n rows of layer r, leaves the gated, normalised mixer output in
        /// Core. Rows are one sequence's consecutive tokens (prefill) or one token of each of w.Seqs. With chunked, a
        /// prefill of at least <see cref="MinChunkedTokens"/> runs the delta rule chunk by chunk rather than token by token.
        /// </summary>
        public void Run(DecoderState w, int r, int n, DeltaNetWeights d, bool chunked = true)
        {
            var p = _p;
            Convolve(w, r, n, d.ConvTaps);
            int heads = p.ValueHeads, hd = p.HeadSize;
            for (int i = 0; i < n; i++)
            {
                var row = Conv.AsSpan(i * p.ConvDim, p.ConvDim);
                for (int h = 0; h < 2 * p.KeyHeads; h++) L2Norm(row.Slice(h * hd, hd), _eps); // q heads, then k heads
                for (int h = 0; h < heads; h++)
                {
                    // g = softplus(α + dt_bias)·A (ggml's softplus: x above 20 stays x); β = sigmoid(b).
                    float a = Alpha[i * heads + h] + d.DtBias[h];
                    float softplus = a > 20f ? a : MathF.Log(1f + MathF.Exp(a));
                    Alpha[i * heads + h] = softplus * d.A[h];
                    Beta[i * heads + h] = 1f / (1f + MathF.Exp(-Beta[i * heads + h]));
                }
            }
            _w = w;
            _layer = r;
            _n = n;
            _chunked = chunked && w.Seqs == null && n >= MinChunkedTokens;
            if (_chunked && _chunkWork.Length < heads * ChunkWorkFloats(hd)) _chunkWork = new float[heads * ChunkWorkFloats(hd)];
            int items = w.Seqs == null ? heads : n * heads;
            // A head's work is n tokens × 4 passes over a head-size² state.
            _pool.For(items, _recurBody, minPerThread: (int)Math.Clamp(32768L / ((long)hd * hd * (w.Seqs == null ? n : 1)), 1, items));
            _w = null;
            for (int i = 0; i < n; i++)
                for (int h = 0; h < heads; h++)
                {
                    var o = Core.AsSpan(i * p.ValueDim + h * hd, hd);
                    Ops.RmsNorm(o, d.Norm, _eps, o);
                    var z = Z.AsSpan(i * p.ValueDim + h * hd, hd);
                    for (int j = 0; j < hd; j++) o[j] *= z[j] / (1f + MathF.Exp(-z[j]));
                }
        }

        /// <summary>
        /// The causal depthwise convolution over each row's window of the last taps inputs (the state's, then the
        /// batch's), SiLU, into Conv; the state keeps the newest (taps − 1) inputs, and a checkpoint the window up to it.
        /// </summary>
        private void Convolve(DecoderState w, int r, int n, float[] taps)
        {
            int cd = _p.ConvDim, kt = _p.ConvKernel;
            if (w.Seqs == null)
            {
                var st = StateOf(w, 0);
                var state = st.Conv[r];
                // Input τ of the window: state row τ + taps − 1 for τ < 0, batch row τ otherwise.
                Span<float> Input(int tau) => tau < 0 ? state.AsSpan((tau + kt - 1) * cd, cd) : Qkv.AsSpan(tau * cd, cd);
                for (int t = 0; t < n; t++)
                {
                    var o = Conv.AsSpan(t * cd, cd);
                    TensorPrimitives.Multiply(Input(t - kt + 1), taps.AsSpan(0, cd), o);
                    for (int k = 1; k < kt; k++) TensorPrimitives.MultiplyAdd(Input(t - kt + 1 + k), taps.AsSpan(k * cd, cd), o, o);
                }
                foreach (var cap in st.Captures)
                    for (int j = 0; j < kt - 1; j++) Input(cap.Row - kt + 2 + j).CopyTo(cap.Conv[r].AsSpan(j * cd, cd));
                // New state: inputs n − taps + 1 … n − 1 (copied in order: a row may move down within the state).
                for (int j = 0; j < kt - 1; j++) Input(n - kt + 1 + j).CopyTo(state.AsSpan(j * cd, cd));
            }
            else
            {
                for (int i = 0; i < n; i++)
                {
                    var state = StateOf(w, i).Conv[r];
                    var x = Qkv.AsSpan(i * cd, cd);
                    var o = Conv.AsSpan(i * cd, cd);
                    TensorPrimitives.Multiply(kt > 1 ? state.AsSpan(0, cd) : x, taps.AsSpan(0, cd), o);
                    for (int k = 1; k < kt; k++)
                        TensorPrimitives.MultiplyAdd(k < kt - 1 ? state.AsSpan(k * cd, cd) : x, taps.AsSpan(k * cd, cd), o, o);
                    if (kt > 1)
                    {
                        state.AsSpan(cd).CopyTo(state); // drop the oldest input
                        x.CopyTo(state.AsSpan((kt - 2) * cd, cd));
                    }
                }
            }
            var all = Conv.AsSpan(0, n * cd);
            for (int i = 0; i < all.Length; i++) all[i] /= 1f + MathF.Exp(-all[i]); // SiLU
        }

        /// <summary>Work items [i0, i1): a value head of the sequence (prefill, every row) or of one row's sequence.</summary>
        private void RecurItems(int i0, int i1)
        {
            var p = _p;
            var w = _w!;
            int heads = p.ValueHeads, hd = p.HeadSize, n = _n, r = _layer;
            float scale = 1f / MathF.Sqrt(hd);
            for (int item = i0; item < i1; item++)
            {
                int h = item % heads, t0, t1;
                if (w.Seqs == null) (t0, t1) = (0, n);
                else (t0, t1) = (item / heads, item / heads + 1);
                var st = StateOf(w, t0);
                var s = st.Ssm[r].AsSpan(h * hd * hd, hd * hd);
                int kh = h % p.KeyHeads; // value head h reads key head h mod key heads (ggml's repeat / the fused op)
                if (_chunked)
                {
                    ChunkedHead(s, h, kh, n, st, scale, _chunkWork.AsSpan(h * ChunkWorkFloats(hd), ChunkWorkFloats(hd)));
                    continue;
                }
                for (int t = t0; t < t1; t++)
                {
                    var row = Conv.AsSpan(t * p.ConvDim, p.ConvDim);
                    var q = row.Slice(kh * hd, hd);
                    var k = row.Slice(p.KeyDim + kh * hd, hd);
                    var v = row.Slice(2 * p.KeyDim + h * hd, hd);
                    var o = Core.AsSpan(t * p.ValueDim + h * hd, hd);
                    Step(s, q, k, v, MathF.Exp(Alpha[t * heads + h]), Beta[t * heads + h], scale, o);
                    if (w.Seqs != null) continue;
                    foreach (var cap in st.Captures)
                        if (cap.Row == t) s.CopyTo(cap.Ssm[r].AsSpan(h * hd * hd, hd * hd));
                }
            }
        }

        /// <summary>Tokens per chunk of the chunked delta rule (llama.cpp's delta-net-base uses 64).</summary>
        public const int ChunkTokens = 64;

        /// <summary>Shorter prefills run token by token: the chunk form only pays over many tokens.</summary>
        public const int MinChunkedTokens = 16;

        private static int ChunkWorkFloats(int hd) => 3 * ChunkTokens * hd + ChunkTokens + ChunkTokens * ChunkTokens;

        /// <summary>
        /// The delta rule over all n rows for one value head, a chunk of up to <see cref="ChunkTokens"/> tokens at a
        /// time (the WY form of llama.cpp's build_delta_net_chunking). With G_t the cumulative log-decay inside the chunk
        /// and S₀ its starting state, token t's update is δ_t = β_t(v_t − e^{G_t}S₀ᵀk_t − Σ_{s&lt;t} e^{G_t−G_s}(k_s·k_t)δ_s),
        /// solved by forward substitution; o_t = scale·(e^{G_t}S₀ᵀq_t + Σ_{s≤t} e^{G_t−G_s}(k_s·q_t)δ_s); and the chunk
        /// leaves S = e^{G_last}S₀ + Σ_s e^{G_last−G_s} k_s δ_sᵀ. Every exponent is ≤ 0 (g ≤ 0), so nothing overflows. The
        /// state is read twice and written once per chunk instead of four times per token. A checkpoint ends a chunk.
        /// </summary>
        private void ChunkedHead(Span<float> s, int h, int kh, int n, RecurrentState st, float scale, Span<float> work)
        {
            var p = _p;
            int heads = p.ValueHeads, d = p.HeadSize, cs = ChunkTokens;
            var u = work[..(cs * d)];
            var wq = work.Slice(cs * d, cs * d);
            var delta = work.Slice(2 * cs * d, cs * d);
            var g = work.Slice(3 * cs * d, cs);
            var kk = work.Slice(3 * cs * d + cs, cs * cs);
            for (int c0 = 0; c0 < n;)
            {
                int c1 = Math.Min(n, c0 + cs);
                foreach (var cap in st.Captures)
                    if (cap.Row >= c0 && cap.Row < c1 - 1) c1 = cap.Row + 1;
                int m = c1 - c0;
                float cum = 0;
                for (int i = 0; i < m; i++) g[i] = cum += Alpha[(c0 + i) * heads + h];
                for (int i = 0; i < m; i++)
                {
                    var k = K(c0 + i, kh);
                    var q = Q(c0 + i, kh);
                    for (int j = 0; j < d; j++)
                    {
                        var row = s.Slice(j * d, d);
                        u[i * d + j] = TensorPrimitives.Dot(row, k);
                        wq[i * d + j] = TensorPrimitives.Dot(row, q);
                    }
                    for (int t = 0; t < i; t++) kk[i * cs + t] = TensorPrimitives.Dot(k, K(c0 + t, kh));
                }
                for (int i = 0; i < m; i++)
                {
                    float beta = Beta[(c0 + i) * heads + h];
                    var di = delta.Slice(i * d, d);
                    TensorPrimitives.Multiply(u.Slice(i * d, d), -MathF.Exp(g[i]), di);
                    TensorPrimitives.Add(di, V(c0 + i, h), di);
                    TensorPrimitives.Multiply(di, beta, di);
                    for (int t = 0; t < i; t++)
                        TensorPrimitives.MultiplyAdd(delta.Slice(t * d, d), -beta * MathF.Exp(g[i] - g[t]) * kk[i * cs + t], di, di);
                }
                for (int i = 0; i < m; i++)
                {
                    var o = Core.AsSpan((c0 + i) * p.ValueDim + h * d, d);
                    var q = Q(c0 + i, kh);
                    TensorPrimitives.Multiply(wq.Slice(i * d, d), MathF.Exp(g[i]), o);
                    for (int t = 0; t <= i; t++)
                        TensorPrimitives.MultiplyAdd(delta.Slice(t * d, d), MathF.Exp(g[i] - g[t]) * TensorPrimitives.Dot(q, K(c0 + t, kh)), o, o);
                    TensorPrimitives.Multiply(o, scale, o);
                }
                float last = g[m - 1];
                TensorPrimitives.Multiply(s, MathF.Exp(last), s);
                for (int t = 0; t < m; t++)
                {
                    var k = K(c0 + t, kh);
                    float decay = MathF.Exp(last - g[t]);
                    var dt = delta.Slice(t * d, d);
                    for (int j = 0; j < d; j++) TensorPrimitives.MultiplyAdd(k, decay * dt[j], s.Slice(j * d, d), s.Slice(j * d, d));
                }
                foreach (var cap in st.Captures)
                    if (cap.Row == c1 - 1) s.CopyTo(cap.Ssm[_layer].AsSpan(h * d * d, d * d));
                c0 = c1;
            }
        }

        private ReadOnlySpan<float> Q(int t, int kh) => Conv.AsSpan(t * _p.ConvDim + kh * _p.HeadSize, _p.HeadSize);

        private ReadOnlySpan<float> K(int t, int kh) => Conv.AsSpan(t * _p.ConvDim + _p.KeyDim + kh * _p.HeadSize, _p.HeadSize);

        private ReadOnlySpan<float> V(int t, int h) => Conv.AsSpan(t * _p.ConvDim + 2 * _p.KeyDim + h * _p.HeadSize, _p.HeadSize);
    }

    /// <summary>
    /// One token of the gated delta rule on one head's state (rows j = value dimension, each over the key dimension):
    /// row ← decay·row; δ = β(v_j − row·k); row += δ·k; o_j = scale·(row·q). Rows are independent, so each is finished
    /// in one pass while it is in cache (ggml makes four passes over the whole state; the arithmetic per row is the same).
    /// </summary>
    public static void Step(Span<float> state, ReadOnlySpan<float> q, ReadOnlySpan<float> k, ReadOnlySpan<float> v,
        float decay, float beta, float scale, Span<float> o)
    {
        int d = k.Length;
        for (int j = 0; j < v.Length; j++)
        {
            var row = state.Slice(j * d, d);
            TensorPrimitives.Multiply(row, decay, row);
            float delta = (v[j] - TensorPrimitives.Dot(row, k)) * beta;
            TensorPrimitives.MultiplyAdd(k, delta, row, row);
            o[j] = TensorPrimitives.Dot(row, q) * scale;
        }
    }

    /// <summary>x / √(Σx² + eps): llama.cpp's build_gdn_l2_norm (an RMSNorm with eps/n, scaled by 1/√n).</summary>
    public static void L2Norm(Span<float> x, float eps)
    {
        float sum = TensorPrimitives.Dot(x, x);
        TensorPrimitives.Multiply(x, 1f / MathF.Sqrt(sum + eps), x);
    }
}
