using System.Buffers.Binary;
using System.Text;
using Sputnik.Gguf;
using Sputnik.Tensors;
using Xunit;
using static Sputnik.Tests.Gguf.GgufTestFiles;

namespace Sputnik.Tests.Gguf;

/// <summary>
/// Split GGUF sets (llama.cpp's gguf-split layout): how GgufWriter cuts and names them, that the reader opens a set as
/// one model from any shard, and that a broken set is one clear error naming the file at fault.
/// </summary>
public sealed class GgufSplitTests : IDisposable
{
    private readonly TempDir _dir = new();

    public void Dispose() => _dir.Dispose();

    // Five F32 tensors of 64, 128, 192, 256 and 320 bytes (multiples of the 32-byte alignment, so padding adds nothing).
    private static readonly int[] TensorBytes = [64, 128, 192, 256, 320];

    private static GgufWriter Model(out byte[][] data)
    {
        var rng = new Random(7);
        var w = new GgufWriter()
            .Set("general.architecture", "llama")
            .Set("general.name", "split test")
            .Set("tokenizer.ggml.tokens", Tokens);
        data = new byte[TensorBytes.Length][];
        for (int i = 0; i < TensorBytes.Length; i++)
        {
            data[i] = RandomBytes(rng, TensorBytes[i]);
            w.AddTensor($"t.{i}", GgmlType.F32, [TensorBytes[i] / 8, 2], data[i]);
        }
        return w;
    }

    /// <summary>Writes the model split at 300 bytes: [t.0 t.1] [t.2] [t.3] [t.4] (t.4 alone exceeds the limit).</summary>
    private IReadOnlyList<string> WriteSet(string name = "model.gguf", GgufSplitLimits? limits = null)
    {
        string dir = Path.Combine(_dir.Path, Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        return Model(out _).WriteSplit(Path.Combine(dir, name), limits ?? new GgufSplitLimits(MaxBytes: 300));
    }

    private static ushort ReadU16(byte[] b, GgufKvLayout kv) => BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan((int)kv.ValueOffset));

