using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using OllamaSharp;
using OllamaSharp.Models;
using Sputnik.Tests.Hub;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// Ollama's POST /api/pull and DELETE /api/delete on a multi-model server, pulling from the loopback stand-in hub
/// into a temporary Hugging Face cache, driven with OllamaSharp.
/// </summary>
public sealed class ModelPullTests : IAsyncLifetime
{
    private const string Repo = "test/gamma-GGUF", Model = Repo + ":Q8_0";
    private readonly TempHubCache _cache = new();
    private StandInHub _hub = null!;
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    public async ValueTask InitializeAsync()
    {
        _hub = await StandInHub.StartAsync();
        _hub.AddRepo(Repo, [new("gamma-Q8_0.gguf", HubPayloads.Q8_0), new("README.md", "# gamma\n"u8.ToArray())]);
    }

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        _cache.Dispose();
    }

    private Task<TestServer> Start(Func<Sputnik.Server.ServerOptions, Sputnik.Server.ServerOptions>? more = null) =>
        TestServer.StartAsync(o => (more ?? (x => x))(_cache.Options(o, _hub.Endpoint)), modelPath: TestServer.BundledModelPath);

    private static async Task<(HttpStatusCode Status, string Body)> Send(TestServer s, HttpMethod method, string path, string json, string? key = null)
    {
        using var req = new HttpRequestMessage(method, path) { Content = TestServer.Json(json) };
        if (key != null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var resp = await s.Client.SendAsync(req, Ct);
        return (resp.StatusCode, await resp.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task PullStreamsOllamasProgressThenTheModelIsServedAndDeleteRemovesIt()
    {
        await using var s = await Start();
        using var client = new OllamaApiClient(s.BaseAddress);
        var lines = new List<PullModelResponse>();
        await foreach (var line in client.PullModelAsync(Model, Ct)) lines.Add(line!);

        string sha = Convert.ToHexStringLower(SHA256.HashData(HubPayloads.Q8_0));
        Assert.Equal("pulling manifest", lines[0].Status);
        var file = lines.Where(l => l.Digest == "sha256:" + sha).ToList();
        Assert.NotEmpty(file);
        Assert.All(file, l => Assert.Equal(("pulling " + sha[..12], HubPayloads.Q8_0.Length), (l.Status, l.Total)));
        Assert.Equal(HubPayloads.Q8_0.Length, file[^1].Completed);
        Assert.True(file.Select(l => l.Completed).SequenceEqual(file.Select(l => l.Completed).Order()), "progress went backwards");
        Assert.Equal(["verifying sha256 digest", "writing manifest", "success"], lines[^3..].Select(l => l.Status));
        Assert.DoesNotContain(lines, l => l.Digest != null && l.Digest != "sha256:" + sha); // README.md is not a model

        // Listed and served at once, under its reference.
        Assert.Contains(Model, (await client.ListLocalModelsAsync(Ct)).Select(m => m.Name));
        var (status, body, _) = await s.PostAsync("/v1/chat/completions",
            $$"""{"model":"{{Model}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":2}""");
        Assert.Equal((200, Model), (status, (string)body["model"]!));
        Assert.Contains(Model, (await client.ListRunningModelsAsync(Ct)).Select(m => m.Name));

        // Deleting a loaded (idle) model unloads it first, as `ollama rm` does.
        await client.DeleteModelAsync(Model, Ct);
        Assert.DoesNotContain(Model, (await client.ListLocalModelsAsync(Ct)).Select(m => m.Name));
        Assert.DoesNotContain(Model, (await client.ListRunningModelsAsync(Ct)).Select(m => m.Name));
        Assert.False(Directory.Exists(Path.Combine(_cache.Root, "models--test--gamma-GGUF")));
        var again = await Send(s, HttpMethod.Delete, "/api/delete", $$"""{"model":"{{Model}}"}""");
        Assert.Equal((HttpStatusCode.NotFound, $$"""{"error":"model '{{Model}}' not found"}"""), again);
    }

    [Fact]
    public async Task APullWithoutStreamingAnswersOnceAndFailuresAreOllamaErrors()
    {
        await using var s = await Start();
        var once = await Send(s, HttpMethod.Post, "/api/pull", $$"""{"model":"{{Model}}","stream":false}""");
        Assert.Equal((HttpStatusCode.OK, """{"status":"success"}"""), once);

        var missing = await Send(s, HttpMethod.Post, "/api/pull", """{"model":"test/none-GGUF","stream":false}""");
        Assert.Equal(HttpStatusCode.NotFound, missing.Status);
        Assert.Contains("test/none-GGUF", (string)JsonNode.Parse(missing.Body)!["error"]!);

        // Streaming, the failure is the last line, after "pulling manifest", as Ollama ends a failed pull.
        var streamed = await Send(s, HttpMethod.Post, "/api/pull", """{"model":"test/none-GGUF"}""");
        var lines = streamed.Body.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonNode.Parse(l)!).ToList();
        Assert.Equal("pulling manifest", (string)lines[0]["status"]!);
        Assert.Contains("test/none-GGUF", (string)lines[^1]["error"]!);

        var notReference = await Send(s, HttpMethod.Post, "/api/pull", """{"model":"llama3"}""");
        Assert.Equal(HttpStatusCode.BadRequest, notReference.Status);
        Assert.Contains("owner/repo", notReference.Body);

        // The bundled model is not the cache's to delete.
        Assert.Equal(HttpStatusCode.NotFound, (await Send(s, HttpMethod.Delete, "/api/delete", """{"model":"sputnik-r1-tiny"}""")).Status);
        Assert.True(File.Exists(TestServer.BundledModelPath));
    }

    [Fact]
    public async Task PullAndDeleteNeedTheApiKeyWhenOneIsSet()
    {
        await using var s = await Start(o => o with { ApiKey = "sekrit" });
        Assert.Equal(HttpStatusCode.Unauthorized, (await Send(s, HttpMethod.Post, "/api/pull", $$"""{"model":"{{Model}}"}""")).Status);
        Assert.Equal(HttpStatusCode.Unauthorized, (await Send(s, HttpMethod.Delete, "/api/delete", $$"""{"model":"{{TempHubCache.ModelA}}"}""")).Status);
        Assert.True(Directory.Exists(Path.Combine(_cache.Root, "models--test--alpha-GGUF")));
        Assert.False(Directory.Exists(Path.Combine(_cache.Root, "models--test--gamma-GGUF")));

        var deleted = await Send(s, HttpMethod.Delete, "/api/delete", $$"""{"model":"{{TempHubCache.ModelA}}"}""", key: "sekrit");
        Assert.Equal(HttpStatusCode.OK, deleted.Status);
        Assert.False(Directory.Exists(Path.Combine(_cache.Root, "models--test--alpha-GGUF")));
    }

    [Fact]
    public async Task AModelAnsweringRequestsIsNotDeleted()
    {
        await using var s = await Start(o => o with { ContextLength = 96, StepDelay = TimeSpan.FromMilliseconds(60) });
        var stream = s.Client.PostAsync("/v1/chat/completions", TestServer.Json(
            $$"""{"model":"{{TempHubCache.ModelA}}","messages":[{"role":"user","content":"Hi"}],"max_tokens":40,"stream":true}"""), Ct);
        var end = DateTime.UtcNow.AddSeconds(20);
        while (DateTime.UtcNow < end && (await s.GetJsonAsync("/health"))["slots_processing"]!.GetValue<int>() == 0) await Task.Delay(50, Ct);
        var refused = await Send(s, HttpMethod.Delete, "/api/delete", $$"""{"model":"{{TempHubCache.ModelA}}"}""");
        Assert.Equal(HttpStatusCode.Conflict, refused.Status);
        Assert.Contains("answering requests", refused.Body);
        using var done = await stream;
        Assert.Contains("[DONE]", await done.Content.ReadAsStringAsync(Ct));
        Assert.True(Directory.Exists(Path.Combine(_cache.Root, "models--test--alpha-GGUF")));
    }

    /// <summary>The sh blocks of docs/api.md's "Many models in one server", with real curl, pulling from the stand-in hub.</summary>
    [Fact]
    public async Task ManyModelsDocExamplesRun()
    {
        _hub.AddRepo("Qwen/Qwen2.5-0.5B-Instruct-GGUF", [new("Qwen2.5-0.5B-Instruct-Q4_K_M.gguf", HubPayloads.Q4_K_M)]);
        await using var s = await Start();
        string doc = File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "docs", "api.md"));
        int from = doc.IndexOf("## Many models in one server", StringComparison.Ordinal);
        int to = doc.IndexOf("\n## ", from + 1, StringComparison.Ordinal);
        var blocks = System.Text.RegularExpressions.Regex.Matches(doc[from..(to < 0 ? doc.Length : to)], @"```sh\n(.*?)```",
            System.Text.RegularExpressions.RegexOptions.Singleline).Select(m => m.Groups[1].Value).ToList();
        Assert.Equal(2, blocks.Count);
        string url = s.BaseAddress.ToString().TrimEnd('/');
        var outputs = new List<string>();
        foreach (string block in blocks)
        {
            var psi = Library.ProcessRunner.Info("bash", ["-euo", "pipefail", "-c",
                "curl() { command curl --fail-with-body --max-time 60 \"$@\"; }\n" + block.Replace("http://127.0.0.1:8080", url)]);
            var r = Library.ProcessRunner.Run(psi, TimeSpan.FromSeconds(120));
            Assert.True(r.ExitCode == 0, $"{block}\n{r}");
            Assert.DoesNotContain("\"error\"", r.StdOut);
            outputs.Add(r.StdOut);
        }
        Assert.Contains("\"status\":\"success\"", outputs[0]);
        Assert.Contains("\"chat.completion\"", outputs[0]);
        Assert.Contains("\"done_reason\":\"unload\"", outputs[1]);
        Assert.DoesNotContain("Qwen2.5", outputs[1][outputs[1].LastIndexOf("{\"models\"", StringComparison.Ordinal)..]); // deleted: not in /api/tags
    }
}
