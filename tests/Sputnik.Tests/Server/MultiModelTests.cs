using System.Net;
using System.Text.Json.Nodes;
using OllamaSharp;
using Sputnik.Server;
using Sputnik.Tests.Hub;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// Many models in one server: two synthetic qwen2 models in a temporary Hugging Face cache and the bundled model,
/// loaded when a request first names them, unloaded after keep_alive or when the memory budget needs room.
/// </summary>
public sealed class MultiModelTests : IDisposable
{
    private const string Bundled = "sputnik-r1-tiny";
    private readonly TempHubCache _cache = new();
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public void Dispose() => _cache.Dispose();

    private Task<TestServer> Start(Func<ServerOptions, ServerOptions>? more = null) =>
        TestServer.StartAsync(o => (more ?? (x => x))(_cache.Options(o)), modelPath: TestServer.BundledModelPath);

    private static string Chat(string model, int maxTokens = 3, bool stream = false) =>
        $$"""{"model":"{{model}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":{{maxTokens}},"temperature":0,"stream":{{(stream ? "true" : "false")}}}""";

    private static async Task<List<string>> Ps(TestServer s) =>
        (await s.GetJsonAsync("/api/ps"))["models"]!.AsArray().Select(m => (string)m!["name"]!).Order(StringComparer.Ordinal).ToList();

    private static ModelRegistry Registry(TestServer s) => Assert.IsType<ModelRegistry>(s.Host.Models);

