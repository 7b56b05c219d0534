using Xunit;
using System.Net;
using System.Text;

namespace Sputnik.Tests.Server;

/// <summary>Every error comes back as OpenAI's {"error":{message,type,param,code}} with the right status.</summary>
public sealed class ApiErrorTests : IAsyncLifetime
{
    private TestServer _s = null!;

    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync(o => o with { MaxBodyBytes = 64 * 1024 });
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    [Theory]
    [InlineData("{bad json", null, "invalid_json")]
    [InlineData("[]", null, null)]
    [InlineData("""{"messages":[]}""", "messages", null)]
    [InlineData("""{"messages":"hi"}""", "messages", null)]
    [InlineData("""{"messages":[{"role":"wizard","content":"x"}]}""", "messages[0].role", "invalid_role")]
    [InlineData("""{"messages":[{"role":"user"}]}""", "messages[0].content", null)]
    [InlineData("""{"messages":[{"role":"user","content":42}]}""", "messages[0].content", null)]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}""", "messages[0].content", "unsupported_content")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"max_tokens":-5}""", "max_tokens", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"max_tokens":0}""", "max_tokens", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"max_tokens":999999999999}""", "max_tokens", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"max_tokens":"ten"}""", "max_tokens", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"temperature":"hot"}""", "temperature", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"temperature":5}""", "temperature", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"stream":"yes"}""", "stream", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"n":2}""", "n", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"stop":[1,2]}""", "stop", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}""", "top_logprobs", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"reasoning_effort":"extreme"}""", "reasoning_effort", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"thinking":{"type":"maybe"}}""", "thinking.type", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object"}}""", "response_format", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}}""", "response_format.type", null)]
    [InlineData("""{"messages":[{"role":"tool","content":"x"}]}""", "messages[0].tool_call_id", null)]
    [InlineData("""{"messages":[{"role":"user","content":[5]}]}""", "messages[0].content[0]", null)]
    [InlineData("""{"messages":[{"role":"user","content":[null]}]}""", "messages[0].content[0]", null)]
    [InlineData("""{"messages":[{"role":"user","content":[{"type":"text","text":"a"},"b"]}]}""", "messages[0].content[1]", null)]
    [InlineData("""{"messages":[{"role":"assistant","content":null,"tool_calls":[1]}]}""", "messages[0].tool_calls[0]", null)]
    [InlineData("""{"messages":[{"role":"assistant","content":null,"tool_calls":[null]}]}""", "messages[0].tool_calls[0]", null)]
    [InlineData("""{"messages":[{"role":"assistant","content":null,"tool_calls":[{"function":7}]}]}""", "messages[0].tool_calls[0].function", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"}""", "tool_choice", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tool_choice":5}""", "tool_choice", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tool_choice":"required"}""", "tool_choice", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tool_choice":{"type":"function","function":{"name":"f"}}}""", "tool_choice.function.name", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"g"}}],"tool_choice":{"type":"function","function":{"name":"f"}}}""", "tool_choice.function.name", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"g"}}],"tool_choice":{"type":"tool","function":{"name":"g"}}}""", "tool_choice.type", null)]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"g"}}],"tool_choice":{"type":"function"}}""", "tool_choice.function", null)]
    public async Task BadChatRequestsAre400WithParam(string json, string? param, string? code)
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", json);
        Assert.Equal(400, status);
        var err = body["error"]!;
        Assert.Equal("invalid_request_error", (string)err["type"]!);
        Assert.False(string.IsNullOrEmpty((string?)err["message"]));
        Assert.True(err.AsObject().ContainsKey("param") && err.AsObject().ContainsKey("code"));
        if (param != null) Assert.Equal(param, (string?)err["param"]);
        if (code != null) Assert.Equal(code, (string?)err["code"]);
    }

    [Fact]
    public async Task LongPromptIsContextLengthExceeded()
    {
        string longText = string.Join(' ', Enumerable.Repeat("Once upon a time there was a dog.", 200));
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: longText));
        Assert.Equal(400, status);
        Assert.Equal("context_length_exceeded", (string)body["error"]!["code"]!);
        var c = await _s.PostAsync("/v1/completions", $$"""{"prompt":"{{longText}}","max_tokens":4}""");
        Assert.Equal("context_length_exceeded", (string)c.Body["error"]!["code"]!);
    }

    [Fact]
    public async Task JsonObjectWithTheWordJsonIsAccepted()
    {
        var (status, _, _) = await _s.PostAsync("/v1/chat/completions",
            TestServer.ChatBody(user: "Answer in JSON", maxTokens: 4, extra: ""","response_format":{"type":"json_object"}"""));
        Assert.Equal(200, status);
    }

    [Fact]
    public async Task UnknownRouteIs404()
    {
        var r = await _s.Client.GetAsync("/v1/nothing-here", TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.NotFound, r.StatusCode);
        Assert.Contains("\"error\"", await r.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.Equal(HttpStatusCode.NotFound, (await _s.Client.GetAsync("/v1/models/nope", TestContext.Current.CancellationToken)).StatusCode);
    }

    [Fact]
    public async Task OversizedBodyIs413()
    {
        string big = "{\"messages\":[{\"role\":\"user\",\"content\":\"" + new string('a', 100 * 1024) + "\"}]}";
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", big);
        Assert.Equal(413, status);
        Assert.Equal("request_too_large", (string)body["error"]!["code"]!);
    }

    [Fact]
    public async Task CompletionErrors()
    {
        Assert.Equal("prompt", (string)(await _s.PostAsync("/v1/completions", "{}")).Body["error"]!["param"]!);
        Assert.Equal("suffix", (string)(await _s.PostAsync("/v1/completions", """{"prompt":"a","suffix":"b"}""")).Body["error"]!["param"]!);
        Assert.Equal("prompt", (string)(await _s.PostAsync("/v1/completions", """{"prompt":[123456789]}""")).Body["error"]!["param"]!);
        Assert.Equal(400, (await _s.PostAsync("/tokenize", """{"content":5}""")).Status);
    }

    [Fact]
    public async Task ErrorsNeverLeakStackTraces()
    {
        using var content = new ByteArrayContent(Encoding.UTF8.GetBytes("\u0000\u0001garbage"));
        content.Headers.ContentType = new("application/json");
        var r = await _s.Client.PostAsync("/v1/chat/completions", content, TestContext.Current.CancellationToken);
        string text = await r.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.BadRequest, r.StatusCode);
        Assert.DoesNotContain(" at Sputnik.", text);
    }
}

/// <summary>--api-key guards the API but not /health.</summary>
public sealed class ApiKeyTests : IAsyncLifetime
{
    private TestServer _s = null!;

    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync(o => o with { ApiKey = "sk-test-123" });
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    [Fact]
    public async Task MissingOrWrongKeyIs401AndRightKeyWorks()
    {
        var none = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 2));
        Assert.Equal(401, none.Status);
        Assert.Equal("authentication_error", (string)none.Body["error"]!["type"]!);
        Assert.Equal("missing_api_key", (string)none.Body["error"]!["code"]!);
        var wrong = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 2), key: "sk-nope");
        Assert.Equal(401, wrong.Status);
        Assert.Equal("invalid_api_key", (string)wrong.Body["error"]!["code"]!);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _s.Client.GetAsync("/v1/models", TestContext.Current.CancellationToken)).StatusCode);
        var ok = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 2), key: "sk-test-123");
        Assert.Equal(200, ok.Status);
        Assert.Equal(HttpStatusCode.OK, (await _s.Client.GetAsync("/health", TestContext.Current.CancellationToken)).StatusCode);
    }
}
