using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

public class KvCacheTests
{
    [Theory]
    [InlineData(KvCacheType.F32, 0.0)]
    [InlineData(KvCacheType.F16, 1.0 / 2048)]   // half: 11 significant bits
    [InlineData(KvCacheType.Q8_0, 1.0 / 254 + 1.0 / 2048)] // half a step of amax/127 per block of 32, plus the F16 scale's rounding
    [InlineData(KvCacheType.Q4_0, 1.0 / 8 + 1.0 / 2048)]   // a whole step of amax/8 on the clamped side (+8 → 7)
    public void Round_trip_stays_within_format_precision(KvCacheType type, double relTolerance)
    {
        // heads of 32: too small for the Hadamard rotation, so each value's error is its own block's
        const int kvDim = 64, head = 32, positions = 70;
        // keys in the tested type, values in F16: the two halves of a row are independent
        var cache = new KvCache(2, 80, kvDim, type, KvCacheType.F16, head);
        var rng = new Random(4);
        var keys = new float[positions][];
        for (int p = 0; p < positions; p++)
        {
            keys[p] = Enumerable.Range(0, kvDim).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
            cache.Write(1, p, keys[p], keys[p].Select(v => -v).ToArray());
        }
        var k = new float[60 * head];
        var v = new float[60 * head];
        cache.ReadKeys(1, 3, 60, head, head, k);
        cache.ReadValues(1, 3, 60, head, head, v);
        for (int p = 0; p < 60; p++)
        {
            for (int i = 0; i < head; i++)
            {
                float e = keys[p + 3][head + i];
                // block formats' error is relative to the block's largest value (≤ 2 here), the others' to the value itself
                double bound = relTolerance * (type is KvCacheType.Q8_0 or KvCacheType.Q4_0 ? 2 : Math.Abs(e)) + 1e-7;
                Assert.True(Math.Abs(k[p * head + i] - e) <= bound, $"{type} key pos {p + 3} [{i}]: {k[p * head + i]} vs {e}");
                Assert.True(Math.Abs(v[p * head + i] + e) <= Math.Abs(e) / 2048 + 1e-7, $"F16 value pos {p + 3} [{i}]");
            }
        }
    }

    [Theory]
    // A head of 128 with one value of 40 rotates into values ≈ 3.5 ± 0.6, blocks of largest ≈ 4.5: the rms error is
    // about a step / √12, 4.5/127/3.5 ≈ 0.01 for Q8_0 and 4.5/8/3.5 ≈ 0.16 for Q4_0 (unrotated, the outlier's block
    // alone errs by 40/8/3.5 ≈ 1.4 rms in Q4_0).
    [InlineData(KvCacheType.Q8_0, 0.015)]
    [InlineData(KvCacheType.Q4_0, 0.25)]
    public void Quantized_heads_are_stored_rotated_and_read_back_unrotated(KvCacheType type, double rmsTolerance)
    {
        const int head = 128, kvDim = 2 * head;
        var cache = new KvCache(1, 8, kvDim, type, type, head);
        Assert.Equal(128, cache.KeyRotation); // llama.cpp: the largest power of two from 64 dividing the head
        Assert.Equal(64, cache.ValueRotation); // and 64 for values
        var rng = new Random(6);
        // one outlier per head: what the rotation is for
        var x = Enumerable.Range(0, kvDim).Select(i => i % head == 5 ? 40f : (float)(rng.NextDouble() * 2 - 1)).ToArray();
        cache.Write(0, 0, x, x);
        var k = new float[kvDim];
        var v = new float[kvDim];
        cache.ReadKeys(0, 0, 1, 0, kvDim, k);
        cache.ReadValues(0, 0, 1, 0, kvDim, v);
        double Rms(float[] y) => Math.Sqrt(x.Zip(y, (a, b) => (double)(a - b) * (a - b)).Average());
        Assert.True(Rms(k) < rmsTolerance, $"{type} keys: rms error {Rms(k)}");
        Assert.True(Rms(v) < rmsTolerance * 2, $"{type} values: rms error {Rms(v)}");
        // the same row unrotated (heads of 32 get no rotation) loses more to the outlier's block scale
        var plain = new KvCache(1, 8, kvDim, type, type, 32);
        Assert.Equal(0, plain.KeyRotation);
        plain.Write(0, 0, x, x);
        var kp = new float[kvDim];
        plain.ReadKeys(0, 0, 1, 0, kvDim, kp);
        Assert.True(Rms(k) < Rms(kp), $"{type}: rotated rms {Rms(k)} vs plain {Rms(kp)}");
        Assert.Throws<ArgumentException>(() => cache.ReadKeys(0, 0, 1, 32, 32, k)); // not whole rotation chunks
    }

