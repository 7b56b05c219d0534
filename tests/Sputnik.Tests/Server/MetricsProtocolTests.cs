using Sputnik.Server;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// /metrics parses as Prometheus text and carries the Gateway API Inference Extension's model server protocol gauges
/// under the vLLM names its endpoint picker reads by default, with values that follow the server's state.
/// </summary>
public sealed class MetricsProtocolTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<List<PrometheusSample>> ReadAsync(TestServer s)
    {
        using var resp = await s.Client.GetAsync("/metrics", Ct);
        Assert.StartsWith("text/plain", resp.Content.Headers.ContentType?.MediaType);
        return PrometheusText.Parse(await resp.Content.ReadAsStringAsync(Ct));
    }

    private static double One(List<PrometheusSample> samples, string name, string? label = null) =>
        samples.Single(s => s.Name == name && (label == null || s.Labels.Values.Contains(label))).Value;

    [Fact]
    public async Task The_protocol_gauges_follow_the_queue_the_slots_and_the_prefix_cache()
    {
        await using var s = await TestServer.StartAsync(o => o with { Parallel = 1, StepDelay = TimeSpan.FromMilliseconds(20) }, modelPath: TestServer.BundledModelPath);
        var idle = await ReadAsync(s);
        Assert.Equal(0, One(idle, "vllm:num_requests_waiting"));
        Assert.Equal(0, One(idle, "vllm:num_requests_running"));
        Assert.Equal(0, One(idle, "vllm:kv_cache_usage_perc"));
        Assert.Equal(0, One(idle, "vllm:prefix_cache_queries_total"));
        Assert.Equal(0, One(idle, "sputnik_prompt_cache_rejected_files_total")); // SharedPromptCacheTests counts a bad file

        // One long stream holds the only slot; a second request waits for it.
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestServer.Json(TestServer.ChatBody(user: "What is 12 + 30?", maxTokens: 200, stream: true)) };
        using var stream = await s.Client.SendAsync(req, HttpCompletionOption.ResponseHeadersRead, Ct);
        var body = await stream.Content.ReadAsStreamAsync(Ct);
        Assert.True(await body.ReadAsync(new byte[64], Ct) > 0);
        var waiting = s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: "What is 12 + 30?", maxTokens: 2));
        List<PrometheusSample> busy = [];
        for (var end = DateTime.UtcNow.AddSeconds(10); DateTime.UtcNow < end; await Task.Delay(20, Ct))
        {
            busy = await ReadAsync(s);
            // Admitted before its first prefill step, the running request holds no position yet: wait for both.
            if (One(busy, "vllm:num_requests_waiting") == 1 && One(busy, "vllm:kv_cache_usage_perc") > 0) break;
        }
        Assert.Equal(1, One(busy, "vllm:num_requests_waiting"));
        Assert.Equal(1, One(busy, "vllm:num_requests_running"));
        double usage = One(busy, "vllm:kv_cache_usage_perc");
        Assert.InRange(usage, 1e-6, 1.0); // the running prompt and its tokens, of one slot's 512 positions
        Assert.Equal(One(busy, "sputnik_queue_depth"), One(busy, "vllm:num_requests_waiting"));
        stream.Dispose(); // hang up: the slot goes to the waiting request
        Assert.Equal(200, (await waiting).Status);
        Assert.True(await s.WaitIdleAsync(TimeSpan.FromSeconds(10)));

        // The same prompt again reuses the slot's cached prefix: hits and queries are counted in tokens and requests.
        var again = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: "What is 12 + 30?", maxTokens: 2));
        int cached = (int)again.Body["usage"]!["prompt_cache_hit_tokens"]!;
        Assert.True(cached > 0);
        var after = await ReadAsync(s);
        double queries = One(after, "vllm:prefix_cache_queries_total"), hits = One(after, "vllm:prefix_cache_hits_total");
        Assert.True(hits >= cached && hits < queries, $"hits {hits}, queries {queries}, last request's cached tokens {cached}");
        Assert.Equal(queries, One(after, "sputnik_prompt_tokens_total"));
        Assert.Equal(queries - hits, One(after, "sputnik_prompt_cache_miss_tokens_total"));
        Assert.Equal(3, One(after, "sputnik_prompt_cache_hits_total") + One(after, "sputnik_prompt_cache_misses_total"));
        Assert.True(One(after, "sputnik_prompt_cache_hits_total") >= 1);
        // Idle again: nothing running, but the slot still holds the conversation's tokens for the next turn.
        Assert.Equal(0, One(after, "vllm:kv_cache_usage_perc"));
        Assert.True(One(after, "sputnik_prompt_cache_tokens", "slots") >= cached);
        // Each family is declared once, with a type.
        string text = await s.Client.GetStringAsync("/metrics", Ct);
        foreach (var name in after.Select(x => x.Name).Distinct())
            Assert.Single(text.Split('\n'), l => l.StartsWith($"# TYPE {name} ", StringComparison.Ordinal));
    }
}
