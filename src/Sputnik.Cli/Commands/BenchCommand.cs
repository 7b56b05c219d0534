using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Numerics.Tensors;
using System.Text.Json.Nodes;
using Sputnik.Models;
using Sputnik.Tools;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik bench [-m MODEL] [-p 512] [-n 128] [-d 0,4096] [-ctk f16] [-ctv f16] [-t N] [-r 3] [--json | -o md|json|jsonl|csv]`
/// with llama-bench's semantics: ppN is the tokens/s of one Forward over an N-token prompt (BOS then fixed
/// pseudo-random tokens) on an empty state; tgN is the tokens/s of N one-token Forward calls on an empty state, the
/// first fed BOS and each next one the greedy pick. At depth D (-d) each run first feeds D prompt tokens untimed, so
/// the test measures attention over a D-token context. -p, -n and -d each take several values (repeated or
/// comma-separated, like llama-bench); for each depth the pp tests run, then the tg tests. Each test runs once to
/// warm up, then r times; the result is the mean ± sample stddev of the per-run tokens/s.
/// </summary>
internal static class BenchCommand
{
    public static Command Create()
    {
        var model = CliOptions.ModelOrDefault(); // llama-bench has a default model too; here the bundled one
        var threads = CliOptions.Threads();
        var pp = new Option<string[]>("--n-prompt", "-p") { Description = "Prompt tokens for the pp test, 0 skips it (repeatable or comma-separated) [default: 512]" };
        var tg = new Option<string[]>("--n-gen", "-n") { Description = "Tokens to generate for the tg test, 0 skips it (repeatable or comma-separated) [default: 128]" };
        var reps = new Option<int>("--repetitions", "-r") { Description = "Timed runs per test (after one warm-up run)", DefaultValueFactory = _ => 3 };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of the table" };
        var output = new Option<string>("--output", "-o") { Description = "llama-bench's output formats: md (the table), json, jsonl or csv (one record a test, llama-bench's field names)", DefaultValueFactory = _ => "md" };
        var depth = new Option<string[]>("--n-depth", "-d") { Description = "Tokens already in the context when a test starts (repeatable or comma-separated, like llama-bench)" };
        var noWarmup = new Option<bool>("--no-warmup") { Description = "Skip the warm-up run before each test (llama-bench's flag; at a large -d it halves the time a test takes)" };
        var ctk = CliOptions.CacheTypeK();
        var ctv = CliOptions.CacheTypeV();
        var cmd = new Command("bench", "Measure prompt processing (pp) and generation (tg) speed like llama-bench") { model, threads, pp, tg, reps, json, output, depth, noWarmup, ctk, ctv };
        cmd.SetAction(r =>
        {
            MemoryTrace.Mark("bench start");
            int t = r.GetValue(threads), reps_ = r.GetValue(reps);
            bool warmup = !r.GetValue(noWarmup);
            int[] prompts = Counts(r.GetValue(pp), "-p", 512), gens = Counts(r.GetValue(tg), "-n", 128);
            if (t < 1) throw new ArgumentException($"-t {t} must be at least 1");
            if (reps_ < 1) throw new ArgumentException($"-r {reps_} must be at least 1");
            var format = BenchReport.ParseFormat(r.GetValue(output));
            if (r.GetValue(json) && r.GetResult(output) is { Implicit: false })
                throw new ArgumentException("--json and -o both choose the output: give one");
            string path = CliOptions.ResolveModel(r.GetValue(model));
            int[] depths = Depths(r.GetValue(depth));
            int p = prompts.FirstOrDefault(x => x > 0), n = gens.FirstOrDefault(x => x > 0); // the single-test JSON fields' pp and tg
            int reach = depths.Max() + Math.Max(prompts.Max(), gens.Max()); // the longest context a test fills

            var load = Stopwatch.StartNew();
            using var m = SputnikModel.Load(path, new ModelOptions
            {
                Threads = t, ContextLength = Math.Max(1, reach), KvType = r.GetValue(ctk), KvTypeV = r.GetValue(ctv),
            });
            double loadMs = load.Elapsed.TotalMilliseconds;
            MemoryTrace.Mark("model ready");
            int trained = m.Model.Config.ContextLength;
            if (reach > trained) // llama-bench runs such tests too, with the same warning: the speed is real, the text would not be
                Console.Error.WriteLine($"warning: the tests reach {reach} tokens, past the {trained} the model was trained for");
            int vocab = m.Model.Config.VocabSize;
            int bos = m.Tokenizer.BosId is >= 0 and var b && b < vocab ? b : 0;

            // One state for every run, cleared before each (llama-bench clears its context's memory between runs):
            // a fresh state per run would leave each run's KV cache and batch scratch to the GC, in the peak RSS.
            var state = m.CreateState();
            var tests = new List<BenchTest>();
            foreach (int d in depths)
            {
                foreach (int pn in prompts.Where(x => x > 0))
                {
                    var started = DateTime.UtcNow;
                    tests.Add(new BenchTest(pn, 0, d, Measure(reps_, warmup, () => Prompt(m, state, PromptTokens(d + pn, bos, vocab), d), $"pp{pn} d{d}"), started));
                }
                foreach (int gn in gens.Where(x => x > 0))
                {
                    var started = DateTime.UtcNow;
                    tests.Add(new BenchTest(0, gn, d, Measure(reps_, warmup, () => Generate(m, state, gn, bos, PromptTokens(d, bos, vocab)), $"tg{gn} d{d}"), started));
                }
            }
            // The first nonzero -p and -n values at each depth: what the single-test JSON fields report.
            var results = depths.Select(d => (Depth: d,
                Pp: tests.FirstOrDefault(x => x.Gen == 0 && x.Prompt == p && x.Depth == d)?.Runs,
                Tg: tests.FirstOrDefault(x => x.Gen > 0 && x.Gen == n && x.Depth == d)?.Runs)).ToList();

            long peakRss = PeakRssBytes(); // before the report's own code (JSON) is loaded
            var info = Describe(m);
            if (r.GetValue(json))
            {
                var o = new JsonObject
                {
                    ["model"] = Path.GetFileName(path),
                    ["model_desc"] = info.Desc,
                    ["model_bytes"] = m.File.TotalFileSize,
                    ["model_size"] = info.TensorBytes,
                    ["params"] = info.Params,
                    ["threads"] = t,
                    ["repetitions"] = reps_,
                    ["warmup"] = warmup,
                    ["type_k"] = CacheTypeName(m.KvType),
                    ["type_v"] = CacheTypeName(m.KvTypeV),
                    // pp and tg at the first depth (what single-depth scripts read), then every depth
                    ["pp"] = Result(p, results[0].Depth, results[0].Pp),
                    ["tg"] = Result(n, results[0].Depth, results[0].Tg),
                    ["results"] = new JsonArray(results.Select(x => (JsonNode)new JsonObject
                    {
                        ["depth"] = x.Depth, ["pp"] = Result(p, x.Depth, x.Pp), ["tg"] = Result(n, x.Depth, x.Tg),
                    }).ToArray()),
                    // every test, every -p, -n and -d value, in the order they ran
                    ["tests"] = new JsonArray(tests.Select(x =>
                    {
                        var o = Result(x.Tokens, x.Depth, x.Runs)!.AsObject();
                        o.Insert(0, "test", x.Name);
                        return (JsonNode)o;
                    }).ToArray()),
                    ["peak_rss_bytes"] = peakRss,
                    ["load_ms"] = Math.Round(loadMs, 3),
                };
                Console.WriteLine(o.ToJsonString(JsonOutput.Options));
                return 0;
            }
            if (format != BenchReport.Format.Markdown)
            {
                BenchReport.Write(format, Console.Out, new BenchReport.Setup(Path.GetFileName(path), info.Desc, info.TensorBytes, info.Params, t,
                    CacheTypeName(m.KvType), CacheTypeName(m.KvTypeV)), tests);
                Console.Error.WriteLine($"load {loadMs:F0} ms, peak RSS {ProgressBar.Size(peakRss)}");
                return 0;
            }
            Console.WriteLine($"| {"model",-30} | {"size",10} | {"params",10} | {"backend",-10} | {"threads",7} | {"test",15} | {"t/s",20} |");
            Console.WriteLine($"| {new string('-', 30)} | {new string('-', 9)}: | {new string('-', 9)}: | {new string('-', 10)} | {new string('-', 6)}: | {new string('-', 14)}: | {new string('-', 19)}: |");
            void Row(string test, double[] runs)
            {
                var (mean, std) = Stats(runs);
                Console.WriteLine($"| {info.Desc,-30} | {SizeText(info.TensorBytes),10} | {ParamsText(info.Params),10} | {"Sputnik",-10} | {t,7} | {test,15} | {$"{mean:F2} ± {std:F2}",20} |");
            }
            foreach (var x in tests) Row(x.Depth > 0 ? $"{x.Name} @ d{x.Depth}" : x.Name, x.Runs);
            Console.Error.WriteLine($"load {loadMs:F0} ms, peak RSS {ProgressBar.Size(peakRss)}");
            return 0;
        });
        return cmd;
    }

    /// <summary>One warm-up run (unless <paramref name="warmup"/> is false), then <paramref name="reps"/> timed runs; returns tokens/s per run.</summary>
    private static double[] Measure(int reps, bool warmup, Func<double> run, string test)
    {
        if (warmup) run();
        var ts = new double[reps];
        for (int i = 0; i < reps; i++) ts[i] = run();
        MemoryTrace.Mark(test);
        return ts;
    }

    private static int[] PromptTokens(int count, int bos, int vocab)
    {
        var tokens = new int[count];
        var rng = new Random(42);
        if (count > 0) tokens[0] = bos;
        for (int i = 1; i < count; i++) tokens[i] = rng.Next(vocab);
        return tokens;
    }

    /// <summary>llama-bench's -d values: each argument a comma list of token counts ≥ 0; none means depth 0.</summary>
    internal static int[] Depths(string[]? args) => Counts(args, "-d", 0);

    /// <summary>
    /// A list option's token counts as llama-bench takes them: each argument a comma list of counts ≥ 0, the option
    /// repeatable; none given means <paramref name="fallback"/>.
    /// </summary>
    internal static int[] Counts(string[]? args, string flag, int fallback)
    {
        if (args == null || args.Length == 0) return [fallback];
        var counts = new List<int>();
        foreach (string arg in args)
            foreach (string part in arg.Split(',', StringSplitOptions.TrimEntries))
            {
                if (!int.TryParse(part, NumberStyles.None, CultureInfo.InvariantCulture, out int c) || c > 1 << 24)
                    throw new ArgumentException($"{flag} '{part}' is not a token count (0 … {1 << 24})");
                counts.Add(c);
            }
        return counts.ToArray();
    }

    private static string CacheTypeName(Sputnik.Models.KvCacheType type) => type.ToString().ToLowerInvariant();

    /// <summary>Feeds the first <paramref name="depth"/> tokens untimed, then times the rest as one prompt.</summary>
    private static double Prompt(SputnikModel m, InferenceState state, int[] tokens, int depth)
    {
        state.Truncate(0);
        if (depth > 0) m.Model.Forward(state, tokens.AsSpan(0, depth));
        var sw = Stopwatch.StartNew();
        m.Model.Forward(state, tokens.AsSpan(depth));
        return (tokens.Length - depth) / sw.Elapsed.TotalSeconds;
    }

    /// <summary>Feeds <paramref name="context"/> untimed (the depth), then times n greedy one-token steps.</summary>
    private static double Generate(SputnikModel m, InferenceState state, int n, int bos, int[] context)
    {
        state.Truncate(0);
        if (context.Length > 0) m.Model.Forward(state, context);
        int[] token = [bos];
        var sw = Stopwatch.StartNew();
        for (int i = 0; i < n; i++)
        {
            var logits = m.Model.Forward(state, token);
            token[0] = TensorPrimitives.IndexOfMax(logits);
        }
        return n / sw.Elapsed.TotalSeconds;
    }

    internal static (double Mean, double Std) Stats(double[] xs)
    {
        double mean = xs.Average();
        if (xs.Length < 2) return (mean, 0);
        double ss = xs.Sum(x => (x - mean) * (x - mean));
        return (mean, Math.Sqrt(ss / (xs.Length - 1)));
    }

    private static JsonNode? Result(int n, int depth, double[]? runs)
    {
        if (runs == null) return null;
        var (mean, std) = Stats(runs);
        return new JsonObject
        {
            ["n"] = n,
            ["depth"] = depth,
            ["tok_s"] = Math.Round(mean, 3),
            ["std"] = Math.Round(std, 3),
            ["samples_ts"] = new JsonArray(runs.Select(x => (JsonNode)Math.Round(x, 3)).ToArray()),
        };
    }

    private sealed record ModelInfo(string Desc, long TensorBytes, long Params);

    private static ModelInfo Describe(SputnikModel m)
    {
        var f = m.File;
        long bytes = f.Tensors.Sum(x => x.ByteSize), prms = f.Tensors.Sum(x => x.ElementCount);
        string ftype = f.TryGetInt64(GgufKeys.GeneralFileType, out long ft) && Enum.IsDefined((FileType)ft)
            ? QuantMix.Describe((FileType)ft)
            : f.Tensors.GroupBy(x => x.Type).OrderByDescending(g => g.Sum(x => x.ByteSize)).First().Key.ToString();
        string size = prms >= 1_000_000_000 ? $"{prms / 1e9:0.#}B" : $"{prms / 1e6:0.#}M";
        return new ModelInfo($"{f.Architecture} {size.Replace(',', '.')} {ftype}", bytes, prms);
    }

    private static string SizeText(long bytes) => bytes >= 1L << 30
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1L << 30):F2} GiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / (double)(1 << 20):F2} MiB");

    private static string ParamsText(long n) => n >= 1_000_000_000
        ? string.Create(CultureInfo.InvariantCulture, $"{n / 1e9:F2} B")
        : string.Create(CultureInfo.InvariantCulture, $"{n / 1e6:F2} M");

    /// <summary>Peak resident set size (VmHWM in /proc/self/status), or the current working set elsewhere.</summary>
    internal static long PeakRssBytes()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/self/status"))
            {
                if (!line.StartsWith("VmHWM:", StringComparison.Ordinal)) continue;
                var parts = line[6..].Trim().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                return long.Parse(parts[0], CultureInfo.InvariantCulture) * 1024;
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return PeakWorkingSet();
    }

    // Apart, so that System.Diagnostics.Process is loaded (≈ 0.4 MB) only where /proc/self/status is missing.
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.NoInlining)]
    private static long PeakWorkingSet() => Process.GetCurrentProcess().PeakWorkingSet64;
}
