using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Sputnik.Server;
using Sputnik.Tools;

/// <summary>
/// Server soak: N concurrent streaming clients against an in-process `sputnik serve` for a fixed time, every third
/// one hanging up mid-stream. Passes when the clients that stay see zero errors, the slots and queue are empty
/// afterwards, and resident memory does not keep growing. Exit code 1 otherwise.
/// </summary>
internal static class SoakBench
{
    private sealed class Tally
    {
        public long Completed, Aborted, Errors, Chunks;
        public readonly List<string> ErrorSamples = [];

        public void Error(string what)
        {
            Interlocked.Increment(ref Errors);
            lock (ErrorSamples)
                if (ErrorSamples.Count < 5) ErrorSamples.Add(what);
        }
    }

    public static async Task<int> RunAsync(string[] args)
    {
        string? model = Arg(args, "--model");
        int seconds = int.Parse(Arg(args, "--seconds") ?? "60", CultureInfo.InvariantCulture);
        int clients = int.Parse(Arg(args, "--clients") ?? "100", CultureInfo.InvariantCulture);
        int parallel = int.Parse(Arg(args, "--parallel") ?? "8", CultureInfo.InvariantCulture);
        int maxTokens = int.Parse(Arg(args, "--max-tokens") ?? "48", CultureInfo.InvariantCulture);
        // The prompt cache keeps evicted slots' KV up to this bound, so RSS legitimately grows until it is full.
        int cacheMb = int.Parse(Arg(args, "--cache-mb") ?? "64", CultureInfo.InvariantCulture);
        string? temp = null;
        if (model == null)
        {
            // A random-weight model in a tiny real shape: the soak is about the server, not the maths.
            temp = Path.Combine(Path.GetTempPath(), $"sputnik-soak-{Environment.ProcessId}.gguf");
            SyntheticModel.Write(temp, new SynthOptions { Preset = SyntheticModel.FindPreset("qwen2-tiny"), FileType = FileType.Q8_0, Seed = 1 });
            model = temp;
        }
        try
        {
            return await SoakAsync(model, seconds, clients, parallel, maxTokens, cacheMb);
        }
        finally
        {
            if (temp != null) File.Delete(temp);
        }
    }

