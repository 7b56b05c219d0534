using System.CommandLine;
using System.Text.Json.Nodes;
using Sputnik.Training;
using Sputnik.Training.Tasks;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik generate --teacher MODEL --task T --n N --samples k --out FILE.jsonl` — R1's distillation data: k sampled
/// answers per problem, the ones the task's verifier accepts written as OpenAI fine-tuning lines for `train sft --data`.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create()
    {
        var teacher = new Option<string?>("--teacher") { Description = "Teacher model: GGUF file or hub reference (owner/repo[:QUANT]) (default: the bundled sputnik-r1-tiny)" };
        var task = new Option<string>("--task") { Description = "arithmetic, addition, subtraction, multiplication, countdown, all, easy", DefaultValueFactory = _ => "arithmetic" };
        var n = new Option<int>("--n") { Description = "Problems (distinct)", DefaultValueFactory = _ => 1000 }.AtLeast(1);
        var k = new Option<int>("--samples", "-k") { Description = "Samples per problem", DefaultValueFactory = _ => 4 }.AtLeast(1);
        var outPath = new Option<string>("--out", "-o") { Description = "JSON Lines file of accepted samples ({\"messages\": [user, assistant]})", Required = true };
        var referenceOut = new Option<string?>("--reference-out")
        {
            Description = "Also write, for every accepted sample, the same question with the task's own reference trace (same prompts, same count)",
        };
        var temp = new Option<float>("--temperature", "--temp") { Description = "Sampling temperature", DefaultValueFactory = _ => 0.7f }.Temperature();
        var maxNew = new Option<int>("--max-new") { Description = "Max completion tokens (unfinished samples are rejected)", DefaultValueFactory = _ => 400 }.AtLeast(1);
        var seed = new Option<int>("--seed") { Description = "Seed of the problem draw and the sampling", DefaultValueFactory = _ => 1 };
        var split = new Option<string>("--split") { Description = "Problems from: train (default: what a student may learn from), dev, test", DefaultValueFactory = _ => "train" };
        var json = new Option<bool>("--json") { Description = "Print the statistics as one JSON object" };
        var threads = CliOptions.Threads();
        var cmd = new Command("generate", "Distillation data, R1's way: sample a teacher, keep the answers the task's verifier accepts")
        {
            teacher, task, n, k, outPath, referenceOut, temp, maxNew, seed, split, json, threads,
        };
        cmd.SetAction((r, ct) =>
        {
            var t = ReasoningTask.Create(r.GetValue(task)!);
            var o = new DistillOptions
            {
                Problems = r.GetValue(n), Samples = r.GetValue(k), Temperature = r.GetValue(temp), MaxNew = r.GetValue(maxNew),
                Seed = r.GetValue(seed), Split = ParseSplit(r.GetValue(split)!),
            };
            if (o.Problems < 1 || o.Samples < 1) throw new ArgumentException("--n and --samples must be at least 1");
            int threadCount = r.GetValue(threads);
            if (threadCount < 1) throw new ArgumentException($"-t {threadCount} must be at least 1");
            Distillation.Problems(t, o.Problems, o.Split, o.Seed); // a split too small for --n fails before the teacher loads
            var paths = new List<string> { r.GetValue(outPath)! };
            if (r.GetValue(referenceOut) is { } refPath) paths.Add(refPath);
            if (paths.Count == 2 && Path.GetFullPath(paths[0]) == Path.GetFullPath(paths[1])) throw new ArgumentException("--out and --reference-out are the same file");
            var stats = Distillation.WriteAtomically(paths, writers =>
            {
                string model = CliOptions.ResolveModel(r.GetValue(teacher));
                if (!File.Exists(model)) throw new FileNotFoundException($"teacher model not found: {model}");
                using var engine = new RolloutEngine(model, threadCount);
                return ProgressBar.Run($"generate {t.Name}", report => Distillation.Generate(engine, t, o, writers[0], writers.Count > 1 ? writers[1] : null,
                    (done, total, accepted) => report(done, total, $"{done}/{total} samples, {accepted} accepted"), ct));
            });
            Print(stats, paths, r.GetValue(json));
            return Task.FromResult(0);
        });
        return cmd;
    }

    private static EvalSplit ParseSplit(string name) => name == "train" ? EvalSplit.Train
        : name is "dev" or "test" ? ReasoningTask.ParseSplit(name)
        : throw new ArgumentException($"unknown split '{name}' (train, dev, test)");

    private static void Print(DistillStats s, IReadOnlyList<string> paths, bool json)
    {
        if (json)
        {
            var o = new JsonObject
            {
                ["problems"] = s.Problems, ["samples"] = s.Samples, ["accepted"] = s.Accepted, ["acceptance_rate"] = Math.Round(s.AcceptanceRate, 4),
                ["problems_with_accepted"] = s.ProblemsWithAccepted, ["wrong"] = s.Wrong, ["malformed"] = s.Malformed, ["unfinished"] = s.Unfinished,
                ["same_as_reference"] = s.SameAsReference, ["mean_accepted_tokens"] = Math.Round(s.MeanAcceptedTokens, 1),
                ["seconds"] = Math.Round(s.Seconds, 1), ["out"] = paths[0],
            };
            if (paths.Count > 1) o["reference_out"] = paths[1];
            Console.WriteLine(o.ToJsonString(JsonOutput.Options));
            return;
        }
        Console.WriteLine($"accepted {s.Accepted} of {s.Samples} samples ({s.AcceptanceRate:P1}); {s.ProblemsWithAccepted} of {s.Problems} problems have at least one");
        Console.WriteLine($"rejected: {s.Wrong} wrong, {s.Malformed} malformed, {s.Unfinished} unfinished; accepted identical to the reference trace: {s.SameAsReference}");
        Console.WriteLine($"mean accepted completion {s.MeanAcceptedTokens:F1} tokens; {s.Seconds:F1} s; wrote {string.Join(", ", paths)}");
    }
}
