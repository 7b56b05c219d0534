using System.Text;
using Sputnik.Gguf;
using Sputnik.Tensors;
using Xunit;
using static Sputnik.Tests.Gguf.GgufTestFiles;

namespace Sputnik.Tests.Gguf;

/// <summary>
/// Corrupt, truncated and hostile files. Every one must fail with <see cref="GgufFormatException"/> (never an
/// IndexOutOfRange/Overflow/OutOfMemory/Argument exception), and the message must name what is wrong.
/// </summary>
public sealed class GgufHostileTests : IDisposable
{
    private readonly TempDir _tmp = new();
    private readonly byte[] _valid = Small();
    private readonly GgufLayout _layout;

    public GgufHostileTests() => _layout = new GgufLayout(_valid);

    public void Dispose() => _tmp.Dispose();

    private byte[] Copy() => (byte[])_valid.Clone();

    /// <summary>Opens the bytes; asserts exactly GgufFormatException whose message contains every substring.</summary>
    private GgufFormatException Reject(byte[] bytes, params string[] mustContain)
    {
        string path = _tmp.File("hostile.gguf");
        File.WriteAllBytes(path, bytes);
        GgufFile? opened = null;
        Exception? thrown = null;
        try { opened = GgufFile.Open(path); }
        catch (Exception e) { thrown = e; }
        opened?.Dispose();
        Assert.True(thrown != null, $"file was accepted; expected a GgufFormatException mentioning {string.Join(", ", mustContain)}");
        var ex = Assert.IsType<GgufFormatException>(thrown, exactMatch: true);
        foreach (string s in mustContain)
            Assert.True(ex.Message.Contains(s, StringComparison.Ordinal), $"message \"{ex.Message}\" does not mention \"{s}\"");
        return ex;
    }

    private GgufFile Accept(byte[] bytes)
    {
        string path = _tmp.File("accepted.gguf");
        File.WriteAllBytes(path, bytes);
        return GgufFile.Open(path);
    }

    [Fact]
    public void The_base_file_is_valid()
    {
        using var f = Accept(_valid);
        Assert.Equal(8, f.Metadata.Count);
        Assert.Equal(3, f.Tensors.Count);
        Assert.Equal(_layout.DataStart, f.DataOffset);
        GgufTestFiles.ReadEverything(f);
    }

    // ---- truncation -----------------------------------------------------------------------------------------

    [Fact]
    public void Empty_and_tiny_files_are_rejected()
    {
        Reject([], "0 bytes");
        Reject(_valid[..10], "10 bytes");
        Reject(_valid[..23], "23 bytes");
        Reject(Encoding.ASCII.GetBytes("GGUF"), "4 bytes");
    }

    [Fact]
    public void Missing_file_is_FileNotFound_not_a_format_error() =>
        Assert.Throws<FileNotFoundException>(() => GgufFile.Open(_tmp.File("nope.gguf")));

    /// <summary>Which key or tensor the byte at <paramref name="offset"/> belongs to, if its name was read before it.</summary>
    private GgufField? FieldAt(long offset) => _layout.Fields.LastOrDefault(f => f.Offset <= offset);

    [Fact]
    public void Truncation_at_every_byte_of_the_header_and_inside_the_data_is_rejected()
    {
        var cuts = Enumerable.Range(0, (int)_layout.DataStart + 1).Select(i => (long)i).ToList();
        // Inside the data: at each tensor's start, one byte in, one byte short of its end, and one byte short of EOF.
        foreach (var t in _layout.TensorOrder)
        {
            long start = _layout.DataStart + t.DataOffset;
            cuts.AddRange([start, start + 1, start + t.ByteSize / 2, start + t.ByteSize - 1]);
        }
        cuts.Add(_valid.Length - 1);
        int checkedNames = 0;
        foreach (long cut in cuts.Distinct().Where(c => c < _valid.Length))
        {
            var ex = Reject(_valid[..(int)cut]);
            string m = ex.Message;
            if (cut < 24)
            {
                Assert.Contains($"only {cut} bytes", m);
                continue;
            }
            Assert.True(m.Contains("offset", StringComparison.Ordinal), $"cut at {cut}: \"{m}\" gives no offset");
            Assert.True(m.Contains("truncated") || m.Contains("impossible") || m.Contains("past the end"),
                $"cut at {cut}: \"{m}\" does not say the file is short");
            if (cut < _layout.HeaderEnd)
            {
                // Once a key's or tensor's name has been read, the error must name it (unless an up-front count check
                // — which runs before any name is read — already rejected the file).
                var field = FieldAt(cut)!;
                if (field.AfterName && !m.Contains(" count = "))
                {
                    Assert.True(m.Contains($"'{field.Owner}'"), $"cut at {cut} inside {field.What} of {field.Owner}: \"{m}\"");
                    checkedNames++;
                }
            }
            else if (cut >= _layout.DataStart)
            {
                // Cut inside the data: the first tensor that no longer fits is named.
                var first = _layout.TensorOrder.First(t => _layout.DataStart + t.DataOffset + t.ByteSize > cut);
                Assert.Contains($"'{first.Name}'", m);
                Assert.Contains("past the end", m);
            }
        }
        Assert.True(checkedNames > 50, $"only {checkedNames} truncations were checked for naming the key/tensor");
    }

