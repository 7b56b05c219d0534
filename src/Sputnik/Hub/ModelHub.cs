using Sputnik.Gguf;

namespace Sputnik.Hub;

/// <summary>
/// Progress of a pull: one file (shard <paramref name="Index"/> of <paramref name="Count"/>), its bytes, and its blob
/// id (<paramref name="BlobId"/>: the SHA-256 of an LFS file, which names its blob in the cache).
/// </summary>
internal sealed record PullProgress(string File, int Index, int Count, long Done, long Total, string BlobId = "");

/// <summary>
/// A reference resolved to files in the cache: <c>Files</c> are their paths in the repository and <c>LocalPaths</c>
/// their snapshots/COMMIT/PATH entries, first shard first (what loaders open); <c>Downloaded</c> counts the bytes
/// this resolution fetched (0 when everything was cached).
/// </summary>
internal sealed record ResolvedModel(ModelReference Reference, string Endpoint, string Commit, IReadOnlyList<string> Files,
    IReadOnlyList<string> LocalPaths, long Downloaded)
{
    public string Path => LocalPaths[0];
}

/// <summary>
/// The one resolver from what a user typed after <c>-m</c> to a local GGUF: a path is used as it is; a hub reference
/// (see <see cref="ModelReference"/>) is looked up in the cache and pulled first when it is not there. Offline
/// (HF_HUB_OFFLINE, or a hub that cannot be reached) it uses what the cache has and says so once.
/// </summary>
internal sealed class ModelHub(HubSettings settings)
{
    private bool _toldOffline;

    public HubSettings Settings => settings;

    public HubCache Cache { get; } = new(settings.CacheRoot);

    /// <summary>Receives one-line notices (offline, waiting for a lock) meant for the user.</summary>
    public Action<string>? Notice { get; init; }

    /// <summary>Receives download progress (several times a second at most is up to the receiver).</summary>
    public Action<PullProgress>? Progress { get; init; }

    /// <summary>The local file for a path or reference: a path unchanged, a reference's first file (pulled if needed).</summary>
    public async Task<string> ResolvePathAsync(string pathOrReference, CancellationToken ct = default) =>
        ModelReference.TryParse(pathOrReference, out var reference)
            ? (await ResolveAsync(reference!, refresh: false, ct).ConfigureAwait(false)).Path
            : pathOrReference;

    /// <summary>
    /// Resolves a reference. Without <paramref name="refresh"/> a cached copy is used with no network access when the
    /// cache can answer exactly (the quant or file named, or Q4_K_M for a bare repo); with it (`sputnik pull`) the
    /// hub is asked for the revision's current commit and anything missing is downloaded.
    /// </summary>
    public async Task<ResolvedModel> ResolveAsync(ModelReference reference, bool refresh, CancellationToken ct = default)
    {
        if (!refresh && FindCached(reference, exact: true) is { } hit) return Used(hit);
        if (settings.Offline)
            return FromCacheOffline(reference, "HF_HUB_OFFLINE is set");
        try
        {
            return Used(await PullAsync(reference, ct).ConfigureAwait(false));
        }
        catch (HubException e) when (e.Kind == HubErrorKind.Offline)
        {
            return FromCacheOffline(reference, e.Message);
        }
    }

    private ResolvedModel FromCacheOffline(ModelReference reference, string why)
    {
        var cached = FindCached(reference, exact: false)
            ?? throw new HubException(HubErrorKind.Offline, $"{why}, and {reference} is not in the cache ({Cache.Root})");
        if (!_toldOffline) Notice?.Invoke($"offline ({why}): using the cached {cached.Reference.Repo}/{cached.Files[0]} (commit {cached.Commit[..12]})");
        _toldOffline = true;
        return Used(cached);
    }

    private static ResolvedModel Used(ResolvedModel model)
    {
        foreach (string p in model.LocalPaths) HubCache.Touch(p);
        return model;
    }

