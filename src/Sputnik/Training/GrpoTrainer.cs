using System.Diagnostics;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

internal sealed record GrpoOptions
{
    public required string Init { get; init; }
    public required string Task { get; init; }
    public required string OutDir { get; init; }
    public int Steps { get; init; } = 100;
    /// <summary>Prompts per step (P); each gets G samples.</summary>
    public int Prompts { get; init; } = 16;
    public int Group { get; init; } = 8;
    public float Temperature { get; init; } = 1f;
    public int MaxNew { get; init; } = 400;
    public float Lr { get; init; } = 5e-5f;
    public int Warmup { get; init; } = 5;
    /// <summary>Clip range ε of the probability ratio.</summary>
    public float Epsilon { get; init; } = 0.2f;
    /// <summary>KL(π‖π_ref) weight (k3 estimator); 0 skips the reference model entirely.</summary>
    public float Beta { get; init; }
    /// <summary>Policy updates per batch of rollouts (μ); with 1 the ratio is identically 1 and GRPO is on-policy REINFORCE with group baselines.</summary>
    public int Iterations { get; init; } = 1;
    /// <summary>
    /// Rollout rounds per step at most (DAPO's dynamic sampling): while fewer than P groups with reward variance have
    /// been collected, draw P more prompts. 1 = plain GRPO. Metrics average over every rollout of the step.
    /// </summary>
    public int SampleRounds { get; init; } = 1;
    public int MicroBatch { get; init; } = 16;
    public int Seed { get; init; } = 1;
    public int EvalEvery { get; init; } = 25;
    public int EvalN { get; init; } = 200;
    /// <summary>Split of the in-run checks: dev by default.</summary>
    public EvalSplit EvalSplit { get; init; } = EvalSplit.Dev;
    public int Threads { get; init; } = 2;
    /// <summary>Shares of multi-turn and thinking-off rollout prompts (ConversationMix; its defaults when not set).</summary>
    public ConversationMix Mix { get; init; } = new();
    /// <summary>LoRA rank; 0 trains every weight of a Sputnik model, above 0 an adapter over the frozen <see cref="Init"/> base.</summary>
    public int LoraRank { get; init; }
    public float LoraAlpha { get; init; } = 16;
    /// <summary>Matrix kinds the adapter targets (null = all the architecture offers, <see cref="LoraSet.Targetable"/>).</summary>
    public IReadOnlyList<string>? LoraTargets { get; init; }
}

/// <summary>
/// One step's metrics. Groups: groups rolled out (P per sampling round); InformativeGroups: groups with reward variance
/// that went into the update (at most P).
/// </summary>
internal readonly record struct GrpoStep(int Step, int TotalSteps, float MeanReward, float Accuracy, float MeanLength, float FracZeroStd,
    double TokensPerSecond, TimeSpan Elapsed, double? EvalPassAt1, int Groups = 0, int InformativeGroups = 0);

/// <summary>
/// GRPO as in DeepSeekMath/R1 (§2.4 of the reference notes): G samples per prompt from the current policy through
/// the inference engine, verifier rewards, group-normalised advantages Â = (r − mean)/(std + 1e-4) (Bessel std as
/// TRL), per-token loss −min(ρÂ, clip(ρ, 1−ε, 1+ε)Â) + β·k3, averaged over all completion tokens of the batch
/// (token-level, "dapo"/"bnpo" aggregation). Groups whose rewards are all equal carry no signal and are skipped.
/// What is trained is a <see cref="GrpoPolicy"/>: all weights, or a LoRA adapter over a frozen base.
/// Writes DIR/grpo_metrics.csv, DIR/grpo_checkpoint.bin and DIR/grpo.gguf (LoRA: DIR/adapter.gguf, and DIR/merged.gguf
/// for a base Sputnik's trainer wrote).
/// </summary>
internal sealed class GrpoTrainer(GrpoOptions o)
{
    /// <summary>The file the run leaves: DIR/grpo.gguf, or with LoRA DIR/adapter.gguf.</summary>
    public string OutputPath => Path.Combine(o.OutDir, o.LoraRank > 0 ? "adapter.gguf" : "grpo.gguf");
    public string MetricsPath => Path.Combine(o.OutDir, "grpo_metrics.csv");
    public string CheckpointPath => Path.Combine(o.OutDir, "grpo_checkpoint.bin");

    private sealed record Sample(int[] Tokens, int PromptLen, float Advantage);