    private static async Task<bool> WaitUntil(Func<Task<bool>> condition, TimeSpan timeout)
    {
        var end = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < end)
        {
            if (await condition()) return true;
            await Task.Delay(50, Ct);
        }
        return await condition();
    }

    [Fact]
    public async Task ListsEveryModelAndLoadsOneWhenARequestFirstNamesIt()
    {
        await using var s = await Start();
        var ids = (await s.GetJsonAsync("/v1/models"))["data"]!.AsArray().Select(m => (string)m!["id"]!).ToList();
        Assert.Equal([Bundled, TempHubCache.ModelA, TempHubCache.ModelB], ids);
        Assert.Empty(await Ps(s));

        using var client = new OllamaApiClient(s.BaseAddress);
        var tags = (await client.ListLocalModelsAsync(Ct)).ToList();
        Assert.Equal(ids, tags.Select(t => t.Name));
        var beta = tags.Single(t => t.Name == TempHubCache.ModelB);
        Assert.Equal(HubPayloads.Q4_K_M.Length, beta.Size);
        Assert.Equal("qwen2", beta.Details.Family);
        Assert.Equal("deepseek2", tags[0].Details.Family);
        // /api/show reads a model's header without loading it (clients ask it of every model they list).
        var show = await client.ShowModelAsync(TempHubCache.ModelB, Ct);
        Assert.Equal("qwen2", show.Info.Architecture);
        Assert.Contains("completion", show.Capabilities!);
        Assert.Contains("FROM ", show.Modelfile);
        Assert.Empty(await Ps(s));
        // The card of a model not loaded yet says what the loaded one will.
        var before = (await s.GetJsonAsync("/v1/models/" + TempHubCache.ModelB)).ToJsonString();

        var (status, body, _) = await s.PostAsync("/v1/chat/completions", Chat(TempHubCache.ModelB));
        Assert.Equal(200, status);
        Assert.Equal(TempHubCache.ModelB, (string)body["model"]!);
        var running = Assert.Single(await client.ListRunningModelsAsync(Ct));
        Assert.Equal(TempHubCache.ModelB, running.Name);
        Assert.True(running.Size > beta.Size, $"{running.Size}: the KV cache is counted on top of the file's {beta.Size} bytes");
        Assert.InRange(running.ExpiresAt, DateTime.UtcNow.AddMinutes(4), DateTime.UtcNow.AddMinutes(6)); // the 5-minute default
        Assert.Equal(before, (await s.GetJsonAsync("/v1/models/" + TempHubCache.ModelB)).ToJsonString());

        // The short name (the file's) and Ollama's ":latest" reach the same loaded model.
        var (genStatus, gen, _) = await s.PostAsync("/api/generate",
            $$"""{"model":"{{TempHubCache.ShortB}}:latest","prompt":"Hi","stream":false,"options":{"num_predict":2} }""");
        Assert.Equal(200, genStatus);
        Assert.Equal(2, (int)gen["eval_count"]!);
        Assert.Equal([TempHubCache.ModelB], await Ps(s));
        Assert.Equal(1, Registry(s).LoadCount);
        var health = await s.GetJsonAsync("/health");
        Assert.Equal(TempHubCache.ModelB, (string)health["models"]![0]!["id"]!);
        Assert.Null(health["model"]);
    }

    [Fact]
    public async Task KeepAliveZeroUnloadsAfterTheRequestAndADurationExpires()
    {
        await using var s = await Start();
        // Ollama's idiom: an empty chat loads (here kept forever), an empty one with keep_alive 0 unloads.
        var (_, load, _) = await s.PostAsync("/api/chat", $$"""{"model":"{{TempHubCache.ModelA}}","messages":[],"keep_alive":-1}""");
        Assert.Equal("load", (string)load["done_reason"]!);
        var ps = (await s.GetJsonAsync("/api/ps"))["models"]![0]!;
        Assert.Equal(TempHubCache.ModelA, (string)ps["name"]!);
        Assert.True(DateTime.Parse((string)ps["expires_at"]!, null, System.Globalization.DateTimeStyles.RoundtripKind) > DateTime.UtcNow.AddYears(100));
        var (_, unload, _) = await s.PostAsync("/api/generate", $$"""{"model":"{{TempHubCache.ModelA}}","keep_alive":0}""");
        Assert.Equal(("unload", true), ((string)unload["done_reason"]!, (bool)unload["done"]!));
        Assert.Empty(await Ps(s));

        // A request with keep_alive 0 is answered, then its model goes.
        var (status, gen, _) = await s.PostAsync("/api/generate",
            $$"""{"model":"{{TempHubCache.ModelA}}","prompt":"Hi","stream":false,"keep_alive":0,"options":{"num_predict":2} }""");
        Assert.Equal(200, status);
        Assert.Equal(2, (int)gen["eval_count"]!);
        Assert.True(gen["load_duration"]!.GetValue<long>() > 0, "the request waited for the load");
        Assert.True(await WaitUntil(async () => (await Ps(s)).Count == 0, TimeSpan.FromSeconds(10)), "keep_alive 0 left the model loaded");

        // "1s": loaded after the request, gone a second later.
        Assert.Equal(200, (await s.PostAsync("/api/chat",
            $$"""{"model":"{{TempHubCache.ModelA}}","messages":[{"role":"user","content":"Hi"}],"stream":false,"keep_alive":"1s","options":{"num_predict":1} }""")).Status);
        Assert.Equal([TempHubCache.ModelA], await Ps(s));
        Assert.True(await WaitUntil(async () => (await Ps(s)).Count == 0, TimeSpan.FromSeconds(15)), "keep_alive 1s did not expire");
        Assert.Equal(3, Registry(s).LoadCount);
    }

    [Fact]
    public async Task UnknownModelsAre404InEachApisShape()
    {
        await using var s = await Start();
        var (status, body, _) = await s.PostAsync("/v1/chat/completions", Chat("no/such-GGUF:Q4_K_M"));
        Assert.Equal(404, status);
        Assert.Equal("model_not_found", (string)body["error"]!["code"]!);
        Assert.Contains("'no/such-GGUF:Q4_K_M'", (string)body["error"]!["message"]!);

        (status, body, _) = await s.PostAsync("/api/chat", """{"model":"nope","messages":[{"role":"user","content":"Hi"}]}""");
        Assert.Equal(404, status);
        Assert.Equal("model 'nope' not found", (string)Assert.Single(body.AsObject(), p => p.Key == "error").Value!);
        Assert.Single(body.AsObject());
        (status, body, _) = await s.PostAsync("/api/generate", """{"model":"nope","keep_alive":0}""");
        Assert.Equal((404, "model 'nope' not found"), (status, (string)body["error"]!));

        (status, body, _) = await s.PostAsync("/v1/chat/completions", """{"messages":[{"role":"user","content":"Hi"}]}""");
        Assert.Equal(400, status);
        Assert.Equal("model", (string)body["error"]!["param"]!);
        var missing = await s.Client.GetAsync("/v1/models/nope", Ct);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Empty(await Ps(s));
    }

    [Fact]
    public async Task ConcurrentFirstRequestsShareOneLoad()
    {
        await using var s = await Start();
        var answers = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => s.PostAsync("/v1/chat/completions", Chat(TempHubCache.ModelA))));
        Assert.All(answers, a => Assert.Equal(200, a.Status));
        Assert.Equal(1, Registry(s).LoadCount);
        Assert.Equal([TempHubCache.ModelA], await Ps(s));
    }

    private (long A, long B, long Bundled) Sizes(ServerOptions o) => (
        TempHubCache.MemorySize(TempHubCache.ModelA, _cache.PathOf(TempHubCache.RepoA, "alpha-Q8_0.gguf"), o),
        TempHubCache.MemorySize(TempHubCache.ModelB, _cache.PathOf(TempHubCache.RepoB, "beta-Q4_K_M.gguf"), o),
        TempHubCache.MemorySize(Bundled, TestServer.BundledModelPath, o));

    /// <summary>Streams a long generation from <paramref name="model"/>; completes with its SSE body.</summary>
    private static async Task<string> LongStream(TestServer s, string model)
    {
        using var resp = await s.Client.PostAsync("/v1/chat/completions", TestServer.Json(Chat(model, maxTokens: 40, stream: true)), Ct);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        return await resp.Content.ReadAsStringAsync(Ct);
    }

    private static async Task<int> Processing(TestServer s, string model) =>
        (await s.GetJsonAsync("/health"))["models"]!.AsArray().Where(m => (string)m!["id"]! == model).Select(m => (int)m!["slots_processing"]!).FirstOrDefault();

    [Fact]
    public async Task TheMemoryBudgetUnloadsTheLeastRecentlyUsedIdleModelNeverABusyOne()
    {
        static ServerOptions Slow(ServerOptions o) => o with { ContextLength = 96, StepDelay = TimeSpan.FromMilliseconds(60) };
        var (a, b, c) = Sizes(Slow(_cache.Options(new ServerOptions { Threads = 1 })));
        // Any two fit, three do not.
        await using var s = await Start(o => Slow(o) with { MaxMemoryBytes = a + b + c - 1 });

        foreach (string m in new[] { TempHubCache.ModelA, TempHubCache.ModelB, TempHubCache.ModelA })
            Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat(m, 1))).Status);
        Assert.Equal([TempHubCache.ModelA, TempHubCache.ModelB], await Ps(s));
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat(Bundled, 1))).Status);
        Assert.Equal([Bundled, TempHubCache.ModelA], await Ps(s)); // beta was the least recently used

        // Alpha busy (and the least recently used), the bundled model idle: loading beta unloads the idle one.
        var stream = LongStream(s, TempHubCache.ModelA);
        Assert.True(await WaitUntil(async () => await Processing(s, TempHubCache.ModelA) == 1, TimeSpan.FromSeconds(20)), "alpha never started");
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat(Bundled, 1))).Status);
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat(TempHubCache.ModelB, 1))).Status);
        Assert.False(stream.IsCompleted, "alpha finished before beta loaded: the test proved nothing");
        Assert.Equal([TempHubCache.ModelA, TempHubCache.ModelB], await Ps(s));
        var (events, done, _) = TestServer.ParseSse(await stream);
        Assert.True(done);
        Assert.Equal("length", (string?)events.Last(e => e["choices"]!.AsArray().Count > 0)["choices"]![0]!["finish_reason"]);
    }

    [Fact]
    public async Task WhenNoModelCanBeUnloadedALoadWaitsForOneToFinish()
    {
        static ServerOptions Slow(ServerOptions o) => o with { ContextLength = 96, StepDelay = TimeSpan.FromMilliseconds(40) };
        var (a, b, _) = Sizes(Slow(_cache.Options(new ServerOptions { Threads = 1 })));
        await using var s = await Start(o => Slow(o) with { MaxMemoryBytes = Math.Max(a, b) });

        var stream = LongStream(s, TempHubCache.ModelA);
        Assert.True(await WaitUntil(async () => await Processing(s, TempHubCache.ModelA) == 1, TimeSpan.FromSeconds(20)), "alpha never started");
        var second = s.PostAsync("/v1/chat/completions", Chat(TempHubCache.ModelB, 1));
        var first = await Task.WhenAny(stream, second);
        Assert.Same(stream, first); // beta waited for alpha's request to end
        Assert.True(TestServer.ParseSse(await stream).Done);
        Assert.Equal(200, (await second).Status);
        Assert.Equal([TempHubCache.ModelB], await Ps(s));
    }

    [Fact]
    public async Task AModelLargerThanTheBudgetIsRefusedSayingSo()
    {
        await using var s = await Start(o => o with { MaxMemoryBytes = 1 << 20 });
        var (status, body, _) = await s.PostAsync("/api/chat", $$"""{"model":"{{TempHubCache.ModelA}}","messages":[]}""");
        Assert.Equal(500, status);
        Assert.Contains("--max-memory", (string)body["error"]!);
    }

    [Fact]
    public async Task AliasesNameServedModels()
    {
        await using var s = await Start(o => o with { Aliases = new Dictionary<string, string> { ["fast"] = TempHubCache.ModelB, ["tiny"] = TestServer.BundledModelPath } });
        var (status, body, _) = await s.PostAsync("/v1/chat/completions", Chat("fast"));
        Assert.Equal(200, status);
        Assert.Equal(TempHubCache.ModelB, (string)body["model"]!);
        Assert.Equal(200, (await s.PostAsync("/v1/chat/completions", Chat("tiny"))).Status);
        Assert.Equal([Bundled, TempHubCache.ModelB], await Ps(s));
        await Assert.ThrowsAsync<ArgumentException>(() => Start(o => o with { Aliases = new Dictionary<string, string> { ["x"] = "nothing/here-GGUF" } }));
    }

    [Fact]
    public void SizesAndDurationsParseAsTheFlagsDocumentThem()
    {
        Assert.Equal(8L << 30, ServerOptions.ParseSize("8G"));
        Assert.Equal(512L << 20, ServerOptions.ParseSize("512MiB"));
        Assert.Equal((long)(1.5 * (1L << 30)), ServerOptions.ParseSize("1.5gb"));
        Assert.Equal(1000, ServerOptions.ParseSize("1000"));
        Assert.Null(ServerOptions.ParseSize("lots"));
        Assert.Null(ServerOptions.ParseSize("-1G"));
        Assert.True(ServerOptions.DefaultMaxMemory() > 0);
    }

    [Fact]
    public async Task ASingleModelServerStillAnswersAnyNameAndKeepsItsModel()
    {
        await using var s = await TestServer.StartAsync(o => o with { ContextLength = 64 }, modelPath: TestServer.BundledModelPath);
        var (status, body, _) = await s.PostAsync("/v1/chat/completions", Chat("whatever-name"));
        Assert.Equal((200, Bundled), (status, (string)body["model"]!));
        var (_, unload, _) = await s.PostAsync("/api/chat", """{"model":"any","messages":[],"keep_alive":0}""");
        Assert.Equal("load", (string)unload["done_reason"]!); // nothing to unload: the one model stays
        Assert.Equal([Bundled], await Ps(s));
        Assert.Equal(Bundled, (string)(await s.GetJsonAsync("/health"))["model"]!);
        var pull = await s.PostAsync("/api/pull", """{"model":"a/b-GGUF"}""");
        Assert.Equal(404, pull.Status);
        Assert.Contains("without -m", (string)pull.Body["error"]!);
    }
}
