using Sputnik.Inference;
using Sputnik.Server;
using Sputnik.Server.Scheduling;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>Prompts prefilled a chunk per scheduler step: same output as a whole-prompt prefill, and other slots keep decoding between the chunks.</summary>
public sealed class ChunkedPrefillTests
{
    private const string Story =
        "Once upon a time there was a little girl named Lily. She loved to play outside in the park with her dog. " +
        "One day she saw a big red ball under a tree. She ran to the ball and kicked it very high. The dog barked and ran after it.";

    private static SputnikModel Load(string path) => SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 512 });

    private static string Stories => Fixtures.Require(Fixtures.Model("stories260K.gguf"));

    /// <summary>Drives one generation to the end, skipping the chunk-only steps; returns the token ids and how many chunk steps there were.</summary>
    private static (int[] Ids, int ChunkSteps, GenerationStats Stats) Run(SputnikModel m, int[] prompt, int chunk)
    {
        var gen = new Generator(m.Model, m.Tokenizer);
        var handoff = new DecodeHandoff { PrefillChunk = chunk };
        var stats = new GenerationStats();
        var ids = new List<int>();
        int chunkSteps = 0;
        foreach (var t in gen.Generate(m.CreateState(), prompt, new GenerationOptions { MaxTokens = 24, Sampling = SamplingOptions.Greedy, StopAtEndOfGeneration = false }, stats, handoff: handoff))
        {
            if (handoff.Prefilling) chunkSteps++;
            else ids.Add(t.Id);
        }
        return (ids.ToArray(), chunkSteps, stats);
    }

    public static TheoryData<string, int> Models() => new()
    {
        { "stories260K", 1 }, { "stories260K", 7 }, { "stories260K", 64 },
        { "deepseek2-tiny", 5 }, { "deepseek2-tiny", 32 },
    };

    [Theory]
    [MemberData(nameof(Models))]
    public void Greedy_output_is_identical_with_and_without_chunking(string model, int chunk)
    {
        using var m = Load(model == "deepseek2-tiny" ? TinyDeepSeek2File.Path : Stories);
        var prompt = m.Tokenizer.Encode(Story);
        Assert.True(prompt.Length > chunk, $"the prompt ({prompt.Length} tokens) must span several chunks");
        var whole = Run(m, prompt, 0);
        var chunked = Run(m, prompt, chunk);
        Assert.Equal(0, whole.ChunkSteps);
        Assert.Equal((prompt.Length + chunk - 1) / chunk - 1, chunked.ChunkSteps);
        Assert.Equal(whole.Ids, chunked.Ids);
        Assert.Equal(prompt.Length, chunked.Stats.PromptTokens);
        Assert.Equal(24, chunked.Stats.GeneratedTokens);
    }

    /// <summary>Wraps the batched executor and logs, after every step, how far each job has got.</summary>
    private sealed class RecordingExecutor(IStepExecutor inner, ManualResetEventSlim gate) : IStepExecutor
    {
        public readonly List<Dictionary<InferenceJob, (int Position, int Generated)>> Log = [];

        public void Step(IReadOnlyList<ActiveSequence> sequences, Action<ActiveSequence> stepOne)
        {
            gate.Wait(TestContext.Current.CancellationToken); // both jobs are queued before the first step runs
            inner.Step(sequences, stepOne);
            Log.Add(sequences.ToDictionary(s => s.Job, s => (s.Slot.State.Position, s.Job.Stats.GeneratedTokens)));
        }
    }

    [Theory]
    [InlineData(16)]
    [InlineData(0)]
    public async Task A_decoding_slot_gets_a_token_between_the_prefill_chunks_of_a_long_prompt(int chunk)
    {
        using var m = Load(Stories);
        using var gate = new ManualResetEventSlim();
        var executor = new RecordingExecutor(new BatchedStepExecutor(m.Model), gate);
        var options = new GenerationOptions { MaxTokens = 60, Sampling = SamplingOptions.Greedy, StopAtEndOfGeneration = false };
        var ct = TestContext.Current.CancellationToken;
        var decoding = new InferenceJob(m.Tokenizer.Encode("Lily"), options, ct);
        var longPrompt = m.Tokenizer.Encode(Story);
        var prefilling = new InferenceJob(longPrompt, options with { MaxTokens = 4 }, ct);
        using (var scheduler = new Scheduler(m, parallel: 2, maxQueue: 4, new ServerMetrics(), executor: executor, prefillChunk: chunk))
        {
            scheduler.Submit(decoding);
            scheduler.Submit(prefilling);
            gate.Set();
            await foreach (var _ in decoding.Events.Reader.ReadAllAsync(ct)) { }
            await foreach (var _ in prefilling.Events.Reader.ReadAllAsync(ct)) { }
        }
        Assert.Equal(60, decoding.Stats.GeneratedTokens);
        Assert.Equal(4, prefilling.Stats.GeneratedTokens);

        // Steps after which the long prompt was partly in its cache, and the decode tokens streamed meanwhile.
        var partial = executor.Log.Where(s => s.TryGetValue(prefilling, out var p) && p.Position > 0 && p.Position < longPrompt.Length).ToList();
        if (chunk == 0)
        {
            Assert.Empty(partial); // the whole prompt went in within one step: the other slot waited for all of it
            return;
        }
        Assert.Equal((longPrompt.Length + chunk - 1) / chunk - 1, partial.Count);
        Assert.All(partial, s => Assert.Equal(0, s[prefilling].Generated));
        // Every step that fed a chunk also gave the decoding slot its next token.
        var decoded = partial.Select(s => s[decoding].Generated).ToList();
        Assert.Equal(Enumerable.Range(decoded[0], decoded.Count), decoded);
        Assert.True(decoded[^1] < 60, "the decode stream must still be running while the prompt is prefilled");
    }
}
