using System.Text;
using Sputnik.Server;
using Sputnik.Server.Routing;
using Xunit;

namespace Sputnik.Tests.Server.Routing;

/// <summary>
/// bench/route-bench.sh: time to first token and throughput of the replay on 1 replica against 3 behind
/// `sputnik route` (prefix and round-robin). Not part of the suite: it runs only with SPUTNIK_ROUTE_BENCH=1.
/// </summary>
public sealed class RouteBench
{
    [Fact]
    public async Task Replay_on_one_replica_and_on_three_behind_the_router()
    {
        if (Environment.GetEnvironmentVariable("SPUTNIK_ROUTE_BENCH") != "1") Assert.Skip("a benchmark: bench/route-bench.sh runs it (SPUTNIK_ROUTE_BENCH=1)");
        int conversations = int.TryParse(Environment.GetEnvironmentVariable("SPUTNIK_ROUTE_BENCH_CONVERSATIONS"), out int n) ? n : 200;
        var workload = new ConversationReplay.Options(Conversations: conversations, Turns: 4, Concurrency: 8, MaxTokens: 8);
        var report = new StringBuilder($"| setup | requests | answered | prefix hit rate | TTFT p50 | TTFT p95 | requests/s | wall |\n|---|---|---|---|---|---|---|---|\n");
        async Task Run(string name, int replicaCount, RoutingPolicy? policy, int seed)
        {
            var replicas = new List<ServerHost>();
            for (int i = 0; i < replicaCount; i++) replicas.Add(await ServerHost.StartAsync(ReplicaSet.ReplicaOptions()));
            RouterHost? router = policy is { } p ? await RouterHost.StartAsync(new RouterOptions { Port = 0, Replicas = [.. replicas.Select(r => r.BaseAddress)], Policy = p }) : null;
            try
            {
                string[] names = ["vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"];
                using var client = ConversationReplay.Client(router?.BaseAddress ?? replicas[0].BaseAddress);
                var result = await ConversationReplay.RunAsync(client, workload with { Seed = seed }, ct: TestContext.Current.CancellationToken);
                var counters = await ConversationReplay.ReadCountersAsync(replicas.Select(r => r.BaseAddress), TestContext.Current.CancellationToken, names);
                var ttft = result.Outcomes.Where(o => o.Done).Select(o => o.TtftMs).ToList();
                report.Append($"| {name} | {result.Outcomes.Count} | {result.Answered} | {counters[names[0]] / counters[names[1]]:P1} | " +
                    $"{ConversationReplay.Percentile(ttft, 0.5):F0} ms | {ConversationReplay.Percentile(ttft, 0.95):F0} ms | " +
                    $"{result.Answered / result.Elapsed.TotalSeconds:F1} | {result.Elapsed.TotalSeconds:F1} s |\n");
            }
            finally
            {
                if (router != null) await router.DisposeAsync();
                foreach (var r in replicas) await r.DisposeAsync();
            }
        }
        await Run("1 replica, direct", 1, null, seed: 11);
        await Run("3 replicas, route --policy prefix", 3, RoutingPolicy.Prefix, seed: 12);
        await Run("3 replicas, route --policy round-robin", 3, RoutingPolicy.RoundRobin, seed: 13);
        string text = report.ToString();
        Console.WriteLine(text);
        TestContext.Current.SendDiagnosticMessage(text);
        if (Environment.GetEnvironmentVariable("SPUTNIK_ROUTE_BENCH_OUT") is { Length: > 0 } file) File.WriteAllText(file, text);
    }
}
