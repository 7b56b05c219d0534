using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// What every llama-style decoder shares: the token embedding, the output norm and head, RoPE tables, the KV cache,
/// batching (prefill chunks and multi-sequence decode) and the worker hand-offs. Each architecture derives from it
/// in its own file, loads its own per-layer weights with <see cref="LoadAttention"/>, <see cref="LoadFfn"/> and
/// <see cref="LoadExperts"/>, and writes its layer as a sequence of shared blocks (DecoderModel.Blocks.cs) in
/// <see cref="ForwardLayer"/>: no architecture flag reaches the hot loop.
/// </summary>
internal abstract partial class DecoderModel : LanguageModel
{
    private readonly WeightMatrix _tokenEmbedding;
    private readonly WeightMatrix _output;
    private readonly float[]? _outputNorm; // null for an encoder, whose last layer ends in its own norm
    private readonly float[]? _ropeFreqFactors;
    // Largest activation buffer any matrix needs (grown by every Matrix call), so each state sizes its buffer once.
    private int _maxInputBytes;

    protected DecoderModel(GgufFile file, ModelConfig config, WorkerPool pool) : this(file, config, pool, encoder: false) { }

    // encoder: a bert-style model, with no output norm nor head (Forward refuses it: it gives embeddings, not
    // logits), whose token embedding is only looked up.
    protected DecoderModel(GgufFile file, ModelConfig config, WorkerPool pool, bool encoder) : base(file, config, pool)
    {
        IsEmbeddingOnly = encoder;
        if (encoder)
        {
            _tokenEmbedding = _output = Matrix(TensorNames.Weight(TensorNames.TokenEmbd), config.Dim, config.VocabSize, mayInterleave: false);
            return;
        }
        // Tied embeddings (small models reuse the embedding as the output projection) are a matrix product every
        // token and get the fast layout; an embedding that is only looked up stays in the mapping, so only the rows
        // of tokens actually seen are paged in.
        bool tied = file.FindTensor(TensorNames.Weight(TensorNames.Output)) is null;
        _tokenEmbedding = Matrix(TensorNames.Weight(TensorNames.TokenEmbd), config.Dim, config.VocabSize, mayInterleave: tied);
        _output = tied ? _tokenEmbedding : Matrix(TensorNames.Weight(TensorNames.Output), config.Dim, config.VocabSize);
        _outputNorm = Vector(TensorNames.Weight(TensorNames.OutputNorm), config.Dim);
        _ropeFreqFactors = file.FindTensor(TensorNames.Weight(TensorNames.RopeFreqs)) is { } rf ? Vector(rf.Name, config.RopeDims / 2) : null;
    }

    public override bool IsEmbeddingOnly { get; }

    /// <summary>Layer <paramref name="l"/> over the n rows of w.X (the residual stream), in place.</summary>
    protected abstract void ForwardLayer(DecoderState w, int l, int n);

    /// <summary>A 2-D weight checked against the shape [cols, rows] the hyper-parameters give it.</summary>
    protected WeightMatrix Matrix(string name, int cols, int rows, bool mayInterleave = true)
    {
        var info = File.GetTensor(name);
        if (info.Columns != cols || info.Rows != rows)
            throw new GgufFormatException($"tensor '{name}' has shape [{string.Join(", ", info.Dims)}], expected [{cols}, {rows}]");
        var m = new WeightMatrix(File, info, mayInterleave);
        _maxInputBytes = Math.Max(_maxInputBytes, m.InputBytes);
        return Adaptable(m, name);
    }

    /// <summary>A 1-D weight (a norm or a bias) as floats.</summary>
    protected float[] Vector(string name, int length)
    {
        var info = File.GetTensor(name);
        if (info.Columns != length || info.Rows != 1)
            throw new GgufFormatException($"tensor '{name}' has shape [{string.Join(", ", info.Dims)}], expected [{length}]");
        return new WeightMatrix(File, info, mayInterleave: false).ToFloatVector();
    }

    protected float[]? OptionalVector(string name, int length) => File.FindTensor(name) is null ? null : Vector(name, length);

