using System.Security.Cryptography;
using Sputnik.Gguf;
using Sputnik.Hub;
using Xunit;

namespace Sputnik.Tests.Hub;

/// <summary>Pulls from the loopback stand-in hub through <see cref="ModelHub"/>: layout, faults, errors, offline use.</summary>
public sealed class HubDownloadTests : IAsyncLifetime
{
    private const string Repo = "test/tiny-GGUF";
    private StandInHub _hub = null!;
    private readonly string _cache = Directory.CreateTempSubdirectory("sputnik-hub-cache-").FullName;
    private readonly List<string> _notices = [];

    public async ValueTask InitializeAsync()
    {
        _hub = await StandInHub.StartAsync();
        _hub.AddRepo(Repo, [
            new("tiny-Q4_K_M.gguf", HubPayloads.Q4_K_M),
            new("tiny-Q8_0.gguf", HubPayloads.Q8_0),
            new("mmproj-tiny-f16.gguf", [1, 2, 3]),
            new("README.md", "# tiny\n"u8.ToArray()),
        ]);
    }

    public async ValueTask DisposeAsync()
    {
        await _hub.DisposeAsync();
        try { Directory.Delete(_cache, recursive: true); } catch (IOException) { }
    }

    private HubSettings Settings => new()
    {
        Endpoint = _hub.Endpoint,
        CacheRoot = _cache,
        RetryDelay = TimeSpan.FromMilliseconds(10),
        StallTimeout = TimeSpan.FromSeconds(1),
    };

    private ModelHub Hub(HubSettings? settings = null, Action<PullProgress>? progress = null) =>
        new(settings ?? Settings) { Notice = n => { lock (_notices) _notices.Add(n); }, Progress = progress };

    private static Task<ResolvedModel> Pull(ModelHub hub, string reference, CancellationToken ct = default) =>
        hub.ResolveAsync(ModelReference.Parse(reference), refresh: true, ct);

