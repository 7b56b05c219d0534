using System.Runtime.Intrinsics;
using Sputnik.Models;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// The tiled attention kernel on every vector width this CPU runs (and the scalar path) against its double-precision
/// reference, for every cache format; the row decoders against their element-by-element reference.
/// </summary>
public class FlashAttentionTests
{
    public static IEnumerable<int> Widths()
    {
        yield return 0;
        if (Vector128.IsHardwareAccelerated) yield return 128;
        if (Vector256.IsHardwareAccelerated) yield return 256;
        if (Vector512.IsHardwareAccelerated) yield return 512;
    }

    private static readonly KvCacheType[] Types = [KvCacheType.F32, KvCacheType.F16, KvCacheType.Q8_0, KvCacheType.Q4_0];

    public static TheoryData<int, KvCacheType, KvCacheType> Cases()
    {
        var d = new TheoryData<int, KvCacheType, KvCacheType>();
        foreach (int w in Widths())
        {
            foreach (var t in Types) d.Add(w, t, t);
            d.Add(w, KvCacheType.Q8_0, KvCacheType.F16);
            d.Add(w, KvCacheType.F16, KvCacheType.Q4_0);
        }
        return d;
    }

    private static float[] Random(int n, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Kernel_matches_reference(int width, KvCacheType kType, KvCacheType vType)
    {
        const int hd = 64, group = 3;
        // (tokens, pos0, window): decode at a tile edge and deep in, a prefill block crossing tiles, windows; then
        // several segments: decode, a block crossing a segment edge, a window starting inside a segment
        (int Tokens, int Pos0, int Window)[] shapes = [(1, 0, 0), (1, 63, 0), (1, 200, 0), (20, 50, 0), (16, 0, 0), (1, 200, 37), (20, 120, 64), (5, 10, 1),
            (1, 700, 0), (20, 250, 0), (3, 600, 300)];
        var cache = AttentionCaches.Random(720, hd, kType, vType, 1);
        foreach (var (tokens, pos0, window) in shapes)
        {
            int qStride = 2 * group * hd;
            var q = Random(tokens * qStride, pos0 + tokens);
            var got = new float[tokens * qStride];
            var want = new float[tokens * qStride];
            for (int g = 0; g < 2; g++)
            {
                var keys = cache.KeyHead(0, g * hd, hd);
                var values = cache.ValueHead(0, g * hd, hd);
                FlashAttention.Attend(keys, values, q.AsSpan(g * group * hd), qStride, got.AsSpan(g * group * hd), qStride, tokens, group, pos0, window, 0.125f, width);
                FlashAttention.Reference(keys, values, q.AsSpan(g * group * hd), qStride, want.AsSpan(g * group * hd), qStride, tokens, group, pos0, window, 0.125f);
            }
            for (int i = 0; i < got.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= 2e-5f + 2e-5f * Math.Abs(want[i]),
                    $"width {width} {kType}/{vType} tokens {tokens} pos0 {pos0} window {window} [{i}]: {got[i]} vs {want[i]}");
        }
    }

    /// <summary>
    /// Attention sinks (gpt-oss): one logit per head in the softmax's denominator. Heads get a sink far below the
    /// scores, one among them, and one far above (which the kernel meets only after the running maximum is set).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Sinks_match_reference(int width, KvCacheType kType, KvCacheType vType)
    {
        const int hd = 64, group = 3;
        float[] sinks = [-30f, 0.5f, 40f];
        var cache = AttentionCaches.Random(200, hd, kType, vType, 4);
        foreach (var (tokens, pos0, window) in new[] { (1, 0, 0), (1, 150, 0), (20, 100, 0), (17, 120, 64) })
        {
            int qStride = group * hd;
            var q = Random(tokens * qStride, 11 + pos0);
            var got = new float[tokens * qStride];
            var want = new float[tokens * qStride];
            var plain = new float[tokens * qStride];
            var keys = cache.KeyHead(0, hd, hd);
            var values = cache.ValueHead(0, hd, hd);
            FlashAttention.Attend(keys, values, q, qStride, got, qStride, tokens, group, pos0, window, 0.125f, width, sinks);
            FlashAttention.Reference(keys, values, q, qStride, want, qStride, tokens, group, pos0, window, 0.125f, sinks);
            FlashAttention.Attend(keys, values, q, qStride, plain, qStride, tokens, group, pos0, window, 0.125f, width);
            for (int i = 0; i < got.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= 2e-5f + 2e-5f * Math.Abs(want[i]),
                    $"width {width} {kType}/{vType} tokens {tokens} pos0 {pos0} [{i}]: {got[i]} vs {want[i]}");
            for (int i = 0; i < tokens; i++)
            {
                // A sink far below changes nothing; one far above takes nearly all the weight, leaving the output near 0.
                for (int c = 0; c < hd; c++)
                {
                    Assert.Equal(plain[i * qStride + c], got[i * qStride + c], 1e-6f);
                    Assert.True(Math.Abs(got[i * qStride + 2 * hd + c]) < 1e-6f, $"head under a dominant sink: {got[i * qStride + 2 * hd + c]}");
                }
            }
        }
    }

    [Fact]
    public void Window_of_one_returns_each_tokens_own_value()
    {
        const int hd = 32;
        var cache = AttentionCaches.Random(40, hd, KvCacheType.F32, KvCacheType.F32, 2);
        var q = Random(10 * hd, 3);
        var o = new float[10 * hd];
        FlashAttention.Attend(cache.KeyHead(0, 0, hd), cache.ValueHead(0, 0, hd), q, hd, o, hd, tokens: 10, group: 1, pos0: 20, window: 1, scale: 1f);
        var v = new float[hd];
        for (int i = 0; i < 10; i++)
        {
            cache.ReadValues(0, 20 + i, 1, 0, hd, v);
            Assert.Equal(v, o.AsSpan(i * hd, hd).ToArray());
        }
    }

    /// <summary>A token's output is the same bits alone (decode) as inside a prefill block: tiles are absolute.</summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void A_row_alone_and_in_a_block_give_the_same_bits(int width, KvCacheType kType, KvCacheType vType)
    {
        const int hd = 64, group = 2, tokens = 23, pos0 = 90;
        var cache = AttentionCaches.Random(pos0 + tokens, hd, kType, vType, 5);
        int qStride = group * hd;
        var q = Random(tokens * qStride, 8);
        foreach (int window in new[] { 0, 50 })
        {
            var block = new float[tokens * qStride];
            FlashAttention.Attend(cache.KeyHead(0, hd, hd), cache.ValueHead(0, hd, hd), q, qStride, block, qStride, tokens, group, pos0, window, 0.2f, width);
            var alone = new float[qStride];
            for (int i = 0; i < tokens; i++)
            {
                FlashAttention.Attend(cache.KeyHead(0, hd, hd), cache.ValueHead(0, hd, hd), q.AsSpan(i * qStride), qStride, alone, qStride, 1, group, pos0 + i, window, 0.2f, width);
                Assert.Equal(alone, block.AsSpan(i * qStride, qStride).ToArray());
            }
        }
    }

    /// <summary>
    /// Rows too wide for a 64-position tile to sit in L1 (MLA's 576: passes of 16 or 8 positions; 200: passes of 40 or
    /// 24, the last one short) go through the scores and the values a pass at a time: the bits of whole-tile passes,
    /// for decode and for a causal prefill block, with blocked and single rows (4 heads: a block of three and one),
    /// and close to the reference.
    /// </summary>
    [Theory]
    [InlineData(576, KvCacheType.F16)]
    [InlineData(576, KvCacheType.F32)]
    [InlineData(576, KvCacheType.Q8_0)]
    [InlineData(200, KvCacheType.F16)]
    public void Passes_over_wide_rows_give_the_bits_of_whole_tiles(int hd, KvCacheType type)
    {
        const int group = 4, tokens = 9;
        var cache = AttentionCaches.Random(700, hd, type, type, 13);
        var keys = cache.KeyHead(0, hd, hd);
        var values = cache.ValueHead(0, hd, hd);
        int qStride = group * hd;
        foreach (int width in Widths())
            foreach (var (pos0, window) in new[] { (0, 0), (150, 0), (683, 0), (600, 90) })
            {
                var q = Random(tokens * qStride, pos0 + hd);
                var passes = new float[tokens * qStride];
                var whole = new float[tokens * qStride];
                try
                {
                    FlashAttention.PassOverride = FlashAttention.Tile;
                    FlashAttention.Attend(keys, values, q, qStride, whole, qStride, tokens, group, pos0, window, 0.05f, width);
                }
                finally
                {
                    FlashAttention.PassOverride = null;
                }
                FlashAttention.Attend(keys, values, q, qStride, passes, qStride, tokens, group, pos0, window, 0.05f, width);
                Assert.Equal(whole, passes);
                var want = new float[tokens * qStride];
                FlashAttention.Reference(keys, values, q, qStride, want, qStride, tokens, group, pos0, window, 0.05f);
                for (int i = 0; i < want.Length; i++)
                    Assert.True(Math.Abs(passes[i] - want[i]) <= 2e-5f + 2e-5f * Math.Abs(want[i]),
                        $"width {width} hd {hd} {type} pos0 {pos0} window {window} [{i}]: {passes[i]} vs {want[i]}");
            }
    }

    /// <summary>
    /// qwen2-1.5B's shape (6 query heads per KV head of 128), groups that leave rows outside the three-row blocks (4,
    /// qwen3-8B's; 7, qwen2-7B's; 2; 16, MLA's heads) and an odd head size (72: its q·k not a multiple of 16, its values
    /// a 16-column tail): rows run three at a time through the register-blocked loops give the bits of rows run one at
    /// a time, a prefill block gives each token's decode bits, and both match the reference. The blocked loops run at
    /// 512 bits (AVX-512) and 256 (AVX2); at 128 and scalar both settings take the one-row loops.
    /// </summary>
    [Theory]
    [InlineData(6, 128, KvCacheType.F16)]
    [InlineData(6, 128, KvCacheType.F32)]
    [InlineData(6, 128, KvCacheType.Q8_0)]
    [InlineData(6, 72, KvCacheType.F16)]
    [InlineData(6, 72, KvCacheType.F32)]
    [InlineData(4, 128, KvCacheType.F16)]
    [InlineData(7, 72, KvCacheType.F32)]
    [InlineData(2, 128, KvCacheType.Q8_0)]
    [InlineData(16, 64, KvCacheType.F16)]
    public void Blocked_rows_give_the_bits_of_rows_one_at_a_time(int group, int hd, KvCacheType type)
    {
        const int tokens = 16;
        var cache = AttentionCaches.Random(1100, hd, type, type, 11);
        var keys = cache.KeyHead(0, hd, hd);
        var values = cache.ValueHead(0, hd, hd);
        int qStride = group * hd;
        foreach (int width in Widths())
            foreach (var (pos0, window) in new[] { (0, 0), (300, 0), (1080, 0), (1000, 200) })
            {
                var q = Random(tokens * qStride, pos0 + hd);
                var blocked = new float[tokens * qStride];
                var oneByOne = new float[tokens * qStride];
                bool was = FlashAttention.BlockedRows;
                try
                {
                    FlashAttention.BlockedRows = false;
                    FlashAttention.Attend(keys, values, q, qStride, oneByOne, qStride, tokens, group, pos0, window, 0.09f, width);
                    FlashAttention.BlockedRows = true;
                    FlashAttention.Attend(keys, values, q, qStride, blocked, qStride, tokens, group, pos0, window, 0.09f, width);
                }
                finally
                {
                    FlashAttention.BlockedRows = was;
                }
                Assert.Equal(oneByOne, blocked);
                var alone = new float[qStride];
                foreach (int i in new[] { 0, 7, tokens - 1 })
                {
                    FlashAttention.Attend(keys, values, q.AsSpan(i * qStride), qStride, alone, qStride, 1, group, pos0 + i, window, 0.09f, width);
                    Assert.Equal(alone, blocked.AsSpan(i * qStride, qStride).ToArray());
                }
                var want = new float[tokens * qStride];
                FlashAttention.Reference(keys, values, q, qStride, want, qStride, tokens, group, pos0, window, 0.09f);
                for (int i = 0; i < want.Length; i++)
                    Assert.True(Math.Abs(blocked[i] - want[i]) <= 2e-5f + 2e-5f * Math.Abs(want[i]),
                        $"width {width} hd {hd} {type} pos0 {pos0} window {window} [{i}]: {blocked[i]} vs {want[i]}");
            }
    }

    /// <summary>
    /// Bidirectional (an encoder's, keyEnd &gt; 0): every row sees keys up to keyEnd, which is what a causal row at
    /// keyEnd − 1 sees; and a head viewed From(start) is the cache from that row on (one of several packed inputs).
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Bidirectional_rows_see_every_key_of_their_sequence(int width, KvCacheType kType, KvCacheType vType)
    {
        const int hd = 64, group = 2, tokens = 23, start = 70, keyEnd = 40;
        var cache = AttentionCaches.Random(start + keyEnd, hd, kType, vType, 9);
        int qStride = group * hd;
        var q = Random(tokens * qStride, 10);
        var keys = cache.KeyHead(0, hd, hd).From(start);
        var values = cache.ValueHead(0, hd, hd).From(start);
        // The view's rows [0, keyEnd) are the cache's [start, start + keyEnd): what a windowed row at the end sees.
        var viewed = new float[qStride];
        var windowed = new float[qStride];
        FlashAttention.Attend(keys, values, q, qStride, viewed, qStride, 1, group, keyEnd - 1, 0, 0.2f, width);
        FlashAttention.Attend(cache.KeyHead(0, hd, hd), cache.ValueHead(0, hd, hd), q, qStride, windowed, qStride, 1, group, start + keyEnd - 1, keyEnd, 0.2f, width);
        for (int j = 0; j < qStride; j++) Assert.Equal(windowed[j], viewed[j], 4); // other tile boundaries: other summation order
        var block = new float[tokens * qStride];
        FlashAttention.Attend(keys, values, q, qStride, block, qStride, tokens, group, 5, 0, 0.2f, width, keyEnd: keyEnd);
        var causal = new float[qStride];
        for (int i = 0; i < tokens; i++)
        {
            FlashAttention.Attend(keys, values, q.AsSpan(i * qStride), qStride, causal, qStride, 1, group, keyEnd - 1, 0, 0.2f, width);
            Assert.Equal(causal, block.AsSpan(i * qStride, qStride).ToArray());
        }
        // Rows past keyEnd are refused (a KvHead is a ref struct, so no lambda for Assert.Throws).
        bool refused = false;
        try
        {
            FlashAttention.Attend(keys, values, q, qStride, block, qStride, tokens, group, 20, 0, 0.2f, width, keyEnd: keyEnd);
        }
        catch (ArgumentOutOfRangeException)
        {
            refused = true;
        }
        Assert.True(refused, "rows past keyEnd were attended");
    }

    /// <summary>
    /// A sliding-window ring (window + batch − 1 rows, position p in row p mod rows) gives the same bits as a cache
    /// holding every position masked to the same window: tiles stay absolute, a tile that wraps is gathered from both
    /// ends of the ring, and the arithmetic is the same. Checked as a model drives it: batches of up to the batch
    /// size written, then attended (the batch's first token reaching back a whole window), through many wraps, with
    /// each batch's rows also attended one at a time (decode) against the same ring.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void A_ring_gives_the_bits_of_a_whole_cache_masked_to_the_window(int width, KvCacheType kType, KvCacheType vType)
    {
        const int hd = 64, group = 2, kvDim = 2 * hd;
        // (window, batch): a ring shorter than a tile (37 + 20 − 1 = 56 rows) and one spanning two tiles (100 + 16 − 1)
        foreach (var (window, batch) in new[] { (37, 20), (100, 16) })
        {
            var ring = new KvCache(1, 1000, kvDim, kType, vType, hd, [window], batch);
            var whole = new KvCache(1, 1000, kvDim, kType, vType, hd);
            Assert.Equal(window + batch - 1, ring.LayerRows(0));
            var rng = new Random(window);
            var key = new float[kvDim];
            var value = new float[kvDim];
            int qStride = group * hd;
            int[] sizes = [batch, 1, 3, batch, 7, 1, 1, batch - 1, 2];
            for (int step = 0, pos0 = 0; pos0 < 330; step++)
            {
                int n = sizes[step % sizes.Length];
                for (int p = pos0; p < pos0 + n; p++)
                {
                    for (int i = 0; i < kvDim; i++) { key[i] = (float)(rng.NextDouble() * 4 - 2); value[i] = (float)(rng.NextDouble() * 2 - 1); }
                    ring.Write(0, p, key, value);
                    whole.Write(0, p, key, value);
                }
                var q = Random(n * qStride, pos0);
                var got = new float[n * qStride];
                var want = new float[n * qStride];
                int g = step % 2;
                FlashAttention.Attend(ring.KeyHead(0, g * hd, hd), ring.ValueHead(0, g * hd, hd), q, qStride, got, qStride, n, group, pos0, window, 0.125f, width);
                FlashAttention.Attend(whole.KeyHead(0, g * hd, hd), whole.ValueHead(0, g * hd, hd), q, qStride, want, qStride, n, group, pos0, window, 0.125f, width);
                Assert.True(want.AsSpan().SequenceEqual(got), $"width {width} {kType}/{vType} window {window}: batch of {n} at {pos0} differs from the whole cache");
                var alone = new float[qStride];
                for (int i = 0; i < n; i++)
                {
                    FlashAttention.Attend(ring.KeyHead(0, g * hd, hd), ring.ValueHead(0, g * hd, hd), q.AsSpan(i * qStride), qStride, alone, qStride, 1, group, pos0 + i, window, 0.125f, width);
                    Assert.True(alone.AsSpan().SequenceEqual(got.AsSpan(i * qStride, qStride)), $"width {width} {kType}/{vType} window {window}: position {pos0 + i} alone differs from its batch");
                }
                pos0 += n;
            }
            // A window wider than the ring is refused rather than read from rows that later positions took.
            var o = new float[qStride];
            Assert.Throws<ArgumentOutOfRangeException>(() =>
                FlashAttention.Attend(ring.KeyHead(0, 0, hd), ring.ValueHead(0, 0, hd), new float[qStride], qStride, o, qStride, 1, group, 300, window + batch, 1f, width));
        }
    }

    /// <summary>
    /// A decode token's segments attended one call each (as threads split them) and merged give the bits of one call,
    /// with and without a window, at and across segment edges.
    /// </summary>
    [Theory]
    [MemberData(nameof(Cases))]
    public void Segments_attended_apart_and_merged_give_the_bits_of_one_call(int width, KvCacheType kType, KvCacheType vType)
    {
        const int hd = 64, group = 3;
        var cache = AttentionCaches.Random(700, hd, kType, vType, 7);
        var keys = cache.KeyHead(0, hd, hd);
        var values = cache.ValueHead(0, hd, hd);
        int pf = FlashAttention.PartialFloats(hd);
        foreach (var (pos, window) in new[] { (300, 0), (511, 0), (512, 0), (690, 0), (690, 300), (600, 345) })
        {
            var q = Random(group * hd, pos);
            var whole = new float[group * hd];
            FlashAttention.Attend(keys, values, q, 0, whole, 0, 1, group, pos, window, 0.15f, width);
            int segments = FlashAttention.Segments(pos, window);
            Assert.Equal(pos / FlashAttention.Segment - FlashAttention.WindowStart(pos, window) / FlashAttention.Segment + 1, segments);
            Assert.True(segments > 1);
            var partials = new float[segments * group * pf];
            for (int j = segments - 1; j >= 0; j--) // any order: each segment is independent
                FlashAttention.AttendSegment(keys, values, q, partials.AsSpan(j * group * pf, group * pf), group, pos, window, 0.15f, j, width);
            var merged = new float[group * hd];
            FlashAttention.MergeSegments(partials, segments, group, values, merged, width);
            Assert.Equal(whole, merged);
            // gpt-oss's sinks join at the merge: one below the scores, one far above (it rescales), one in between.
            float[] sinks = [-30f, 40f, 0.5f];
            var wholeSunk = new float[group * hd];
            FlashAttention.Attend(keys, values, q, 0, wholeSunk, 0, 1, group, pos, window, 0.15f, width, sinks);
            var mergedSunk = new float[group * hd];
            FlashAttention.MergeSegments(partials, segments, group, values, mergedSunk, width, sinks);
            Assert.Equal(wholeSunk, mergedSunk);
            Assert.NotEqual(whole, wholeSunk);
        }
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            FlashAttention.AttendSegment(cache.KeyHead(0, hd, hd), cache.ValueHead(0, hd, hd), new float[group * hd], new float[group * pf], group, 300, 0, 1f, 2, width));
    }