    [Fact]
    public void Truncation_at_every_field_boundary_names_the_field_owner()
    {
        foreach (var field in _layout.Fields.Where(f => f.Offset >= 24))
        {
            var ex = Reject(_valid[..(int)field.Offset]);
            if (field.AfterName && !ex.Message.Contains(" count = "))
                Assert.Contains($"'{field.Owner}'", ex.Message);
            else
                Assert.Contains("offset", ex.Message);
        }
        // Cut exactly at the end of the header (before the padding) and inside the padding.
        Reject(_valid[..(int)_layout.HeaderEnd], "tensor data should start at offset");
        Reject(_valid[..(int)(_layout.DataStart - 1)], "tensor data should start at offset");
        // Cut exactly at the start of the data: every tensor is missing; the first is named.
        Reject(_valid[..(int)_layout.DataStart], "'tensor.a'", "past the end");
    }

    // ---- fixed header ---------------------------------------------------------------------------------------

    [Fact]
    public void Bad_magic_is_rejected()
    {
        var b = Copy();
        b[0] = (byte)'X';
        Reject(b, "magic", "offset 0");
        b = Copy();
        PutU32(b, 0, 0x47475546); // byte-swapped "FUGG"
        Reject(b, "magic");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(1u)]
    [InlineData(4u)]
    [InlineData(99u)]
    [InlineData(0x03000000u)] // a big-endian v3 file
    [InlineData(uint.MaxValue)]
    public void Unsupported_versions_are_rejected(uint version)
    {
        var b = Copy();
        PutU32(b, 4, version);
        Reject(b, "version", version.ToString());
    }

