using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;

namespace Sputnik.Models;

/// <summary>
/// `deepseek2` (DeepSeek-V2, V2-Lite, V3, R1): pre-RMSNorm blocks of Multi-head Latent Attention followed by a dense
/// SwiGLU (the leading layers) or DeepSeekMoE (routed top-k experts plus shared experts).
/// <para>
/// Attention runs in the absorbed form by default: the cache keeps only the normalised kv latent and the shared
/// roped k_pe per token and layer; the key up-projection is folded into the query (q_nope → latent space) and the
/// value up-projection is applied once per head after attending over latents. <see cref="NaiveAttention"/> switches
/// states created afterwards to the decompress-then-attend reference, which caches full per-head keys and values.
/// </para>
/// </summary>
internal sealed partial class DeepSeek2 : LanguageModel, IMoeModel
{
    public const string Name = DeepSeek2Config.Arch;

    public static LanguageModel Load(GgufFile file, WorkerPool pool) => new DeepSeek2(file, DeepSeek2Config.FromGguf(file), pool);

    /// <summary>`synth` writes deepseek2 with its own generator (<see cref="DeepSeek2Synth"/>), from these presets.</summary>
    public static readonly ArchitectureInfo Info = new(Name, Load)
    {
        HfArchitectures = ["DeepseekV2ForCausalLM", "DeepseekV3ForCausalLM"],
        Convert = HfConvert,
        OwnSynth = new(
        [
            new("deepseek2-tiny", DeepSeek2Synth.Tiny),
            new("deepseek-v2-lite", DeepSeek2Synth.V2Lite),
        ], (path, preset, fileType, seed, threads) =>
            Tools.SyntheticModel.WriteDeepSeek2(path, preset.Name, (DeepSeek2Config)preset.Config, fileType, seed, threads)),
    };

    private sealed class Layer
    {
        public required float[] AttnNorm, FfnNorm, KvANorm;
        public float[]? QANorm;
        public WeightMatrix? Wq, WqA, WqB;
        public required WeightMatrix WkvA, Wo;
        /// <summary>Per head: q_nope → latent (absorbed), latent → k_nope (naive), latent → v (both).</summary>
        public required HeadMatrices KAbsorb, KExpand, VExpand;
        public WeightMatrix? Gate, Up, Down;
        public WeightMatrix? Router;
        public float[]? RouterBias;
        public WeightMatrix[]? GateExps, UpExps, DownExps;
        public WeightMatrix? GateShared, UpShared, DownShared;
    }

    private readonly WeightMatrix _tokenEmbedding, _output;
    private readonly float[] _outputNorm;
    private readonly Layer[] _layers;
    private readonly int _maxInputBytes, _maxFfnRows, _maxSlots, _headInputBytes, _headRowFloats;
    private readonly float _kqScale, _yarnLow, _yarnHigh;

    public DeepSeek2Config DsConfig { get; }

    /// <summary>Use the decompress-then-attend reference path for states created from now on.</summary>
    public bool NaiveAttention { get; set; }

    public MoeStats? MoeStats { get; set; }
    public int FirstMoeLayer => DsConfig.ExpertCount > 0 ? DsConfig.LeadingDenseLayers : DsConfig.Layers;
    public MoeStats CreateMoeStats() => new(DsConfig.Layers, Math.Max(1, DsConfig.ExpertCount));

