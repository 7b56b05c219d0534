using Microsoft.Extensions.AI;
using Xunit;

namespace Sputnik.Tests.Library;

/// <summary>SputnikChatClient through the Microsoft.Extensions.AI abstractions only.</summary>
public sealed class ChatClientTests : IDisposable
{
    private readonly SputnikModel _model = LibraryFixture.Load();

    public void Dispose() => _model.Dispose();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private IChatClient Client(SputnikChatClientOptions? options = null) => new SputnikChatClient(_model, options);

    private static List<ChatMessage> Ask(string text = "Once upon a time") => [new(ChatRole.User, text)];

    [Fact]
    public async Task PlainResponseHasTextUsageFinishReasonAndModelId()
    {
        using var client = Client();
        var response = await client.GetResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 16, Temperature = 0 }, Ct);
        Assert.False(string.IsNullOrWhiteSpace(response.Text));
        Assert.Equal(ChatRole.Assistant, Assert.Single(response.Messages).Role);
        Assert.NotNull(response.FinishReason);
        Assert.NotNull(response.ResponseId);
        var meta = client.GetService<ChatClientMetadata>();
        Assert.NotNull(meta);
        Assert.Equal("sputnik", meta.ProviderName);
        Assert.Equal(meta.DefaultModelId, response.ModelId);
        var usage = response.Usage!;
        Assert.True(usage.InputTokenCount > 0);
        Assert.InRange(usage.OutputTokenCount!.Value, 1, 16);
        Assert.Equal(usage.InputTokenCount + usage.OutputTokenCount, usage.TotalTokenCount);
        Assert.Equal(0, usage.ReasoningTokenCount); // ChatML fallback: no thinking
    }

    [Fact]
    public async Task MaxOutputTokensEndsWithLength()
    {
        using var client = Client();
        var response = await client.GetResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 5, Temperature = 0 }, Ct);
        Assert.Equal(ChatFinishReason.Length, response.FinishReason);
        Assert.Equal(5, response.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task SeedMakesSamplingReproducible()
    {
        using var client = Client();
        var options = new ChatOptions { MaxOutputTokens = 24, Temperature = 1.0f, TopK = 0, TopP = 1, Seed = 1234 };
        var a = await client.GetResponseAsync(Ask(), options, Ct);
        var b = await client.GetResponseAsync(Ask(), options, Ct);
        using var other = Client();
        var c = await other.GetResponseAsync(Ask(), options, Ct);
        Assert.Equal(a.Text, b.Text);
        Assert.Equal(a.Text, c.Text);
    }

    [Fact]
    public async Task StopSequenceEndsTheAnswerBeforeIt()
    {
        using var client = Client();
        var full = await client.GetResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 40, Temperature = 0 }, Ct);
        string text = full.Text;
        int space = text.IndexOf(' ', text.Length / 2);
        Assert.True(space > 0, $"need a word to stop at in: {text}");
        string stop = text[(space + 1)..].Split(' ')[0];
        Assert.False(string.IsNullOrEmpty(stop));
        var cut = await client.GetResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 40, Temperature = 0, StopSequences = [stop] }, Ct);
        Assert.Equal(ChatFinishReason.Stop, cut.FinishReason);
        Assert.Equal(text[..text.IndexOf(stop, StringComparison.Ordinal)], cut.Text);
    }

    [Fact]
    public async Task StreamingSeparatesReasoningFromAnswer()
    {
        using var client = Client(new SputnikChatClientOptions { ChatTemplate = LibraryFixture.R1Template, ThinkingBudget = 4 });
        var kinds = new List<string>();
        UsageDetails? usage = null;
        ChatFinishReason? finish = null;
        string? responseId = null;
        await foreach (var u in client.GetStreamingResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 40, Temperature = 0 }, Ct))
        {
            responseId ??= u.ResponseId;
            Assert.Equal(responseId, u.ResponseId);
            foreach (var c in u.Contents)
            {
                switch (c)
                {
                    case TextReasoningContent r when r.Text.Length > 0: kinds.Add("reasoning"); break;
                    case TextContent t when t.Text.Length > 0: kinds.Add("text"); break;
                    case UsageContent uc: usage = uc.Details; break;
                }
            }
            finish ??= u.FinishReason;
        }
        Assert.Equal("reasoning", kinds[0]);
        Assert.Contains("text", kinds);
        int firstText = kinds.IndexOf("text");
        Assert.DoesNotContain("reasoning", kinds[firstText..]);
        Assert.NotNull(usage);
        Assert.Equal(4, usage.ReasoningTokenCount);
        Assert.NotNull(finish);

        // The same through GetResponseAsync: reasoning as TextReasoningContent, answer as Text.
        var response = await client.GetResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 40, Temperature = 0 }, Ct);
        var contents = response.Messages.Single().Contents;
        Assert.IsType<TextReasoningContent>(contents[0]);
        Assert.False(string.IsNullOrEmpty(response.Text));
        Assert.DoesNotContain("</think>", response.Text);

        // Reasoning effort None closes the thinking block in the prompt: no reasoning at all.
        var direct = await client.GetResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 10, Temperature = 0, Reasoning = new() { Effort = ReasoningEffort.None } }, Ct);
        Assert.DoesNotContain(direct.Messages.Single().Contents, c => c is TextReasoningContent);
        Assert.Equal(0, direct.Usage!.ReasoningTokenCount);
    }

    [Fact]
    public async Task CancellationThrowsAndTheClientStaysUsable()
    {
        using var client = Client();
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        int seen = 0;
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () =>
        {
            await foreach (var u in client.GetStreamingResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 200, Temperature = 0 }, cts.Token))
            {
                seen++;
                cts.Cancel();
            }
        });
        Assert.Equal(1, seen);
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            client.GetResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 8 }, new CancellationToken(true)));
        var after = await client.GetResponseAsync(Ask(), new ChatOptions { MaxOutputTokens = 4, Temperature = 0 }, Ct);
        Assert.Equal(4, after.Usage!.OutputTokenCount);
    }

    [Fact]
    public async Task FollowUpReusesTheCachedPrefix()
    {
        using var client = Client();
        var history = Ask();
        var first = await client.GetResponseAsync(history, new ChatOptions { MaxOutputTokens = 12, Temperature = 0 }, Ct);
        Assert.Equal(0, first.Usage!.CachedInputTokenCount);
        history.AddMessages(first);
        history.Add(new ChatMessage(ChatRole.User, "And then?"));
        var second = await client.GetResponseAsync(history, new ChatOptions { MaxOutputTokens = 12, Temperature = 0 }, Ct);
        Assert.True(second.Usage!.CachedInputTokenCount > first.Usage.InputTokenCount / 2,
            $"cached {second.Usage.CachedInputTokenCount} of {second.Usage.InputTokenCount}");
    }

    [Fact]
    public async Task ManyClientsOnOneModelRunConcurrentlyWithoutInterference()
    {
        var options = new ChatOptions { MaxOutputTokens = 12, Temperature = 0 };
        using var solo = Client();
        string expected = (await solo.GetResponseAsync(Ask(), options, Ct)).Text;
        var clients = Enumerable.Range(0, 3).Select(_ => Client()).ToList();
        var texts = await Task.WhenAll(clients.Select(c => c.GetResponseAsync(Ask(), options, Ct)));
        Assert.All(texts, r => Assert.Equal(expected, r.Text));
        clients.ForEach(c => c.Dispose());
    }

    [Fact]
    public async Task ToolsAndToolMessagesReachTheTemplate()
    {
        using var client = Client(new SputnikChatClientOptions { ChatTemplate = LibraryFixture.ToolTemplate });
        var weather = AIFunctionFactory.Create((string city) => $"Sunny in {city}", "get_weather", "Current weather of a city");
        var plain = await client.GetResponseAsync(Ask("What is the weather in Paris?"), new ChatOptions { MaxOutputTokens = 4, Temperature = 0 }, Ct);
        var withTools = await client.GetResponseAsync(Ask("What is the weather in Paris?"), new ChatOptions { MaxOutputTokens = 4, Temperature = 0, Tools = [weather] }, Ct);
        Assert.True(withTools.Usage!.InputTokenCount > plain.Usage!.InputTokenCount + 5);

        List<ChatMessage> roundTrip =
        [
            new(ChatRole.User, "What is the weather in Paris?"),
            new(ChatRole.Assistant, [new FunctionCallContent("call_1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
            new(ChatRole.Tool, [new FunctionResultContent("call_1", "Sunny in Paris")]),
        ];
        var answer = await client.GetResponseAsync(roundTrip, new ChatOptions { MaxOutputTokens = 4, Temperature = 0, Tools = [weather] }, Ct);
        Assert.True(answer.Usage!.InputTokenCount > withTools.Usage.InputTokenCount + 10);
        Assert.Equal(ChatFinishReason.Length, answer.FinishReason);
    }
}
