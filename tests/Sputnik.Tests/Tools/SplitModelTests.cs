using System.Diagnostics;
using System.Text.Json.Nodes;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Tests.Server;
using Xunit;

namespace Sputnik.Tests.Tools;

/// <summary>
/// `sputnik quantize --split-max-size/--split-max-tensors` writes a split set, and every command runs the set as the
/// model it was cut from: same tensors, same bytes, same greedy tokens.
/// </summary>
[Collection("Console")]
public sealed class SplitModelTests : IClassFixture<TinyF32Models>
{
    private readonly TinyF32Models _m;

    public SplitModelTests(TinyF32Models m) => _m = m;

    private static string[] Shards(string prefix, int count) =>
        Enumerable.Range(0, count).Select(i => $"{prefix}-{i + 1:D5}-of-{count:D5}.gguf").ToArray();

    /// <summary>
    /// The smallest --split-max-size in K (10^3 bytes) that cuts these tensors into 3 shards, by gguf-split's rule
    /// (tensor bytes padded to 32; a tensor that would pass the limit starts the next shard).
    /// </summary>
    private static int KilobytesForThreeShards(IReadOnlyList<GgufTensorInfo> tensors)
    {
        for (int k = 1; ; k++)
        {
            int shards = 1;
            long bytes = 0, count = 0;
            foreach (var t in tensors)
            {
                long padded = (t.ByteSize + 31) / 32 * 32;
                if (count > 0 && bytes + padded > k * 1000L) { shards++; bytes = 0; count = 0; }
                bytes += padded;
                count++;
            }
            if (shards <= 3)
            {
                Assert.Equal(3, shards); // the tiny model's tensor sizes allow exactly three
                return k;
            }
        }
    }

    private static int[] GreedyTokens(string model, params string[] extra)
    {
        string json = CliHarness.Ok(["run", "-m", model, "-p", "Once upon a time", "-n", "12", "--temp", "0", "--json", "-t", "1", .. extra]);
        return JsonNode.Parse(json)!["tokens"]!.AsArray().Select(n => (int)n!).ToArray();
    }

    [Fact]
    public void Quantized_into_three_shards_the_model_runs_like_the_unsplit_one()
    {
        string whole = _m.Dir.File("whole-Q4_K_M.gguf");
        CliHarness.Ok("quantize", _m.Qwen2, whole, "Q4_K_M", "-t", "2");
        using var reference = GgufFile.Open(whole);
        int k = KilobytesForThreeShards(reference.Tensors);

        var err = CliHarness.Run("quantize", _m.Qwen2, _m.Dir.File("split-Q4_K_M.gguf"), "Q4_K_M", "-t", "2", "--split-max-size", $"{k}K");
        Assert.True(err.ExitCode == 0, err.Err);
        var shards = Shards(_m.Dir.File("split-Q4_K_M"), 3);
        Assert.All(shards, s => Assert.True(File.Exists(s), $"{s} was not written"));
        Assert.False(File.Exists(_m.Dir.File("split-Q4_K_M.gguf")));
        Assert.Contains($"wrote {shards[0]} … (3 files)", err.Err);

        using (var split = GgufFile.Open(shards[0]))
        {
            Assert.Equal(3, split.SplitCount);
            Assert.Equal(reference.Tensors.Select(t => (t.Name, t.Type, string.Join(',', t.Dims))), split.Tensors.Select(t => (t.Name, t.Type, string.Join(',', t.Dims))));
            foreach (var t in split.Tensors)
                Assert.True(split.GetData(t).SequenceEqual(reference.GetData(reference.GetTensor(t.Name))), $"{t.Name} differs");
            foreach (var group in split.Tensors.GroupBy(t => t.Shard))
                Assert.True(group.Count() == 1 || group.Sum(t => (t.ByteSize + 31) / 32 * 32) <= k * 1000L, $"shard {group.Key + 1} is over {k}K");
            foreach (var (key, value) in reference.Metadata)
                Assert.Equal(value.ToString(), split.Metadata[key].ToString());
        }

        // run from the first shard and from the last: the same greedy tokens as the unsplit file (Q4_K weights are
        // re-laid out at load through positioned reads of each shard).
        int[] expected = GreedyTokens(whole);
        Assert.NotEmpty(expected);
        Assert.Equal(expected, GreedyTokens(shards[0]));
        Assert.Equal(expected, GreedyTokens(shards[2]));

        var info = JsonNode.Parse(CliHarness.Ok("info", shards[1], "--json"))!;
        Assert.Equal(3, (int)info["split_count"]!);
        Assert.Equal(shards.Sum(s => new FileInfo(s).Length), (long)info["file_bytes"]!);
        Assert.Equal(reference.Tensors.Count, (int)info["tensor_count"]!);
        Assert.Equal(1, (int)JsonNode.Parse(CliHarness.Ok("info", whole, "--json"))!["split_count"]!);
        Assert.Contains("split_count", CliHarness.Ok("info", shards[0]));

        Assert.Equal(CliHarness.Ok("tokenize", "-m", whole, "--text", "Once upon a time"), CliHarness.Ok("tokenize", "-m", shards[0], "--text", "Once upon a time"));

        // A split input re-quantizes into one file without the split keys.
        string merged = _m.Dir.File("merged-Q8_0.gguf");
        CliHarness.Ok("quantize", shards[1], merged, "Q8_0", "-t", "2");
        using var m = GgufFile.Open(merged);
        Assert.Equal(1, m.SplitCount);
        Assert.DoesNotContain(m.Metadata.Keys, GgufSplit.IsSplitKey);
        Assert.Equal(reference.Tensors.Count, m.Tensors.Count);
    }