    public void Run(Action<GrpoStep>? onStep = null, CancellationToken ct = default)
    {
        Par.Threads = o.Threads;
        var task = ReasoningTask.Create(o.Task);
        // Every refusal (the base, the rank, the targets) happens here, before anything is written.
        using var policy = GrpoPolicy.Create(o);
        var model = policy.Model;
        model.Temperature = o.Temperature > 0 ? o.Temperature : 1f;
        // An MTP module (if the model has one) is carried through unchanged: its loss belongs to SFT, not to rewards.
        model.MtpWeight = 0;
        var opt = new AdamW(policy.Trained.Count, beta2: 0.99f, weightDecay: 0f);
        Directory.CreateDirectory(o.OutDir);
        int start = policy.Resume(CheckpointPath, opt);
        var csv = new MetricsCsv(MetricsPath, "step,mean_reward,accuracy,mean_length,frac_zero_std,tokens_per_s,elapsed_s,eval_pass_at_1", start);
        var sw = Stopwatch.StartNew();
        long tokens = 0;
        for (int step = start; step < o.Steps; step++)
        {
            ct.ThrowIfCancellationRequested();
            double? eval = null;
            using (var engine = policy.Rollouts(o.Threads))
            {
                if (o.EvalEvery > 0 && step % o.EvalEvery == 0)
                    eval = Evaluation.Run(engine, task, o.EvalN, 1, split: o.EvalSplit).PassAt1;
                var rng = new Random(Seeds.Mix(o.Seed, step));
                var samples = new List<Sample>();
                var tally = new StepTally();
                // Round 0 is the plain GRPO step; later rounds (dynamic sampling, DAPO) draw fresh prompts only to
                // replace groups that carried no signal, up to P informative groups in all.
                for (int round = 0; round < o.SampleRounds && tally.Informative < o.Prompts; round++)
                {
                    var problems = Enumerable.Range(0, o.Prompts).Select(_ => o.Mix.Draw(task, rng, EvalSplit.Train, model.Config.ContextLength)).ToArray();
                    var prompts = problems.SelectMany(c => Enumerable.Repeat(c.EncodePrompt(), o.Group)).ToList();
                    int genSeed = round == 0 ? Seeds.Mix(o.Seed, step, 7) : Seeds.Mix(o.Seed, step, 7, round);
                    var outs = engine.Generate(prompts, o.Temperature, o.MaxNew, genSeed);
                    tokens += outs.Sum(x => (long)x.Completion.Length);
                    // With a KL term a zero-advantage group still pulls toward the reference; only round 0's count.
                    for (int i = 0; i < problems.Length; i++)
                        AddGroup(task, problems[i], outs.AsSpan(i * o.Group, o.Group), keepZeroStd: o.Beta > 0 && round == 0, samples, tally);
                }
                tokens += samples.Sum(s => (long)s.Tokens.Length);
                if (samples.Count > 0) Update(policy, opt, samples, step);
                int n = tally.Groups * o.Group;
                double tps = tokens / Math.Max(1e-9, sw.Elapsed.TotalSeconds);
                var info = new GrpoStep(step, o.Steps, tally.RewardSum / n, (float)tally.Correct / n, (float)tally.LengthSum / n,
                    (float)tally.ZeroStd / tally.Groups, tps, sw.Elapsed, eval, tally.Groups, tally.Informative);
                csv.Append(step, info.MeanReward, info.Accuracy, info.MeanLength, info.FracZeroStd, Math.Round(tps, 1), Math.Round(sw.Elapsed.TotalSeconds, 2),
                    eval?.ToString("F4", System.Globalization.CultureInfo.InvariantCulture) ?? "");
                policy.Save(CheckpointPath, step + 1, opt);
                onStep?.Invoke(info);
            }
        }
        policy.Finish();
    }

    /// <summary>What one step's rollouts scored, over every round.</summary>
    private sealed class StepTally
    {
        public int Groups, Informative, ZeroStd, Correct;
        public long LengthSum;
        public float RewardSum;
    }

    /// <summary>
    /// Rewards one group of G rollouts of <paramref name="problem"/> and, when it goes into the update, adds its samples
    /// with group-normalised advantages: a group with reward variance while fewer than P are in, or a zero-variance one
    /// when <paramref name="keepZeroStd"/>.
    /// </summary>
    private void AddGroup(ReasoningTask task, Conversation problem, ReadOnlySpan<Rollout> group, bool keepZeroStd, List<Sample> samples, StepTally tally)
    {
        var r = new float[group.Length];
        for (int g = 0; g < group.Length; g++)
        {
            var grade = problem.Verify(task, group[g].Text);
            r[g] = ReasoningTask.Reward(grade);
            tally.RewardSum += r[g];
            tally.LengthSum += group[g].Completion.Length;
            if (grade == Grade.Correct) tally.Correct++;
        }
        tally.Groups++;
        float mean = r.Average();
        float std = (float)Math.Sqrt(r.Sum(x => (x - mean) * (x - mean)) / Math.Max(1, group.Length - 1));
        if (std < 1e-6f)
        {
            tally.ZeroStd++;
            if (!keepZeroStd) return;
        }
        else if (tally.Informative == o.Prompts) return;
        else tally.Informative++;
        for (int g = 0; g < group.Length; g++)
        {
            var ro = group[g];
            if (ro.Completion.Length > 0)
                samples.Add(new Sample(ro.Prompt.Concat(ro.Completion).ToArray(), ro.Prompt.Length, (r[g] - mean) / (std + 1e-4f)));
        }
    }

