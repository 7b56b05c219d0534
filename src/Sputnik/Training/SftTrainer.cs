using System.Diagnostics;
using Sputnik.Models;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

internal sealed record SftOptions
{
    public required string Task { get; init; }
    public string Preset { get; init; } = "tiny-r1";
    public required string OutDir { get; init; }
    public int Steps { get; init; } = 1500;
    public int BatchSize { get; init; } = 16;
    public float MaxLr { get; init; } = 2e-3f;
    public float MinLr { get; init; } = 1e-4f;
    public int Warmup { get; init; } = 50;
    public float WeightDecay { get; init; } = 0.05f;
    public int Seed { get; init; } = 1;
    public int CheckpointEvery { get; init; } = 100;
    /// <summary>Held-out greedy pass@1 every this many steps (0 = only at the end).</summary>
    public int EvalEvery { get; init; }
    public int EvalN { get; init; } = 200;
    /// <summary>Split of the in-run checks (and so of --stop-at-pass): dev by default; never test when choosing settings.</summary>
    public EvalSplit EvalSplit { get; init; } = EvalSplit.Dev;
    public int Threads { get; init; } = 2;
    /// <summary>
    /// Stop as soon as a held-out evaluation reaches this pass@1 (0 = run all steps): the R1 recipe wants SFT to leave
    /// the model partly competent so GRPO has groups with mixed rewards to learn from.
    /// </summary>
    public double StopAtPass { get; init; }
    /// <summary>Sequences per forward/backward pass; a step accumulates BatchSize / MicroBatch of them.</summary>
    public int MicroBatch { get; init; } = 8;
    /// <summary>Shares of multi-turn and thinking-off samples (ConversationMix; its defaults when not set).</summary>
    public ConversationMix Mix { get; init; } = new();
    /// <summary>
    /// Starting weights (a GGUF of the preset's shape, e.g. an earlier bundled model) instead of a random init; the
    /// context is the preset's, so a model exported with a shorter one continues at the longer one (RoPE has no
    /// learned positions). Null = from scratch.
    /// </summary>
    public string? Init { get; init; }
    /// <summary>
    /// Conversations to train on (<c>train sft --data FILE.jsonl</c>, rendered with the tiny models' template) instead
    /// of the task's generated traces; the task still sets the in-run checks. Null = the task's traces.
    /// </summary>
    public ChatDataset? Data { get; init; }
    /// <summary>Adds DeepSeek-V3's depth-1 Multi-Token Prediction module (deepseek2 presets only), trained with λ 0.3, then 0.1 for the last 30 % of steps.</summary>
    public bool Mtp { get; init; }
    /// <summary>Trains only the MTP module (needs <see cref="Mtp"/> and <see cref="Init"/>): the main head's outputs stay bit for bit those of --init.</summary>
    public bool FreezeTrunk { get; init; }
}

internal readonly record struct SftStep(int Step, int TotalSteps, float Loss, float Lr, float GradNorm, double TokensPerSecond, TimeSpan Elapsed, double? EvalPassAt1, float MtpLoss = 0);

/// <summary>
/// Supervised fine-tuning from scratch on task traces (the R1 "cold start" / distillation stage at our scale):
/// loss only on the assistant's tokens (thinking, answer, EOS), AdamW with warmup + cosine, clipping at 1.0,
/// checkpoints every N steps (resume after a kill continues the same data stream: batch RNG is seeded by step).
/// Writes DIR/metrics.csv, DIR/checkpoint.bin and DIR/sft.gguf.
/// </summary>
internal sealed class SftTrainer(SftOptions o)
{
    public string GgufPath => Path.Combine(o.OutDir, "sft.gguf");
    public string MetricsPath => Path.Combine(o.OutDir, "metrics.csv");
    public string CheckpointPath => Path.Combine(o.OutDir, "checkpoint.bin");
    /// <summary>Written when --stop-at-pass ended the run early, so running the same command again does not train on.</summary>
    public string StoppedPath => Path.Combine(o.OutDir, "stopped.txt");

