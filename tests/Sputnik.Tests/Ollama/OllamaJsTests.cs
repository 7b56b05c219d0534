using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Tests.Library;
using Sputnik.Tests.Server;
using Xunit;

namespace Sputnik.Tests.Ollama;

/// <summary>
/// The npm `ollama` package (Ollama's own JavaScript client) against the server on the bundled model: one node script
/// runs list, show, ps, a streamed chat with thinking, generate, tools, format with a schema and embed, and prints
/// what it got; each part is checked here. npm installs the package once into the temp dir; without npm or the
/// registry the test is skipped.
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

    [Fact]
    public async Task TheOllamaJavaScriptClientWorks()
    {
        var (dir, why) = Package.Value;
        if (dir == null) Assert.Skip(why);
        await using var server = await TestServer.StartAsync(o => o with { ContextLength = 0 }, modelPath: TestServer.BundledModelPath);
        string script = Path.Combine(dir, $"check-{Guid.NewGuid():N}.mjs");
        File.WriteAllText(script, Script);
        ProcessRunner.Result r;
        try
        {
            r = ProcessRunner.Run(ProcessRunner.Info("node", [script, server.BaseAddress.ToString().TrimEnd('/')], dir), TimeSpan.FromMinutes(2));
        }
        finally
        {
            File.Delete(script);
        }
        Assert.True(r.ExitCode == 0, r.ToString());
        var o = JsonNode.Parse(r.StdOut.Trim().Split('\n')[^1])!;

        Assert.Equal("sputnik-r1-tiny", (string)o["list"]!["models"]![0]!["name"]!);
        Assert.Equal("deepseek2", (string)o["show"]!["details"]!["family"]!);
        Assert.Contains("thinking", o["show"]!["capabilities"]!.AsArray().Select(c => (string)c!));
        Assert.Equal(4, (int)o["show"]!["model_info"]!["deepseek2.block_count"]!);
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
}
