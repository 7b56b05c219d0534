using System.Text;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tools;
using Xunit;
using static Sputnik.Tests.Gguf.GgufTestFiles;

namespace Sputnik.Tests.Gguf;

/// <summary>
/// What a hostile file can make Sputnik print: error messages never carry raw control bytes or megabytes of text,
/// never leak .NET internals ("Sequence contains no elements", "(Parameter 'data')"), and non-finite float
/// hyper-parameters are refused naming the key.
/// </summary>
public sealed class GgufMessageTests : IDisposable
{
    private readonly TempDir _tmp = new();

    public void Dispose() => _tmp.Dispose();

    private static readonly string Bundled = Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");

    /// <summary>2 MB of terminal escapes, carriage returns and bells: what the adversarial pass put in a key.</summary>
    private static readonly string Hostile = string.Concat(Enumerable.Repeat("\u001b[2J\u001b]0;owned\u0007\r\u202E", 200_000));

    /// <summary>Asserts a message is one short, printable line.</summary>
    internal static void AssertPrintable(string message)
    {
        Assert.True(message.Length <= DisplayText.MessageChars + 40, $"message is {message.Length} chars: {message[..Math.Min(400, message.Length)]}");
        foreach (char c in message)
            Assert.False(char.IsControl(c) || char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.Format,
                $"message holds U+{(int)c:X4}: {message}");
        Assert.DoesNotContain("Sequence contains", message);
        Assert.DoesNotContain("(Parameter '", message);
        Assert.DoesNotContain("Exception", message);
    }

    private string Write(GgufWriter w, string name = "m.gguf")
    {
        string path = _tmp.File(name);
        w.Write(path);
        return path;
    }

    /// <summary>A copy of <paramref name="source"/> with one metadata entry changed (null value: removed).</summary>
    private string Rewrite(string source, string key, GgufValue? value)
    {
        var w = new GgufWriter();
        using (var f = GgufFile.Open(source))
        {
            w.CopyMetadata(f, k => k != key);
            if (value != null) w.Set(key, value);
            foreach (var t in f.Tensors) w.AddTensor(t.Name, t.Type, t.Dims, f.GetData(t).ToArray());
        }
        return Write(w, $"rewritten-{Guid.NewGuid():N}.gguf");
    }

    private static Exception? TryLoad(string path)
    {
        try
        {
            using var m = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 64 });
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    [Fact]
    public void A_two_megabyte_key_of_escape_sequences_gives_a_short_printable_message_naming_the_offset()
    {
        byte[] valid = Small();
        var layout = new GgufLayout(valid);
        var first = layout.Kvs.Values.OrderBy(k => k.KeyOffset).First();
        // Replace the first key's name with the hostile text, then give it an unknown value type.
        byte[] key = Encoding.UTF8.GetBytes(Hostile);
        var b = new List<byte>(valid[..(int)first.KeyOffset]);
        b.AddRange(BitConverter.GetBytes((ulong)key.Length));
        b.AddRange(key);
        b.AddRange(BitConverter.GetBytes(77u));
        b.AddRange(valid[(int)first.ValueOffset..]);
        string path = _tmp.File("hostile-key.gguf");
        File.WriteAllBytes(path, b.ToArray());
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
        AssertPrintable(e.Message);
        Assert.Contains("unknown value type 77", e.Message);
        Assert.Contains($"offset {first.KeyOffset}", e.Message);
        Assert.Contains("\\x1B[2J", e.Message); // the key is shown, escaped
    }

    [Fact]
    public void A_hostile_tensor_name_is_escaped_and_cut_in_the_message()
    {
        string name = Hostile[..5000];
        string path = Write(new GgufWriter().Set("general.architecture", "llama").AddTensor(name, new float[8], 8));
        byte[] bytes = File.ReadAllBytes(path);
        PutU32(bytes, new GgufLayout(bytes).Tensors[name].TypeOffset, 99); // an unknown ggml type
        File.WriteAllBytes(path, bytes);
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
        AssertPrintable(e.Message);
        Assert.Contains("unknown ggml type id 99", e.Message);
        Assert.Contains("\\x1B[2J", e.Message);
    }

    [Fact]
    public void Unsupported_architecture_names_are_escaped()
    {
        string path = Write(new GgufWriter().Set("general.architecture", "\u001b]0;pwned\u0007" + new string('x', 10_000))
            .AddTensor("token_embd.weight", new float[8], 4, 2));
        var e = TryLoad(path);
        Assert.IsType<UnsupportedModelException>(e);
        AssertPrintable(e!.Message);
        Assert.Contains("\\x1B]0;pwned\\x07", e.Message);
    }

