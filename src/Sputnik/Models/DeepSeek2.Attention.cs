using System.Numerics.Tensors;
using Sputnik.Tensors;

namespace Sputnik.Models;

// Decode attention of one token (MLA): absorbed over the latent cache, or the naive reference over expanded heads.
internal sealed partial class DeepSeek2
{
    /// <summary>
    /// Attention of the token at <paramref name="pos"/> in layer <paramref name="l"/> (queries in s.Q, output in
    /// s.AttnOut). Every head reads the same latent row per position, and decoding an F16 tile of them cost about as
    /// much as two heads' products over it (from the thread time of eight two-head shares against two eight-head ones
    /// on DeepSeek-V2-Lite), so the work is split for a tile to be decoded once for many heads: within
    /// a segment of context (<see cref="FlashAttention.Segment"/> positions) the heads go in one share per thread;
    /// beyond, the positions go in segments, each attended by all heads at once, and the partial results are merged
    /// in segment order, which gives the bits one call over every position gives. (Split into shares of two heads, as
    /// before, each F16 tile was decoded eight times a layer: 46 % of the attention's thread time on
    /// DeepSeek-V2-Lite.)
    /// </summary>
    private void Attend(State s, Layer L, int l, int pos)
    {
        var c = DsConfig;
        s.AttnLayer = l;
        s.AttnBlock = L;
        s.AttnPos = pos;
        int segments = FlashAttention.Segments(pos, window: 0);
        if (s.Naive != null || Pool.Threads == 1 || segments < Pool.Threads)
        {
            s.AttnBody ??= s.Naive != null ? (h0, h1) => AttendNaive(s, h0, h1)
                : (h0, h1) => AttendAbsorbed(s.Latent!, s.AttnBlock!, s.AttnLayer, s.AttnPos, s.Q, s.QAbs, s.OLat, s.AttnOut,
                    s.HeadInput[h0], s.HeadRows[h0], h0, h1);
            // Tiny models (tests) stay on the calling thread: the hand-off would cost more than the work.
            int work = c.KvLoraRank * (c.QkNopeDim + c.VHeadDim) + (pos + 1) * (c.KvLoraRank + c.QkRopeDim) * 2;
            int share = s.Naive != null ? 1 : (c.Heads + Pool.Threads - 1) / Pool.Threads;
            Pool.For(c.Heads, s.AttnBody, minPerThread: Math.Max(share, 32768 / work));
            return;
        }
        int rows = segments * c.Heads * FlashAttention.PartialFloats(c.KvLoraRank);
        if (s.AttnPartials.Length < rows) s.AttnPartials = new float[Math.Max(rows, 2 * s.AttnPartials.Length)]; // grows a logarithmic number of times
        s.AbsorbBody ??= (h0, h1) => AbsorbQueries(s.AttnBlock!, s.Q, s.QAbs, s.HeadInput[h0], s.HeadRows[h0], h0, h1);
        s.SegmentBody ??= (j0, j1) => AttendSegments(s, j0, j1);
        s.ExpandBody ??= (h0, h1) => ExpandValues(s.AttnBlock!, s.OLat, s.AttnOut, s.HeadInput[h0], s.HeadRows[h0], h0, h1);
        Pool.For(c.Heads, s.AbsorbBody);
        Pool.For(segments, s.SegmentBody);
        FlashAttention.MergeSegments(s.AttnPartials.AsSpan(0, rows), segments, c.Heads, s.Latent!.Values(l), s.OLat);
        Pool.For(c.Heads, s.ExpandBody);
    }

    /// <summary>Segments [j0, j1) of the current token's context, every head, into their partial results (segment j's rows at j·heads).</summary>
    private void AttendSegments(State s, int j0, int j1)
    {
        var c = DsConfig;
        int rowFloats = c.Heads * FlashAttention.PartialFloats(c.KvLoraRank);
        var cache = s.Latent!;
        for (int j = j0; j < j1; j++)
            FlashAttention.AttendSegment(cache.Keys(s.AttnLayer), cache.Values(s.AttnLayer), s.QAbs, s.AttnPartials.AsSpan(j * rowFloats, rowFloats),
                c.Heads, s.AttnPos, window: 0, _kqScale, j);
    }