    private static string Sha(string path) => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path)));

    private string RepoDir => Path.Combine(_cache, "models--test--tiny-GGUF");

    [Fact]
    public async Task Pull_lays_out_blobs_snapshots_and_refs_like_huggingface_hub_and_the_model_loads()
    {
        var resolved = await Pull(Hub(), Repo);
        string commit = _hub.Commit(Repo);
        string sha = Convert.ToHexStringLower(SHA256.HashData(HubPayloads.Q4_K_M));
        Assert.Equal(["tiny-Q4_K_M.gguf"], resolved.Files); // the default quant; mmproj and README are never models
        Assert.Equal(commit, resolved.Commit);
        Assert.Equal(HubPayloads.Q4_K_M.Length, resolved.Downloaded);
        string link = Path.Combine(RepoDir, "snapshots", commit, "tiny-Q4_K_M.gguf");
        Assert.Equal(link, resolved.Path);
        Assert.Equal(Path.Combine("..", "..", "blobs", sha), new FileInfo(link).LinkTarget);
        Assert.Equal(sha, Sha(Path.Combine(RepoDir, "blobs", sha)));
        Assert.Equal(commit, File.ReadAllText(Path.Combine(RepoDir, "refs", "main")));
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoDir, "blobs"), "*.incomplete*"));
        Assert.Empty(_hub.CdnAuthorizations);
        using var model = SputnikModel.Load(resolved.Path, new ModelOptions { Threads = 1, ContextLength = 32 });
        Assert.Equal("qwen2", model.File.Architecture);
    }

    [Fact]
    public async Task A_second_pull_downloads_nothing_and_a_cached_reference_needs_no_network()
    {
        await Pull(Hub(), Repo + ":q8_0"); // quant tags match case-insensitively
        int requests = _hub.CdnRequests;
        var again = await Pull(Hub(), Repo + ":Q8_0");
        Assert.Equal(0, again.Downloaded);
        Assert.Equal(requests, _hub.CdnRequests);

        // Resolving (not pulling) a cached reference works with the hub gone.
        var offline = Hub(Settings with { Endpoint = "http://127.0.0.1:1" });
        var cached = await offline.ResolveAsync(ModelReference.Parse(Repo + ":Q8_0"), refresh: false);
        Assert.Equal("tiny-Q8_0.gguf", cached.Files[0]);
        Assert.Empty(_notices);
    }

    [Fact]
    public async Task A_connection_dropped_mid_file_is_resumed_with_a_range_request()
    {
        var file = _hub.File(Repo, "tiny-Q8_0.gguf");
        file.DropTimes = 1;
        file.DropAfter = file.Bytes.Length / 2;
        var resolved = await Pull(Hub(), Repo + ":Q8_0");
        Assert.Equal(file.Sha256, Sha(resolved.Path));
        // One resume, from wherever the received prefix ended (bytes in flight when the connection died may be lost).
        string resume = Assert.Single(_hub.Ranges);
        long from = long.Parse(resume["bytes=".Length..^1]);
        Assert.InRange(from, 1, file.DropAfter);
        Assert.True(_hub.BytesServed < 2L * file.Bytes.Length, "the resume fetched only what was missing");
    }

    [Fact]
    public async Task A_503_is_retried_with_backoff_then_succeeds()
    {
        var file = _hub.File(Repo, "tiny-Q8_0.gguf");
        file.FailTimes = 2;
        var resolved = await Pull(Hub(), Repo + ":Q8_0");
        Assert.Equal(file.Sha256, Sha(resolved.Path));
        Assert.Equal(3, _hub.CdnRequests);
    }

    [Fact]
    public async Task Endless_503s_fail_with_one_line_after_the_tries()
    {
        _hub.File(Repo, "tiny-Q8_0.gguf").FailTimes = 100;
        var e = await Assert.ThrowsAsync<HubException>(() => Pull(Hub(Settings with { MaxAttempts = 3 }), Repo + ":Q8_0"));
        Assert.Contains("failed 3 times", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public async Task A_stalled_transfer_is_dropped_and_resumed()
    {
        var file = _hub.File(Repo, "tiny-Q8_0.gguf");
        file.StallTimes = 1;
        var resolved = await Pull(Hub(), Repo + ":Q8_0");
        Assert.Equal(file.Sha256, Sha(resolved.Path));
    }

    [Fact]
    public async Task Bytes_that_do_not_match_the_oid_are_rejected_and_deleted()
    {
        var file = _hub.File(Repo, "tiny-Q8_0.gguf");
        file.Served = (byte[])file.Bytes.Clone();
        file.Served[^10] ^= 0xFF;
        var e = await Assert.ThrowsAsync<HubException>(() => Pull(Hub(), Repo + ":Q8_0"));
        Assert.Contains("do not match the hub's checksum", e.Message);
        Assert.Contains("deleted", e.Message);
        Assert.Empty(Directory.GetFiles(Path.Combine(RepoDir, "blobs")));
        Assert.False(Directory.Exists(Path.Combine(RepoDir, "snapshots", _hub.Commit(Repo))) &&
            Directory.EnumerateFileSystemEntries(Path.Combine(RepoDir, "snapshots", _hub.Commit(Repo))).Any());
    }

    [Fact]
    public async Task Cancelling_leaves_a_partial_that_the_next_pull_resumes()
    {
        var file = _hub.File(Repo, "tiny-Q8_0.gguf");
        using var cancel = new CancellationTokenSource();
        var hub = Hub(progress: p => { if (p.Done >= file.Bytes.Length / 3) cancel.Cancel(); });
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Pull(hub, Repo + ":Q8_0", cancel.Token));
        string partial = Path.Combine(RepoDir, "blobs", file.Sha256 + ".incomplete");
        long kept = new FileInfo(partial).Length;
        Assert.InRange(kept, 1, file.Bytes.Length - 1);
        Assert.Equal(file.Bytes.AsSpan(0, (int)kept).ToArray(), File.ReadAllBytes(partial));

        var resolved = await Pull(Hub(), Repo + ":Q8_0");
        Assert.Equal(file.Sha256, Sha(resolved.Path));
        Assert.Contains($"bytes={kept}-", _hub.Ranges);
        Assert.Equal(file.Bytes.Length - kept, resolved.Downloaded);
    }

    [Fact]
    public async Task Large_files_come_as_parallel_ranges_and_are_joined_in_order()
    {
        var file = _hub.File(Repo, "tiny-Q8_0.gguf");
        var resolved = await Pull(Hub(Settings with { ParallelThreshold = 1 << 20, Connections = 3 }), Repo + ":Q8_0");
        Assert.Equal(file.Sha256, Sha(resolved.Path));
        long n = file.Bytes.Length;
        string[] expected = [$"bytes=0-{n / 3 - 1}", $"bytes={n / 3}-{2 * n / 3 - 1}", $"bytes={2 * n / 3}-"]; // the last range runs to the end
        Assert.Equal(expected.Order(StringComparer.Ordinal), _hub.Ranges.Order(StringComparer.Ordinal));
        Assert.Single(Directory.GetFiles(Path.Combine(RepoDir, "blobs"))); // no part files left behind
    }

    [Fact]
    public async Task Interrupted_parallel_ranges_resume_each_range_or_fall_back_to_one()
    {
        var file = _hub.File(Repo, "tiny-Q8_0.gguf");
        var parallel = Settings with { ParallelThreshold = 1 << 20, Connections = 3 };
        for (int round = 0; round < 2; round++)
        {
            using var cancel = new CancellationTokenSource();
            var hub = Hub(parallel, p => { if (p.Done >= file.Bytes.Length / 2) cancel.Cancel(); });
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => Pull(hub, Repo + ":Q8_0", cancel.Token));
            Assert.NotEmpty(Directory.GetFiles(Path.Combine(RepoDir, "blobs"), "*.incomplete.part*"));
        }
        // Resumed with one connection: the prefix continues, and the parts of the 3-range runs are cleared away.
        string partial = Path.Combine(RepoDir, "blobs", file.Sha256 + ".incomplete");
        long prefix = File.Exists(partial) ? new FileInfo(partial).Length : 0;
        var resolved = await Pull(Hub(Settings), Repo + ":Q8_0");
        Assert.Equal(file.Sha256, Sha(resolved.Path));
        Assert.Equal(file.Bytes.Length - prefix, resolved.Downloaded);
        Assert.Single(Directory.GetFiles(Path.Combine(RepoDir, "blobs")));
    }

    [Fact]
    public async Task A_second_process_waits_for_the_lock_then_finds_the_blob_done()
    {
        var file = _hub.File(Repo, "tiny-Q8_0.gguf");
        string lockPath = Path.Combine(_cache, ".locks", "models--test--tiny-GGUF", file.Sha256 + ".lock");
        Directory.CreateDirectory(Path.GetDirectoryName(lockPath)!);
        Task<ResolvedModel> pull;
        using (new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None))
        {
            pull = Pull(Hub(), Repo + ":Q8_0");
            await Task.Delay(700);
            Assert.False(pull.IsCompleted);
            Assert.Equal(0, _hub.CdnRequests);
        }
        var resolved = await pull;
        Assert.Equal(file.Sha256, Sha(resolved.Path));
        Assert.Contains(_notices, n => n.Contains("waiting for another download", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_split_model_is_pulled_as_its_whole_set_first_shard_first()
    {
        var shards = HubPayloads.Split(HubPayloads.Q8_0, 3);
        _hub.AddRepo("test/split-GGUF", shards.Select((b, k) => new StandInHub.HubFile($"Q8_0/tiny-Q8_0-{k + 1:D5}-of-00003.gguf", b))
            .Append(new StandInHub.HubFile("tiny-Q4_0.gguf", HubPayloads.Q4_K_M)));
        var resolved = await Pull(Hub(), "test/split-GGUF:Q8_0");
        Assert.Equal(["Q8_0/tiny-Q8_0-00001-of-00003.gguf", "Q8_0/tiny-Q8_0-00002-of-00003.gguf", "Q8_0/tiny-Q8_0-00003-of-00003.gguf"], resolved.Files);
        Assert.EndsWith("tiny-Q8_0-00001-of-00003.gguf", resolved.Path);
        for (int k = 0; k < 3; k++)
        {
            Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(shards[k])), Sha(resolved.LocalPaths[k]));
            // A nested path links three levels up: snapshots/COMMIT/Q8_0/x -> ../../../blobs/SHA.
            Assert.StartsWith(Path.Combine("..", "..", "..", "blobs"), new FileInfo(resolved.LocalPaths[k]).LinkTarget);
        }
        // The set the first shard names is the whole model (whether this reader joins the shards is its own business).
        using var whole = GgufFile.Open(WriteTemp(HubPayloads.Q8_0));
        using var first = GgufFile.Open(resolved.Path);
        Assert.True(first.TryGetInt64("split.count", out long count) && count == 3);
        Assert.True(first.TryGetInt64("split.tensors.count", out long total) && total == whole.Tensors.Count);
        var again = await Pull(Hub(), "test/split-GGUF:Q8_0");
        Assert.Equal(0, again.Downloaded);
    }

    [Fact]
    public async Task A_split_model_pulled_from_the_hub_runs()
    {
        var shards = HubPayloads.Split(HubPayloads.Q8_0, 3);
        _hub.AddRepo("test/split-GGUF", shards.Select((b, k) => new StandInHub.HubFile($"tiny-Q8_0-{k + 1:D5}-of-00003.gguf", b)));
        var resolved = await Pull(Hub(), "test/split-GGUF");
        using (var first = GgufFile.Open(resolved.Path))
        {
            // The pull hands the loader the first shard; joining the shards is the GGUF reader's part (issue 17 item 6).
            if (first.TryGetInt64("split.tensors.count", out long total) && first.Tensors.Count < total)
                Assert.Skip("this GGUF reader does not join split shards yet; the pull itself is checked by A_split_model_is_pulled_as_its_whole_set_first_shard_first");
        }
        using var model = SputnikModel.Load(resolved.Path, new ModelOptions { Threads = 1, ContextLength = 32 });
        var logits = model.Model.Forward(model.CreateState(), [model.Tokenizer.BosId, 5, 17]).ToArray();
        Assert.All(logits, v => Assert.True(float.IsFinite(v)));
    }

    /// <summary>
    /// One file fetched over 1 and over 4 connections from the loopback hub, timed. Not a unit test (set
    /// SPUTNIK_HUB_MEASURE=1 to run it): loopback has no per-connection limit, so it shows the cost of the ranges
    /// (threads, joining the parts), not the gain a CDN that throttles each connection gives.
    /// </summary>
    [Fact]
    public async Task Measure_parallel_ranges_on_loopback()
    {
        if (Environment.GetEnvironmentVariable("SPUTNIK_HUB_MEASURE") != "1") Assert.Skip("a measurement: set SPUTNIK_HUB_MEASURE=1 to run it");
        var bytes = new byte[256 << 20];
        new Random(1).NextBytes(bytes);
        _hub.AddRepo("test/big-GGUF", [new("big-Q8_0.gguf", bytes)]);
        foreach (int connections in new[] { 1, 4, 1, 4 })
        {
            string cache = Path.Combine(_cache, $"c{connections}-{Guid.NewGuid():N}");
            var started = System.Diagnostics.Stopwatch.StartNew();
            var r = await Pull(Hub(Settings with { CacheRoot = cache, Connections = connections, ParallelThreshold = 1 }), "test/big-GGUF");
            double seconds = started.Elapsed.TotalSeconds;
            Assert.Equal(bytes.Length, new FileInfo(HubCache.Target(r.Path).FullName).Length);
            TestContext.Current.SendDiagnosticMessage($"{connections} connection(s): {bytes.Length / seconds / (1 << 20):F0} MiB/s ({seconds:F2} s incl. SHA-256)");
            Console.Error.WriteLine($"[hub-measure] {connections} connection(s): {bytes.Length / seconds / (1 << 20):F0} MiB/s ({seconds:F2} s incl. SHA-256)");
            Directory.Delete(cache, recursive: true);
        }
    }

    private string WriteTemp(byte[] bytes)
    {
        string path = Path.Combine(_cache, $"whole-{Guid.NewGuid():N}.gguf");
        File.WriteAllBytes(path, bytes);
        return path;
    }

    [Fact]
    public async Task Errors_are_one_clear_line_each()
    {
        async Task<string> Fails(string reference, HubErrorKind kind, HubSettings? settings = null)
        {
            var e = await Assert.ThrowsAsync<HubException>(() => Pull(Hub(settings), reference));
            Assert.Equal(kind, e.Kind);
            Assert.DoesNotContain('\n', e.Message);
            return e.Message;
        }
        Assert.Contains("not found", await Fails("test/missing", HubErrorKind.NotFound));
        Assert.Contains("no revision 'v9'", await Fails(Repo + "@v9", HubErrorKind.NotFound));
        Assert.Contains("has no file 'nope.gguf'", await Fails(Repo + "/nope.gguf", HubErrorKind.NotFound));
        string quants = await Fails(Repo + ":Q5_K_S", HubErrorKind.QuantNotFound);
        Assert.Contains("Q4_K_M, Q8_0", quants);

        _hub.AddRepo("test/no-gguf", [new("README.md", "x"u8.ToArray()), new("model.safetensors", [0])]);
        Assert.Contains("no GGUF", await Fails("test/no-gguf", HubErrorKind.NoGguf));

        _hub.AddRepo("test/private-GGUF", [new("p-Q8_0.gguf", HubPayloads.Q8_0)], token: "secret");
        Assert.Contains("HF_TOKEN", await Fails("test/private-GGUF", HubErrorKind.NotFound));
        Assert.Contains("HF_TOKEN", await Fails("test/private-GGUF", HubErrorKind.AccessDenied, Settings with { Token = "wrong" }));
        var ok = await Pull(Hub(Settings with { Token = "secret" }), "test/private-GGUF");
        Assert.Equal("p-Q8_0.gguf", ok.Files[0]);
        Assert.Empty(_hub.CdnAuthorizations); // the token went to the hub, not to the CDN it redirected to

        // A listing cannot name files outside the cache: such entries are ignored.
        _hub.AddRepo("test/evil-GGUF", [new("../../../evil-Q4_K_M.gguf", HubPayloads.Q8_0)]);
        Assert.Contains("no GGUF", await Fails("test/evil-GGUF", HubErrorKind.NoGguf));

        _hub.File(Repo, "tiny-Q8_0.gguf").ListedSize = 1L << 50;
        Assert.Contains("not enough disk space", await Fails(Repo + ":Q8_0", HubErrorKind.DiskFull));

        Assert.Contains("cannot reach", await Fails(Repo, HubErrorKind.Offline, Settings with { Endpoint = "http://127.0.0.1:1" }));
    }

    [Fact]
    public async Task Offline_the_cache_answers_and_says_so_once()
    {
        await Pull(Hub(), Repo + ":Q8_0");
        int requests = _hub.CdnRequests;
        var offline = Hub(Settings with { Offline = true });
        // Without a quant the hub would be asked (the cache has no Q4_K_M); offline the cache's best match is used.
        var a = await offline.ResolveAsync(ModelReference.Parse(Repo), refresh: false);
        var b = await offline.ResolveAsync(ModelReference.Parse(Repo), refresh: true);
        Assert.Equal("tiny-Q8_0.gguf", a.Files[0]);
        Assert.Equal(a.Path, b.Path);
        Assert.Single(_notices, n => n.StartsWith("offline (HF_HUB_OFFLINE is set)", StringComparison.Ordinal));
        Assert.Equal(requests, _hub.CdnRequests);

        var down = Hub(Settings with { Endpoint = "http://127.0.0.1:1" });
        var c = await down.ResolveAsync(ModelReference.Parse(Repo), refresh: true);
        Assert.Equal(a.Path, c.Path);
        Assert.Contains(_notices, n => n.StartsWith("offline (cannot reach", StringComparison.Ordinal));
        var e = await Assert.ThrowsAsync<HubException>(() => offline.ResolveAsync(ModelReference.Parse("test/other"), refresh: false));
        Assert.Contains("not in the cache", e.Message);
    }

    [Fact]
    public async Task Remove_deletes_the_files_and_blobs_no_snapshot_uses()
    {
        var hub = Hub();
        var q8 = await Pull(hub, Repo + ":Q8_0");
        var q4 = await Pull(hub, Repo + ":Q4_K_M");
        Assert.Equal(2, hub.List().Count);
        hub.Remove(ModelReference.Parse(Repo + ":Q8_0"));
        Assert.False(File.Exists(q8.Path));
        Assert.True(File.Exists(q4.Path));
        Assert.Single(Directory.GetFiles(Path.Combine(RepoDir, "blobs")));
        var listed = Assert.Single(hub.List());
        Assert.Equal(Repo + ":Q4_K_M", listed.Reference);
        Assert.Equal("qwen2", listed.Architecture);
        hub.Remove(ModelReference.Parse(Repo));
        Assert.False(Directory.Exists(RepoDir));
        Assert.Equal(HubErrorKind.NotFound, Assert.Throws<HubException>(() => hub.Remove(ModelReference.Parse(Repo))).Kind);
    }
}
