using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// Per-sequence scratch of <see cref="DecoderModel"/>: row-major activations for a batch of tokens (grown on demand
/// up to the largest batch fed, so a decode-only state stays small), the RoPE table for the state's capacity, and
/// the fields the cached worker delegates read (no closure is allocated per call).
/// </summary>
internal sealed class DecoderState : InferenceState
{
    private readonly ModelConfig _c;

    // slidingRopeFreqs: the sliding-window layers' own frequencies (gemma3's local RoPE base), if any.
    public DecoderState(KvCache cache, ModelConfig c, double[] ropeFreqs, float ropeMagnitude = 1f, double[]? slidingRopeFreqs = null)
        : base(cache, c.VocabSize)
    {
        _c = c;
        (RopeCos, RopeSin) = RopeTable(cache.Capacity, ropeFreqs, ropeMagnitude);
        (SlidingRopeCos, SlidingRopeSin) = slidingRopeFreqs == null ? (RopeCos, RopeSin) : RopeTable(cache.Capacity, slidingRopeFreqs, 1f);
    }

    // cos/sin for every position this state can hold, computed once: capacity × RopeDims floats in total.
    private static (float[] Cos, float[] Sin) RopeTable(int capacity, double[] freqs, float magnitude)
    {
        int pairs = freqs.Length;
        var cos = new float[(long)capacity * pairs];
        var sin = new float[(long)capacity * pairs];
        for (int pos = 0; pos < capacity; pos++)
            for (int i = 0; i < pairs; i++)
            {
                double theta = pos * freqs[i];
                cos[pos * pairs + i] = (float)(Math.Cos(theta) * magnitude);
                sin[pos * pairs + i] = (float)(Math.Sin(theta) * magnitude);
            }
        return (cos, sin);
    }

    public readonly float[] RopeCos, RopeSin;
    /// <summary>The tables of sliding-window layers: the same arrays as RopeCos/RopeSin unless their frequencies differ.</summary>
    public readonly float[] SlidingRopeCos, SlidingRopeSin;

    /// <summary>Tokens the activation buffers hold.</summary>
    public int Batch { get; private set; }

    public float[] X = [], Xb = [], Q = [], K = [], V = [], AttnOut = [], H1 = [], H3 = [];
    public byte[] Act = [];

    public void EnsureBatch(int tokens, int maxInputBytes)
    {
        if (tokens <= Batch) return;
        var c = _c;
        X = new float[tokens * c.Dim];
        Xb = new float[tokens * Math.Max(c.Dim, c.QDim)];
        Q = new float[tokens * c.QDim];
        K = new float[tokens * c.KvDim];
        V = new float[tokens * c.KvDim];
        AttnOut = new float[tokens * c.QDim];
        int ffn = c.Moe == null ? c.FfnDim : 0; // experts keep their hidden rows in ExpertBatch
        H1 = new float[tokens * ffn];
        H3 = new float[tokens * ffn];
        Act = new byte[checked(tokens * maxInputBytes)];
        Batch = tokens;
    }

    // The activation buffer holds Source (tokens × cols) prepared for weights of ActType; reused by Q/K/V and gate/up.
    public float[]? ActSource;
    public GgmlType ActType;
    public int ActTokens;

    // Current jobs for the worker pool.
    public WeightMatrix? MmW;
    public float[] MmX = [], MmY = [];
    public int MmTokens;
    public Action<int, int>? MmBody, PrepBody, SwiGluBody, GeGluBody, GeluBody, AttnBody, SharedBody;
    // Matrices and outputs of a shared-input product (Q/K/V or gate/up in one hand-off).
    public readonly WeightMatrix?[] SharedW = new WeightMatrix?[3];
    public readonly float[][] SharedY = [[], [], []];
    public int SharedCount;
    public int AttnPos0, AttnLayer, AttnTokens;
    // Single-token decode split over (kv head, segment) items: their partial results, merged after the hand-off.
    public Action<int, int>? AttnSegmentBody;
    public float[] AttnPartials = [];
    public int AttnSegments;

