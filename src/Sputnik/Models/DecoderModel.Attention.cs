using System.Numerics.Tensors;

namespace Sputnik.Models;

// Grouped-query attention for a batch of tokens with causal masking, in parallel over (token, kv head) items.
internal abstract partial class DecoderModel
{
    // Positions of one head converted from the cache format to float at a time: 64 × head size floats stay in L1.
    private const int KvChunk = 64;

    // Per-thread scratch, allocated once per thread (and when a longer context shows up), never per token.
    [ThreadStatic] private static float[]? t_scores, t_kv, t_sums;

    // Query tokens handled together by one work item: every key/value chunk is converted once per block instead
    // of once per token, which is what keeps an F16/Q8_0 cache cheap for long prompts.
    private const int TokenBlock = 16;

    private void Attention(DecoderState s, int layer, int pos0, int n)
    {
        var c = Config;
        s.AttnLayer = layer;
        s.AttnPos0 = pos0;
        s.AttnTokens = n;
        if (s.Seqs != null)
        {
            // Multi-sequence decode: one token per sequence, each against its own cache; an item is (sequence, kv head).
            long total = 0;
            for (int b = 0; b < n; b++) total += s.Seqs[b].Position + 1;
            long perSeqItem = total / n * c.HeadDim * (c.Heads / c.KvHeads) * 2;
            Pool.For(n * c.KvHeads, s.AttnBody!, minPerThread: (int)Math.Clamp(65536 / Math.Max(1, perSeqItem), 1, n * c.KvHeads));
            s.ActSource = null;
            return;
        }
        int blocks = (n + TokenBlock - 1) / TokenBlock;
        int items = blocks * c.KvHeads;
        // Work of one item: the keys and values it reads times the query heads sharing them. Short contexts of
        // tiny models (stories260K) stay on the calling thread; long ones split across heads and token blocks.
        long perItem = (long)(pos0 + (n + 1) / 2) * c.HeadDim * (c.Heads / c.KvHeads) * 2 * Math.Min(n, TokenBlock);
        int minItems = (int)Math.Clamp(65536 / Math.Max(1, perItem), 1, items);
        Pool.For(items, s.AttnBody!, minPerThread: minItems);
        s.ActSource = null; // AttnOut was rewritten
    }

    private void AttendItems(DecoderState s, int i0, int i1)
    {
        var c = Config;
        int n = s.AttnTokens, kvHeads = c.KvHeads, hd = c.HeadDim, group = c.Heads / kvHeads;
        var seqs = s.Seqs;
        int blocks = (n + TokenBlock - 1) / TokenBlock;
        int rows = group * (seqs != null ? 1 : Math.Min(n, TokenBlock));
        int cap = seqs != null ? s.SeqsCapacity : s.Capacity;
        if (t_scores == null || t_scores.Length < rows * cap) t_scores = new float[rows * cap];
        if (t_kv == null || t_kv.Length < KvChunk * hd) t_kv = new float[KvChunk * hd];
        if (t_sums == null || t_sums.Length < rows) t_sums = new float[rows];
        if (seqs != null)
        {
            for (int item = i0; item < i1; item++)
            {
                int g = item % kvHeads, b = item / kvHeads;
                var seq = seqs[b];
                // Row b sits at its own sequence's position: shift = position − row.
                AttendBlock(s, seq.Cache, seq.Position - b, b, b + 1, g, cap, t_scores, t_kv, t_sums);
            }
            return;
        }
        for (int item = i0; item < i1; item++)
        {
            int g = item % kvHeads, k = item / kvHeads;
            // Interleave early (short) and late (long) blocks so contiguous item ranges get similar work.
            int b = (k & 1) == 0 ? k >> 1 : blocks - 1 - (k >> 1);
            AttendBlock(s, s.Cache, s.AttnPos0, b * TokenBlock, Math.Min(n, (b + 1) * TokenBlock), g, cap, t_scores, t_kv, t_sums);
        }
    }

