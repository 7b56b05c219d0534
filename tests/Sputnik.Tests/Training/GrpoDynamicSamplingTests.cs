using Sputnik.Training;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>DAPO's dynamic sampling: extra rollout rounds only replace groups that carried no reward variance.</summary>
public class GrpoDynamicSamplingTests
{
    private static GrpoStep OneStep(string dir, int rounds)
    {
        var o = new GrpoOptions
        {
            Init = Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf"), Task = "addition", OutDir = dir,
            Steps = 1, Prompts = 4, Group = 4, Temperature = 0.6f, MaxNew = 160, Lr = 1e-5f, EvalEvery = 0, Threads = 2, SampleRounds = rounds,
        };
        GrpoStep last = default;
        new GrpoTrainer(o).Run(s => last = s);
        return last;
    }

    [Fact]
    public void Extra_rounds_fill_the_informative_groups_up_to_the_prompt_count()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"sputnik-dapo-{Environment.ProcessId}");
        try
        {
            var plain = OneStep(Path.Combine(dir, "plain"), rounds: 1);
            var dynamic = OneStep(Path.Combine(dir, "dynamic"), rounds: 4);
            Assert.Equal(4, plain.Groups);
            // The shipped model gets most additions right, so some groups of 4 are all correct (no signal).
            Assert.True(plain.InformativeGroups < 4, $"plain step had {plain.InformativeGroups} informative groups of 4");
            Assert.Equal(0, dynamic.Groups % 4);
            Assert.InRange(dynamic.Groups, 8, 16);
            Assert.InRange(dynamic.InformativeGroups, plain.InformativeGroups, 4); // round 0 is the plain step's
            // Rounds stop as soon as P informative groups are in; otherwise every round is used.
            if (dynamic.InformativeGroups < 4) Assert.Equal(16, dynamic.Groups);
            Assert.True(File.Exists(Path.Combine(dir, "dynamic", "grpo.gguf")));
        }
        finally
        {
            if (Directory.Exists(dir)) Directory.Delete(dir, recursive: true);
        }
    }
}
