using System.Diagnostics;
using System.Text;

namespace Sputnik.Tests.Library;

/// <summary>Runs a child process with a time limit and collects its output.</summary>
internal static class ProcessRunner
{
    public sealed record Result(int ExitCode, string StdOut, string StdErr)
    {
        public override string ToString() => $"exit {ExitCode}\nstdout:\n{StdOut}\nstderr:\n{StdErr}";
    }

    public static ProcessStartInfo Info(string file, IEnumerable<string> args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
            WorkingDirectory = workingDirectory ?? Fixtures.RepoRoot,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        return psi;
    }

    public static Result Run(ProcessStartInfo psi, TimeSpan timeout)
    {
        using var p = Process.Start(psi)!;
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout))
        {
            p.Kill(entireProcessTree: true);
            throw new TimeoutException($"{psi.FileName} {string.Join(' ', psi.ArgumentList)} did not finish in {timeout.TotalSeconds} s");
        }
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    public static Result Run(string file, TimeSpan timeout, params string[] args) => Run(Info(file, args), timeout);

    /// <summary>
    /// `dotnet run --project samples/NAME -- ARGS` as the README says, started in <paramref name="workingDirectory"/>
    /// (default: the repository root), with --no-build and the tests' configuration: the tests built the samples.
    /// </summary>
    public static ProcessStartInfo DotnetRunSample(string name, string? workingDirectory, params string[] args) =>
        Info("dotnet", ["run", "--project", Path.Combine(Fixtures.RepoRoot, "samples", name), "--no-build", "-c", TestConfiguration, "--", .. args],
            workingDirectory);

    // The tests run from tests/Sputnik.Tests/bin/CONFIG/net10.0/.
    private static string TestConfiguration => new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar)).Parent!.Name;

    /// <summary>The build output of a sample (built with the tests, same configuration).</summary>
    public static string SampleDll(string name)
    {
        var tfmDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string config = tfmDir.Parent!.Name;
        string dll = Path.Combine(Fixtures.RepoRoot, "samples", name, "bin", config, tfmDir.Name, name + ".dll");
        if (!File.Exists(dll)) throw new FileNotFoundException($"sample not built: {dll} (build the solution or the test project)");
        return dll;
    }
}
