using System.Diagnostics;
using System.Text.RegularExpressions;
using Sputnik.Server;
using Sputnik.Server.Routing;
using Xunit;

namespace Sputnik.Tests.Server.Routing;

/// <summary>
/// A replica killed mid-replay (a real `sputnik serve` process, SIGKILL): requests it had not started streaming
/// reach another replica, and the router takes it out of rotation within 5 s.
/// </summary>
public sealed class RouterFailoverTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task Killing_a_replica_mid_run_loses_no_request_that_had_not_started_streaming()
    {
        await using var a = await ServerHost.StartAsync(ReplicaSet.ReplicaOptions());
        await using var b = await ServerHost.StartAsync(ReplicaSet.ReplicaOptions());
        using var child = await ChildReplica.StartAsync();
        await using var router = await RouterHost.StartAsync(new RouterOptions
        {
            Port = 0, Replicas = [a.BaseAddress, b.BaseAddress, child.BaseAddress], HealthInterval = TimeSpan.FromMilliseconds(500),
        });
        Assert.Equal(3, router.HealthyReplicas);
        using var client = ConversationReplay.Client(router.BaseAddress);
        string victim = child.BaseAddress.Authority;

        var killed = new TaskCompletionSource<DateTime>(TaskCreationOptions.RunContinuationsAsynchronously);
        int done = 0, servedByVictim = 0;
        var replay = ConversationReplay.RunAsync(client, new ConversationReplay.Options(Conversations: 60, Turns: 3, Concurrency: 6, MaxTokens: 8, Seed: 7,
            Deadline: TimeSpan.FromSeconds(30)), o =>
        {
            if (o.Replica == victim) Interlocked.Increment(ref servedByVictim);
            // Kill once a third of the requests are answered and the victim has answered some (it is mid-run, in rotation).
            if (Interlocked.Increment(ref done) >= 60 && Volatile.Read(ref servedByVictim) > 0 && !killed.Task.IsCompleted)
            {
                killed.TrySetResult(DateTime.UtcNow);
                child.Kill();
            }
        }, Ct);

        var killedAt = await killed.Task.WaitAsync(TimeSpan.FromSeconds(40), Ct);
        // The router's own gauge says when it stopped sending there.
        double outAfter = -1;
        while (DateTime.UtcNow - killedAt < TimeSpan.FromSeconds(10))
        {
            if (await ReplicaUpAsync(router, victim) == 0) { outAfter = (DateTime.UtcNow - killedAt).TotalSeconds; break; }
            await Task.Delay(50, Ct);
        }
        Assert.True(outAfter is >= 0 and < 5, $"the router still had {victim} in rotation {(outAfter < 0 ? "10+" : outAfter.ToString("F1"))} s after it died");

        var first = await replay;
        var lost = first.LostBeforeStreaming.ToList();
        Assert.True(lost.Count == 0, $"{lost.Count} requests that had not started streaming were lost: {string.Join(" | ", lost.Take(3).Select(o => o.Error))}");

        // From 5 s after the kill on, nothing more is sent there, and a second replay is answered in full.
        var settle = killedAt + TimeSpan.FromSeconds(5) - DateTime.UtcNow;
        if (settle > TimeSpan.Zero) await Task.Delay(settle, Ct);
        double attempts = await AttemptsAsync(router, victim);
        var second = await ConversationReplay.RunAsync(client, new ConversationReplay.Options(Conversations: 20, Turns: 2, Concurrency: 4, Seed: 8), ct: Ct);
        Assert.Equal(40, second.Answered);
        Assert.Equal(attempts, await AttemptsAsync(router, victim));
        TestContext.Current.SendDiagnosticMessage($"out of rotation after {outAfter:F2} s; {first.Answered} answered, {first.CutMidStream.Count()} cut mid-stream by the kill, " +
            $"{first.NotSent} turns not sent after a cut");
    }

    private static async Task<double> ReplicaUpAsync(RouterHost router, string replica) => await RouterGaugeAsync(router, "sputnik_router_replica_up", replica);
    private static async Task<double> AttemptsAsync(RouterHost router, string replica) => await RouterGaugeAsync(router, "sputnik_router_attempts_total", replica);

    private static async Task<double> RouterGaugeAsync(RouterHost router, string name, string replica)
    {
        using var http = new HttpClient();
        var samples = PrometheusText.Parse(await http.GetStringAsync(new Uri(router.BaseAddress, "metrics"), Ct));
        return samples.Single(s => s.Name == name && s.Labels["replica"] == replica).Value;
    }

    /// <summary>`sputnik serve` of the bundled model in its own process (so it can be killed as a crash would).</summary>
    private sealed class ChildReplica : IDisposable
    {
        private readonly Process _process;
        private ChildReplica(Process process, Uri baseAddress)
        {
            _process = process;
            BaseAddress = baseAddress;
        }

        public Uri BaseAddress { get; }

        public static async Task<ChildReplica> StartAsync()
        {
            var psi = new ProcessStartInfo("dotnet") { RedirectStandardError = true, RedirectStandardOutput = true };
            foreach (var arg in new[] { Path.Combine(AppContext.BaseDirectory, "Sputnik.Cli.dll"), "serve", "-m", TestServer.BundledModelPath, "--port", "0",
                "--parallel", "2", "--cache-ram", "0", "--ctx", "1024", "-t", "1", "--no-webui" })
                psi.ArgumentList.Add(arg);
            var p = Process.Start(psi)!;
            _ = p.StandardOutput.ReadToEndAsync();
            var end = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (DateTime.UtcNow < end)
            {
                var line = await p.StandardError.ReadLineAsync(Ct);
                if (line == null) break;
                var m = Regex.Match(line, @"at (http://[0-9.]+:\d+/)");
                if (m.Success)
                {
                    _ = p.StandardError.ReadToEndAsync();
                    return new ChildReplica(p, new Uri(m.Groups[1].Value));
                }
            }
            p.Kill();
            throw new InvalidOperationException("sputnik serve did not say where it listens within 60 s");
        }

        public void Kill() => _process.Kill();

        public void Dispose()
        {
            if (!_process.HasExited) _process.Kill();
            _process.WaitForExit(5000);
            _process.Dispose();
        }
    }
}
