using System.Runtime.Intrinsics.X86;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Tensors;

/// <summary>What the attention kernel tests share: one-layer caches of random rows, and the skip for a vector width the CPU lacks.</summary>
internal static class AttentionCaches
{
    /// <summary>
    /// One layer, 2 KV heads of <paramref name="hd"/>, <paramref name="positions"/> rows: keys uniform in [−2, 2), values
    /// in [−1, 1), then <paramref name="special"/> (if any) plants values in a row before it is written.
    /// </summary>
    public static KvCache Random(int positions, int hd, KvCacheType keyType, KvCacheType valueType, int seed,
        Action<float[], float[], int, Random>? special = null)
    {
        var cache = new KvCache(1, positions + 8, 2 * hd, keyType, valueType, hd);
        var rng = new Random(seed);
        var key = new float[2 * hd];
        var value = new float[2 * hd];
        for (int p = 0; p < positions; p++)
        {
            for (int i = 0; i < key.Length; i++) { key[i] = (float)(rng.NextDouble() * 4 - 2); value[i] = (float)(rng.NextDouble() * 2 - 1); }
            special?.Invoke(key, value, p, rng);
            cache.Write(0, p, key, value);
        }
        cache.Length = positions;
        return cache;
    }

    /// <summary>Skips the test when the CPU (or a DOTNET_Enable… switch) lacks what <paramref name="kernels"/> need at <paramref name="width"/> bits.</summary>
    public static void RequireWidth(int width, string kernels)
    {
        if (width == 512 && !Avx512F.IsSupported) Assert.Skip($"the 512-bit {kernels} need AVX-512, which this CPU (or DOTNET_EnableAVX512=0) has not");
        if (width == 256 && !(Avx2.IsSupported && Fma.IsSupported)) Assert.Skip($"the 256-bit {kernels} need AVX2 and FMA, which this CPU (or DOTNET_EnableAVX2=0) has not");
    }
}