    /// <summary>Most tokens one forward pass processes together; longer inputs run in chunks of this size.</summary>
    public int MaxBatch { get; set; } = 512;

    public override InferenceState CreateState(int contextLength, KvCacheType keyType, KvCacheType valueType)
    {
        var c = Config;
        // Sliding-window layers (LayerWindows) keep a ring of window + MaxBatch − 1 rows, global layers the context;
        // the attention kernel reads both by absolute position.
        var cache = new KvCache(CacheLayerCount, contextLength, c.KvDim, keyType, valueType, c.HeadDim, LayerWindows, Math.Max(1, MaxBatch));
        var s = new DecoderState(cache, c, RopeFrequencies(contextLength), RopeMagnitude, SlidingRopeFrequencies());
        BindJobs(s);
        InitState(s);
        return s;
    }

    /// <summary>What a new sequence needs beyond the attention cache (qwen35: its recurrent state); nothing by default.</summary>
    protected virtual void InitState(DecoderState s) { }

    /// <summary>
    /// The attention cache plane of each layer, −1 for a layer without one (qwen35's recurrent layers), so a hybrid
    /// model's cache holds only its attention layers; null when every layer l has plane l.
    /// </summary>
    internal int[]? CacheSlots { get; set; }

    private int CacheLayerCount => CacheSlots is { } slots ? slots.Count(p => p >= 0) : Config.Layers;

    private int SlotOf(int layer) => CacheSlots is { } slots ? slots[layer] : layer;

    // The worker delegates are created once per state here: a lambda capturing a parameter of a per-call method
    // would allocate its closure on every call, even when the delegate is cached.
    private void BindJobs(DecoderState s)
    {
        s.SwiGluBody = (i0, i1) => Ops.SwiGlu(s.H1.AsSpan(i0, i1 - i0), s.H3.AsSpan(i0, i1 - i0));
        s.GeGluBody = (i0, i1) => Ops.GeGlu(s.H1.AsSpan(i0, i1 - i0), s.H3.AsSpan(i0, i1 - i0));
        s.GeluBody = (i0, i1) => Ops.Gelu(s.H1.AsSpan(i0, i1 - i0));
        s.PrepBody = (t0, t1) => s.MmW!.PrepareInputs(s.MmX, s.Act, t0, t1);
        s.SharedBody = (g0, g1) => SharedRows(s, g0, g1);
        s.MmBody = (r0, r1) => s.MmW!.MatMulRows(s.Act, s.MmTokens, s.MmY, r0, r1);
        s.AttnBody = (i0, i1) => AttendItems(s, i0, i1);
        s.AttnSegmentBody = (i0, i1) => AttendSegmentItems(s, i0, i1);
    }

    /// <summary>
    /// Per-pair RoPE frequency divisors for a state of <paramref name="contextLength"/> positions: the file's rope_freqs
    /// (Llama 3.1) when it has one. An architecture whose factors depend on the context (phi3's LongRoPE) overrides this.
    /// </summary>
    protected virtual float[]? RopeFreqFactors(int contextLength) => _ropeFreqFactors;

    /// <summary>
    /// RoPE frequency per rotated pair: base^(−2i/d), divided by per-pair factors when the file has them, then
    /// context scaling as ggml's rope_yarn does it. YaRN's angle θ_interp·(1−r_i) + θ_extrap·r_i is still linear in the
    /// position, so it folds into the frequency: f_i·((1 − r_i)/factor + r_i); linear scaling is f_i/factor.
    /// </summary>
    private double[] RopeFrequencies(int contextLength)
    {
        var c = Config;
        var factors = RopeFreqFactors(contextLength);
        var f = new double[c.RopeDims / 2];
        var (low, high) = c.RopeYarn ? Yarn.CorrectionDims(c.RopeDims, c.RopeOriginalContext, c.RopeBase, c.YarnBetaFast, c.YarnBetaSlow) : (0f, 0f);
        for (int i = 0; i < f.Length; i++)
        {
            f[i] = Math.Pow(c.RopeBase, -2.0 * i / c.RopeDims);
            if (factors != null) f[i] /= factors[i];
            if (c.RopeYarn)
            {
                double ramp = Yarn.Ramp(low, high, i);
                f[i] *= (1 - ramp) / c.RopeScalingFactor + ramp;
            }
            else if (c.RopeScalingFactor != 1f)
            {
                f[i] /= c.RopeScalingFactor;
            }
        }
        return f;
    }