    [Theory]
    [InlineData(1UL << 63)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 32)]
    [InlineData(100UL)]
    public void Absurd_tensor_counts_are_rejected(ulong count)
    {
        var b = Copy();
        PutU64(b, GgufLayout.TensorCountOffset, count);
        Reject(b, "tensor count", count.ToString());
    }

    [Theory]
    [InlineData(1UL << 63)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1UL << 31)]
    [InlineData(1000UL)]
    public void Absurd_kv_counts_are_rejected(ulong count)
    {
        var b = Copy();
        PutU64(b, GgufLayout.KvCountOffset, count);
        Reject(b, "metadata count", count.ToString());
    }

    [Fact]
    public void Kv_count_one_too_many_fails_while_reading_tensor_bytes_as_metadata()
    {
        var b = Copy();
        PutU64(b, GgufLayout.KvCountOffset, (ulong)_layout.Kvs.Count + 1);
        var ex = Reject(b);
        Assert.Contains("offset", ex.Message);
    }

    [Fact]
    public void Tensor_count_too_small_moves_the_data_start_and_is_read_consistently_too_large_is_not()
    {
        var b = Copy();
        PutU64(b, GgufLayout.TensorCountOffset, 2);
        // With one tensor info fewer, the header "ends" where the third info begins and the data start moves there
        // (rounded up to the alignment). llama.cpp reads such a file the same way; the offsets stay relative to it.
        using (var f = Accept(b))
        {
            Assert.Equal(2, f.Tensors.Count);
            long dataStart = GgufFile.AlignUp(_layout.Tensors["tensor.c"].NameOffset, 32);
            Assert.Equal(dataStart, f.DataOffset);
            Assert.True(f.GetData(f.GetTensor("tensor.b")).SequenceEqual(
                b.AsSpan((int)(dataStart + _layout.Tensors["tensor.b"].DataOffset), 68)));
            GgufTestFiles.ReadEverything(f);
        }
        PutU64(b, GgufLayout.TensorCountOffset, 4);
        Reject(b, "offset");
    }

    // ---- metadata -------------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1UL << 63)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    [InlineData((1UL << 31) + 5)]
    [InlineData(5000UL)]
    public void Absurd_key_lengths_are_rejected(ulong length)
    {
        var b = Copy();
        PutU64(b, _layout.Kvs["test.flag"].KeyOffset, length);
        Reject(b, "key of metadata entry #4", length.ToString(), "offset");
    }

    [Theory]
    [InlineData(1UL << 63)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    [InlineData(5000UL)]
    public void Absurd_string_value_lengths_are_rejected(ulong length)
    {
        var b = Copy();
        PutU64(b, _layout.Kvs["general.architecture"].ValueOffset, length);
        Reject(b, "'general.architecture'", length.ToString());
    }

    [Theory]
    [InlineData(1UL << 63)]
    [InlineData(1UL << 40)]
    [InlineData(1UL << 62)]
    [InlineData(ulong.MaxValue)]
    [InlineData(1000UL)]
    public void Absurd_array_lengths_are_rejected(ulong count)
    {
        foreach (string key in new[] { "tokenizer.ggml.tokens", "tokenizer.ggml.scores" })
        {
            var b = Copy();
            PutU64(b, _layout.Kvs[key].ArrayCountOffset!.Value, count);
            Reject(b, $"'{key}'", count.ToString());
        }
    }

    [Fact]
    public void Absurd_length_of_a_string_inside_an_array_is_rejected()
    {
        var b = Copy();
        long firstElement = _layout.Kvs["tokenizer.ggml.tokens"].ArrayCountOffset!.Value + 8;
        PutU64(b, firstElement + 8 + 3, 1UL << 40); // length of element #1 ("<s>" is 3 bytes)
        Reject(b, "element 1 of 'tokenizer.ggml.tokens'", (1UL << 40).ToString());
    }

    [Theory]
    [InlineData(13u)]
    [InlineData(255u)]
    [InlineData(0x80000009u)]
    [InlineData(uint.MaxValue)]
    public void Unknown_value_type_ids_are_rejected(uint type)
    {
        var b = Copy();
        PutU32(b, _layout.Kvs["test.key_b"].TypeOffset, type);
        Reject(b, "'test.key_b'", "unknown value type", type.ToString());

        b = Copy();
        PutU32(b, _layout.Kvs["tokenizer.ggml.scores"].ArrayCountOffset!.Value - 4, type);
        Reject(b, "'tokenizer.ggml.scores'", "unknown array element type", type.ToString());
    }

    [Fact]
    public void Changing_an_array_element_type_to_a_wider_type_is_caught()
    {
        // scores (5 floats = 20 bytes) claimed as 5 strings: the float bytes are read as a string length.
        var b = Copy();
        PutU32(b, _layout.Kvs["tokenizer.ggml.scores"].ArrayCountOffset!.Value - 4, (uint)GgufValueType.String);
        Reject(b, "offset");
        // claimed as 5 u64: 40 bytes, which eat into the tensor infos; the reader must still fail cleanly.
        b = Copy();
        PutU32(b, _layout.Kvs["tokenizer.ggml.scores"].ArrayCountOffset!.Value - 4, (uint)GgufValueType.UInt64);
        Reject(b, "offset");
    }

    [Fact]
    public void Duplicate_keys_are_rejected()
    {
        var b = Copy();
        long at = _layout.Kvs["test.key_b"].KeyOffset + 8 + "test.key_".Length;
        Assert.Equal((byte)'b', b[at]);
        b[at] = (byte)'a';
        Reject(b, "'test.key_a'", "appears twice", "offset");
    }

    [Theory]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(0x80)]
    [InlineData(0xFF)]
    public void Bool_bytes_other_than_0_and_1_are_rejected(byte value)
    {
        var b = Copy();
        b[_layout.Kvs["test.flag"].ValueOffset] = value;
        Reject(b, "'test.flag'", $"bool byte {value}", "offset");
    }

    [Fact]
    public void Bool_bytes_inside_arrays_are_checked_too()
    {
        var w = new GgufWriter().Set("flags", GgufValue.Of(new GgufArray(GgufValueType.Bool, new[] { true, false, true })));
        var b = ToBytes(w);
        var layout = new GgufLayout(b);
        b[layout.Kvs["flags"].ArrayCountOffset!.Value + 8 + 1] = 2;
        Reject(b, "'flags'", "bool byte 2");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(3u)]
    [InlineData(48u)]
    [InlineData(1u << 21)]
    [InlineData(0x80000000u)]
    [InlineData(uint.MaxValue)]
    public void Bad_alignment_values_are_rejected(uint alignment)
    {
        var b = Copy();
        PutU32(b, _layout.Kvs["general.alignment"].ValueOffset, alignment);
        Reject(b, "general.alignment", alignment.ToString());
    }

    public static TheoryData<string> NonIntegerAlignments => ["string", "float", "bool", "array", "negative", "u64-huge"];

    [Theory]
    [MemberData(nameof(NonIntegerAlignments))]
    public void Non_integer_alignment_values_are_rejected(string kind)
    {
        GgufValue v = kind switch
        {
            "string" => GgufValue.Of("32"),
            "float" => GgufValue.Of(32f),
            "bool" => GgufValue.Of(true),
            "array" => GgufValue.Of(new[] { 32 }),
            "negative" => GgufValue.Of(-32),
            _ => GgufValue.Of(ulong.MaxValue),
        };
        // The writer refuses to lay out a file with such an alignment, so write it under a same-length key and
        // rename the key afterwards.
        var w = new GgufWriter().Set("a", 1u).Set("general.alignmenX", v).AddTensor("t", GgmlType.F32, [8], new byte[32]);
        var b = ToBytes(w);
        var layout = new GgufLayout(b);
        b[layout.Kvs["general.alignmenX"].KeyOffset + 8 + "general.alignmen".Length] = (byte)'t';
        Reject(b, "general.alignment");
    }

    [Theory]
    [InlineData(0L)]
    [InlineData(3L)]
    [InlineData(-32L)]
    [InlineData(1L << 21)]
    public void Writer_refuses_bad_alignments(long alignment)
    {
        Assert.Throws<ArgumentException>(() => new GgufWriter().Set("general.alignment", GgufValue.Of(alignment)));
        Assert.Throws<ArgumentException>(() => new GgufWriter().Set("general.alignment", GgufValue.Of(true)));
        Assert.Throws<ArgumentException>(() => new GgufWriter().Set("general.alignment", "32"));
    }

    [Fact]
    public void Alignment_larger_than_32_makes_32_aligned_offsets_misaligned()
    {
        // The file was laid out for 32; claiming 64 makes tensor.b (at data offset 64+... ) or DataOffset wrong.
        var b = Copy();
        PutU32(b, _layout.Kvs["general.alignment"].ValueOffset, 64);
        var misaligned = _layout.TensorOrder.First(t => t.DataOffset % 64 != 0);
        Reject(b, $"'{misaligned.Name}'", "not a multiple of the alignment 64");
    }

    [Theory]
    [InlineData(9)]
    [InlineData(20)]
    [InlineData(1000)]
    public void Deeply_nested_arrays_are_rejected(int depth)
    {
        var inner = new GgufArray(GgufValueType.Int32, new[] { 1 });
        for (int i = 1; i < depth; i++) inner = new GgufArray(GgufValueType.Array, new[] { inner });
        var b = ToBytes(new GgufWriter().Set("deep.key", GgufValue.Of(inner)));
        Reject(b, "'deep.key'", "nested deeper");
    }

    [Fact]
    public void Nesting_up_to_the_limit_is_accepted()
    {
        var inner = new GgufArray(GgufValueType.String, new[] { "leaf" });
        for (int i = 1; i < 8; i++) inner = new GgufArray(GgufValueType.Array, new[] { inner, inner });
        var path = _tmp.File("nest8.gguf");
        new GgufWriter().Set("ok.key", GgufValue.Of(inner)).Write(path);
        using var f = GgufFile.Open(path);
        var a = (GgufArray)f.Metadata["ok.key"].Value;
        for (int i = 1; i < 8; i++) a = (GgufArray)a.Items.GetValue(1)!;
        Assert.Equal(["leaf"], (string[])a.Items);
    }

    [Fact]
    public void A_nested_array_whose_inner_count_lies_is_rejected()
    {
        var v = new GgufArray(GgufValueType.Array, new[] { new GgufArray(GgufValueType.Int64, new[] { 1L, 2L }) });
        var b = ToBytes(new GgufWriter().Set("nest", GgufValue.Of(v)));
        var layout = new GgufLayout(b);
        long innerCount = layout.Kvs["nest"].ArrayCountOffset!.Value + 8 + 4;
        PutU64(b, innerCount, 1UL << 61);
        Reject(b, "'nest'", (1UL << 61).ToString());
    }

    // ---- tensor infos ---------------------------------------------------------------------------------------

    [Theory]
    [InlineData(1UL << 63)]
    [InlineData(1UL << 40)]
    [InlineData(ulong.MaxValue)]
    [InlineData(4096UL)]
    public void Absurd_tensor_name_lengths_are_rejected(ulong length)
    {
        var b = Copy();
        PutU64(b, _layout.Tensors["tensor.b"].NameOffset, length);
        Reject(b, "name of tensor #1", length.ToString());
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(5u)]
    [InlineData(uint.MaxValue)]
    public void Bad_dimension_counts_are_rejected(uint nDims)
    {
        var b = Copy();
        PutU32(b, _layout.Tensors["tensor.c"].NDimsOffset, nDims);
        Reject(b, "'tensor.c'", $"{nDims} dimensions");
    }

    [Fact]
    public void Zero_and_negative_dimensions_are_rejected()
    {
        var b = Copy();
        PutU64(b, _layout.Tensors["tensor.a"].DimsOffset + 8, 0);
        Reject(b, "'tensor.a'", "dimension 1 is 0");
        b = Copy();
        PutU64(b, _layout.Tensors["tensor.a"].DimsOffset, 1UL << 63);
        Reject(b, "'tensor.a'", "dimension 0");
    }

    [Theory]
    [InlineData(1UL << 32, 1UL << 32)]   // 2^64 elements
    [InlineData(1UL << 62, 4UL)]         // 2^64
    [InlineData((1UL << 62) - 1, 3UL)]   // just over long.MaxValue
    public void Dimension_products_that_overflow_are_rejected(ulong d0, ulong d1)
    {
        var b = Copy();
        PutU64(b, _layout.Tensors["tensor.a"].DimsOffset, d0);
        PutU64(b, _layout.Tensors["tensor.a"].DimsOffset + 8, d1);
        Reject(b, "'tensor.a'", "overflows");
    }

    [Fact]
    public void Byte_sizes_that_overflow_are_rejected()
    {
        // 2^31 x 2^31 = 2^62 F32 elements fit a long; 2^64 bytes do not.
        var b = Copy();
        PutU64(b, _layout.Tensors["tensor.a"].DimsOffset, 1UL << 31);
        PutU64(b, _layout.Tensors["tensor.a"].DimsOffset + 8, 1UL << 31);
        Reject(b, "'tensor.a'", "overflows");
        // Three dims whose product fits but whose size is merely enormous: caught by the extent check instead.
        b = Copy();
        PutU64(b, _layout.Tensors["tensor.c"].DimsOffset + 16, 1UL << 40);
        Reject(b, "'tensor.c'", "past the end");
    }

    [Fact]
    public void Row_length_not_a_multiple_of_the_block_size_is_rejected()
    {
        var b = Copy();
        PutU64(b, _layout.Tensors["tensor.b"].DimsOffset, 33); // Q8_0 blocks are 32 wide
        Reject(b, "'tensor.b'", "block size 32");
    }

    [Theory]
    [InlineData(4u)]    // Q4_2, removed from ggml
    [InlineData(5u)]    // Q4_3, removed from ggml
    [InlineData(31u)]
    [InlineData(40u)]   // one past MXFP4 (39), the last type ggml defines
    [InlineData(1000u)]
    [InlineData(uint.MaxValue)]
    public void Unknown_ggml_type_ids_are_rejected(uint type)
    {
        var b = Copy();
        PutU32(b, _layout.Tensors["tensor.b"].TypeOffset, type);
        Reject(b, "'tensor.b'", $"unknown ggml type id {type}");
    }

    [Fact]
    public void Changing_a_tensor_type_to_a_larger_one_is_caught_by_the_extent_or_overlap_check()
    {
        // tensor.a: F32 [8,2] = 64 bytes; as F64 it takes 128 and runs into tensor.b.
        var b = Copy();
        PutU32(b, _layout.Tensors["tensor.a"].TypeOffset, (uint)GgmlType.F64);
        Reject(b, "'tensor.a'", "'tensor.b'", "overlap");
        // tensor.c (last): F16 [4,2,2] = 32 bytes; as F64 it takes 128 and runs past EOF.
        b = Copy();
        PutU32(b, _layout.Tensors["tensor.c"].TypeOffset, (uint)GgmlType.F64);
        Reject(b, "'tensor.c'", "past the end");
    }

    [Theory]
    [InlineData(1UL << 40)]
    [InlineData(1UL << 62)]
    [InlineData(0x7FFF_FFFF_FFFF_FFE0UL)]
    public void Tensor_offsets_past_the_end_are_rejected(ulong offset)
    {
        var b = Copy();
        PutU64(b, _layout.Tensors["tensor.b"].OffsetOffset, offset);
        Reject(b, "'tensor.b'", "past the end", "offset");
    }

    [Theory]
    [InlineData(1UL << 63)]
    [InlineData(ulong.MaxValue - 31)]
    public void Tensor_offsets_beyond_long_range_are_rejected(ulong offset)
    {
        var b = Copy();
        PutU64(b, _layout.Tensors["tensor.b"].OffsetOffset, offset);
        Reject(b, "'tensor.b'", "offset");
    }

    [Fact]
    public void Tensor_ending_exactly_at_eof_is_accepted_one_byte_later_is_not()
    {
        var t = _layout.Tensors["tensor.c"];
        long end = _layout.DataStart + t.DataOffset + t.ByteSize;
        Assert.Equal(_valid.Length, end); // the writer does not pad after the last tensor
        using (var f = Accept(_valid)) Assert.Equal(t.ByteSize, f.GetData(f.GetTensor("tensor.c")).Length);
        Reject(_valid[..^1], "'tensor.c'", "past the end");
    }

    [Theory]
    [InlineData(1)]
    [InlineData(16)]
    [InlineData(31)]
    public void Misaligned_offsets_are_rejected(int delta)
    {
        var b = Copy();
        var t = _layout.Tensors["tensor.b"];
        PutU64(b, t.OffsetOffset, (ulong)(t.DataOffset + delta));
        Reject(b, "'tensor.b'", "offset", "alignment");
    }

    [Fact]
    public void Overlapping_tensors_are_rejected()
    {
        var b = Copy();
        PutU64(b, _layout.Tensors["tensor.b"].OffsetOffset, (ulong)_layout.Tensors["tensor.a"].DataOffset);
        Reject(b, "'tensor.a'", "'tensor.b'", "overlap", "offset");

        // Partial overlap: tensor.c moved back into the tail of tensor.b (still aligned).
        b = Copy();
        var tb = _layout.Tensors["tensor.b"];
        PutU64(b, _layout.Tensors["tensor.c"].OffsetOffset, (ulong)(tb.DataOffset + 32));
        Reject(b, "'tensor.b'", "'tensor.c'", "overlap");
    }

    [Fact]
    public void Tensors_listed_out_of_order_but_disjoint_are_accepted()
    {
        var b = Copy();
        var ta = _layout.Tensors["tensor.a"];
        var tc = _layout.Tensors["tensor.c"];
        // Swap a's and c's data offsets: a (64 bytes) does not fit in c's 32-byte slot at the end of the file ...
        PutU64(b, ta.OffsetOffset, (ulong)tc.DataOffset);
        PutU64(b, tc.OffsetOffset, (ulong)ta.DataOffset);
        Reject(b, "'tensor.a'", "past the end");
        // ... but with 32 more bytes at the end it does, and the three tensors are disjoint again.
        b = [.. b, .. new byte[32]];
        using var f = Accept(b);
        Assert.Equal(tc.DataOffset, f.GetTensor("tensor.a").Offset);
        Assert.Equal(0, f.GetTensor("tensor.c").Offset);
        Assert.True(f.GetData(f.GetTensor("tensor.c")).SequenceEqual(_valid.AsSpan((int)_layout.DataStart, (int)tc.ByteSize)));
    }

    [Fact]
    public void Duplicate_tensor_names_are_rejected()
    {
        var b = Copy();
        long at = _layout.Tensors["tensor.c"].NameOffset + 8 + "tensor.".Length;
        Assert.Equal((byte)'c', b[at]);
        b[at] = (byte)'a';
        Reject(b, "'tensor.a'", "appears twice", "offset");
    }

    [Fact]
    public void Invalid_utf8_in_names_does_not_crash()
    {
        // Invalid UTF-8 decodes to U+FFFD; two keys that differ only in invalid bytes then collide, which must
        // still be a format error rather than an ArgumentException from the dictionary.
        var b = Copy();
        long ka = _layout.Kvs["test.key_a"].KeyOffset + 8 + 9;
        long kb = _layout.Kvs["test.key_b"].KeyOffset + 8 + 9;
        b[ka] = 0xFF;
        b[kb] = 0xFE;
        Reject(b, "appears twice");
        b = Copy();
        b[_layout.Tensors["tensor.a"].NameOffset + 8 + 7] = 0xC3; // lone lead byte
        using var f = Accept(b);
        Assert.Contains(f.Tensors, t => t.Name.Contains('\uFFFD'));
    }
}
