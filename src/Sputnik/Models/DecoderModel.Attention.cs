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
    /// architectures that interleave local and global layers; null when every layer sees everything.
    /// </summary>
    internal int[]? LayerWindows { get; set; }

    /// <summary>Scale of q·k per layer (gemma3 states its own); null: 1/√head size everywhere.</summary>
    internal float[]? LayerScales { get; set; }

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
        int blocks = (n + TokenBlock - 1) / TokenBlock;
        int items = blocks * c.KvHeads;
        // Work of one item: the keys and values it reads times the query rows sharing them. Short contexts of
        // tiny models (stories260K) stay on the calling thread; long ones split across heads and token blocks.
        long perItem = (long)Seen(pos0 + (n + 1) / 2, window) * c.HeadDim * group * 2 * Math.Min(n, TokenBlock);
        int minItems = (int)Math.Clamp(65536 / Math.Max(1, perItem), 1, items);
        Pool.For(items, s.AttnBody!, minPerThread: minItems);
        s.ActSource = null; // AttnOut was rewritten
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
            FlashAttention.Attend(cache.KeyHead(SlotOf(layer), g * hd, hd), cache.ValueHead(SlotOf(layer), g * hd, hd),
                s.Q.AsSpan(at), c.QDim, s.AttnOut.AsSpan(at), c.QDim, b1 - b0, group, pos0, window, scale);
        }
    }
}