    /// <summary>
    /// Absorbed attention of heads [h0, h1) of one token at <paramref name="pos"/> over cache positions [0, pos] of
    /// layer <paramref name="l"/>: multi-query attention whose single key row is the cached [latent | k_pe] and whose
    /// value is the latent, so FlashAttention decodes each cache tile once for all heads of the call. q: heads ×
    /// qk_head (roped); qAbs: heads × (rank + rope) scratch (each head's absorbed query and q_pe); oLat: heads × rank
    /// scratch; out: heads × v_head. Single-threaded: the caller splits heads over the pool; headInput/headRows are
    /// this call's scratch for the head matrices.
    /// </summary>
    private void AttendAbsorbed(LatentKvCache cache, Layer L, int l, int pos, Span<float> q, Span<float> qAbs, Span<float> oLat,
        Span<float> attnOut, Span<byte> headInput, Span<float> headRows, int h0, int h1)
    {
        var c = DsConfig;
        int rank = c.KvLoraRank, rl = rank + c.QkRopeDim;
        AbsorbQueries(L, q, qAbs, headInput, headRows, h0, h1);
        FlashAttention.Attend(cache.Keys(l), cache.Values(l), qAbs[(h0 * rl)..], 0, oLat[(h0 * rank)..], 0,
            tokens: 1, group: h1 - h0, pos0: pos, window: 0, _kqScale);
        ExpandValues(L, oLat, attnOut, headInput, headRows, h0, h1);
    }

    /// <summary>
    /// Heads [h0, h1) of one token's absorbed queries: qAbs row h = [W_UK,hᵀ q_nope,h | q_pe,h], so that a score is
    /// qAbs_h · [latent | k_pe] (the key up-projection folded into the query).
    /// </summary>
    private void AbsorbQueries(Layer L, ReadOnlySpan<float> q, Span<float> qAbs, Span<byte> headInput, Span<float> headRows, int h0, int h1)
    {
        var c = DsConfig;
        int rank = c.KvLoraRank, rl = rank + c.QkRopeDim;
        for (int h = h0; h < h1; h++)
        {
            var qh = qAbs.Slice(h * rl, rl);
            L.KAbsorb.Apply(h, q.Slice(h * c.QkHeadDim, c.QkNopeDim), qh[..rank], headInput, headRows);
            q.Slice(h * c.QkHeadDim + c.QkNopeDim, c.QkRopeDim).CopyTo(qh[rank..]);
        }
    }

    /// <summary>Heads [h0, h1) of the value up-projection: the attention outputs are latents (the values are the latents themselves).</summary>
    private void ExpandValues(Layer L, ReadOnlySpan<float> oLat, Span<float> attnOut, Span<byte> headInput, Span<float> headRows, int h0, int h1)
    {
        var c = DsConfig;
        int rank = c.KvLoraRank;
        for (int h = h0; h < h1; h++)
            L.VExpand.Apply(h, oLat.Slice(h * rank, rank), attnOut.Slice(h * c.VHeadDim, c.VHeadDim), headInput, headRows);
    }

    private void AttendNaive(State s, int h0, int h1)
    {
        var c = DsConfig;
        int l = s.AttnLayer, pos = s.AttnPos, n = pos + 1, qk = c.QkHeadDim, vd = c.VHeadDim;
        var L = s.AttnBlock!;
        var cache = s.Naive!;
        var latent = s.LatentRow.AsSpan(0, c.KvLoraRank);
        var kpe = s.LatentRow.AsSpan(c.KvLoraRank, c.QkRopeDim);
        for (int h = h0; h < h1; h++)
        {
            // Decompress this head's key and value for the new position, then plain attention over the cache.
            var k = cache.Key(l, pos).Slice(h * qk, qk);
            L.KExpand.Apply(h, latent, k[..c.QkNopeDim], s.HeadInput[h], s.HeadRows[h]);
            kpe.CopyTo(k[c.QkNopeDim..]);
            L.VExpand.Apply(h, latent, cache.Value(l, pos).Slice(h * vd, vd), s.HeadInput[h], s.HeadRows[h]);
            var q = s.Q.AsSpan(h * qk, qk);
            var scores = s.Scores.AsSpan(h * s.Capacity, n);
            for (int t = 0; t < n; t++) scores[t] = TensorPrimitives.Dot(q, cache.Key(l, t).Slice(h * qk, qk)) * _kqScale;
            Ops.Softmax(scores);
            var o = s.AttnOut.AsSpan(h * vd, vd);
            o.Clear();
            for (int t = 0; t < n; t++) TensorPrimitives.MultiplyAdd(cache.Value(l, t).Slice(h * vd, vd), scores[t], o, o);
        }
    }
}