    [Fact]
    public void Memory_grows_in_chunks_with_use_and_keeps_what_was_written()
    {
        const int kvDim = 64;
        var cache = new KvCache(3, 10_000, kvDim, KvCacheType.F16);
        Assert.Equal(0, cache.Bytes);
        var row = new float[kvDim];
        for (int p = 0; p < 700; p++)
        {
            row[0] = p;
            cache.Write(2, p, row, row);
            Assert.True(cache.Reserved > p && cache.Reserved % KvCache.GrowthChunk == 0, $"position {p}: {cache.Reserved} reserved");
        }
        Assert.True(cache.Reserved < 1100, $"{cache.Reserved} positions reserved for 700 written");
        Assert.Equal(3L * cache.Reserved * kvDim * 2 * 2, cache.Bytes);
        Assert.True(cache.Bytes < cache.CapacityBytes / 5);
        var back = new float[kvDim];
        for (int p = 0; p < 700; p += 37)
        {
            cache.ReadKeys(2, p, 1, 0, kvDim, back);
            Assert.Equal(p, back[0]);
        }
        // the last chunk stops at the capacity
        var small = new KvCache(1, 300, kvDim, KvCacheType.F32);
        small.Write(0, 299, row, row);
        Assert.Equal(300, small.Reserved);
        Assert.Throws<ArgumentOutOfRangeException>(() => small.Write(0, 300, row, row));
    }

    [Fact]
    public void Shift_drops_positions_moves_the_rest_and_repositions_keys()
    {
        const int kvDim = 32;
        var cache = new KvCache(2, 64, kvDim, KvCacheType.F32);
        var row = new float[kvDim];
        for (int p = 0; p < 20; p++)
        {
            Array.Fill(row, p);
            for (int l = 0; l < 2; l++) cache.Write(l, p, row, row);
        }
        cache.Length = 20;
        cache.Shift(keep: 2, discard: 8, (_, key) => key[1] += 1000);
        Assert.Equal(12, cache.Length);
        var k = new float[kvDim];
        var v = new float[kvDim];
        int[] expected = [0, 1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19];
        for (int l = 0; l < 2; l++)
            for (int p = 0; p < 12; p++)
            {
                cache.ReadKeys(l, p, 1, 0, kvDim, k);
                cache.ReadValues(l, p, 1, 0, kvDim, v);
                Assert.Equal(expected[p], k[0]);
                Assert.Equal(expected[p] + (p >= 2 ? 1000 : 0), k[1]); // only moved keys are repositioned
                Assert.Equal(expected[p], v[1]);
            }
    }

    [Fact]
    public void Block_formats_need_heads_of_a_multiple_of_32()
    {
        Assert.Throws<NotSupportedException>(() => new KvCache(1, 16, 48, KvCacheType.F16, KvCacheType.Q4_0, 24));
        Assert.Throws<NotSupportedException>(() => new KvCache(1, 16, 48, KvCacheType.Q8_0, KvCacheType.F16, 24));
        Assert.Throws<NotSupportedException>(() => new LatentKvCache(1, 16, 40, 8, KvCacheType.Q8_0));
    }
}
