using Sputnik.Gguf;
using Sputnik.Tensors;
using Xunit;

namespace Sputnik.Tests.Gguf;

/// <summary>Writer → reader round trips of every value type, every tensor type and the real fixtures.</summary>
public sealed class GgufRoundTripTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static GgufArray Arr(GgufValueType t, Array items) => new(t, items);

    /// <summary>One value of each scalar type, including edge values (extremes, NaN, -0, subnormal, empty string).</summary>
    private static IEnumerable<(string Key, GgufValue Value)> Scalars() =>
    [
        ("u8.min", new(GgufValueType.UInt8, (byte)0)),
        ("u8.max", new(GgufValueType.UInt8, byte.MaxValue)),
        ("i8.min", new(GgufValueType.Int8, sbyte.MinValue)),
        ("i8.max", new(GgufValueType.Int8, sbyte.MaxValue)),
        ("u16.max", new(GgufValueType.UInt16, ushort.MaxValue)),
        ("i16.min", new(GgufValueType.Int16, short.MinValue)),
        ("u32.max", new(GgufValueType.UInt32, uint.MaxValue)),
        ("i32.min", new(GgufValueType.Int32, int.MinValue)),
        ("i32.neg1", new(GgufValueType.Int32, -1)),
        ("f32.pi", new(GgufValueType.Float32, MathF.PI)),
        ("f32.nan", new(GgufValueType.Float32, BitConverter.Int32BitsToSingle(0x7FC01234))),
        ("f32.negzero", new(GgufValueType.Float32, -0f)),
        ("f32.subnormal", new(GgufValueType.Float32, float.Epsilon)),
        ("f32.inf", new(GgufValueType.Float32, float.NegativeInfinity)),
        ("bool.true", new(GgufValueType.Bool, true)),
        ("bool.false", new(GgufValueType.Bool, false)),
        ("str.empty", new(GgufValueType.String, "")),
        ("str.ascii", new(GgufValueType.String, "hello world")),
        ("str.unicode", new(GgufValueType.String, "héllo wörld — 日本語 🚀 ▁tok \u0301e\0nul")),
        ("u64.max", new(GgufValueType.UInt64, ulong.MaxValue)),
        ("i64.min", new(GgufValueType.Int64, long.MinValue)),
        ("f64.e", new(GgufValueType.Float64, Math.E)),
        ("f64.negzero", new(GgufValueType.Float64, -0.0)),
        ("f64.nan", new(GgufValueType.Float64, BitConverter.Int64BitsToDouble(0x7FF8_0000_DEAD_BEEF))),
    ];

    private static IEnumerable<(string Key, GgufValue Value)> Arrays()
    {
        var list = new List<(string, GgufValue)>
        {
            ("arr.u8", GgufValue.Of(Arr(GgufValueType.UInt8, new byte[] { 0, 1, 255 }))),
            ("arr.i8", GgufValue.Of(Arr(GgufValueType.Int8, new sbyte[] { -128, 0, 127 }))),
            ("arr.u16", GgufValue.Of(Arr(GgufValueType.UInt16, new ushort[] { 0, 1, 65535 }))),
            ("arr.i16", GgufValue.Of(Arr(GgufValueType.Int16, new short[] { -32768, 5, 32767 }))),
            ("arr.u32", GgufValue.Of(Arr(GgufValueType.UInt32, new uint[] { 0, 7, uint.MaxValue }))),
            ("arr.i32", GgufValue.Of(Arr(GgufValueType.Int32, new[] { int.MinValue, -1, int.MaxValue }))),
            ("arr.f32", GgufValue.Of(Arr(GgufValueType.Float32, new[] { 1.5f, -0f, float.NaN, float.MaxValue }))),
            ("arr.bool", GgufValue.Of(Arr(GgufValueType.Bool, new[] { true, false, true, true }))),
            ("arr.str", GgufValue.Of(Arr(GgufValueType.String, new[] { "", "a", "ünï", "🙂🙃", "<|endoftext|>", "▁the" }))),
            ("arr.u64", GgufValue.Of(Arr(GgufValueType.UInt64, new ulong[] { 0, ulong.MaxValue, 1UL << 63 }))),
            ("arr.i64", GgufValue.Of(Arr(GgufValueType.Int64, new[] { long.MinValue, 0L, long.MaxValue }))),
            ("arr.f64", GgufValue.Of(Arr(GgufValueType.Float64, new[] { Math.PI, double.NegativeInfinity, double.Epsilon }))),
            ("arr.nested.ints", GgufValue.Of(Arr(GgufValueType.Array, new[]
            {
                Arr(GgufValueType.Int32, new[] { 1, 2, 3 }),
                Arr(GgufValueType.Int32, Array.Empty<int>()),
                Arr(GgufValueType.UInt8, new byte[] { 9 }),
            }))),
            ("arr.nested.strings", GgufValue.Of(Arr(GgufValueType.Array, new[]
            {
                Arr(GgufValueType.String, new[] { "x", "ÿ" }),
                Arr(GgufValueType.String, new[] { "" }),
            }))),
            ("arr.nested.3deep", GgufValue.Of(Arr(GgufValueType.Array, new[]
            {
                Arr(GgufValueType.Array, new[] { Arr(GgufValueType.Int64, new[] { -5L }), Arr(GgufValueType.Bool, new[] { true }) }),
                Arr(GgufValueType.Array, Array.Empty<GgufArray>()),
            }))),
            ("arr.nested.empty", GgufValue.Of(Arr(GgufValueType.Array, Array.Empty<GgufArray>()))),
        };
        // An empty array of every element type.
        foreach (var t in Enum.GetValues<GgufValueType>())
            list.Add(($"arr.empty.{t}", GgufValue.Of(Arr(t, EmptyItems(t)))));
        return list;
    }

    private static Array EmptyItems(GgufValueType t) => t switch
    {
        GgufValueType.UInt8 => Array.Empty<byte>(),
        GgufValueType.Int8 => Array.Empty<sbyte>(),
        GgufValueType.UInt16 => Array.Empty<ushort>(),
        GgufValueType.Int16 => Array.Empty<short>(),
        GgufValueType.UInt32 => Array.Empty<uint>(),
        GgufValueType.Int32 => Array.Empty<int>(),
        GgufValueType.Float32 => Array.Empty<float>(),
        GgufValueType.Bool => Array.Empty<bool>(),
        GgufValueType.String => Array.Empty<string>(),
        GgufValueType.UInt64 => Array.Empty<ulong>(),
        GgufValueType.Int64 => Array.Empty<long>(),
        GgufValueType.Float64 => Array.Empty<double>(),
        _ => Array.Empty<GgufArray>(),
    };

    /// <summary>Deep, bit-exact comparison (NaN payloads and -0 included); the .NET type of every item must match too.</summary>
    private static void AssertSame(GgufValueType type, object expected, object actual, string where)
    {
        Assert.True(expected.GetType() == actual.GetType(), $"{where}: expected {expected.GetType()}, got {actual.GetType()}");
        switch (expected)
        {
            case float f: Assert.Equal(BitConverter.SingleToInt32Bits(f), BitConverter.SingleToInt32Bits((float)actual)); break;
            case double d: Assert.Equal(BitConverter.DoubleToInt64Bits(d), BitConverter.DoubleToInt64Bits((double)actual)); break;
            case GgufArray ea:
            {
                var aa = (GgufArray)actual;
                Assert.Equal(ea.ElementType, aa.ElementType);
                Assert.Equal(ea.Count, aa.Count);
                Assert.True(ea.Items.GetType() == aa.Items.GetType(), $"{where}: items {ea.Items.GetType()} vs {aa.Items.GetType()}");
                for (int i = 0; i < ea.Count; i++)
                    AssertSame(ea.ElementType, ea.Items.GetValue(i)!, aa.Items.GetValue(i)!, $"{where}[{i}]");
                break;
            }
            default: Assert.Equal(expected, actual); break;
        }
        _ = type;
    }

    private GgufFile WriteAndOpen(GgufWriter w, string name = "rt.gguf")
    {
        string path = _tmp.File(name);
        w.Write(path);
        return GgufFile.Open(path);
    }

    [Fact]
    public void Every_scalar_and_array_value_type_round_trips_bit_exactly()
    {
        var entries = Scalars().Concat(Arrays()).ToList();
        var w = new GgufWriter();
        foreach (var (k, v) in entries) w.Set(k, v);
        using var f = WriteAndOpen(w);

        Assert.Equal(3u, f.Version);
        Assert.Equal(entries.Count, f.Metadata.Count);
        Assert.Empty(f.Tensors);
        foreach (var (k, v) in entries)
        {
            Assert.True(f.Metadata.TryGetValue(k, out var got), $"missing key {k}");
            Assert.Equal(v.Type, got!.Type);
            AssertSame(v.Type, v.Value, got.Value, k);
        }

        // Typed accessors agree with the raw values.
        Assert.True(f.TryGetString("str.unicode", out string? s));
        Assert.Equal("héllo wörld — 日本語 🚀 ▁tok \u0301e\0nul", s);
        Assert.True(f.TryGetInt64("i64.min", out long l));
        Assert.Equal(long.MinValue, l);
        Assert.False(f.TryGetInt64("u64.max", out _)); // does not fit a long
        Assert.True(f.TryGetUInt32("u32.max", out uint u));
        Assert.Equal(uint.MaxValue, u);
        Assert.False(f.TryGetUInt32("i32.neg1", out _));
        Assert.True(f.TryGetBool("bool.true", out bool b) && b);
        Assert.True(f.TryGetFloat("f32.pi", out float pi));
        Assert.Equal(MathF.PI, pi);
        Assert.True(f.TryGetStringArray("arr.str", out var strs));
        Assert.Equal(["", "a", "ünï", "🙂🙃", "<|endoftext|>", "▁the"], strs!);
        Assert.True(f.TryGetIntArray("arr.i16", out var ints));
        Assert.Equal([-32768, 5, 32767], ints!);
        Assert.True(f.TryGetFloatArray("arr.f64", out var floats));
        Assert.Equal(3, floats!.Length);
        GgufTestFiles.ReadEverything(f);
    }

    [Fact]
    public void Unicode_keys_round_trip_and_are_found_by_exact_key()
    {
        string[] keys = ["ключ.значение", "名前.キー", "emoji.🔑🗝", "combining.e\u0301", "precomposed.\u00e9", "tab\tand space"];
        var w = new GgufWriter();
        for (int i = 0; i < keys.Length; i++) w.Set(keys[i], $"value {i} ✓");
        using var f = WriteAndOpen(w);
        Assert.Equal(keys.Length, f.Metadata.Count); // e + combining acute and é are different keys
        for (int i = 0; i < keys.Length; i++) Assert.Equal($"value {i} ✓", f.GetString(keys[i]));
    }

    [Fact]
    public void Large_string_array_round_trips()
    {
        var rng = new Random(7);
        var tokens = Enumerable.Range(0, 20_000)
            .Select(i => i % 3 == 0 ? $"tok{i}" : new string((char)('a' + rng.Next(26)), rng.Next(0, 12)) + "ğ")
            .ToArray();
        using var f = WriteAndOpen(new GgufWriter().Set("tokenizer.ggml.tokens", tokens));
        Assert.True(f.TryGetStringArray("tokenizer.ggml.tokens", out var got));
        Assert.Equal(tokens, got!);
    }

    public static TheoryData<int> Alignments => [32, 64, 128, 256, 1 << 12];

    [Theory]
    [MemberData(nameof(Alignments))]
    public void Tensors_of_every_type_and_rank_come_back_byte_identical(int alignment)
    {
        var rng = new Random(alignment);
        var w = new GgufWriter().Set("general.architecture", "test");
        if (alignment != GgufFile.DefaultAlignment) w.Set("general.alignment", (uint)alignment);
        // An odd-length string key/value so the header does not end on a nice boundary by accident.
        w.Set("pad.x", "abc");
        var expected = new List<(string Name, GgmlType Type, long[] Dims, byte[] Data)>();
        foreach (var type in Enum.GetValues<GgmlType>())
        {
            int bs = GgmlTypeInfo.BlockSize(type);
            for (int nd = 1; nd <= 4; nd++)
            {
                long[] dims = new long[] { bs * (nd == 2 ? 3 : 1), 3, 2, 2 }[..nd];
                long size = GgufWriter.ByteSize(type, dims);
                long elements = dims.Aggregate(1L, (a, d) => a * d);
                Assert.Equal(elements / bs * GgmlTypeInfo.BlockBytes(type), size);
                var data = GgufTestFiles.RandomBytes(rng, size);
                string name = $"t.{type}.{nd}d";
                w.AddTensor(name, type, dims, data);
                expected.Add((name, type, dims, data));
            }
        }
        string path = _tmp.File($"types{alignment}.gguf");
        w.Write(path);
        byte[] bytes = File.ReadAllBytes(path);
        var layout = new GgufLayout(bytes);

        using var f = GgufFile.Open(path);
        Assert.Equal(alignment, f.Alignment);
        Assert.Equal(layout.Alignment, f.Alignment);
        Assert.Equal(0, f.DataOffset % alignment);
        Assert.Equal(layout.DataStart, f.DataOffset);
        Assert.True(f.DataOffset - layout.HeaderEnd < alignment);
        Assert.Equal(expected.Count, f.Tensors.Count);
        for (int i = 0; i < expected.Count; i++)
        {
            var (name, type, dims, data) = expected[i];
            var t = f.Tensors[i];
            Assert.Equal(name, t.Name);
            Assert.Same(t, f.GetTensor(name));
            Assert.Equal(type, t.Type);
            Assert.Equal(dims, t.Dims);
            Assert.Equal(data.Length, t.ByteSize);
            Assert.Equal(0, t.Offset % alignment);
            Assert.Equal(0, (f.DataOffset + t.Offset) % alignment);
            Assert.True(f.GetData(t).SequenceEqual(data), $"tensor {name}: data differs");
            // The span and the raw pointer agree with the file bytes at the computed absolute offset.
            Assert.True(bytes.AsSpan((int)(f.DataOffset + t.Offset), data.Length).SequenceEqual(data));
            unsafe { Assert.Equal(data[0], *f.DataPointer(t)); }
        }
        // Tensors are laid out in order, with no gaps larger than the padding.
        for (int i = 1; i < f.Tensors.Count; i++)
        {
            var prev = f.Tensors[i - 1];
            Assert.Equal(GgufFile.AlignUp(prev.Offset + prev.ByteSize, alignment), f.Tensors[i].Offset);
        }
    }

    [Fact]
    public void Alignment_is_taken_from_the_file_not_assumed()
    {
        // Same content, alignment 128: a reader that ignored general.alignment would compute DataOffset with 32
        // and hand out the wrong bytes.
        var rng = new Random(3);
        var data = GgufTestFiles.RandomBytes(rng, 4 * 33);
        var w = new GgufWriter().Set("general.alignment", 128u).Set("k", "v")
            .AddTensor("a", GgmlType.F32, [33], data)
            .AddTensor("b", GgmlType.F32, [33], data.Reverse().ToArray());
        using var f = WriteAndOpen(w);
        Assert.Equal(128, f.Alignment);
        Assert.Equal(0, f.DataOffset % 128);
        Assert.Equal(0L, f.Tensors[0].Offset);
        Assert.Equal(256L, f.Tensors[1].Offset); // 132 bytes rounded up to 256
        Assert.True(f.GetData(f.Tensors[0]).SequenceEqual(data));
        Assert.True(f.GetData(f.Tensors[1]).SequenceEqual(data.Reverse().ToArray()));
    }

    [Fact]
    public void Version_2_files_are_read_like_version_3()
    {
        byte[] bytes = GgufTestFiles.Small();
        Assert.Equal(3, bytes[4]);
        bytes[4] = 2;
        string path = _tmp.File("v2.gguf");
        File.WriteAllBytes(path, bytes);
        using var f = GgufFile.Open(path);
        Assert.Equal(2u, f.Version);
        Assert.Equal("llama", f.Architecture);
        Assert.True(f.TryGetStringArray("tokenizer.ggml.tokens", out var toks));
        Assert.Equal(GgufTestFiles.Tokens, toks!);
        Assert.Equal(["tensor.a", "tensor.b", "tensor.c"], f.Tensors.Select(t => t.Name));
        var layout = new GgufLayout(bytes);
        foreach (var t in f.Tensors)
            Assert.True(f.GetData(t).SequenceEqual(bytes.AsSpan((int)(layout.DataStart + layout.Tensors[t.Name].DataOffset), (int)t.ByteSize)));
    }

    [Fact]
    public void Writer_copies_metadata_of_an_opened_file()
    {
        string src = _tmp.File("src.gguf");
        File.WriteAllBytes(src, GgufTestFiles.Small());
        using var a = GgufFile.Open(src);
        var w = new GgufWriter().CopyMetadata(a, k => k != "test.flag");
        using var b = WriteAndOpen(w, "copy.gguf");
        Assert.Equal(a.Metadata.Count - 1, b.Metadata.Count);
        foreach (var (k, v) in b.Metadata) AssertSame(v.Type, a.Metadata[k].Value, v.Value, k);
    }

    [Fact]
    public void Stories260K_fixture_opens_with_expected_facts()
    {
        using var f = GgufFile.Open(Fixtures.Require(Fixtures.Model("stories260K.gguf")));
        Assert.Equal(3u, f.Version);
        Assert.Equal("llama", f.Architecture);
        Assert.Equal(32, f.Alignment);
        Assert.Equal(19, f.Metadata.Count);
        Assert.Equal(48, f.Tensors.Count); // token_embd, output_norm, output + 5 layers x 9
        Assert.True(f.TryGetStringArray("tokenizer.ggml.tokens", out var tokens));
        Assert.Equal(512, tokens!.Length);
        Assert.True(f.TryGetFloatArray("tokenizer.ggml.scores", out var scores));
        Assert.Equal(512, scores!.Length);
        Assert.True(f.TryGetIntArray("tokenizer.ggml.token_type", out var types));
        Assert.Equal(512, types!.Length);
        Assert.Equal("llama", f.GetString("tokenizer.ggml.model"));
        Assert.True(f.TryGetUInt32("llama.embedding_length", out uint dim) && dim == 64);
        Assert.True(f.TryGetUInt32("llama.block_count", out uint layers) && layers == 5);
        Assert.True(f.TryGetUInt32("llama.attention.head_count", out uint heads) && heads == 8);
        Assert.True(f.TryGetUInt32("llama.attention.head_count_kv", out uint kvHeads) && kvHeads == 4);
        Assert.True(f.TryGetFloat("llama.attention.layer_norm_rms_epsilon", out float eps) && eps is > 0 and < 1e-3f);

        var emb = f.GetTensor("token_embd.weight");
        Assert.Equal(GgmlType.F32, emb.Type);
        Assert.Equal([64L, 512L], emb.Dims);
        Assert.Equal(64L * 512 * 4, emb.ByteSize);
        Assert.Equal([64L], f.GetTensor("output_norm.weight").Dims);
        Assert.Equal([64L, 172L], f.GetTensor("blk.4.ffn_up.weight").Dims);
        Assert.Null(f.FindTensor("blk.5.ffn_up.weight"));
        Assert.Throws<GgufFormatException>(() => f.GetTensor("no.such.tensor"));

        // All tensors are F32, aligned, inside the file, and the last one ends within one alignment of EOF.
        long end = 0;
        foreach (var t in f.Tensors)
        {
            Assert.Equal(GgmlType.F32, t.Type);
            Assert.Equal(0, (f.DataOffset + t.Offset) % 32);
            end = Math.Max(end, f.DataOffset + t.Offset + t.ByteSize);
        }
        Assert.True(end <= f.FileSize && f.FileSize - end < 32, $"data ends at {end}, file is {f.FileSize}");
        // Norm weights of a trained model are finite and not all zero.
        var norm = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(f.GetData(f.GetTensor("output_norm.weight")));
        Assert.All(norm.ToArray(), x => Assert.True(float.IsFinite(x)));
        Assert.Contains(norm.ToArray(), x => x != 0);
        GgufTestFiles.ReadEverything(f);
    }

    public static TheoryData<string, string, int, string> VocabFixtures => new()
    {
        { "ggml-vocab-gpt-2.gguf", "gpt2", 50257, "gpt2" },
        { "ggml-vocab-llama-spm.gguf", "llama", 32000, "llama" },
        { "ggml-vocab-phi-3.gguf", "phi3", 32064, "llama" },
        { "ggml-vocab-deepseek-llm.gguf", "llama", 102400, "gpt2" },
    };

    [Theory]
    [MemberData(nameof(VocabFixtures))]
    public void Vocab_fixtures_open_with_expected_facts(string file, string arch, int vocab, string tokenizerModel)
    {
        using var f = GgufFile.Open(Fixtures.Require(Fixtures.Tokenizer(file)));
        Assert.Equal(3u, f.Version);
        Assert.Equal(arch, f.Architecture);
        Assert.Empty(f.Tensors);
        Assert.Equal(tokenizerModel, f.GetString("tokenizer.ggml.model"));
        Assert.True(f.TryGetStringArray("tokenizer.ggml.tokens", out var tokens));
        Assert.Equal(vocab, tokens!.Length);
        Assert.Equal(vocab, tokens.Distinct().Count()); // every token text is distinct
        Assert.True(f.TryGetIntArray("tokenizer.ggml.token_type", out var types));
        Assert.Equal(vocab, types!.Length);
        Assert.All(types, t => Assert.InRange(t, 1, 6));
        if (tokenizerModel == "gpt2")
        {
            Assert.True(f.TryGetStringArray("tokenizer.ggml.merges", out var merges));
            Assert.True(merges!.Length > 10_000);
            Assert.All(merges.Take(100), m => Assert.Contains(' ', m));
        }
        else
        {
            Assert.True(f.TryGetFloatArray("tokenizer.ggml.scores", out var scores));
            Assert.Equal(vocab, scores!.Length);
        }
        Assert.True(f.TryGetUInt32("tokenizer.ggml.bos_token_id", out uint bos) && bos < vocab);
        GgufTestFiles.ReadEverything(f);
    }

    [Fact]
    public void Every_vocab_fixture_in_the_folder_is_covered_and_opens()
    {
        var files = Directory.GetFiles(Fixtures.RequireDirectory(Path.Combine(Fixtures.Root, "tokenizers")), "ggml-vocab-*.gguf");
        Assert.NotEmpty(files);
        string[] covered = ["ggml-vocab-gpt-2.gguf", "ggml-vocab-llama-spm.gguf", "ggml-vocab-phi-3.gguf", "ggml-vocab-deepseek-llm.gguf"];
        foreach (var path in files)
        {
            Assert.Contains(Path.GetFileName(path), covered);
            using var f = GgufFile.Open(path);
            Assert.True(f.TryGetStringArray("tokenizer.ggml.tokens", out var t) && t!.Length > 1000);
        }
    }
}
