using System.Text.Json;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Tools;

[Collection("Console")]
public sealed class BenchAndErrorTests : IClassFixture<TempDir>
{
    private readonly TempDir _dir;
    private readonly string _model;

    public BenchAndErrorTests(TempDir dir)
    {
        _dir = dir;
        _model = dir.File("tiny.gguf");
        if (!File.Exists(_model))
            SyntheticModel.Write(_model, new SynthOptions { Preset = SyntheticModel.FindPreset("llama-tiny"), FileType = FileType.Q8_0, Seed = 1 });
    }

    [Fact]
    public void Bench_json_is_one_object_with_the_fields()
    {
        string stdout = CliHarness.Ok("bench", "-m", _model, "-p", "16", "-n", "4", "-t", "1", "-r", "2", "--json");
        Assert.Single(stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        using var doc = JsonDocument.Parse(stdout);
        var o = doc.RootElement;
        Assert.Equal(new FileInfo(_model).Length, o.GetProperty("model_bytes").GetInt64());
        Assert.Equal(1, o.GetProperty("threads").GetInt32());
        Assert.Equal(16, o.GetProperty("pp").GetProperty("n").GetInt32());
        Assert.True(o.GetProperty("pp").GetProperty("tok_s").GetDouble() > 0);
        Assert.True(o.GetProperty("pp").GetProperty("std").GetDouble() >= 0);
        Assert.Equal(4, o.GetProperty("tg").GetProperty("n").GetInt32());
        Assert.True(o.GetProperty("tg").GetProperty("tok_s").GetDouble() > 0);
        Assert.True(o.GetProperty("peak_rss_bytes").GetInt64() > 0);
        Assert.True(o.GetProperty("load_ms").GetDouble() >= 0);
    }

    [Fact]
    public void Bench_without_a_model_measures_the_bundled_one()
    {
        using var doc = JsonDocument.Parse(CliHarness.Ok("bench", "-p", "4", "-n", "2", "-t", "1", "-r", "1", "--json"));
        Assert.Equal(Path.GetFileName(Sputnik.Tests.Server.TestServer.BundledModelPath), doc.RootElement.GetProperty("model").GetString());
        Assert.True(doc.RootElement.GetProperty("tg").GetProperty("tok_s").GetDouble() > 0);
    }

    [Fact]
    public void Bench_skips_a_test_given_zero_tokens()
    {
        using var doc = JsonDocument.Parse(CliHarness.Ok("bench", "-m", _model, "-p", "0", "-n", "2", "-t", "1", "-r", "1", "--json"));
        Assert.Equal(JsonValueKind.Null, doc.RootElement.GetProperty("pp").ValueKind);
        Assert.Equal(JsonValueKind.Object, doc.RootElement.GetProperty("tg").ValueKind);
    }

    [Fact]
    public void Bench_runs_each_depth_with_the_cache_types_given()
    {
        using var doc = JsonDocument.Parse(CliHarness.Ok("bench", "-m", _model, "-p", "8", "-n", "2", "-d", "0,24", "-d", "40",
            "-ctk", "q8_0", "-ctv", "Q4_0", "-t", "1", "-r", "1", "--json"));
        var o = doc.RootElement;
        Assert.Equal("q8_0", o.GetProperty("type_k").GetString());
        Assert.Equal("q4_0", o.GetProperty("type_v").GetString());
        var results = o.GetProperty("results").EnumerateArray().ToList();
        Assert.Equal([0, 24, 40], results.Select(r => r.GetProperty("depth").GetInt32()));
        foreach (var r in results)
        {
            Assert.Equal(r.GetProperty("depth").GetInt32(), r.GetProperty("pp").GetProperty("depth").GetInt32());
            Assert.True(r.GetProperty("tg").GetProperty("tok_s").GetDouble() > 0);
        }
        Assert.Equal(0, o.GetProperty("pp").GetProperty("depth").GetInt32()); // the first depth, for single-depth readers
        string table = CliHarness.Ok("bench", "-m", _model, "-p", "8", "-n", "2", "-d", "16", "-t", "1", "-r", "1");
        Assert.Contains("tg2 @ d16", table);
    }

    [Fact]
    public void Bench_skips_the_warm_up_runs_with_no_warmup_like_llama_bench()
    {
        using var cold = JsonDocument.Parse(CliHarness.Ok("bench", "-m", _model, "-p", "8", "-n", "2", "-d", "16", "-t", "1", "-r", "2",
            "--no-warmup", "--json"));
        Assert.False(cold.RootElement.GetProperty("warmup").GetBoolean());
        Assert.All(cold.RootElement.GetProperty("tests").EnumerateArray(), x => Assert.Equal(2, x.GetProperty("samples_ts").GetArrayLength()));
        using var warm = JsonDocument.Parse(CliHarness.Ok("bench", "-m", _model, "-p", "8", "-n", "0", "-t", "1", "-r", "1", "--json"));
        Assert.True(warm.RootElement.GetProperty("warmup").GetBoolean());
    }

    [Fact]
    public void Bench_takes_lists_of_prompt_and_generation_lengths_like_llama_bench()
    {
        using var doc = JsonDocument.Parse(CliHarness.Ok("bench", "-m", _model, "-p", "0,8", "-p", "12", "-n", "2,3", "-d", "0,16",
            "-t", "1", "-r", "1", "--json"));
        var o = doc.RootElement;
        // for each depth the pp tests, then the tg tests; a 0 skips its test
        var tests = o.GetProperty("tests").EnumerateArray().Select(x => $"{x.GetProperty("test").GetString()}@{x.GetProperty("depth").GetInt32()}");
        Assert.Equal(["pp8@0", "pp12@0", "tg2@0", "tg3@0", "pp8@16", "pp12@16", "tg2@16", "tg3@16"], tests);
        Assert.Equal(8, o.GetProperty("pp").GetProperty("n").GetInt32()); // the first nonzero -p
        Assert.Equal(2, o.GetProperty("tg").GetProperty("n").GetInt32());
        Assert.All(o.GetProperty("tests").EnumerateArray(), x => Assert.True(x.GetProperty("tok_s").GetDouble() > 0));
        string table = CliHarness.Ok("bench", "-m", _model, "-p", "8,12", "-n", "2", "-d", "16", "-t", "1", "-r", "1");
        Assert.Contains("pp12 @ d16", table);
    }

    [Fact]
    public void Bench_warns_when_its_tests_reach_past_the_trained_context()
    {
        string bundled = Sputnik.Tests.Server.TestServer.BundledModelPath; // trained for 640 tokens
        var past = CliHarness.Run("bench", "-m", bundled, "-p", "8", "-n", "2", "-d", "636", "-t", "1", "-r", "1");
        Assert.Equal(0, past.ExitCode);
        Assert.Contains("warning: the tests reach 644 tokens, past the 640 the model was trained for", past.Err);
        var within = CliHarness.Run("bench", "-m", bundled, "-p", "8", "-n", "2", "-d", "600", "-t", "1", "-r", "1");
        Assert.DoesNotContain("warning", within.Err);
    }

    [Fact]
    public void Bench_writes_llama_bench_records_as_json_jsonl_and_csv()
    {
        string[] args = ["bench", "-m", _model, "-p", "8", "-n", "2", "-d", "0,4", "-t", "1", "-r", "2", "-ctk", "q8_0"];
        using var doc = JsonDocument.Parse(CliHarness.Ok([.. args, "-o", "json"]));
        var records = doc.RootElement.EnumerateArray().ToList();
        Assert.Equal(4, records.Count);
        var pp = records[0];
        Assert.Equal(Path.GetFileName(_model), pp.GetProperty("model_filename").GetString());
        Assert.Equal(1, pp.GetProperty("n_threads").GetInt32());
        Assert.Equal("q8_0", pp.GetProperty("type_k").GetString());
        Assert.Equal((8, 0, 0), (pp.GetProperty("n_prompt").GetInt32(), pp.GetProperty("n_gen").GetInt32(), pp.GetProperty("n_depth").GetInt32()));
        Assert.Equal((0, 2, 4), (records[3].GetProperty("n_prompt").GetInt32(), records[3].GetProperty("n_gen").GetInt32(), records[3].GetProperty("n_depth").GetInt32()));
        foreach (var r in records)
        {
            var ts = r.GetProperty("samples_ts").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            var ns = r.GetProperty("samples_ns").EnumerateArray().Select(x => x.GetDouble()).ToArray();
            Assert.Equal(2, ts.Length);
            Assert.Equal(ts.Average(), r.GetProperty("avg_ts").GetDouble(), 3);
            int tokens = Math.Max(r.GetProperty("n_prompt").GetInt32(), r.GetProperty("n_gen").GetInt32());
            for (int i = 0; i < 2; i++) Assert.Equal(tokens * 1e9 / ts[i], ns[i], ns[i] * 1e-6 + 1); // each run's time for its tokens
        }
        var lines = CliHarness.Ok([.. args, "-o", "jsonl"]).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(4, lines.Length);
        Assert.All(lines, l => Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(l).RootElement.ValueKind));
        var csv = CliHarness.Ok([.. args, "-o", "csv"]).Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(5, csv.Length);
        var header = csv[0].Split(',');
        Assert.Contains("avg_ts", header);
        Assert.Equal("4", csv[4].Split(',')[Array.IndexOf(header, "n_depth")]);
    }

