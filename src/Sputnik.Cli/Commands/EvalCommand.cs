using System.CommandLine;
using System.Text.Json.Nodes;
using Sputnik.Training;
using Sputnik.Training.Tasks;

namespace Sputnik.Cli.Commands;

/// <summary>
/// `sputnik eval -m MODEL --task arithmetic [--n 500] [--samples k] [--turns N] [--no-think] [--json]` — held-out
/// pass@1 / pass@k, of single questions or of the last question of N-turn conversations, thinking on or off.
/// </summary>
internal static class EvalCommand
{
    public static Command Create()
    {
        var model = CliOptions.ModelOrDefault();
        var task = new Option<string>("--task") { Description = "arithmetic, addition, subtraction, multiplication, countdown, all, easy", DefaultValueFactory = _ => "arithmetic" };
        var n = new Option<int>("--n") { Description = "Held-out problems", DefaultValueFactory = _ => 500 }.AtLeast(1);
        var k = new Option<int>("--samples", "-k") { Description = "Samples per problem (1 = greedy)", DefaultValueFactory = _ => 1 }.AtLeast(1);
        var temp = new Option<float>("--temp") { Description = "Temperature when --samples > 1", DefaultValueFactory = _ => 0.7f }.Temperature();
        var maxNew = new Option<int>("--max-new") { Description = "Max completion tokens (the model context bounds it too)", DefaultValueFactory = _ => 400 }.AtLeast(1);
        var split = new Option<string>("--split") { Description = "test (default: the reported numbers), dev (for choosing settings), held-out (dev + test, the pre-split set)", DefaultValueFactory = _ => "test" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object" };
        var failures = new Option<string?>("--failures") { Description = "Write every sample that was not correct to this JSON Lines file (task, prompt, expected, grade, completion, reference trace)" };
        var turns = new Option<int>("--turns")
        {
            Description = "Grade the last question of N-turn conversations (earlier turns: questions of the same split with their correct answers, as chat keeps them); 1 = single questions",
            DefaultValueFactory = _ => 1,
        };
        var noThink = new Option<bool>("--no-think") { Description = "Ask the graded question with thinking off (the prompt closes an empty think block, as chat's /think off does)" };
        var threads = CliOptions.Threads();
        var cmd = new Command("eval", "Evaluate a model on held-out problems of a task (never seen in training)") { model, task, n, k, temp, maxNew, split, turns, noThink, json, failures, threads };
        cmd.SetAction(r =>
        {
            string path = CliOptions.ResolveModel(r.GetValue(model));
            if (!File.Exists(path)) throw new FileNotFoundException($"model not found: {path}");
            if (r.GetValue(n) < 1 || r.GetValue(k) < 1 || r.GetValue(turns) < 1) throw new ArgumentException("--n, --samples and --turns must be at least 1");
            var t = ReasoningTask.Create(r.GetValue(task)!);
            // opened before the evaluation, so a path that cannot be written fails in a second, not after the whole run
            using var failureFile = r.GetValue(failures) is { } failurePath ? new StreamWriter(failurePath) : null;
            using var engine = new RolloutEngine(path, r.GetValue(threads));
            var res = Evaluation.Run(engine, t, r.GetValue(n), r.GetValue(k), r.GetValue(temp), r.GetValue(maxNew), split: ReasoningTask.ParseSplit(r.GetValue(split)!),
                turns: r.GetValue(turns), thinking: !r.GetValue(noThink));
            if (failureFile != null) WriteFailures(failureFile, res.Failures);
            if (r.GetValue(json))
            {
                var o = new JsonObject
                {
                    ["task"] = res.Task, ["n"] = res.N, ["pass_at_1"] = Math.Round(res.PassAt1, 4), ["pass_at_k"] = Math.Round(res.PassAtK, 4),
                    ["k"] = res.K, ["mean_think_tokens"] = Math.Round(res.MeanThinkTokens, 1),
                    ["turns"] = res.Turns, ["thinking"] = res.Thinking, ["mean_completion_tokens"] = Math.Round(res.MeanCompletionTokens, 1),
                };
                Console.WriteLine(o.ToJsonString(JsonOutput.Options));
            }
            else
            {
                string passK = res.K > 1 ? $" pass@{res.K} {res.PassAtK:P1}" : "";   // with one greedy sample pass@k is pass@1
                string shape = (res.Turns > 1 ? $" last of {res.Turns} turns" : "") + (res.Thinking ? "" : " thinking off");
                string length = res.Thinking ? $"mean thinking {res.MeanThinkTokens:F1} tokens" : $"mean answer {res.MeanCompletionTokens:F1} tokens";
                Console.WriteLine($"task {res.Task}{shape}: n={res.N} pass@1 {res.PassAt1:P1}{passK} {length}");
                foreach (var (name, v) in res.PassAt1ByTask.OrderBy(kv => kv.Key)) Console.WriteLine($"  {name}: pass@1 {v:P1}");
            }
            return 0;
        });
        return cmd;
    }

    private static void WriteFailures(StreamWriter w, IReadOnlyList<EvalFailure> failures)
    {
        foreach (var f in failures)
        {
            var o = new JsonObject
            {
                ["task"] = f.Problem.Task, ["prompt"] = f.Problem.Prompt, ["expected"] = f.Problem.Expected,
                ["grade"] = f.Grade == Grade.Malformed ? "malformed" : "wrong", ["completion"] = f.Completion, ["reference"] = f.Problem.Trace,
            };
            if (f.Conversation is { } c)
            {
                o["thinking"] = c.Thinking;
                o["earlier"] = new JsonArray(c.Earlier.Select(t => (JsonNode)new JsonObject { ["user"] = t.User, ["assistant"] = t.AssistantContent }).ToArray());
            }
            w.WriteLine(o.ToJsonString());
        }
    }
}