    /// <summary>
    /// The cached files a reference names, or null. <paramref name="exact"/> accepts only an answer the hub would
    /// give too; otherwise (offline) the cache's best match by the same rules, falling back to the newest snapshot
    /// when the revision was never recorded.
    /// </summary>
    public ResolvedModel? FindCached(ModelReference reference, bool exact)
    {
        string repo = reference.Repo;
        string? commit = Cache.Commit(repo, reference.RevisionOrDefault);
        if (commit == null && !exact && reference.Revision == null) commit = Cache.Commits(repo).FirstOrDefault();
        if (commit == null) return null;
        IReadOnlyList<string> files;
        try
        {
            files = GgufSelection.Pick(Cache.Files(repo, commit), reference, "the cache");
        }
        catch (HubException)
        {
            return null;
        }
        if (exact && reference.Quant == null && reference.FilePath == null && !GgufSelection.Matches(files[0], GgufSelection.DefaultQuants[0]))
            return null; // the hub may have a Q4_K_M this cache lacks
        var paths = files.Select(f => Cache.Find(repo, commit, f)).ToList();
        if (paths.Any(p => p == null)) return null;
        return new ResolvedModel(reference, settings.Endpoint, commit, files, paths!, 0);
    }

    /// <summary>Asks the hub for the revision's commit and files, then downloads whatever the cache lacks.</summary>
    public async Task<ResolvedModel> PullAsync(ModelReference reference, CancellationToken ct = default)
    {
        using var api = new HubApi(settings);
        string commit = await api.CommitAsync(reference, ct).ConfigureAwait(false);
        var listing = await api.ListAsync(reference, commit, ct).ConfigureAwait(false);
        var chosen = GgufSelection.Pick(listing.Select(f => f.Path).ToList(), reference, reference.Repo);
        var files = chosen.Select(p => listing.First(f => f.Path == p)).ToList();
        CheckDiskSpace(reference, files);

        var downloader = new BlobDownloader(api, Cache, settings);
        var local = new List<string>(files.Count);
        for (int i = 0; i < files.Count; i++)
        {
            var file = files[i];
            int index = i;
            long done = 0;
            await downloader.FetchAsync(reference, commit, file, bytes =>
            {
                long now = Interlocked.Add(ref done, bytes);
                Progress?.Invoke(new PullProgress(file.Path, index, files.Count, Math.Min(now, file.Size), file.Size, file.BlobId));
            }, Notice, ct).ConfigureAwait(false);
            local.Add(Cache.Find(reference.Repo, commit, file.Path) is { } existing && HubCache.Target(existing).Name == file.BlobId
                ? existing
                : Cache.Link(reference.Repo, commit, file.Path, file.BlobId));
        }
        Cache.WriteRef(reference.Repo, reference.RevisionOrDefault, commit);
        return new ResolvedModel(reference, settings.Endpoint, commit, chosen, local, downloader.Transferred);
    }

    /// <summary>Refuses to start when the bytes still to fetch (less any partial already there) exceed the free space.</summary>
    private void CheckDiskSpace(ModelReference reference, IEnumerable<RepoFile> files)
    {
        long needed = 0;
        foreach (var f in files)
        {
            string blob = Cache.BlobPath(reference.Repo, f.BlobId);
            if (File.Exists(blob)) continue;
            long partial = File.Exists(blob + ".incomplete") ? new FileInfo(blob + ".incomplete").Length : 0;
            needed += Math.Max(0, f.Size - partial);
        }
        if (needed == 0) return;
        Directory.CreateDirectory(Cache.RepoDir(reference.Repo));
        long free;
        try
        {
            free = new DriveInfo(Cache.RepoDir(reference.Repo)).AvailableFreeSpace;
        }
        catch (Exception e) when (e is IOException or ArgumentException or UnauthorizedAccessException)
        {
            return; // cannot tell: the write itself will say if the disk fills
        }
        if (free < needed)
            throw new HubException(HubErrorKind.DiskFull,
                $"not enough disk space for {reference}: {Size(needed)} to download, {Size(free)} free in {Cache.Root} (set HF_HUB_CACHE to use another disk)");
    }

    internal static string Size(long bytes) => bytes >= 1L << 30 ? $"{bytes / (double)(1L << 30):F2} GiB" : $"{bytes / (double)(1 << 20):F1} MiB";