    public DeepSeek2(GgufFile file, DeepSeek2Config c, WorkerPool pool) : base(file, c.ToModelConfig(), pool)
    {
        DsConfig = c;
        // Tied embeddings (small models reuse the embedding as the output projection) are a matrix product every
        // token and get the fast layout; an embedding that is only looked up stays in the mapping, so only the rows
        // of tokens actually seen are paged in.
        bool tied = file.FindTensor(TensorNames.Weight(TensorNames.Output)) is null;
        _tokenEmbedding = Matrix(TensorNames.Weight(TensorNames.TokenEmbd), c.Dim, c.VocabSize, mayInterleave: tied);
        _output = tied ? _tokenEmbedding : Matrix(TensorNames.Weight(TensorNames.Output), c.Dim, c.VocabSize);
        _outputNorm = Vector(TensorNames.Weight(TensorNames.OutputNorm), c.Dim);
        _kqScale = c.KqScale;
        (_yarnLow, _yarnHigh) = c.Yarn
            ? Yarn.CorrectionDims(c.QkRopeDim, c.RopeOriginalContext, c.RopeBase, c.YarnBetaFast, c.YarnBetaSlow)
            : (0f, 0f);
        _layers = new Layer[c.Layers];
        for (int l = 0; l < c.Layers; l++) _layers[l] = LoadLayer(l);
        _mtp = LoadMtp();

        var all = new List<WeightMatrix> { _output };
        if (_mtp != null) all.AddRange([_mtp.EhProj, _mtp.Head]);
        var blocks = _mtp != null ? _layers.Append(_mtp.Block).ToArray() : _layers;
        foreach (var L in blocks)
        {
            all.AddRange(new[] { L.Wq, L.WqA, L.WqB, L.WkvA, L.Wo, L.Gate, L.Up, L.Down, L.Router, L.GateShared, L.UpShared, L.DownShared }.OfType<WeightMatrix>());
            if (L.GateExps != null) all.AddRange([L.GateExps[0], L.UpExps![0], L.DownExps![0]]);
        }
        _maxInputBytes = all.Max(w => w.InputBytes);
        int sharedRows = blocks.Max(L => L.GateShared?.Rows ?? 0);
        _maxFfnRows = Math.Max(c.FfnDim, c.ExpertsUsed * c.ExpertFfnDim + sharedRows);
        _maxSlots = Math.Max(1, c.ExpertsUsed + 1);
        _headInputBytes = blocks.Max(L => Math.Max(Math.Max(L.KAbsorb.InputBytes, L.KExpand.InputBytes), L.VExpand.InputBytes));
        _headRowFloats = blocks.Max(L => Math.Max(Math.Max(L.KAbsorb.RowScratch, L.KExpand.RowScratch), L.VExpand.RowScratch));
    }

