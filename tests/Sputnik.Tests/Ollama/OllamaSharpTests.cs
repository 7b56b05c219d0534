using System.Text.Json;
using System.Text.Json.Nodes;
using OllamaSharp;
using OllamaSharp.Models;
using OllamaSharp.Models.Chat;
using Sputnik.Tests.Server;
using Xunit;

namespace Sputnik.Tests.Ollama;

/// <summary>
/// OllamaSharp (the .NET client Semantic Kernel, Aspire and Microsoft.Extensions.AI use for Ollama) against the
/// server on the bundled model, which thinks: each answer is checked against what the OpenAI endpoint or the
/// library computes for the same request.
/// </summary>
public sealed class OllamaSharpTests : IAsyncLifetime
{
    private const string Model = "sputnik-r1-tiny";
    private TestServer _s = null!;
    private OllamaApiClient _client = null!;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _s = await TestServer.StartAsync(o => o with { ContextLength = 0 }, modelPath: TestServer.BundledModelPath);
        _client = new OllamaApiClient(_s.BaseAddress, Model);
    }

    public async ValueTask DisposeAsync()
    {
        _client.Dispose();
        await _s.DisposeAsync();
    }

    [Fact]
    public async Task ListShowPsAndVersion()
    {
        Assert.True(await _client.IsRunningAsync(Ct));
        var model = Assert.Single(await _client.ListLocalModelsAsync(Ct));
        Assert.Equal(Model, model.Name);
        Assert.Equal(new FileInfo(TestServer.BundledModelPath).Length, model.Size);
        Assert.Matches("^[0-9a-f]{64}$", model.Digest);
        Assert.Equal(("deepseek2", "gguf", "F32"), (model.Details.Family, model.Details.Format, model.Details.QuantizationLevel));
        Assert.Equal("1.2M", model.Details.ParameterSize); // 0.90 M in the trunk, 0.26 M in the MTP block

        var show = await _client.ShowModelAsync(Model, Ct);
        Assert.Contains("completion", show.Capabilities!);
        Assert.Contains("thinking", show.Capabilities!);
        Assert.Contains("embedding", show.Capabilities!);
        Assert.Contains("<｜Assistant｜>", show.Template);
        Assert.Equal("deepseek2", show.Info.Architecture);
        Assert.Equal(5, ((JsonElement)show.Info.ExtraInfo!["deepseek2.block_count"]!).GetInt32()); // 4 + the MTP block, as llama.cpp counts it
        Assert.Contains("FROM ", show.Modelfile);

        var running = Assert.Single(await _client.ListRunningModelsAsync(Ct));
        Assert.Equal(Model, running.Name);
        Assert.True(running.ExpiresAt > DateTime.UtcNow.AddYears(100), "a single model is never unloaded");
        Assert.False(string.IsNullOrEmpty((await _client.GetVersionAsync(Ct)).ToString()));
    }

    [Fact]
    public async Task ChatStreamsThinkingAndAnswerAsTheOpenAiEndpointComputesThem()
    {
        var chunks = new List<ChatResponseStream>();
        await foreach (var c in _client.ChatAsync(new ChatRequest
        {
            Model = Model, Think = true, Stream = true,
            Messages = [new Message(ChatRole.User, "What is 12+7?")],
            Options = new RequestOptions { Temperature = 0, NumPredict = 48 },
        }, Ct))
            chunks.Add(c!);
        string thinking = string.Concat(chunks.Select(c => c.Message.Thinking));
        string content = string.Concat(chunks.Select(c => c.Message.Content));
        Assert.True(chunks.Count > 10, $"{chunks.Count} chunks: not streamed");
        Assert.NotEmpty(thinking);
        var done = Assert.IsType<ChatDoneResponseStream>(chunks[^1]);
        Assert.True(done.Done);
        Assert.Equal(48, done.EvalCount);
        Assert.Equal("length", done.DoneReason);
        Assert.True(done.PromptEvalCount > 5);
        Assert.True(done.TotalDuration >= done.EvalDuration && done.EvalDuration > 0, $"total {done.TotalDuration} ns, eval {done.EvalDuration} ns");

        var (status, body, _) = await _s.PostAsync("/v1/chat/completions",
            $$"""{"messages":[{"role":"user","content":"What is 12+7?"}],"temperature":0,"max_tokens":48}""");
        Assert.Equal(200, status);
        var message = body["choices"]![0]!["message"]!;
        Assert.Equal((string?)message["reasoning_content"], thinking);
        Assert.Equal((string?)message["content"] ?? "", content);
    }

    [Fact]
    public async Task GenerateAnswersAsChatDoes()
    {
        var options = new RequestOptions { Temperature = 0, NumPredict = 40 };
        var generated = await _client.GenerateAsync(new GenerateRequest { Model = Model, Prompt = "What is 3+4?", Options = options, Stream = false }, Ct)
            .StreamToEndAsync();
        Assert.NotNull(generated);
        var chat = await _client.ChatAsync(new ChatRequest { Model = Model, Messages = [new Message(ChatRole.User, "What is 3+4?")], Options = options, Stream = false }, Ct)
            .StreamToEndAsync();
        Assert.NotNull(chat);
        Assert.Equal(chat.Message.Thinking, generated.Thinking);
        Assert.Equal(chat.Message.Content ?? "", generated.Response ?? "");
        Assert.NotEmpty(generated.Thinking!);
        var done = Assert.IsType<GenerateDoneResponseStream>(generated);
        Assert.Equal(40, done.EvalCount);
        Assert.True(done.PromptEvalCount > 5);
    }

    [Fact]
    public async Task FormatWithASchemaConstrainsTheAnswer()
    {
        var schema = JsonNode.Parse("""{"type":"object","properties":{"answer":{"type":"string","enum":["yes","no"]}},"required":["answer"],"additionalProperties":false}""");
        var reply = await _client.ChatAsync(new ChatRequest
        {
            Model = Model, Think = false, Format = schema, Stream = false,
            Messages = [new Message(ChatRole.User, "Is 7 greater than 3? Answer in JSON.")],
            Options = new RequestOptions { Temperature = 0, NumPredict = 100 },
        }, Ct).StreamToEndAsync();
        Assert.NotNull(reply);
        using var answer = JsonDocument.Parse(reply.Message.Content!);
        Assert.Contains(answer.RootElement.GetProperty("answer").GetString(), new[] { "yes", "no" });
        Assert.Single(answer.RootElement.EnumerateObject());
    }

    [Fact]
    public async Task EmbedMatchesTheOpenAiEndpointAndTheLibrary()
    {
        var response = await _client.EmbedAsync(new EmbedRequest { Model = Model, Input = ["The sky is blue.", "Grass is green."] }, Ct);
        Assert.Equal(2, response.Embeddings.Count);
        Assert.All(response.Embeddings, e => Assert.Equal(128, e.Length));
        Assert.All(response.Embeddings, e => Assert.Equal(1.0, Math.Sqrt(e.Sum(x => (double)x * x)), 4));
        Assert.True(response.PromptEvalCount > 4);
        Assert.NotEqual(response.Embeddings[0], response.Embeddings[1]);

        var (status, body, _) = await _s.PostAsync("/v1/embeddings", """{"input":["The sky is blue.","Grass is green."]}""");
        Assert.Equal(200, status);
        for (int i = 0; i < 2; i++)
        {
            var openAi = body["data"]![i]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
            Assert.Equal(response.Embeddings[i], openAi);
        }

        using var model = SputnikModel.Load(TestServer.BundledModelPath, new ModelOptions { Threads = 1, ContextLength = 640 });
        var library = await model.AsEmbeddingGenerator().GenerateAsync(["The sky is blue."], cancellationToken: Ct);
        for (int j = 0; j < 128; j++) Assert.Equal(response.Embeddings[0][j], library[0].Vector.Span[j], 5);

        var shorter = await _client.EmbedAsync(new EmbedRequest { Model = Model, Input = ["The sky is blue."], Dimensions = 16 }, Ct);
        var v = Assert.Single(shorter.Embeddings);
        Assert.Equal(16, v.Length);
        Assert.Equal(1.0, Math.Sqrt(v.Sum(x => (double)x * x)), 4);
        double scale = response.Embeddings[0][0] / v[0];
        for (int j = 0; j < 16; j++) Assert.Equal(response.Embeddings[0][j], v[j] * scale, 4); // the same direction, renormalised
    }
}
