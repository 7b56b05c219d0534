using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Training;
using Sputnik.Training.Tasks;
using Xunit;
using static Sputnik.Tests.Training.GradCheckTests;

namespace Sputnik.Tests.Training;

/// <summary>
/// GRPO of a LoRA adapter over a frozen base: the surrogate objective's gradient on the adapter against finite
/// differences (clipped ratio and k3 KL to the base at adapter scale 0), rollouts of the untrained adapter equal to the
/// base's, a short run on the bundled model that writes a llama.cpp-layout adapter and resumes after a kill to the same
/// adapter as an uninterrupted run, and the one-line refusals.
/// </summary>
public class GrpoLoraTests : IDisposable
{
    private readonly DirectoryInfo _dir = Directory.CreateTempSubdirectory("sputnik-grpo-lora-");
    private static string Bundled => Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");
    private static string BundledDraft => Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny-draft.gguf");

    public void Dispose() => _dir.Delete(recursive: true);

    private GrpoOptions Options(string outDir, int steps, string init = "") => new()
    {
        Init = init == "" ? Bundled : init, Task = "multiplication", OutDir = outDir, Steps = steps, Prompts = 4, Group = 4,
        Temperature = 1.6f, MaxNew = 280, Lr = 2e-3f, Warmup = 1, Beta = 0.05f, EvalEvery = 0, Threads = 2,
        LoraRank = 4, LoraAlpha = 8,
    };

    [Theory]
    [InlineData("deepseek2")]
    [InlineData("qwen2")]
    public void Objective_gradient_on_the_adapter_matches_finite_differences(string arch)
    {
        var (model, lora, file) = LoraTrainer.Open(LoraTests.TinyBase(_dir.FullName, arch), rank: 2, alpha: 4, targets: null, maxSeq: 16, seed: 7);
        using var _ = file;
        model.Temperature = 0.9f;
        int b = 2, t = 6;
        var rng = new Random(11);
        var tokens = Enumerable.Range(0, b * t).Select(_ => rng.Next(model.Config.VocabSize)).ToArray();
        var targets = Enumerable.Range(0, b * t).Select(i => i % t < 2 ? -1 : tokens[Math.Min(i + 1, b * t - 1)]).ToArray();
        float[] advantages = [0.9f, -1.3f];
        Rand(new Random(8), lora.P.Count, 0.3f).CopyTo(lora.P.Data, 0);
        // π_ref: the base, the adapter at scale 0
        lora.SetScale(0);
        model.Forward(tokens, targets, b, t);
        var refLosses = model.Losses.ToArray();
        lora.SetScale(1);
        // π_old: ratios π/π_old of e^±0.3 (beyond the clip at ε = 0.2) and e^±0.02 (inside it) at θ, far enough from
        // the clip's kinks that the finite differences never cross one
        model.Forward(tokens, targets, b, t);
        float[] offsets = [-0.3f, -0.02f, 0.02f, 0.3f];
        var oldLosses = model.Losses.ToArray().Select((l, i) => l + offsets[i % 4]).ToArray();

        int total = targets.Count(x => x >= 0);
        var weights = new float[b * t];
        double Objective()
        {
            model.Forward(tokens, targets, b, t);
            return GrpoObjective.Chunk(model.Losses, oldLosses, refLosses, targets, t, advantages, epsilon: 0.2f, beta: 0.3f, total, weights);
        }
        Objective();
        // the clip zeroes the policy term of exactly the tokens whose ratio left the range on the side the advantage pushes
        for (int i = 0; i < b * t; i++)
        {
            if (targets[i] < 0) { Assert.Equal(0f, weights[i]); continue; }
            float adv = advantages[i / t], rho = MathF.Exp(oldLosses[i] - model.Losses[i]);
            bool clipped = adv >= 0 ? rho > 1.2f : rho < 0.8f;
            float d = model.Losses[i] - refLosses[i], klPart = -0.3f * (1f - MathF.Exp(d)) / total;
            Assert.Equal(clipped ? klPart : klPart + adv * rho / total, weights[i], 1e-5f);
        }
        lora.P.ZeroGrad();
        model.P.ZeroGrad();
        model.Backward(weights);
        Assert.Contains(lora.P.Grad, g => g != 0);
        foreach (var s in lora.P.Slices) Check($"grpo.{arch}.{s.Name}", lora.P.Data, lora.P.G(s), Objective, samples: 5, h: 1e-3f, offset: s.Offset);
    }

