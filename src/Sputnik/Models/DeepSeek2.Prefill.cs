using System.Numerics.Tensors;
using Sputnik.Tensors;

namespace Sputnik.Models;

// Batched prefill: a chunk of prompt tokens goes through each layer together.
internal sealed partial class DeepSeek2
{
    /// <summary>Most prompt tokens one batched pass processes; longer prompts run in chunks of this size.</summary>
    public int MaxBatch { get; set; } = 256;

    /// <summary>
    /// Row-major activations of one chunk (tokens × width), grown on demand to the largest chunk fed, so a state that
    /// only decodes never allocates them. Delegates are bound once per state.
    /// </summary>
    private sealed class PrefillScratch
    {
        public PrefillScratch(DeepSeek2 m, State s)
        {
            Mm = new BatchMatMul(m.Pool);
            // In a chunk every routed expert may be selected, plus the shared one.
            Ffn = new ExpertBatch(m.Pool, m.DsConfig.Dim, m.DsConfig.ExpertCount + 1);
            AttnBody = (i0, i1) => m.AttendChunk(s, this, i0, i1);
        }

        public readonly BatchMatMul Mm;
        public readonly ExpertBatch Ffn;
        public readonly Action<int, int> AttnBody;
        public int Tokens, Layer, Pos0;
        /// <summary>Tokens of the chunk being run (Tokens is the capacity the buffers were grown to).</summary>
        public int ChunkTokens;
        public float[] X = [], Xb = [], QA = [], Q = [], KvA = [], AttnOut = [], FfnOut = [], RouterLogits = [], Cos = [], Sin = [], RouteWeights = [];
        public int[] RouteExperts = [];
        /// <summary>Logits of every row of a speculative verification (rows × vocabulary), grown on demand.</summary>
        public float[] Rows = [];

        public void Ensure(DeepSeek2Config c, int n)
        {
            if (n <= Tokens) return;
            X = new float[n * c.Dim];
            Xb = new float[n * Math.Max(c.Dim, c.Heads * c.VHeadDim)];
            QA = new float[n * Math.Max(1, c.QLoraRank)];
            Q = new float[n * c.Heads * c.QkHeadDim];
            KvA = new float[n * (c.KvLoraRank + c.QkRopeDim)];
            AttnOut = new float[n * c.Heads * c.VHeadDim];
            FfnOut = new float[n * c.Dim];
            RouterLogits = new float[n * Math.Max(1, c.ExpertCount)];
            RouteExperts = new int[n * Math.Max(1, c.ExpertsUsed)];
            RouteWeights = new float[n * Math.Max(1, c.ExpertsUsed)];
            Cos = new float[n * c.QkRopeDim / 2];
            Sin = new float[n * c.QkRopeDim / 2];
            Tokens = n;
        }
    }

    // Per-thread scratch of the chunked attention (one token's heads at a time), grown on demand.
    [ThreadStatic] private static float[]? t_qAbs, t_oLat, t_headRows;
    [ThreadStatic] private static byte[]? t_headInput;