    [Fact]
    public void DeepSeek2_split_by_tensor_count_generates_the_same_tokens()
    {
        // Q8_0 → Q8_0 copies every tensor byte for byte, so the set holds exactly the source's weights; MLA's per-head
        // views of attn_kv_b and the experts must find their shard.
        string src = TinyDeepSeek2File.Path;
        int tensors;
        using (var f = GgufFile.Open(src)) tensors = f.Tensors.Count;
        string prefix = _m.Dir.File("ds2");
        CliHarness.Ok("quantize", src, prefix + ".gguf", "Q8_0", "--split-max-tensors", ((tensors + 2) / 3).ToString(System.Globalization.CultureInfo.InvariantCulture));
        var shards = Shards(prefix, 3);

        int[] Greedy(string path)
        {
            using var model = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 64 });
            var gen = new Generator(model.Model, model.Tokenizer);
            var options = new GenerationOptions { MaxTokens = 16, Sampling = SamplingOptions.Greedy, StopAtEndOfGeneration = false };
            return gen.Generate(model.CreateState(), model.Tokenizer.Encode("The quick brown fox"), options, new GenerationStats()).Select(t => t.Id).ToArray();
        }
        using (var set = GgufFile.Open(shards[2]))
        {
            Assert.Equal(3, set.SplitCount);
            Assert.Contains(set.Tensors, t => (t.Name.Contains("attn_k_b") || t.Name.Contains("attn_kv_b")) && t.Shard > 0);
            Assert.Contains(set.Tensors, t => t.Name.Contains("_exps") && t.Shard > 0);
        }
        Assert.Equal(Greedy(src), Greedy(shards[0]));
    }

    [Fact]
    public void Broken_sets_are_one_line_errors_naming_the_file()
    {
        string prefix = _m.Dir.File("broken");
        CliHarness.Ok("quantize", _m.Llama, prefix + ".gguf", "Q8_0", "--split-max-tensors", "10");
        var shards = Directory.GetFiles(_m.Dir.Path, "broken-*.gguf").Order().ToArray();
        Assert.True(shards.Length >= 3, $"{shards.Length} shards");

        void Fails(string expected, string path)
        {
            foreach (string[] args in new[] { new[] { "info", path }, ["run", "-m", path, "-n", "1"] })
            {
                var r = CliHarness.Run(args);
                Assert.Equal(1, r.ExitCode);
                Assert.Single(r.ErrLines);
                Assert.StartsWith("error: ", r.Err);
                Assert.Contains(expected, r.Err);
            }
        }

        byte[] second = File.ReadAllBytes(shards[1]);
        File.Delete(shards[1]);
        Fails($"shard 2 of {shards.Length} is missing: {shards[1]}", shards[0]);

        var patched = (byte[])second.Clone();
        var count = new Sputnik.Tests.Gguf.GgufLayout(patched).Kvs[GgufSplit.CountKey];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(patched.AsSpan((int)count.ValueOffset), (ushort)(shards.Length + 1));
        File.WriteAllBytes(shards[1], patched);
        Fails($"split.count = {shards.Length + 1}, but the first shard says {shards.Length}", shards[0]);

        File.WriteAllBytes(shards[1], second[..(second.Length / 2)]);
        Fails($"{shards[1]} (shard 2 of {shards.Length}): ", shards[^1]);

        File.WriteAllBytes(shards[1], second);
        Assert.Equal(0, CliHarness.Run("info", shards[0]).ExitCode);
    }

    [Fact]
    public void Split_options_are_checked()
    {
        var r = CliHarness.Run("quantize", _m.Qwen2, _m.Dir.File("x.gguf"), "Q8_0", "--split-max-size", "2T");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("split size '2T' is not a positive number followed by M or G", r.Err);
        r = CliHarness.Run("quantize", _m.Qwen2, _m.Dir.File("x.gguf"), "Q8_0", "--split-max-tensors", "0");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--split-max-tensors 0 must be at least 1", r.Err);

        // A split output whose shard names would replace the split input's files.
        string prefix = _m.Dir.File("self");
        CliHarness.Ok("quantize", _m.Qwen2, prefix + ".gguf", "Q8_0", "--split-max-tensors", "30");
        string first = Directory.GetFiles(_m.Dir.Path, "self-00001-of-*.gguf").Single();
        byte[] before = File.ReadAllBytes(first);
        r = CliHarness.Run("quantize", first, prefix + ".gguf", "Q4_0", "--split-max-tensors", "10");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("would overwrite the input file", r.Err);
        Assert.Equal(before, File.ReadAllBytes(first));
    }

    [Fact]
    public void Llama_cpp_loads_the_split_set_and_generates_what_it_generates_unsplit()
    {
        // Optional: needs g++ and node-llama-cpp's prebuilt CPU libraries with the matching llama.cpp headers
        // (as bench/check-llamacpp.sh uses them: LLAMACPP_NPM, default /tmp/nlc; headers in ~/.cache/sputnik-bench).
        string npm = Environment.GetEnvironmentVariable("LLAMACPP_NPM") ?? "/tmp/nlc";
        string bins = Path.Combine(npm, "node_modules", "@node-llama-cpp", "linux-x64", "bins", "linux-x64");
        string cache = Environment.GetEnvironmentVariable("LLAMACPP_CACHE")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "sputnik-bench");
        string headers = Path.Combine(cache, "llama.cpp-npm");
        string? libllama = Directory.Exists(bins) ? Directory.GetFiles(bins, "libllama.v*.so").FirstOrDefault() : null;
        string? libggml = Directory.Exists(bins) ? Directory.GetFiles(bins, "libggml.v*.so").FirstOrDefault() : null;
        if (!OperatingSystem.IsLinux() || libllama == null || libggml == null || !File.Exists(Path.Combine(headers, "include", "llama.h")) || !File.Exists("/usr/bin/g++"))
            Assert.Skip($"llama.cpp's prebuilt libraries (under {bins}) or headers (under {headers}) or g++ are not available");

        string exe = _m.Dir.File("llamacpp-greedy");
        string source = Path.Combine(Fixtures.RepoRoot, "bench", "llamacpp-greedy.cpp");
        var (code, _, err) = Exec("/usr/bin/g++", ["-O1", "-std=c++17", $"-I{headers}/include", $"-I{headers}/ggml/include", source, "-o", exe,
            libllama, libggml, Path.Combine(bins, "libggml-base.so"), $"-Wl,-rpath,{bins}", "-lpthread", "-ldl"]);
        Assert.True(code == 0, $"g++ failed: {err}");

        string whole = _m.Dir.File("lc-whole-Q8_0.gguf");
        CliHarness.Ok("quantize", _m.Qwen2, whole, "Q8_0");
        CliHarness.Ok("quantize", _m.Qwen2, _m.Dir.File("lc-split.gguf"), "Q8_0", "--split-max-tensors", "12");
        string first = Directory.GetFiles(_m.Dir.Path, "lc-split-00001-of-*.gguf").Single();
        Assert.DoesNotContain("-of-00001", first);

        string Run(string model)
        {
            // Run from the libraries' folder, where ggml_backend_load_all finds the CPU backends (as the bench does).
            var (rc, stdout, stderr) = Exec(exe, [model, "Once upon a time", "12", "1"], workingDirectory: bins);
            Assert.True(rc == 0, $"llama.cpp could not run {model}: {stderr}");
            return JsonNode.Parse(stdout)!["tokens"]!.ToJsonString();
        }
        string expected = Run(whole);
        Assert.NotEqual("[]", expected);
        Assert.Equal(expected, Run(first));
    }

    private static (int Code, string Out, string Err) Exec(string file, string[] args, string? workingDirectory = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = workingDirectory ?? "" };
        foreach (string a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        string stderr = p.StandardError.ReadToEnd();
        p.WaitForExit();
        return (p.ExitCode, stdout.Result, stderr);
    }
}
