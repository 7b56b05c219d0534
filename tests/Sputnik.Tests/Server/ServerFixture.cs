using Xunit;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Server;

namespace Sputnik.Tests.Server;

/// <summary>Starts a real Kestrel server on 127.0.0.1:0 with the stories260K test model and a temp data dir.</summary>
public sealed class TestServer : IAsyncDisposable
{
    private readonly string? _dataDir;

    private TestServer(ServerHost host, string? dataDir)
    {
        Host = host;
        _dataDir = dataDir;
        Client = new HttpClient { BaseAddress = host.BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public ServerHost Host { get; }
    public HttpClient Client { get; }
    public Uri BaseAddress => Host.BaseAddress;

    public static string ModelPath => Fixtures.Require(Fixtures.Model("stories260K.gguf"));

    /// <summary>The model in the repository (models/sputnik-r1-tiny.gguf): no fixture needed.</summary>
    public static string BundledModelPath => Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");

    /// <param name="configure">changes to the test defaults</param>
    /// <param name="modelPath">another model than stories260K (that fixture is then not needed)</param>
    public static async Task<TestServer> StartAsync(Func<ServerOptions, ServerOptions>? configure = null, string? modelPath = null)
    {
        string dir = Path.Combine(Path.GetTempPath(), "sputnik-test-" + Guid.NewGuid().ToString("N")[..8]);
        var options = new ServerOptions { ModelPath = modelPath ?? ModelPath, Port = 0, ContextLength = 512, Threads = 1, DataDir = dir };
        if (configure != null) options = configure(options);
        return new TestServer(await ServerHost.StartAsync(options), options.DataDir == dir ? dir : null);
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    public static string ChatBody(string user = "Once upon a time", int maxTokens = 16, bool stream = false, string extra = "") =>
        $$"""{"model":"stories260K","messages":[{"role":"user","content":{{JsonSerializer.Serialize(user)}}}],"max_tokens":{{maxTokens}},"temperature":0,"stream":{{(stream ? "true" : "false")}}{{extra}}}""";

    public async Task<(int Status, JsonNode Body, HttpResponseMessage Response)> PostAsync(string path, string json, string? key = null)
    {
        using var req = new HttpRequestMessage(HttpMethod.Post, path) { Content = Json(json) };
        if (key != null) req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        var resp = await Client.SendAsync(req, TestContext.Current.CancellationToken);
        string text = await resp.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        return ((int)resp.StatusCode, JsonNode.Parse(text)!, resp);
    }

    public async Task<JsonNode> GetJsonAsync(string path)
    {
        var text = await Client.GetStringAsync(path, TestContext.Current.CancellationToken);
        return JsonNode.Parse(text)!;
    }

    /// <summary>Polls /health until no slot is busy (bounded).</summary>
    public async Task<bool> WaitIdleAsync(TimeSpan timeout)
    {
        var end = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < end)
        {
            var h = await GetJsonAsync("/health");
            if ((int)h["slots_processing"]! == 0 && (int)h["queued"]! == 0) return true;
            await Task.Delay(20, TestContext.Current.CancellationToken);
        }
        return false;
    }

    /// <summary>The data: payloads of an SSE body, in order (comments dropped), and whether it ended with [DONE].</summary>
    public static (List<JsonNode> Events, bool Done, int KeepAlives) ParseSse(string body)
    {
        var events = new List<JsonNode>();
        bool done = false;
        int keepAlives = 0;
        foreach (var block in body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            foreach (var line in block.Split('\n'))
            {
                if (line.StartsWith(": keep-alive", StringComparison.Ordinal)) keepAlives++;
                else if (line == "data: [DONE]") done = true;
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    Assert.False(done, "data after [DONE]");
                    events.Add(JsonNode.Parse(line[6..])!);
                }
            }
        }
        return (events, done, keepAlives);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await Host.DisposeAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        if (_dataDir != null)
            try { Directory.Delete(_dataDir, recursive: true); } catch (IOException) { }
    }
}