    /// <summary>RoPE frequencies of the sliding-window layers when they differ from the others' (gemma3's local base); null otherwise.</summary>
    protected virtual double[]? SlidingRopeFrequencies() => null;

    /// <summary>base^(−2i/d) for each rotated pair: RoPE without context scaling.</summary>
    protected static double[] PlainRopeFrequencies(float ropeBase, int ropeDims)
    {
        var f = new double[ropeDims / 2];
        for (int i = 0; i < f.Length; i++) f[i] = Math.Pow(ropeBase, -2.0 * i / ropeDims);
        return f;
    }

    /// <summary>Applied to every row of logits the output head produces (gemma's final soft-capping); nothing by default.</summary>
    protected virtual void FinishLogits(Span<float> logits) { }

    /// <summary>
    /// YaRN's magnitude on cos/sin (both Q and K, so attention logits grow by its square): ggml's 1 + 0.1·ln(factor)
    /// times llama.cpp's attn_factor, which without a yarn_log_multiplier cancels to 1. Overridden where the file
    /// states a factor of its own (mistral3's yarn_log_multiplier, phi3's LongRoPE attention factor).
    /// </summary>
    protected virtual float RopeMagnitude => Config.RopeYarn ? Yarn.MScale(Config.RopeScalingFactor, 1f) : 1f;

