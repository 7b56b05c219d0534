using System.Diagnostics;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit;

namespace Sputnik.Tests.Library;

/// <summary>The samples under samples/ run against the stories260K test model.</summary>
public sealed class SamplesTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(120);

    [Fact]
    public void ConsoleChatStreamsTwoTurnsWithUsage()
    {
        var r = ProcessRunner.Run("dotnet", Limit, ProcessRunner.SampleDll("ConsoleChat"), LibraryFixture.ModelPath, "Once upon a time", "And then?");
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Equal(2, Regex.Matches(r.StdOut, @"\[\d+ tokens \(\d+ thinking\), \d+ tok/s\]").Count);
    }

    [Fact]
    public void ConsoleChatReadsMessagesFromStdin()
    {
        var psi = ProcessRunner.Info("dotnet", [ProcessRunner.SampleDll("ConsoleChat"), LibraryFixture.ModelPath]);
        using var p = Process.Start(psi)!;
        p.StandardInput.WriteLine("Once upon a time");
        p.StandardInput.Close();
        string output = p.StandardOutput.ReadToEnd();
        Assert.True(p.WaitForExit(Limit), "ConsoleChat did not exit");
        Assert.Equal(0, p.ExitCode);
        Assert.Single(Regex.Matches(output, @"\[\d+ tokens"));
    }

    [Fact]
    public void FunctionCallingRunsThroughFunctionInvokingChatClient()
    {
        var r = ProcessRunner.Run("dotnet", Limit, ProcessRunner.SampleDll("FunctionCalling"), LibraryFixture.ModelPath);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Matches(@"\[\d+ tokens, \d+ messages\]", r.StdOut);
    }

    [Fact]
    public async Task AspNetChatAnswersThroughTheInjectedChatClient()
    {
        var ct = TestContext.Current.CancellationToken;
        var psi = ProcessRunner.Info("dotnet", [ProcessRunner.SampleDll("AspNetChat"), "--Model", LibraryFixture.ModelPath, "--urls", "http://127.0.0.1:0"]);
        using var p = Process.Start(psi)!;
        try
        {
            string? url = null;
            var until = DateTime.UtcNow + TimeSpan.FromSeconds(60);
            while (url == null && DateTime.UtcNow < until && await p.StandardOutput.ReadLineAsync(ct) is { } line)
                if (Regex.Match(line, @"Now listening on: (http://\S+)") is { Success: true } m) url = m.Groups[1].Value;
            Assert.NotNull(url);
            _ = p.StandardOutput.ReadToEndAsync(ct); // keep draining the log
            _ = p.StandardError.ReadToEndAsync(ct);
            using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            var reply = await (await http.PostAsJsonAsync("/chat", new { message = "Hi", maxTokens = 8 }, ct)).Content.ReadFromJsonAsync<JsonObject>(ct);
            Assert.False(string.IsNullOrEmpty((string?)reply!["reply"]));
            Assert.Equal(8, (int)reply["outputTokens"]!);
            var pieces = await (await http.PostAsJsonAsync("/chat/stream", new { message = "Hi", maxTokens = 8 }, ct)).Content.ReadFromJsonAsync<string[]>(ct);
            Assert.NotEmpty(pieces!);
        }
        finally
        {
            p.Kill(entireProcessTree: true);
            await p.WaitForExitAsync(CancellationToken.None);
        }
    }
}