    private static async Task<int> SoakAsync(string model, int seconds, int clients, int parallel, int maxTokens, int cacheMb)
    {
        var options = new ServerOptions
        {
            ModelPath = model, Port = 0, Parallel = parallel, ContextLength = 512, MaxQueue = clients * 2,
            EnableWebApp = false, Threads = Environment.ProcessorCount, CacheRamMb = cacheMb,
        };
        await using var server = await ServerHost.StartAsync(options);
        using var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = clients * 2 })
        {
            BaseAddress = server.BaseAddress, Timeout = TimeSpan.FromMinutes(5),
        };
        Console.WriteLine($"soak: {model}, {clients} streaming clients for {seconds} s (every third hangs up mid-stream), " +
            $"{parallel} slots, max_tokens {maxTokens}, prompt cache {cacheMb} MB, {Environment.ProcessorCount} cores, load average {LoadAverage()}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");

        long generated0 = Metric(await http.GetStringAsync("/metrics"), "sputnik_generated_tokens_total");
        var rss = new List<(double At, long Bytes)>();
        var clock = Stopwatch.StartNew();
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        var tally = new Tally();
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                rss.Add((clock.Elapsed.TotalSeconds, Environment.WorkingSet));
                try { await Task.Delay(1000, stop.Token); } catch (OperationCanceledException) { }
            }
        });
        await Task.WhenAll(Enumerable.Range(0, clients).Select(i => ClientAsync(http, i, i % 3 == 2, maxTokens, deadline, tally)));
        double elapsed = clock.Elapsed.TotalSeconds;
        long generated = Metric(await http.GetStringAsync("/metrics"), "sputnik_generated_tokens_total") - generated0;

        // Slots and queue must drain once the clients are gone (cancelled work is dropped at the next step).
        long active = -1, queued = -1;
        for (int i = 0; i < 100; i++)
        {
            string m = await http.GetStringAsync("/metrics");
            active = Metric(m, "sputnik_slots_active");
            queued = Metric(m, "sputnik_queue_depth");
            if (active == 0 && queued == 0) break;
            await Task.Delay(100);
        }
        stop.Cancel();
        await sampler;
        rss.Add((clock.Elapsed.TotalSeconds, Environment.WorkingSet));

        var early = rss[Math.Min(rss.Count - 1, Math.Max(1, rss.Count / 4))];
        var mid = rss[rss.Count / 2];
        var end = rss[^1];
        Console.WriteLine($"requests completed {tally.Completed}, aborted on purpose {tally.Aborted}, errors among the others {tally.Errors}");
        foreach (var e in tally.ErrorSamples) Console.WriteLine($"  error: {e}");
        Console.WriteLine($"after the run: slots active {active}, queue depth {queued}");
        Console.WriteLine($"RSS MB: start {Mb(rss[0].Bytes)}, 25% {Mb(early.Bytes)} (t={early.At:F0}s), mid {Mb(mid.Bytes)} (t={mid.At:F0}s), " +
            $"end {Mb(end.Bytes)} (t={end.At:F0}s), max {Mb(rss.Max(r => r.Bytes))}");
        Console.WriteLine($"managed heap after the run: {Mb(GC.GetTotalMemory(false))} MB, after a full GC {Mb(GC.GetTotalMemory(true))} MB");
        Console.WriteLine($"generated {generated} tokens in {elapsed:F1} s: {generated / elapsed:F1} tokens/s aggregate; {tally.Chunks} content chunks streamed");
        Console.WriteLine($"load average after: {LoadAverage()}");

        // Memory is steady when the second half adds little to what the first half reached (the first seconds are
        // JIT, thread pool and GC heap growth, and the prompt cache filling up to its bound).
        bool steady = end.Bytes <= mid.Bytes * 1.25 + 64L * 1024 * 1024;
        bool ok = tally.Errors == 0 && active == 0 && queued == 0 && tally.Completed > 0 && steady;
        Console.WriteLine(ok ? "PASS" : $"FAIL{(steady ? "" : " (memory kept growing)")}");
        return ok ? 0 : 1;
    }

    /// <summary>One client: streams requests back to back until the deadline; an aborting one hangs up after a few chunks.</summary>
    private static async Task ClientAsync(HttpClient http, int id, bool aborts, int maxTokens, DateTime deadline, Tally tally)
    {
        var rng = new Random(id);
        string[] words = ["cats", "rain", "ships", "bread", "stars", "maps", "tea", "snow"];
        while (DateTime.UtcNow < deadline)
        {
            string user = $"Tell me about {words[rng.Next(words.Length)]} and {words[rng.Next(words.Length)]} #{id}";
            string body = JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["messages"] = new[] { new Dictionary<string, string> { ["role"] = "user", ["content"] = user } },
                ["max_tokens"] = maxTokens, ["stream"] = true, ["temperature"] = 0.8, ["seed"] = rng.Next(),
            });
            using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(2));
            try
            {
                using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = new StringContent(body, System.Text.Encoding.UTF8, "application/json") };
                using var resp = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token);
                if ((int)resp.StatusCode != 200)
                {
                    if (!aborts) tally.Error($"HTTP {(int)resp.StatusCode}: {await resp.Content.ReadAsStringAsync(cts.Token)}");
                    continue;
                }
                using var reader = new StreamReader(await resp.Content.ReadAsStreamAsync(cts.Token));
                int chunks = 0, hangUpAfter = 2 + rng.Next(6);
                bool done = false, error = false;
                while (await reader.ReadLineAsync(cts.Token) is { } line)
                {
                    if (!line.StartsWith("data: ", StringComparison.Ordinal)) continue;
                    if (line == "data: [DONE]") { done = true; break; }
                    if (line.Contains("\"error\"", StringComparison.Ordinal)) error = true;
                    chunks++;
                    Interlocked.Increment(ref tally.Chunks);
                    if (aborts && chunks >= hangUpAfter) break;
                }
                if (aborts && !done)
                {
                    cts.Cancel(); // hang up: the server must notice and free the slot
                    Interlocked.Increment(ref tally.Aborted);
                }
                else if (error || !done) tally.Error(error ? "an error event in the stream" : "the stream ended without [DONE]");
                else Interlocked.Increment(ref tally.Completed);
            }
            catch (Exception ex) when (ex is HttpRequestException or IOException or OperationCanceledException)
            {
                if (aborts && cts.IsCancellationRequested) continue;
                tally.Error($"{ex.GetType().Name}: {ex.Message}");
            }
        }
    }

    private static string? Arg(string[] args, string name)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    private static long Metric(string text, string name)
    {
        foreach (var line in text.Split('\n'))
            if (line.StartsWith(name + " ", StringComparison.Ordinal))
                return (long)double.Parse(line[(name.Length + 1)..], CultureInfo.InvariantCulture);
        return -1;
    }

    private static string Mb(long bytes) => (bytes / 1048576.0).ToString("F0", CultureInfo.InvariantCulture);

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
