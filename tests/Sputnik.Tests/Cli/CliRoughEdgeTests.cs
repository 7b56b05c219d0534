using System.CommandLine;
using System.Diagnostics;
using Sputnik.Cli;
using Sputnik.Gguf;
using Sputnik.Tests.Tools;
using Xunit;

namespace Sputnik.Tests.Cli;

/// <summary>What a newcomer meets first: help, bad flags, progress in logs, charts, leaving a chat.</summary>
[Collection("Console")]
public sealed class CliRoughEdgeTests
{
    private static readonly string Bundled = Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");

    [Fact]
    public void Sputnik_alone_prints_the_help_naming_itself_sputnik()
    {
        var r = CliHarness.Run();
        Assert.Equal(0, r.ExitCode);
        Assert.Contains("Usage:\n  sputnik [command] [options]", r.Out.ReplaceLineEndings("\n"));
        Assert.Contains("chat", r.Out);
        Assert.Equal("", r.Err);
    }

    [Fact]
    public void Every_commands_help_says_sputnik_never_the_assembly_name()
    {
        var pending = new Stack<(Command Command, string[] Path)>();
        pending.Push((SputnikCli.CreateRoot(), []));
        int seen = 0;
        while (pending.Count > 0)
        {
            var (command, path) = pending.Pop();
            var r = CliHarness.Run([.. path, "--help"]);
            Assert.Equal(0, r.ExitCode);
            Assert.Contains("Usage:\n  " + string.Join(' ', ["sputnik", .. path]), r.Out.ReplaceLineEndings("\n"));
            Assert.DoesNotContain("Sputnik.Cli", r.Out);
            seen++;
            foreach (var sub in command.Subcommands) pending.Push((sub, [.. path, sub.Name]));
        }
        Assert.True(seen > 12, $"only {seen} commands visited");
    }

    [Fact]
    public void Unknown_words_and_flags_name_the_word_and_the_help_to_read()
    {
        var r = CliHarness.Run("bogus");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("'bogus'", r.Err);
        Assert.Contains("(see 'sputnik --help')", r.Err);
        r = CliHarness.Run("train", "sft", "--bogus");
        Assert.Contains("(see 'sputnik train sft --help')", r.Err);
        Assert.DoesNotContain("Sputnik.Cli", r.Err);
    }

    public static TheoryData<string[], string> OutOfRangeFlags => new()
    {
        { ["run", "--temp", "-1"], "--temp -1" },
        { ["run", "--temp", "NaN"], "--temp NaN" },
        { ["run", "--top-p", "2"], "--top-p 2" },
        { ["run", "--top-p", "0"], "--top-p 0" },
        { ["run", "--min-p", "-0.1"], "--min-p -0.1" },
        { ["run", "--top-k", "-3"], "--top-k -3" },
        { ["run", "-n", "-5"], "-n -5" },
        { ["run", "--repeat-penalty", "0"], "--repeat-penalty 0" },
        { ["run", "--presence-penalty", "-3"], "--presence-penalty -3" },
        { ["run", "--frequency-penalty", "2.5"], "--frequency-penalty 2.5" },
        { ["run", "--threads", "0"], "--threads 0" },
        { ["run", "-c", "-1"], "-c -1" },
        { ["chat", "--temp", "-1"], "--temp -1" },
        { ["chat", "-n", "0"], "-n 0" },
        { ["chat", "--budget", "-2"], "--budget -2" },
        { ["chat", "-t", "0"], "-t 0" },
        { ["serve", "--threads", "0"], "--threads 0" },
        { ["serve", "--cache-ram", "-0.5"], "--cache-ram -0.5" },
        { ["bench", "-t", "-1"], "-t -1" },
        { ["eval", "--temp", "-0.5"], "--temp -0.5" },
        { ["eval", "--n", "0"], "--n 0" },
        { ["eval", "--samples", "0"], "--samples 0" },
        { ["eval", "--max-new", "-1"], "--max-new -1" },
    };

