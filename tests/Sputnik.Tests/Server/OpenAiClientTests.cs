using Xunit;
using System.ClientModel;
using OpenAI;
using OpenAI.Chat;

namespace Sputnik.Tests.Server;

/// <summary>The official OpenAI .NET SDK as a real client: plain, streaming, error.</summary>
public sealed class OpenAiClientTests : IAsyncLifetime
{
    private TestServer _s = null!;
    private ChatClient _chat = null!;

    public async ValueTask InitializeAsync()
    {
        _s = await TestServer.StartAsync(o => o with { ApiKey = "sk-sdk" });
        _chat = new ChatClient("stories260K", new ApiKeyCredential("sk-sdk"), new OpenAIClientOptions { Endpoint = new Uri(_s.BaseAddress, "v1") });
    }

    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    private static ChatCompletionOptions Greedy(int n) => new() { Temperature = 0, MaxOutputTokenCount = n };

    [Fact]
    public async Task PlainCompletion()
    {
        ChatCompletion c = await _chat.CompleteChatAsync([new UserChatMessage("Once upon a time")], Greedy(8), TestContext.Current.CancellationToken);
        Assert.Equal(ChatFinishReason.Length, c.FinishReason);
        Assert.False(string.IsNullOrEmpty(c.Content[0].Text));
        Assert.Equal(8, c.Usage.OutputTokenCount);
        Assert.Equal("stories260K", c.Model);
    }

    [Fact]
    public async Task StreamingCompletion()
    {
        var plain = await _chat.CompleteChatAsync([new UserChatMessage("The cat")], Greedy(8), TestContext.Current.CancellationToken);
        var text = new System.Text.StringBuilder();
        ChatFinishReason? finish = null;
        await foreach (var u in _chat.CompleteChatStreamingAsync([new UserChatMessage("The cat")], Greedy(8), TestContext.Current.CancellationToken))
        {
            foreach (var part in u.ContentUpdate) text.Append(part.Text);
            finish ??= u.FinishReason;
        }
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.Equal(plain.Value.Content[0].Text, text.ToString());
    }

    [Fact]
    public async Task ErrorsSurfaceAsClientResultException()
    {
        var client = new ChatClient("any-model-name", new ApiKeyCredential("sk-sdk"), new OpenAIClientOptions { Endpoint = new Uri(_s.BaseAddress, "v1") });
        string tooLong = string.Join(' ', Enumerable.Repeat("Once upon a time there was a dog.", 200));
        var ex = await Assert.ThrowsAsync<ClientResultException>(() => client.CompleteChatAsync([new UserChatMessage(tooLong)], Greedy(2), TestContext.Current.CancellationToken));
        Assert.Equal(400, ex.Status);
        Assert.Contains("context_length_exceeded", ex.Message);
        var wrongKey = new ChatClient("stories260K", new ApiKeyCredential("sk-wrong"), new OpenAIClientOptions { Endpoint = new Uri(_s.BaseAddress, "v1"), RetryPolicy = new System.ClientModel.Primitives.ClientRetryPolicy(0) });
        var ex2 = await Assert.ThrowsAsync<ClientResultException>(() => wrongKey.CompleteChatAsync([new UserChatMessage("x")], Greedy(2), TestContext.Current.CancellationToken));
        Assert.Equal(401, ex2.Status);
    }
}
