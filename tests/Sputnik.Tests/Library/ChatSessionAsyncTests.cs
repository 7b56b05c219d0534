using Sputnik.Inference;
using Xunit;

namespace Sputnik.Tests.Library;

/// <summary>The friendly API: model.CreateChat, SendAsync / AskAsync.</summary>
public sealed class ChatSessionAsyncTests : IDisposable
{
    private readonly SputnikModel _model = LibraryFixture.Load();

    public void Dispose() => _model.Dispose();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task SendAsyncStreamsReasoningThenAnswerThenUsage()
    {
        var chat = _model.CreateChat(new ChatOptions { ChatTemplate = LibraryFixture.R1Template, ThinkingBudget = 4, MaxTokens = 40, Sampling = SamplingOptions.Greedy });
        var updates = new List<ChatUpdate>();
        await foreach (var u in chat.SendAsync("Once upon a time", Ct)) updates.Add(u);
        var final = updates[^1];
        Assert.True(final.IsFinal);
        Assert.Equal(4, final.Usage!.ReasoningTokens);
        Assert.All(updates[..^1], u => Assert.True(u.Reasoning.Length == 0 || u.Content.Length == 0));
        Assert.True(updates[0].IsReasoning);
        int firstAnswer = updates.FindIndex(u => !u.IsReasoning && u.Text.Length > 0);
        Assert.True(firstAnswer > 0);
        Assert.DoesNotContain(updates[firstAnswer..], u => u.IsReasoning);
        Assert.Equal(2, chat.Messages.Count);
        Assert.Equal(string.Concat(updates.Select(u => u.Content)), chat.Messages[1].Content);
    }

    [Fact]
    public async Task AskAsyncReturnsTheWholeReplyAndReusesTheCache()
    {
        var chat = _model.CreateChat(new ChatOptions { MaxTokens = 10, Sampling = SamplingOptions.Greedy });
        var first = await chat.AskAsync("Once upon a time", Ct);
        Assert.False(string.IsNullOrEmpty(first.Content));
        Assert.Null(first.Reasoning);
        Assert.Equal(FinishReason.Length, first.FinishReason);
        Assert.Equal(10, first.Usage.OutputTokens);
        var second = await chat.AskAsync("Then what?", Ct);
        Assert.True(second.Usage.CachedInputTokens > 0);
        Assert.Equal(4, chat.Messages.Count);
    }

    [Fact]
    public async Task CancellationThrowsAndKeepsThePartialAnswer()
    {
        var chat = _model.CreateChat(new ChatOptions { MaxTokens = 200, Sampling = SamplingOptions.Greedy });
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var u in chat.SendAsync("Once upon a time", cts.Token)) cts.Cancel();
        });
        Assert.Equal("assistant", chat.Messages[^1].Role);
        Assert.Equal(FinishReason.Cancelled, chat.LastStats!.FinishReason);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => chat.AskAsync("again", new CancellationToken(true)));
    }

    [Fact]
    public async Task ChatsSharingAModelAreSerialised()
    {
        var options = new ChatOptions { MaxTokens = 12, Sampling = SamplingOptions.Greedy };
        string expected = (await _model.CreateChat(options).AskAsync("Once upon a time", Ct)).Content;
        var replies = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => _model.CreateChat(options).AskAsync("Once upon a time", Ct)));
        Assert.All(replies, r => Assert.Equal(expected, r.Content));
    }
}