    [Fact]
    public void Writer_cuts_and_names_shards_like_gguf_split()
    {
        var paths = WriteSet();
        string prefix = Path.Combine(Path.GetDirectoryName(paths[0])!, "model");
        Assert.Equal(Enumerable.Range(1, 4).Select(i => $"{prefix}-0000{i}-of-00004.gguf"), paths);
        Assert.False(File.Exists(prefix + ".gguf"));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(paths[0])!, "*.tmp"));

        string[][] expectedTensors = [["t.0", "t.1"], ["t.2"], ["t.3"], ["t.4"]];
        for (int i = 0; i < paths.Count; i++)
        {
            var bytes = File.ReadAllBytes(paths[i]);
            var layout = new GgufLayout(bytes);
            Assert.Equal(expectedTensors[i], layout.TensorOrder.Select(t => t.Name));
            // Every shard: split.no and split.count as u16, split.tensors.count as i32 (what llama.cpp reads them as).
            Assert.Equal(GgufValueType.UInt16, layout.Kvs[GgufSplit.NoKey].Type);
            Assert.Equal(GgufValueType.UInt16, layout.Kvs[GgufSplit.CountKey].Type);
            Assert.Equal(GgufValueType.Int32, layout.Kvs[GgufSplit.TensorsCountKey].Type);
            Assert.Equal(i, ReadU16(bytes, layout.Kvs[GgufSplit.NoKey]));
            Assert.Equal(4, ReadU16(bytes, layout.Kvs[GgufSplit.CountKey]));
            Assert.Equal(5, BinaryPrimitives.ReadInt32LittleEndian(bytes.AsSpan((int)layout.Kvs[GgufSplit.TensorsCountKey].ValueOffset)));
            // The model's metadata is in the first shard only.
            if (i == 0) Assert.Contains("general.architecture", layout.Kvs.Keys);
            else Assert.Equal([GgufSplit.CountKey, GgufSplit.NoKey, GgufSplit.TensorsCountKey], layout.Kvs.Keys.Order());
        }
    }

    [Fact]
    public void Writer_cuts_by_tensor_count()
    {
        var paths = WriteSet("m", new GgufSplitLimits(MaxTensors: 2));
        Assert.Equal(3, paths.Count);
        Assert.EndsWith("m-00003-of-00003.gguf", paths[2]);
        Assert.Equal([2, 2, 1], paths.Select(p => new GgufLayout(File.ReadAllBytes(p)).TensorOrder.Count));
        Assert.Throws<ArgumentException>(() => Model(out _).WriteSplit(_dir.File("x.gguf"), new GgufSplitLimits(MaxTensors: 0)));
    }

    [Fact]
    public void Set_opens_as_one_model_from_any_shard()
    {
        var paths = WriteSet();
        Model(out var data);
        foreach (string given in paths)
        {
            using var f = GgufFile.Open(given);
            Assert.Equal(4, f.SplitCount);
            Assert.Equal(paths[0], f.Path);
            Assert.Equal(paths, f.ShardPaths);
            Assert.Equal(paths.Sum(p => new FileInfo(p).Length), f.TotalFileSize);
            Assert.Equal("split test", f.GetString("general.name"));
            Assert.Equal(Tokens, f.TryGetStringArray("tokenizer.ggml.tokens", out var toks) ? toks : null);
            Assert.Equal(Enumerable.Range(0, 5).Select(i => $"t.{i}"), f.Tensors.Select(t => t.Name));
            Assert.Equal([0, 0, 1, 2, 3], f.Tensors.Select(t => t.Shard));
            for (int i = 0; i < 5; i++)
            {
                var t = f.GetTensor($"t.{i}");
                Assert.True(f.GetData(t).SequenceEqual(data[i]), $"t.{i} bytes differ");
                // Positioned reads (the repacking loader) find the same bytes in the shard file.
                var fromFile = new byte[t.ByteSize];
                using (var fs = File.OpenRead(f.ShardPath(t)))
                {
                    fs.Position = f.FileOffset(t);
                    fs.ReadExactly(fromFile);
                }
                Assert.Equal(data[i], fromFile);
            }
        }
    }

    [Fact]
    public void Split_count_of_one_is_a_single_file()
    {
        // llama.cpp only treats split.count > 1 as split; a set of one is an ordinary file whatever its name.
        var path = Model(out _).WriteSplit(_dir.File("one.gguf"), new GgufSplitLimits(MaxBytes: 1_000_000)).Single();
        Assert.EndsWith("one-00001-of-00001.gguf", path);
        using var f = GgufFile.Open(path);
        Assert.Equal(1, f.SplitCount);
        Assert.Equal(5, f.Tensors.Count);
    }

    [Fact]
    public void First_shard_may_hold_only_metadata()
    {
        // gguf-split --no-tensor-first-split: shard 1 is metadata alone, the tensors follow in the other shards.
        string prefix = _dir.File("meta-only");
        GgufWriter Shard(int no) => new GgufWriter()
            .Set(GgufSplit.NoKey, GgufValue.Of((ushort)no))
            .Set(GgufSplit.CountKey, GgufValue.Of((ushort)3))
            .Set(GgufSplit.TensorsCountKey, GgufValue.Of(2));
        Shard(0).Set("general.architecture", "llama").Write(GgufSplit.ShardPath(prefix, 0, 3));
        var rng = new Random(3);
        byte[] a = RandomBytes(rng, 64), b = RandomBytes(rng, 96);
        Shard(1).AddTensor("a", GgmlType.F32, [16], a).Write(GgufSplit.ShardPath(prefix, 1, 3));
        Shard(2).AddTensor("b", GgmlType.F32, [8, 3], b).Write(GgufSplit.ShardPath(prefix, 2, 3));
        using var f = GgufFile.Open(GgufSplit.ShardPath(prefix, 2, 3));
        Assert.Equal("llama", f.Architecture);
        Assert.Equal([1, 2], f.Tensors.Select(t => t.Shard));
        Assert.Equal(a, f.GetData(f.GetTensor("a")).ToArray());
        Assert.Equal(b, f.GetData(f.GetTensor("b")).ToArray());
    }

    private static Exception OpenFails(string path)
    {
        var ex = Record.Exception(() => GgufFile.Open(path).Dispose());
        Assert.NotNull(ex);
        Assert.True(ex is GgufFormatException or FileNotFoundException, $"{ex.GetType().Name}: {ex.Message}");
        Assert.DoesNotContain('\n', ex.Message);
        return ex;
    }

    [Fact]
    public void Missing_shard_names_the_file()
    {
        var paths = WriteSet();
        File.Delete(paths[2]);
        var ex = Assert.IsType<FileNotFoundException>(OpenFails(paths[0]));
        Assert.Contains("shard 3 of 4 is missing", ex.Message);
        Assert.Contains(paths[2], ex.Message);
        // Given a later shard while the first is missing: the first is named.
        File.Delete(paths[0]);
        Assert.Contains(paths[0], OpenFails(paths[1]).Message);
    }

    [Fact]
    public void Shard_with_another_split_count_is_rejected()
    {
        var paths = WriteSet();
        var b = File.ReadAllBytes(paths[1]);
        BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan((int)new GgufLayout(b).Kvs[GgufSplit.CountKey].ValueOffset), 5);
        File.WriteAllBytes(paths[1], b);
        string message = OpenFails(paths[0]).Message;
        Assert.Contains(paths[1], message);
        Assert.Contains("split.count = 5, but the first shard says 4", message);
    }

    [Fact]
    public void Shards_in_the_wrong_files_are_rejected()
    {
        var paths = WriteSet();
        File.Copy(paths[2], paths[1], overwrite: true); // shard 3's content under shard 2's name
        string message = OpenFails(paths[0]).Message;
        Assert.Contains(paths[1], message);
        Assert.Contains("split.no = 2, expected 1", message);
    }

    [Fact]
    public void Truncated_second_shard_names_the_shard()
    {
        var paths = WriteSet();
        var b = File.ReadAllBytes(paths[1]);
        File.WriteAllBytes(paths[1], b[..(b.Length - 100)]);
        string message = Assert.IsType<GgufFormatException>(OpenFails(paths[0])).Message;
        Assert.StartsWith($"{paths[1]} (shard 2 of 4): ", message);
        Assert.Contains("past the end of the file", message);
        File.WriteAllBytes(paths[1], b[..40]); // inside the header: the counts claim more than the bytes left
        Assert.StartsWith($"{paths[1]} (shard 2 of 4): ", OpenFails(paths[0]).Message);
        Assert.Contains("tensor count = 1 at offset 8 is impossible", OpenFails(paths[0]).Message);
    }

    [Fact]
    public void Tensor_count_that_disagrees_with_the_shards_is_rejected()
    {
        var paths = WriteSet();
        foreach (string p in paths)
        {
            var b = File.ReadAllBytes(p);
            BinaryPrimitives.WriteInt32LittleEndian(b.AsSpan((int)new GgufLayout(b).Kvs[GgufSplit.TensorsCountKey].ValueOffset), 6);
            File.WriteAllBytes(p, b);
        }
        string message = OpenFails(paths[3]).Message;
        Assert.Contains(paths[0], message);
        Assert.Contains("split.tensors.count = 6, but the 4 shards hold 5 tensors", message);
    }

    [Fact]
    public void Tensor_in_two_shards_is_rejected()
    {
        var paths = WriteSet();
        var b = File.ReadAllBytes(paths[2]);
        var t3 = new GgufLayout(b).Tensors["t.3"];
        Encoding.ASCII.GetBytes("t.0").CopyTo(b, t3.NameOffset + 8);
        File.WriteAllBytes(paths[2], b);
        string message = OpenFails(paths[0]).Message;
        Assert.Contains($"tensor 't.0' appears in both {paths[0]} and {paths[2]}", message);
    }

    [Fact]
    public void Shard_without_split_keys_or_with_another_name_is_rejected()
    {
        var paths = WriteSet();
        // A first shard renamed: the other shards can no longer be found by name.
        string renamed = Path.Combine(Path.GetDirectoryName(paths[0])!, "renamed.gguf");
        File.Copy(paths[0], renamed);
        Assert.Contains("does not end in '-00001-of-00004.gguf'", OpenFails(renamed).Message);

        // An ordinary GGUF file in the place of shard 2.
        File.WriteAllBytes(paths[1], Small());
        string message = OpenFails(paths[0]).Message;
        Assert.Contains(paths[1], message);
        Assert.Contains("split.count is missing", message);
    }

    [Fact]
    public void Split_keys_of_the_wrong_type_or_range_are_rejected()
    {
        string path = _dir.File("bad-00001-of-00002.gguf");
        new GgufWriter().Set(GgufSplit.CountKey, "two").Set(GgufSplit.NoKey, GgufValue.Of((ushort)0)).Write(path);
        Assert.Contains("split.count is a String, not an integer", OpenFails(path).Message);
        new GgufWriter().Set(GgufSplit.CountKey, GgufValue.Of((ushort)2)).Set(GgufSplit.NoKey, GgufValue.Of((ushort)2)).Write(path);
        Assert.Contains("split.no = 2 is not a shard number below split.count = 2", OpenFails(path).Message);
        new GgufWriter().Set(GgufSplit.CountKey, GgufValue.Of((ushort)2)).Write(path);
        Assert.Contains("split.no is missing", OpenFails(path).Message);
        new GgufWriter().Set(GgufSplit.CountKey, GgufValue.Of((ushort)2)).Set(GgufSplit.NoKey, GgufValue.Of((ushort)0)).Write(path);
        Assert.Contains("without split.tensors.count", OpenFails(path).Message);
    }

    [Fact]
    public void Mutated_shard_headers_open_or_fail_cleanly()
    {
        // Every shard goes through the single-file validation; on top of that the split keys may say anything.
        var paths = WriteSet();
        var originals = paths.Select(File.ReadAllBytes).ToArray();
        string[] splitKeys = [GgufSplit.NoKey, GgufSplit.CountKey, GgufSplit.TensorsCountKey];
        var rng = new Random(0x5117);
        int opened = 0, rejected = 0;
        for (int iter = 0; iter < 400; iter++)
        {
            int s = rng.Next(paths.Count);
            var b = (byte[])originals[s].Clone();
            var layout = new GgufLayout(b);
            string what;
            if (rng.Next(3) == 0)
            {
                var kv = layout.Kvs[splitKeys[rng.Next(3)]];
                ushort v = rng.Next(4) == 0 ? ushort.MaxValue : (ushort)rng.Next(0, 7);
                BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan((int)kv.ValueOffset), v);
                what = $"{kv.Key} = {v}";
            }
            else
            {
                long at = rng.NextInt64(layout.HeaderEnd);
                int bit = rng.Next(8);
                b[at] ^= (byte)(1 << bit);
                what = $"bit {bit} at {at} flipped";
            }
            File.WriteAllBytes(paths[s], b);
            string given = paths[rng.Next(paths.Count)];
            try
            {
                using var f = GgufFile.Open(given);
                ReadEverything(f);
                opened++;
            }
            catch (Exception ex) when (ex is GgufFormatException or FileNotFoundException)
            {
                Assert.DoesNotContain('\n', ex.Message);
                rejected++;
            }
            catch (Exception ex)
            {
                Assert.Fail($"shard {s + 1}, {what}, opened from {Path.GetFileName(given)}: {ex}");
            }
            File.WriteAllBytes(paths[s], originals[s]);
        }
        Assert.True(rejected > 100 && opened > 10, $"{opened} opened, {rejected} rejected");
    }

    [Fact]
    public void Shard_names_parse_back()
    {
        Assert.True(GgufSplit.TryParseShardName(GgufSplit.ShardPath("dir/Model-Q4_K_M", 1, 3), out string prefix, out int index, out int count));
        Assert.Equal(("dir/Model-Q4_K_M", 1, 3), (prefix, index, count));
        Assert.Equal("dir/Model-Q4_K_M", GgufSplit.PrefixOf("dir/Model-Q4_K_M-00002-of-00003.gguf", 1, 3));
        Assert.Null(GgufSplit.PrefixOf("dir/Model-Q4_K_M-00002-of-00003.gguf", 0, 3));
        foreach (string name in new[] { "m.gguf", "m-00000-of-00003.gguf", "m-00004-of-00003.gguf", "m-0001-of-0003.gguf", "-00001-of-00002.gguf", "m-00001-of-00002.gguf.tmp" })
            Assert.False(GgufSplit.TryParseShardName(name, out _, out _, out _), name);
    }

    [Theory]
    [InlineData("2G", 2_000_000_000L)]
    [InlineData("500M", 500_000_000L)]
    [InlineData("1.5g", 1_500_000_000L)]
    [InlineData("64K", 64_000L)]
    public void Split_sizes_parse_like_gguf_split(string text, long bytes) => Assert.Equal(bytes, GgufSplit.ParseSize(text));

    [Theory]
    [InlineData("2")]
    [InlineData("2T")]
    [InlineData("-1G")]
    [InlineData("0M")]
    [InlineData("G")]
    [InlineData("")]
    [InlineData("99999999999G")]
    public void Bad_split_sizes_are_clear_errors(string text)
    {
        var ex = Assert.Throws<ArgumentException>(() => GgufSplit.ParseSize(text));
        Assert.Contains("M or G", ex.Message);
    }
}