    [Fact]
    public void Untrained_adapter_samples_exactly_the_base()
    {
        var o = Options(Directory.CreateDirectory(Path.Combine(_dir.FullName, "same")).FullName, 1);
        using var policy = new LoraPolicy(o);
        var task = ReasoningTask.Create("addition");
        var prompts = Enumerable.Range(0, 4).Select(i => Conversation.Single(task.Sample(new Random(i), EvalSplit.Train)).EncodePrompt()).ToList();
        Rollout[] withAdapter, plain;
        using (var engine = policy.Rollouts(2)) withAdapter = engine.Generate(prompts, 1.3f, 60, seed: 5);
        using (var engine = new RolloutEngine(Bundled, 2)) plain = engine.Generate(prompts, 1.3f, 60, seed: 5);
        Assert.Equal(plain.Select(r => r.Text), withAdapter.Select(r => r.Text));

        // and the adapter is applied: a non-zero B changes the samples
        Rand(new Random(3), policy.Lora.P.Count, 0.5f).CopyTo(policy.Lora.P.Data, 0);
        using (var engine = policy.Rollouts(2)) withAdapter = engine.Generate(prompts, 1.3f, 60, seed: 5);
        Assert.NotEqual(plain.Select(r => r.Text), withAdapter.Select(r => r.Text));
    }

    [Fact]
    public void Rollout_engine_with_the_adapter_gives_the_training_models_logits()
    {
        var o = Options(Directory.CreateDirectory(Path.Combine(_dir.FullName, "agree")).FullName, 1);
        using var policy = new LoraPolicy(o);
        Rand(new Random(4), policy.Lora.P.Count, 0.2f).CopyTo(policy.Lora.P.Data, 0);
        policy.Rollouts(1).Dispose(); // writes DIR/adapter.gguf, what the engine samples with
        var task = ReasoningTask.Create("multiplication");
        var tokens = Conversation.Single(task.Sample(new Random(1), EvalSplit.Train)).EncodePrompt();
        int t = tokens.Length, vocab = policy.Model.Config.VocabSize;
        policy.Model.Temperature = 1f;
        policy.Model.Forward(tokens, Enumerable.Repeat(-1, t).ToArray(), 1, t);
        var trained = policy.Model.Logits.Slice((t - 1) * vocab, vocab).ToArray();

        using var lm = ModelLoader.Load(GgufFile.Open(Bundled), threads: 1);
        lm.AttachAdapter(LoraAdapter.Load(policy.OutputPath, lm.File));
        var state = lm.CreateState(t + 1);
        state.Adapters = Sputnik.Models.LoraSet.Of([(0, 1f)]);
        var sampled = lm.Forward(state, tokens).ToArray();
        var plainState = lm.CreateState(t + 1);
        var plain = lm.Forward(plainState, tokens).ToArray();
        double maxDiff = trained.Zip(sampled, (x, y) => Math.Abs(x - y)).Max();
        double adapterEffect = plain.Zip(sampled, (x, y) => Math.Abs(x - y)).Max();
        Assert.True(adapterEffect > 0.05, $"the adapter moves the logits by only {adapterEffect}");
        Assert.True(maxDiff < 2e-3 * Math.Max(1, trained.Max(Math.Abs)), $"training and inference logits differ by {maxDiff} (the adapter moves them by {adapterEffect})");
    }

