using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

public class KvCacheTests
{
    [Theory]
    [InlineData(KvCacheType.F32, 0.0)]
    [InlineData(KvCacheType.F16, 1.0 / 2048)]   // half: 11 significant bits
    [InlineData(KvCacheType.Q8_0, 1.0 / 254)]   // half a step of amax/127 per block of 32
    public void Round_trip_stays_within_format_precision(KvCacheType type, double relTolerance)
    {
        const int kvDim = 128, head = 64, positions = 70;
        var cache = new KvCache(2, 80, kvDim, type, head);
        var rng = new Random(4);
        var keys = new float[positions][];
        for (int p = 0; p < positions; p++)
        {
            keys[p] = Enumerable.Range(0, kvDim).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
            cache.Write(1, p, keys[p], keys[p].Select(v => -v).ToArray());
        }
        var buf = new float[positions * head];
        var k = cache.KeysAsFloat(1, 3, 60, head, head, buf, out int ks).ToArray();
        var v = cache.ValuesAsFloat(1, 3, 60, head, head, new float[positions * head], out int vs).ToArray();
        for (int p = 0; p < 60; p++)
        {
            for (int i = 0; i < head; i++)
            {
                float e = keys[p + 3][head + i];
                // Q8_0's error is relative to the block's largest value (≤ 2 here), the others' to the value itself
                double bound = relTolerance * (type == KvCacheType.Q8_0 ? 2 : Math.Abs(e)) + 1e-7;
                Assert.True(Math.Abs(k[p * ks + i] - e) <= bound, $"{type} key pos {p + 3} [{i}]: {k[p * ks + i]} vs {e}");
                Assert.True(Math.Abs(v[p * vs + i] + e) <= bound, $"{type} value pos {p + 3} [{i}]");
            }
        }
    }
}
