using Sputnik.Tests.Cli;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>The shipped model (models/sputnik-r1-tiny.gguf) is what chat/run/eval use when no -m is given.</summary>
public class DefaultModelTests
{
    [Fact]
    public void ChatWithoutModelUsesTheBundledReasoningModel()
    {
        Assert.True(File.Exists(Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf")));
        var r = CliRunner.RunWithInput("What is 23 + 45?\n", "chat", "--temp", "0", "-t", "1");
        Assert.True(r.ExitCode == 0, r.StdErr);
        // the bundled model gets every held-out test addition right greedily (a broken retrain shows here)
        Assert.Contains("The answer is 68.", r.StdOut);
        Assert.Contains("by columns", r.StdOut + r.StdErr); // the thinking is shown
        Assert.Contains("a: A3 B2", r.StdOut + r.StdErr);   // operands restated with place labels
    }

    [Fact]
    public void EvalWithoutModelPrintsJson()
    {
        var r = CliRunner.Run("eval", "--task", "addition", "--n", "10", "--json", "-t", "1");
        Assert.True(r.ExitCode == 0, r.StdErr);
        Assert.StartsWith("{", r.StdOut.Trim());
        Assert.Contains("\"pass_at_1\"", r.StdOut);
    }

    [Fact]
    public void EvalTextNamesPassAtKOnlyWhenSampling()
    {
        var greedy = CliRunner.Run("eval", "--task", "addition", "--n", "5", "-t", "1");
        Assert.True(greedy.ExitCode == 0, greedy.StdErr);
        Assert.Contains("n=5 pass@1 ", greedy.StdOut);
        Assert.Equal(2, greedy.StdOut.Split('\n')[0].Split("pass@").Length); // pass@1 once on the summary line
        var sampled = CliRunner.Run("eval", "--task", "addition", "--n", "5", "--samples", "2", "-t", "1");
        Assert.True(sampled.ExitCode == 0, sampled.StdErr);
        Assert.Contains(" pass@2 ", sampled.StdOut);
    }

    [Fact]
    public void EvalFailuresFileHoldsEveryWrongSampleWithItsReference()
    {
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-failures-{Guid.NewGuid():N}.jsonl");
        try
        {
            // 40 tokens cannot hold a multiplication trace, so every sample is cut off before </think>: all 6 are failures
            var r = CliRunner.Run("eval", "--task", "multiplication", "--n", "6", "--max-new", "40", "--json", "--failures", path, "-t", "1");
            Assert.True(r.ExitCode == 0, r.StdErr);
            Assert.Equal(0, System.Text.Json.JsonDocument.Parse(r.StdOut).RootElement.GetProperty("pass_at_1").GetDouble());
            var lines = File.ReadAllLines(path);
            Assert.Equal(6, lines.Length);
            foreach (var line in lines)
            {
                var o = System.Text.Json.JsonDocument.Parse(line).RootElement;
                Assert.Equal("multiplication", o.GetProperty("task").GetString());
                Assert.Equal("malformed", o.GetProperty("grade").GetString());
                Assert.Contains("by columns", o.GetProperty("reference").GetString());
                Assert.DoesNotContain("</think>", o.GetProperty("completion").GetString());
                Assert.NotEmpty(o.GetProperty("completion").GetString()!);
            }
        }
        finally { File.Delete(path); }
    }

    [Fact]
    public void EvalFailuresPathThatCannotBeWrittenIsAClearError()
    {
        var r = CliRunner.Run("eval", "--n", "500", "--failures", "/nonexistent-dir/failures.jsonl", "-t", "1");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("nonexistent-dir", r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr); // one line, no stack trace
        Assert.DoesNotContain("pass@1", r.StdOut); // failed before evaluating
    }

    [Fact]
    public void EmbeddedModelCacheNamesFollowTheBytesNotTheSize()
    {
        // a retrained model has the same shape and size as the old one; the cache must not hand back the old file
        string dir = Path.Combine(Path.GetTempPath(), $"sputnik-cache-{Guid.NewGuid():N}");
        try
        {
            byte[] oldModel = [1, 2, 3, 4], newModel = [1, 2, 3, 5];
            string a = Sputnik.Cli.DefaultModel.ExtractTo(new MemoryStream(oldModel), dir);
            string b = Sputnik.Cli.DefaultModel.ExtractTo(new MemoryStream(newModel), dir);
            Assert.NotEqual(a, b);
            Assert.Equal(Sputnik.Cli.DefaultModel.FileName, Path.GetFileName(b)); // the server names the model after its file
            Assert.Equal(oldModel, File.ReadAllBytes(a));
            Assert.Equal(newModel, File.ReadAllBytes(b));
            Assert.Equal(b, Sputnik.Cli.DefaultModel.ExtractTo(new MemoryStream(newModel), dir)); // found again, not rewritten
            Assert.Empty(Directory.GetFiles(dir, "*.tmp", SearchOption.AllDirectories));
        }
        finally { if (Directory.Exists(dir)) Directory.Delete(dir, true); }
    }
}