    /// <summary>MLA: the values are the first columns of the key rows, decoded once for both.</summary>
    [Theory]
    [InlineData(KvCacheType.F16)]
    [InlineData(KvCacheType.Q8_0)]
    [InlineData(KvCacheType.Q4_0)]
    public void Values_sharing_the_key_rows_match_reference(KvCacheType type)
    {
        const int rank = 64, rope = 32, heads = 4;
        var cache = new LatentKvCache(1, 100, rank, rope, type);
        for (int p = 0; p < 90; p++) cache.Write(0, p, Random(rank + rope, 100 + p));
        var q = Random(heads * (rank + rope), 9);
        var got = new float[heads * rank];
        var want = new float[heads * rank];
        Assert.True(cache.Values(0).SharesRowsWith(cache.Keys(0)));
        foreach (int width in Widths())
        {
            FlashAttention.Attend(cache.Keys(0), cache.Values(0), q, 0, got, 0, 1, heads, 89, 0, 0.1f, width);
            FlashAttention.Reference(cache.Keys(0), cache.Values(0), q, 0, want, 0, 1, heads, 89, 0, 0.1f);
            for (int i = 0; i < got.Length; i++)
                Assert.True(Math.Abs(got[i] - want[i]) <= 2e-5f + 2e-5f * Math.Abs(want[i]), $"{type} width {width} [{i}]: {got[i]} vs {want[i]}");
        }
    }

