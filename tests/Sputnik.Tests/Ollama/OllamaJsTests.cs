using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Tests.Hub;
using Sputnik.Tests.Library;
using Sputnik.Tests.Server;
using Xunit;

namespace Sputnik.Tests.Ollama;

/// <summary>
/// The npm `ollama` package (Ollama's own JavaScript client) against the server on the bundled model: one node script
/// runs list, show, ps, a streamed chat with thinking, generate, tools, format with a schema and embed, and prints
/// what it got; each part is checked here. A second script pulls a model from the loopback stand-in hub and deletes it.
/// npm installs the package once into the temp dir; without npm or the registry the tests are skipped.
/// </summary>
public sealed class OllamaJsTests
{
    private const string Version = "0.6.4";
    private static readonly Lazy<(string? Dir, string Why)> Package = new(Install);

    private static (string? Dir, string Why) Install()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"sputnik-ollama-js-{Version}");
        if (File.Exists(Path.Combine(dir, "node_modules", "ollama", "package.json"))) return (dir, "");
        Directory.CreateDirectory(dir);
        try
        {
            var r = ProcessRunner.Run(ProcessRunner.Info("npm", ["install", $"ollama@{Version}", "--no-audit", "--no-fund", "--prefix", dir], dir), TimeSpan.FromMinutes(2));
            return r.ExitCode == 0 ? (dir, "") : (null, $"npm install ollama@{Version} failed (registry unreachable?): {r.StdErr.Trim().Split('\n')[^1]}");
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            return (null, $"npm is not available: {ex.Message}");
        }
    }

    private const string Script = """
        import { Ollama } from "ollama";
        const ollama = new Ollama({ host: process.argv[2] });
        const model = "sputnik-r1-tiny";
        const out = {};
        out.list = await ollama.list();
        out.show = await ollama.show({ model });
        out.ps = await ollama.ps();
        out.version = await ollama.version();
        const parts = [];
        for await (const part of await ollama.chat({ model, think: true, stream: true,
            messages: [{ role: "user", content: "What is 12+7?" }], options: { temperature: 0, num_predict: 48 } }))
          parts.push(part);
        out.chat = parts;
        out.generate = await ollama.generate({ model, prompt: "What is 12+7?", think: true, options: { temperature: 0, num_predict: 48 } });
        const tools = [{ type: "function", function: { name: "get_weather", description: "Weather of a city",
            parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] } } }];
        out.tools = await ollama.chat({ model, tools, options: { num_predict: 4 }, messages: [
            { role: "user", content: "Weather in Paris?" },
            { role: "assistant", content: "", tool_calls: [{ function: { name: "get_weather", arguments: { city: "Paris" } } }] },
            { role: "tool", tool_name: "get_weather", content: "Sunny" }] });
        out.format = await ollama.chat({ model, think: false, options: { temperature: 0, num_predict: 100 },
            format: { type: "object", properties: { answer: { type: "string", enum: ["yes", "no"] } }, required: ["answer"], additionalProperties: false },
            messages: [{ role: "user", content: "Is 7 greater than 3? Answer in JSON." }] });
        out.embed = await ollama.embed({ model, input: ["The sky is blue.", "Grass is green."] });
        try { await ollama.chat({ model, messages: [{ role: "robot", content: "x" }] }); out.error = null; }
        catch (e) { out.error = { name: e.name, message: e.message, status: e.status_code }; }
        console.log(JSON.stringify(out));
        """;

    /// <summary>Runs <paramref name="source"/> with node next to the installed package; returns the JSON of its last line.</summary>
    private static JsonNode RunScript(string source, params string[] args)
    {
        var (dir, why) = Package.Value;
        if (dir == null) Assert.Skip(why);
        string script = Path.Combine(dir, $"check-{Guid.NewGuid():N}.mjs");
        File.WriteAllText(script, source);
        ProcessRunner.Result r;
        try
        {
            r = ProcessRunner.Run(ProcessRunner.Info("node", [script, .. args], dir), TimeSpan.FromMinutes(2));
        }
        finally
        {
            File.Delete(script);
        }
        Assert.True(r.ExitCode == 0, r.ToString());
        return JsonNode.Parse(r.StdOut.Trim().Split('\n')[^1])!;
    }

    [Fact]
    public async Task TheOllamaJavaScriptClientWorks()
    {
        if (Package.Value.Dir == null) Assert.Skip(Package.Value.Why);
        await using var server = await TestServer.StartAsync(o => o with { ContextLength = 0 }, modelPath: TestServer.BundledModelPath);
        var o = RunScript(Script, server.BaseAddress.ToString().TrimEnd('/'));

        Assert.Equal("sputnik-r1-tiny", (string)o["list"]!["models"]![0]!["name"]!);
        Assert.Equal("deepseek2", (string)o["show"]!["details"]!["family"]!);
        Assert.Contains("thinking", o["show"]!["capabilities"]!.AsArray().Select(c => (string)c!));
        Assert.Equal(5, (int)o["show"]!["model_info"]!["deepseek2.block_count"]!); // 4 + the MTP block
        Assert.Equal("sputnik-r1-tiny", (string)o["ps"]!["models"]![0]!["name"]!);
        Assert.False(string.IsNullOrEmpty((string?)o["version"]!["version"]));

        // Streamed chat: thinking first, statistics on the last part; generate gives the same text in one object.
        var chat = o["chat"]!.AsArray();
        string thinking = string.Concat(chat.Select(p => (string?)p!["message"]!["thinking"]));
        string content = string.Concat(chat.Select(p => (string?)p!["message"]!["content"]));
        Assert.NotEmpty(thinking);
        var last = chat[^1]!;
        Assert.True((bool)last["done"]!);
        Assert.Equal(48, (int)last["eval_count"]!);
        Assert.True((long)last["total_duration"]! > 0);
        Assert.Equal(thinking, (string)o["generate"]!["thinking"]!);
        Assert.Equal(content, (string)o["generate"]!["response"]!);

        Assert.True((bool)o["tools"]!["done"]!);
        Assert.Equal("assistant", (string)o["tools"]!["message"]!["role"]!);
        Assert.True((int)o["tools"]!["prompt_eval_count"]! > 10);

        using var answer = JsonDocument.Parse((string)o["format"]!["message"]!["content"]!);
        Assert.Contains(answer.RootElement.GetProperty("answer").GetString(), new[] { "yes", "no" });

        var embeddings = o["embed"]!["embeddings"]!.AsArray();
        Assert.Equal(2, embeddings.Count);
        Assert.All(embeddings, e => Assert.Equal(128, e!.AsArray().Count));
        var (_, openAi, _) = await server.PostAsync("/v1/embeddings", """{"input":"The sky is blue."}""");
        Assert.Equal(openAi["data"]![0]!["embedding"]!.AsArray().Select(x => (float)x!), embeddings[0]!.AsArray().Select(x => (float)x!));

        Assert.Equal(400, (int)o["error"]!["status"]!);
        Assert.Contains("role", (string)o["error"]!["message"]!);
    }

    // ollama-js sends pull and delete as {"name": …} (Ollama's older field), which the server takes as "model".
    private const string PullScript = """
        import { Ollama } from "ollama";
        const ollama = new Ollama({ host: process.argv[2] });
        const model = process.argv[3];
        const out = { pull: [] };
        for await (const part of await ollama.pull({ model, stream: true })) out.pull.push(part);
        out.listed = (await ollama.list()).models.map(m => m.name);
        out.chat = await ollama.chat({ model, messages: [{ role: "user", content: "Hi" }], options: { num_predict: 2 } });
        out.running = (await ollama.ps()).models.map(m => m.name);
        out.deleted = await ollama.delete({ model });
        out.after = (await ollama.list()).models.map(m => m.name);
        out.runningAfter = (await ollama.ps()).models.map(m => m.name);
        try { await ollama.delete({ model }); out.again = null; }
        catch (e) { out.again = { message: e.message, status: e.status_code }; }
        out.once = await ollama.pull({ model, stream: false });
        try { await ollama.pull({ model: "test/missing-GGUF:Q8_0", stream: false }); out.missing = null; }
        catch (e) { out.missing = { message: e.message, status: e.status_code }; }
        console.log(JSON.stringify(out));
        """;

    [Fact]
    public async Task TheOllamaJavaScriptClientPullsAndDeletes()
    {
        if (Package.Value.Dir == null) Assert.Skip(Package.Value.Why);
        const string repo = "test/gamma-GGUF", model = repo + ":Q8_0";
        await using var hub = await StandInHub.StartAsync();
        hub.AddRepo(repo, [new("gamma-Q8_0.gguf", HubPayloads.Q8_0), new("README.md", "# gamma\n"u8.ToArray())]);
        using var cache = new TempHubCache();
        await using var server = await TestServer.StartAsync(o => cache.Options(o, hub.Endpoint), modelPath: TestServer.BundledModelPath);
        var o = RunScript(PullScript, server.BaseAddress.ToString().TrimEnd('/'), model);

        // Ollama's progress lines as the client yields them: manifest, the file's digest and byte counts, then the end.
        var pull = o["pull"]!.AsArray();
        string sha = Convert.ToHexStringLower(SHA256.HashData(HubPayloads.Q8_0));
        Assert.Equal("pulling manifest", (string)pull[0]!["status"]!);
        var file = pull.Where(p => (string?)p!["digest"] == "sha256:" + sha).ToList();
        Assert.NotEmpty(file);
        Assert.All(file, p => Assert.Equal(HubPayloads.Q8_0.Length, (long)p!["total"]!));
        Assert.Equal(HubPayloads.Q8_0.Length, (long)file[^1]!["completed"]!);
        Assert.Equal(["verifying sha256 digest", "writing manifest", "success"], pull.Skip(pull.Count - 3).Select(p => (string)p!["status"]!));

        // Listed, served under its reference, loaded; then deleted: unlisted, unloaded, gone from the cache.
        Assert.Contains(model, o["listed"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(model, (string)o["chat"]!["model"]!);
        Assert.True((bool)o["chat"]!["done"]!);
        Assert.Contains(model, o["running"]!.AsArray().Select(n => (string)n!));
        Assert.Equal("success", (string)o["deleted"]!["status"]!);
        Assert.DoesNotContain(model, o["after"]!.AsArray().Select(n => (string)n!));
        Assert.DoesNotContain(model, o["runningAfter"]!.AsArray().Select(n => (string)n!));
        Assert.Equal(404, (int)o["again"]!["status"]!);
        Assert.Contains("not found", (string)o["again"]!["message"]!);

        // A pull without streaming answers once, with Ollama's last status; the file is back in the cache.
        Assert.Equal("success", (string)o["once"]!["status"]!);
        Assert.True(Directory.Exists(Path.Combine(cache.Root, "models--test--gamma-GGUF")));
        Assert.Equal(404, (int)o["missing"]!["status"]!);
        Assert.Contains("test/missing-GGUF", (string)o["missing"]!["message"]!);
    }
}
