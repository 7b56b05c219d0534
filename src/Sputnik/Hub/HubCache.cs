namespace Sputnik.Hub;

/// <summary>
/// The Hugging Face hub cache, laid out exactly as huggingface_hub lays it out so llama.cpp, the HF CLI and Sputnik
/// share one copy of every file:
/// <code>
/// ROOT/models--owner--repo/blobs/SHA256            the bytes (named by the LFS oid, or the git blob id of a small file)
/// ROOT/models--owner--repo/blobs/SHA256.incomplete a download in progress, always a prefix of the file (resumable)
/// ROOT/models--owner--repo/snapshots/COMMIT/PATH   a relative symlink to ../../blobs/SHA256 (a copy where links fail)
/// ROOT/models--owner--repo/refs/BRANCH             the commit the branch (or tag) pointed to when last fetched
/// ROOT/.locks/models--owner--repo/SHA256.lock      held while one process downloads that blob
/// </code>
/// </summary>
internal sealed class HubCache(string root)
{
    public string Root { get; } = root;

    /// <summary>$HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub.</summary>
    public static string DefaultRoot()
    {
        if ((Env("HF_HUB_CACHE") ?? Env("HUGGINGFACE_HUB_CACHE")) is { } hub) return hub;
        if (Env("HF_HOME") is { } home) return Path.Combine(home, "hub");
        string cache = Env("XDG_CACHE_HOME") ?? Path.Combine(Env("HOME") ?? Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache");
        return Path.Combine(cache, "huggingface", "hub");
    }

    private static string? Env(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

    private static string FolderName(string repo) => "models--" + repo.Replace("/", "--", StringComparison.Ordinal);

    public string RepoDir(string repo) => Path.Combine(Root, FolderName(repo));

    public string BlobPath(string repo, string oid) => Path.Combine(RepoDir(repo), "blobs", oid);

    public string LockPath(string repo, string oid) => Path.Combine(Root, ".locks", FolderName(repo), oid + ".lock");

    public string SnapshotDir(string repo, string commit) => Path.Combine(RepoDir(repo), "snapshots", commit);

    public string SnapshotPath(string repo, string commit, string path) => Path.Combine(SnapshotDir(repo, commit), path.Replace('/', Path.DirectorySeparatorChar));

    public static bool IsCommitHash(string revision) => revision.Length == 40 && revision.All(char.IsAsciiHexDigitLower);

    /// <summary>The commit <paramref name="revision"/> resolves to in the cache (a commit hash is itself), or null.</summary>
    public string? Commit(string repo, string revision)
    {
        if (IsCommitHash(revision)) return Directory.Exists(SnapshotDir(repo, revision)) ? revision : null;
        string refFile = Path.Combine(RepoDir(repo), "refs", revision.Replace('/', Path.DirectorySeparatorChar));
        if (!File.Exists(refFile)) return null;
        string commit = File.ReadAllText(refFile).Trim();
        return IsCommitHash(commit) ? commit : null;
    }

    /// <summary>Records that <paramref name="revision"/> is at <paramref name="commit"/> (a commit hash needs no ref).</summary>
    public void WriteRef(string repo, string revision, string commit)
    {
        if (revision == commit) return;
        string refFile = Path.Combine(RepoDir(repo), "refs", revision.Replace('/', Path.DirectorySeparatorChar));
        Directory.CreateDirectory(Path.GetDirectoryName(refFile)!);
        string tmp = refFile + $".{Environment.ProcessId}.tmp";
        File.WriteAllText(tmp, commit);
        File.Move(tmp, refFile, overwrite: true);
    }

    /// <summary>Every ref of the repository and the commit it names.</summary>
    public IReadOnlyDictionary<string, string> Refs(string repo)
    {
        string dir = Path.Combine(RepoDir(repo), "refs");
        var refs = new Dictionary<string, string>(StringComparer.Ordinal);
        if (!Directory.Exists(dir)) return refs;
        foreach (string f in Directory.EnumerateFiles(dir, "*", SearchOption.AllDirectories))
        {
            string commit = File.ReadAllText(f).Trim();
            if (IsCommitHash(commit)) refs[Path.GetRelativePath(dir, f).Replace(Path.DirectorySeparatorChar, '/')] = commit;
        }
        return refs;
    }

    /// <summary>Puts the verified blob at snapshots/COMMIT/PATH: a relative symlink, or a copy where links are not allowed.</summary>
    public string Link(string repo, string commit, string path, string oid)
    {
        string link = SnapshotPath(repo, commit, path);
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        if (File.Exists(link) || new FileInfo(link).LinkTarget != null) File.Delete(link);
        string target = string.Concat(Enumerable.Repeat("../", 2 + path.Count(c => c == '/'))) + "blobs/" + oid;
        try
        {
            File.CreateSymbolicLink(link, target.Replace('/', Path.DirectorySeparatorChar));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            File.Copy(BlobPath(repo, oid), link, overwrite: true);
        }
        return link;
    }

    /// <summary>The local file behind snapshots/COMMIT/PATH when it is there and its blob is too; else null.</summary>
    public string? Find(string repo, string commit, string path)
    {
        string link = SnapshotPath(repo, commit, path);
        var info = new FileInfo(link);
        if (info.LinkTarget == null) return info.Exists ? link : null;
        return info.ResolveLinkTarget(returnFinalTarget: true) is { Exists: true } ? link : null;
    }

    /// <summary>The files of a snapshot, as '/'-separated paths inside the repository.</summary>
    public IReadOnlyList<string> Files(string repo, string commit)
    {
        string dir = SnapshotDir(repo, commit);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(dir, f).Replace(Path.DirectorySeparatorChar, '/'))
            .Where(p => Find(repo, commit, p) != null)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Repositories in the cache ("owner/repo").</summary>
    public IEnumerable<string> Repos()
    {
        if (!Directory.Exists(Root)) yield break;
        foreach (string dir in Directory.EnumerateDirectories(Root, "models--*").Order(StringComparer.Ordinal))
        {
            string name = Path.GetFileName(dir)["models--".Length..];
            int sep = name.IndexOf("--", StringComparison.Ordinal);
            if (sep > 0) yield return name[..sep] + "/" + name[(sep + 2)..];
        }
    }

    /// <summary>Commits with a snapshot folder, newest first.</summary>
    public IEnumerable<string> Commits(string repo)
    {
        string dir = Path.Combine(RepoDir(repo), "snapshots");
        if (!Directory.Exists(dir)) return [];
        return new DirectoryInfo(dir).EnumerateDirectories().Where(d => IsCommitHash(d.Name))
            .OrderByDescending(d => d.LastWriteTimeUtc).Select(d => d.Name).ToList();
    }

    /// <summary>The real file behind a snapshot entry (its blob), for sizes and last-use times.</summary>
    public static FileInfo Target(string localPath)
    {
        var info = new FileInfo(localPath);
        return info.LinkTarget != null && info.ResolveLinkTarget(returnFinalTarget: true) is FileInfo t ? t : info;
    }

    /// <summary>
    /// Marks the file used now (its blob's access time, which `hf cache scan` also reads as "last accessed"); a
    /// read-only cache is left as it is.
    /// </summary>
    public static void Touch(string localPath)
    {
        try { File.SetLastAccessTimeUtc(Target(localPath).FullName, DateTime.UtcNow); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }

    /// <summary>
    /// Deletes the snapshot entries of <paramref name="paths"/>, then blobs no snapshot points to any more, empty
    /// snapshots and the refs naming them, and the repository folder when nothing is left in it.
    /// </summary>
    public void Remove(string repo, string commit, IEnumerable<string> paths)
    {
        string snapshot = SnapshotDir(repo, commit);
        foreach (string p in paths)
        {
            string link = SnapshotPath(repo, commit, p);
            if (File.Exists(link) || new FileInfo(link).LinkTarget != null) File.Delete(link);
            for (var dir = Path.GetDirectoryName(link); dir != null && dir.Length > snapshot.Length && !Directory.EnumerateFileSystemEntries(dir).Any();
                 dir = Path.GetDirectoryName(dir))
                Directory.Delete(dir);
        }
        if (Directory.Exists(snapshot) && !Directory.EnumerateFileSystemEntries(snapshot).Any())
        {
            Directory.Delete(snapshot);
            foreach (var (name, c) in Refs(repo))
                if (c == commit) File.Delete(Path.Combine(RepoDir(repo), "refs", name.Replace('/', Path.DirectorySeparatorChar)));
        }
        var used = Commits(repo).SelectMany(c => Files(repo, c).Select(f => Target(SnapshotPath(repo, c, f)).FullName)).ToHashSet();
        string blobs = Path.Combine(RepoDir(repo), "blobs");
        if (Directory.Exists(blobs))
            foreach (string blob in Directory.EnumerateFiles(blobs))
                if (!blob.EndsWith(".incomplete", StringComparison.Ordinal) && !used.Contains(Path.GetFullPath(blob))) File.Delete(blob);
        if (!Commits(repo).Any()) Directory.Delete(RepoDir(repo), recursive: true);
    }
}
