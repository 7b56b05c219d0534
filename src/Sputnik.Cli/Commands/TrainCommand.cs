using System.CommandLine;
using Spectre.Console;
using Sputnik.Training;
using Sputnik.Training.Tasks;

namespace Sputnik.Cli.Commands;

/// <summary>`sputnik train sft|grpo …` — train a tiny reasoning model the R1 way (SFT on traces, then GRPO).</summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var cmd = new Command("train", "Train a tiny reasoning model: SFT on step-by-step traces, then GRPO with verifier rewards");
        cmd.Subcommands.Add(Sft());
        cmd.Subcommands.Add(Grpo());
        return cmd;
    }

    private static Option<string> TaskOpt() => new("--task") { Description = "arithmetic, addition, subtraction, multiplication, countdown, all, easy, division, or a comma-separated mixture (division,all)", DefaultValueFactory = _ => "arithmetic" };
    private static Option<string> EvalSplitOpt() => new("--eval-split")
    {
        Description = "Problems of the in-run checks: dev (default), test, or held-out (dev + test, the set used before the dev split existed)",
        DefaultValueFactory = _ => "dev",
    };
    private static Option<double> MultiTurnOpt() => new("--multi-turn")
    {
        Description = $"Fraction of samples that are conversations: 1-3 earlier questions with their answers in the prompt, rendered as chat renders history (default {ConversationMix.DefaultMultiTurn})",
        DefaultValueFactory = _ => ConversationMix.DefaultMultiTurn,
    };
    private static Option<double> NoThinkOpt() => new("--no-think")
    {
        Description = $"Fraction of questions (and of earlier turns) asked with thinking off: the working goes in the answer, no <think> content (default {ConversationMix.DefaultNoThink})",
        DefaultValueFactory = _ => ConversationMix.DefaultNoThink,
    };
    private static Option<int> ThreadsOpt() => new Option<int>("--threads", "-t") { Description = "Training threads", DefaultValueFactory = _ => Math.Min(2, Environment.ProcessorCount) }.AtLeast(1);

    private static Command Sft()
    {
        var task = TaskOpt();
        var preset = new Option<string>("--preset") { Description = "Model shape: tiny-r1, small-r1, micro, draft-r1 (llama layout); tiny-r1-ds, mini-r1-ds, micro-ds (deepseek2: MLA + MoE)", DefaultValueFactory = _ => "tiny-r1" };
        var outDir = new Option<string>("--out", "-o") { Description = "Output directory (checkpoint, metrics, charts, sft.gguf)", Required = true };
        var steps = new Option<int>("--steps") { Description = "Optimizer steps", DefaultValueFactory = _ => 1500 }.AtLeast(1);
        var batch = new Option<int>("--batch") { Description = "Sequences per step", DefaultValueFactory = _ => 16 }.AtLeast(1);
        var lr = new Option<float>("--lr") { Description = "Peak learning rate", DefaultValueFactory = _ => 2e-3f };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1 };
        var evalEvery = new Option<int>("--eval-every") { Description = "Held-out pass@1 every N steps (0 = at the end only)" };
        var evalN = new Option<int>("--eval-n") { Description = "Held-out problems per evaluation", DefaultValueFactory = _ => 200 };
        var stopAt = new Option<double>("--stop-at-pass") { Description = "Stop once a held-out evaluation reaches this pass@1 (0 = never)" };
        var evalSplit = EvalSplitOpt();
        var multiTurn = MultiTurnOpt();
        var noThink = NoThinkOpt();
        var init = new Option<string?>("--init") { Description = "Start from this model's weights (a GGUF of the preset's shape) instead of from scratch; with --lora-rank, the base model (path or hub reference)" };
        var data = new Option<string?>("--data")
        {
            Description = "Train on these conversations (OpenAI fine-tuning lines, {\"messages\": [...]}, e.g. from 'sputnik generate') instead of the task's traces, rendered with the model's chat template; --task still sets the in-run checks",
        };
        var threads = ThreadsOpt();
        var mtp = new Option<bool>("--mtp") { Description = "Add DeepSeek-V3's Multi-Token Prediction module (deepseek2 presets), for --spec-type mtp" };
        var freeze = new Option<bool>("--freeze-trunk") { Description = "Train only the MTP module (needs --mtp and --init): the main model keeps its weights" };
        var lora = new LoraCliOptions();
        var lossOn = new Option<string>("--loss-on") { Description = "assistant (default: loss on assistant tokens only) or all", DefaultValueFactory = _ => "assistant" };
        var maxSeq = new Option<int>("--max-seq") { Description = "Longest LoRA training sequence in tokens (longer JSONL examples are cut)", DefaultValueFactory = _ => 1024 }.AtLeast(2);
        var c = new Command("sft", "Supervised fine-tuning on <think> traces, from scratch or from --init; LoRA over a GGUF model with --lora-rank")
        {
            task, preset, outDir, steps, batch, lr, seed, evalEvery, evalN, evalSplit, stopAt, multiTurn, noThink, init, data, threads, mtp, freeze,
            lossOn, maxSeq,
        };
        lora.AddTo(c);
        c.SetAction((r, ct) =>
        {
            if (r.GetValue(lora.Rank) != 0)
                return Task.FromResult(Lora(new LoraOptions
                {
                    Base = CliOptions.ResolveModel(r.GetValue(init) ?? throw new ArgumentException("--lora-rank needs --init MODEL (the base to adapt)")),
                    OutDir = r.GetValue(outDir)!, Rank = r.GetValue(lora.Rank), Alpha = r.GetValue(lora.Alpha), Targets = lora.ReadTargets(r),
                    Task = r.GetValue(task)!, Data = r.GetValue(data),
                    LossOnAll = r.GetValue(lossOn) switch { "all" => true, "assistant" => false, var v => throw new ArgumentException($"--loss-on must be assistant or all (got '{v}')") },
                    Steps = r.GetValue(steps), BatchSize = r.GetValue(batch), MaxLr = r.GetValue(lr), MinLr = r.GetValue(lr) / 10, Seed = r.GetValue(seed),
                    EvalEvery = r.GetValue(evalEvery), EvalN = r.GetValue(evalN), EvalSplit = ReasoningTask.ParseSplit(r.GetValue(evalSplit)!),
                    Threads = r.GetValue(threads), MaxSeq = r.GetValue(maxSeq),
                    Mix = new ConversationMix(r.GetValue(multiTurn), r.GetValue(noThink)).Validated(),
                }, ct));
            var o = new SftOptions
            {
                Task = r.GetValue(task)!, Preset = r.GetValue(preset)!, OutDir = r.GetValue(outDir)!, Steps = r.GetValue(steps), BatchSize = r.GetValue(batch),
                MaxLr = r.GetValue(lr), Seed = r.GetValue(seed), EvalEvery = r.GetValue(evalEvery), EvalN = r.GetValue(evalN), Threads = r.GetValue(threads),
                StopAtPass = r.GetValue(stopAt), EvalSplit = ReasoningTask.ParseSplit(r.GetValue(evalSplit)!),
                Mix = new ConversationMix(r.GetValue(multiTurn), r.GetValue(noThink)).Validated(), Init = r.GetValue(init),
                Mtp = r.GetValue(mtp), FreezeTrunk = r.GetValue(freeze),
            };
            if (o.Steps < 1 || o.BatchSize < 1 || o.Threads < 1) throw new ArgumentException("--steps, --batch and --threads must be at least 1");
            if (o.Init != null && !File.Exists(o.Init)) throw new FileNotFoundException($"--init {o.Init} not found");
            if (r.GetValue(data) is { } dataPath) o = o with { Data = LoadData(dataPath, o) };
            var trainer = new SftTrainer(o);
            double? lastEval = null;
            WithProgress("SFT", o.Steps, (report, token) => trainer.Run(s =>
            {
                lastEval = s.EvalPassAt1 ?? lastEval;
                report(s.Step + 1, $"loss {s.Loss:F3}" + (o.Mtp ? $" mtp {s.MtpLoss:F3}" : "") + $" lr {s.Lr:G2} {s.TokensPerSecond:F0} tok/s" + (lastEval is { } e ? $" pass@1 {e:P0}" : ""));
            }, token), ct);
            Charts.Sft(o.OutDir);
            Console.WriteLine(trainer.GgufPath);
            return Task.FromResult(0);
        });
        return c;
    }

    /// <summary>Reads --data for a model of the preset's shape: the tiny models' tokenizer and chat template, the preset's context.</summary>
    private static ChatDataset LoadData(string path, SftOptions o)
    {
        var tokenizer = R1Format.Tokenizer;
        int context = TrainConfig.Preset(o.Preset, tokenizer.VocabSize).ContextLength;
        var data = ChatDataset.Load(path, new Sputnik.Inference.ChatPromptBuilder(tokenizer, R1Format.ChatTemplate), tokenizer, context, o.Seed);
        Console.Error.WriteLine($"data: {data.Examples.Count} conversations from {path}"
            + (data.Skipped > 0 ? $" ({data.Skipped} longer than the {context}-token context left out)" : ""));
        return data;
    }

    private static int Lora(LoraOptions o, CancellationToken ct)
    {
        if (o.Steps < 1 || o.BatchSize < 1 || o.Threads < 1) throw new ArgumentException("--steps, --batch and --threads must be at least 1");
        var trainer = new LoraTrainer(o);
        double? lastEval = null;
        WithProgress("LoRA SFT", o.Steps, (report, token) => trainer.Run(s =>
        {
            lastEval = s.EvalPassAt1 ?? lastEval;
            report(s.Step + 1, $"loss {s.Loss:F3} lr {s.Lr:G2} {s.TokensPerSecond:F0} tok/s" + (lastEval is { } e ? $" pass@1 {e:P0}" : ""));
        }, token), ct);
        Charts.Sft(o.OutDir);
        Console.WriteLine(trainer.AdapterPath);
        return 0;
    }

    /// <summary>The LoRA flags of train sft and train grpo.</summary>
    private sealed class LoraCliOptions
    {
        public Option<int> Rank { get; } = new("--lora-rank") { Description = "Train a LoRA adapter of this rank over the frozen --init model (llama, qwen2, qwen3, deepseek2; any file type) instead of full weights" };
        public Option<float> Alpha { get; } = new("--lora-alpha") { Description = "LoRA alpha (scale = alpha / rank)", DefaultValueFactory = _ => 16f };
        public Option<string?> Targets { get; } = new("--lora-targets") { Description = "Comma-separated matrix kinds to adapt (default: all the architecture offers: attn_q,attn_k,attn_v,attn_output,ffn_gate,ffn_up,ffn_down; deepseek2: attn_output and the FFNs, shared and routed experts)" };

        public void AddTo(Command c)
        {
            c.Options.Add(Rank);
            c.Options.Add(Alpha);
            c.Options.Add(Targets);
        }

        public string[]? ReadTargets(ParseResult r) => r.GetValue(Targets)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
    }

    private static Command Grpo()
    {
        var init = new Option<string>("--init") { Description = "Starting model (sft.gguf written by 'train sft'); with --lora-rank, the base model (path or hub reference)", Required = true };
        var task = TaskOpt();
        var outDir = new Option<string>("--out", "-o") { Description = "Output directory (checkpoint, metrics, charts, grpo.gguf)", Required = true };
        var steps = new Option<int>("--steps") { DefaultValueFactory = _ => 100 }.AtLeast(1);
        var prompts = new Option<int>("--prompts") { Description = "Prompts per step", DefaultValueFactory = _ => 16 }.AtLeast(1);
        var group = new Option<int>("--group", "-G") { Description = "Samples per prompt", DefaultValueFactory = _ => 8 }.AtLeast(2);
        var lr = new Option<float>("--lr") { DefaultValueFactory = _ => 5e-5f };
        var eps = new Option<float>("--epsilon") { Description = "Ratio clip range", DefaultValueFactory = _ => 0.2f };
        var beta = new Option<float>("--beta") { Description = "KL weight to the initial model (k3); 0 = no reference" };
        var mu = new Option<int>("--iterations") { Description = "Policy updates per rollout batch (μ)", DefaultValueFactory = _ => 1 };
        var temp = new Option<float>("--temp") { Description = "Rollout temperature", DefaultValueFactory = _ => 1f }.Temperature();
        var rounds = new Option<int>("--sample-rounds")
        {
            Description = "Dynamic sampling (DAPO): draw up to N rounds of prompts per step until --prompts groups have reward variance; 1 = off",
            DefaultValueFactory = _ => 1,
        };
        var maxNew = new Option<int>("--max-new") { Description = "Max completion tokens", DefaultValueFactory = _ => 400 }.AtLeast(1);
        var evalEvery = new Option<int>("--eval-every") { DefaultValueFactory = _ => 25 };
        var evalN = new Option<int>("--eval-n") { DefaultValueFactory = _ => 200 };
        var seed = new Option<int>("--seed") { DefaultValueFactory = _ => 1 };
        var evalSplit = EvalSplitOpt();
        var multiTurn = MultiTurnOpt();
        var noThink = NoThinkOpt();
        var threads = ThreadsOpt();
        var lora = new LoraCliOptions();
        var c = new Command("grpo", "Group Relative Policy Optimization with verifier rewards; of a LoRA adapter over the frozen --init model with --lora-rank")
        {
            init, task, outDir, steps, prompts, group, lr, eps, beta, mu, temp, rounds, maxNew, evalEvery, evalN, evalSplit, seed, multiTurn, noThink, threads,
        };
        lora.AddTo(c);
        c.SetAction((r, ct) =>
        {
            int rank = r.GetValue(lora.Rank);
            var o = new GrpoOptions
            {
                Init = rank != 0 ? CliOptions.ResolveModel(r.GetValue(init)!) : r.GetValue(init)!,
                LoraRank = rank, LoraAlpha = r.GetValue(lora.Alpha), LoraTargets = lora.ReadTargets(r), Task = r.GetValue(task)!, OutDir = r.GetValue(outDir)!, Steps = r.GetValue(steps), Prompts = r.GetValue(prompts),
                Group = r.GetValue(group), Lr = r.GetValue(lr), Epsilon = r.GetValue(eps), Beta = r.GetValue(beta), Iterations = r.GetValue(mu), SampleRounds = r.GetValue(rounds),
                Temperature = r.GetValue(temp), MaxNew = r.GetValue(maxNew), EvalEvery = r.GetValue(evalEvery), EvalN = r.GetValue(evalN),
                Seed = r.GetValue(seed), Threads = r.GetValue(threads), EvalSplit = ReasoningTask.ParseSplit(r.GetValue(evalSplit)!),
                Mix = new ConversationMix(r.GetValue(multiTurn), r.GetValue(noThink)).Validated(),
            };
            if (!File.Exists(o.Init)) throw new FileNotFoundException($"--init {o.Init} not found");
            if (rank < 0) throw new ArgumentException($"--lora-rank must be at least 1 (got {rank})");
            if (o.SampleRounds < 1) throw new ArgumentException("--sample-rounds must be at least 1");
            if (o.Group < 2) throw new ArgumentException("--group must be at least 2 (advantages are relative to the group)");
            var trainer = new GrpoTrainer(o);
            double? lastEval = null;
            WithProgress("GRPO", o.Steps, (report, token) => trainer.Run(s =>
            {
                lastEval = s.EvalPassAt1 ?? lastEval;
                report(s.Step + 1, $"reward {s.MeanReward:F3} acc {s.Accuracy:P0} len {s.MeanLength:F0} {s.TokensPerSecond:F0} tok/s" + (lastEval is { } e ? $" pass@1 {e:P0}" : ""));
            }, token), ct);
            Charts.Grpo(o.OutDir);
            Console.WriteLine(trainer.OutputPath);
            return Task.FromResult(0);
        });
        return c;
    }

    /// <summary>
    /// Spectre progress bar (description, bar, %, elapsed, ETA) on stderr; when stderr is not a terminal (nohup, CI)
    /// it prints one plain line every few steps instead, so logs stay readable.
    /// </summary>
    private static void WithProgress(string name, int total, Action<Action<int, string>, CancellationToken> run, CancellationToken ct)
    {
        if (Console.IsErrorRedirected)
        {
            var start = DateTime.UtcNow;
            run((done, text) =>
            {
                if (done % 10 != 0 && done != total) return;
                var el = DateTime.UtcNow - start;
                Console.Error.WriteLine($"{name} {done}/{total} {text} elapsed {el:hh\\:mm\\:ss}");
            }, ct);
            return;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        console.Progress()
            .Columns(new TaskDescriptionColumn { Alignment = Justify.Left }, new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn())
            .Start(ctx =>
            {
                var t = ctx.AddTask(name, maxValue: total);
                run((done, text) => { t.Value = done; t.Description = Markup.Escape($"{name} {text}"); }, ct);
            });
    }
}
