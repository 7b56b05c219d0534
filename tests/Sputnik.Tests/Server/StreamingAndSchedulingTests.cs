using Xunit;
using System.Net;
using System.Text.Json.Nodes;

namespace Sputnik.Tests.Server;

/// <summary>SSE shapes, keep-alives, disconnects, parallel slots, the prompt cache and the bounded queue.</summary>
public sealed class StreamingAndSchedulingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<string> StreamTextAsync(TestServer s, string body)
    {
        var r = await s.Client.PostAsync("/v1/chat/completions", TestServer.Json(body), Ct);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.StartsWith("text/event-stream", r.Content.Headers.ContentType!.ToString());
        return await r.Content.ReadAsStringAsync(Ct);
    }

    private static string Content(IEnumerable<JsonNode> events) =>
        string.Concat(events.Where(e => e["choices"]!.AsArray().Count > 0).Select(e => (string?)e["choices"]![0]!["delta"]!["content"] ?? ""));

    [Fact]
    public async Task StreamChunksHaveOpenAiShapeAndEndWithUsageAndDone()
    {
        await using var s = await TestServer.StartAsync();
        var solo = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 10));
        var (events, done, _) = TestServer.ParseSse(await StreamTextAsync(s,
            TestServer.ChatBody(maxTokens: 10, stream: true, extra: ""","stream_options":{"include_usage":true}""")));
        Assert.True(done);
        string id = (string)events[0]["id"]!;
        Assert.All(events, e =>
        {
            Assert.Equal("chat.completion.chunk", (string)e["object"]!);
            Assert.Equal(id, (string)e["id"]!);
            Assert.Equal("stories260K", (string)e["model"]!);
        });
        Assert.Equal("assistant", (string)events[0]["choices"]![0]!["delta"]!["role"]!);
        var finish = events[^2]["choices"]![0]!;
        Assert.Equal("length", (string)finish["finish_reason"]!);
        var last = events[^1];
        Assert.Empty(last["choices"]!.AsArray());
        Assert.Equal(10, (int)last["usage"]!["completion_tokens"]!);
        Assert.NotNull(last["timings"]);
        Assert.NotNull(last["cost"]);
        Assert.All(events[..^1], e => Assert.Null(e["usage"]));
        Assert.Equal((string)solo.Body["choices"]![0]!["message"]!["content"]!, Content(events));
    }

    [Fact]
    public async Task CompletionStreamEndsWithDone()
    {
        await using var s = await TestServer.StartAsync();
        var r = await s.Client.PostAsync("/v1/completions", TestServer.Json("""{"prompt":"Once upon a time","max_tokens":5,"temperature":0,"stream":true}"""), Ct);
        var (events, done, _) = TestServer.ParseSse(await r.Content.ReadAsStringAsync(Ct));
        Assert.True(done);
        Assert.All(events, e => Assert.Equal("text_completion", (string)e["object"]!));
        Assert.Equal("length", (string)events[^1]["choices"]![0]!["finish_reason"]!);
    }

    [Fact]
    public async Task ParallelGreedyStreamsEqualTheirSoloOutputs()
    {
        await using var s = await TestServer.StartAsync(o => o with { Parallel = 8, ContextLength = 256 });
        string[] prompts = ["Once upon a time", "The cat", "Lily and Tom", "One day", "The big dog", "A little bird", "Sam liked", "In the park"];
        var solo = new List<string>();
        foreach (var p in prompts)
            solo.Add((string)(await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: p, maxTokens: 24))).Body["choices"]![0]!["message"]!["content"]!);
        // Fresh server so no slot holds a cached prefix from the solo runs.
        await using var s2 = await TestServer.StartAsync(o => o with { Parallel = 8, ContextLength = 256 });
        var streams = prompts.Select(p => StreamTextAsync(s2, TestServer.ChatBody(user: p, maxTokens: 24, stream: true))).ToArray();
        var bodies = await Task.WhenAll(streams);
        for (int i = 0; i < prompts.Length; i++)
            Assert.Equal(solo[i], Content(TestServer.ParseSse(bodies[i]).Events));
    }

    [Fact]
    public async Task RepeatedPrefixIsAPromptCacheHit()
    {
        await using var s = await TestServer.StartAsync(o => o with { Parallel = 2 });
        var first = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: "Once upon a time there was a girl", maxTokens: 4));
        Assert.Equal(0, (int)first.Body["usage"]!["prompt_cache_hit_tokens"]!);
        int promptTokens = (int)first.Body["usage"]!["prompt_tokens"]!;
        var second = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: "Once upon a time there was a girl", maxTokens: 4));
        var usage = second.Body["usage"]!;
        Assert.Equal(promptTokens - 1, (int)usage["prompt_cache_hit_tokens"]!); // the last prompt token is always recomputed for its logits
        Assert.Equal(1, (int)usage["prompt_cache_miss_tokens"]!);
        Assert.Equal(promptTokens - 1, (int)usage["prompt_tokens_details"]!["cached_tokens"]!);
        // A different conversation goes to the other (empty) slot and leaves the cached one alone …
        var other = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: "Zebra", maxTokens: 2));
        Assert.True((int)other.Body["usage"]!["prompt_cache_hit_tokens"]! < promptTokens / 2);
        // … so a follow-up that extends the first prompt still hits its prefix.
        var follow = await s.PostAsync("/v1/chat/completions",
            """{"messages":[{"role":"user","content":"Once upon a time there was a girl"},{"role":"assistant","content":"Yes"},{"role":"user","content":"More"}],"max_tokens":2,"temperature":0}""");
        Assert.True((int)follow.Body["usage"]!["prompt_cache_hit_tokens"]! >= promptTokens - 3);
        var metrics = await s.Client.GetStringAsync("/metrics", Ct);
        Assert.Contains("sputnik_prompt_cache_hit_tokens_total", metrics);
    }

    [Fact]
    public async Task ClientDisconnectCancelsGenerationAndFreesTheSlot()
    {
        await using var s = await TestServer.StartAsync(o => o with { StepDelay = TimeSpan.FromMilliseconds(20) });
        using (var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestServer.Json(TestServer.ChatBody(maxTokens: 400, stream: true)) })
        using (var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct))
        {
            var resp = await s.Client.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            var stream = await resp.Content.ReadAsStreamAsync(cts.Token);
            var buf = new byte[256];
            int read = await stream.ReadAsync(buf, cts.Token);
            Assert.True(read > 0);
            Assert.Equal(1, (int)(await s.GetJsonAsync("/health"))["slots_processing"]!);
            cts.Cancel();
            resp.Dispose();
        }
        Assert.True(await s.WaitIdleAsync(TimeSpan.FromSeconds(5)), "the slot was not freed after the client left");
        var metrics = await s.Client.GetStringAsync("/metrics", Ct);
        long generated = long.Parse(metrics.Split('\n').First(l => l.StartsWith("sputnik_generated_tokens_total ", StringComparison.Ordinal)).Split(' ')[1]);
        Assert.True(generated < 400, $"generation went on after the disconnect ({generated} tokens)");
        // The freed slot serves the next request.
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 2))).Status);
    }

    [Fact]
    public async Task ManyConcurrentDisconnectsLeaveNoBusySlotOrQueuedJob()
    {
        await using var s = await TestServer.StartAsync(o => o with
        {
            Parallel = 4, StepDelay = TimeSpan.FromMilliseconds(5), KeepAliveInterval = TimeSpan.FromMilliseconds(20),
        });
        // 16 streams on 4 slots: some hang up while generating, others while still queued (after a keep-alive).
        var clients = Enumerable.Range(0, 16).Select(async i =>
        {
            using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
            using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
            {
                Content = TestServer.Json(TestServer.ChatBody(user: $"Story {i}", maxTokens: 300, stream: true)),
            };
            var resp = await s.Client.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, cts.Token);
            Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
            var stream = await resp.Content.ReadAsStreamAsync(cts.Token);
            Assert.True(await stream.ReadAsync(new byte[64], cts.Token) > 0);
            cts.Cancel();
            resp.Dispose();
        }).ToArray();
        await Task.WhenAll(clients);
        Assert.True(await s.WaitIdleAsync(TimeSpan.FromSeconds(10)), "slots or queue stayed busy after every client left");
        var metrics = await s.Client.GetStringAsync("/metrics", Ct);
        Assert.Contains("sputnik_slots_active 0", metrics);
        Assert.Contains("sputnik_queue_depth 0", metrics);
        long generated = long.Parse(metrics.Split('\n').First(l => l.StartsWith("sputnik_generated_tokens_total ", StringComparison.Ordinal)).Split(' ')[1]);
        Assert.True(generated < 16 * 300, $"generation went on after the disconnects ({generated} tokens)");
        // Every slot serves again.
        var after = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 3))));
        Assert.All(after, r => Assert.Equal(200, r.Status));
    }

    [Fact]
    public async Task FullQueueIs429WithRetryAfterAndQueuedStreamsGetKeepAlives()
    {
        await using var s = await TestServer.StartAsync(o => o with
        {
            MaxQueue = 1, StepDelay = TimeSpan.FromMilliseconds(10), KeepAliveInterval = TimeSpan.FromMilliseconds(30),
        });
        var busy = s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 40));
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while ((int)(await s.GetJsonAsync("/health"))["slots_processing"]! == 0 && DateTime.UtcNow < deadline) await Task.Delay(5, Ct);
        var queued = StreamTextAsync(s, TestServer.ChatBody(maxTokens: 3, stream: true));
        deadline = DateTime.UtcNow.AddSeconds(5);
        while ((int)(await s.GetJsonAsync("/health"))["queued"]! == 0 && DateTime.UtcNow < deadline) await Task.Delay(5, Ct);

        var (status, body, resp) = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 2));
        Assert.Equal(429, status);
        Assert.Equal("queue_full", (string)body["error"]!["code"]!);
        Assert.NotNull(resp.Headers.RetryAfter);

        Assert.Equal(200, (await busy).Status);
        var (events, done, keepAlives) = TestServer.ParseSse(await queued);
        Assert.True(done);
        Assert.True(keepAlives > 0, "a queued stream got no keep-alive comment");
        Assert.NotEmpty(events);
        Assert.True(await s.WaitIdleAsync(TimeSpan.FromSeconds(5)));
    }

    /// <summary>Retry-After says when a slot is likely free: the queue ahead × the recent mean job time / slots, not a fixed 1 s.</summary>
    [Fact]
    public async Task RetryAfterIsEstimatedFromTheQueue()
    {
        await using var s = await TestServer.StartAsync(o => o with { MaxQueue = 1, StepDelay = TimeSpan.FromMilliseconds(40) });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 40))).Status); // teaches the mean job time
        double jobSeconds = sw.Elapsed.TotalSeconds;
        Assert.True(jobSeconds > 1.5, $"a job took {jobSeconds:F1} s");
        var busy = s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 40));
        var deadline = DateTime.UtcNow.AddSeconds(5);
        while ((int)(await s.GetJsonAsync("/health"))["slots_processing"]! == 0 && DateTime.UtcNow < deadline) await Task.Delay(5, Ct);
        var queued = s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 40));
        deadline = DateTime.UtcNow.AddSeconds(5);
        while ((int)(await s.GetJsonAsync("/health"))["queued"]! == 0 && DateTime.UtcNow < deadline) await Task.Delay(5, Ct);

        var (status, _, resp) = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 2));
        Assert.Equal(429, status);
        // One job queued ahead and one for this request, on one slot: about two job times.
        double retry = resp.Headers.RetryAfter!.Delta!.Value.TotalSeconds;
        Assert.InRange(retry, Math.Floor(jobSeconds * 1.2), Math.Ceiling(jobSeconds * 3));
        Assert.Equal(200, (await busy).Status);
        Assert.Equal(200, (await queued).Status);
    }
}
