namespace Sputnik.Tests;

/// <summary>Locates ../shared/fixtures (third-party test data kept outside the repo) and the repo root.</summary>
public static class Fixtures
{
    public static readonly string RepoRoot = FindRepoRoot();

    /// <summary>Absolute path of ../shared/fixtures beside the repository root.</summary>
    public static readonly string Root = Path.GetFullPath(Path.Combine(RepoRoot, "..", "shared", "fixtures"));

    public static string Model(string name) => Path.Combine(Root, "models", name);

    public static string Tokenizer(string name) => Path.Combine(Root, "tokenizers", name);

    /// <summary>Throws a clear message when the fixtures folder is missing, so the failure says why.</summary>
    public static string Require(string path)
    {
        if (!File.Exists(path))
            throw new FileNotFoundException($"test fixture missing: {path} (clone the repo with ../shared beside it)");
        return path;
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Sputnik.slnx"))) return dir.FullName;
        throw new InvalidOperationException("cannot find Sputnik.slnx above the test binaries");
    }
}
