using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sputnik.Tests.Server.Routing;

/// <summary>
/// Replays multi-turn chats against a router (or one server): each conversation may open with a system prompt shared
/// with other conversations (a few prompts, Zipf-popular, as a handful of apps or personas are), then its own user
/// message; every turn sends the whole history plus a new message, streaming (SSE), so a replica that kept the previous
/// turn in its KV cache reuses all of it. <see cref="Options.Concurrency"/> users are online at once, each in one
/// conversation at a time (a user who finishes one is replaced by the next); with a <see cref="Options.ThinkTime"/> each
/// user thinks before every turn, so the turns of all online conversations interleave as real users' do. Texts, system
/// prompts and think times are drawn from the seed and the conversation's number, so a replay is the same workload
/// every time (only the order the replicas see it in varies with their speed). Shared by the routing tests and
/// bench/route-bench.sh (which runs <see cref="RouteBench"/>), so both replay the same workload.
/// </summary>
public static class ConversationReplay
{
    /// <param name="Conversations">how many chats</param>
    /// <param name="Turns">user messages per chat</param>
    /// <param name="Concurrency">users online at once, each in one chat at a time</param>
    /// <param name="MaxTokens">answer length per turn (short: the test is about prompts)</param>
    /// <param name="Seed">varies the text, so replays against the same replicas do not share prefixes</param>
    /// <param name="ConversationHeader">send X-Conversation-Id (what HAProxy's documented config hashes)</param>
    /// <param name="Deadline">requests not started by then are not sent (the replay is bounded in time)</param>
    /// <param name="ThinkTime">a user's mean time before each turn, the first included (exponential, at most 3× the
    /// mean, so the replay stays bounded); zero sends the turns back to back</param>
    /// <param name="SystemPrompts">how many system prompts the conversations draw from, by Zipf(1) popularity; 0: none</param>
    public sealed record Options(int Conversations = 200, int Turns = 3, int Concurrency = 6, int MaxTokens = 2, int Seed = 1,
        bool ConversationHeader = false, TimeSpan? Deadline = null, TimeSpan ThinkTime = default, int SystemPrompts = 0);

    /// <summary>One request's fate.</summary>
    /// <param name="Streamed">the first SSE data event arrived (the replica had started the answer)</param>
    /// <param name="Done">the stream ended with [DONE]</param>
    /// <param name="Error">why it failed, when it did</param>
    public sealed record Outcome(int Conversation, int Turn, bool Streamed, bool Done, double TtftMs, double TotalMs, string? Replica, string? Error);

    public sealed record Result(IReadOnlyList<Outcome> Outcomes, TimeSpan Elapsed, int NotSent)
    {
        public int Answered => Outcomes.Count(o => o.Done);
        /// <summary>Failed before a single event arrived: what a router must never lose.</summary>
        public IEnumerable<Outcome> LostBeforeStreaming => Outcomes.Where(o => !o.Done && !o.Streamed);
        public IEnumerable<Outcome> CutMidStream => Outcomes.Where(o => !o.Done && o.Streamed);
    }

    private static readonly string[] Words =
        ["orbit", "comet", "rocket", "signal", "lunar", "crater", "module", "launch", "apogee", "beacon", "capsule", "docking",
         "engine", "fuel", "gravity", "hatch", "ion", "jet", "kelvin", "lander", "meteor", "nebula", "oxygen", "payload",
         "quasar", "radar", "solar", "thrust", "umbra", "vector", "window", "zenith", "what", "is", "the", "next", "step"];

    private static string Sentence(Random rng, int chars)
    {
        var sb = new StringBuilder();
        while (sb.Length < chars) sb.Append(Words[rng.Next(Words.Length)]).Append(' ');
        return sb.ToString().TrimEnd() + "?";
    }

    /// <summary>System prompt <paramref name="k"/> of this seed's replay: 32 to 96 characters, as a short persona or app instruction is.</summary>
    /// <remarks>Each seed has its own prompts, so a replay against replicas that served another seed finds none of them cached.</remarks>
    internal static string SystemPrompt(int seed, int k)
    {
        var rng = new Random(seed * 7_919 + k);
        return $"You are assistant {k} of replay {seed}. {Sentence(rng, 32 + rng.Next(65))}";
    }

    /// <summary>0..n-1 with probability proportional to 1/(k+1): the first prompt is the most popular.</summary>
    private static int Zipf(Random rng, int n)
    {
        double total = 0;
        for (int k = 0; k < n; k++) total += 1.0 / (k + 1);
        double u = rng.NextDouble() * total;
        for (int k = 0; k < n - 1; k++)
            if ((u -= 1.0 / (k + 1)) < 0) return k;
        return n - 1;
    }

    /// <summary>Exponential with the given mean, cut at 3× the mean (bounded replay time; 5 % of draws are cut).</summary>
    private static TimeSpan ThinkTime(Random rng, TimeSpan mean) =>
        mean * Math.Min(3.0, -Math.Log(1 - rng.NextDouble()));