    public override ReadOnlySpan<float> Forward(InferenceState state, ReadOnlySpan<int> tokens)
    {
        if (IsEmbeddingOnly) throw NoLogits();
        var s = (DecoderState)state;
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to feed");
        if (s.Position + tokens.Length > s.Capacity)
            throw new InvalidOperationException($"context full: {s.Position} + {tokens.Length} tokens exceed the context of {s.Capacity}");
        foreach (int token in tokens)
            if ((uint)token >= (uint)Config.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary ({Config.VocabSize})");
        if (s.Cache.HasRing && s.Cache.Reusable(s.Position) != s.Position)
            throw new InvalidOperationException($"the sliding-window cache no longer holds the window of position {s.Position}: truncate it with InferenceState.Truncate, which says how much is reusable");
        // A ring holds the window plus the batch it was sized for: never feed more at once (MaxBatch may have grown since).
        int batch = Math.Max(1, Math.Min(MaxBatch, s.Cache.MaxBatch));
        for (int i = 0; i < tokens.Length; i += batch)
        {
            int n = Math.Min(batch, tokens.Length - i);
            Batch(s, tokens.Slice(i, n), computeLogits: i + n == tokens.Length);
        }
        return s.Logits;
    }

    /// <summary>
    /// The batched path with the output head on every row. The matrix kernels share their per-token steps between
    /// the single-token and multi-token products, so each row matches a one-token forward bit for bit (the tests check).
    /// </summary>
    public override void ForwardAll(InferenceState state, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        var s = (DecoderState)state;
        var c = Config;
        int vocab = c.VocabSize, dim = c.Dim;
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to feed");
        if (logits.Length < (long)tokens.Length * vocab)
            throw new ArgumentException($"the logits buffer holds {logits.Length} floats; {tokens.Length} tokens need {(long)tokens.Length * vocab}");
        if (s.Position + tokens.Length > s.Capacity)
            throw new InvalidOperationException($"context full: {s.Position} + {tokens.Length} tokens exceed the context of {s.Capacity}");
        foreach (int token in tokens)
            if ((uint)token >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary ({c.VocabSize})");
        int batch = Math.Max(1, MaxBatch);
        for (int i = 0; i < tokens.Length; i += batch)
        {
            int n = Math.Min(batch, tokens.Length - i);
            Batch(s, tokens.Slice(i, n), computeLogits: false);
            for (int r = 0; r < n; r++) Ops.RmsNorm(s.X.AsSpan(r * dim, dim), _outputNorm, c.RmsEps, s.Xb.AsSpan(r * dim, dim));
            s.ActSource = null;
            if (s.BatchLogits.Length < n * vocab) s.BatchLogits = new float[n * vocab];
            Project(s, _output, s.Xb, n, s.BatchLogits);
            for (int r = 0; r < n; r++) FinishLogits(s.BatchLogits.AsSpan(r * vocab, vocab));
            s.BatchLogits.AsSpan(0, n * vocab).CopyTo(logits.Slice(i * vocab));
        }
    }

    /// <summary>Runs tokens at positions Position.. through every layer as one batch (matrix × matrix products).</summary>
    private void Batch(DecoderState s, ReadOnlySpan<int> tokens, bool computeLogits)
    {
        var c = Config;
        int n = tokens.Length, pos0 = s.Position, dim = c.Dim;
        s.EnsureBatch(n, _maxInputBytes);
        Embed(s, tokens);
        s.Seqs = null;
        s.Cache.Reserve(pos0 + n);
        Layers(s, n);
        s.Cache.Length = pos0 + n;

        if (computeLogits)
        {
            // Only the last token's logits are needed: one matrix-vector product instead of n.
            Ops.RmsNorm(s.X.AsSpan((n - 1) * dim, dim), _outputNorm!, c.RmsEps, s.Xb.AsSpan(0, dim));
            s.ActSource = null;
            Project(s, _output, s.Xb, 1, s.Logits);
            FinishLogits(s.Logits);
        }
    }

    /// <summary>
    /// The layer stack over the n rows of w.X. Row i belongs to sequence w.Seqs[i] at its current position when
    /// w.Seqs is set (multi-sequence decode), otherwise to w itself at position w.Position + i (prefill).
    /// </summary>
    private void Layers(DecoderState w, int n)
    {
        for (int l = 0; l < Config.Layers; l++) ForwardLayer(w, l, n);
    }

    /// <summary>The embedding rows of the tokens into w.X (an architecture that scales them overrides this).</summary>
    protected virtual void Embed(DecoderState w, ReadOnlySpan<int> tokens)
    {
        int dim = Config.Dim;
        for (int i = 0; i < tokens.Length; i++) _tokenEmbedding.GetRow(tokens[i], w.X.AsSpan(i * dim, dim));
    }

    private void RmsNormRows(DecoderState s, int n, float[] weight)
    {
        int dim = Config.Dim;
        for (int i = 0; i < n; i++)
            Ops.RmsNorm(s.X.AsSpan(i * dim, dim), weight, Config.RmsEps, s.Xb.AsSpan(i * dim, dim));
        s.ActSource = null; // Xb changed: the prepared activations are stale
    }

    private void SwiGluRows(DecoderState s, int count)
    {
        Pool.For(count, s.SwiGluBody!, minPerThread: 1 << 15);
    }

    private void GeGluRows(DecoderState s, int count)
    {
        Pool.For(count, s.GeGluBody!, minPerThread: 1 << 15);
    }

    /// <summary>y (n × w.Rows) = x (n × w.Cols) · Wᵀ: prepares x once for w's kernel (skipped when x was just prepared for the same format), then splits rows over the pool.</summary>
    private protected void Project(DecoderState s, WeightMatrix w, float[] x, int n, float[] y)
    {
        PrepareActivations(s, w, x, n);
        s.MmW = w;
        s.MmY = y;
        s.MmTokens = n;
        Pool.For(w.Rows, s.MmBody!, minPerThread: MinRowsPerThread(w, n), align: Interleaving.Rows);
        if (ReferenceEquals(y, s.ActSource)) s.ActSource = null;
        if (w.Lora != null) AddLora(s, w, x, n, y);
    }

    /// <summary>The attached adapters' low-rank deltas of y = W·x, each row with its own sequence's adapters.</summary>
    private void AddLora(DecoderState s, WeightMatrix w, float[] x, int n, float[] y) =>
        (s.LoraJob ??= new LoraJob(Pool)).Add(w, LoraRowsOf(s), x, 0, w.Cols, y, 0, w.Rows, n);

    /// <summary>Whose adapters each row of a batch uses: its own sequence's in a multi-sequence step, else the state's.</summary>
    private protected static LoraRows LoraRowsOf(DecoderState s) => new(s, s.Seqs);

    /// <summary>
    /// Products of one input with two or three matrices (Q/K/V, gate/up) in a single pool hand-off over their
    /// concatenated rows: decode issues hundreds of products per token, and every hand-off is a barrier where
    /// the faster thread waits. Falls back to one product each when the matrices need differently prepared inputs.
    /// </summary>
    private protected void ProjectShared(DecoderState s, float[] x, int n, WeightMatrix w0, float[] y0, WeightMatrix w1, float[] y1,
        WeightMatrix? w2 = null, float[]? y2 = null)
    {
        if (!SameInput(w0, w1) || (w2 != null && !SameInput(w0, w2)))
        {
            Project(s, w0, x, n, y0);
            Project(s, w1, x, n, y1);
            if (w2 != null) Project(s, w2, x, n, y2!);
            return;
        }
        PrepareActivations(s, w0, x, n);
        s.SharedW[0] = w0; s.SharedY[0] = y0;
        s.SharedW[1] = w1; s.SharedY[1] = y1;
        s.SharedCount = 2;
        if (w2 != null)
        {
            s.SharedW[2] = w2; s.SharedY[2] = y2!;
            s.SharedCount = 3;
        }
        s.MmTokens = n;
        int rows = w0.Rows + w1.Rows + (w2?.Rows ?? 0);
        Pool.For(rows, s.SharedBody!, minPerThread: MinRowsPerThread(w0, n), align: Interleaving.Rows);
        if (w0.Lora != null) AddLora(s, w0, x, n, y0);
        if (w1.Lora != null) AddLora(s, w1, x, n, y1);
        if (w2?.Lora != null) AddLora(s, w2, x, n, y2!);
    }

    private static bool SameInput(WeightMatrix a, WeightMatrix b) =>
        a.Cols == b.Cols && a.HasKernel && b.HasKernel && MatVec.ActivationType(a.Type) == MatVec.ActivationType(b.Type);

    /// <summary>Rows [g0, g1) of the concatenated matrices of a shared-input product.</summary>
    private static void SharedRows(DecoderState s, int g0, int g1)
    {
        int offset = 0;
        for (int m = 0; m < s.SharedCount && g0 < g1; m++)
        {
            var w = s.SharedW[m]!;
            int lo = Math.Max(g0, offset), hi = Math.Min(g1, offset + w.Rows);
            if (lo < hi) w.MatMulRows(s.Act, s.MmTokens, s.SharedY[m], lo - offset, hi - offset);
            offset += w.Rows;
        }
    }

    /// <summary>Prepares x for w's kernel unless the activation buffer already holds x in that format.</summary>
    private void PrepareActivations(DecoderState s, WeightMatrix w, float[] x, int n)
    {
        GgmlType actType = w.HasKernel ? MatVec.ActivationType(w.Type) : GgmlType.F32;
        if (ReferenceEquals(s.ActSource, x) && s.ActType == actType && s.ActTokens == n) return;
        s.MmW = w;
        s.MmX = x;
        if (n == 1) w.PrepareInput(x, s.Act);
        else Pool.For(n, s.PrepBody!, minPerThread: Math.Max(1, 16384 / w.Cols));
        s.ActSource = x;
        s.ActType = actType;
        s.ActTokens = n;
    }

    // Small products are cheaper on one thread than the hand-off to workers (stories260K decodes on one).
    private static int MinRowsPerThread(WeightMatrix w, int n) => (int)Math.Max(1, 32768 / ((long)w.Cols * n));
}