    /// <summary>A --host that is not an address is one line, for the server and the router alike (it was a FormatException).</summary>
    [Theory]
    [InlineData("route", "--replica", "http://127.0.0.1:9")]
    [InlineData("serve", "--parallel", "1")]
    public void A_host_name_that_is_not_an_address_is_one_line(string command, string flag, string value)
    {
        var r = CliHarness.Run(command, "--host", "not-an-address", "--port", "0", flag, value);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrLines);
        Assert.StartsWith("error: --host 'not-an-address' is not an IP address", r.ErrLines[0]);
    }

    /// <summary>The model path does not exist: the range check must come first, before anything is loaded.</summary>
    [Theory]
    [MemberData(nameof(OutOfRangeFlags))]
    public void Out_of_range_flags_are_one_line_errors_before_the_model_loads(string[] args, string shown)
    {
        var r = CliHarness.Run([.. args, "-m", "/nonexistent/model.gguf"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrLines);
        Assert.StartsWith($"error: {shown} is out of range: expected ", r.ErrLines[0]);
        Assert.Equal("", r.Out);
    }

    [Fact]
    public void In_range_edges_are_accepted()
    {
        // The flags pass parsing; the command then fails only on the missing model.
        var r = CliHarness.Run("run", "-m", "/nonexistent/model.gguf", "--temp", "0", "--top-p", "1", "--min-p", "0", "--top-k", "0",
            "-n", "0", "--presence-penalty", "-2", "--frequency-penalty", "2", "-t", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("not found", r.Err);
        var serve = CliHarness.Run("serve", "-m", "/nonexistent/model.gguf", "--port", "0", "--cache-ram", "7.5");
        Assert.Equal(1, serve.ExitCode);
        Assert.Contains("not found", serve.Err);
    }

    [Fact]
    public void Plain_progress_lines_have_no_carriage_returns_and_come_every_ten_percent()
    {
        var output = new StringWriter();
        var report = ProgressBar.PlainReporter("convert F16", output);
        for (long done = 0; done <= 1000; done += 7) report(done, 1000, $"blk.{done / 100}.weight");
        report(1000, 1000, "output.weight");
        string text = output.ToString();
        Assert.DoesNotContain('\r', text);
        Assert.DoesNotContain('\u001b', text);
        string[] lines = text.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.InRange(lines.Length, 10, 11);
        Assert.All(lines, l => Assert.Matches(@"^convert F16: +\d+% \S+$", l));
        Assert.EndsWith("100% output.weight", lines[^1]);
    }

    [Fact]
    public void Quantize_with_stderr_captured_prints_plain_progress_lines()
    {
        using var dir = new TempDir();
        string f32 = dir.File("tiny-f32.gguf"), q8 = dir.File("tiny-q8.gguf");
        CliHarness.Ok("synth", "--preset", "qwen2-tiny", "--type", "F32", "-o", f32, "-t", "1");
        var r = CliHarness.Run("quantize", f32, q8, "Q8_0", "-t", "1");
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain('\r', r.Err);
        Assert.DoesNotContain('\u001b', r.Err);
        Assert.Contains(r.ErrLines, l => l.StartsWith("quantize Q8_0: 100% [", StringComparison.Ordinal));
        Assert.StartsWith("wrote ", r.ErrLines[^1]);
    }

    [Fact]
    public void A_pass_rate_chart_spans_0_to_1_even_when_every_value_is_0_and_its_legend_is_outside_the_data()
    {
        using var dir = new TempDir();
        string csv = dir.File("metrics.csv");
        File.WriteAllText(csv, "step,mean_reward,accuracy,eval_pass_at_1\n0,0,0,0\n10,0,0,\n20,0,0,0\n");
        var plot = Charts.Build(csv, "t", "pass@1", Charts.Scale.Fraction, ("mean_reward", "reward"), ("accuracy", "accuracy"), ("eval_pass_at_1", "pass@1"));
        var limits = plot.Axes.GetLimits();
        Assert.InRange(limits.Bottom, -0.05, 0);
        Assert.InRange(limits.Top, 1, 1.05);
        Assert.InRange(limits.Right, 20, 21);
        Assert.False(plot.Legend.IsVisible, "the legend inside the data area is hidden");
        Assert.Contains(plot.Axes.GetPanels(), p => p is ScottPlot.Panels.LegendPanel);
        plot.SavePng(dir.File("chart.png"), 400, 300); // renders with these limits
        Assert.True(new FileInfo(dir.File("chart.png")).Length > 1000);

        var loss = Charts.Build(csv, "t", "loss", Charts.Scale.FromZero, ("accuracy", "zero loss")).Axes.GetLimits();
        Assert.InRange(loss.Bottom, -0.05, 0);
        Assert.True(loss.Top > 0);
    }

    [Fact]
    public void Info_escapes_control_characters_from_the_file()
    {
        using var dir = new TempDir();
        string path = dir.File("named.gguf");
        new GgufWriter().Set("general.architecture", "llama").Set("general.name", "tiny\u001b[2J\u001b]0;owned\u0007\rmodel")
            .AddTensor("token_embd.weight", new float[8], 4, 2).Write(path);
        var r = CliHarness.Run("info", path);
        Assert.Equal(0, r.ExitCode);
        Assert.DoesNotContain('\u001b', r.Out);
        Assert.DoesNotContain('\u0007', r.Out);
        Assert.DoesNotContain('\r', r.Out);
        Assert.Contains("tiny\\x1B[2J\\x1B]0;owned\\x07\\rmodel", r.Out);
    }

    [Fact]
    public void Error_lines_escape_control_characters_and_stay_short()
    {
        var r = CliHarness.Run("info", "/nonexistent/\u001b[2J" + new string('x', 5000) + ".gguf");
        Assert.Equal(1, r.ExitCode);
        Assert.Single(r.ErrLines);
        Assert.DoesNotContain('\u001b', r.Err);
        Assert.Contains("\\x1B[2J", r.Err);
        Assert.InRange(r.Err.Length, 20, 700);
    }

    /// <summary>
    /// SIGINT (what Ctrl+C sends) while chat waits for the next message: the chat ends on a fresh line with exit
    /// code 0 instead of being killed mid-line (exit 130). Piped stdin takes the same handler as a terminal.
    /// </summary>
    [Fact]
    public async Task Ctrl_C_at_an_empty_prompt_ends_the_chat_with_a_newline_and_exit_0()
    {
        if (!OperatingSystem.IsLinux() && !OperatingSystem.IsMacOS()) Assert.Skip("sends SIGINT with kill(1)");
        // A test run started in the background (`nohup`, `&` in a script) has SIGINT ignored, exec keeps an ignored
        // signal ignored, and chat started from it then never sees the SIGINT (as a background job should not): that
        // was this test's "intermittent hang". coreutils' env --default-signal gives chat the default disposition.
        bool sigintIgnored = SigintIgnoredHere();
        bool resetWithEnv = sigintIgnored && EnvCanResetSignals();
        if (sigintIgnored && !resetWithEnv)
            Assert.Skip("SIGINT is ignored in this test process (started in the background) and env --default-signal is unavailable to restore it for chat");
        var psi = new ProcessStartInfo(resetWithEnv ? "env" : "dotnet")
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true,
            StandardOutputEncoding = System.Text.Encoding.UTF8, StandardErrorEncoding = System.Text.Encoding.UTF8,
        };
        if (resetWithEnv)
            foreach (var a in new[] { "--default-signal=INT", "dotnet" }) psi.ArgumentList.Add(a);
        foreach (var a in new[] { Path.Combine(AppContext.BaseDirectory, "Sputnik.Cli.dll"), "chat", "-m", Bundled, "--temp", "0", "-n", "40", "-t", "1" })
            psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        try
        {
            var stdout = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
            p.StandardInput.WriteLine("What is 2 + 3?");
            p.StandardInput.Flush();
            // The stats line on stderr means the answer is done and chat is back at ReadLine.
            var until = DateTime.UtcNow + TimeSpan.FromSeconds(90);
            string? line;
            while ((line = await p.StandardError.ReadLineAsync(TestContext.Current.CancellationToken)) != null && !line.Contains("tok/s", StringComparison.Ordinal))
                Assert.True(DateTime.UtcNow < until, "no answer within 90 s");
            Assert.NotNull(line);
            await Task.Delay(200, TestContext.Current.CancellationToken); // let it reach ReadLine
            using (var kill = Process.Start("kill", ["-INT", p.Id.ToString()])) await kill.WaitForExitAsync(TestContext.Current.CancellationToken);
            Assert.True(p.WaitForExit(30_000), "chat did not exit within 30 s of SIGINT");
            Assert.Equal(0, p.ExitCode);
            Assert.EndsWith("\n", await stdout);
            p.StandardInput.Close();
        }
        finally
        {
            if (!p.HasExited) p.Kill(entireProcessTree: true);
        }
    }

    /// <summary>SIGINT (signal 2) is in this process's ignored set (Linux: /proc/self/status SigIgn; elsewhere assumed not).</summary>
    private static bool SigintIgnoredHere()
    {
        if (!OperatingSystem.IsLinux()) return false;
        string? line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
        return line != null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << (2 - 1))) != 0;
    }

    private static bool EnvCanResetSignals()
    {
        try
        {
            using var p = Process.Start(new ProcessStartInfo("env", ["--default-signal=INT", "true"]) { RedirectStandardError = true })!;
            p.WaitForExit(10_000);
            return p.HasExited && p.ExitCode == 0;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return false;
        }
    }
}
