using Xunit;

namespace Sputnik.Tests;

/// <summary>
/// Locates ../shared/fixtures (third-party test data kept outside the repo: llama.cpp's tokenizer vectors, llama2.c's
/// stories260K model) and the repo root. A test that needs a missing fixture is skipped with one line saying which
/// file and how to get it; with CI=true it fails instead, so a CI machine without fixtures cannot pass by skipping.
/// </summary>
public static class Fixtures
{
    public static readonly string RepoRoot = FindRepoRoot();

    /// <summary>Absolute path of ../shared/fixtures beside the repository root.</summary>
    public static readonly string Root = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "fixtures"));

    /// <summary>True when the CI variable says this is a CI run (CI=true or CI=1, as CI services set it).</summary>
    public static bool IsCi => Environment.GetEnvironmentVariable("CI") is { } ci
        && (ci.Equals("true", StringComparison.OrdinalIgnoreCase) || ci == "1");

    public static string Model(string name) => Path.Combine(Root, "models", name);

    public static string Tokenizer(string name) => Path.Combine(Root, "tokenizers", name);

    /// <summary>Returns <paramref name="path"/> when the file exists; otherwise skips the test (fails it under CI=true).</summary>
    public static string Require(string path)
    {
        if (File.Exists(path)) return path;
        Missing(path);
        return path;
    }

    /// <summary>As <see cref="Require"/>, for a fixture folder a test enumerates.</summary>
    public static string RequireDirectory(string path)
    {
        if (Directory.Exists(path)) return path;
        Missing(path);
        return path;
    }

    private static void Missing(string path)
    {
        string message = $"test fixture missing: {path} (third-party test data; put the fixtures folder at {Root}, see README 'Test fixtures')";
        if (!IsCi) Assert.Skip(message);
        throw new FileNotFoundException($"{message}; CI=true requires every fixture", path);
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Sputnik.slnx"))) return dir.FullName;
        throw new InvalidOperationException("cannot find Sputnik.slnx above the test binaries");
    }
}
