using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// Requests asking for more than the context holds are served as llama-server serves them: the completion is
/// clamped to the room the prompt leaves and ends with finish_reason "length"; only a prompt that leaves no room is
/// a 400, naming both numbers. Any model name works on this single-model server.
/// </summary>
public sealed class ContextBudgetTests : IAsyncLifetime
{
    private const int Context = 64;
    private TestServer _s = null!;

    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync(o => o with { ContextLength = Context });
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    private static string Chat(string? maxTokensField, string model = "stories260K", bool stream = false) =>
        $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Once upon a time"}],"temperature":0{{maxTokensField}}{{(stream ? ",\"stream\":true,\"stream_options\":{\"include_usage\":true}" : "")}}}""";

    private static void AssertFilledTheContext(JsonNode usage, string? finish)
    {
        int prompt = (int)usage["prompt_tokens"]!, completion = (int)usage["completion_tokens"]!;
        Assert.Equal(Context, prompt + completion);
        Assert.Equal("length", finish);
    }

    [Theory]
    [InlineData(",\"max_tokens\":1000")]
    [InlineData(",\"max_completion_tokens\":100000")]
    [InlineData("")] // absent: all the room left
    public async Task ChatBeyondTheContextIsClampedAndEndsWithLength(string maxTokens)
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", Chat(maxTokens));
        Assert.True(status == 200, body.ToJsonString());
        AssertFilledTheContext(body["usage"]!, (string?)body["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task StreamingBeyondTheContextEndsWithLength()
    {
        var resp = await _s.Client.PostAsync("/v1/chat/completions", TestServer.Json(Chat(",\"max_tokens\":5000", stream: true)), TestContext.Current.CancellationToken);
        Assert.Equal(200, (int)resp.StatusCode);
        var (events, done, _) = TestServer.ParseSse(await resp.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.True(done);
        string? finish = events.Select(e => e["choices"]!.AsArray().FirstOrDefault()?["finish_reason"]).Where(f => f != null).Select(f => (string?)f).Single();
        AssertFilledTheContext(events[^1]["usage"]!, finish);
    }

    [Theory]
    [InlineData(",\"max_tokens\":1000")]
    [InlineData("")]
    public async Task CompletionsBeyondTheContextAreClampedToo(string maxTokens)
    {
        var (status, body, _) = await _s.PostAsync("/v1/completions", $$"""{"prompt":"Once upon a time","temperature":0{{maxTokens}}}""");
        Assert.True(status == 200, body.ToJsonString());
        AssertFilledTheContext(body["usage"]!, (string?)body["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task APromptThatAloneDoesNotFitIs400NamingBothNumbers()
    {
        // ~70 tokens of text, few enough characters that the early text-length check lets it through to the tokenizer.
        string text = string.Join(' ', Enumerable.Repeat("the dog ran", 24));
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: text, maxTokens: 4));
        Assert.Equal(400, status);
        var err = body["error"]!;
        Assert.Equal("context_length_exceeded", (string?)err["code"]);
        Assert.Equal("messages", (string?)err["param"]);
        string message = (string)err["message"]!;
        Assert.Contains($"{Context} tokens", message);
        Assert.Matches(@"your prompt is \d+ tokens", message);

        var c = await _s.PostAsync("/v1/completions", $$"""{"prompt":{{JsonSerializer.Serialize(text)}}}""");
        Assert.Equal(400, c.Status);
        Assert.Equal("prompt", (string?)c.Body["error"]!["param"]);
        Assert.Contains($"{Context} tokens", (string)c.Body["error"]!["message"]!);
    }

    [Theory]
    [InlineData("gpt-4o")]
    [InlineData("model")]
    [InlineData("deepseek-chat")]
    public async Task AnyModelNameIsServedByTheOneModelUnderItsOwnName(string asked)
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", Chat(",\"max_tokens\":2", model: asked));
        Assert.True(status == 200, body.ToJsonString());
        Assert.Equal("stories260K", (string?)body["model"]);
        var c = await _s.PostAsync("/v1/completions", $$"""{"model":"{{asked}}","prompt":"Once","max_tokens":2}""");
        Assert.Equal(200, c.Status);
        Assert.Equal("stories260K", (string?)c.Body["model"]);
    }
}
