using Sputnik.Models;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// Single-token attention over Q8_0 or Q4_0 values read in place (FlashAttention.FusedBlockValues.cs) gives the bits
/// of the tiled path, which decodes each tile of values to floats first: for group sizes that fill, pad and span the
/// blocks of 4, 6, 7 and 8 rows, heads of one to eight blocks (an odd count ends the 512-bit two-block passes with a
/// one-block pass), every key type beside them, windows and tile edges, and the decode split's segments.
/// </summary>
public class FlashAttentionFusedBlockValuesTests
{
    /// <summary>One layer, 2 KV heads of <paramref name="hd"/>, random rows (some values zero, some blocks all zero).</summary>
    private static KvCache Cache(int positions, int hd, KvCacheType keyType, KvCacheType valueType, int seed) =>
        AttentionCaches.Random(positions, hd, keyType, valueType, seed, (_, value, p, rng) =>
        {
            if (p % 5 == 0) value[rng.Next(value.Length)] = 0f;
            if (p % 17 == 0) Array.Clear(value, hd, 32); // a block of zeros: scale 0
        });

    private static float[] Attend(KvCache cache, int hd, int group, float[] q, int pos, int window, bool fused, int width)
    {
        var output = new float[group * hd];
        bool was = FlashAttention.FusedBlockValues;
        try
        {
            FlashAttention.FusedBlockValues = fused;
            // The fused runs must take the fused kernels, or comparing them with the tiled path proves nothing.
            Assert.Equal(fused, FlashAttention.FusesBlockValues(cache.KeyHead(0, hd, hd), cache.ValueHead(0, hd, hd), 1, width));
            FlashAttention.Attend(cache.KeyHead(0, hd, hd), cache.ValueHead(0, hd, hd), q, 0, output, 0, 1, group, pos, window, 0.13f, width);
        }
        finally
        {
            FlashAttention.FusedBlockValues = was;
        }
        return output;
    }

    private static void RequireWidth(int width) => AttentionCaches.RequireWidth(width, "fused value kernels");

    [Theory]
    [InlineData(6, 128, KvCacheType.Q8_0, KvCacheType.Q8_0, 512)]
    [InlineData(6, 128, KvCacheType.Q8_0, KvCacheType.Q8_0, 256)]
    [InlineData(4, 128, KvCacheType.Q8_0, KvCacheType.Q8_0, 512)]
    [InlineData(4, 128, KvCacheType.Q8_0, KvCacheType.Q8_0, 256)]
    [InlineData(7, 128, KvCacheType.Q8_0, KvCacheType.Q8_0, 512)]
    [InlineData(7, 128, KvCacheType.Q8_0, KvCacheType.Q8_0, 256)]
    [InlineData(8, 64, KvCacheType.Q8_0, KvCacheType.Q8_0, 512)]
    [InlineData(8, 64, KvCacheType.Q8_0, KvCacheType.Q8_0, 256)]
    [InlineData(3, 96, KvCacheType.Q8_0, KvCacheType.Q8_0, 512)]
    [InlineData(3, 96, KvCacheType.Q8_0, KvCacheType.Q8_0, 256)]
    [InlineData(1, 32, KvCacheType.Q8_0, KvCacheType.Q8_0, 512)]
    [InlineData(1, 32, KvCacheType.Q8_0, KvCacheType.Q8_0, 256)]
    [InlineData(15, 64, KvCacheType.Q8_0, KvCacheType.Q8_0, 512)]
    [InlineData(15, 64, KvCacheType.Q8_0, KvCacheType.Q8_0, 256)]
    [InlineData(2, 256, KvCacheType.Q8_0, KvCacheType.Q8_0, 512)]
    [InlineData(2, 256, KvCacheType.Q8_0, KvCacheType.Q8_0, 256)]
    [InlineData(6, 128, KvCacheType.Q4_0, KvCacheType.Q4_0, 512)]
    [InlineData(6, 128, KvCacheType.Q4_0, KvCacheType.Q4_0, 256)]
    [InlineData(7, 96, KvCacheType.Q4_0, KvCacheType.Q4_0, 512)]
    [InlineData(7, 96, KvCacheType.Q4_0, KvCacheType.Q4_0, 256)]
    [InlineData(3, 96, KvCacheType.Q4_0, KvCacheType.Q4_0, 512)]
    [InlineData(3, 96, KvCacheType.Q4_0, KvCacheType.Q4_0, 256)]
    [InlineData(5, 64, KvCacheType.F16, KvCacheType.Q8_0, 512)]
    [InlineData(5, 64, KvCacheType.F16, KvCacheType.Q8_0, 256)]
    [InlineData(9, 128, KvCacheType.F16, KvCacheType.Q4_0, 512)]
    [InlineData(9, 128, KvCacheType.F16, KvCacheType.Q4_0, 256)]
    [InlineData(4, 64, KvCacheType.Q4_0, KvCacheType.Q8_0, 512)]
    [InlineData(4, 64, KvCacheType.F32, KvCacheType.Q8_0, 256)]
    public void Fused_values_give_the_tiled_bits(int group, int hd, KvCacheType keyType, KvCacheType valueType, int width)
    {
        RequireWidth(width);
        var cache = Cache(700, hd, keyType, valueType, group * 31 + hd);
        var rng = new Random(group + hd);
        foreach (var (pos, window) in new[] { (0, 0), (5, 0), (63, 0), (64, 0), (300, 0), (699, 0), (699, 90) })
        {
            var q = Enumerable.Range(0, group * hd).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var tiled = Attend(cache, hd, group, q, pos, window, fused: false, width);
            var fused = Attend(cache, hd, group, q, pos, window, fused: true, width);
            Assert.Equal(Bits.Of(tiled), Bits.Of(fused));
            Assert.All(fused, x => Assert.True(float.IsFinite(x)));
        }
    }