    /// <summary>
    /// Runs tokens at positions Position.. through every layer as one batch: the attention and dense projections are
    /// matrix × matrix products over the chunk, MoE layers group the chunk's tokens by expert (<see cref="ExpertBatch"/>),
    /// and attention runs per token against the latent cache, tokens split over the pool.
    /// </summary>
    private void Prefill(State s, ReadOnlySpan<int> tokens, bool computeLogits)
    {
        var c = DsConfig;
        int n = tokens.Length, pos0 = s.Position, dim = c.Dim, pairs = c.QkRopeDim / 2, kvw = c.KvLoraRank + c.QkRopeDim;
        var b = s.Prefill ??= new PrefillScratch(this, s);
        b.Ensure(c, n);
        s.Latent!.Reserve(pos0 + n);
        for (int i = 0; i < n; i++)
        {
            _tokenEmbedding.GetRow(tokens[i], b.X.AsSpan(i * dim, dim));
            Yarn.Angles(pos0 + i, c.QkRopeDim, c.RopeBase, c.Yarn ? c.RopeScalingFactor : 1f, _yarnLow, _yarnHigh,
                b.Cos.AsSpan(i * pairs, pairs), b.Sin.AsSpan(i * pairs, pairs));
        }
        b.Pos0 = pos0;
        b.ChunkTokens = n;
        var x = b.X.AsSpan(0, n * dim);
        for (int l = 0; l < _layers.Length; l++)
        {
            var L = _layers[l];
            NormRows(b, b.X, L.AttnNorm, n);
            // Both matrices that read the normed input go first, so its prepared form is reused.
            b.Mm.Run(L.Wq ?? L.WqA!, b.Xb, n, L.Wq != null ? b.Q : b.QA);
            b.Mm.Run(L.WkvA, b.Xb, n, b.KvA);
            if (L.Wq == null)
            {
                for (int i = 0; i < n; i++)
                {
                    var qa = b.QA.AsSpan(i * c.QLoraRank, c.QLoraRank);
                    Ops.RmsNorm(qa, L.QANorm!, c.RmsEps, qa);
                }
                b.Mm.Run(L.WqB!, b.QA, n, b.Q);
            }
            for (int i = 0; i < n; i++)
            {
                // RoPE on the decoupled parts (each head's q_pe, the shared k_pe); the latent row goes to the cache.
                var cos = b.Cos.AsSpan(i * pairs, pairs);
                var sin = b.Sin.AsSpan(i * pairs, pairs);
                var q = b.Q.AsSpan(i * c.Heads * c.QkHeadDim, c.Heads * c.QkHeadDim);
                for (int h = 0; h < c.Heads; h++) Ops.Rope(q.Slice(h * c.QkHeadDim + c.QkNopeDim, c.QkRopeDim), cos, sin, neox: false);
                var kv = b.KvA.AsSpan(i * kvw, kvw);
                var row = s.LatentRow.AsSpan();
                Ops.RmsNorm(kv[..c.KvLoraRank], L.KvANorm, c.RmsEps, row[..c.KvLoraRank]);
                kv[c.KvLoraRank..].CopyTo(row[c.KvLoraRank..]);
                Ops.Rope(row[c.KvLoraRank..], cos, sin, neox: false);
                s.Latent!.Write(l, pos0 + i, row);
            }
            b.Layer = l;
            Pool.For((n + AttnTokenBlock - 1) / AttnTokenBlock * AttnHeadShares(n), b.AttnBody);

            b.Mm.Run(L.Wo, b.AttnOut, n, b.Xb);
            if (L.Wo.Lora != null) LoraJobOf(s).Add(L.Wo, new LoraRows(s, null), b.AttnOut, 0, L.Wo.Cols, b.Xb, 0, L.Wo.Rows, n);
            TensorPrimitives.Add(x, b.Xb.AsSpan(0, n * dim), x);

            NormRows(b, b.X, L.FfnNorm, n);
            if (L.Router == null)
            {
                b.Ffn.RunDense(L.Gate!, L.Up!, L.Down!, b.Xb, n, b.FfnOut, new LoraRows(s, null));
            }
            else
            {
                b.Mm.Run(L.Router, b.Xb, n, b.RouterLogits);
                int e = c.ExpertCount, k = c.ExpertsUsed;
                for (int i = 0; i < n; i++)
                {
                    var experts = b.RouteExperts.AsSpan(i * k, k);
                    s.Router!.Route(b.RouterLogits.AsSpan(i * e, e), L.RouterBias, experts, b.RouteWeights.AsSpan(i * k, k));
                    MoeStats?.Record(l, experts);
                }
                b.Ffn.RunMoe(L.GateExps!, L.UpExps!, L.DownExps!, b.RouteExperts, b.RouteWeights, k,
                    L.GateShared, L.UpShared, L.DownShared, b.Xb, n, b.FfnOut, new LoraRows(s, null));
            }
            TensorPrimitives.Add(x, b.FfnOut.AsSpan(0, n * dim), x);
        }
        s.Cache.Length = pos0 + n;
        for (int i = 0; i < n; i++) MoeStats?.CountToken();
        if (s.Hidden != null)
            for (int i = 0; i < n; i++)
                Ops.RmsNorm(b.X.AsSpan(i * dim, dim), _outputNorm, c.RmsEps, s.Hidden.AsSpan((pos0 + i) * dim, dim));

        if (computeLogits)
        {
            // Only the last token's logits are needed: one matrix-vector product.
            Ops.RmsNorm(b.X.AsSpan((n - 1) * dim, dim), _outputNorm, c.RmsEps, s.Xb.AsSpan(0, dim));
            MatVec(s, _output, s.Xb, s.Logits);
        }
    }

    /// <summary>
    /// Speculative verification: the batched prefill with the output head on every row. Whether each row equals a
    /// one-token decode bit for bit is what the tests check (the batched and single-token kernels share their
    /// per-token steps; attention is the same absorbed routine); the naive reference cache goes token by token.
    /// </summary>
    public override void ForwardAll(InferenceState state, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        var s = state as State ?? throw new ArgumentException("state was not created by this model");
        var c = DsConfig;
        int vocab = c.VocabSize, dim = c.Dim;
        if (s.Latent == null || tokens.Length == 1) { base.ForwardAll(state, tokens, logits); return; }
        if (logits.Length < (long)tokens.Length * vocab)
            throw new ArgumentException($"the logits buffer holds {logits.Length} floats; {tokens.Length} tokens need {(long)tokens.Length * vocab}");
        if (s.Position + tokens.Length > s.Capacity)
            throw new InvalidOperationException($"context full: {s.Position} + {tokens.Length} tokens exceed the context of {s.Capacity}");
        foreach (int token in tokens)
            if ((uint)token >= (uint)vocab) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary ({vocab})");
        int batch = Math.Max(1, MaxBatch);
        for (int i = 0; i < tokens.Length; i += batch)
        {
            int n = Math.Min(batch, tokens.Length - i);
            Prefill(s, tokens.Slice(i, n), computeLogits: false);
            var b = s.Prefill!;
            NormRows(b, b.X, _outputNorm, n);
            if (b.Rows.Length < n * vocab) b.Rows = new float[n * vocab];
            b.Mm.Run(_output, b.Xb, n, b.Rows);
            b.Rows.AsSpan(0, n * vocab).CopyTo(logits.Slice(i * vocab));
        }
    }

