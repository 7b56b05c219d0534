using Sputnik.Cli;
using Xunit;

namespace Sputnik.Tests.Tools;

/// <summary>Tests in this collection swap Console.Out/Error, so they never run in parallel with each other.</summary>
[CollectionDefinition("Console", DisableParallelization = true)]
public sealed class ConsoleCollection;

/// <summary>Runs the `sputnik` CLI in-process and captures what it prints.</summary>
public static class CliHarness
{
    private static readonly Lock Gate = new();

    public sealed record Result(int ExitCode, string Out, string Err)
    {
        public string[] ErrLines => Err.Split('\n', StringSplitOptions.RemoveEmptyEntries);
    }

    public static Result Run(params string[] args)
    {
        lock (Gate)
        {
            var oldOut = Console.Out;
            var oldErr = Console.Error;
            var o = new StringWriter();
            var e = new StringWriter();
            Console.SetOut(o);
            Console.SetError(e);
            ProgressBar.Enabled = false;
            try
            {
                int code = SputnikCli.Run(args);
                return new Result(code, o.ToString(), e.ToString());
            }
            finally
            {
                Console.SetOut(oldOut);
                Console.SetError(oldErr);
            }
        }
    }

    /// <summary>Runs and asserts success, returning stdout.</summary>
    public static string Ok(params string[] args)
    {
        var r = Run(args);
        Assert.True(r.ExitCode == 0, $"sputnik {string.Join(' ', args)} failed ({r.ExitCode}): {r.Err}");
        return r.Out;
    }
}

/// <summary>A temporary folder deleted after the test class.</summary>
public sealed class TempDir : IDisposable
{
    public string Path { get; } = Directory.CreateTempSubdirectory("sputnik-tools-").FullName;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { }
    }
}