    [Fact]
    public void Run_stops_at_a_full_context_with_length_or_shifts_it()
    {
        using var full = JsonDocument.Parse(CliHarness.Ok("run", "-m", _model, "-p", "hello", "-n", "60", "-c", "24", "--temp", "0", "-t", "1", "--json"));
        Assert.Equal("length", full.RootElement.GetProperty("finish_reason").GetString());
        Assert.True(full.RootElement.GetProperty("tokens").GetArrayLength() < 24);
        using var shifted = JsonDocument.Parse(CliHarness.Ok("run", "-m", _model, "-p", "hello", "-n", "60", "-c", "24", "--temp", "0", "-t", "1",
            "--context-shift", "--keep", "1", "-ctk", "q8_0", "--json"));
        Assert.Equal("length", shifted.RootElement.GetProperty("finish_reason").GetString());
        Assert.Equal(60, shifted.RootElement.GetProperty("tokens").GetArrayLength());
        Assert.True(shifted.RootElement.GetProperty("context_shifts").GetInt32() >= 2);
    }

    [Fact]
    public void Bench_table_looks_like_llama_bench()
    {
        string table = CliHarness.Ok("bench", "-m", _model, "-p", "8", "-n", "2", "-t", "1", "-r", "1");
        Assert.Contains("| model", table);
        Assert.Contains("pp8", table);
        Assert.Contains("tg2", table);
    }