    public static TheoryData<string, float> NonFiniteLlamaFloats => new()
    {
        { "llama.attention.layer_norm_rms_epsilon", float.NaN },
        { "llama.attention.layer_norm_rms_epsilon", float.PositiveInfinity },
        { "llama.attention.layer_norm_rms_epsilon", -1e-5f },
        { "llama.rope.freq_base", float.NaN },
        { "llama.rope.freq_base", float.NegativeInfinity },
        { "llama.rope.freq_base", 0f },
    };

    [Theory]
    [MemberData(nameof(NonFiniteLlamaFloats))]
    public void Bad_llama_float_hyper_parameters_are_refused_naming_the_key(string key, float value)
    {
        string model = _tmp.File("llama.gguf");
        SyntheticModel.Write(model, new SynthOptions { Preset = SyntheticModel.FindPreset("llama-tiny"), FileType = FileType.AllF32, Threads = 1 });
        Assert.Null(TryLoad(model)); // the unmodified file loads
        var e = TryLoad(Rewrite(model, key, GgufValue.Of(value)));
        var format = Assert.IsType<GgufFormatException>(e);
        Assert.Contains($"'{key}'", format.Message);
        AssertPrintable(format.Message);
    }

    public static TheoryData<string, float> NonFiniteDeepSeekFloats => new()
    {
        { "deepseek2.expert_weights_scale", float.NaN },
        { "deepseek2.expert_weights_scale", float.PositiveInfinity },
        { "deepseek2.attention.layer_norm_rms_epsilon", float.NaN },
        { "deepseek2.rope.freq_base", float.PositiveInfinity },
        { "deepseek2.rope.scaling.factor", float.NaN },
        { "deepseek2.rope.scaling.yarn_log_multiplier", float.NegativeInfinity },
    };

    [Theory]
    [MemberData(nameof(NonFiniteDeepSeekFloats))]
    public void Bad_deepseek2_float_hyper_parameters_are_refused_naming_the_key(string key, float value)
    {
        var e = TryLoad(Rewrite(Bundled, key, GgufValue.Of(value)));
        var format = Assert.IsType<GgufFormatException>(e);
        Assert.Contains($"'{key}'", format.Message);
        AssertPrintable(format.Message);
    }

    /// <summary>Values that are wrong for almost any key: absent, zero, huge, wrong types, empty, hostile text (NaN: the theories above).</summary>
    private static IEnumerable<(string Name, GgufValue? Value)> HostileValues() =>
    [
        ("removed", null),
        ("zero", GgufValue.Of(0u)),
        ("huge", GgufValue.Of(ulong.MaxValue)),
        ("hostile string", GgufValue.Of(Hostile[..3000])),
        ("empty string array", GgufValue.Of(Array.Empty<string>())),
    ];

    /// <summary>
    /// Every metadata key of a model (the bundled deepseek2 one, a synthetic llama) replaced by each hostile value: the
    /// model loads, or is refused with a GGUF/unsupported-model error whose message is printable and names no .NET internals.
    /// </summary>
    [Theory]
    [InlineData("deepseek2")]
    [InlineData("llama")]
    public void Every_metadata_key_with_hostile_values_loads_or_fails_with_a_clean_message(string arch)
    {
        string model = Bundled;
        if (arch == "llama")
        {
            model = _tmp.File("llama.gguf");
            SyntheticModel.Write(model, new SynthOptions { Preset = SyntheticModel.FindPreset("llama-tiny"), FileType = FileType.AllF32, Threads = 1 });
        }
        string[] keys;
        using (var f = GgufFile.Open(model)) keys = f.Metadata.Keys.Where(k => k != "tokenizer.chat_template").ToArray();
        Assert.True(keys.Length > 20);
        var failures = new List<string>();
        int refused = 0;
        foreach (string key in keys)
        {
            foreach (var (name, value) in HostileValues())
            {
                string path = Rewrite(model, key, value);
                var e = TryLoad(path);
                File.Delete(path);
                if (e == null) continue;
                refused++;
                if (e is not (GgufFormatException or UnsupportedModelException))
                    failures.Add($"{key} = {name}: {e.GetType().Name}: {e.Message}");
                else
                {
                    try { AssertPrintable(e.Message); }
                    catch (Exception a) { failures.Add($"{key} = {name}: {a.Message}"); }
                }
            }
        }
        Assert.True(failures.Count == 0, $"{failures.Count} bad outcomes:\n{string.Join('\n', failures.Take(40))}");
        Assert.True(refused > keys.Length, $"only {refused} mutants were refused: the hostile values are not reaching the loader");
    }
}