    private void NormRows(PrefillScratch b, float[] src, float[] weight, int n)
    {
        int dim = DsConfig.Dim;
        for (int i = 0; i < n; i++) Ops.RmsNorm(src.AsSpan(i * dim, dim), weight, DsConfig.RmsEps, b.Xb.AsSpan(i * dim, dim));
        b.Mm.Invalidate(); // Xb changed: its prepared activations are stale
    }

    /// <summary>
    /// Query tokens of one prefill attention work item. An item attends its tokens and heads in one FlashAttention
    /// call, which decodes each F16 cache tile once for all of them (the latent row of a position is every head's key
    /// and value): per token, as before, the tiles of a 512-token chunk were decoded 512 times a layer, not 32.
    /// </summary>
    private const int AttnTokenBlock = 16;

    /// <summary>
    /// Shares the heads of a chunk of <paramref name="tokens"/> are split in: one while its token blocks alone give every
    /// thread two items, more for a short chunk (a speculative verification) so that every thread still gets work.
    /// </summary>
    private int AttnHeadShares(int tokens)
    {
        int blocks = (tokens + AttnTokenBlock - 1) / AttnTokenBlock;
        return Math.Clamp(2 * Pool.Threads / blocks, 1, DsConfig.Heads);
    }

    /// <summary>
    /// Work items [i0, i1) of (token block, head share), item = block · shares + share: each block's tokens attend over
    /// the cache up to their own positions. A row's result depends only on its position and the cache
    /// (FlashAttention), so any split gives the same bits.
    /// </summary>
    private void AttendChunk(State s, PrefillScratch b, int i0, int i1)
    {
        var c = DsConfig;
        int heads = c.Heads, rank = c.KvLoraRank, rl = rank + c.QkRopeDim, shares = AttnHeadShares(b.ChunkTokens), rows = AttnTokenBlock * heads;
        if (t_qAbs == null || t_qAbs.Length < rows * rl) { t_qAbs = new float[rows * rl]; t_oLat = new float[rows * rank]; }
        if (t_headInput == null || t_headInput.Length < _headInputBytes) t_headInput = new byte[_headInputBytes];
        if (t_headRows == null || t_headRows.Length < _headRowFloats) t_headRows = new float[Math.Max(1, _headRowFloats)];
        for (int item = i0; item < i1; item++)
        {
            int t0 = item / shares * AttnTokenBlock, share = item % shares;
            AttendHeads(s, b, t0, Math.Min(b.ChunkTokens, t0 + AttnTokenBlock), share * heads / shares, (share + 1) * heads / shares);
        }
    }

    /// <summary>
    /// Heads [h0, h1) of tokens [t0, t1) of the chunk: their absorbed queries, then one FlashAttention call over
    /// tokens × heads (each token causal at its own position), then the value up-projection per row.
    /// </summary>
    private void AttendHeads(State s, PrefillScratch b, int t0, int t1, int h0, int h1)
    {
        var c = DsConfig;
        int heads = c.Heads, rank = c.KvLoraRank, rl = rank + c.QkRopeDim, qw = heads * c.QkHeadDim, vw = heads * c.VHeadDim, n = t1 - t0;
        var L = _layers[b.Layer];
        var qAbs = t_qAbs!.AsSpan(0, n * heads * rl);
        var oLat = t_oLat!.AsSpan(0, n * heads * rank);
        for (int t = 0; t < n; t++)
            AbsorbQueries(L, b.Q.AsSpan((t0 + t) * qw, qw), qAbs.Slice(t * heads * rl, heads * rl), t_headInput, t_headRows, h0, h1);
        FlashAttention.Attend(s.Latent!.Keys(b.Layer), s.Latent.Values(b.Layer), qAbs[(h0 * rl)..], heads * rl, oLat[(h0 * rank)..], heads * rank,
            tokens: n, group: h1 - h0, pos0: b.Pos0 + t0, window: 0, _kqScale);
        for (int t = 0; t < n; t++)
            ExpandValues(L, oLat.Slice(t * heads * rank, heads * rank), b.AttnOut.AsSpan((t0 + t) * vw, vw), t_headInput, t_headRows, h0, h1);
    }
}
