using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Sputnik.Server;
using Sputnik.Server.Routing;
using Xunit;

namespace Sputnik.Tests.Server.Routing;

/// <summary>
/// Three replicas of the bundled model on loopback (2 slots each, no prompt-cache RAM beyond the slots, so a replica
/// keeps a conversation's prefix only while it keeps coming back) behind `sputnik route` or HAProxy, and 200
/// four-turn conversations replayed through them. Prefix hit rates come from the replicas' own /metrics.
/// </summary>
public sealed class ReplicaSet : IAsyncLifetime
{
    public List<ServerHost> Replicas { get; } = [];
    private readonly Lazy<Task<double>> _roundRobin;

    public ReplicaSet() => _roundRobin = new(() => RouterReplayTests.HitRateThroughRouterAsync(this, RoutingPolicy.RoundRobin, seed: 2));

    public static ServerOptions ReplicaOptions(int port = 0) => new()
    {
        ModelPath = TestServer.BundledModelPath, Port = port, Parallel = 2, CacheRamMb = 0, ContextLength = 1024, Threads = 1, EnableWebApp = false,
    };

    public async ValueTask InitializeAsync()
    {
        for (int i = 0; i < 3; i++) Replicas.Add(await ServerHost.StartAsync(ReplicaOptions()));
    }

    public IEnumerable<Uri> Urls => Replicas.Select(r => r.BaseAddress);

    /// <summary>Round-robin's hit rate on this workload, measured once for the tests that compare against it.</summary>
    public Task<double> RoundRobinHitRate => _roundRobin.Value;

    public async ValueTask DisposeAsync()
    {
        foreach (var r in Replicas) await r.DisposeAsync();
    }
}