    /// <summary>One cached model (a file, or a split set listed by its first shard).</summary>
    internal sealed record CachedModel(string Reference, string Repo, string Commit, string File, IReadOnlyList<string> LocalPaths,
        long Size, string Quant, string? Architecture, long? Parameters, DateTime LastUsedUtc);

    /// <summary>Every GGUF model in the cache, described from its header (architecture, parameters) and blobs.</summary>
    public IReadOnlyList<CachedModel> List()
    {
        var models = new List<CachedModel>();
        foreach (string repo in Cache.Repos())
        {
            var refs = Cache.Refs(repo);
            foreach (string commit in Cache.Commits(repo))
            {
                var files = Cache.Files(repo, commit).Where(GgufSelection.IsModelGguf).ToList();
                foreach (string file in files.Where(f => GgufSelection.Split(f) is not { No: > 1 }))
                {
                    IReadOnlyList<string> set;
                    try
                    {
                        set = GgufSelection.Pick(files, new ModelReference("x", "y", null, file, null), "the cache");
                    }
                    catch (HubException)
                    {
                        continue; // an incomplete split set is not a usable model
                    }
                    var paths = set.Select(f => Cache.SnapshotPath(repo, commit, f)).ToList();
                    var blobs = paths.Select(HubCache.Target).ToList();
                    var (arch, parameters) = Describe(paths);
                    models.Add(new CachedModel(ReferenceFor(repo, commit, file, files, refs), repo, commit, file, paths,
                        blobs.Sum(b => b.Length), GgufSelection.QuantOf(file), arch, parameters, blobs.Max(b => b.LastAccessTimeUtc)));
                }
            }
        }
        return models;
    }

    /// <summary>The shortest reference that names this file: owner/repo:QUANT when the quant picks it, else its path.</summary>
    private static string ReferenceFor(string repo, string commit, string file, IReadOnlyCollection<string> files, IReadOnlyDictionary<string, string> refs)
    {
        string quant = GgufSelection.QuantOf(file);
        string at = refs.TryGetValue(ModelReference.DefaultRevision, out var main) && main == commit ? ""
            : refs.FirstOrDefault(r => r.Value == commit).Key is { } name ? "@" + name : "@" + commit;
        string[] parts = repo.Split('/');
        try
        {
            var byQuant = GgufSelection.Pick(files, new ModelReference(parts[0], parts[1], quant, null, null), repo);
            if (byQuant[0] == file) return $"{repo}:{quant}{at}";
        }
        catch (HubException) { }
        return $"{repo}/{file}{at}";
    }

    private static (string? Arch, long? Parameters) Describe(IReadOnlyList<string> shards)
    {
        try
        {
            string? arch = null;
            long parameters = 0;
            foreach (string shard in shards)
            {
                using var file = GgufFile.Open(shard);
                arch ??= file.Architecture;
                parameters += file.Tensors.Sum(t => t.ElementCount);
            }
            return (arch, parameters);
        }
        catch (Exception e) when (e is GgufFormatException or IOException or UnauthorizedAccessException)
        {
            return (null, null);
        }
    }

    /// <summary>
    /// Deletes a cached model: the files a quant or path names (their blobs too, unless another snapshot uses them),
    /// or the whole repository for a bare owner/repo. Returns what was removed; throws when nothing matched.
    /// </summary>
    public IReadOnlyList<string> Remove(ModelReference reference)
    {
        string repo = reference.Repo;
        if (!Directory.Exists(Cache.RepoDir(repo))) throw new HubException(HubErrorKind.NotFound, $"{repo} is not in the cache ({Cache.Root})");
        if (reference.Quant == null && reference.FilePath == null && reference.Revision == null)
        {
            Directory.Delete(Cache.RepoDir(repo), recursive: true);
            return [Cache.RepoDir(repo)];
        }
        var cached = FindCached(reference, exact: false)
            ?? throw new HubException(HubErrorKind.NotFound, $"{reference} is not in the cache ({Cache.Root})");
        Cache.Remove(repo, cached.Commit, cached.Files);
        return cached.LocalPaths;
    }
}