    [Fact]
    public void Run_writes_a_llama_cpp_adapter_and_resumes_after_a_kill_where_it_stopped()
    {
        string whole = Path.Combine(_dir.FullName, "whole"), killed = Path.Combine(_dir.FullName, "killed");
        var steps = new List<GrpoStep>();
        new GrpoTrainer(Options(whole, 3)).Run(steps.Add);
        Assert.Equal(3, steps.Count);
        Assert.Contains(steps, s => s.InformativeGroups > 0); // the run had something to learn from

        // "kill" after the second step's checkpoint, then run again to the end
        Assert.Throws<OperationCanceledException>(() => new GrpoTrainer(Options(killed, 3)).Run(s => { if (s.Step == 1) throw new OperationCanceledException(); }));
        var resumed = new List<GrpoStep>();
        new GrpoTrainer(Options(killed, 3)).Run(resumed.Add);
        Assert.Equal([2], resumed.Select(s => s.Step));
        Assert.Equal(4, File.ReadAllLines(Path.Combine(killed, "grpo_metrics.csv")).Length);

        using var baseFile = GgufFile.Open(Bundled);
        var a = LoraAdapter.Load(Path.Combine(whole, "adapter.gguf"), baseFile);
        var b = LoraAdapter.Load(Path.Combine(killed, "adapter.gguf"), baseFile);
        Assert.Equal(DeepSeek2.Name, a.Architecture);
        Assert.Equal(8f, a.Alpha);
        Assert.Contains(a.Pairs, p => p.B.Any(x => x != 0)); // B has moved off 0
        Assert.Equal(a.Pairs.Select(p => p.BaseName), b.Pairs.Select(p => p.BaseName));
        for (int i = 0; i < a.Pairs.Count; i++)
        {
            Assert.Equal(a.Pairs[i].A, b.Pairs[i].A);
            Assert.Equal(a.Pairs[i].B, b.Pairs[i].B);
        }
        Assert.True(File.Exists(Path.Combine(whole, "merged.gguf"))); // the bundled model is Sputnik's own: merged export too
        Assert.False(File.Exists(Path.Combine(whole, "grpo.gguf")));
    }

    [Fact]
    public void Rank_larger_than_a_matrix_is_refused_before_anything_is_written()
    {
        string outDir = Path.Combine(_dir.FullName, "rank");
        var e = Assert.Throws<ArgumentException>(() => new GrpoTrainer(Options(outDir, 1) with { LoraRank = 4096 }).Run());
        Assert.Contains("--lora-rank 4096 is larger than", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.False(Directory.Exists(outDir));
    }

    [Fact]
    public void Another_base_in_the_same_run_directory_is_refused()
    {
        string outDir = Path.Combine(_dir.FullName, "mix");
        new GrpoTrainer(Options(outDir, 1, BundledDraft) with { Prompts = 2, Group = 2, MaxNew = 40 }).Run();
        string ckpt = Path.Combine(outDir, "grpo_checkpoint.bin");
        var before = File.ReadAllBytes(ckpt);
        var e = Assert.ThrowsAny<InvalidDataException>(() => new GrpoTrainer(Options(outDir, 2)).Run());
        Assert.Contains("arch=llama", e.Message);
        Assert.Contains("arch=deepseek2", e.Message);
        Assert.DoesNotContain('\n', e.Message);
        Assert.Equal(before, File.ReadAllBytes(ckpt));
    }

    [Fact]
    public void A_base_without_the_R1_format_is_refused()
    {
        string outDir = Path.Combine(_dir.FullName, "qwen");
        var e = Assert.Throws<GgufFormatException>(() => new GrpoTrainer(Options(outDir, 1, LoraTests.TinyBase(_dir.FullName, Qwen2.Name))).Run());
        Assert.Contains("R1 format", e.Message);
        Assert.False(Directory.Exists(outDir));
    }
}
