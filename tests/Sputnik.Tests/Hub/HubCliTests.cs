using System.Text.Json;
using Sputnik.Tests.Tools;
using Xunit;

namespace Sputnik.Tests.Hub;

/// <summary>
/// The CLI in-process against the stand-in hub, configured only through HF_ENDPOINT (plus HF_HUB_CACHE so the test
/// does not write to the user's cache): pull, list, show, rm, and -m references in run, info, tokenize, bench,
/// quantize. Runs in the Console collection, which runs alone, so the environment can be changed.
/// </summary>
[Collection("Console")]
public sealed class HubCliTests : IAsyncLifetime
{
    private const string Repo = "test/cli-GGUF";
    private static readonly string[] Variables = ["HF_ENDPOINT", "HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE", "HUGGING_FACE_HUB_TOKEN"];
    private readonly Dictionary<string, string?> _saved = Variables.ToDictionary(v => v, Environment.GetEnvironmentVariable);
    private readonly string _cache = Directory.CreateTempSubdirectory("sputnik-hub-cli-").FullName;
    private StandInHub _hub = null!;

    public async ValueTask InitializeAsync()
    {
        _hub = await StandInHub.StartAsync();
        _hub.AddRepo(Repo, [new("cli-Q4_K_M.gguf", HubPayloads.Q4_K_M), new("cli-Q8_0.gguf", HubPayloads.Q8_0)]);
        foreach (string v in Variables) Environment.SetEnvironmentVariable(v, null);
        Environment.SetEnvironmentVariable("HF_ENDPOINT", _hub.Endpoint);
        Environment.SetEnvironmentVariable("HF_HUB_CACHE", _cache);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var (v, value) in _saved) Environment.SetEnvironmentVariable(v, value);
        await _hub.DisposeAsync();
        try { Directory.Delete(_cache, recursive: true); } catch (IOException) { }
    }

    [Fact]
    public void Pull_list_show_and_rm_work_from_HF_ENDPOINT_alone()
    {
        var pull = CliHarness.Run("pull", Repo + ":Q8_0");
        Assert.True(pull.ExitCode == 0, pull.Err);
        string path = pull.Out.Trim();
        Assert.True(File.Exists(path), path);
        Assert.Contains("pull cli-Q8_0.gguf: 100%", pull.Err); // plain progress lines when stderr is not a terminal
        Assert.Contains("pulled test/cli-GGUF: cli-Q8_0.gguf", pull.Err);

        var again = CliHarness.Run("pull", Repo + ":Q8_0");
        Assert.Contains("up to date", again.Err);

        using (var list = JsonDocument.Parse(CliHarness.Ok("list", "--json")))
        {
            var m = Assert.Single(list.RootElement.EnumerateArray());
            Assert.Equal(Repo + ":Q8_0", m.GetProperty("reference").GetString());
            Assert.Equal("cli-Q8_0.gguf", m.GetProperty("file").GetString());
            Assert.Equal(HubPayloads.Q8_0.Length, m.GetProperty("size").GetInt64());
            Assert.Equal("qwen2", m.GetProperty("architecture").GetString());
            Assert.True(m.GetProperty("parameters").GetInt64() > 1_000_000);
            Assert.Equal("Q8_0", m.GetProperty("quant").GetString());
            Assert.True(DateTime.Parse(m.GetProperty("last_used").GetString()!).Year >= 2024);
        }
        string table = CliHarness.Ok("list");
        Assert.Contains("REFERENCE", table);
        Assert.Contains(Repo + ":Q8_0", table);

        using (var show = JsonDocument.Parse(CliHarness.Ok("show", Repo + ":Q8_0", "--json")))
        {
            var origin = show.RootElement.GetProperty("origin");
            Assert.Equal(_hub.Commit(Repo), origin.GetProperty("commit").GetString());
            Assert.Equal($"{_hub.Endpoint}/{Repo}", origin.GetProperty("url").GetString());
            Assert.Equal("qwen2", show.RootElement.GetProperty("architecture").GetString());
        }
        Assert.Contains("from", CliHarness.Ok("show", Repo + ":Q8_0"));

        Assert.Contains("removed", CliHarness.Ok("rm", Repo + ":Q8_0"));
        Assert.False(File.Exists(path));
        Assert.Equal("[]", CliHarness.Ok("list", "--json").Trim());
    }

    [Fact]
    public void Every_model_flag_takes_a_reference_and_pulls_it_first()
    {
        var run = CliHarness.Run("run", "-m", Repo + ":Q8_0", "-p", "hello", "-n", "4", "--temp", "0", "-t", "1", "--json");
        Assert.True(run.ExitCode == 0, run.Err);
        using (var doc = JsonDocument.Parse(run.Out)) Assert.InRange(doc.RootElement.GetProperty("tokens").GetArrayLength(), 1, 4);
        Assert.Contains("downloaded", run.Err);

        int requests = _hub.CdnRequests;
        using (var info = JsonDocument.Parse(CliHarness.Ok("info", "hf.co/" + Repo + ":q8_0", "--json")))
            Assert.Equal("qwen2", info.RootElement.GetProperty("architecture").GetString());
        Assert.NotEmpty(CliHarness.Ok("tokenize", "-m", Repo + ":Q8_0", "--text", "hello"));
        Assert.NotEmpty(CliHarness.Ok("bench", "-m", Repo + ":Q8_0", "-p", "4", "-n", "2", "-r", "1", "-t", "1"));
        Assert.Equal(requests, _hub.CdnRequests); // cached: no more downloads

        string output = Path.Combine(_cache, "requant.gguf");
        CliHarness.Ok("quantize", Repo, output, "Q8_0"); // a bare repo pulls the default quant, Q4_K_M
        Assert.True(File.Exists(output));
        Assert.Equal(requests + 1, _hub.CdnRequests);
    }

    [Fact]
    public async Task The_library_loads_a_reference()
    {
        using var model = await SputnikModel.LoadAsync(Repo + ":Q8_0", new ModelOptions { Threads = 1, ContextLength = 32 });
        Assert.Equal("qwen2", model.File.Architecture);
        Assert.True(Directory.Exists(Path.Combine(_cache, "models--test--cli-GGUF", "blobs")));
    }

    [Fact]
    public void Errors_are_one_line_with_exit_code_1()
    {
        void Fails(string expected, params string[] args)
        {
            var r = CliHarness.Run(args);
            Assert.Equal(1, r.ExitCode);
            var line = Assert.Single(r.ErrLines);
            Assert.StartsWith("error: ", line);
            Assert.Contains(expected, line);
        }
        Fails("not found", "pull", "test/missing");
        Fails("quants there: Q4_K_M, Q8_0", "run", "-m", Repo + ":Q2_K", "-p", "x");
        Fails("is not a model reference", "pull", "not-a-reference");
        Fails("is not in the cache", "rm", Repo + ":Q8_0");
        Environment.SetEnvironmentVariable("HF_ENDPOINT", "http://127.0.0.1:1");
        Fails("cannot reach http://127.0.0.1:1", "chat", "-m", Repo);
        Environment.SetEnvironmentVariable("HF_HUB_OFFLINE", "1");
        Fails("HF_HUB_OFFLINE is set", "info", Repo);
    }
}
