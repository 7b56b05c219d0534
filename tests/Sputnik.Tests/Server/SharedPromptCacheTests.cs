using System.Collections.Concurrent;
using Sputnik.Server;
using Sputnik.Server.Scheduling;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// Replicas sharing one --cache-dir: one replica's snapshot is another's hit, writers of the same snapshot at once
/// leave one whole file while a reader never sees half of one, a truncated, padded or damaged file is skipped and
/// counted (never fatal), and the disk cap evicts the least recently used files whichever replica wrote them.
/// </summary>
public sealed class SharedPromptCacheTests : IDisposable
{
    private const string A = "Once upon a time there was a little girl named Lily who loved to play outside";
    private const string B = "Zebras and lions went to the big park to find some food";

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sputnik-kvshared-" + Guid.NewGuid().ToString("N")[..8]);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<(int Hit, int Prompt, string Text)> Ask(TestServer s, string user)
    {
        var (status, body, _) = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: user, maxTokens: 12));
        Assert.True(status == 200, body.ToJsonString());
        var u = body["usage"]!;
        return ((int)u["prompt_cache_hit_tokens"]!, (int)u["prompt_tokens"]!, (string)body["choices"]![0]!["message"]!["content"]!);
    }

    [Fact]
    public async Task OneReplicasSnapshotIsAnothersHit()
    {
        var log = new ConcurrentQueue<string>();
        await using var writer = await TestServer.StartAsync(o => o with { Parallel = 1, CacheRamMb = 0, CacheDir = _dir }, log.Enqueue);
        await using var reader = await TestServer.StartAsync(o => o with { Parallel = 1, CacheRamMb = 0, CacheDir = _dir }, log.Enqueue);
        var first = await Ask(writer, A);
        await Ask(writer, B); // A's KV leaves the writer's only slot for the shared folder
        Assert.NotEmpty(Directory.GetFiles(_dir, "*.kv"));
        var there = await Ask(reader, A); // the reader started before the file existed
        Assert.Equal(first.Prompt - 1, there.Hit);
        Assert.Equal(first.Text, there.Text);
        Assert.Equal(0, reader.Host.Model.Scheduler.Cache!.RejectedFiles);
        Assert.DoesNotContain(log, l => l.Contains("prompt cache", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ATruncatedSnapshotIsSkippedCountedAndTheRequestAnsweredColdly()
    {
        await using var writer = await TestServer.StartAsync(o => o with { Parallel = 1, CacheRamMb = 0, CacheDir = _dir });
        await using var reader = await TestServer.StartAsync(o => o with { Parallel = 1, CacheRamMb = 0, CacheDir = _dir });
        var first = await Ask(writer, A);
        await Ask(writer, B);
        string file = Assert.Single(Directory.GetFiles(_dir, "*.kv"));
        using (var f = new FileStream(file, FileMode.Open)) f.SetLength(f.Length / 2); // a copy torn halfway (not a rename)
        var cold = await Ask(reader, A);
        Assert.Equal(0, cold.Hit);
        Assert.Equal(first.Text, cold.Text);
        Assert.Equal(1, reader.Host.Model.Scheduler.Cache!.RejectedFiles);
        Assert.False(File.Exists(file), "a bad file is deleted, so no replica reads it again");
        // An operator sees it on /metrics (the writer rejected nothing).
        double Rejected(string metrics) => PrometheusText.Sum(PrometheusText.Parse(metrics), "sputnik_prompt_cache_rejected_files_total");
        Assert.Equal(1, Rejected(await reader.Client.GetStringAsync("/metrics", TestContext.Current.CancellationToken)));
        Assert.Equal(0, Rejected(await writer.Client.GetStringAsync("/metrics", TestContext.Current.CancellationToken)));
    }

    /// <summary>A stories260K slot holding <see cref="Tokens"/> of a seed, and caches over it.</summary>
    private sealed class Rig : IDisposable
    {
        private readonly SputnikModel _model;

        private Rig(SputnikModel model)
        {
            _model = model;
            Slot = new Slot(0, model.CreateState());
        }

        public Slot Slot { get; }

        public static async Task<Rig> LoadAsync() =>
            new(await SputnikModel.LoadAsync(TestServer.ModelPath, new ModelOptions { ContextLength = 64, Threads = 1 }, Ct));

        public static int[] Tokens(int seed) => Enumerable.Range(0, 24).Select(i => 3 + (seed * 37 + i * 11) % 400).ToArray();

        public Slot NewSlot() => new(1, _model.CreateState());

        public void Fill(int seed, Slot? slot = null)
        {
            slot ??= Slot;
            slot.Reset();
            var t = Tokens(seed);
            _model.Model.Forward(slot.State, t);
            slot.History.AddRange(t);
        }

        public PromptCache Cache(string dir, long cap = long.MaxValue) => new(0, dir, cap, "id", Slot.State.Rows!);

        public void Dispose() => _model.Dispose();
    }

    private static bool Has(PromptCache cache, int seed) => cache.BestPrefix([.. Rig.Tokens(seed), 0], 0, Sputnik.Models.LoraSet.None, out _) > 0;

    private static byte[] Rows(Slot slot, int length) => slot.State.Rows!.Rows(0, 0, length).ToArray();

    [Fact]
    public async Task WritersOfTheSameSnapshotAtOnceLeaveOneWholeFileAndReadersNeverSeeHalf()
    {
        using var rig = await Rig.LoadAsync();
        rig.Fill(1);
        var readerSlot = rig.NewSlot();
        var readerRows = rig.NewSlot(); // the reader restores here; the writers only read rig.Slot
        var reader = rig.Cache(_dir);
        long restores = 0;
        using var stop = new CancellationTokenSource();
        // A thread of its own, not the thread pool: under a loaded full-suite run a pool task once started only after
        // all 20 rounds (112 ms), so it never read during a rewrite. The rounds also go on until it has restored.
        var reading = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                int n = reader.BestPrefix([.. Rig.Tokens(1), 0], 0, Sputnik.Models.LoraSet.None, out var entry);
                if (entry != null && reader.Restore(entry, readerRows, n)) Interlocked.Increment(ref restores);
            }
        }) { IsBackground = true };
        reading.Start();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int round = 0; round < 20 || (Interlocked.Read(ref restores) == 0 && clock.Elapsed < TimeSpan.FromSeconds(30)); round++)
        {
            foreach (var f in Directory.GetFiles(_dir)) File.Delete(f);
            // Fresh instances see no file, so both write it (temporary file, then rename) at the same moment.
            var writers = new[] { rig.Cache(_dir), rig.Cache(_dir) };
            using var start = new Barrier(writers.Length);
            await Task.WhenAll(writers.Select(w => Task.Run(() =>
            {
                start.SignalAndWait(Ct);
                w.Save(rig.Slot);
            }, Ct)));
            Assert.Single(Directory.GetFiles(_dir, "*.kv"));
            Assert.Empty(Directory.GetFiles(_dir, "*.tmp"));
            var check = rig.Cache(_dir);
            int length = check.BestPrefix([.. Rig.Tokens(1), 0], 0, Sputnik.Models.LoraSet.None, out var handle);
            Assert.Equal(24, length);
            Assert.True(check.Restore(handle!, readerSlot, length));
            Assert.Equal(Rows(rig.Slot, 24), Rows(readerSlot, 24));
        }
        await stop.CancelAsync();
        Assert.True(reading.Join(TimeSpan.FromSeconds(30)), "the reader did not stop");
        Assert.Equal(0, reader.RejectedFiles);
        Assert.True(restores > 0, "the reader restored the snapshot while it was being rewritten");
    }

    [Fact]
    public async Task ShortPaddedAndDamagedFilesAreSkippedAndCountedOtherModelsFilesLeftAlone()
    {
        using var rig = await Rig.LoadAsync();
        var writer = rig.Cache(_dir);
        rig.Fill(1);
        writer.Save(rig.Slot);
        string good = Assert.Single(Directory.GetFiles(_dir, "*.kv"));
        var bytes = File.ReadAllBytes(good);
        string prefix = Path.GetFileName(good)[..13]; // this model's 12 hex digits and '-'
        string Named(string what) => Path.Combine(_dir, prefix + what + ".kv");
        File.WriteAllBytes(Named("short"), bytes[..(bytes.Length - 10)]);
        File.WriteAllBytes(Named("padded"), [.. bytes, 0, 0, 0]);
        File.WriteAllBytes(Named("header"), bytes[..20]);
        File.WriteAllBytes(Named("garbage"), Enumerable.Repeat((byte)0xFF, 4096).ToArray()); // a string length that overflows: refused, nothing allocated
        string foreign = Path.Combine(_dir, "0123456789ab-" + Path.GetFileName(good)[13..]);
        File.WriteAllBytes(foreign, bytes[..100]); // another model's name: not opened

        var reader = rig.Cache(_dir);
        Assert.Equal(4, reader.RejectedFiles);
        Assert.Equal(1, reader.Count);
        Assert.True(Has(reader, 1));
        Assert.Equal(new[] { good, foreign }.Order(StringComparer.Ordinal), Directory.GetFiles(_dir, "*.kv").Order(StringComparer.Ordinal));

        // One that appears later (a torn copy from outside) is caught at the next lookup's scan.
        File.WriteAllBytes(Named("late"), bytes[..(bytes.Length / 2)]);
        Assert.True(Has(reader, 1));
        Assert.Equal(5, reader.RejectedFiles);
    }

    [Fact]
    public async Task TheCapEvictsTheLeastRecentlyUsedFilesOfEveryReplica()
    {
        using var rig = await Rig.LoadAsync();
        long fileBytes;
        {
            var probe = rig.Cache(Path.Combine(_dir, "probe"));
            rig.Fill(1);
            probe.Save(rig.Slot);
            fileBytes = probe.BytesOnDisk;
        }
        string dir = Path.Combine(_dir, "shared");
        long cap = fileBytes * 5 / 2; // room for two files
        var first = rig.Cache(dir, cap);
        var second = rig.Cache(dir, cap);
        foreach (int seed in new[] { 1, 2 })
        {
            rig.Fill(seed);
            first.Save(rig.Slot);
        }
        Assert.True(first.BestPrefix([.. Rig.Tokens(1), 0], 0, Sputnik.Models.LoraSet.None, out var one) > 0);
        Assert.True(first.Restore(one!, rig.NewSlot(), 20)); // 1 is now used more recently than 2
        rig.Fill(3);
        second.Save(rig.Slot); // over the cap: the second replica evicts the first's least recently used file
        Assert.Equal(2, Directory.GetFiles(dir, "*.kv").Length);
        Assert.True(second.BytesOnDisk <= cap);
        Assert.True(Has(first, 1) && Has(first, 3) && !Has(first, 2), "the first replica sees the eviction and the second's file");
        Assert.True(Has(second, 1) && Has(second, 3) && !Has(second, 2));
        Assert.Equal(0, first.RejectedFiles + second.RejectedFiles);
    }
}
