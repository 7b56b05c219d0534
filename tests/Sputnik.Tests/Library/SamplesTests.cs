using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit;

namespace Sputnik.Tests.Library;

/// <summary>
/// The samples under samples/, run the way the README's "Samples" section says (`dotnet run --project samples/NAME
/// -- …` from the repository root, model paths relative to it), plus their usage and bad-path errors.
/// </summary>
public sealed class SamplesTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    /// <summary>The bundled model, relative to the repository root as in the README.</summary>
    private const string BundledRelative = "models/sputnik-r1-tiny.gguf";

    [Fact]
    public void ConsoleChatStreamsTwoTurnsWithUsage()
    {
        var r = ProcessRunner.Run(ProcessRunner.DotnetRunSample("ConsoleChat", null, BundledRelative, "What is 2 + 3?", "What is 7 * 8?"), Limit);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(2, Regex.Matches(r.StdOut, @"\[\d+ tokens \(\d+ thinking\), \d+ tok/s\]").Count);
    }

    [Fact]
    public async Task ConsoleChatReadsMessagesFromStdin()
    {
        var psi = ProcessRunner.DotnetRunSample("ConsoleChat", null, BundledRelative);
        using var p = Process.Start(psi)!;
        p.StandardInput.WriteLine("What is 2 + 3?");
        p.StandardInput.Close();
        var stderr = p.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        string output = await p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        Assert.True(p.WaitForExit(Limit), "ConsoleChat did not exit");
        Assert.True(p.ExitCode == 0, await stderr);
        Assert.Single(Regex.Matches(output, @"\[\d+ tokens"));
    }

    [Theory]
    [InlineData("ConsoleChat")]
    [InlineData("FunctionCalling")]
    [InlineData("AspNetChat")]
    public void WithoutAModelASampleSaysHowToRunItAndExits1(string name)
    {
        var r = ProcessRunner.Run("dotnet", Limit, ProcessRunner.SampleDll(name));
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith($"usage: dotnet run --project samples/{name} -- ", r.StdErr);
        Assert.Single(r.StdErr.Trim().Split('\n'));
        Assert.DoesNotContain("Exception", r.StdErr);
    }

    [Theory]
    [InlineData("ConsoleChat", new[] { "missing.gguf" })]
    [InlineData("FunctionCalling", new[] { "missing.gguf" })]
    [InlineData("AspNetChat", new[] { "--Model", "missing.gguf", "--urls", "http://127.0.0.1:0" })]
    public void AMissingModelIsOneLineNamingTheFullPath(string name, string[] args)
    {
        string dir = Directory.CreateTempSubdirectory("sputnik-sample-").FullName;
        try
        {
            var r = ProcessRunner.Run(ProcessRunner.Info("dotnet", [ProcessRunner.SampleDll(name), .. args], dir), Limit);
            Assert.Equal(1, r.ExitCode);
            string err = r.StdErr.Trim();
            Assert.Single(err.Split('\n'));
            Assert.StartsWith("error: ", err);
            Assert.Contains(Path.Combine(dir, "missing.gguf"), err); // resolved against where it was started
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void FunctionCallingRunsThroughFunctionInvokingChatClient()
    {
        // stories260K has no template (ChatML is used), so the tool definitions reach the prompt.
        string relative = Path.GetRelativePath(Fixtures.RepoRoot, LibraryFixture.ModelPath);
        var r = ProcessRunner.Run(ProcessRunner.DotnetRunSample("FunctionCalling", null, relative), Limit);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Matches(@"\[\d+ tokens, \d+ messages\]", r.StdOut);
    }

    /// <summary>A relative --Model from the repository root: the web project must not resolve it in its own folder.</summary>
    [Fact]
    public async Task AspNetChatAnswersThroughTheInjectedChatClient()
    {
        var ct = TestContext.Current.CancellationToken;
        var psi = ProcessRunner.DotnetRunSample("AspNetChat", null, "--Model", BundledRelative, "--urls", "http://127.0.0.1:0");
        using var p = Process.Start(psi)!;
        try
        {
            string? url = null;
            var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (url == null && DateTime.UtcNow < until && await p.StandardOutput.ReadLineAsync(ct) is { } line)
                if (Regex.Match(line, @"Now listening on: (http://\S+)") is { Success: true } m) url = m.Groups[1].Value;
            var stderr = p.StandardError.ReadToEndAsync(ct);
            Assert.True(url != null, $"no 'Now listening' line; exited: {p.HasExited}; stderr: {(p.HasExited ? await stderr : "")}");
            _ = p.StandardOutput.ReadToEndAsync(ct); // keep draining the log
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            var response = await http.PostAsJsonAsync("/chat", new { message = "What is 2 + 3?", maxTokens = 200 }, ct);
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(ct));
            var reply = await response.Content.ReadFromJsonAsync<JsonObject>(ct);
            Assert.False(string.IsNullOrEmpty((string?)reply!["reasoning"]));
            Assert.False(string.IsNullOrEmpty((string?)reply["reply"]));
            Assert.True((int)reply["outputTokens"]! > 0);
            var pieces = await (await http.PostAsJsonAsync("/chat/stream", new { message = "What is 2 + 3?", maxTokens = 200 }, ct)).Content.ReadFromJsonAsync<string[]>(ct);
            Assert.NotEmpty(pieces!);
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync(CancellationToken.None);
        }
    }
}
