using Sputnik.Cli.Commands;
using Sputnik.Cli.Simulation;
using Sputnik.Tests.Cli;
using Xunit;

namespace Sputnik.Tests.Deploy;

/// <summary>
/// The routing simulator on small configurations: it is deterministic for a seed, answers every turn, obeys Little's
/// law (its time-averaged requests in flight equal arrival rate × mean latency), routes nothing differently with one
/// replica, and shows what it was built to show: prefix affinity keeps far more of the prompt cache's hits than
/// round-robin and gets the first token out sooner.
/// </summary>
public sealed class ClusterSimulatorTests
{
    private static readonly Workload Small = new() { Conversations = 48, ArrivalSeconds = 120, SystemPrompts = 12, MeanThinkSeconds = 5 };

    private static SimulationResult Run(int replicas, RoutingPolicy policy, int seed = 7, CostModel? cost = null, Workload? workload = null) =>
        new ClusterSimulator(replicas, policy, cost ?? new CostModel()).Run(Conversation.Draw(workload ?? Small, seed));

    [Fact]
    public void TheSameSeedGivesTheSameNumbersAndAnotherSeedOthers()
    {
        foreach (var policy in Enum.GetValues<RoutingPolicy>())
        {
            Assert.Equal(Run(4, policy), Run(4, policy));
            Assert.NotEqual(Run(4, policy).TtftP95, Run(4, policy, seed: 8).TtftP95);
        }
    }

    [Fact]
    public void EveryTurnIsAnsweredAndLittlesLawHolds()
    {
        int turns = Conversation.Draw(Small, 7).Sum(c => c.Turns);
        foreach (var policy in Enum.GetValues<RoutingPolicy>())
        {
            var r = Run(3, policy);
            Assert.Equal(turns, r.Requests);
            Assert.True(r.TtftP50 > 0 && r.TtftP50 <= r.TtftP95, $"{policy}: p50 {r.TtftP50} p95 {r.TtftP95}");
            Assert.InRange(r.Utilization, 0.01, 1.0);
            // L = λW: the integral of requests in flight over time, against the requests' own latencies.
            Assert.InRange(r.MeanInSystem / (r.ArrivalRate * r.MeanLatency), 0.999, 1.001);
        }
    }

    [Fact]
    public void OneReplicaIsTheSameUnderEveryPolicy()
    {
        var rr = Run(1, RoutingPolicy.RoundRobin);
        Assert.Equal(rr with { Policy = RoutingPolicy.LeastLoaded }, Run(1, RoutingPolicy.LeastLoaded));
        Assert.Equal(rr with { Policy = RoutingPolicy.PrefixAffinity }, Run(1, RoutingPolicy.PrefixAffinity));
    }

    [Fact]
    public void PrefixAffinityKeepsTheCacheHitsThatRoundRobinLoses()
    {
        var rr = Run(4, RoutingPolicy.RoundRobin);
        var least = Run(4, RoutingPolicy.LeastLoaded);
        var prefix = Run(4, RoutingPolicy.PrefixAffinity);
        // Popular system prompts are cached on every replica anyway; what affinity saves is the conversations' own history.
        Assert.True(1 - prefix.PrefixHitRate < 0.75 * (1 - rr.PrefixHitRate), $"hit rate: prefix {prefix.PrefixHitRate:P1}, round-robin {rr.PrefixHitRate:P1}");
        Assert.True(prefix.PrefixHitRate > least.PrefixHitRate, $"hit rate: prefix {prefix.PrefixHitRate:P1}, least-loaded {least.PrefixHitRate:P1}");
        Assert.True(prefix.TtftP50 < rr.TtftP50, $"TTFT p50: prefix {prefix.TtftP50:F2}s, round-robin {rr.TtftP50:F2}s");
    }

    [Fact]
    public void NoCacheMeansNoHitsAndSlowerFirstTokens()
    {
        var none = Run(2, RoutingPolicy.PrefixAffinity, cost: new CostModel { CacheTokens = 0 });
        var some = Run(2, RoutingPolicy.PrefixAffinity);
        Assert.Equal(0, none.PrefixHitRate);
        Assert.True(some.PrefixHitRate > 0.3, $"{some.PrefixHitRate:P1}");
        Assert.True(none.TtftP50 > some.TtftP50);
    }

    [Fact]
    public void TheSweepWritesOneRowPerRunAndTheCsvParses()
    {
        var output = new StringWriter();
        var results = SimulateCommand.Sweep([1, 2], [RoutingPolicy.RoundRobin, RoutingPolicy.PrefixAffinity], 6, Small, new CostModel(), 3, 0.25, output);
        Assert.Equal(4, results.Count);
        Assert.Equal(5, output.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
        var rows = SimulateCommand.Csv(results).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, rows.Length);
        Assert.All(rows, row => Assert.Equal(11, row.Split(',').Length));
    }

    [Theory]
    [InlineData("--policy", "fastest", "--policy 'fastest'")]
    [InlineData("--replicas", "0", "--replicas '0'")]
    [InlineData("--replicas", "two", "--replicas 'two'")]
    [InlineData("--zipf", "-1", "Zipf exponent")]
    public void BadFlagsAreRefusedWithALine(string flag, string value, string message)
    {
        var r = flag == "--replicas" ? CliRunner.Run("simulate", flag, value) : CliRunner.Run("simulate", "--replicas", "1", flag, value);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains(message, r.StdErr, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", r.StdErr, StringComparison.Ordinal);
    }
}
