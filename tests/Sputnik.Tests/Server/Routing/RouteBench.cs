using System.Text;
using Sputnik.Server;
using Sputnik.Server.Routing;
using Xunit;

namespace Sputnik.Tests.Server.Routing;

/// <summary>
/// bench/route-bench.sh: the suite's replay (<see cref="RouterReplayTests.Workload"/>, replicas sized by
/// <see cref="ReplicaSet.ReplayReplicaOptions"/>) on 1 replica and on 3 behind `sputnik route` under each policy, for
/// several seeds, each on fresh replicas: prefix hit rate, time to first token and throughput. Not part of the suite:
/// it runs only with SPUTNIK_ROUTE_BENCH=1. SPUTNIK_ROUTE_BENCH_SEEDS (default 1,2,3),
/// SPUTNIK_ROUTE_BENCH_CACHE_MB (--cache-ram instead of the 7B-scaled size) and
/// SPUTNIK_ROUTE_BENCH_SYSTEM_PROMPTS (0: none) vary it.
/// </summary>
public sealed class RouteBench
{
    [Fact]
    public async Task Replay_on_one_replica_and_on_three_behind_the_router()
    {
        if (Environment.GetEnvironmentVariable("SPUTNIK_ROUTE_BENCH") != "1") Assert.Skip("a benchmark: bench/route-bench.sh runs it (SPUTNIK_ROUTE_BENCH=1)");
        int[] seeds = (Environment.GetEnvironmentVariable("SPUTNIK_ROUTE_BENCH_SEEDS") ?? "1,2,3").Split(',').Select(int.Parse).ToArray();
        var workload = RouterReplayTests.Workload;
        if (int.TryParse(Environment.GetEnvironmentVariable("SPUTNIK_ROUTE_BENCH_SYSTEM_PROMPTS"), out int systemPrompts))
            workload = workload with { SystemPrompts = systemPrompts };
        var options = ReplicaSet.ReplayReplicaOptions();
        if (double.TryParse(Environment.GetEnvironmentVariable("SPUTNIK_ROUTE_BENCH_CACHE_MB"), System.Globalization.CultureInfo.InvariantCulture, out double cacheMb))
            options = options with { CacheRamMb = cacheMb };
        var report = new StringBuilder($"--cache-ram {options.CacheRamMb:F3} MiB ({ReplicaSet.BundledBytesPerToken.Value} bytes a token), {workload}\n" +
            $"load average before: {File.ReadAllText("/proc/loadavg").Trim()}\n\n" +
            "| seed | setup | requests | answered | prefix hit rate | prompt tokens per request | TTFT p50 | TTFT p95 | requests/s | wall |\n" +
            "|---|---|---|---|---|---|---|---|---|---|\n");
        var rates = new Dictionary<(int, string), double>();
        async Task Run(int seed, string name, int replicaCount, RoutingPolicy? policy)
        {
            var replicas = new List<ServerHost>();
            for (int i = 0; i < replicaCount; i++) replicas.Add(await ServerHost.StartAsync(options));
            RouterHost? router = policy is { } p ? await RouterHost.StartAsync(new RouterOptions { Port = 0, Replicas = [.. replicas.Select(r => r.BaseAddress)], Policy = p }) : null;
            try
            {
                string[] names = ["vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"];
                using var client = ConversationReplay.Client(router?.BaseAddress ?? replicas[0].BaseAddress);
                var result = await ConversationReplay.RunAsync(client, workload with { Seed = seed }, ct: TestContext.Current.CancellationToken);
                var counters = await ConversationReplay.ReadCountersAsync(replicas.Select(r => r.BaseAddress), TestContext.Current.CancellationToken, names);
                var ttft = result.Outcomes.Where(o => o.Done).Select(o => o.TtftMs).ToList();
                double rate = counters[names[0]] / counters[names[1]];
                rates[(seed, name)] = rate;
                report.Append($"| {seed} | {name} | {result.Outcomes.Count} | {result.Answered} | {rate:P1} | {counters[names[1]] / result.Outcomes.Count:F0} | " +
                    $"{ConversationReplay.Percentile(ttft, 0.5):F0} ms | {ConversationReplay.Percentile(ttft, 0.95):F0} ms | " +
                    $"{result.Answered / result.Elapsed.TotalSeconds:F1} | {result.Elapsed.TotalSeconds:F1} s |\n");
            }
            finally
            {
                if (router != null) await router.DisposeAsync();
                foreach (var r in replicas) await r.DisposeAsync();
            }
        }
        foreach (int seed in seeds)
        {
            await Run(seed, "1 replica, direct", 1, null);
            await Run(seed, "3 replicas, route --policy prefix", 3, RoutingPolicy.Prefix);
            await Run(seed, "3 replicas, route --policy round-robin", 3, RoutingPolicy.RoundRobin);
            await Run(seed, "3 replicas, route --policy least-loaded", 3, RoutingPolicy.LeastLoaded);
        }
        report.Append($"\nload average after: {File.ReadAllText("/proc/loadavg").Trim()}\n");
        foreach (int seed in seeds)
        {
            double prefix = rates[(seed, "3 replicas, route --policy prefix")];
            report.Append($"seed {seed}: prefix / round-robin {prefix / rates[(seed, "3 replicas, route --policy round-robin")]:F2}×, " +
                $"prefix / least-loaded {prefix / rates[(seed, "3 replicas, route --policy least-loaded")]:F2}×\n");
        }
        string text = report.ToString();
        Console.WriteLine(text);
        TestContext.Current.SendDiagnosticMessage(text);
        if (Environment.GetEnvironmentVariable("SPUTNIK_ROUTE_BENCH_OUT") is { Length: > 0 } file) File.WriteAllText(file, text);
    }
}
