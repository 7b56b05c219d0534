using Sputnik.Gguf;
using Sputnik.Tensors;
using Xunit;
using static Sputnik.Tests.Gguf.GgufTestFiles;

namespace Sputnik.Tests.Gguf;

/// <summary>
/// Files with large (sparse, so they cost no disk) data regions: Open must parse the header only — no copying of
/// tensor data, and no allocation driven by counts that are merely "possible" given the file size.
/// </summary>
public sealed class GgufLargeFileTests : IDisposable
{
    private const long BigTensorBytes = 256L << 20;
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    /// <summary>
    /// Writes a file with a 256 MB tensor whose bytes are a hole (SetLength), followed by a small tensor with real
    /// bytes. Returns the header layout (walked on the first 64 KiB) and the small tensor's bytes.
    /// </summary>
    private (string Path, GgufLayout Layout, byte[] Small) WriteSparse(string name)
    {
        string path = _tmp.File(name);
        var small = RandomBytes(new Random(5), 64);
        var w = new GgufWriter()
            .Set("general.architecture", "llama")
            .Set("tokenizer.ggml.tokens", Tokens)
            .Set("tokenizer.ggml.scores", new[] { 0f, -1f, -2f, -3f, -4f })
            .Set("llama.block_count", 1u)
            .AddTensor("big", GgmlType.F32, [BigTensorBytes / 4], s =>
            {
                s.SetLength(s.Position + BigTensorBytes);
                s.Seek(BigTensorBytes, SeekOrigin.Current);
            })
            .AddTensor("small", GgmlType.F32, [16], small);
        using (var fs = new FileStream(path, FileMode.Create, FileAccess.ReadWrite))
            w.Write(fs);
        var head = new byte[64 << 10];
        using (var fs = File.OpenRead(path)) fs.ReadExactly(head);
        return (path, new GgufLayout(head), small);
    }

    private static void Patch(string path, long at, ulong value)
    {
        var b = new byte[8];
        PutU64(b, 0, value);
        using var fs = new FileStream(path, FileMode.Open, FileAccess.Write);
        fs.Seek(at, SeekOrigin.Begin);
        fs.Write(b);
    }

    private static long Allocated(Action a)
    {
        long before = GC.GetAllocatedBytesForCurrentThread();
        a();
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Fact]
    public void Opening_a_file_with_256MB_of_tensor_data_does_not_read_or_copy_it()
    {
        var (path, layout, small) = WriteSparse("sparse.gguf");
        Assert.True(new FileInfo(path).Length > BigTensorBytes);
        using (var warm = GgufFile.Open(path)) ReadEverything(warm); // JIT

        GgufFile? f = null;
        long alloc = Allocated(() => f = GgufFile.Open(path));
        using (f)
        {
            Assert.True(alloc < 1 << 20, $"Open allocated {alloc:N0} bytes for a {new FileInfo(path).Length:N0}-byte file");
            var big = f!.GetTensor("big");
            Assert.Equal(BigTensorBytes, big.ByteSize);
            Assert.Equal(layout.DataStart, f.DataOffset);
            var t = f.GetTensor("small");
            Assert.Equal(BigTensorBytes, t.Offset);

            long spans = Allocated(() =>
            {
                var data = f.GetData(big);
                Assert.Equal(BigTensorBytes, data.Length);
                Assert.Equal(0, data[0] | data[^1] | data[(int)(BigTensorBytes / 2)]);
                Assert.True(f.GetData(t).SequenceEqual(small));
            });
            Assert.True(spans < 64 << 10, $"GetData allocated {spans:N0} bytes");
        }
    }

    [Fact]
    public void A_lying_tensor_count_does_not_preallocate_for_it()
    {
        // 4M tensor infos would fit in 256 MB (32 bytes each), so the up-front count check passes; the reader
        // must still not allocate arrays/dictionaries for 4M tensors before reading them.
        var (path, layout, _) = WriteSparse("count.gguf");
        using (var warm = GgufFile.Open(path)) { }
        Patch(path, GgufLayout.TensorCountOffset, 4UL << 20);
        long alloc = Allocated(() =>
        {
            var ex = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
            Assert.Contains("0 dimensions", ex.Message); // the zero bytes after the real infos are not a tensor info
        });
        Assert.True(alloc < 4 << 20, $"rejecting the file allocated {alloc:N0} bytes");
        _ = layout;
    }

    [Fact]
    public void A_lying_string_array_count_does_not_preallocate_for_it()
    {
        // 4M strings of at least 8 bytes each would fit; the elements after the real ones are the next key
        // ("tokenizer.ggml.scores") and then its type ids read as a length, which is impossible.
        var (path, layout, _) = WriteSparse("strings.gguf");
        using (var warm = GgufFile.Open(path)) { }
        Patch(path, layout.Kvs["tokenizer.ggml.tokens"].ArrayCountOffset!.Value, 4UL << 20);
        long alloc = Allocated(() =>
        {
            var ex = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
            Assert.Contains("'tokenizer.ggml.tokens'", ex.Message);
        });
        Assert.True(alloc < 4 << 20, $"rejecting the file allocated {alloc:N0} bytes");
    }

    [Fact]
    public void Metadata_arrays_and_strings_over_the_2GB_limits_fail_as_format_errors()
    {
        // A 2 GiB + 1 MiB sparse file: big enough that the "would it fit in the file" checks pass for an array of
        // 2^28 + 1 u64 (2 GiB + 8 bytes) and for a 1 GiB + 1 string, which must then be refused cleanly.
        string path = _tmp.File("huge.gguf");
        var w = new GgufWriter()
            .Set("big.u64", GgufValue.Of(new GgufArray(GgufValueType.UInt64, new ulong[] { 1, 2 })))
            .Set("big.str", "abc");
        byte[] head = ToBytes(w);
        var layout = new GgufLayout(head);
        using (var fs = new FileStream(path, FileMode.Create, FileAccess.Write))
        {
            fs.Write(head);
            fs.SetLength((2L << 30) + (1 << 20));
        }

        Patch(path, layout.Kvs["big.u64"].ArrayCountOffset!.Value, (1UL << 28) + 1);
        var ex = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
        Assert.Contains("'big.u64'", ex.Message);
        Patch(path, layout.Kvs["big.u64"].ArrayCountOffset!.Value, 2);

        Patch(path, layout.Kvs["big.str"].ValueOffset, (1UL << 30) + 1);
        ex = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
        Assert.Contains("'big.str'", ex.Message);
        Assert.Contains("1 GiB", ex.Message);
    }
}