    private Layer LoadLayer(int l)
    {
        var c = DsConfig;
        int qDim = c.Heads * c.QkHeadDim;
        bool qLora = File.FindTensor(TensorNames.Weight(l, TensorNames.AttnQA)) != null;
        HeadMatrices kAbsorb, kExpand, vExpand;
        if (File.FindTensor(TensorNames.Weight(l, TensorNames.AttnKB)) != null)
        {
            // Split MLA layout: k_b is [heads][rank][nope] (ggml dims nope, rank, heads), v_b is [heads][v][rank].
            // Every decode step multiplies by each head's slice of both, so they are re-laid like the other matrices
            // (the naive reference path reads k_b's rows transposed, which the interleaved layout also serves).
            var kb = TensorSlices.Split3D(File, TensorNames.Weight(l, TensorNames.AttnKB), c.QkNopeDim, c.KvLoraRank, c.Heads, relayAtLoad: true);
            kAbsorb = new HeadMatrices(kb, transposed: false);
            kExpand = new HeadMatrices(kb, transposed: true);
            vExpand = new HeadMatrices(TensorSlices.Split3D(File, TensorNames.Weight(l, TensorNames.AttnVB), c.KvLoraRank, c.VHeadDim, c.Heads,
                relayAtLoad: true), transposed: false);
        }
        else
        {
            // Older layout: one attn_kv_b of heads·(nope + v) rows over the latent.
            var kvb = File.GetTensor(TensorNames.Weight(l, TensorNames.AttnKvB));
            int stride = c.QkNopeDim + c.VHeadDim;
            var kRows = TensorSlices.RowBlocks(File, kvb, c.KvLoraRank, c.QkNopeDim, c.Heads, stride, 0);
            kAbsorb = new HeadMatrices(kRows, transposed: true);
            kExpand = new HeadMatrices(kRows, transposed: false);
            vExpand = new HeadMatrices(TensorSlices.RowBlocks(File, kvb, c.KvLoraRank, c.VHeadDim, c.Heads, stride, c.QkNopeDim), transposed: false);
        }
        var L = new Layer
        {
            AttnNorm = Vector(TensorNames.Weight(l, TensorNames.AttnNorm), c.Dim),
            FfnNorm = Vector(TensorNames.Weight(l, TensorNames.FfnNorm), c.Dim),
            KvANorm = Vector(TensorNames.Weight(l, TensorNames.AttnKvANorm), c.KvLoraRank),
            QANorm = qLora ? Vector(TensorNames.Weight(l, TensorNames.AttnQANorm), c.QLoraRank) : null,
            Wq = qLora ? null : Matrix(TensorNames.Weight(l, TensorNames.AttnQ), c.Dim, qDim),
            WqA = qLora ? Matrix(TensorNames.Weight(l, TensorNames.AttnQA), c.Dim, c.QLoraRank) : null,
            WqB = qLora ? Matrix(TensorNames.Weight(l, TensorNames.AttnQB), c.QLoraRank, qDim) : null,
            WkvA = Matrix(TensorNames.Weight(l, TensorNames.AttnKvAMqa), c.Dim, c.KvLoraRank + c.QkRopeDim),
            Wo = Matrix(TensorNames.Weight(l, TensorNames.AttnOutput), c.Heads * c.VHeadDim, c.Dim),
            KAbsorb = kAbsorb, KExpand = kExpand, VExpand = vExpand,
        };
        if (!c.IsMoeLayer(l))
        {
            L.Gate = Matrix(TensorNames.Weight(l, TensorNames.FfnGate), c.Dim, c.FfnDim);
            L.Up = Matrix(TensorNames.Weight(l, TensorNames.FfnUp), c.Dim, c.FfnDim);
            L.Down = Matrix(TensorNames.Weight(l, TensorNames.FfnDown), c.FfnDim, c.Dim);
            return L;
        }
        L.Router = Matrix(TensorNames.Weight(l, TensorNames.FfnGateInp), c.Dim, c.ExpertCount);
        L.RouterBias = File.FindTensor(TensorNames.Bias(l, TensorNames.ExpProbsB)) is { } b ? Vector(b.Name, c.ExpertCount) : null;
        L.GateExps = Experts(TensorNames.Weight(l, TensorNames.FfnGateExps), c.Dim, c.ExpertFfnDim, c.ExpertCount);
        L.UpExps = Experts(TensorNames.Weight(l, TensorNames.FfnUpExps), c.Dim, c.ExpertFfnDim, c.ExpertCount);
        L.DownExps = Experts(TensorNames.Weight(l, TensorNames.FfnDownExps), c.ExpertFfnDim, c.Dim, c.ExpertCount);
        if (File.FindTensor(TensorNames.Weight(l, TensorNames.FfnGateShexp)) is { } sh)
        {
            int shared = (int)sh.Rows;
            L.GateShared = Matrix(sh.Name, c.Dim, shared);
            L.UpShared = Matrix(TensorNames.Weight(l, TensorNames.FfnUpShexp), c.Dim, shared);
            L.DownShared = Matrix(TensorNames.Weight(l, TensorNames.FfnDownShexp), shared, c.Dim);
        }
        return L;
    }

    private WeightMatrix Matrix(string name, int cols, int rows, bool mayInterleave = true)
    {
        var info = File.GetTensor(name);
        if (info.Columns != cols || info.Rows != rows)
            throw new GgufFormatException($"tensor '{name}' has shape [{string.Join(", ", info.Dims)}], expected [{cols}, {rows}]");
        return Adaptable(new WeightMatrix(File, info, mayInterleave), name);
    }

    /// <summary>The slices of a routed-expert stack, adapters may target.</summary>
    private WeightMatrix[] Experts(string name, int cols, int rows, int count) =>
        AdaptableExperts(TensorSlices.Split3D(File, name, cols, rows, count, experts: true), name);

    private float[] Vector(string name, int length) => Matrix(name, length, 1).ToFloatVector();

    // ---- state ---------------------------------------------------------------------------------------------

    /// <summary>
    /// The latent cache is stored as <paramref name="keyType"/> (the naive reference path keeps its
    /// decompressed cache in F32 whatever is asked).
    /// </summary>
    public override InferenceState CreateState(int contextLength, KvCacheType keyType, KvCacheType valueType)
    {
        if (contextLength < 1) throw new ArgumentOutOfRangeException(nameof(contextLength), "context must hold at least one token");
        return new State(this, contextLength, NaiveAttention, keyType);
    }

    /// <summary>Bytes the attention cache of <paramref name="state"/> occupies.</summary>
    public static long CacheBytes(InferenceState state) => state is State s ? s.Latent?.Bytes ?? s.Naive!.Bytes : 0;