    /// <param name="onOutcome">called after each request (from several threads): lets a test act mid-run</param>
    public static async Task<Result> RunAsync(HttpClient client, Options o, Action<Outcome>? onOutcome = null, CancellationToken ct = default)
    {
        var outcomes = new List<Outcome>();
        var clock = Stopwatch.StartNew();
        int next = -1, notSent = 0;
        async Task Worker()
        {
            while (true)
            {
                int c = Interlocked.Increment(ref next);
                if (c >= o.Conversations) return;
                var rng = new Random(o.Seed * 100_003 + c);
                var messages = new JsonArray();
                if (o.SystemPrompts > 0)
                    messages.Add(new JsonObject { ["role"] = "system", ["content"] = SystemPrompt(o.Seed, Zipf(rng, o.SystemPrompts)) });
                for (int turn = 0; turn < o.Turns; turn++)
                {
                    if (o.ThinkTime > TimeSpan.Zero) await Task.Delay(ThinkTime(rng, o.ThinkTime), ct);
                    if (o.Deadline is { } d && clock.Elapsed > d)
                    {
                        Interlocked.Add(ref notSent, o.Turns - turn);
                        break;
                    }
                    // Shared between conversations: the chat template and the system prompt; a longer hit is this conversation's own history.
                    string text = turn == 0 ? $"{Sentence(rng, 64)} ({o.Seed}-{c})" : Sentence(rng, 24);
                    messages.Add(new JsonObject { ["role"] = "user", ["content"] = text });
                    var outcome = await SendAsync(client, c, turn, messages, o, ct);
                    lock (outcomes) outcomes.Add(outcome.Outcome);
                    onOutcome?.Invoke(outcome.Outcome);
                    if (!outcome.Outcome.Done)
                    {
                        Interlocked.Add(ref notSent, o.Turns - turn - 1);
                        break;
                    }
                    messages.Add(new JsonObject { ["role"] = "assistant", ["content"] = outcome.Answer });
                }
            }
        }
        await Task.WhenAll(Enumerable.Range(0, o.Concurrency).Select(_ => Task.Run(Worker, ct)));
        return new Result(outcomes, clock.Elapsed, notSent);
    }

    private static async Task<(Outcome Outcome, string Answer)> SendAsync(HttpClient client, int conversation, int turn, JsonArray messages, Options o, CancellationToken ct)
    {
        var body = new JsonObject
        {
            ["model"] = "any", ["messages"] = JsonNode.Parse(messages.ToJsonString()), ["max_tokens"] = o.MaxTokens, ["temperature"] = 0, ["stream"] = true,
        };
        using var req = new HttpRequestMessage(HttpMethod.Post, "v1/chat/completions") { Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json") };
        if (o.ConversationHeader) req.Headers.Add("X-Conversation-Id", $"{o.Seed}-{conversation}");
        var clock = Stopwatch.StartNew();
        double ttft = -1;
        bool streamed = false;
        string? replica = null;
        var answer = new StringBuilder();
        try
        {
            using var resp = await client.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, ct);
            replica = resp.Headers.TryGetValues("X-Sputnik-Replica", out var names) ? names.FirstOrDefault() : null;
            if (!resp.IsSuccessStatusCode)
                return (new Outcome(conversation, turn, false, false, -1, clock.Elapsed.TotalMilliseconds, replica,
                    $"HTTP {(int)resp.StatusCode}: {await resp.Content.ReadAsStringAsync(ct)}"), "");
            using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(ct));
            while (await reader.ReadLineAsync(ct) is { } line)
            {
                if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                if (line == "data: [DONE]")
                    return (new Outcome(conversation, turn, true, true, ttft, clock.Elapsed.TotalMilliseconds, replica, null), answer.ToString());
                streamed = true;
                var evt = JsonNode.Parse(line[6..]);
                if (evt?["error"] != null)
                    return (new Outcome(conversation, turn, true, false, ttft, clock.Elapsed.TotalMilliseconds, replica, evt["error"]!.ToJsonString()), "");
                var delta = evt?["choices"] is JsonArray { Count: > 0 } choices ? choices[0]?["delta"] : null;
                // The first token is the first text of either kind: the bundled R1-style model often starts with its reasoning.
                if (ttft < 0 && (delta?["content"]?.GetValue<string>() is { Length: > 0 } || delta?["reasoning_content"]?.GetValue<string>() is { Length: > 0 }))
                    ttft = clock.Elapsed.TotalMilliseconds;
                if (delta?["content"]?.GetValue<string>() is { Length: > 0 } piece) answer.Append(piece);
            }
            return (new Outcome(conversation, turn, streamed, false, ttft, clock.Elapsed.TotalMilliseconds, replica, "the stream ended without [DONE]"), "");
        }
        catch (Exception ex) when (ex is HttpRequestException or IOException or JsonException)
        {
            return (new Outcome(conversation, turn, streamed, false, ttft, clock.Elapsed.TotalMilliseconds, replica, ex.Message), "");
        }
    }

    /// <summary>Sum of each named counter over the replicas' /metrics.</summary>
    public static async Task<Dictionary<string, double>> ReadCountersAsync(IEnumerable<Uri> replicas, CancellationToken ct, params string[] names)
    {
        var sums = names.ToDictionary(n => n, _ => 0.0);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        foreach (var r in replicas)
        {
            var samples = Sputnik.Server.PrometheusText.Parse(await http.GetStringAsync(new Uri(r, "metrics"), ct));
            foreach (var n in names) sums[n] += Sputnik.Server.PrometheusText.Sum(samples, n);
        }
        return sums;
    }

    /// <summary>A client for a router or server at <paramref name="baseAddress"/> with its own connection pool.</summary>
    public static HttpClient Client(Uri baseAddress) => new(new SocketsHttpHandler { UseProxy = false, PooledConnectionIdleTimeout = TimeSpan.FromSeconds(10) })
    {
        BaseAddress = baseAddress, Timeout = TimeSpan.FromSeconds(120),
    };

    public static double Percentile(IEnumerable<double> values, double p)
    {
        var sorted = values.Where(v => v >= 0).Order().ToArray();
        return sorted.Length == 0 ? double.NaN : sorted[Math.Min(sorted.Length - 1, (int)Math.Floor(p * sorted.Length))];
    }
}
