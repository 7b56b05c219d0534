using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// Context shift keeps RoPE consistent: after dropping positions, the first layer's cached keys and values (which
/// depend only on the token and its position) equal those of a fresh prefill of the kept tokens at their new
/// positions; generation with --context-shift runs past a full context.
/// </summary>
public class ContextShiftTests
{
    private static int[] Prompt(int n, int vocab, int seed)
    {
        var rng = new Random(seed);
        return Enumerable.Range(0, n).Select(_ => rng.Next(1, vocab)).ToArray();
    }

    /// <summary>The first plane (layer 0) of an F32 cache as floats, positions [0, count).</summary>
    private static float[] FirstLayer(InferenceState s, int count)
    {
        var rows = s.Rows!;
        return MemoryMarshal.Cast<byte, float>(rows.Rows(0, 0, count)).ToArray();
    }

    internal static void ShiftedMatchesFresh(LanguageModel m)
    {
        const int keep = 3, discard = 17;
        var prompt = Prompt(45, m.Config.VocabSize, 5);
        var shifted = m.CreateState(64, KvCacheType.F32);
        m.Forward(shifted, prompt);
        Assert.True(m.CanShiftContext);
        m.ShiftContext(shifted, keep, discard);
        Assert.Equal(prompt.Length - discard, shifted.Position);

        var kept = prompt.Take(keep).Concat(prompt.Skip(keep + discard)).ToArray();
        var fresh = m.CreateState(64, KvCacheType.F32);
        m.Forward(fresh, kept);
        var a = FirstLayer(shifted, kept.Length);
        var b = FirstLayer(fresh, kept.Length);
        float mag = b.Max(Math.Abs);
        for (int i = 0; i < a.Length; i++)
            Assert.True(Math.Abs(a[i] - b[i]) <= 1e-4f * mag, $"{m.Config.Architecture} layer-0 cache element {i}: {a[i]} shifted vs {b[i]} fresh");
        // and the shifted state keeps decoding at the right position
        var next = m.Forward(shifted, [7]).ToArray();
        Assert.All(next, x => Assert.True(float.IsFinite(x)));
        Assert.Equal(kept.Length + 1, shifted.Position);
    }

    [Fact]
    public void Qwen2_keys_are_rerotated_to_their_new_positions()
    {
        using var m = ModelLoader.Load(GgufFile.Open(Fixtures.Require(RandomQwen2.Path_)), threads: 2);
        ShiftedMatchesFresh(m);
    }

    [Fact]
    public void DeepSeek2_latent_k_pe_is_rerotated_to_its_new_positions()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-shift-");
        try
        {
            using var m = TinyDeepSeek2Tests.LoadSynthTiny(dir.FullName, Sputnik.Tensors.GgmlType.F32, seed: 2);
            ShiftedMatchesFresh(m);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void Generation_with_context_shift_runs_past_a_full_context()
    {
        using var m = SputnikModel.Load(Fixtures.Require(Fixtures.Model("stories260K.gguf")), new ModelOptions { Threads = 1, ContextLength = 32 });
        var gen = new Generator(m.Model, m.Tokenizer);
        var prompt = m.Tokenizer.Encode("Once upon a time");
        var options = new GenerationOptions { MaxTokens = 80, Sampling = SamplingOptions.Greedy, StopAtEndOfGeneration = false };

        var full = new GenerationStats();
        var history = new List<int>();
        int stopped = gen.Generate(m.CreateState(), prompt, options, full, history).Count();
        Assert.Equal(FinishReason.ContextFull, full.FinishReason);
        Assert.True(stopped < 32, $"{stopped} tokens in a context of 32");

        var shifted = new GenerationStats();
        var state = m.CreateState();
        history = [];
        var tokens = gen.Generate(state, prompt, options with { ContextShift = true, KeepTokens = 1 }, shifted, history).Select(t => t.Id).ToList();
        Assert.Equal(FinishReason.Length, shifted.FinishReason);
        Assert.Equal(80, tokens.Count);
        Assert.True(shifted.ContextShifts >= 3, $"{shifted.ContextShifts} shifts");
        // Up to the first shift both runs are the same greedy sequence; the kept token (BOS) stays first.
        Assert.Equal(tokens.Take(stopped - 1), gen.Generate(m.CreateState(), prompt, options, new GenerationStats()).Select(t => t.Id).Take(stopped - 1));
        Assert.Equal(prompt[0], history[0]);
        Assert.True(state.Position <= 32 && history.Count == state.Position + 1, $"history {history.Count}, cache {state.Position}");
    }
}
