using Sputnik.Models;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>
/// Single-token attention over an F16 cache read in place (FlashAttention.FusedHalves.cs) gives the bits of the tiled
/// path, which decodes each tile to floats first: for group sizes that fill, pad and span the blocks of 4, 6 and 8 rows, head
/// sizes whose values end in a 16-column block, caches holding zeros and subnormal halves (read as subnormal floats
/// there), and infinities and NaNs (keys: the tile goes the tiled way; values: the columns that hold one do).
/// </summary>
public class FlashAttentionFusedHalvesTests
{
    /// <summary>One layer, 2 KV heads of <paramref name="hd"/>: random rows with <paramref name="special"/> values planted.</summary>
    private static KvCache Cache(int positions, int hd, int seed, Action<float[], float[], int, Random> special) =>
        AttentionCaches.Random(positions, hd, KvCacheType.F16, KvCacheType.F16, seed, special);

    /// <summary>Every few positions a zero and a few subnormal halves (F16's smallest: 2^-24 … 2^-15) among the keys and values.</summary>
    private static void Tiny(float[] key, float[] value, int p, Random rng)
    {
        if (p % 3 != 0) return;
        key[rng.Next(key.Length)] = 0f;
        value[rng.Next(value.Length)] = -0f;
        for (int i = 0; i < 4; i++)
        {
            key[rng.Next(key.Length)] = (rng.Next(2) * 2 - 1) * MathF.ScaleB(1f, -24) * rng.Next(1, 1024);
            value[rng.Next(value.Length)] = (rng.Next(2) * 2 - 1) * MathF.ScaleB(1f, -24) * rng.Next(1, 1024);
        }
    }

    /// <summary>One token's attention; <paramref name="trust"/>: a cache known to hold no infinity skips the kernels' check.</summary>
    private static float[] Attend(KvCache cache, int hd, int group, float[] q, int pos, int window, bool fused, int width, bool trust = true)
    {
        var output = new float[group * hd];
        bool was = FlashAttention.FusedHalves, trusted = FlashAttention.TrustFiniteCaches;
        try
        {
            FlashAttention.FusedHalves = fused;
            FlashAttention.TrustFiniteCaches = trust;
            // The fused runs must take the fused kernels, or comparing them with the tiled path proves nothing.
            Assert.Equal(fused, FlashAttention.FusesHalves(cache.KeyHead(0, hd, hd), cache.ValueHead(0, hd, hd), 1, width));
            FlashAttention.Attend(cache.KeyHead(0, hd, hd), cache.ValueHead(0, hd, hd), q, 0, output, 0, 1, group, pos, window, 0.11f, width);
        }
        finally
        {
            FlashAttention.FusedHalves = was;
            FlashAttention.TrustFiniteCaches = trusted;
        }
        return output;
    }

    private static void RequireWidth(int width) => AttentionCaches.RequireWidth(width, "fused F16 kernels");

    [Theory]
    [InlineData(6, 128, 512)]
    [InlineData(6, 128, 256)]
    [InlineData(4, 128, 512)]
    [InlineData(4, 128, 256)]
    [InlineData(7, 128, 512)]
    [InlineData(7, 128, 256)]
    [InlineData(12, 64, 512)]
    [InlineData(12, 64, 256)]
    [InlineData(1, 80, 512)]
    [InlineData(1, 80, 256)]
    [InlineData(2, 48, 512)]
    [InlineData(2, 48, 256)]
    [InlineData(8, 128, 512)]
    [InlineData(8, 128, 256)]
    [InlineData(5, 64, 512)]
    [InlineData(5, 64, 256)]
    [InlineData(9, 128, 512)]
    [InlineData(9, 128, 256)]
    [InlineData(3, 64, 512)]
    [InlineData(3, 64, 256)]
    [InlineData(16, 64, 512)]
    [InlineData(16, 64, 256)]
    [InlineData(15, 64, 512)]
    [InlineData(15, 64, 256)]
    [InlineData(2, 256, 512)]
    [InlineData(2, 256, 256)]
    public void Fused_kernels_give_the_tiled_bits_with_zeros_and_subnormals(int group, int hd, int width)
    {
        RequireWidth(width);
        var cache = Cache(700, hd, group * 31 + hd, Tiny);
        Assert.True(cache.HalvesFinite); // so the kernels run both with and without their check
        var rng = new Random(group);
        foreach (var (pos, window) in new[] { (0, 0), (5, 0), (63, 0), (64, 0), (300, 0), (699, 0), (699, 90) })
        {
            var q = Enumerable.Range(0, group * hd).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            var tiled = Attend(cache, hd, group, q, pos, window, fused: false, width);
            var fused = Attend(cache, hd, group, q, pos, window, fused: true, width);
            Assert.Equal(Bits.Of(tiled), Bits.Of(fused));
            Assert.Equal(Bits.Of(tiled), Bits.Of(Attend(cache, hd, group, q, pos, window, fused: true, width, trust: false)));
            Assert.All(fused, x => Assert.True(float.IsFinite(x)));
        }
    }

