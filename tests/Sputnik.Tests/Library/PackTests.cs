using Xunit;

namespace Sputnik.Tests.Library;

/// <summary>
/// `dotnet pack` makes the library and the tool packages, and the tool installs and runs. Packs from a copy of the
/// sources in a temp folder so its obj/bin never collide with the build under test.
/// </summary>
public sealed class PackTests
{
    [Fact]
    public void PackedToolInstallsAndPrintsItsVersion()
    {
        string version = System.Text.RegularExpressions.Regex.Match(
            File.ReadAllText(Path.Combine(Fixtures.RepoRoot, "Directory.Build.props")), "<Version>([^<]+)</Version>").Groups[1].Value;
        Assert.NotEmpty(version);
        string temp = Path.Combine(Path.GetTempPath(), "sputnik-pack-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            string src = Path.Combine(temp, "src");
            foreach (string f in new[] { "Directory.Build.props", "Directory.Packages.props", "global.json", "README.md" })
            {
                Directory.CreateDirectory(src);
                File.Copy(Path.Combine(Fixtures.RepoRoot, f), Path.Combine(src, f));
            }
            foreach (string project in new[] { "Sputnik", "Sputnik.Server", "Sputnik.Cli" })
                CopySources(Path.Combine(Fixtures.RepoRoot, "src", project), Path.Combine(src, "src", project));

            File.WriteAllText(Path.Combine(src, "Pack.slnx"), """
                <Solution>
                  <Project Path="src/Sputnik/Sputnik.csproj" />
                  <Project Path="src/Sputnik.Server/Sputnik.Server.csproj" />
                  <Project Path="src/Sputnik.Cli/Sputnik.Cli.csproj" />
                </Solution>
                """);
            string nupkg = Path.Combine(temp, "nupkg");
            var pack = ProcessRunner.Info("dotnet", ["pack", Path.Combine(src, "Pack.slnx"), "-c", "Release", "-o", nupkg,
                "-p:EnableSourceControlManagerQueries=false", "-p:ContinuousIntegrationBuild=false", "--nologo", "-v", "q"], src);
            pack.Environment["CI"] = "false"; // no .git in the copy for Source Link to read
            var packed = ProcessRunner.Run(pack, TimeSpan.FromMinutes(5));
            Assert.True(packed.ExitCode == 0, packed.ToString());
            Assert.True(File.Exists(Path.Combine(nupkg, $"Sputnik.{version}.nupkg")), "the library package");
            Assert.True(File.Exists(Path.Combine(nupkg, $"Sputnik.Cli.{version}.nupkg")));

            string tools = Path.Combine(temp, "tools");
            // Only the fresh packages: a same-named package on a public feed must not win.
            string config = Path.Combine(temp, "nuget.config");
            File.WriteAllText(config, $"""
                <configuration><packageSources><clear /><add key="local" value="{nupkg}" /></packageSources></configuration>
                """);
            var install = ProcessRunner.Run("dotnet", TimeSpan.FromMinutes(2), "tool", "install", "--tool-path", tools, "--configfile", config, "--version", version, "Sputnik.Cli");
            Assert.True(install.ExitCode == 0, install.ToString());
            string exe = Path.Combine(tools, OperatingSystem.IsWindows() ? "sputnik.exe" : "sputnik");
            var printed = ProcessRunner.Run(exe, TimeSpan.FromMinutes(1), "--version");
            Assert.True(printed.ExitCode == 0, printed.ToString());
            Assert.StartsWith(version, printed.StdOut.Trim());
        }
        finally
        {
            try { Directory.Delete(temp, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static void CopySources(string from, string to)
    {
        foreach (string file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            string rel = Path.GetRelativePath(from, file);
            string first = rel.Split(Path.DirectorySeparatorChar)[0];
            if (first is "bin" or "obj") continue;
            string dest = Path.Combine(to, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(dest)!);
            File.Copy(file, dest);
        }
    }
}
