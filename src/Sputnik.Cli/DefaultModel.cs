using System.Reflection;

namespace Sputnik.Cli;

/// <summary>
/// Where the model used without -m comes from, in order:
/// 1. SPUTNIK_MODEL, when set;
/// 2. models/sputnik-r1-tiny.gguf in the repository that holds the running binary (the ./sputnik launcher builds
///    into out/cli under the repo root, so walking up from the binary finds it);
/// 3. the same file embedded in this assembly (so an installed `sputnik` tool works on a fresh machine), extracted
///    once to ~/.cache/sputnik/HASH/sputnik-r1-tiny.gguf, in a folder named by a hash of its bytes (a retrained model
///    has the same size as the one before it, so a size-named copy from an older build would be used in its place) and
///    under its own file name (the server names a model after its file), written to a temp file and renamed so a
///    concurrent first run never sees a half-written model.
/// </summary>
internal static class DefaultModel
{
    public const string FileName = "sputnik-r1-tiny.gguf";

    public static string? Path()
    {
        if (Environment.GetEnvironmentVariable("SPUTNIK_MODEL") is { Length: > 0 } p) return p;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            string candidate = System.IO.Path.Combine(dir.FullName, "models", FileName);
            if (File.Exists(candidate)) return candidate;
        }
        return Extract();
    }

    private static string? Extract()
    {
        using var res = Assembly.GetExecutingAssembly().GetManifestResourceStream(FileName);
        if (res == null) return null;
        string cacheRoot = Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } x ? x
            : System.IO.Path.Combine(Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } h ? h
                : Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return ExtractTo(res, System.IO.Path.Combine(cacheRoot, "sputnik"));
    }

    /// <summary>Copies the model into a content-hashed folder under dir unless it is already there; returns its path.</summary>
    internal static string ExtractTo(Stream model, string dir)
    {
        var bytes = new byte[model.Length];
        model.ReadExactly(bytes);
        string hash = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(bytes))[..16];
        string folder = System.IO.Path.Combine(dir, hash);
        string path = System.IO.Path.Combine(folder, FileName);
        if (File.Exists(path) && new FileInfo(path).Length == bytes.Length) return path;
        Directory.CreateDirectory(folder);
        string tmp = path + $".{Environment.ProcessId}.tmp";
        File.WriteAllBytes(tmp, bytes);
        File.Move(tmp, path, overwrite: true);
        return path;
    }
}
