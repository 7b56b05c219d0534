using Xunit;
using System.Net;
using System.Text.Json.Nodes;

namespace Sputnik.Tests.Server;

/// <summary>
/// DeepSeek's reasoning extensions, driven through an R1-style template (the prompt ends inside "&lt;think&gt;"):
/// the tiny test model never closes the block itself, so every token is thinking until the budget forces the answer.
/// </summary>
public sealed class ReasoningTests : IAsyncLifetime
{
    private const string R1Template =
        "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] }}{% endfor %}" +
        "{% if add_generation_prompt %}{{ '<|assistant|><think>\\n' }}{% endif %}";

    private TestServer _s = null!;

    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync(o => o with { ChatTemplate = R1Template });
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    [Fact]
    public async Task ThinkingGoesToReasoningContentAndCountsAsReasoningTokens()
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions",
            TestServer.ChatBody(maxTokens: 40, extra: ""","thinking":{"type":"enabled","budget_tokens":5}"""));
        Assert.Equal(200, status);
        var msg = body["choices"]![0]!["message"]!;
        Assert.False(string.IsNullOrEmpty((string?)msg["reasoning_content"]));
        Assert.Equal(5, (int)body["usage"]!["completion_tokens_details"]!["reasoning_tokens"]!);
        Assert.DoesNotContain("</think>", (string?)msg["content"] ?? "");
        Assert.True((bool)(await _s.GetJsonAsync("/v1/models"))["data"]![0]!["meta"]!["thinking"]!);
    }

    [Fact]
    public async Task ReasoningEffortSetsTheBudget()
    {
        var (_, low, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 300, extra: ""","reasoning_effort":"low","temperature":0"""));
        int reasoning = (int)low["usage"]!["completion_tokens_details"]!["reasoning_tokens"]!;
        Assert.True(reasoning is > 0 and <= 256, $"reasoning tokens {reasoning}");
    }

    [Fact]
    public async Task DisabledThinkingHasNoReasoning()
    {
        var (_, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 8, extra: ""","thinking":{"type":"disabled"}"""));
        Assert.Null(body["choices"]![0]!["message"]!["reasoning_content"]);
        Assert.Equal(0, (int)body["usage"]!["completion_tokens_details"]!["reasoning_tokens"]!);
    }

    [Fact]
    public async Task StreamCarriesReasoningContentDeltas()
    {
        var r = await _s.Client.PostAsync("/v1/chat/completions",
            TestServer.Json(TestServer.ChatBody(maxTokens: 30, stream: true, extra: ""","thinking":{"type":"enabled","budget_tokens":4},"stream_options":{"include_usage":true}""")),
            TestContext.Current.CancellationToken);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        var (events, done, _) = TestServer.ParseSse(await r.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.True(done);
        var deltas = events.Where(e => e["choices"]!.AsArray().Count > 0).Select(e => e["choices"]![0]!["delta"]!).ToList();
        string reasoning = string.Concat(deltas.Select(d => (string?)d["reasoning_content"] ?? ""));
        Assert.False(string.IsNullOrEmpty(reasoning));
        int firstContent = deltas.FindIndex(d => !string.IsNullOrEmpty((string?)d["content"]));
        int lastReasoning = deltas.FindLastIndex(d => d["reasoning_content"] != null);
        Assert.True(firstContent < 0 || firstContent > lastReasoning, "content came before the thinking ended");
        Assert.Equal(4, (int)events[^1]["usage"]!["completion_tokens_details"]!["reasoning_tokens"]!);
    }
}