    /// <summary>
    /// Tokens [b0, b1) of the batch, query heads of kv head g: softmax(q·Kᵀ/√d) V over positions 0..pos0+i of
    /// <paramref name="cache"/> for token i (row i sits at position pos0 + i), or only its last AttnWindow positions
    /// in a sliding-window layer (llama.cpp's mask: p sees p − window + 1 … p). The masks are loop bounds,
    /// the 1/√d scale is applied as the scores are produced, and the
    /// softmax normalization is folded into the output (one multiply per head instead of one per score).
    /// Scores of (token i, head j) live in row (i − b0)·group + j of <paramref name="scoreBuf"/>, <paramref name="cap"/> apart.
    /// </summary>
    private void AttendBlock(DecoderState s, KvCache cache, int pos0, int b0, int b1, int g, int cap, float[] scoreBuf, float[] kvBuf, float[] sums)
    {
        var c = Config;
        int hd = c.HeadDim, group = c.Heads / c.KvHeads, layer = s.AttnLayer;
        int maxLen = pos0 + b1, window = s.AttnWindow;
        float scale = s.AttnScale;
        // First position token i sees; scores live at their absolute position in each row.
        int First(int i) => window > 0 ? Math.Max(0, pos0 + i - window + 1) : 0;

        for (int t0 = First(b0); t0 < maxLen; t0 += KvChunk)
        {
            int cnt = Math.Min(KvChunk, maxLen - t0);
            var keys = cache.KeysAsFloat(layer, t0, cnt, g * hd, hd, kvBuf, out int ks);
            for (int i = Math.Max(b0, t0 - pos0); i < b1; i++) // tokens that see at least position t0
            {
                int from = Math.Max(0, First(i) - t0), upto = Math.Min(cnt, pos0 + i + 1 - t0);
                for (int j = 0; j < group; j++)
                {
                    var q = s.Q.AsSpan(i * c.QDim + (g * group + j) * hd, hd);
                    var scores = scoreBuf.AsSpan(((i - b0) * group + j) * cap + t0, upto);
                    for (int t = from; t < upto; t++) scores[t] = TensorPrimitives.Dot(q, keys.Slice(t * ks, hd)) * scale;
                }
            }
        }

        for (int i = b0; i < b1; i++)
        {
            int first = First(i), len = pos0 + i + 1 - first;
            for (int j = 0; j < group; j++)
            {
                int row = (i - b0) * group + j;
                var scores = scoreBuf.AsSpan(row * cap + first, len);
                float max = TensorPrimitives.Max(scores);
                TensorPrimitives.Subtract(scores, max, scores);
                TensorPrimitives.Exp(scores, scores);
                sums[row] = TensorPrimitives.Sum(scores);
                s.AttnOut.AsSpan(i * c.QDim + (g * group + j) * hd, hd).Clear();
            }
        }

        for (int t0 = First(b0); t0 < maxLen; t0 += KvChunk)
        {
            int cnt = Math.Min(KvChunk, maxLen - t0);
            var values = cache.ValuesAsFloat(layer, t0, cnt, g * hd, hd, kvBuf, out int vs);
            for (int i = Math.Max(b0, t0 - pos0); i < b1; i++)
            {
                int from = Math.Max(0, First(i) - t0), upto = Math.Min(cnt, pos0 + i + 1 - t0);
                for (int j = 0; j < group; j++)
                {
                    var o = s.AttnOut.AsSpan(i * c.QDim + (g * group + j) * hd, hd);
                    var p = scoreBuf.AsSpan(((i - b0) * group + j) * cap + t0, upto);
                    for (int t = from; t < upto; t++) TensorPrimitives.MultiplyAdd(values.Slice(t * vs, hd), p[t], o, o);
                }
            }
        }

        for (int i = b0; i < b1; i++)
            for (int j = 0; j < group; j++)
            {
                var o = s.AttnOut.AsSpan(i * c.QDim + (g * group + j) * hd, hd);
                TensorPrimitives.Multiply(o, 1f / sums[(i - b0) * group + j], o);
            }
    }
}