    /// <summary>μ policy-gradient updates on one batch of rollouts, in micro-batches with accumulated gradients.</summary>
    private void Update(GrpoPolicy policy, AdamW opt, List<Sample> samples, int step)
    {
        var model = policy.Model;
        int totalTokens = samples.Sum(s => s.Tokens.Length - s.PromptLen);
        // length-sorted micro-batches pad less (completions range from ~100 to ~400 tokens); the loss is a sum, so order is free
        var chunks = samples.OrderBy(s => s.Tokens.Length).Chunk(o.MicroBatch).ToArray();
        var old = new float[chunks.Length][];
        var refLp = new float[chunks.Length][];
        for (int it = 0; it < o.Iterations; it++)
        {
            policy.ZeroGrad();
            for (int c = 0; c < chunks.Length; c++)
            {
                var (tok, tgt, t) = Pack(chunks[c]);
                int b = chunks[c].Length, n = b * t;
                model.Forward(tok, tgt, b, t);
                old[c] ??= model.Losses.ToArray(); // π_old = the policy that sampled (first iteration, detached)
                if (it == 0 && policy.ReferenceLosses(tok, tgt, b, t) is { } r)
                {
                    refLp[c] = r;
                    model.Forward(tok, tgt, b, t); // restore the policy's activations for backward
                }
                var weights = new float[n];
                var advantages = chunks[c].Select(s => s.Advantage).ToArray();
                GrpoObjective.Chunk(model.Losses, old[c], refLp[c], tgt, t, advantages, o.Epsilon, o.Beta, totalTokens, weights);
                model.Backward(weights);
            }
            Schedule.ClipGlobalNorm(policy.Trained.Grad, 1f);
            policy.Apply(opt, o.Lr * Math.Min(1f, (step + 1f) / Math.Max(1, o.Warmup)));
        }
    }

    private static (int[] Tokens, int[] Targets, int T) Pack(Sample[] chunk)
    {
        int t = chunk.Max(s => s.Tokens.Length), b = chunk.Length;
        var tokens = new int[b * t];
        var targets = new int[b * t];
        Array.Fill(targets, -1);
        for (int i = 0; i < b; i++)
        {
            var s = chunk[i];
            s.Tokens.CopyTo(tokens, i * t);
            for (int j = s.PromptLen - 1; j < s.Tokens.Length - 1; j++) targets[i * t + j] = s.Tokens[j + 1];
        }
        return (tokens, targets, t);
    }
}

/// <summary>GRPO's surrogate objective over a packed micro-batch, and its gradient in the model's per-row losses.</summary>
internal static class GrpoObjective
{
    /// <summary>
    /// Σ over rows with a target of [−min(ρÂ, clip(ρ, 1−ε, 1+ε)Â) + β·k3] / <paramref name="totalTokens"/>, where a row's
    /// loss is −log π(target), ρ = π/π_old and k3 = π_ref/π − log(π_ref/π) − 1 (no KL term when
    /// <paramref name="refLosses"/> is null). <paramref name="rowWeights"/>[i] gets d objective / d loss row i, the weights
    /// <see cref="TransformerModel.Backward"/> takes; all three loss arrays are row-aligned [b·t], advantages one per sequence.
    /// </summary>
    public static double Chunk(ReadOnlySpan<float> losses, ReadOnlySpan<float> oldLosses, float[]? refLosses, ReadOnlySpan<int> targets, int t,
        ReadOnlySpan<float> advantages, float epsilon, float beta, int totalTokens, Span<float> rowWeights)
    {
        double sum = 0;
        for (int i = 0; i < losses.Length; i++)
        {
            rowWeights[i] = 0;
            if (targets[i] < 0) continue;
            float adv = advantages[i / t];
            float rho = MathF.Exp(oldLosses[i] - losses[i]);
            float objective = -MathF.Min(rho * adv, Math.Clamp(rho, 1 - epsilon, 1 + epsilon) * adv);
            // d/dlp of −min(ρÂ, clip(ρ)Â): −Âρ where the unclipped branch is the minimum, else 0
            bool active = adv >= 0 ? rho <= 1 + epsilon : rho >= 1 - epsilon;
            float dLogProb = active ? -adv * rho : 0f;
            if (refLosses != null)
            {
                float d = losses[i] - refLosses[i]; // log π_ref − log π
                objective += beta * (MathF.Exp(d) - d - 1);
                dLogProb += beta * (1f - MathF.Exp(d)); // d k3 / d log π
            }
            sum += objective;
            rowWeights[i] = -dLogProb / totalTokens; // loss row = −log π
        }
        return sum / totalTokens;
    }
}
