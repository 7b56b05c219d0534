using System.CommandLine;
using System.Globalization;
using System.Text;
using Sputnik.Cli.Simulation;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik simulate [--replicas 1,2,4,…] [--policy all|round-robin|least-loaded|prefix] …` — replays a simulated
/// multi-turn chat workload over N replicas under each routing policy (<see cref="ClusterSimulator"/>) and prints
/// prefix hit rate, p50/p95 time to first token and output tokens/s per replica; --csv and --charts save them.
/// </summary>
internal static class SimulateCommand
{
    public static Command Create()
    {
        var w = new Workload();
        var c = new CostModel();
        var replicas = new Option<string>("--replicas") { Description = "Replica counts to simulate, comma-separated", DefaultValueFactory = _ => "1,2,4,8,16,32,64" };
        var policy = new Option<string>("--policy") { Description = "round-robin, least-loaded, prefix, or all", DefaultValueFactory = _ => "all" };
        var perReplica = new Option<int>("--conversations-per-replica") { Description = "Conversations started per replica over the arrival window (the load scales with the replicas)", DefaultValueFactory = _ => 30 };
        var seed = new Option<int>("--seed") { Description = "Seed of the workload's random draws (same seed, same numbers)", DefaultValueFactory = _ => 1 };
        var window = new Option<double>("--arrival-seconds") { Description = "Conversations start over this many seconds", DefaultValueFactory = _ => w.ArrivalSeconds };
        var systems = new Option<int>("--system-prompts") { Description = "Distinct system prompts, drawn with Zipf popularity", DefaultValueFactory = _ => w.SystemPrompts };
        var zipf = new Option<double>("--zipf") { Description = "Zipf exponent of the system prompts' popularity", DefaultValueFactory = _ => w.ZipfExponent };
        var think = new Option<double>("--think-seconds") { Description = "Mean pause between a reply and the next message", DefaultValueFactory = _ => w.MeanThinkSeconds };
        var slots = new Option<int>("--slots") { Description = "Sequences per replica at once (--parallel)", DefaultValueFactory = _ => c.Slots };
        var cacheTokens = new Option<int>("--cache-tokens") { Description = "Tokens of KV a replica keeps for prefix reuse", DefaultValueFactory = _ => c.CacheTokens };
        var prefillTps = new Option<double>("--prefill-tps") { Description = "Prefill tokens/s of one replica at depth 0 (default: qwen2-1.5B Q4_K_M, 2 threads)", DefaultValueFactory = _ => 1 / c.PrefillSecondsPerToken };
        var decodeTps = new Option<double>("--decode-tps") { Description = "Decode tokens/s of one sequence at depth 0", DefaultValueFactory = _ => 1 / c.DecodeSecondsPerToken };
        var balance = new Option<double>("--balance-factor") { Description = "Bounded loads: a replica takes a request below (1 + this) × the mean load", DefaultValueFactory = _ => 0.25 };
        var csv = new Option<string?>("--csv") { Description = "Also write the results to this CSV file" };
        var charts = new Option<string?>("--charts") { Description = "Draw PNG charts of the results into this folder" };
        var cmd = new Command("simulate", "Simulate chat traffic over N replicas under round-robin, least-loaded and prefix-affinity routing")
        {
            replicas, policy, perReplica, seed, window, systems, zipf, think, slots, cacheTokens, prefillTps, decodeTps, balance, csv, charts,
        };
        cmd.SetAction(r =>
        {
            var counts = Counts(r.GetValue(replicas)!);
            var policies = Policies(r.GetValue(policy)!);
            int per = r.GetValue(perReplica);
            if (per < 1) throw new ArgumentException($"--conversations-per-replica {per} must be at least 1");
            double pre = r.GetValue(prefillTps), dec = r.GetValue(decodeTps);
            if (!(pre > 0) || !(dec > 0)) throw new ArgumentException("--prefill-tps and --decode-tps must be positive");
            var cost = c with
            {
                Slots = r.GetValue(slots), CacheTokens = r.GetValue(cacheTokens), PrefillSecondsPerToken = 1 / pre, DecodeSecondsPerToken = 1 / dec,
            };
            var workload = w with
            {
                ArrivalSeconds = r.GetValue(window), SystemPrompts = r.GetValue(systems), ZipfExponent = r.GetValue(zipf), MeanThinkSeconds = r.GetValue(think),
            };
            var results = Sweep(counts, policies, per, workload, cost, r.GetValue(seed), r.GetValue(balance), Console.Out);
            if (r.GetValue(csv) is { } file) File.WriteAllText(file, Csv(results));
            if (r.GetValue(charts) is { } dir) SimulationCharts.Draw(results, dir);
            return 0;
        });
        return cmd;
    }

    /// <summary>Runs every (replica count, policy) pair on the same workload per replica count, printing a row each.</summary>
    internal static List<SimulationResult> Sweep(int[] counts, RoutingPolicy[] policies, int conversationsPerReplica, Workload workload, CostModel cost,
        int seed, double balanceFactor, TextWriter output)
    {
        var results = new List<SimulationResult>();
        output.WriteLine($"{"policy",-16}{"replicas",9}{"requests",10}{"hit rate",10}{"TTFT p50",11}{"TTFT p95",11}{"out t/s/rep",13}{"busy",7}");
        foreach (int n in counts)
        {
            var conversations = Conversation.Draw(workload with { Conversations = conversationsPerReplica * n }, seed);
            foreach (var p in policies)
            {
                var res = new ClusterSimulator(n, p, cost, balanceFactor).Run(conversations);
                results.Add(res);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"{Name(p),-16}{n,9}{res.Requests,10}{res.PrefixHitRate,10:P1}{res.TtftP50,10:F2}s{res.TtftP95,10:F2}s{res.OutputTokensPerSecondPerReplica,13:F1}{res.Utilization,7:P0}"));
            }
        }
        return results;
    }

    internal static string Csv(IEnumerable<SimulationResult> results)
    {
        var sb = new StringBuilder("policy,replicas,requests,prefix_hit_rate,ttft_p50_s,ttft_p95_s,output_tokens_per_s_per_replica,utilization,mean_in_system,arrival_rate,mean_latency_s\n");
        foreach (var x in results)
            sb.Append(string.Create(CultureInfo.InvariantCulture,
                $"{Name(x.Policy)},{x.Replicas},{x.Requests},{x.PrefixHitRate:F4},{x.TtftP50:F3},{x.TtftP95:F3},{x.OutputTokensPerSecondPerReplica:F2},{x.Utilization:F4},{x.MeanInSystem:F3},{x.ArrivalRate:F4},{x.MeanLatency:F3}\n"));
        return sb.ToString();
    }

    internal static string Name(RoutingPolicy p) => p switch
    {
        RoutingPolicy.RoundRobin => "round-robin",
        RoutingPolicy.LeastLoaded => "least-loaded",
        _ => "prefix",
    };

    private static RoutingPolicy[] Policies(string text) => text switch
    {
        "all" => [RoutingPolicy.RoundRobin, RoutingPolicy.LeastLoaded, RoutingPolicy.PrefixAffinity],
        "round-robin" => [RoutingPolicy.RoundRobin],
        "least-loaded" => [RoutingPolicy.LeastLoaded],
        "prefix" => [RoutingPolicy.PrefixAffinity],
        _ => throw new ArgumentException($"--policy '{text}': expected round-robin, least-loaded, prefix or all"),
    };

    private static int[] Counts(string text)
    {
        var counts = new List<int>();
        foreach (string part in text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
        {
            if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int n) || n is < 1 or > 4096)
                throw new ArgumentException($"--replicas '{part}': expected a count from 1 to 4096");
            counts.Add(n);
        }
        if (counts.Count == 0) throw new ArgumentException("--replicas: no count given");
        return [.. counts];
    }
}