    /// <summary>
    /// Draws b training examples (prompt + completion tokens) that fit the context: conversations shaped by
    /// <paramref name="mix"/> (single thinking turns when null), the loss on the last answer only.
    /// </summary>
    public static List<(int[] Ids, int PromptLen)> Draw(ReasoningTask task, Random rng, int b, int maxSeq, ConversationMix? mix = null)
    {
        mix ??= ConversationMix.SingleTurn;
        var seqs = new List<(int[] Ids, int PromptLen)>();
        for (int tries = 0; seqs.Count < b; tries++)
        {
            if (tries > 1000 * b) throw new InvalidOperationException($"{task.Name}: almost no example fits the model's {maxSeq}-token context");
            var c = mix.Draw(task, rng, EvalSplit.Train, maxSeq);
            var prompt = c.EncodePrompt();
            var full = prompt.Concat(c.EncodeCompletion()).ToArray();
            if (full.Length <= maxSeq) seqs.Add((full, prompt.Length));
        }
        return seqs;
    }

    /// <summary>Pads sequences into tokens [B,T] with targets −1 except where the next token is a completion token.</summary>
    public static (int[] Tokens, int[] Targets, int T, int Counted) Pack(IReadOnlyList<(int[] Ids, int PromptLen)> seqs)
    {
        int b = seqs.Count, t = seqs.Max(s => s.Ids.Length);
        var tokens = new int[b * t];
        var targets = new int[b * t];
        Array.Fill(targets, -1);
        Array.Fill(tokens, R1Format.Tokenizer.EosId);
        int counted = 0;
        for (int i = 0; i < b; i++)
        {
            var (ids, pl) = seqs[i];
            ids.CopyTo(tokens, i * t);
            // position j predicts ids[j+1]; only positions whose target lies in the completion count
            for (int j = pl - 1; j < ids.Length - 1; j++) { targets[i * t + j] = ids[j + 1]; counted++; }
        }
        return (tokens, targets, t, counted);
    }

    private float[] _weights = [];

    /// <summary>dL/dloss per row: 1/total on counted rows, 0 on prompt and padding (buffer reused across steps).</summary>
    private ReadOnlySpan<float> LossWeights(int[] targets, int total)
    {
        if (_weights.Length < targets.Length) _weights = new float[targets.Length];
        for (int i = 0; i < targets.Length; i++) _weights[i] = targets[i] >= 0 ? 1f / total : 0f;
        return _weights.AsSpan(0, targets.Length);
    }

    /// <summary>
    /// Copies an exported model's weights into <paramref name="model"/>; its shape must be the preset's (context
    /// aside). A file without an MTP module may start a model with one: the module keeps its random init.
    /// </summary>
    private static void LoadInit(string path, TransformerModel model)
    {
        var init = GgufExport.Read(path);
        var trunk = model.Config is DeepSeek2Config { NextnLayers: > 0 } ds && init.Mtp == null ? ds with { NextnLayers = 0 } : model.Config;
        int[] want = TrainConfig.ShapeKey(trunk, withContext: false), got = TrainConfig.ShapeKey(init.Config, withContext: false);
        if (!want.SequenceEqual(got))
            throw new ArgumentException($"--init {path}: its shape ({string.Join(",", got)}) is not the preset's ({string.Join(",", want)})");
        init.P.Data.CopyTo(model.P.Data, 0); // the trunk's slices come first in both, in the same order
    }

