using System.CommandLine;
using System.CommandLine.Parsing;
using Sputnik.Server.Routing;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik route --replica URL …` — a reverse proxy with prompt-prefix affinity in front of several `sputnik serve`.</summary>
internal static class RouteCommand
{
    public static Command Create()
    {
        var d = new RouterOptions();
        var host = new Option<string>("--host") { Description = "Address to listen on", DefaultValueFactory = _ => d.Host };
        var port = new Option<int>("--port") { Description = "TCP port (0 picks a free one)", DefaultValueFactory = _ => d.Port };
        var replicas = new Option<string[]>("--replica")
        {
            Description = "Base URL of a Sputnik server (repeatable), e.g. http://127.0.0.1:8081",
            Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false, Required = true,
        };
        var policy = new Option<RoutingPolicy>("--policy")
        {
            Description = "prefix (prompt-prefix affinity, consistent hashing with bounded loads), least-loaded or round-robin",
            DefaultValueFactory = _ => d.Policy, CustomParser = ParsePolicy,
        };
        var loadFactor = new Option<double>("--load-factor") { Description = "Bounded loads: a replica takes at most this × the mean requests in flight (HAProxy's hash-balance-factor / 100)", DefaultValueFactory = _ => d.LoadFactor };
        var interval = new Option<double>("--health-interval") { Description = "Seconds between health checks of each replica (GET /health, /metrics)", DefaultValueFactory = _ => d.HealthInterval.TotalSeconds };
        var maxBody = new Option<int>("--max-body") { Description = "Largest request body forwarded, in MB", DefaultValueFactory = _ => (int)(d.MaxBodyBytes >> 20) };
        var cmd = new Command("route", "Route requests to several Sputnik servers, keeping each conversation on the replica that caches its prefix")
        {
            host, port, replicas, policy, loadFactor, interval, maxBody,
        };
        cmd.SetAction(async (r, ct) =>
        {
            double seconds = r.GetValue(interval);
            if (double.IsNaN(seconds) || seconds <= 0 || seconds > 3600) throw new ArgumentException($"--health-interval {seconds} must be above 0 and at most 3600 seconds");
            var options = new RouterOptions
            {
                Host = r.GetValue(host)!, Port = r.GetValue(port), Policy = r.GetValue(policy), LoadFactor = r.GetValue(loadFactor),
                HealthInterval = TimeSpan.FromSeconds(seconds), MaxBodyBytes = (long)Math.Max(0, r.GetValue(maxBody)) << 20,
                Replicas = (r.GetValue(replicas) ?? []).Select(ParseUrl).ToList(),
            };
            await using var router = await RouterHost.StartAsync(options, log: msg => Console.Error.WriteLine($"sputnik route: {msg}"), cancellationToken: ct);
            Console.Error.WriteLine($"sputnik: routing {options.Replicas.Count} replica(s) ({router.HealthyReplicas} up) with policy " +
                $"{PolicyName(options.Policy)} at {router.BaseAddress}; Ctrl+C drains and stops");
            try
            {
                await router.WaitForShutdownAsync(ct);
            }
            catch (OperationCanceledException) { }
            return 0;
        });
        return cmd;
    }

    private static Uri ParseUrl(string text) =>
        Uri.TryCreate(text.Contains("://", StringComparison.Ordinal) ? text : "http://" + text, UriKind.Absolute, out var uri)
            ? uri : throw new ArgumentException($"--replica '{text}' is not a URL; use e.g. http://127.0.0.1:8081");

    private static RoutingPolicy ParsePolicy(ArgumentResult result)
    {
        string text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : "";
        switch (text)
        {
            case "prefix": return RoutingPolicy.Prefix;
            case "least-loaded": return RoutingPolicy.LeastLoaded;
            case "round-robin": return RoutingPolicy.RoundRobin;
            default:
                result.AddError($"unknown --policy '{text}': expected prefix, least-loaded or round-robin");
                return RoutingPolicy.Prefix;
        }
    }

    private static string PolicyName(RoutingPolicy p) => p switch
    {
        RoutingPolicy.LeastLoaded => "least-loaded",
        RoutingPolicy.RoundRobin => "round-robin",
        _ => "prefix",
    };
}
