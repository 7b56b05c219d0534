using Xunit;
using System.Net;
using System.Text.Json.Nodes;

namespace Sputnik.Tests.Server;

/// <summary>Each endpoint's happy path and OpenAI response shape.</summary>
public sealed class ApiEndpointTests : IAsyncLifetime
{
    private TestServer _s = null!;

    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync();
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    [Fact]
    public async Task ChatCompletionHasOpenAiShapeUsageTimingsAndCost()
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 8));
        Assert.Equal(200, status);
        Assert.StartsWith("chatcmpl-", (string)body["id"]!);
        Assert.Equal("chat.completion", (string)body["object"]!);
        Assert.Equal("stories260K", (string)body["model"]!);
        Assert.StartsWith("fp_", (string)body["system_fingerprint"]!);
        Assert.True((long)body["created"]! > 1_600_000_000);
        var choice = body["choices"]![0]!;
        Assert.Equal(0, (int)choice["index"]!);
        Assert.Equal("assistant", (string)choice["message"]!["role"]!);
        Assert.False(string.IsNullOrEmpty((string?)choice["message"]!["content"]));
        Assert.Equal("length", (string)choice["finish_reason"]!);
        Assert.True(choice.AsObject().ContainsKey("logprobs"));
        var usage = body["usage"]!;
        Assert.Equal(8, (int)usage["completion_tokens"]!);
        int prompt = (int)usage["prompt_tokens"]!;
        Assert.Equal(prompt + 8, (int)usage["total_tokens"]!);
        Assert.Equal(prompt, (int)usage["prompt_cache_hit_tokens"]! + (int)usage["prompt_cache_miss_tokens"]!);
        Assert.Equal(0, (int)usage["completion_tokens_details"]!["reasoning_tokens"]!);
        Assert.NotNull(usage["prompt_tokens_details"]!["cached_tokens"]);
        Assert.Equal(8, (int)body["timings"]!["predicted_n"]!);
        var cost = body["cost"]!;
        Assert.Equal("USD", (string)cost["currency"]!);
        Assert.True((double)cost["total"]! > 0);
        Assert.True((double)cost["energy_joules"]! >= 0);
    }

    [Fact]
    public async Task GreedyChatIsDeterministicAndStopStringsStop()
    {
        var a = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 12));
        var b = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 12));
        string text = (string)a.Body["choices"]![0]!["message"]!["content"]!;
        Assert.Equal(text, (string)b.Body["choices"]![0]!["message"]!["content"]!);
        string stop = text.Trim().Split(' ')[0];
        Assert.False(string.IsNullOrEmpty(stop));
        var c = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 12, extra: $$""","stop":[{{System.Text.Json.JsonSerializer.Serialize(stop)}}]"""));
        Assert.Equal("stop", (string)c.Body["choices"]![0]!["finish_reason"]!);
        Assert.DoesNotContain(stop, (string)c.Body["choices"]![0]!["message"]!["content"]!);
    }

    [Fact]
    public async Task ContentPartsDeveloperRoleSeedAndLogprobsAreAccepted()
    {
        string json = """
            {"messages":[{"role":"developer","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Once upon"},{"type":"text","text":" a time"}]}],
             "max_completion_tokens":4,"temperature":0.7,"seed":42,"top_k":10,"min_p":0.1,"top_p":0.9,"presence_penalty":0.5,"frequency_penalty":0.5,
             "logprobs":true,"top_logprobs":3,"n":1}
            """;
        var a = await _s.PostAsync("/v1/chat/completions", json);
        Assert.Equal(200, a.Status);
        var lp = a.Body["choices"]![0]!["logprobs"]!["content"]!.AsArray();
        Assert.Equal(4, lp.Count);
        Assert.All(lp, t => Assert.Equal(3, t!["top_logprobs"]!.AsArray().Count));
        Assert.All(lp, t => Assert.True((double)t!["logprob"]! <= 0));
        var b = await _s.PostAsync("/v1/chat/completions", json);
        Assert.Equal((string)a.Body["choices"]![0]!["message"]!["content"]!, (string)b.Body["choices"]![0]!["message"]!["content"]!);
    }

    [Fact]
    public async Task TextCompletionWorksAndAcceptsTokenPrompts()
    {
        var (status, body, _) = await _s.PostAsync("/v1/completions", """{"model":"stories260K","prompt":"Once upon a time","max_tokens":6,"temperature":0}""");
        Assert.Equal(200, status);
        Assert.Equal("text_completion", (string)body["object"]!);
        Assert.StartsWith("cmpl-", (string)body["id"]!);
        Assert.Equal("length", (string)body["choices"]![0]!["finish_reason"]!);
        Assert.Equal(6, (int)body["usage"]!["completion_tokens"]!);
        string text = (string)body["choices"]![0]!["text"]!;
        Assert.Contains("there", text);

        var tok = await _s.PostAsync("/tokenize", """{"content":"Once upon a time","add_special":true}""");
        var ids = tok.Body["tokens"]!.AsArray().ToJsonString();
        var again = await _s.PostAsync("/v1/completions", $$"""{"prompt":{{ids}},"max_tokens":6,"temperature":0}""");
        Assert.Equal(text, (string)again.Body["choices"]![0]!["text"]!);
    }

    [Fact]
    public async Task ModelsHealthAndMetrics()
    {
        var models = await _s.GetJsonAsync("/v1/models");
        Assert.Equal("list", (string)models["object"]!);
        Assert.Equal("stories260K", (string)models["data"]![0]!["id"]!);
        Assert.Equal("model", (string)models["data"]![0]!["object"]!);
        Assert.Equal("stories260K", (string)(await _s.GetJsonAsync("/v1/models/stories260K"))["id"]!);
        var health = await _s.GetJsonAsync("/health");
        Assert.Equal("ok", (string)health["status"]!);
        Assert.Equal(1, (int)health["slots_idle"]!);

        await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 3));
        var resp = await _s.Client.GetAsync("/metrics", TestContext.Current.CancellationToken);
        Assert.StartsWith("text/plain", resp.Content.Headers.ContentType!.ToString());
        string metrics = await resp.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("sputnik_requests_total{status=\"200\"}", metrics);
        Assert.Contains("# TYPE sputnik_generated_tokens_total counter", metrics);
        Assert.Contains("sputnik_queue_depth 0", metrics);
        Assert.Contains("sputnik_slots_active 0", metrics);
        Assert.Contains("sputnik_prompt_cache_hit_ratio", metrics);
    }

    [Fact]
    public async Task TokenizeDetokenizeRoundTrip()
    {
        var tok = await _s.PostAsync("/tokenize", """{"content":"Hello world","with_pieces":true}""");
        Assert.Equal(200, tok.Status);
        var ids = tok.Body["tokens"]!.AsArray();
        Assert.NotEmpty(ids);
        Assert.Equal(ids.Count, tok.Body["pieces"]!.AsArray().Count);
        var de = await _s.PostAsync("/detokenize", $$"""{"tokens":{{ids.ToJsonString()}}}""");
        Assert.Equal("Hello world", ((string)de.Body["content"]!).Trim());
        var bad = await _s.PostAsync("/detokenize", """{"tokens":[99999]}""");
        Assert.Equal(400, bad.Status);
        Assert.Equal("tokens", (string)bad.Body["error"]!["param"]!);
    }

    [Fact]
    public async Task WebAppPageAndVendoredLibrariesAreServed()
    {
        using var browser = new HttpRequestMessage(HttpMethod.Get, "/");
        browser.Headers.Accept.ParseAdd("text/html"); // without it, "/" answers Ollama's clients: "Ollama is running"
        var page = await (await _s.Client.SendAsync(browser, TestContext.Current.CancellationToken)).Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains("<title>Sputnik", page);
        foreach (var path in new[] { "/app/app.js", "/app/app.css", "/app/vendor/marked.umd.js", "/app/vendor/purify.min.js", "/app/vendor/highlight.min.js" })
        {
            var r = await _s.Client.GetAsync(path, TestContext.Current.CancellationToken);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        Assert.Equal(HttpStatusCode.NotFound, (await _s.Client.GetAsync("/app/../Sputnik.Server.dll", TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task ConversationHistoryCrud()
    {
        var created = await _s.PostAsync("/api/conversations", """{"title":"Test chat"}""");
        Assert.Equal(201, created.Status);
        string id = (string)created.Body["id"]!;
        var m1 = await _s.PostAsync($"/api/conversations/{id}/messages", """{"role":"user","content":"hi"}""");
        Assert.Equal(201, m1.Status);
        var m2 = await _s.PostAsync($"/api/conversations/{id}/messages", """{"role":"assistant","content":"hello","reasoning_content":"think","meta":{"tok_s":12.5}}""");
        var conv = await _s.GetJsonAsync($"/api/conversations/{id}");
        Assert.Equal(2, conv["messages"]!.AsArray().Count);
        Assert.Equal("think", (string)conv["messages"]![1]!["reasoning_content"]!);
        Assert.Equal(12.5, (double)conv["messages"]![1]!["meta"]!["tok_s"]!);
        var list = await _s.GetJsonAsync("/api/conversations");
        Assert.Contains(list["data"]!.AsArray(), c => (string)c!["id"]! == id);

        var del = await _s.Client.DeleteAsync($"/api/conversations/{id}/messages/{(long)m2.Body["id"]!}", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NoContent, del.StatusCode);
        Assert.Single((await _s.GetJsonAsync($"/api/conversations/{id}"))["messages"]!.AsArray());
        var patch = await _s.Client.PatchAsync($"/api/conversations/{id}", TestServer.Json("""{"title":"Renamed"}"""), TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await _s.Client.DeleteAsync($"/api/conversations/{id}", TestContext.Current.CancellationToken)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _s.Client.GetAsync($"/api/conversations/{id}", TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task HistorySurvivesARestart()
    {
        string dir = Path.Combine(Path.GetTempPath(), "sputnik-hist-" + Guid.NewGuid().ToString("N")[..8]);
        string id;
        await using (var a = await TestServer.StartAsync(o => o with { DataDir = dir }))
        {
            id = (string)(await a.PostAsync("/api/conversations", "{}")).Body["id"]!;
            await a.PostAsync($"/api/conversations/{id}/messages", """{"role":"user","content":"persist me"}""");
        }
        await using (var b = await TestServer.StartAsync(o => o with { DataDir = dir }))
        {
            var conv = await b.GetJsonAsync($"/api/conversations/{id}");
            Assert.Equal("persist me", (string)conv["messages"]![0]!["content"]!);
        }
    }
}