public sealed class RouterReplayTests(ReplicaSet replicas) : IClassFixture<ReplicaSet>
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    // The issue (#22) asks for 3x round-robin's hit rate; this workload measures 2.3x (router 40.1 % vs 17.7 %, HAProxy
    // 40.5 %; six turns gave 48.7 % vs 20.3 %), so the tests hold the reached level with a margin for loaded CI machines
    // and the issue stays open. TODO(#22): more slots per replica or RAM snapshots, and a workload where round-robin
    // cannot land on the same replica by chance. Not yet measured, reasoned: with 3 replicas round-robin sends a turn to
    // the replica that served the previous one a third of the time, so if that replica still holds the history it gets a
    // third of affinity's hits and the ratio is 3x at best; above 3x needs round-robin to lose those chance hits more
    // often than affinity loses its own. RAM snapshots (the server's default --cache-ram 512 MB; 0 here) were measured
    // (bench/RESULTS.md, routing check): affinity reaches the one-replica ceiling (65.3 % vs 66.3 %), but round-robin
    // doubles (37.0 %) on the older turns a conversation left on the other replicas, so the ratio stays 1.8x.
    internal const double RequiredRatio = 1.75;
    internal static readonly ConversationReplay.Options Workload = new(Conversations: 200, Turns: 4, Concurrency: 6, MaxTokens: 6, Deadline: TimeSpan.FromSeconds(90));

    /// <summary>Replays the workload through the replicas' counters: the fraction of prompt tokens they served from cache.</summary>
    private static async Task<double> HitRateAsync(ReplicaSet set, Uri entry, ConversationReplay.Options options, string what)
    {
        string[] names = ["vllm:prefix_cache_hits_total", "vllm:prefix_cache_queries_total"];
        var before = await ConversationReplay.ReadCountersAsync(set.Urls, Ct, names);
        using var client = ConversationReplay.Client(entry);
        var result = await ConversationReplay.RunAsync(client, options, ct: Ct);
        var after = await ConversationReplay.ReadCountersAsync(set.Urls, Ct, names);
        var failed = result.Outcomes.Where(o => !o.Done).Take(3).Select(o => o.Error);
        Assert.True(result.NotSent == 0 && result.Answered == options.Conversations * options.Turns,
            $"{what}: {result.Answered} of {options.Conversations * options.Turns} answered in {result.Elapsed.TotalSeconds:F1} s ({result.NotSent} not sent); failures: {string.Join(" | ", failed)}");
        double queries = after[names[1]] - before[names[1]];
        Assert.True(queries > 0, $"{what}: the replicas counted no prompt tokens");
        double rate = (after[names[0]] - before[names[0]]) / queries;
        TestContext.Current.SendDiagnosticMessage($"{what}: prefix hit rate {rate:P1} over {queries} prompt tokens, {result.Elapsed.TotalSeconds:F1} s");
        return rate;
    }

    internal static async Task<double> HitRateThroughRouterAsync(ReplicaSet set, RoutingPolicy policy, int seed)
    {
        await using var router = await RouterHost.StartAsync(new RouterOptions { Port = 0, Replicas = [.. set.Urls], Policy = policy });
        return await HitRateAsync(set, router.BaseAddress, Workload with { Seed = seed }, $"sputnik route --policy {policy}");
    }

    [Fact]
    public async Task Prefix_affinity_beats_round_robins_hit_rate_and_answers_every_request()
    {
        double affinity = await HitRateThroughRouterAsync(replicas, RoutingPolicy.Prefix, seed: 1);
        double roundRobin = await replicas.RoundRobinHitRate;
        Assert.True(affinity >= RequiredRatio * roundRobin, $"prefix affinity's hit rate {affinity:P1} is not {RequiredRatio}× round-robin's {roundRobin:P1}");
    }

    [Fact]
    public async Task HAProxy_with_the_documented_config_keeps_conversations_on_their_replica()
    {
        string? haproxy = FindOnPath("haproxy");
        if (haproxy == null) Assert.Skip("haproxy is not installed (apt-get install -y haproxy; .ci/run installs it)");
        int port = FreePort();
        var ports = replicas.Replicas.Select(r => r.BaseAddress.Port).ToArray();
        string config = HAProxyConfig(port, ports);
        string file = Path.Combine(Path.GetTempPath(), $"sputnik-haproxy-{Guid.NewGuid():N}.cfg");
        File.WriteAllText(file, config);
        using var proc = Process.Start(new ProcessStartInfo(haproxy, ["-db", "-f", file]) { RedirectStandardError = true })!;
        var stderr = proc.StandardError.ReadToEndAsync(Ct);
        try
        {
            await WaitForPortAsync(port, proc, stderr);
            // HAProxy's own health checks must see the replicas before it routes by hash.
            await Task.Delay(1500, Ct);
            double rate = await HitRateAsync(replicas, new Uri($"http://127.0.0.1:{port}/"), Workload with { Seed = 3, ConversationHeader = true }, "HAProxy");
            double roundRobin = await replicas.RoundRobinHitRate;
            Assert.True(rate >= RequiredRatio * roundRobin, $"HAProxy's hit rate {rate:P1} is not {RequiredRatio}× round-robin's {roundRobin:P1}");
        }
        finally
        {
            if (!proc.HasExited) proc.Kill();
            await proc.WaitForExitAsync(CancellationToken.None);
            File.Delete(file);
        }
    }

    /// <summary>docs/routing.md's HAProxy configuration with its listening port and server addresses swapped for the test's.</summary>
    internal static string HAProxyConfig(int port, int[] replicaPorts)
    {
        string doc = File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "docs", "routing.md"));
        var m = Regex.Match(doc, "```haproxy\n(.*?)```", RegexOptions.Singleline);
        Assert.True(m.Success, "docs/routing.md has no ```haproxy block");
        string config = m.Groups[1].Value.Replace("bind 127.0.0.1:8080", $"bind 127.0.0.1:{port}", StringComparison.Ordinal);
        Assert.Contains($"bind 127.0.0.1:{port}", config);
        for (int i = 0; i < replicaPorts.Length; i++)
        {
            string documented = $"127.0.0.1:{8081 + i}";
            Assert.Contains(documented, config);
            config = config.Replace(documented, $"127.0.0.1:{replicaPorts[i]}", StringComparison.Ordinal);
        }
        return config;
    }

    internal static string? FindOnPath(string name) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Concat(["/usr/sbin", "/sbin"])
            .Select(d => Path.Combine(d, name)).FirstOrDefault(File.Exists);

    internal static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    private static async Task WaitForPortAsync(int port, Process proc, Task<string> stderr)
    {
        var end = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (DateTime.UtcNow < end)
        {
            if (proc.HasExited) Assert.Fail($"haproxy exited with {proc.ExitCode}: {await stderr}");
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port, Ct);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50, Ct);
            }
        }
        Assert.Fail($"haproxy did not listen on {port} within 10 s");
    }
}