    /// <summary>
    /// An infinite key at position 70 (its tile, 64…127, goes the tiled way; the others stay fused), and in another
    /// cache a NaN value at position 200, column 37 (in that tile, columns 32 on finish the tiled way): the tiled bits,
    /// and the NaN or infinity where it belongs.
    /// </summary>
    [Theory]
    [InlineData(512)]
    [InlineData(256)]
    public void Infinities_and_nans_take_the_tiled_path_and_give_its_bits(int width)
    {
        RequireWidth(width);
        const int hd = 128, group = 6;
        // Planted in the second KV head, the one attended.
        var infiniteKey = Cache(400, hd, 3, (key, _, p, _) => { if (p == 70) key[hd + 5] = float.PositiveInfinity; });
        var nanValue = Cache(400, hd, 4, (_, value, p, _) => { if (p == 200) value[hd + 37] = float.NaN; });
        Assert.False(infiniteKey.HalvesFinite);
        Assert.False(nanValue.HalvesFinite);
        var rng = new Random(9);
        foreach (int pos in new[] { 69, 70, 127, 128, 199, 200, 399 })
        {
            var q = Enumerable.Range(0, group * hd).Select(_ => (float)(rng.NextDouble() * 2 - 1)).ToArray();
            for (int j = 0; j < group; j++) q[j * hd + 5] = 1f; // every row's score of the infinite key is +∞
            var fused = Attend(infiniteKey, hd, group, q, pos, 0, fused: true, width);
            Assert.Equal(Attend(infiniteKey, hd, group, q, pos, 0, fused: false, width), fused);
            Assert.All(fused, x => Assert.Equal(pos >= 70, float.IsNaN(x)));
            fused = Attend(nanValue, hd, group, q, pos, 0, fused: true, width);
            Assert.Equal(Attend(nanValue, hd, group, q, pos, 0, fused: false, width), fused);
            for (int i = 0; i < fused.Length; i++) Assert.Equal(pos >= 200 && i % hd == 37, float.IsNaN(fused[i]));
        }
    }

    /// <summary>
    /// A cache knows whether its F16 rows hold an infinity or NaN, from what it stores (a float that rounds past
    /// 65504, NaN) or what is copied into it (a prompt-cache restore), and its heads say so; once told, it stays told.
    /// </summary>
    [Fact]
    public void A_cache_learns_whether_its_halves_are_finite()
    {
        const int hd = 64;
        var row = new float[2 * hd];
        var cache = new KvCache(1, 16, 2 * hd, KvCacheType.F16, KvCacheType.F16, hd);
        row[3] = 65519f; // rounds to 65504, F16's largest
        cache.Write(0, 0, row, row);
        Assert.True(cache.HalvesFinite);
        Assert.True(cache.KeyHead(0, 0, hd).Finite && cache.ValueHead(0, hd, hd).Finite);
        row[3] = 65520f; // rounds to infinity
        cache.Write(0, 1, new float[2 * hd], row);
        Assert.False(cache.HalvesFinite);
        Assert.False(cache.KeyHead(0, 0, hd).Finite);
        cache.Write(0, 2, new float[2 * hd], new float[2 * hd]);
        Assert.False(cache.HalvesFinite);

        var nan = new KvCache(1, 16, 2 * hd, KvCacheType.F16, KvCacheType.F16, hd);
        row[3] = float.NaN;
        nan.Write(0, 0, row, new float[2 * hd]);
        Assert.False(nan.HalvesFinite);

        ICacheRows restored = new KvCache(1, 16, 2 * hd, KvCacheType.F16, KvCacheType.F16, hd);
        var bytes = new byte[4 * hd * 2];
        restored.WriteRows(1, 0, bytes);
        Assert.True(((KvCache)restored).HalvesFinite);
        bytes[2 * hd + 11] = 0x7C; // a half of 0x7C00 (+infinity) in the second row
        restored.WriteRows(1, 0, bytes);
        Assert.False(((KvCache)restored).HalvesFinite);
        Assert.Throws<ArgumentException>(() => restored.WriteRows(1, 0, new byte[3]));

        // Other storage types make no claim.
        var f32 = new KvCache(1, 16, 2 * hd, KvCacheType.F32, KvCacheType.F32, hd);
        Assert.False(f32.KeyHead(0, 0, hd).Finite);
    }
}
