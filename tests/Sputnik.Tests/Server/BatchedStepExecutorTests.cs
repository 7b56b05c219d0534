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

    [Fact]
    public void Speculation_once_few_sequences_are_left_changes_no_output()
    {
        using var m = Load();
        var gen = new Generator(m.Model, m.Tokenizer);
        var options = Options();
        var speculation = new SpeculationOptions { Type = SpeculationType.NgramMod, NgramSize = 2, DraftMax = 4 };
        var solo = new List<int[]>();
        for (int i = 0; i < Prompts.Length; i++)
            solo.Add(gen.Generate(m.CreateState(), m.Tokenizer.Encode(Prompts[i]), options[i], new GenerationStats()).Select(s => s.Id).ToArray());

        // Five sequences batch; as they finish, the last two speculate (each with its own proposal source).
        var executor = new BatchedStepExecutor(m.Model, speculativeSlots: 2);
        var active = new List<ActiveSequence>();
        var outputs = new Dictionary<ActiveSequence, List<int>>();
        for (int i = 0; i < Prompts.Length; i++)
        {
            var slot = new Slot(i, m.CreateState()) { Draft = new NgramTable(2) };
            var o = options[i] with { Speculation = speculation, DraftSource = slot.Draft };
            var job = new InferenceJob(m.Tokenizer.Encode(Prompts[i]), o, CancellationToken.None);
            var handoff = new DecodeHandoff();
            var seq = new ActiveSequence(job, slot, gen.Generate(slot.State, job.Prompt, o, job.Stats, slot.History, default, handoff).GetEnumerator(), handoff, speculates: true);
            active.Add(seq);
            outputs[seq] = [];
        }
        var all = active.ToList();
        while (active.Count > 0)
        {
            var done = new List<ActiveSequence>();
            executor.Step(active, a =>
            {
                if (a.Steps.MoveNext()) outputs[a].Add(a.Steps.Current.Id);
                else done.Add(a);
            });
            foreach (var a in done) a.Steps.Dispose(); // as the scheduler does: the generation's finally drops unchecked proposals
            active.RemoveAll(done.Contains);
        }
        for (int i = 0; i < all.Count; i++)
        {
            Assert.Equal(solo[i], outputs[all[i]].ToArray());
            // Nothing unchecked stays behind: the cache holds the history, or all of it but the last sample.
            Assert.InRange(all[i].Slot.State.Position, all[i].Slot.History.Count - 1, all[i].Slot.History.Count);
        }
        int drafted = all.Sum(a => a.Job.Stats.DraftedTokens), accepted = all.Sum(a => a.Job.Stats.AcceptedTokens);
        Assert.True(drafted > 0, "no sequence speculated once only two were left");
        Assert.InRange(accepted, 1, drafted);
    }
}
