using System.ClientModel;
using OpenAI;
using OpenAI.Chat;
using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>llama-server's adapter endpoints and per-request "lora" on the bundled model, two slots batching different adapters.</summary>
public sealed class LoraServerTests : IAsyncLifetime
{
    private readonly string _dir = Directory.CreateTempSubdirectory("sputnik-lora-server-").FullName;
    private TestServer _s = null!;
    private string _adapter = "";

    public async ValueTask InitializeAsync()
    {
        _adapter = Path.Combine(_dir, "random.lora.gguf");
        using (var f = GgufFile.Open(TestServer.BundledModelPath))
            LoraAdapter.Write(_adapter, f.Architecture!, 16, LoraAdapter.RandomPairs(f, 8, 0.3f, seed: 5));
        _s = await TestServer.StartAsync(o => o with { Parallel = 2, LoraAdapters = [new LoraAdapterOptions(_adapter, 1f)] },
            modelPath: TestServer.BundledModelPath);
    }

    public async ValueTask DisposeAsync()
    {
        await _s.DisposeAsync();
        Directory.Delete(_dir, recursive: true);
    }

    private async Task<string> Answer(string extra = "")
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody("What is 12 + 30?", 12, extra: extra));
        Assert.Equal(200, status);
        return body["choices"]![0]!["message"]!.ToJsonString();
    }

    [Fact]
    public async Task Endpoints_list_and_set_scales_and_requests_pick_their_own()
    {
        var list = await _s.GetJsonAsync("/lora-adapters");
        Assert.Equal(0, (int)list[0]!["id"]!);
        Assert.Equal(_adapter, (string)list[0]!["path"]!);
        Assert.Equal(1.0, (double)list[0]!["scale"]!);

        string adapted = await Answer();                                    // the global scale 1
        string plain = await Answer(""","lora":[{"id":0,"scale":0}]""");
        Assert.NotEqual(plain, adapted);
        Assert.Equal(adapted, await Answer(""","lora":[{"id":0,"scale":1}]"""));
        Assert.Equal(plain, await Answer(""","lora":[]"""));                 // unlisted adapters run at 0

        // Both slots at once, each with its own adapters, batched in one step: each equals its solo answer.
        var both = await Task.WhenAll(Answer(""","lora":[{"id":0,"scale":0}]"""), Answer(""","lora":[{"id":0,"scale":1}]"""));
        Assert.Equal(new[] { plain, adapted }, both);

        var (status, body, _) = await _s.PostAsync("/lora-adapters", """[{"id":0,"scale":0}]""");
        Assert.Equal(200, status);
        Assert.True((bool)body["success"]!);
        Assert.Equal(0.0, (double)(await _s.GetJsonAsync("/lora-adapters"))[0]!["scale"]!);

        // The official SDK sees the new global scale: the base model's answer.
        var chat = new ChatClient("sputnik-r1-tiny", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(_s.BaseAddress, "v1") });
        ChatCompletion c = await chat.CompleteChatAsync([new UserChatMessage("What is 12 + 30?")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 12 }, TestContext.Current.CancellationToken);
        Assert.Equal((string)System.Text.Json.Nodes.JsonNode.Parse(plain)!["content"]!, c.Content.Count > 0 ? c.Content[0].Text : "");
    }

    [Fact]
    public async Task Unknown_adapter_ids_and_bad_lists_are_400s()
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody("Hi", 4, extra: ""","lora":[{"id":3,"scale":1}]"""));
        Assert.Equal(400, status);
        Assert.Contains("LoRA adapter 3", (string)body["error"]!["message"]!);
        (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody("Hi", 4, extra: ""","lora":{"id":0}"""));
        Assert.Equal(400, status);
        Assert.Equal("lora", (string)body["error"]!["param"]!);
        (status, _, _) = await _s.PostAsync("/lora-adapters", """[{"id":0,"scale":"high"}]""");
        Assert.Equal(400, status);
    }
}
