using System.ClientModel;
using System.Text.RegularExpressions;
using OpenAI;
using OpenAI.Chat;
using Sputnik.Tests.Server;
using Xunit;

namespace Sputnik.Tests.Library;

/// <summary>
/// The examples in docs/ run: bash blocks of api.md against an in-process server, bash blocks of models.md with the
/// CLI on stories260K, and every C# block of the docs is a verbatim piece of a sample (or of this file).
/// </summary>
public sealed partial class DocsTests
{
    private static string Doc(string name) => File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "docs", name));

    [GeneratedRegex(@"```(\w+)\n(.*?)```", RegexOptions.Singleline)]
    private static partial Regex Fence();

    private static List<string> Blocks(string markdown, string language) =>
        Fence().Matches(markdown).Where(m => m.Groups[1].Value == language).Select(m => m.Groups[2].Value).ToList();

    private static ProcessRunner.Result Bash(string prelude, string script)
    {
        var psi = ProcessRunner.Info("bash", ["-euo", "pipefail", "-c", prelude + "\n" + script]);
        return ProcessRunner.Run(psi, TimeSpan.FromSeconds(120));
    }

    [Fact]
    public async Task ApiCurlExamplesRun()
    {
        // The tiny test vocabulary spells the tools example out in ~550 tokens: more context than the model's 512.
        await using var server = await TestServer.StartAsync(o => o with { ModelAlias = "model", ContextLength = 2048 });
        string url = server.BaseAddress.ToString().TrimEnd('/');
        var blocks = Blocks(Doc("api.md"), "bash");
        Assert.True(blocks.Count >= 6, $"api.md has {blocks.Count} bash blocks");
        foreach (string block in blocks)
        {
            var r = Bash("curl() { command curl --fail-with-body --max-time 60 \"$@\"; }", block.Replace("http://127.0.0.1:8080", url));
            Assert.True(r.ExitCode == 0, $"{block}\n{r}");
            Assert.False(string.IsNullOrWhiteSpace(r.StdOut), block);
            Assert.DoesNotContain("\"error\"", r.StdOut);
        }
    }

    /// <summary>
    /// The README's curl example, verbatim, with real curl against a server on the bundled model (what
    /// `./sputnik serve` serves without -m): a 200 with server-sent events, the usage chunk and [DONE].
    /// </summary>
    [Fact]
    public async Task ReadmeCurlExampleRuns()
    {
        string readme = File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "README.md"));
        string section = readme[readme.IndexOf("## API server", StringComparison.Ordinal)..];
        string block = Blocks(section, "bash")[0];
        string curl = block[block.IndexOf("curl ", StringComparison.Ordinal)..];
        Assert.Contains("./sputnik serve", block[..block.IndexOf("curl ", StringComparison.Ordinal)]);
        string bundled = Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");
        await using var server = await TestServer.StartAsync(o => o with { ModelPath = bundled, ContextLength = 0, Parallel = 4 });
        string url = server.BaseAddress.ToString().TrimEnd('/');
        var r = Bash("curl() { command curl --fail-with-body -sS --max-time 120 \"$@\"; }", curl.Replace("http://127.0.0.1:8080", url));
        Assert.True(r.ExitCode == 0, $"{curl}\n{r}");
        var (events, done, _) = TestServer.ParseSse(r.StdOut);
        Assert.True(done, r.StdOut);
        Assert.NotEmpty(events);
        Assert.All(events, e => Assert.Null(e["error"]));
        Assert.Contains(events, e => e["usage"] != null);
        Assert.Contains(events, e => e["choices"]!.AsArray().Any(c => c!["delta"]!["content"] is { } t && ((string?)t)?.Length > 0));
    }

    [Fact]
    public void ModelsExamplesRun()
    {
        string cli = Path.Combine(AppContext.BaseDirectory, "Sputnik.Cli.dll");
        var blocks = Blocks(Doc("models.md"), "bash");
        Assert.NotEmpty(blocks);
        foreach (string block in blocks)
        {
            var r = Bash($"sputnik() {{ dotnet '{cli}' \"$@\"; }}", block.Replace("model.gguf", $"'{LibraryFixture.ModelPath}'"));
            Assert.True(r.ExitCode == 0, $"{block}\n{r}");
            Assert.False(string.IsNullOrWhiteSpace(r.StdOut), block);
        }
    }

    [Fact]
    public void CSharpBlocksAreVerbatimPiecesOfTheSamples()
    {
        string samples = Path.Combine(Fixtures.RepoRoot, "samples");
        var sources = Directory.EnumerateFiles(samples, "*.cs", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
            .Append(Path.Combine(Fixtures.RepoRoot, "tests", "Sputnik.Tests", "Library", "DocsTests.cs"))
            .Select(f => Normalize(File.ReadAllText(f)))
            .ToList();
        int checkedBlocks = 0;
        foreach (string doc in new[] { "library.md", "api.md" })
        {
            foreach (string block in Blocks(Doc(doc), "csharp"))
            {
                Assert.True(sources.Any(s => s.Contains(Normalize(block), StringComparison.Ordinal)), $"docs/{doc}: this block is not in samples/ (copy it from there):\n{block}");
                checkedBlocks++;
            }
        }
        Assert.True(checkedBlocks >= 5);
    }

    // Same text whatever the indentation: every line trimmed, blank lines dropped.
    private static string Normalize(string code) =>
        string.Join('\n', code.ReplaceLineEndings("\n").Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0)) + "\n";

    [Fact]
    public async Task OpenAiDotNetSdkExample()
    {
        await using var server = await TestServer.StartAsync(o => o with { ModelAlias = "model" });
        Uri baseUrl = server.BaseAddress;
        var output = new StringWriter();
        var console = Console.Out;
        Console.SetOut(output);
        try
        {
            // docs/api.md, "From the OpenAI SDKs":
            var client = new ChatClient("model", new ApiKeyCredential("unused"), new OpenAIClientOptions { Endpoint = new Uri(baseUrl, "v1") });
            ChatCompletion completion = await client.CompleteChatAsync([new UserChatMessage("Why is the sky blue?")],
                new ChatCompletionOptions { MaxOutputTokenCount = 32 });
            Console.WriteLine(completion.Content[0].Text);
        }
        finally
        {
            Console.SetOut(console);
        }
        Assert.False(string.IsNullOrWhiteSpace(output.ToString()));
    }
}
