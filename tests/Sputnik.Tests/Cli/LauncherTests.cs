using System.Diagnostics;
using Xunit;

namespace Sputnik.Tests.Cli;

/// <summary>
/// The ./sputnik launcher's change check, run on a copy of the launcher in a scratch tree whose out/cli points at the
/// CLI the tests built: build output under bin/ and obj/ (which `dotnet test` rewrites) must not trigger a rebuild,
/// a changed source file must.
/// </summary>
public sealed class LauncherTests
{
    private static (int Code, string Err) Launch(string root, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(Path.Combine(root, "sputnik"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        string err = p.StandardError.ReadToEnd();
        Assert.True(p.WaitForExit(120_000), "launcher did not finish");
        _ = stdout.Result;
        return (p.ExitCode, err);
    }

    [Fact]
    public void Build_output_does_not_trigger_a_rebuild_but_a_source_change_does()
    {
        if (OperatingSystem.IsWindows()) Assert.Skip("the launcher is a bash script");
        var root = Directory.CreateTempSubdirectory("sputnik-launcher-").FullName;
        try
        {
            File.Copy(Path.Combine(Fixtures.RepoRoot, "sputnik"), Path.Combine(root, "sputnik"));
            foreach (var f in new[] { "Directory.Build.props", "Directory.Packages.props" })
                File.Copy(Path.Combine(Fixtures.RepoRoot, f), Path.Combine(root, f));
            Directory.CreateDirectory(Path.Combine(root, "out"));
            Directory.CreateSymbolicLink(Path.Combine(root, "out", "cli"), AppContext.BaseDirectory.TrimEnd('/'));
            string project = Path.Combine(root, "src", "Sputnik.Cli");
            Directory.CreateDirectory(Path.Combine(project, "obj", "Debug"));
            Directory.CreateDirectory(Path.Combine(project, "bin", "Debug"));
            Directory.CreateDirectory(Path.Combine(root, "models"));
            string source = Path.Combine(project, "Program.cs");
            File.WriteAllText(source, "// source\n");
            var old = DateTime.UtcNow.AddYears(-1);
            File.SetLastWriteTimeUtc(source, old);
            foreach (var f in new[] { "Directory.Build.props", "Directory.Packages.props" }) File.SetLastWriteTimeUtc(Path.Combine(root, f), old);

            // What `dotnet test` leaves behind: generated sources and fresh binaries, newer than the launcher's dll.
            File.WriteAllText(Path.Combine(project, "obj", "Debug", "Sputnik.Cli.AssemblyInfo.cs"), "// generated\n");
            File.WriteAllText(Path.Combine(project, "bin", "Debug", "Generated.cs"), "// generated\n");
            var (code, err) = Launch(root, "--version");
            Assert.True(code == 0, err);
            Assert.DoesNotContain("building", err);

            File.SetLastWriteTimeUtc(source, DateTime.UtcNow.AddMinutes(1));
            (code, err) = Launch(root, "--version");
            Assert.Contains("sputnik: building", err); // the scratch tree has no project, so the build itself fails
            Assert.Equal(1, code);
        }
        finally
        {
            string link = Path.Combine(root, "out", "cli");
            if (new FileInfo(link).LinkTarget != null) File.Delete(link); // the link only, never the test binaries
            Directory.Delete(root, recursive: true);
        }
    }
}
