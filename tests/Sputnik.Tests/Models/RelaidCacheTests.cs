using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Tensors;
using Sputnik.Tensors.Quants;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>
/// The file of re-laid weights: a second load maps it and computes the same logits; a torn, corrupt, foreign or
/// stale file is refused with a reason, the weights are re-laid (same logits), and the file is rewritten.
/// </summary>
public sealed class RelaidCacheTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"sputnik-relaid-{Environment.ProcessId}-{Guid.NewGuid():N}");
    private readonly string _model;
    private readonly string _cacheDir;

    public RelaidCacheTests()
    {
        _cacheDir = Path.Combine(_dir, "cache");
        Directory.CreateDirectory(_dir);
        _model = Path.Combine(_dir, "model.gguf"); // a copy of its own: the test changes its modification time
        File.Copy(RandomQwen2.Path_, _model);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private void RequireInterleaving()
    {
        if (!Interleaving.Supports(GgmlType.Q4_K, 16, 256)) Assert.Skip("no 16-row interleaved kernels on this CPU (AVX-512 off or absent): nothing is re-laid or cached");
        if (!RelaidCache.LeavesRoom(_dir, 64L << 20)) Assert.Skip("under 2 GiB free on the temp folder's disk: the cache writes no file there");
    }

    /// <summary>Loads the model with the cache in the test's folder; returns its logits for a short prompt and the cache.</summary>
    private (float[] Logits, int Hits, string? Rejected, string? CachePath) Load(bool repack = true)
    {
        var file = GgufFile.Open(_model);
        file.RepackWeights = repack;
        var cache = RelaidCache.Attach(file, _cacheDir, minBytes: 0);
        using var model = ModelLoader.Load(file, 2);
        var state = model.CreateState(32, KvCacheType.F32);
        model.Forward(state, [1, 7, 42, 99, 3]);
        var logits = model.Forward(state, [250]).ToArray();
        return (logits, cache.Hits, cache.Rejected, cache.Path);
    }

    [Fact]
    public void A_model_whose_re_laid_weights_exceed_the_memory_keeps_its_layout_unless_a_cache_file_maps()
    {
        RequireInterleaving();
        long size = new FileInfo(_model).Length;
        using (var file = GgufFile.Open(_model))
        {
            RelaidCache.Attach(file, _cacheDir, minBytes: 0);
            Assert.True(ModelLoader.RelayFits(file, 2 * size));
            Assert.False(ModelLoader.RelayFits(file, size / 4)); // nearly every byte of this file is a re-laid matrix
        }
        Load(); // writes the cache file
        using (var file = GgufFile.Open(_model))
        {
            RelaidCache.Attach(file, _cacheDir, minBytes: 0);
            Assert.True(ModelLoader.RelayFits(file, size / 4)); // mapped from the page cache, not copied
        }
    }

    [Fact]
    public void A_second_load_maps_the_cache_file_and_computes_the_same_logits()
    {
        RequireInterleaving();
        var first = Load();
        Assert.Equal(0, first.Hits);
        Assert.Null(first.Rejected);
        Assert.True(File.Exists(first.CachePath), "the first load leaves the cache file");
        Assert.Empty(Directory.GetFiles(_cacheDir, "*.tmp"));
        Assert.Equal(0, new FileInfo(first.CachePath!).Length % 64);

        var second = Load();
        Assert.True(second.Hits > 0, "the second load maps its weights from the cache file");
        Assert.Null(second.Rejected);
        Assert.Equal(first.Logits, second.Logits); // same layout, same kernels: bit-identical

        var plain = Load(repack: false);
        float scale = plain.Logits.Max(Math.Abs);
        for (int i = 0; i < plain.Logits.Length; i++)
            Assert.True(Math.Abs(plain.Logits[i] - second.Logits[i]) <= 1e-4f * scale, $"logit {i}: {second.Logits[i]} vs file layout {plain.Logits[i]}");
    }

    public static TheoryData<string> Damages => ["truncated", "one byte longer", "header byte flipped", "empty", "garbage", "other format version"];

    [Theory]
    [MemberData(nameof(Damages))]
    public void A_damaged_cache_file_is_refused_and_rewritten(string damage)
    {
        RequireInterleaving();
        var good = Load();
        string path = good.CachePath!;
        byte[] bytes = File.ReadAllBytes(path);
        byte[] bad = damage switch
        {
            "truncated" => bytes[..(bytes.Length - 4096)],
            "one byte longer" => [.. bytes, 0],
            "header byte flipped" => Flip(bytes, 100),
            "empty" => [],
            "garbage" => Enumerable.Range(0, 3 << 20).Select(i => (byte)(i * 31 + 7)).ToArray(),
            "other format version" => Flip(bytes, 8),
            _ => throw new ArgumentOutOfRangeException(nameof(damage)),
        };
        File.WriteAllBytes(path, bad);

        var refused = Load();
        Assert.Equal(0, refused.Hits);
        Assert.False(string.IsNullOrEmpty(refused.Rejected), "a refused cache file says why");
        Assert.Equal(good.Logits, refused.Logits); // re-laid again: same weights, same results

        var again = Load(); // the refused file was replaced by a good one
        Assert.True(again.Hits > 0, $"after '{damage}' the cache file is rewritten");
        Assert.Null(again.Rejected);
        Assert.Equal(good.Logits, again.Logits);
    }

    [Fact]
    public void A_cache_file_of_the_model_before_it_changed_is_refused()
    {
        RequireInterleaving();
        var first = Load();
        File.SetLastWriteTimeUtc(_model, File.GetLastWriteTimeUtc(_model).AddMinutes(-5));
        var changed = Load();
        Assert.Equal(0, changed.Hits);
        Assert.Contains("another model file", changed.Rejected);
        Assert.Equal(first.Logits, changed.Logits);
    }

    [Fact]
    public void No_cache_file_below_the_size_threshold_or_when_off()
    {
        RequireInterleaving();
        var file = GgufFile.Open(_model);
        var cache = RelaidCache.Attach(file, _cacheDir, minBytes: long.MaxValue);
        using (ModelLoader.Load(file, 2)) { }
        Assert.False(File.Exists(cache.Path));

        var off = GgufFile.Open(_model);
        Assert.Null(RelaidCache.Attach(off, null, minBytes: 0).Path);
        using (ModelLoader.Load(off, 2)) { }
        Assert.False(Directory.Exists(_cacheDir) && Directory.EnumerateFileSystemEntries(_cacheDir).Any());
    }

    [Fact]
    public void No_cache_file_that_would_take_more_than_half_the_free_disk()
    {
        Directory.CreateDirectory(_dir);
        long free = new DriveInfo(Path.GetFullPath(_dir)).AvailableFreeSpace;
        Assert.False(RelaidCache.LeavesRoom(_dir, free / 2 + 1));
        Assert.False(RelaidCache.LeavesRoom(_dir, free));
        Assert.Equal(free - (1L << 20) >= 2L << 30, RelaidCache.LeavesRoom(_dir, 1L << 20)); // small files: 2 GiB must stay free
    }

    private static byte[] Flip(byte[] bytes, int at)
    {
        var copy = (byte[])bytes.Clone();
        copy[at] ^= 0x5A;
        return copy;
    }
}
