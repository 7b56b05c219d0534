using Sputnik.Tensors;

namespace Sputnik.Models;

// Grouped-query attention for a batch of tokens with causal masking, in parallel over (token block, kv head) items;
// the arithmetic is FlashAttention's, reading the cache in its own format.
internal abstract partial class DecoderModel
{
    // Query tokens handled together by one work item: every key/value tile is decoded once per block (and per
    // GQA group) instead of once per token and head, which is what keeps a compact cache cheap for long prompts.
    private const int TokenBlock = 16;

    /// <summary>
    /// Sliding-window size per layer (a token at position p sees p − window + 1 … p; 0 = the whole context), set by
    /// architectures that interleave local and global layers in their constructor; null when every layer sees
    /// everything. <see cref="CreateState"/> gives each window layer a ring cache of window + <see cref="MaxBatch"/> − 1 rows.
    /// </summary>
    internal int[]? LayerWindows { get; set; }

    /// <summary>Scale of q·k per layer (gemma3 states its own); null: 1/√head size everywhere.</summary>
    internal float[]? LayerScales { get; set; }

    /// <summary>
    /// Whether a token sees only the positions up to its own (a decoder); an encoder (bert) attends both ways, and
    /// runs only as packed sequences, each whole in one pass (<see cref="ForwardHiddenPacked"/>).
    /// </summary>
    protected virtual bool Causal => true;

    /// <summary>Per layer, one attention-sink logit per query head (gpt-oss's attn_sinks); null when the model has none.</summary>
    internal float[][]? LayerSinks { get; set; }

    private int WindowOf(int layer) => LayerWindows is { } w ? w[layer] : 0;

    private float ScaleOf(int layer) => LayerScales is { } s ? s[layer] : 1f / MathF.Sqrt(Config.HeadDim);

    private void Attention(DecoderState s, int layer, int pos0, int n)
    {
        var c = Config;
        s.AttnLayer = layer;
        s.AttnPos0 = pos0;
        s.AttnTokens = n;
        int window = WindowOf(layer), group = c.Heads / c.KvHeads;
        if (s.Seqs != null)
        {
            // Multi-sequence decode: one token per sequence, each against its own cache; an item is (sequence, kv head).
            long total = 0;
            for (int b = 0; b < n; b++) total += Seen(s.Seqs[b].Position, window);
            long perSeqItem = total / n * c.HeadDim * group * 2;
            Pool.For(n * c.KvHeads, s.AttnBody!, minPerThread: (int)Math.Clamp(65536 / Math.Max(1, perSeqItem), 1, n * c.KvHeads));
            s.ActSource = null;
            return;
        }
        if (s.PackedCount > 0)
        {
            // Packed sequences: an item is (block of one sequence's rows, kv head), each against its sequence's rows.
            int packedItems = s.PackedBlockCount * c.KvHeads;
            long perBlock = (long)(n / s.PackedCount) * c.HeadDim * group * 2 * Math.Min(n, TokenBlock);
            Pool.For(packedItems, s.AttnBody!, minPerThread: (int)Math.Clamp(65536 / Math.Max(1, perBlock), 1, packedItems));
            s.ActSource = null;
            return;
        }
        if (n == 1 && FlashAttention.Segments(pos0, window) > 1)
        {
            SegmentedAttention(s, layer, pos0, window);
            return;
        }
        int blocks = (n + TokenBlock - 1) / TokenBlock;
        int items = blocks * c.KvHeads;
        // Work of one item: the keys and values it reads times the query rows sharing them. Short contexts of
        // tiny models (stories260K) stay on the calling thread; long ones split across heads and token blocks.
        long perItem = (long)Seen(pos0 + (n + 1) / 2, window) * c.HeadDim * group * 2 * Math.Min(n, TokenBlock);
        int minItems = (int)Math.Clamp(65536 / Math.Max(1, perItem), 1, items);
        Pool.For(items, s.AttnBody!, minPerThread: minItems);
        s.ActSource = null; // AttnOut was rewritten
    }

    /// <summary>
    /// One token over a context longer than a segment: items are (kv head, segment), so even a model with two KV
    /// heads gives every thread a share (and a descheduled thread's share is taken by the others); the partial
    /// results are merged per head afterwards, in segment order, which gives the bits one Attend call would.
    /// </summary>
    private void SegmentedAttention(DecoderState s, int layer, int pos, int window)
    {
        var c = Config;
        int segments = FlashAttention.Segments(pos, window), group = c.Heads / c.KvHeads, hd = c.HeadDim;
        int rowFloats = group * FlashAttention.PartialFloats(hd), items = segments * c.KvHeads;
        if (s.AttnPartials.Length < items * rowFloats)
            s.AttnPartials = new float[Math.Max(items * rowFloats, 2 * s.AttnPartials.Length)]; // grows a logarithmic number of times
        s.AttnSegments = segments;
        long perItem = (long)FlashAttention.Segment * hd * group * 2;
        Pool.For(items, s.AttnSegmentBody!, minPerThread: (int)Math.Clamp(65536 / Math.Max(1, perItem), 1, items));
        for (int g = 0; g < c.KvHeads; g++)
            FlashAttention.MergeSegments(s.AttnPartials.AsSpan(g * segments * rowFloats, segments * rowFloats), segments, group,
                s.Cache.ValueHead(SlotOf(layer), g * hd, hd), s.AttnOut.AsSpan(g * group * hd, group * hd),
                LayerSinks is { } ls ? ls[layer].AsSpan(g * group, group) : default);
        s.ActSource = null; // AttnOut was rewritten
    }