    public TransformerModel Run(Action<SftStep>? onStep = null, CancellationToken ct = default)
    {
        Directory.CreateDirectory(o.OutDir);
        Par.Threads = o.Threads;
        var task = ReasoningTask.Create(o.Task);
        var config = TrainConfig.Preset(o.Preset, R1Format.Tokenizer.VocabSize);
        if (o.Mtp)
            config = config is DeepSeek2Config dsc ? dsc with { NextnLayers = 1 }
                : throw new ArgumentException($"--mtp: preset '{o.Preset}' is not a deepseek2 layout (tiny-r1-ds, micro-ds)");
        if (o.FreezeTrunk && (!o.Mtp || o.Init == null)) throw new ArgumentException("--freeze-trunk trains only the MTP module: it needs --mtp and --init");
        var model = new TransformerModel(config, o.Seed);
        if (o.Init != null) LoadInit(o.Init, model);
        if (o.FreezeTrunk) model.FreezeTrunk();
        var opt = new AdamW(model.P.Count, weightDecay: o.WeightDecay);
        int start = 0;
        if (File.Exists(CheckpointPath)) start = Checkpoint.Load(CheckpointPath, config, model.P, opt, out _);
        if (File.Exists(StoppedPath)) start = o.Steps;
        var csv = new MetricsCsv(MetricsPath, "step,loss,lr,grad_norm,tokens_per_s,elapsed_s,eval_pass_at_1" + (o.Mtp ? ",mtp_loss" : ""), start);
        var sw = Stopwatch.StartNew();
        long tokensSeen = 0;
        for (int step = start; step < o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            var rng = new Random(Seeds.Mix(o.Seed, step));
            // Sorted by length and cut into micro-batches padded separately: arithmetic traces range from ~100 to
            // ~400 tokens, so one batch padded to its longest sequence would be mostly padding. Each row's loss
            // weight is 1/(completion tokens of the whole batch), so the gradient is that of the whole batch.
            var seqs = o.Data?.Batch(step, o.BatchSize) ?? Draw(task, rng, o.BatchSize, config.ContextLength, o.Mix);
            seqs.Sort((x, y) => x.Ids.Length.CompareTo(y.Ids.Length));
            int total = seqs.Sum(x => x.Ids.Length - x.PromptLen);
            double lossSum = 0, mtpSum = 0;
            // DeepSeek-V3's λ: 0.3 for the first 10T of 14.8T tokens, then 0.1
            model.MtpWeight = step < 0.7 * o.Steps ? 0.3f : 0.1f;
            model.P.ZeroGrad();
            foreach (var chunk in seqs.Chunk(Math.Max(1, o.MicroBatch)))
            {
                var (tokens, targets, t, counted) = Pack(chunk);
                lossSum += model.Forward(tokens, targets, chunk.Length, t) * counted;
                mtpSum += model.MtpLoss * counted;
                model.Backward(LossWeights(targets, total));
                tokensSeen += chunk.Sum(x => x.Ids.Length);             // real tokens, padding not counted
            }
            float loss = (float)(lossSum / total), mtpLoss = (float)(mtpSum / total);
            float norm = Schedule.ClipGlobalNorm(model.P.Grad, 1f);
            float lr = Schedule.WarmupCosine(step, o.Warmup, o.Steps, o.MaxLr, o.MinLr);
            opt.Update(model.P.Data, model.P.Grad, lr, model.DecayMask);
            model.UpdateRouterBias();
            double? eval = null;
            bool last = step == o.Steps - 1;
            if ((o.EvalEvery > 0 && (step + 1) % o.EvalEvery == 0) || last)
            {
                GgufExport.Write(model, GgufPath);
                using var engine = new RolloutEngine(GgufPath, o.Threads);
                eval = Evaluation.Run(engine, task, o.EvalN, 1, split: o.EvalSplit).PassAt1;
            }
            double tps = tokensSeen / Math.Max(1e-9, sw.Elapsed.TotalSeconds);
            string evalText = eval?.ToString("F4", System.Globalization.CultureInfo.InvariantCulture) ?? "";
            if (o.Mtp) csv.Append(step, loss, lr, norm, Math.Round(tps, 1), Math.Round(sw.Elapsed.TotalSeconds, 2), evalText, mtpLoss);
            else csv.Append(step, loss, lr, norm, Math.Round(tps, 1), Math.Round(sw.Elapsed.TotalSeconds, 2), evalText);
            bool stop = o.StopAtPass > 0 && eval >= o.StopAtPass;
            if ((step + 1) % o.CheckpointEvery == 0 || last || stop) Checkpoint.Save(CheckpointPath, config, step + 1, model.P, opt);
            onStep?.Invoke(new SftStep(step, o.Steps, loss, lr, norm, tps, sw.Elapsed, eval, mtpLoss));
            if (stop)
            {
                File.WriteAllText(StoppedPath, $"stopped after step {step + 1}: held-out pass@1 {eval:F4} >= {o.StopAtPass}\n");
                break;
            }
        }
        if (!File.Exists(GgufPath) || start >= o.Steps) GgufExport.Write(model, GgufPath);
        return model;
    }
}
