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

    /// <summary>A one-layer cache of <paramref name="positions"/> random rows (2 kv heads of size <paramref name="hd"/>).</summary>
    private static KvCache Cache(int positions, int hd, KvCacheType k, KvCacheType v, int seed)
    {
        var cache = new KvCache(1, positions + 8, 2 * hd, k, v, hd);
        var rng = new Random(seed);
        var key = new float[2 * hd];
        var value = new float[2 * hd];
        for (int p = 0; p < positions; p++)
        {
            for (int i = 0; i < key.Length; i++) { key[i] = (float)(rng.NextDouble() * 4 - 2); value[i] = (float)(rng.NextDouble() * 2 - 1); }
            cache.Write(0, p, key, value);
        }
        cache.Length = positions;
        return cache;
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
        // (tokens, pos0, window): decode at a tile edge and deep in, a prefill block crossing tiles, windows
        (int Tokens, int Pos0, int Window)[] shapes = [(1, 0, 0), (1, 63, 0), (1, 200, 0), (20, 50, 0), (16, 0, 0), (1, 200, 37), (20, 120, 64), (5, 10, 1)];
        var cache = Cache(260, hd, kType, vType, 1);
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
        var cache = Cache(200, hd, kType, vType, 4);
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
        var cache = Cache(40, hd, KvCacheType.F32, KvCacheType.F32, 2);
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
        var cache = Cache(pos0 + tokens, hd, kType, vType, 5);
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
        var cache = Cache(10, 32, KvCacheType.F16, KvCacheType.F16, 1);
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