    private sealed class State : InferenceState
    {
        public readonly LatentKvCache? Latent;
        /// <summary>
        /// The trunk's final hidden state (after output_norm) of every cached position, kept when the model has an
        /// MTP head (its drafts start from them); null otherwise. An MTP state keeps its own head's last output in H.
        /// </summary>
        public readonly float[]? Hidden;
        public readonly float[] H, Cat;
        public Layer? AttnBlock;
        public readonly NaiveMlaCache? Naive;

        // Positions live in the latent cache (the base KvCache only counts them); the naive reference cache is not snapshotted.
        public override ICacheRows? Rows => Latent;
        public readonly float[] X, Xb, QA, Q, KvA, LatentRow, QAbs, OLat, AttnOut, Scores, Cos, Sin;
        public readonly byte[][] HeadInput;
        public readonly float[][] HeadRows;
        // feed-forward job: up to k routed experts + the shared expert as "slots"
        public readonly WeightMatrix[] SGate, SUp, SDown;
        public readonly float[] SWeight, G, U, DOut, RouterLogits, RouteWeights;
        public readonly int[] SStart, RouteExperts;
        public readonly byte[][] InGate, InUp, InDown;
        /// <summary>The input each slot's gate and up products read this step: its own buffer, or an earlier slot's when the formats match.</summary>
        public readonly byte[][] GateInput, UpInput;
        public int Slots;
        public readonly MoeRouter? Router;
        /// <summary>Batched-prefill activations, created by the first multi-token Forward.</summary>
        public PrefillScratch? Prefill;
        // matvec job
        public WeightMatrix? MvW;
        public byte[] MvInput;
        public float[] MvY = [];
        public Action<int, int>? MvBody, GateUpBody, DownBody, AttnBody, AbsorbBody, SegmentBody, ExpandBody;
        public int AttnLayer, AttnPos;
        /// <summary>Partial results of a segmented decode attention (segments × heads rows), grown on demand.</summary>
        public float[] AttnPartials = [];

        // mtpHead: a state of the MTP head (one block of cache), not of the trunk.
        public State(DeepSeek2 m, int capacity, bool naive, KvCacheType kvType, bool mtpHead = false) : base(new KvCache(0, capacity, 0), m.DsConfig.VocabSize)
        {
            // The base KvCache holds no tensors here: it only tracks Length (the position) for InferenceState.
            var c = m.DsConfig;
            int layers = mtpHead ? 1 : c.Layers;
            if (naive) Naive = new NaiveMlaCache(layers, capacity, c.Heads, c.QkHeadDim, c.VHeadDim);
            else Latent = new LatentKvCache(layers, capacity, c.KvLoraRank, c.QkRopeDim, kvType);
            Hidden = m._mtp != null && !mtpHead ? new float[checked(capacity * c.Dim)] : null;
            H = mtpHead ? new float[c.Dim] : [];
            Cat = mtpHead ? new float[2 * c.Dim] : [];
            X = new float[c.Dim];
            Xb = new float[Math.Max(c.Dim, c.Heads * c.VHeadDim)];
            QA = new float[Math.Max(1, c.QLoraRank)];
            Q = new float[c.Heads * c.QkHeadDim];
            KvA = new float[c.KvLoraRank + c.QkRopeDim];
            LatentRow = new float[c.KvLoraRank + c.QkRopeDim];
            QAbs = new float[c.Heads * (c.KvLoraRank + c.QkRopeDim)];
            OLat = new float[c.Heads * c.KvLoraRank];
            AttnOut = new float[c.Heads * c.VHeadDim];
            Scores = naive ? new float[checked(c.Heads * capacity)] : [];
            Cos = new float[c.QkRopeDim / 2];
            Sin = new float[c.QkRopeDim / 2];
            HeadInput = Enumerable.Range(0, c.Heads).Select(_ => new byte[m._headInputBytes]).ToArray();
            HeadRows = Enumerable.Range(0, c.Heads).Select(_ => new float[m._headRowFloats]).ToArray();
            int slots = m._maxSlots;
            SGate = new WeightMatrix[slots];
            SUp = new WeightMatrix[slots];
            SDown = new WeightMatrix[slots];
            SWeight = new float[slots];
            SStart = new int[slots + 1];
            G = new float[m._maxFfnRows];
            U = new float[m._maxFfnRows];
            DOut = new float[slots * c.Dim];
            InGate = Enumerable.Range(0, slots).Select(_ => new byte[m._maxInputBytes]).ToArray();
            InUp = Enumerable.Range(0, slots).Select(_ => new byte[m._maxInputBytes]).ToArray();
            InDown = Enumerable.Range(0, slots).Select(_ => new byte[m._maxInputBytes]).ToArray();
            GateInput = new byte[slots][];
            UpInput = new byte[slots][];
            MvInput = new byte[m._maxInputBytes];
            RouterLogits = new float[Math.Max(1, c.ExpertCount)];
            RouteExperts = new int[Math.Max(1, c.ExpertsUsed)];
            RouteWeights = new float[Math.Max(1, c.ExpertsUsed)];
            Router = c.ExpertCount > 0 ? new MoeRouter(c.Router) : null;
        }
    }

