using System.Collections.Concurrent;
using Sputnik.Server.Scheduling;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// The disk prompt cache is an optimisation, never a way to break the server: a full disk or a deleted folder is
/// logged once and survived, the files stay under --cache-disk-mb (least recently used out first), a file whose
/// bytes changed is rejected by its checksum, and the model identity covers the whole model file.
/// </summary>
public sealed class PromptCacheFaultTests : IDisposable
{
    private const string A = "Once upon a time there was a little girl named Lily who loved to play outside";
    private const string B = "Zebras and lions went to the big park to find some food";
    private const string C = "The old man sat by the river and watched the boats go by all day long";

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "sputnik-kvfault-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly ConcurrentQueue<string> _log = new();

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private Task<TestServer> Start(int cacheRamMb) =>
        TestServer.StartAsync(o => o with { Parallel = 1, CacheRamMb = cacheRamMb, CacheDir = _dir }, _log.Enqueue);

    private static async Task<(int Hit, int Prompt, string Text)> Ask(TestServer s, string user)
    {
        var (status, body, _) = await s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: user, maxTokens: 12));
        Assert.True(status == 200, body.ToJsonString());
        var u = body["usage"]!;
        return ((int)u["prompt_cache_hit_tokens"]!, (int)u["prompt_tokens"]!, (string)body["choices"]![0]!["message"]!["content"]!);
    }

    private int CacheLines => _log.Count(l => l.Contains("prompt cache", StringComparison.Ordinal));

    /// <summary>A write that fails like a full disk halfway through the file.</summary>
    private sealed class FullDiskStream(string path) : FileStream(path, FileMode.Create)
    {
        private int _written;

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            if ((_written += buffer.Length) > 64) throw new IOException("No space left on device");
            base.Write(buffer);
        }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void WriteByte(byte value) => Write([value]);
    }

    [Fact]
    public async Task AFullDiskIsLoggedOnceAndTheCacheGoesOnInRam()
    {
        await using var s = await Start(cacheRamMb: 64);
        s.Host.Model.Scheduler.Cache!.CreateFile = path => new FullDiskStream(path);
        var first = await Ask(s, A);
        await Ask(s, B); // A's snapshot: the write fails
        await Ask(s, C); // B's: fails again
        var again = await Ask(s, A);
        Assert.Equal(first.Text, again.Text);
        Assert.Equal(first.Prompt - 1, again.Hit); // still served from RAM
        Assert.Equal(1, CacheLines);
        Assert.Empty(Directory.GetFiles(_dir, "*.kv*"));
    }

    [Fact]
    public async Task AnyFaultInTheCacheLeavesTheSchedulerRunning()
    {
        await using var s = await Start(cacheRamMb: 64);
        s.Host.Model.Scheduler.Cache!.CreateFile = _ => throw new InvalidOperationException("not an I/O error at all");
        var first = await Ask(s, A);
        await Ask(s, B);
        await Ask(s, C);
        Assert.Equal(first.Text, (await Ask(s, A)).Text);
        Assert.True(CacheLines >= 1);
        Assert.True(await s.WaitIdleAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task DeletingTheFolderUnderARunningServerLosesOnlyThoseEntries()
    {
        await using var s = await Start(cacheRamMb: 0); // entries live only on disk
        var first = await Ask(s, A);
        var b = await Ask(s, B); // A goes to disk
        Assert.NotEmpty(Directory.GetFiles(_dir, "*.kv"));
        Directory.Delete(_dir, recursive: true);
        var again = await Ask(s, A); // its file is gone: computed again, and B's snapshot recreates the folder
        Assert.True(again.Hit < first.Prompt / 2);
        Assert.Equal(first.Text, again.Text);
        Assert.Equal(1, CacheLines);
        Assert.True(Directory.Exists(_dir));
        Assert.Equal(b.Prompt - 1, (await Ask(s, B)).Hit); // B's snapshot went into the new folder and came back
    }

    [Theory]
    [InlineData("flip")]
    [InlineData("nan")]
    public async Task ASnapshotWhoseBytesChangedIsRejectedAndDropped(string damage)
    {
        (int Hit, int Prompt, string Text) cold;
        await using (var s = await Start(cacheRamMb: 0))
        {
            cold = await Ask(s, A);
            await Ask(s, B);
        }
        var files = Directory.GetFiles(_dir, "*.kv");
        Assert.NotEmpty(files);
        foreach (string file in files)
        {
            var bytes = File.ReadAllBytes(file);
            for (int i = 0; i < 200; i++)
            {
                int at = bytes.Length - 1 - i * 7 % (bytes.Length / 3);
                bytes[at] = damage == "flip" ? (byte)~bytes[at] : (byte)0xFF; // 0xFFFF… is a NaN as f16 and f32
            }
            File.WriteAllBytes(file, bytes);
        }
        await using (var s = await Start(cacheRamMb: 0))
        {
            var again = await Ask(s, A);
            Assert.Equal(0, again.Hit);
            Assert.Equal(cold.Text, again.Text);
        }
        Assert.Contains(_log, l => l.Contains("checksum does not match", StringComparison.Ordinal));
    }

    [Fact]
    public async Task TheDiskStaysUnderItsCapLeastRecentlyUsedFirst()
    {
        using var model = await SputnikModel.LoadAsync(TestServer.ModelPath, new ModelOptions { ContextLength = 64, Threads = 1 }, Ct);
        var slot = new Slot(0, model.CreateState());
        int[] Tokens(int seed) => Enumerable.Range(0, 24).Select(i => 3 + (seed * 37 + i * 11) % 400).ToArray();
        void Fill(int seed)
        {
            slot.Reset();
            var t = Tokens(seed);
            model.Model.Forward(slot.State, t);
            slot.History.AddRange(t);
        }
        long fileBytes;
        {
            var probe = new PromptCache(0, Path.Combine(_dir, "probe"), long.MaxValue, "id", slot.State.Rows!);
            Fill(1);
            probe.Save(slot);
            fileBytes = probe.BytesOnDisk;
        }
        string dir = Path.Combine(_dir, "capped");
        long cap = fileBytes * 5 / 2; // room for two files
        var cache = new PromptCache(0, dir, cap, "id", slot.State.Rows!);
        bool Has(int seed) => cache.BestPrefix([.. Tokens(seed), 0], 0, Sputnik.Models.LoraSet.None, out _) > 0;
        foreach (int seed in new[] { 1, 2 }) { Fill(seed); cache.Save(slot); }
        Assert.True(cache.BestPrefix([.. Tokens(1), 0], 0, Sputnik.Models.LoraSet.None, out var one) > 0);
        Fill(9);
        Assert.True(cache.Restore(one!, slot, 20)); // entry 1 is now more recent than entry 2
        Fill(3);
        cache.Save(slot);
        Assert.True(cache.BytesOnDisk <= cap);
        Assert.Equal(2, Directory.GetFiles(dir, "*.kv").Length);
        Assert.True(Has(1) && Has(3) && !Has(2), "the least recently used entry (2) was evicted");

        // A restart with a smaller cap trims the folder to it.
        var smaller = new PromptCache(0, dir, fileBytes * 3 / 2, "id", slot.State.Rows!);
        Assert.Equal(1, smaller.Count);
        Assert.Single(Directory.GetFiles(dir, "*.kv"));
    }

    [Fact]
    public void TheModelIdentityCoversTheWholeFileAndIsRemembered()
    {
        Directory.CreateDirectory(_dir);
        string a = Path.Combine(_dir, "a.gguf"), b = Path.Combine(_dir, "b.gguf");
        var bytes = new byte[(1 << 20) + 4096];
        new Random(1).NextBytes(bytes);
        File.WriteAllBytes(a, bytes);
        bytes[^1] ^= 1; // same header, same first MiB, same size: another model
        File.WriteAllBytes(b, bytes);
        string memo = Path.Combine(_dir, "memo");
        string ha = ModelFileHash.Get(a, memo), hb = ModelFileHash.Get(b, memo);
        Assert.NotEqual(ha, hb);
        Assert.Equal(64, ha.Length);

        // Remembered by path, size and time: the same answer without reading the file again…
        var time = File.GetLastWriteTimeUtc(a);
        bytes[^1] ^= 1;
        bytes[^2] ^= 1;
        File.WriteAllBytes(a, bytes);
        File.SetLastWriteTimeUtc(a, time);
        Assert.Equal(ha, ModelFileHash.Get(a, memo));
        // …and hashed again when the file's time changes.
        File.SetLastWriteTimeUtc(a, time.AddSeconds(5));
        Assert.NotEqual(ha, ModelFileHash.Get(a, memo));
    }
}
