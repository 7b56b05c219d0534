using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Inference;
using Sputnik.Server.Api.Ollama;
using Sputnik.Tests.Server;
using Xunit;

namespace Sputnik.Tests.Ollama;

/// <summary>Ollama's wire details over plain HTTP on stories260K (no thinking; the ChatML fallback renders tools).</summary>
public sealed class OllamaApiTests : IAsyncLifetime
{
    private TestServer _s = null!;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    // The tiny vocabulary spells a tool definition out in hundreds of tokens: more context than the test default.
    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync(o => o with { ContextLength = 2048 });
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    /// <summary>POSTs <paramref name="json"/> with no Content-Type, as Ollama's curl examples do.</summary>
    private async Task<(HttpStatusCode Status, string Body, HttpResponseMessage Response)> Post(string path, string json)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(json));
        var resp = await _s.Client.PostAsync(path, content, Ct);
        return (resp.StatusCode, await resp.Content.ReadAsStringAsync(Ct), resp);
    }

    private async Task<JsonNode> Ok(string path, string json)
    {
        var (status, body, _) = await Post(path, json);
        Assert.True(status == HttpStatusCode.OK, $"{status}: {body}");
        return JsonNode.Parse(body)!;
    }

    private async Task<string> Error(string path, string json, HttpStatusCode expected = HttpStatusCode.BadRequest)
    {
        var (status, body, resp) = await Post(path, json);
        Assert.Equal(expected, status);
        Assert.StartsWith("application/json", resp.Content.Headers.ContentType!.ToString());
        var node = JsonNode.Parse(body)!.AsObject();
        Assert.Equal(["error"], node.Select(p => p.Key)); // Ollama's shape: {"error": "..."} and nothing else
        return (string)node["error"]!;
    }

    [Fact]
    public async Task RootAnswersOllamaClientsAndBrowsers()
    {
        Assert.Equal("Ollama is running", await _s.Client.GetStringAsync("/", Ct));
        using var head = await _s.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/"), Ct);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(17, head.Content.Headers.ContentLength);
        using var browser = new HttpRequestMessage(HttpMethod.Get, "/");
        browser.Headers.Accept.ParseAdd("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8");
        using var page = await _s.Client.SendAsync(browser, Ct);
        Assert.Contains("<title>Sputnik", await page.Content.ReadAsStringAsync(Ct));
        Assert.Equal(OllamaEndpoints.CompatibleVersion, (string)(await _s.GetJsonAsync("/api/version"))["version"]!);
    }

    [Fact]
    public async Task ChatStreamsNdjsonByDefaultAndEndsWithStatistics()
    {
        var (status, body, resp) = await Post("/api/chat", """{"model":"any","messages":[{"role":"user","content":"Once upon a time"}],"options":{"temperature":0,"num_predict":12,"seed":1}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        Assert.Equal("application/x-ndjson", resp.Content.Headers.ContentType!.MediaType);
        var lines = body.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.True(lines.Count > 2);
        Assert.All(lines[..^1], l => Assert.False((bool)l["done"]!));
        Assert.All(lines, l => Assert.Equal("any", (string)l["model"]!));
        var last = lines[^1];
        Assert.True((bool)last["done"]!);
        Assert.Equal("length", (string)last["done_reason"]!);
        Assert.Equal(12, (int)last["eval_count"]!);
        foreach (var key in new[] { "total_duration", "load_duration", "prompt_eval_count", "prompt_eval_duration", "eval_duration" })
            Assert.True(last[key] != null, key);
        string streamed = string.Concat(lines.Select(l => (string?)l["message"]!["content"]));
        var whole = await Ok("/api/chat", """{"model":"any","stream":false,"messages":[{"role":"user","content":"Once upon a time"}],"options":{"temperature":0,"num_predict":12}}""");
        Assert.Equal(streamed, (string)whole["message"]!["content"]!);
        Assert.NotEmpty(streamed);
    }

    [Fact]
    public async Task EmptyRequestsLoadTheModel()
    {
        var chat = await Ok("/api/chat", """{"model":"m","messages":[]}""");
        Assert.Equal(("load", true), ((string)chat["done_reason"]!, (bool)chat["done"]!));
        var generate = await Ok("/api/generate", """{"model":"m"}""");
        Assert.Equal("load", (string)generate["done_reason"]!);
        var embed = await Ok("/api/embed", """{"model":"m","input":[]}""");
        Assert.Empty(embed["embeddings"]!.AsArray());
    }

    [Fact]
    public async Task GenerateReturnsAContextThatContinuesTheConversation()
    {
        var first = await Ok("/api/generate", """{"model":"m","prompt":"Once upon a time","raw":true,"stream":false,"options":{"temperature":0,"num_predict":8}}""");
        var context = first["context"]!.AsArray().Select(t => (int)t!).ToArray();
        Assert.Equal((int)first["prompt_eval_count"]! + 8, context.Length);
        string body = $$$"""{"model":"m","prompt":" there","raw":true,"stream":false,"context":{{{JsonSerializer.Serialize(context)}}},"options":{"temperature":0,"num_predict":4}}""";
        var second = await Ok("/api/generate", body);
        Assert.True((int)second["prompt_eval_count"]! > context.Length);
        Assert.Equal(context, second["context"]!.AsArray().Take(context.Length).Select(t => (int)t!));
    }

    [Fact]
    public async Task ToolsAndToolHistoryReachThePrompt()
    {
        const string Tools = """[{"type":"function","function":{"name":"get_weather","description":"Weather of a city","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]""";
        const string Ask = """{"role":"user","content":"Weather in Paris?"}""";
        int Count(JsonNode n) => (int)n["prompt_eval_count"]!;
        var plain = await Ok("/api/chat", $$$"""{"model":"m","stream":false,"messages":[{{{Ask}}}],"options":{"num_predict":1}}""");
        var withTools = await Ok("/api/chat", $$$"""{"model":"m","stream":false,"tools":{{{Tools}}},"messages":[{{{Ask}}}],"options":{"num_predict":1}}""");
        Assert.True(Count(withTools) > Count(plain) + 10, $"{Count(withTools)} vs {Count(plain)} prompt tokens: the tools were not rendered");
        string history = Ask + "," + """
            {"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_weather","arguments":{"city":"Paris"}}}]},
            {"role":"tool","tool_name":"get_weather","content":"Sunny, 21 C"}
            """;
        var afterCall = await Ok("/api/chat", $$$"""{"model":"m","stream":false,"tools":{{{Tools}}},"messages":[{{{history}}}],"options":{"num_predict":1}}""");
        Assert.True(Count(afterCall) > Count(withTools) + 10, "the call and its result were not rendered");
    }

    [Fact]
    public void GeneratedCallsBecomeOllamaToolCallsWithObjectArguments()
    {
        Assert.True(Sputnik.Inference.ToolCallParser.TryParse("""<tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>""", out var calls, out _));
        var chunk = new OllamaChatChunk("m", DateTime.UnixEpoch, new OllamaMessage("assistant", "", null, OllamaChat.ToolCalls(calls)), false);
        var json = JsonNode.Parse(JsonSerializer.Serialize(chunk, OllamaJson.Api.OllamaChatChunk))!;
        var call = json["message"]!["tool_calls"]![0]!;
        Assert.Equal("get_weather", (string)call["function"]!["name"]!);
        Assert.Equal(0, (int)call["function"]!["index"]!);
        Assert.Equal(JsonValueKind.Object, call["function"]!["arguments"]!.GetValueKind());
        Assert.Equal("Paris", (string)call["function"]!["arguments"]!["city"]!);
        Assert.Equal("", (string)json["message"]!["content"]!);
    }

    [Theory]
    [InlineData("/api/chat", """{"messages":[]}""", "model is required")]
    [InlineData("/api/chat", """{"model":"m","messages":[{"role":"user","content":"x"}],"think":"extreme"}""", "'think'")]
    [InlineData("/api/chat", """{"model":"m","messages":[{"role":"user","content":"x"}],"think":true}""", "does not support thinking")]
    [InlineData("/api/chat", """{"model":"m","messages":[{"role":"user","content":"x"}],"format":"xml"}""", "'format'")]
    [InlineData("/api/chat", """{"model":"m","messages":[{"role":"user","content":"x","images":["aGk="]}]}""", "images")]
    [InlineData("/api/chat", """{"model":"m","messages":[{"role":"robot","content":"x"}]}""", "role")]
    [InlineData("/api/chat", """{"model":"m","messages":[{"role":"user","content":"x"}],"options":{"num_predict":0}}""", "num_predict")]
    [InlineData("/api/chat", """{"model":"m","messages":[{"role":"user","content":"x"}],"options":{"temperature":"hot"}}""", "options.temperature")]
    [InlineData("/api/chat", """{"model":"m","messages":[],"keep_alive":"5 minutes"}""", "keep_alive")]
    [InlineData("/api/generate", """{"model":"m","prompt":"x","template":"{{ .Prompt }}"}""", "template")]
    [InlineData("/api/embed", """{"model":"m","input":5}""", "invalid input type")]
    [InlineData("/api/embed", """{"model":"m","input":["a",3]}""", "invalid input type")]
    [InlineData("/api/embed", """{"model":"m","input":"a","truncate":false,"dimensions":"x"}""", "dimensions")]
    [InlineData("/api/show", """{}""", "model is required")]
    [InlineData("/api/chat", """[1]""", "JSON object")]
    public async Task MistakesAreOllamaErrorsNamingTheField(string path, string body, string mention) =>
        Assert.Contains(mention, await Error(path, body));

    [Fact]
    public async Task KeepAliveTakesGoDurationsAndSeconds()
    {
        foreach (string keepAlive in new[] { "\"5m\"", "\"1h30m\"", "\"0\"", "\"-1\"", "-1", "300", "\"10s\"" })
            Assert.Equal("load", (string)(await Ok("/api/chat", $$"""{"model":"m","messages":[],"keep_alive":{{keepAlive}}}"""))["done_reason"]!);
        Assert.Equal(TimeSpan.FromMinutes(90), OllamaReader.ParseDuration("1h30m"));
        Assert.Equal(Timeout.InfiniteTimeSpan, OllamaReader.ParseDuration("-1m"));
        Assert.Null(OllamaReader.ParseDuration("5 minutes"));
    }

    [Fact]
    public async Task UnknownOllamaRoutesAreOllamaErrors() =>
        Assert.Contains("/api/pull", await Error("/api/pull", """{"model":"m"}""", HttpStatusCode.NotFound));

    [Fact]
    public async Task EmbeddingsAgreeAcrossEndpointsAndFormats()
    {
        var ollama = await Ok("/api/embed", """{"model":"m","input":["Once upon a time","a cat"]}""");
        var vectors = ollama["embeddings"]!.AsArray().Select(v => v!.AsArray().Select(x => (float)x!).ToArray()).ToList();
        Assert.Equal(2, vectors.Count);
        var (status, floats, _) = await _s.PostAsync("/v1/embeddings", """{"model":"x","input":["Once upon a time","a cat"]}""");
        Assert.Equal(200, status);
        Assert.Equal("list", (string)floats["object"]!);
        Assert.Equal((int)ollama["prompt_eval_count"]!, (int)floats["usage"]!["prompt_tokens"]!);
        var (_, base64, _) = await _s.PostAsync("/v1/embeddings", """{"input":["Once upon a time","a cat"],"encoding_format":"base64"}""");
        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(i, (int)floats["data"]![i]!["index"]!);
            Assert.Equal(vectors[i], floats["data"]![i]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray());
            var bytes = Convert.FromBase64String((string)base64["data"]![i]!["embedding"]!);
            Assert.Equal(vectors[i], System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes).ToArray());
        }
        // Token ids in, the same vector out.
        int[] ids = _s.Host.Model.Embedder.Tokenize("a cat");
        var (_, fromIds, _) = await _s.PostAsync("/v1/embeddings", $$"""{"input":{{JsonSerializer.Serialize(ids)}}}""");
        Assert.Equal(vectors[1], fromIds["data"]![0]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray());
        // The legacy endpoint answers the vector before normalisation: same direction, another length.
        var legacy = (await Ok("/api/embeddings", """{"model":"m","prompt":"a cat"}"""))["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
        double norm = Math.Sqrt(legacy.Sum(x => (double)x * x));
        Assert.NotEqual(1.0, norm, 3);
        for (int j = 0; j < legacy.Length; j++) Assert.Equal(vectors[1][j], legacy[j] / norm, 5);
    }

    [Theory]
    [InlineData("""{"input":""}""", "input")]
    [InlineData("""{"input":[]}""", "input")]
    [InlineData("""{"input":"a","encoding_format":"int8"}""", "encoding_format")]
    [InlineData("""{"input":"a","dimensions":100000}""", "dimensions")]
    [InlineData("""{"input":[[1,2],[99999999]]}""", "input[1]")]
    [InlineData("""{"input":[true]}""", "input[0]")]
    [InlineData("""{"model":"m"}""", "input")]
    public async Task OpenAiEmbeddingMistakesNameTheField(string body, string param)
    {
        var (status, json, _) = await _s.PostAsync("/v1/embeddings", body);
        Assert.Equal(400, status);
        Assert.Equal(param, (string)json["error"]!["param"]!);
    }

    [Fact]
    public async Task TooLongInputsAreCutForOllamaAndRefusedForOpenAi()
    {
        string text = string.Join(' ', Enumerable.Repeat("once upon a time", 2000));
        var (status, json, _) = await _s.PostAsync("/v1/embeddings", JsonSerializer.Serialize(new { input = text }));
        Assert.Equal(400, status);
        Assert.Equal("context_length_exceeded", (string)json["error"]!["code"]!);
        var cut = await Ok("/api/embed", JsonSerializer.Serialize(new { model = "m", input = text }));
        Assert.Equal(_s.Host.Model.Model.ContextLength, (int)cut["prompt_eval_count"]!);
        Assert.Contains("context length", await Error("/api/embed", JsonSerializer.Serialize(new { model = "m", input = text, truncate = false })));
    }
}