    // ---- forward -------------------------------------------------------------------------------------------

    public override ReadOnlySpan<float> Forward(InferenceState state, ReadOnlySpan<int> tokens)
    {
        var s = state as State ?? throw new ArgumentException("state was not created by this model");
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to feed");
        if (s.Position + tokens.Length > s.Capacity)
            throw new InvalidOperationException($"context full: {s.Position} + {tokens.Length} tokens exceed the context of {s.Capacity}");
        if (tokens.Length == 1 || s.Latent == null)
        {
            // Decode, and the naive reference path, go token by token.
            for (int i = 0; i < tokens.Length; i++)
                Step(s, tokens[i], computeLogits: i == tokens.Length - 1);
            return s.Logits;
        }
        foreach (int token in tokens)
            if ((uint)token >= (uint)DsConfig.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary ({DsConfig.VocabSize})");
        int batch = Math.Max(1, MaxBatch);
        for (int i = 0; i < tokens.Length; i += batch)
        {
            int n = Math.Min(batch, tokens.Length - i);
            Prefill(s, tokens.Slice(i, n), computeLogits: i + n == tokens.Length);
        }
        return s.Logits;
    }

    private void Step(State s, int token, bool computeLogits)
    {
        var c = DsConfig;
        if ((uint)token >= (uint)c.VocabSize) throw new ArgumentOutOfRangeException(nameof(token), $"token id {token} is outside the vocabulary ({c.VocabSize})");
        int pos = s.Position;
        _tokenEmbedding.GetRow(token, s.X);
        Yarn.Angles(pos, c.QkRopeDim, c.RopeBase, c.Yarn ? c.RopeScalingFactor : 1f, _yarnLow, _yarnHigh, s.Cos, s.Sin);
        var xb = s.Xb.AsSpan(0, c.Dim);

        for (int l = 0; l < _layers.Length; l++) RunBlock(s, _layers[l], l, l, pos);
        s.Cache.Length = pos + 1;
        MoeStats?.CountToken();

        if (computeLogits || s.Hidden != null)
        {
            Ops.RmsNorm(s.X, _outputNorm, c.RmsEps, xb);
            if (s.Hidden != null) xb.CopyTo(s.Hidden.AsSpan(pos * c.Dim, c.Dim));
            if (computeLogits) MatVec(s, _output, s.Xb, s.Logits);
        }
    }

    /// <summary>
    /// One pre-norm block on s.X at <paramref name="pos"/>: MLA over layer <paramref name="cacheLayer"/> of the
    /// state's cache, then the dense or MoE feed-forward. <paramref name="statsLayer"/> is the MoE statistics row (−1: none).
    /// </summary>
    private void RunBlock(State s, Layer L, int cacheLayer, int statsLayer, int pos)
    {
        var c = DsConfig;
        var xb = s.Xb.AsSpan(0, c.Dim);
        int l = cacheLayer;
        Ops.RmsNorm(s.X, L.AttnNorm, c.RmsEps, xb);
        // kv_a first: the query's first product reads the same normed row and reuses its prepared input.
        MatVec(s, L.WkvA, s.Xb, s.KvA);
        var wq = L.Wq ?? L.WqA!;
        MatVec(s, wq, s.Xb, L.Wq != null ? s.Q : s.QA, inputReady: wq.ReadsInputAs(L.WkvA));
        if (L.Wq == null)
        {
            Ops.RmsNorm(s.QA, L.QANorm!, c.RmsEps, s.QA);
            MatVec(s, L.WqB!, s.QA, s.Q);
        }
        // RoPE only on the decoupled part: each head's q_pe and the single shared k_pe, consecutive pairs (NORM).
        for (int h = 0; h < c.Heads; h++)
            Ops.Rope(s.Q.AsSpan(h * c.QkHeadDim + c.QkNopeDim, c.QkRopeDim), s.Cos, s.Sin, neox: false);
        var row = s.LatentRow.AsSpan();
        Ops.RmsNorm(s.KvA.AsSpan(0, c.KvLoraRank), L.KvANorm, c.RmsEps, row[..c.KvLoraRank]);
        s.KvA.AsSpan(c.KvLoraRank, c.QkRopeDim).CopyTo(row[c.KvLoraRank..]);
        Ops.Rope(row[c.KvLoraRank..], s.Cos, s.Sin, neox: false);
        s.Latent?.Write(l, pos, row);

        Attend(s, L, l, pos);

        MatVec(s, L.Wo, s.AttnOut, s.Xb);
        TensorPrimitives.Add(s.X, xb, s.X);

        Ops.RmsNorm(s.X, L.FfnNorm, c.RmsEps, xb);
        if (L.Router == null) SetDenseSlots(s, L);
        else SetMoeSlots(s, L, statsLayer);
        RunFfn(s, xb);
        TensorPrimitives.Add(s.X, xb, s.X);
    }

    // ---- feed-forward: dense, or routed experts + shared experts, as one batched job ----------------------

    private static void SetDenseSlots(State s, Layer L)
    {
        s.Slots = 1;
        s.SGate[0] = L.Gate!; s.SUp[0] = L.Up!; s.SDown[0] = L.Down!; s.SWeight[0] = 1f;
    }

    private void SetMoeSlots(State s, Layer L, int layer)
    {
        var c = DsConfig;
        MatVec(s, L.Router!, s.Xb, s.RouterLogits);
        s.Router!.Route(s.RouterLogits, L.RouterBias, s.RouteExperts, s.RouteWeights);
        if (layer >= 0) MoeStats?.Record(layer, s.RouteExperts);
        int k = c.ExpertsUsed;
        // Only the selected experts' slices of the 3-D tensors are read.
        for (int j = 0; j < k; j++)
        {
            int e = s.RouteExperts[j];
            s.SGate[j] = L.GateExps![e]; s.SUp[j] = L.UpExps![e]; s.SDown[j] = L.DownExps![e]; s.SWeight[j] = s.RouteWeights[j];
        }
        s.Slots = k;
        if (L.GateShared != null)
        {
            s.SGate[k] = L.GateShared; s.SUp[k] = L.UpShared!; s.SDown[k] = L.DownShared!; s.SWeight[k] = 1f;
            s.Slots = k + 1;
        }
    }

    /// <summary>
    /// out = Σ_slot w_slot · down_slot(silu(gate_slot·x) ⊙ up_slot·x). All gate/up rows of all slots are one parallel
    /// loop and all down rows another, so a decode step pays two hand-offs to the workers instead of three per expert.
    /// </summary>
    private void RunFfn(State s, Span<float> x)
    {
        int dim = DsConfig.Dim;
        s.SStart[0] = 0;
        // Every gate and up product reads the same x: quantized once for all slots whose matrices read the same
        // format (all of them in the usual mixes), not twice per slot (14 Q8_K quantizations a layer, on the caller's
        // thread while the worker waits, for DeepSeek-V2-Lite's 6 + 1 slots).
        WeightMatrix? prepared = null;
        byte[] preparedInput = [];
        for (int j = 0; j < s.Slots; j++)
        {
            s.SStart[j + 1] = s.SStart[j] + s.SGate[j].Rows;
            s.GateInput[j] = PrepareOnce(s.SGate[j], x, s.InGate[j], ref prepared, ref preparedInput);
            s.UpInput[j] = PrepareOnce(s.SUp[j], x, s.InUp[j], ref prepared, ref preparedInput);
        }
        int total = s.SStart[s.Slots];
        s.GateUpBody ??= (r0, r1) => GateUpRows(s, r0, r1);
        Pool.For(2 * total, s.GateUpBody, minPerThread: Math.Max(1, 32768 / dim), align: Interleaving.Rows);
        // x is Xb's first dim floats (the normed row); the adapters' deltas go in before the activation.
        var lora = new LoraRows(s, null);
        bool adapted = lora.Any;
        if (adapted)
            for (int j = 0; j < s.Slots; j++)
            {
                LoraJobOf(s).Add(s.SGate[j], lora, s.Xb, 0, dim, s.G, s.SStart[j], 0, 1);
                LoraJobOf(s).Add(s.SUp[j], lora, s.Xb, 0, dim, s.U, s.SStart[j], 0, 1);
            }
        Ops.SwiGlu(s.G.AsSpan(0, total), s.U.AsSpan(0, total));
        for (int j = 0; j < s.Slots; j++)
            s.SDown[j].PrepareInput(s.G.AsSpan(s.SStart[j], s.SGate[j].Rows), s.InDown[j]);
        s.DownBody ??= (r0, r1) => DownRows(s, r0, r1);
        Pool.For(s.Slots * dim, s.DownBody, minPerThread: Math.Max(1, 32768 / Math.Max(1, total / s.Slots)), align: Interleaving.Rows);
        if (adapted)
            for (int j = 0; j < s.Slots; j++)
                LoraJobOf(s).Add(s.SDown[j], lora, s.G, s.SStart[j], 0, s.DOut, j * dim, 0, 1);
        x.Clear();
        for (int j = 0; j < s.Slots; j++) TensorPrimitives.MultiplyAdd(s.DOut.AsSpan(j * dim, dim), s.SWeight[j], x, x);
    }

    /// <summary>x prepared for <paramref name="w"/>: the input last prepared when it reads the same format, else prepared into <paramref name="own"/>.</summary>
    private static byte[] PrepareOnce(WeightMatrix w, ReadOnlySpan<float> x, byte[] own, ref WeightMatrix? prepared, ref byte[] preparedInput)
    {
        if (prepared != null && w.ReadsInputAs(prepared)) return preparedInput;
        w.PrepareInput(x, own);
        prepared = w;
        preparedInput = own;
        return own;
    }

    private static void GateUpRows(State s, int r0, int r1)
    {
        int total = s.SStart[s.Slots];
        for (int half = 0; half < 2; half++)
        {
            int a = Math.Max(r0, half * total) - half * total, b = Math.Min(r1, (half + 1) * total) - half * total;
            for (int j = 0; j < s.Slots && a < b; j++)
            {
                int st = s.SStart[j], en = s.SStart[j + 1];
                int lo = Math.Max(a, st), hi = Math.Min(b, en);
                if (lo >= hi) continue;
                if (half == 0) s.SGate[j].MatVecRows(s.GateInput[j], s.G.AsSpan(st), lo - st, hi - st);
                else s.SUp[j].MatVecRows(s.UpInput[j], s.U.AsSpan(st), lo - st, hi - st);
            }
        }
    }

    private void DownRows(State s, int r0, int r1)
    {
        int dim = DsConfig.Dim;
        for (int j = r0 / dim; j < s.Slots && j * dim < r1; j++)
        {
            int lo = Math.Max(r0, j * dim) - j * dim, hi = Math.Min(r1, (j + 1) * dim) - j * dim;
            s.SDown[j].MatVecRows(s.InDown[j], s.DOut.AsSpan(j * dim, dim), lo, hi);
        }
    }

    /// <summary>y = w·x on the pool; with <paramref name="inputReady"/> s.MvInput already holds x as w reads it (the previous product read the same x in the same format).</summary>
    private void MatVec(State s, WeightMatrix w, float[] x, float[] y, bool inputReady = false)
    {
        if (!inputReady) w.PrepareInput(x, s.MvInput);
        s.MvW = w;
        s.MvY = y;
        s.MvBody ??= (r0, r1) => s.MvW!.MatVecRows(s.MvInput, s.MvY, r0, r1);
        // Small matrices are cheaper on one thread than the hand-off to workers.
        Pool.For(w.Rows, s.MvBody, minPerThread: Math.Max(1, 32768 / Math.Max(1, w.Cols)), align: Interleaving.Rows);
        if (w.Lora != null) LoraJobOf(s).Add(w, new LoraRows(s, null), x, 0, w.Cols, y, 0, w.Rows, 1);
    }

    private LoraJob LoraJobOf(State s) => s.LoraJob ??= new LoraJob(Pool);
}
