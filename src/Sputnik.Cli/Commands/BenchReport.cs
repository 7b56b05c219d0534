using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;

namespace Sputnik.Cli.Commands;

/// <summary>One timed test of `sputnik bench`: ppN (<paramref name="Gen"/> 0) or tgN, at a depth, tokens/s per run.</summary>
internal sealed record BenchTest(int Prompt, int Gen, int Depth, double[] Runs, DateTime Started)
{
    public int Tokens => Gen > 0 ? Gen : Prompt;

    public string Name => Gen > 0 ? $"tg{Gen}" : $"pp{Prompt}";
}

/// <summary>
/// `sputnik bench -o json|jsonl|csv`: one record per test with llama-bench's field names (model_filename, n_threads,
/// n_prompt, n_gen, n_depth, avg_ts, stddev_ts, samples_ts, …), so scripts written for `llama-bench -o json` read
/// Sputnik's results unchanged; `backends` says "Sputnik" and `build_commit` the Sputnik version.
/// </summary>
internal static class BenchReport
{
    public enum Format { Markdown, Json, JsonLines, Csv }

    /// <summary>What every record shares: the model and the settings of the run.</summary>
    public sealed record Setup(string ModelFile, string ModelType, long ModelSize, long Params, int Threads, string TypeK, string TypeV);

    public static Format ParseFormat(string? name) => name?.ToLowerInvariant() switch
    {
        null or "md" => Format.Markdown,
        "json" => Format.Json,
        "jsonl" => Format.JsonLines,
        "csv" => Format.Csv,
        _ => throw new ArgumentException($"-o '{name}' is not an output format: md, json, jsonl or csv"),
    };

    public static void Write(Format format, TextWriter output, Setup setup, IReadOnlyList<BenchTest> tests)
    {
        var records = tests.Select(x => Record(setup, x)).ToList();
        switch (format)
        {
            case Format.Json:
                output.WriteLine(new JsonArray(records.Select(r => (JsonNode)r).ToArray()).ToJsonString(JsonOutput.Indented));
                break;
            case Format.JsonLines:
                foreach (var r in records) output.WriteLine(r.ToJsonString(JsonOutput.Options));
                break;
            case Format.Csv:
                if (records.Count == 0) break;
                output.WriteLine(string.Join(',', records[0].Select(kv => kv.Key)));
                foreach (var r in records) output.WriteLine(string.Join(',', r.Select(kv => Csv(kv.Value))));
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(format), format, "the table is written by BenchCommand");
        }
    }

    private static JsonObject Record(Setup s, BenchTest test)
    {
        // llama-bench times each run in nanoseconds for the test's tokens; tokens/s is derived from those
        double[] ns = test.Runs.Select(ts => test.Tokens / ts * 1e9).ToArray();
        var (avgNs, stdNs) = BenchCommand.Stats(ns);
        var (avgTs, stdTs) = BenchCommand.Stats(test.Runs);
        return new JsonObject
        {
            ["build_commit"] = typeof(BenchReport).Assembly.GetName().Version?.ToString() ?? "unknown",
            ["backends"] = "Sputnik",
            ["model_filename"] = s.ModelFile,
            ["model_type"] = s.ModelType,
            ["model_size"] = s.ModelSize,
            ["model_n_params"] = s.Params,
            ["n_threads"] = s.Threads,
            ["type_k"] = s.TypeK,
            ["type_v"] = s.TypeV,
            ["n_prompt"] = test.Prompt,
            ["n_gen"] = test.Gen,
            ["n_depth"] = test.Depth,
            ["test_time"] = test.Started.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
            ["avg_ns"] = (long)Math.Round(avgNs),
            ["stddev_ns"] = (long)Math.Round(stdNs),
            ["avg_ts"] = Math.Round(avgTs, 6),
            ["stddev_ts"] = Math.Round(stdTs, 6),
            ["samples_ns"] = new JsonArray(ns.Select(x => (JsonNode)(long)Math.Round(x)).ToArray()),
            ["samples_ts"] = new JsonArray(test.Runs.Select(x => (JsonNode)Math.Round(x, 6)).ToArray()),
        };
    }

    /// <summary>A CSV field: numbers as they are, text quoted (quotes doubled), arrays as their values space-separated in quotes.</summary>
    private static string Csv(JsonNode? value)
    {
        string? quoted = value switch
        {
            JsonArray a => string.Join(' ', a.Select(x => x?.ToJsonString() ?? "")),
            JsonValue v when v.TryGetValue(out string? str) => str,
            _ => null,
        };
        return quoted == null ? value?.ToJsonString() ?? "" : "\"" + quoted.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
    }
}
