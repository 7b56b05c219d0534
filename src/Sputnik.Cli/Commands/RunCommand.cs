using System.CommandLine;
using System.Text.Json.Nodes;
using Sputnik.Inference;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik run -m MODEL -p PROMPT …` — streams a plain continuation of the prompt.</summary>
internal static class RunCommand
{
    public static Command Create()
    {
        var model = CliOptions.ModelOrDefault();
        var threads = CliOptions.Threads();
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt text (\"\" generates from BOS alone)", DefaultValueFactory = _ => "" };
        var n = new Option<int>("--n-predict", "-n") { Description = "Tokens to generate", DefaultValueFactory = _ => 128 }.AtLeast(0);
        var ctx = new Option<int>("--ctx-size", "-c") { Description = "Context length (0 = model's, capped at 4096)" }.AtLeast(0);
        var temp = new Option<float>("--temp") { Description = "Temperature; 0 is greedy", DefaultValueFactory = _ => 0.8f }.Temperature();
        var topK = new Option<int>("--top-k") { Description = "Top-k (0 = off)", DefaultValueFactory = _ => 40 }.AtLeast(0);
        var topP = new Option<float>("--top-p") { Description = "Top-p (1 = off)", DefaultValueFactory = _ => 0.95f }.TopP();
        var minP = new Option<float>("--min-p") { Description = "Min-p (0 = off)", DefaultValueFactory = _ => 0.05f }.MinP();
        var repeat = new Option<float>("--repeat-penalty") { Description = "Repetition penalty (1 = off)", DefaultValueFactory = _ => 1f }.RepeatPenalty();
        var presence = new Option<float>("--presence-penalty") { Description = "Presence penalty (-2 to 2)" }.Penalty();
        var frequency = new Option<float>("--frequency-penalty") { Description = "Frequency penalty (-2 to 2)" }.Penalty();
        var seed = new Option<ulong?>("--seed", "-s") { Description = "Random seed for reproducible sampling" };
        var noBos = new Option<bool>("--no-bos") { Description = "Do not add BOS" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object with tokens, text and timings" };
        var stop = new Option<string[]>("--stop") { Description = "Stop string (repeatable)", AllowMultipleArgumentsPerToken = false };
        var moeStats = new Option<bool>("--moe-stats") { Description = "Print the expert-load histogram of MoE models to stderr" };
        var ctk = CliOptions.CacheTypeK();
        var ctv = CliOptions.CacheTypeV();
        var shift = CliOptions.ContextShift();
        var keep = new Option<int>("--keep") { Description = "Prompt tokens a context shift keeps, besides BOS (-1 = the whole prompt)" }.AtLeast(-1);
        var ubatch = new Option<int>("--ubatch-size", "-ub")
        {
            Description = "Most prompt tokens one forward pass takes (llama.cpp's -ub); a sliding-window layer keeps window + this − 1 positions",
            DefaultValueFactory = _ => 512,
        }.AtLeast(1);
        var cmd = new Command("run", "Generate a continuation of a prompt")
        {
            model, threads, prompt, n, ctx, temp, topK, topP, minP, repeat, presence, frequency, seed, noBos, json, stop, moeStats, ctk, ctv, shift, keep, ubatch,
        };
        var speculation = new SpeculationFlags();
        speculation.AddTo(cmd);
        var lora = new LoraFlags();
        lora.AddTo(cmd);
        cmd.SetAction(r =>
        {
            var sampling = new SamplingOptions
            {
                Temperature = r.GetValue(temp), TopK = r.GetValue(topK), TopP = r.GetValue(topP), MinP = r.GetValue(minP),
                RepeatPenalty = r.GetValue(repeat), PresencePenalty = r.GetValue(presence), FrequencyPenalty = r.GetValue(frequency),
                Seed = r.GetValue(seed),
            };
            sampling.Validate();
            using var m = SputnikModel.Load(CliOptions.ResolveModel(r.GetValue(model)), new ModelOptions
            {
                Threads = r.GetValue(threads), ContextLength = r.GetValue(ctx), KvType = r.GetValue(ctk), KvTypeV = r.GetValue(ctv),
                LoraAdapters = lora.Read(r),
            });
            // The model's recommended settings replace the defaults of the flags the user did not type.
            var given = sampling;
            sampling = m.RecommendedSampling(sampling);
            if (CliOptions.Given(r, temp)) sampling = sampling with { Temperature = given.Temperature };
            if (CliOptions.Given(r, topK)) sampling = sampling with { TopK = given.TopK };
            if (CliOptions.Given(r, topP)) sampling = sampling with { TopP = given.TopP };
            if (CliOptions.Given(r, minP)) sampling = sampling with { MinP = given.MinP };
            if (CliOptions.Given(r, repeat)) sampling = sampling with { RepeatPenalty = given.RepeatPenalty };
            string text = r.GetValue(prompt) ?? "";
            var promptTokens = m.Tokenizer.Encode(text, addBos: !r.GetValue(noBos), parseSpecial: true).ToList();
            if (promptTokens.Count == 0)
            {
                if (r.GetValue(noBos)) throw new ArgumentException("empty prompt with --no-bos: there is nothing to generate from");
                promptTokens.Add(m.Tokenizer.BosId);
            }
            // As llama.cpp: n_keep counts after BOS, and -1 keeps the whole prompt.
            int kept = r.GetValue(keep) < 0 ? promptTokens.Count : Math.Min(promptTokens.Count, r.GetValue(keep) + (r.GetValue(noBos) ? 0 : 1));
            var options = new GenerationOptions
            {
                MaxTokens = r.GetValue(n), Sampling = sampling, StopStrings = r.GetValue(stop) ?? [], ContextShift = r.GetValue(shift), KeepTokens = kept,
                Speculation = speculation.Read(r),
            };
            var stats = new GenerationStats();
            var generator = new Generator(m.Model, m.Tokenizer);
            if (m.Model is Sputnik.Models.DecoderModel decoder) decoder.MaxBatch = r.GetValue(ubatch);
            var state = m.CreateState();
            var moe = r.GetValue(moeStats) ? m.Model as Sputnik.Models.IMoeModel : null;
            if (moe != null) moe.MoeStats = moe.CreateMoeStats();
            else if (r.GetValue(moeStats)) Console.Error.WriteLine($"--moe-stats: {m.File.Architecture} has no routed experts");
            bool asJson = r.GetValue(json);
            var tokens = new List<int>();
            var output = new System.Text.StringBuilder();
            using var stdout = Console.OpenStandardOutput();
            foreach (var step in generator.Generate(state, promptTokens, options, stats))
            {
                if (!m.Tokenizer.IsEndOfGeneration(step.Id)) tokens.Add(step.Id);
                output.Append(step.Text);
                if (!asJson && step.Text.Length > 0)
                {
                    stdout.Write(System.Text.Encoding.UTF8.GetBytes(step.Text));
                    stdout.Flush();
                }
            }
            if (asJson)
            {
                var o = new JsonObject
                {
                    ["prompt_tokens"] = new JsonArray(promptTokens.Select(t => (JsonNode)t).ToArray()),
                    ["tokens"] = new JsonArray(tokens.Select(t => (JsonNode)t).ToArray()),
                    ["text"] = output.ToString(),
                    // a full context is a cut-off like the token limit: "length", as the server says it
                    ["finish_reason"] = stats.FinishReason == FinishReason.ContextFull ? "length" : stats.FinishReason.ToString().ToLowerInvariant(),
                    ["context_shifts"] = stats.ContextShifts,
                    ["timings"] = new JsonObject
                    {
                        ["prompt_ms"] = Math.Round(stats.PromptMs, 3),
                        ["prompt_tok_s"] = Math.Round(stats.PromptTokensPerSecond, 2),
                        ["gen_ms"] = Math.Round(stats.GenerationMs, 3),
                        ["gen_tok_s"] = Math.Round(stats.GenerationTokensPerSecond, 2),
                        ["draft_n"] = stats.DraftedTokens,
                        ["draft_n_accepted"] = stats.AcceptedTokens,
                        ["draft_acceptance_rate"] = Math.Round(stats.AcceptanceRate, 4),
                    },
                };
                Console.WriteLine(o.ToJsonString(JsonOutput.Options));
            }
            else
            {
                Console.WriteLine();
                Console.Error.WriteLine($"prompt: {stats.PromptTokens} tokens in {stats.PromptMs:F1} ms ({stats.PromptTokensPerSecond:F1} tok/s) | " +
                    $"generated: {stats.GeneratedTokens} tokens in {stats.GenerationMs:F1} ms ({stats.GenerationTokensPerSecond:F1} tok/s)" +
                    (options.Speculation != null ? $" | drafted: {stats.DraftedTokens}, accepted: {stats.AcceptedTokens} ({stats.AcceptanceRate:P1})" : ""));
            }
            if (moe?.MoeStats is { } counted) counted.Print(Console.Error, moe.FirstMoeLayer);
            return 0;
        });
        return cmd;
    }
}
