using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tensors;
using Xunit;
using static Sputnik.Tests.Models.TinyDeepSeek2Tests;

namespace Sputnik.Tests.Models;

/// <summary>
/// Batched prefill of deepseek2 (matrix × matrix projections, MoE tokens grouped by expert, chunked) against feeding
/// the same tokens one at a time through the decode path.
/// </summary>
public class DeepSeek2PrefillTests
{
    private static readonly int[] Prompt = [3, 17, 5, 39, 0, 22, 8, 31, 12, 7, 3, 3, 25];

    /// <summary>Logits after each prompt token by decode steps, the routing counts, and the state for a further step.</summary>
    private static (float[] Last, MoeStats Stats, InferenceState State) TokenByToken(DeepSeek2 model, KvCacheType kv)
    {
        var stats = model.MoeStats = model.CreateMoeStats();
        var state = model.CreateState(64, kv);
        float[] last = [];
        foreach (int t in Prompt) last = model.Forward(state, [t]).ToArray();
        model.MoeStats = null;
        return (last, stats, state);
    }

    private static void AssertClose(float[] want, float[] got, double tolerance, string what)
    {
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++) Assert.True(Math.Abs(got[i] - want[i]) < tolerance, $"{what} logit {i}: {got[i]} vs {want[i]}");
    }

    private static void Check(DeepSeek2 model, KvCacheType kv, double tolerance)
    {
        var (want, wantStats, stepped) = TokenByToken(model, kv);
        // Chunks of 5: the second and third chunk start mid-cache, so their attention reads rows of earlier chunks.
        model.MaxBatch = 5;
        var stats = model.MoeStats = model.CreateMoeStats();
        var batched = model.CreateState(64, kv);
        var got = model.Forward(batched, Prompt).ToArray();
        model.MoeStats = null;
        AssertClose(want, got, tolerance, "prefill");
        Assert.Equal(Prompt.Length, batched.Position);
        // Same experts chosen for every token of every layer.
        Assert.Equal(wantStats.Tokens, stats.Tokens);
        for (int l = 0; l < stats.Layers; l++) Assert.Equal(wantStats.Counts(l).ToArray(), stats.Counts(l).ToArray());
        // The cache rows prefill wrote serve the next decode step like the stepped ones.
        AssertClose(model.Forward(stepped, [9]).ToArray(), model.Forward(batched, [9]).ToArray(), tolerance, "next step");
    }

    // Measured max |Δlogit| ≤ 4e-7 with logits up to 1.8, F32 and F16 latent alike (both paths round the same rows
    // to F16): summation order only.
    [Theory]
    [InlineData("v2", KvCacheType.F32)]
    [InlineData("v3", KvCacheType.F32)]
    [InlineData("v2", KvCacheType.F16)]
    [InlineData("v3", KvCacheType.F16)]
    public void Batched_prefill_matches_token_by_token(string variant, KvCacheType kv)
    {
        var spec = variant == "v2" ? V2Style : V3Style;
        var dir = Directory.CreateTempSubdirectory("sputnik-ds2-prefill-");
        try
        {
            var (path, _) = WriteModel(dir.FullName, spec);
            using var model = (DeepSeek2)ModelLoader.Load(GgufFile.Open(path), threads: 2);
            Check(model, kv, 1e-4);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    // Quantized weights: both paths quantize each activation row the same way (Q8_0 / Q8_K), so only the kernels'
    // summation order differs (measured max |Δlogit| 8e-6).
    [Theory]
    [InlineData(GgmlType.Q8_0)]
    [InlineData(GgmlType.Q4_K)]
    public void Batched_prefill_matches_token_by_token_on_quantized_synth(GgmlType type)
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-ds2-prefill-");
        try
        {
            using var model = LoadSynthTiny(dir.FullName, type, seed: 3);
            Check(model, KvCacheType.F16, 1e-4);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
