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
    public void Sliding_window_layers_keep_a_ring_of_window_plus_batch_rows()
    {
        const int kvDim = 32, window = 10, batch = 4, ring = window + batch - 1;
        // layer 0 local, layer 1 global; F16 rows of keys and values: 2 · 32 · 2 bytes
        var cache = new KvCache(2, 1000, kvDim, KvCacheType.F16, KvCacheType.F16, kvDim, [window, 0], batch);
        Assert.True(cache.HasRing);
        Assert.Equal(batch, cache.MaxBatch);
        Assert.Equal(ring, cache.LayerRows(0));
        Assert.Equal(1000, cache.LayerRows(1));
        Assert.Equal((ring + 1000L) * kvDim * 4, cache.CapacityBytes);
        var row = new float[kvDim];
        for (int p = 0; p < 300; p++)
        {
            Array.Fill(row, p);
            for (int l = 0; l < 2; l++) cache.Write(l, p, row, row);
        }
        cache.Length = 300;
        Assert.Equal((ring + (long)cache.Reserved) * kvDim * 4, cache.Bytes); // the ring stopped growing at its size
        var k = new float[kvDim];
        for (int p = 300 - ring; p < 300; p++)
        {
            cache.ReadKeys(0, p, 1, 0, kvDim, k);
            Assert.Equal(p, k[0]);
        }
        // an overwritten position is refused, not read as the one that took its row
        Assert.Throws<ArgumentOutOfRangeException>(() => cache.ReadKeys(0, 300 - ring - 1, 1, 0, kvDim, k));
        cache.ReadKeys(1, 5, 1, 0, kvDim, k);
        Assert.Equal(5, k[0]);

        // A context small enough for window + batch keeps every position: no ring.
        var small = new KvCache(2, ring, kvDim, KvCacheType.F16, KvCacheType.F16, kvDim, [window, 0], batch);
        Assert.False(small.HasRing);
        Assert.Equal(int.MaxValue, small.MaxBatch);
    }

    [Fact]
    public void A_ring_can_be_cut_back_only_while_it_holds_the_next_window()
    {
        const int kvDim = 32, window = 4, batch = 4; // a ring of 7 rows
        var cache = new KvCache(1, 100, kvDim, KvCacheType.F32, KvCacheType.F32, kvDim, [window], batch);
        var row = new float[kvDim];
        for (int p = 0; p < 12; p++) cache.Write(0, p, row, row);
        cache.Length = 12;
        // positions 5 … 11 are held: position 8's window is 5 … 8, position 7's reaches 4
        Assert.Equal(12, cache.Reusable(12));
        Assert.Equal(8, cache.Reusable(8));
        Assert.Equal(0, cache.Reusable(7));
        Assert.Equal(12, cache.Reusable(50)); // never past what is held
        // a global cache cuts anywhere
        var plain = new KvCache(1, 100, kvDim, KvCacheType.F32, KvCacheType.F32, kvDim);
        for (int p = 0; p < 12; p++) plain.Write(0, p, row, row);
        plain.Length = 12;
        Assert.Equal(3, plain.Reusable(3));
    }

    [Theory]
    [InlineData(KvCacheType.F32)]
    [InlineData(KvCacheType.Q8_0)]
    public void Shifting_a_ring_moves_what_it_holds_as_a_whole_cache_would(KvCacheType type)
    {
        const int kvDim = 32, window = 4, batch = 3; // 6 rows
        var ringed = new KvCache(1, 64, kvDim, type, type, kvDim, [window], batch);
        var whole = new KvCache(1, 64, kvDim, type, type, kvDim);
        var row = new float[kvDim];
        for (int p = 0; p < 30; p++)
        {
            for (int i = 0; i < kvDim; i++) row[i] = p + i / 64f;
            ringed.Write(0, p, row, row);
            whole.Write(0, p, row, row);
        }
        ringed.Length = whole.Length = 30;
        KvCache.KeyAction move = (_, key) => key[1] += 0.5f;
        ringed.Shift(keep: 2, discard: 10, move);
        whole.Shift(keep: 2, discard: 10, move);
        Assert.Equal(20, ringed.Length);
        Assert.Equal(20, ringed.Reusable(20)); // the next window (17 … 20) is held: old positions 27 … 29
        var a = new float[kvDim];
        var b = new float[kvDim];
        for (int p = 14; p < 20; p++)
        {
            ringed.ReadKeys(0, p, 1, 0, kvDim, a);
            whole.ReadKeys(0, p, 1, 0, kvDim, b);
            Assert.Equal(b, a);
            ringed.ReadValues(0, p, 1, 0, kvDim, a);
            whole.ReadValues(0, p, 1, 0, kvDim, b);
            Assert.Equal(b, a);
        }
        // the kept positions 0 and 1 had left the ring before the shift: cutting back to them needs a recompute
        Assert.Throws<ArgumentOutOfRangeException>(() => ringed.ReadKeys(0, 1, 1, 0, kvDim, a));
        Assert.Equal(0, ringed.Reusable(3));

        // A shift whose next window reaches into kept positions the ring had dropped says so.
        var tight = new KvCache(1, 64, kvDim, type, type, kvDim, [window], batch);
        for (int p = 0; p < 12; p++) tight.Write(0, p, row, row);
        tight.Length = 12;
        tight.Shift(keep: 3, discard: 7, move); // new length 5: its window 2 … 5 needs old position 2, long gone
        Assert.Equal(5, tight.Length);
        Assert.Equal(0, tight.Reusable(5));
    }

    [Fact]
    public void Block_formats_need_heads_of_a_multiple_of_32()
    {
        Assert.Throws<NotSupportedException>(() => new KvCache(1, 16, 48, KvCacheType.F16, KvCacheType.Q4_0, 24));
        Assert.Throws<NotSupportedException>(() => new KvCache(1, 16, 48, KvCacheType.Q8_0, KvCacheType.F16, 24));
        Assert.Throws<NotSupportedException>(() => new LatentKvCache(1, 16, 40, 8, KvCacheType.Q8_0));
    }
}
