using Sputnik.Inference;
using Sputnik.Server.Scheduling;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>The batched executor against plain per-sequence generation: same tokens, same text, same counts.</summary>
public class BatchedStepExecutorTests
{
    private static SputnikModel Load() => SputnikModel.Load(Fixtures.Require(Fixtures.Model("stories260K.gguf")), new ModelOptions { Threads = 1, ContextLength = 256 });

    private static GenerationOptions[] Options() =>
    [
        new() { MaxTokens = 30, Sampling = SamplingOptions.Greedy },
        new() { MaxTokens = 12, Sampling = SamplingOptions.Greedy },
        new() { MaxTokens = 40, Sampling = SamplingOptions.Greedy, StopStrings = ["the"] },
        new() { MaxTokens = 35, Sampling = SamplingOptions.Greedy,
            Reasoning = new ReasoningOptions { MaxThinkingTokens = 5, StartsInThinking = true, Cue = "" } },
        new() { MaxTokens = 25, Sampling = new SamplingOptions { Temperature = 0.8f, Seed = 7 } },
    ];

    private static readonly string[] Prompts = ["Once upon a time", "Lily", "The dog ran to the park and", "Tom had a red ball", "One day"];

    [Fact]
    public void Batched_steps_produce_the_same_generations_as_solo_runs()
    {
        using var m = Load();
        var gen = new Generator(m.Model, m.Tokenizer);
        var options = Options();

        var solo = new List<(string Text, int[] Ids, GenerationStats Stats)>();
        for (int i = 0; i < Prompts.Length; i++)
        {
            var stats = new GenerationStats();
            var steps = gen.Generate(m.CreateState(), m.Tokenizer.Encode(Prompts[i]), options[i], stats).ToList();
            solo.Add((string.Concat(steps.Select(s => s.Text)), steps.Select(s => s.Id).ToArray(), stats));
        }

        var executor = new BatchedStepExecutor(m.Model);
        var active = new List<ActiveSequence>();
        var outputs = new Dictionary<ActiveSequence, List<GeneratedToken>>();
        for (int i = 0; i < Prompts.Length; i++)
        {
            var job = new InferenceJob(m.Tokenizer.Encode(Prompts[i]), options[i], CancellationToken.None);
            var slot = new Slot(i, m.CreateState());
            var handoff = new DecodeHandoff();
            var seq = new ActiveSequence(job, slot, gen.Generate(slot.State, job.Prompt, job.Options, job.Stats, slot.History, default, handoff).GetEnumerator(), handoff);
            active.Add(seq);
            outputs[seq] = [];
        }
        var all = active.ToList();
        int widest = 0;
        while (active.Count > 0)
        {
            widest = Math.Max(widest, active.Count(a => a.Handoff.PendingToken >= 0));
            var done = new List<ActiveSequence>();
            executor.Step(active, a =>
            {
                if (a.Steps.MoveNext()) outputs[a].Add(a.Steps.Current);
                else done.Add(a);
            });
            active.RemoveAll(done.Contains);
        }

        Assert.Equal(Prompts.Length, widest); // every sequence was fed in one batched forward at least once
        for (int i = 0; i < all.Count; i++)
        {
            var steps = outputs[all[i]];
            Assert.Equal(solo[i].Ids, steps.Select(s => s.Id).ToArray());
            Assert.Equal(solo[i].Text, string.Concat(steps.Select(s => s.Text)));
            var stats = all[i].Job.Stats;
            Assert.Equal(solo[i].Stats.GeneratedTokens, stats.GeneratedTokens);
            Assert.Equal(solo[i].Stats.ReasoningTokens, stats.ReasoningTokens);
            Assert.Equal(solo[i].Stats.FinishReason, stats.FinishReason);
            Assert.Equal(solo[i].Stats.StopString, stats.StopString);
            // the cache holds the history but its last sample, which no step feeds
            Assert.Equal(all[i].Slot.History.Count - 1, all[i].Slot.State.Position);
        }
    }
}
