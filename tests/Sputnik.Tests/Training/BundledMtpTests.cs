using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>
/// The shipped model carries a trained MTP head (trained with the trunk frozen, docs/training.md "Multi-Token
/// Prediction"): self-speculation with it gives exactly the greedy answers of plain decoding, and the head's proposals
/// are mostly accepted (an untrained head is right about once in the vocabulary's 103 tokens).
/// </summary>
public class BundledMtpTests
{
    private static string Bundled => Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");

    [Fact]
    public void The_bundled_model_has_an_mtp_head_whose_speculation_keeps_the_greedy_answers()
    {
        using var m = SputnikModel.Load(Fixtures.Require(Bundled), new ModelOptions { Threads = 2 });
        Assert.True(m.Model is IMtpModel { HasMtpHead: true }, "the bundled model has no MTP head (deepseek2.nextn_predict_layers)");
        var gen = new Generator(m.Model, m.Tokenizer);
        long drafted = 0, accepted = 0;
        foreach (var problem in ReasoningTask.Create("arithmetic").EvalSet(3))
        {
            int[] prompt = R1Format.EncodePrompt(problem.Prompt);
            var plain = Generate(gen, m, prompt, null, out _);
            Assert.Contains(problem.Expected, m.Tokenizer.Decode(plain.ToArray()));
            foreach (int k in new[] { 1, 3 })
            {
                var spec = Generate(gen, m, prompt, new SpeculationOptions { Type = SpeculationType.Mtp, DraftMax = k }, out var stats);
                Assert.Equal(plain, spec);
                Assert.True(stats.DraftedTokens > 0, $"k={k}: nothing drafted for '{problem.Prompt}'");
                if (k == 1) { drafted += stats.DraftedTokens; accepted += stats.AcceptedTokens; }
            }
        }
        Assert.True(accepted >= 0.6 * drafted, $"the MTP head's next-but-one proposals were accepted {accepted} of {drafted} times");
    }

    private static List<int> Generate(Generator gen, SputnikModel m, int[] prompt, SpeculationOptions? spec, out GenerationStats stats)
    {
        stats = new GenerationStats();
        var o = new GenerationOptions { MaxTokens = 640, Sampling = SamplingOptions.Greedy, Speculation = spec };
        return gen.Generate(m.CreateState(), prompt, o, stats).Select(t => t.Id).ToList();
    }
}