    public static TheoryData<string[]> BadInputs(string model) => new()
    {
        new[] { "bench", "-m", "/nonexistent/model.gguf", "--json" },
        new[] { "quantize", "/nonexistent/in.gguf", "/tmp/out.gguf", "Q8_0" },
        new[] { "quantize", model, model, "Q8_0" },
        new[] { "quantize", model, model + ".out", "Q3_XL" },
        new[] { "synth", "--preset", "gpt-5", "--type", "Q8_0", "-o", model + ".x" },
        new[] { "synth", "--preset", "qwen2-tiny", "--type", "Q2_K", "-o", model + ".x" },
        new[] { "synth", "--arch", "llama", "--preset", "qwen2-tiny", "-o", model + ".x" },
        new[] { "synth", "--preset", "qwen2-tiny", "--tokenizer", "/nonexistent/tokenizer.json", "-o", model + ".x" },
        new[] { "bench", "-m", model, "-r", "0" },
        new[] { "bench", "-m", model, "-d", "-5" },
        new[] { "bench", "-m", model, "-d", "8,x" },
        new[] { "bench", "-m", model, "-p", "8,-1" },
        new[] { "bench", "-m", model, "-o", "xml" },
        new[] { "bench", "-m", model, "-o", "json", "--json" },
        new[] { "bench", "-m", model, "-ctk", "q5_1" },
        new[] { "run", "-m", model, "-ctv", "bogus" },
    };

    [Fact]
    public void Bad_inputs_exit_1_with_one_line()
    {
        long before = new FileInfo(_model).Length;
        foreach (var args in BadInputs(_model))
        {
            var r = CliHarness.Run(args);
            Assert.True(r.ExitCode == 1, $"{string.Join(' ', args)} exited {r.ExitCode}");
            Assert.True(r.ErrLines.Length == 1, $"{string.Join(' ', args)} printed: {r.Err}");
            Assert.StartsWith("error: ", r.ErrLines[0]);
            Assert.Equal("", r.Out);
        }
        Assert.Equal(before, new FileInfo(_model).Length);
        Assert.False(File.Exists(_model + ".x"));
    }
}