    /// <summary>
    /// Items [i0, i1) of <see cref="SegmentedAttention"/>: item j·kvHeads + g is segment j of kv head g (its partial
    /// result at g·segments + j). The heads of one segment are neighbours, so a thread's contiguous chunk reads the
    /// cache rows of its positions for every head in turn: each 4 KiB page of the cache (a few positions of every
    /// head) is walked by one thread, not by each thread for its own heads.
    /// </summary>
    private void AttendSegmentItems(DecoderState s, int i0, int i1)
    {
        var c = Config;
        int layer = s.AttnLayer, pos = s.AttnPos0, segments = s.AttnSegments, hd = c.HeadDim, group = c.Heads / c.KvHeads;
        int rowFloats = group * FlashAttention.PartialFloats(hd);
        for (int item = i0; item < i1; item++)
        {
            int g = item % c.KvHeads, j = item / c.KvHeads;
            FlashAttention.AttendSegment(s.Cache.KeyHead(SlotOf(layer), g * hd, hd), s.Cache.ValueHead(SlotOf(layer), g * hd, hd),
                s.Q.AsSpan(g * group * hd, group * hd), s.AttnPartials.AsSpan((g * segments + j) * rowFloats, rowFloats),
                group, pos, WindowOf(layer), ScaleOf(layer), j);
        }
    }

    private static int Seen(int pos, int window) => pos + 1 - FlashAttention.WindowStart(pos, window);

    private void AttendItems(DecoderState s, int i0, int i1)
    {
        var c = Config;
        int n = s.AttnTokens, kvHeads = c.KvHeads, hd = c.HeadDim, group = c.Heads / kvHeads, layer = s.AttnLayer;
        int window = WindowOf(layer);
        float scale = ScaleOf(layer);
        var seqs = s.Seqs;
        for (int item = i0; item < i1; item++)
        {
            int g = item % kvHeads, k = item / kvHeads, b0, b1, pos0;
            KvCache cache;
            if (s.PackedCount > 0)
            {
                // Block k of one packed sequence: its keys are the cache rows from the sequence's first row on.
                var blk = s.PackedBlocks.AsSpan(4 * k, 4);
                (b0, b1) = (blk[0], blk[1]);
                int seqStart = blk[2];
                pos0 = b0 - seqStart;
                int keyEnd = Causal ? 0 : blk[3] - seqStart;
                int qAt = b0 * c.QDim + g * group * hd;
                var packedSinks = LayerSinks is { } ps ? ps[layer].AsSpan(g * group, group) : default;
                FlashAttention.Attend(s.Cache.KeyHead(SlotOf(layer), g * hd, hd).From(seqStart), s.Cache.ValueHead(SlotOf(layer), g * hd, hd).From(seqStart),
                    s.Q.AsSpan(qAt), c.QDim, s.AttnOut.AsSpan(qAt), c.QDim, b1 - b0, group, pos0, window, scale, FlashAttention.BestWidth, packedSinks, keyEnd);
                continue;
            }
            if (seqs != null)
            {
                // Row k is one token of sequence k, at that sequence's own position.
                cache = seqs[k].Cache;
                (b0, b1, pos0) = (k, k + 1, seqs[k].Position);
            }
            else
            {
                // Interleave early (short) and late (long) blocks so contiguous item ranges get similar work.
                int blocks = (n + TokenBlock - 1) / TokenBlock;
                int b = (k & 1) == 0 ? k >> 1 : blocks - 1 - (k >> 1);
                cache = s.Cache;
                (b0, b1) = (b * TokenBlock, Math.Min(n, (b + 1) * TokenBlock));
                pos0 = s.AttnPos0 + b0;
            }
            int at = b0 * c.QDim + g * group * hd;
            var sinks = LayerSinks is { } ls ? ls[layer].AsSpan(g * group, group) : default;
            FlashAttention.Attend(cache.KeyHead(SlotOf(layer), g * hd, hd), cache.ValueHead(SlotOf(layer), g * hd, hd),
                s.Q.AsSpan(at), c.QDim, s.AttnOut.AsSpan(at), c.QDim, b1 - b0, group, pos0, window, scale, sinks);
        }
    }
}
