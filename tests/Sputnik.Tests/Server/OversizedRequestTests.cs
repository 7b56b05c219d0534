using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// Requests whose size could only end in a refusal are refused before they cost anything: a body larger than any
/// prompt that fits the context is a 413 before it is read, a prompt text too long to fit a 400 before it is
/// tokenized, and a response_format whose shortest JSON cannot fit the completion budget a 400 before generating.
/// </summary>
public sealed class OversizedRequestTests : IAsyncLifetime
{
    private TestServer _s = null!;

    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync();
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    [Fact]
    public async Task ABodyLargerThanAnyPromptThatFitsIs413BeforeItIsRead()
    {
        long limit = _s.Host.Model.BodyLimit;
        Assert.True(limit < _s.Host.Options.MaxBodyBytes, $"the context bound ({limit}) is tighter than --max-body for a 512-token context");
        string big = TestServer.ChatBody(user: new string('a', (int)limit));
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", big);
        Assert.Equal(413, status);
        Assert.Equal("request_too_large", (string?)body["error"]!["code"]);
        Assert.Contains(limit.ToString(System.Globalization.CultureInfo.InvariantCulture), (string)body["error"]!["message"]!);
    }

    [Fact]
    public async Task AChunkedBodyOverTheBoundIs413Too()
    {
        long limit = _s.Host.Model.BodyLimit;
        var bytes = Encoding.UTF8.GetBytes(TestServer.ChatBody(user: new string('a', (int)limit)));
        using var content = new StreamContent(new MemoryStream(bytes)); // no Content-Length: sent chunked
        content.Headers.ContentType = new("application/json");
        using var req = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = content };
        req.Headers.TransferEncodingChunked = true;
        var resp = await _s.Client.SendAsync(req, TestContext.Current.CancellationToken);
        Assert.Equal(413, (int)resp.StatusCode);
    }

    [Fact]
    public async Task APromptTextTooLongToFitIs400BeforeTokenizing()
    {
        // Under the body bound but far more characters than the context could hold as tokens.
        int chars = (int)(_s.Host.Model.BodyLimit / 2);
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: new string('x', chars), maxTokens: 4));
        Assert.Equal(400, status);
        Assert.Equal("context_length_exceeded", (string?)body["error"]!["code"]);
        // The early check speaks of characters (the tokenizer never saw them); both numbers are named.
        Assert.Matches($@"{chars} characters, at least \d+ tokens", (string)body["error"]!["message"]!);
        Assert.Contains("512 tokens", (string)body["error"]!["message"]!);
        var c = await _s.PostAsync("/v1/completions", $$"""{"prompt":"{{new string('x', chars)}}"}""");
        Assert.Equal(400, c.Status);
        Assert.Equal("prompt", (string?)c.Body["error"]!["param"]);
    }

    private static string SchemaRequest(string schema, int maxTokens) =>
        TestServer.ChatBody(maxTokens: maxTokens, extra: ",\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"x\",\"schema\":" + schema + "}}");

    [Theory]
    [InlineData("""{"type":"string","minLength":1000000000}""", 64)]
    [InlineData("""{"type":"array","items":{"type":"integer"},"minItems":1000000000}""", 64)]
    [InlineData("""{"type":"object","properties":{"a":{"type":"string","minLength":5000}},"required":["a"]}""", 100)]
    public async Task ASchemaWhoseShortestValueCannotFitIs400(string schema, int maxTokens)
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", SchemaRequest(schema, maxTokens));
        Assert.Equal(400, status);
        Assert.Equal("response_format_cannot_fit", (string?)body["error"]!["code"]);
        Assert.Equal("response_format", (string?)body["error"]!["param"]);
    }

    /// <summary>
    /// A schema that fits only if tokens are long cannot be refused up front; when the budget runs out mid-value the
    /// answer is cut off with finish_reason "length" (as OpenAI does), never presented as a finished answer.
    /// </summary>
    [Theory]
    [InlineData("""{"type":"string","minLength":50}""", 16)]
    [InlineData("""{"type":"array","items":{"type":"string","minLength":3},"minItems":12}""", 20)]
    [InlineData("""{"type":"object","properties":{"name":{"type":"string","maxLength":8}},"required":["name"]}""", 64)]
    public async Task JsonCutOffByTheBudgetEndsWithLengthNotStop(string schema, int maxTokens)
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", SchemaRequest(schema, maxTokens));
        Assert.True(status == 200, body.ToJsonString());
        var choice = body["choices"]![0]!;
        string content = (string)choice["message"]!["content"]!;
        bool valid;
        try
        {
            using var _ = JsonDocument.Parse(content);
            valid = true;
        }
        catch (JsonException)
        {
            valid = false;
        }
        if (!valid) Assert.Equal("length", (string?)choice["finish_reason"]);
        else Assert.Equal("stop", (string?)choice["finish_reason"]);
    }
}