    /// <summary>
    /// Heads whose rows start part way into a wider, padded row (a row offset and a stride past the row's bytes, as a
    /// cache of several heads a row lays them out): the same bits as the cache's own heads, fused or tiled, with the
    /// values prefetched by the key pass or by their own.
    /// </summary>
    [Theory]
    [InlineData(6, 128, KvCacheType.Q8_0, 512)]
    [InlineData(6, 128, KvCacheType.Q8_0, 256)]
    [InlineData(7, 96, KvCacheType.Q4_0, 512)]
    [InlineData(7, 96, KvCacheType.Q4_0, 256)]
    public void Fused_values_read_rows_at_an_offset_and_stride(int group, int hd, KvCacheType type, int width)
    {
        RequireWidth(width);
        const int positions = 300, pos = 299, pad = 6, tail = 40;
        var cache = Cache(positions, hd, type, type, 11);
        var keys = cache.KeyHead(0, hd, hd);
        var values = cache.ValueHead(0, hd, hd);
        var q = Enumerable.Range(0, group * hd).Select(i => MathF.Cos(i * 0.21f)).ToArray();
        var expected = Attend(cache, hd, group, q, pos, 0, fused: false, width);
        var keyRows = Padded(keys, positions, pad, tail);
        var valueRows = Padded(values, positions, pad, tail);
        bool was = FlashAttention.FusedBlockValues, together = FlashAttention.PrefetchValuesWithKeys;
        try
        {
            foreach (var (fused, prefetchTogether) in new[] { (false, true), (true, true), (true, false) })
            {
                FlashAttention.FusedBlockValues = fused;
                FlashAttention.PrefetchValuesWithKeys = prefetchTogether;
                var k = new KvHead(keyRows, keys.RowBytes + pad + tail, pad, hd, type, keys.Rotation);
                var v = new KvHead(valueRows, values.RowBytes + pad + tail, pad, hd, type, values.Rotation);
                Assert.Equal(fused, FlashAttention.FusesBlockValues(k, v, 1, width));
                var output = new float[group * hd];
                FlashAttention.Attend(k, v, q, 0, output, 0, 1, group, pos, 0, 0.13f, width);
                Assert.Equal(Bits.Of(expected), Bits.Of(output));
            }
        }
        finally
        {
            FlashAttention.FusedBlockValues = was;
            FlashAttention.PrefetchValuesWithKeys = together;
        }
    }

    /// <summary>A head's rows copied into rows of pad + row + tail bytes, the row at byte pad.</summary>
    private static byte[] Padded(KvHead head, int positions, int pad, int tail)
    {
        int stride = head.RowBytes + pad + tail;
        var rows = new byte[positions * stride];
        new Random(3).NextBytes(rows); // the padding holds noise a wrong offset would read
        for (int p = 0; p < positions; p++)
            head.Rows.Slice(p * head.RowStride + head.RowOffset, head.RowBytes).CopyTo(rows.AsSpan(p * stride + pad, head.RowBytes));
        return rows;
    }

    /// <summary>The decode split (segments on threads, then merged) over fused values gives the one-call bits.</summary>
    [Theory]
    [InlineData(512)]
    [InlineData(256)]
    public void Fused_values_in_segments_merge_to_the_tiled_bits(int width)
    {
        RequireWidth(width);
        const int hd = 128, group = 6, pos = 1000;
        var cache = Cache(pos + 1, hd, KvCacheType.Q8_0, KvCacheType.Q8_0, 5);
        var keys = cache.KeyHead(0, hd, hd);
        var values = cache.ValueHead(0, hd, hd);
        var q = Enumerable.Range(0, group * hd).Select(i => MathF.Sin(i * 0.37f)).ToArray();
        var tiled = Attend(cache, hd, group, q, pos, 0, fused: false, width);
        int segments = FlashAttention.Segments(pos, 0), pf = FlashAttention.PartialFloats(hd);
        var partials = new float[segments * group * pf];
        Assert.True(FlashAttention.FusesBlockValues(keys, values, 1, width));
        for (int s = 0; s < segments; s++)
            FlashAttention.AttendSegment(keys, values, q, partials.AsSpan(s * group * pf), group, pos, 0, 0.13f, s, width);
        var merged = new float[group * hd];
        FlashAttention.MergeSegments(partials, segments, group, values, merged, width);
        Assert.Equal(Bits.Of(tiled), Bits.Of(merged));
    }
}
