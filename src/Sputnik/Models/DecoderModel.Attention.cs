using System.Numerics.Tensors;

namespace Sputnik.Models;

// Grouped-query attention for a batch of tokens with causal masking, in parallel over (token, kv head) items.
public sealed partial class DecoderModel
{
    // Positions of one head converted from the cache format to float at a time: 64 × head size floats stay in L1.
    private const int KvChunk = 64;

    // Per-thread scratch, allocated once per thread (and when a longer context shows up), never per token.
    [ThreadStatic] private static float[]? t_scores, t_kv, t_sums;

    private void Attention(DecoderState s, int layer, int pos0, int n)
    {
        var c = Config;
        s.AttnLayer = layer;
        s.AttnPos0 = pos0;
        s.AttnTokens = n;
        int items = n * c.KvHeads;
        // Work of one item: the keys and values it reads times the query heads sharing them. Short contexts of
        // tiny models (stories260K) stay on the calling thread; long ones split across heads and tokens.
        long perItem = (long)(pos0 + (n + 1) / 2) * c.HeadDim * (c.Heads / c.KvHeads) * 2;
        int minItems = (int)Math.Clamp(65536 / Math.Max(1, perItem), 1, items);
        Pool.For(items, s.AttnBody!, minPerThread: minItems);
        s.ActSource = null; // AttnOut was rewritten
    }

    private void AttendItems(DecoderState s, int i0, int i1)
    {
        var c = Config;
        int n = s.AttnTokens, kvHeads = c.KvHeads, hd = c.HeadDim, group = c.Heads / kvHeads;
        if (t_scores == null || t_scores.Length < group * s.Capacity) t_scores = new float[group * s.Capacity];
        if (t_kv == null || t_kv.Length < KvChunk * hd) t_kv = new float[KvChunk * hd];
        if (t_sums == null || t_sums.Length < group) t_sums = new float[group];
        for (int item = i0; item < i1; item++)
        {
            int g = item % kvHeads, k = item / kvHeads;
            // Interleave early (short) and late (long) tokens so contiguous item ranges get similar work.
            int i = (k & 1) == 0 ? k >> 1 : n - 1 - (k >> 1);
            AttendOne(s, i, g, t_scores, t_kv, t_sums);
        }
    }

    /// <summary>
    /// Token i of the batch, query heads of kv head g: softmax(q·Kᵀ/√d) V over positions 0..pos0+i. The causal mask
    /// is the loop bound, the 1/√d scale is applied as the scores are produced, and the softmax normalization is
    /// folded into the output (one multiply per head instead of one per score).
    /// </summary>
    private void AttendOne(DecoderState s, int i, int g, float[] scoreBuf, float[] kvBuf, float[] sums)
    {
        var c = Config;
        int hd = c.HeadDim, group = c.Heads / c.KvHeads, layer = s.AttnLayer;
        int len = s.AttnPos0 + i + 1;
        float scale = 1f / MathF.Sqrt(hd);
        var cache = s.Cache;

        for (int t0 = 0; t0 < len; t0 += KvChunk)
        {
            int cnt = Math.Min(KvChunk, len - t0);
            var keys = cache.KeysAsFloat(layer, t0, cnt, g * hd, hd, kvBuf, out int ks);
            for (int j = 0; j < group; j++)
            {
                var q = s.Q.AsSpan(i * c.QDim + (g * group + j) * hd, hd);
                var scores = scoreBuf.AsSpan(j * len + t0, cnt);
                for (int t = 0; t < cnt; t++) scores[t] = TensorPrimitives.Dot(q, keys.Slice(t * ks, hd)) * scale;
            }
        }

        for (int j = 0; j < group; j++)
        {
            var scores = scoreBuf.AsSpan(j * len, len);
            float max = TensorPrimitives.Max(scores);
            TensorPrimitives.Subtract(scores, max, scores);
            TensorPrimitives.Exp(scores, scores);
            sums[j] = TensorPrimitives.Sum(scores);
            s.AttnOut.AsSpan(i * c.QDim + (g * group + j) * hd, hd).Clear();
        }

        for (int t0 = 0; t0 < len; t0 += KvChunk)
        {
            int cnt = Math.Min(KvChunk, len - t0);
            var values = cache.ValuesAsFloat(layer, t0, cnt, g * hd, hd, kvBuf, out int vs);
            for (int j = 0; j < group; j++)
            {
                var o = s.AttnOut.AsSpan(i * c.QDim + (g * group + j) * hd, hd);
                var p = scoreBuf.AsSpan(j * len + t0, cnt);
                for (int t = 0; t < cnt; t++) TensorPrimitives.MultiplyAdd(values.Slice(t * vs, hd), p[t], o, o);
            }
        }

        for (int j = 0; j < group; j++)
        {
            var o = s.AttnOut.AsSpan(i * c.QDim + (g * group + j) * hd, hd);
            TensorPrimitives.Multiply(o, 1f / sums[j], o);
        }
    }
}