    [Fact]
    public void Reading_past_the_cache_is_refused()
    {
        var cache = AttentionCaches.Random(10, 32, KvCacheType.F16, KvCacheType.F16, 1);
        var q = new float[64];
        var o = new float[64];
        Assert.Throws<ArgumentOutOfRangeException>(() =>
            FlashAttention.Attend(cache.KeyHead(0, 0, 32), cache.ValueHead(0, 0, 32), q, 32, o, 32, 1, 1, cache.Reserved, 0, 1f));
    }

    [Fact]
    public void Row_decoders_match_the_reference_on_every_width()
    {
        var x = Random(256, 11);
        x[5] = 0; x[40] = -7.5f; x[200] = 1e-3f;
        foreach (var type in Types)
        {
            var bytes = new byte[KvRowCodec.Bytes(type, x.Length)];
            KvRowCodec.Encode(type, x, bytes);
            var want = new float[x.Length];
            KvRowCodec.DecodeReference(type, bytes, want);
            foreach (int width in Widths())
            {
                var got = new float[x.Length];
                KvRowCodec.Decode(type, bytes, got, width);
                Assert.Equal(want, got);
            }
        }
    }

    /// <summary>The inlined F16 row decoder attention uses, bit for bit, including infinities, NaNs, subnormals and −0.</summary>
    [Fact]
    public void Half_row_decoder_matches_the_reference_bit_for_bit()
    {
        var bits = new ushort[43];
        var rng = new Random(3);
        for (int i = 0; i < bits.Length; i++) bits[i] = (ushort)rng.Next(65536);
        ushort[] special = [0x7C00, 0xFC00, 0x7E01, 0xFD55, 0x0001, 0x83FF, 0x8000, 0x0000, 0x7BFF, 0x0400];
        special.CopyTo(bits, 3);
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
        var want = new float[bits.Length];
        KvRowCodec.DecodeReference(KvCacheType.F16, bytes, want);
        foreach (int width in Widths())
        {
            var got = new float[bits.Length]; // 43: two 16-wide vectors, one 8-wide, a scalar tail
            KvRowCodec.DecodeHalf(bytes, got, width);
            for (int i = 0; i < got.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[i]), $"width {width} [{i}] 0x{bits[i]:X4}: {got[i]} vs {want[i]}");
        }
        Assert.Throws<ArgumentException>(() => KvRowCodec.DecodeHalf(bytes.AsSpan(0, 10), new float[8], 256));
    }

    /// <summary>
    /// Rows of normal halves only take the 4-instruction conversion: every normal half (both signs, all 61,440 of them,
    /// 128 a row) gives the reference's bits. One half that is not normal (±0, a subnormal, an infinity, a NaN) anywhere
    /// in the checked part sends its row through the exact conversions, and one in the unchecked tail (past the last
    /// 16) is converted by the tail's own path: still the reference's bits.
    /// </summary>
    [Fact]
    public void Half_row_decoder_normal_rows_match_the_reference()
    {
        var normal = FloatConvertTests.NormalHalves();
        var rows = new List<ushort[]>();
        for (int i = 0; i < normal.Count; i += 128) rows.Add(normal.GetRange(i, 128).ToArray());
        ushort[] notNormal = [0x0000, 0x8000, 0x0001, 0x83FF, 0x7C00, 0xFC00, 0x7E01];
        for (int j = 0; j < notNormal.Length; j++)
            foreach (int at in new[] { 0, 17, 127 })
            {
                var row = normal.GetRange(1000 * j + at, 128).ToArray();
                row[at] = notNormal[j];
                rows.Add(row);
            }
        var tail = normal.GetRange(5000, 133).ToArray(); // 128 checked, 5 converted by the 8-wide or scalar tail
        tail[131] = 0x0001;
        rows.Add(tail);
        foreach (var bits in rows) AssertDecodesAsTheReference(bits);
    }

    /// <summary>The normal-row check answers for exponents 1…30 only, whichever lane of which vector holds the exception.</summary>
    [Fact]
    public void Normal_half_check_rejects_zeros_subnormals_infinities_and_nans()
    {
        var row = new ushort[64];
        Array.Fill(row, (ushort)0x3C00); // 1.0
        Assert.True(KvRowCodec.AllNormal(ref row[0], 64));
        foreach (ushort h in new ushort[] { 0x0400, 0x8400, 0x7BFF, 0xFBFF })
        {
            row[37] = h; // smallest and largest normal exponents pass
            Assert.True(KvRowCodec.AllNormal(ref row[0], 64));
        }
        foreach (ushort h in new ushort[] { 0x0000, 0x8000, 0x0001, 0x03FF, 0x83FF, 0x7C00, 0xFC00, 0x7C01, 0xFFFF })
            foreach (int at in new[] { 0, 15, 16, 63 })
            {
                Array.Fill(row, (ushort)0x3C00);
                row[at] = h;
                Assert.False(KvRowCodec.AllNormal(ref row[0], 64), $"0x{h:X4} at {at}");
                Assert.True(KvRowCodec.AllNormal(ref row[0], at / 16 * 16), $"0x{h:X4} past the {at / 16 * 16} checked");
            }
    }

    /// <summary>
    /// Rows with no infinity or NaN take the decoder's finite conversion (no per-vector check): the reference's bits
    /// for subnormals, ±0 and the largest halves; one infinity in the vector part, or only in the scalar tail, sends
    /// the row through the checked conversion, still exact.
    /// </summary>
    [Fact]
    public void Half_row_decoder_finite_rows_match_the_reference()
    {
        var rng = new Random(5);
        var finite = new ushort[136];
        for (int i = 0; i < finite.Length; i++)
            do finite[i] = (ushort)rng.Next(65536); while ((finite[i] & 0x7C00) == 0x7C00);
        ushort[] special = [0x0001, 0x83FF, 0x8000, 0x0000, 0x7BFF, 0xFBFF, 0x0400, 0x03FF];
        special.CopyTo(finite, 9);
        var withInfinity = (ushort[])finite.Clone();
        withInfinity[40] = 0x7C00;
        var infinityInTail = finite[..131];
        infinityInTail[130] = 0xFE00;
        foreach (var bits in new[] { finite, withInfinity, infinityInTail }) AssertDecodesAsTheReference(bits);
    }

    /// <summary>The F16 row decoder gives the reference's bits for <paramref name="bits"/> at every vector width.</summary>
    private static void AssertDecodesAsTheReference(ushort[] bits)
    {
        var bytes = System.Runtime.InteropServices.MemoryMarshal.AsBytes(bits.AsSpan()).ToArray();
        var want = new float[bits.Length];
        KvRowCodec.DecodeReference(KvCacheType.F16, bytes, want);
        foreach (int width in Widths())
        {
            var got = new float[bits.Length];
            KvRowCodec.DecodeHalf(bytes, got, width);
            for (int i = 0; i < got.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(want[i]) == BitConverter.SingleToInt32Bits(got[i]),
                    $"width {width}, {bits.Length} values [{i}] 0x{bits[i]:X4}: {got[i]} vs {want[i]}");
        }
    }
}

public class HadamardTests
{
    [Theory]
    [InlineData(64)]
    [InlineData(128)]
    public void Rotation_is_sylvesters_orthonormal_matrix_and_its_own_inverse(int n)
    {
        var rng = new Random(n);
        var x = Enumerable.Range(0, 2 * n).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
        var y = x.ToArray();
        Hadamard.Rotate(y, n);
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < n; i++)
            {
                double want = 0;
                for (int j = 0; j < n; j++) want += (System.Numerics.BitOperations.PopCount((uint)(i & j)) % 2 == 0 ? 1 : -1) * x[c * n + j];
                want /= Math.Sqrt(n);
                Assert.True(Math.Abs(y[c * n + i] - want) < 1e-5, $"H{n} row {i}: {y[c * n + i]} vs {want}");
            }
        Hadamard.Rotate(y, n);
        for (int i = 0; i < x.Length; i++) Assert.True(Math.Abs(y[i] - x[i]) < 1e-5);
        Assert.Equal(128, Hadamard.KeySize(128));
        Assert.Equal(64, Hadamard.KeySize(192));
        Assert.Equal(0, Hadamard.KeySize(96));
        Assert.Equal(64, Hadamard.ValueSize(256));
    }
}