    // Multi-sequence decode (this state is then the model's shared scratch): row i of the batch belongs to Seqs[i];
    // SeqsCapacity is their largest capacity (the stride of the per-thread score rows).
    public IReadOnlyList<InferenceState>? Seqs;
    public int SeqsCapacity;
    /// <summary>
    /// Packed sequences (a batch of embedding inputs in one pass): how many there are (0 when the batch is one
    /// sequence or a multi-sequence decode step); row i is token PackedPos[i] of its own sequence and writes cache
    /// row i, and each attention block of rows is (first row, end row, its sequence's first row, its sequence's end)
    /// in PackedBlocks, so no block straddles two sequences.
    /// </summary>
    public int PackedCount;
    public int PackedBlockCount;
    public int[] PackedPos = [], PackedBlocks = [];

    /// <summary>Lays out <paramref name="lengths"/> sequences one after another, cut into attention blocks of at most <paramref name="block"/> rows.</summary>
    public void Pack(ReadOnlySpan<int> lengths, int block)
    {
        int rows = 0, blocks = 0;
        foreach (int len in lengths)
        {
            rows += len;
            blocks += (len + block - 1) / block;
        }
        if (PackedPos.Length < rows) PackedPos = new int[rows];
        if (PackedBlocks.Length < 4 * blocks) PackedBlocks = new int[4 * blocks];
        int start = 0, b = 0;
        foreach (int len in lengths)
        {
            for (int j = 0; j < len; j++) PackedPos[start + j] = j;
            for (int j = 0; j < len; j += block)
            {
                PackedBlocks[b++] = start + j;
                PackedBlocks[b++] = start + Math.Min(len, j + block);
                PackedBlocks[b++] = start;
                PackedBlocks[b++] = start + len;
            }
            start += len;
        }
        PackedCount = lengths.Length;
        PackedBlockCount = blocks;
    }

    /// <summary>Routing and expert buffers of a MoE model, created by its first forward.</summary>
    public MoeScratch? Moe;

    /// <summary>Router logits, picks and weights for a batch of rows (grown on demand), and the grouped expert runner.</summary>
    internal sealed class MoeScratch(WorkerPool pool, ModelConfig c)
    {
        public readonly MoeRouter Router = new(c.Moe!);
        public readonly ExpertBatch Batch = new(pool, c.Dim, c.Moe!.ExpertCount + 1); // + a shared expert's slot (qwen35moe)
        public float[] Logits = [], Weights = [];
        public int[] Experts = [];

        public void Reserve(int rows)
        {
            int k = c.Moe!.ExpertsUsed;
            if (Experts.Length >= rows * k) return;
            Logits = new float[rows * c.Moe.ExpertCount];
            Experts = new int[rows * k];
            Weights = new float[rows * k];
        }
    }

    /// <summary>Logits of every row of a multi-sequence step (rows × vocab), before they are copied to each sequence.</summary>
    public float[] BatchLogits = [];

    /// <summary>Projected queries with their output gates, per head [query | gate] (qwen35's gated attention), grown on demand.</summary>
    public float[] QGate = [];

    /// <summary>The recurrent layers' state of this sequence (qwen35's Gated DeltaNet); null for attention-only models.</summary>
    public RecurrentState? Recurrent;

    /// <summary>Activations of the recurrent layers for a batch of rows, created by their first forward.</summary>
    public GatedDeltaNet.Scratch? DeltaNet;

    // Only what is attention cache can be cut back anywhere; a recurrent state goes back to its checkpoints.
    public override ICacheRows? Rows => Recurrent == null ? base.Rows : null;

    public override int Restorable(int length) =>
        Recurrent == null ? base.Restorable(length) : Recurrent.Restorable(Math.Clamp(length, 0, Position), Position);

    public override int Truncate(int length)
    {
        if (Recurrent == null) return base.Truncate(length);
        length = Math.Clamp(length, 0, Position);
        Recurrent.RestoreTo(length, Position);
        return Cache.Length = length;
    }

    public override void RequestCheckpoint(int length) => Recurrent?.RequestCheckpoint(length, Position);
}
