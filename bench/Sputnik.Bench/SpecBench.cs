using System.Diagnostics;
using Sputnik;
using Sputnik.Inference;
using Sputnik.Training.Tasks;

/// <summary>
/// Speculative decoding on the bundled model's test prompts: greedy decode with no speculation, with n-gram proposals,
/// with a draft model and with the model's own MTP head (k = 1…4, when the file has one), in the same process,
/// configurations alternating over the repetitions (best of them counts, so a load swing hits every configuration
/// alike). Each configuration's tokens must equal plain greedy's.
/// Prints acceptance (accepted ÷ drafted), tokens per verification and decode tokens/s against plain.
/// </summary>
internal static class SpecBench
{
    public static void Run(string[] args)
    {
        if (args.Length < 1) throw new ArgumentException("usage: spec <target.gguf> [draft.gguf|-] [prompts] [threads] [reps] [draft threads] [task]");
        string target = args[0];
        string? draftPath = args.Length > 1 && args[1] != "-" ? args[1] : null;
        int n = args.Length > 2 ? int.Parse(args[2]) : 20;
        int threads = args.Length > 3 ? int.Parse(args[3]) : 2;
        int reps = args.Length > 4 ? int.Parse(args[4]) : 2;
        int draftThreads = args.Length > 5 ? int.Parse(args[5]) : threads;
        string taskName = args.Length > 6 ? args[6] : "arithmetic";

        using var m = SputnikModel.Load(target, new ModelOptions { Threads = threads });
        using var draft = draftPath != null ? SputnikModel.Load(draftPath, new ModelOptions { Threads = draftThreads, ContextLength = m.ContextLength }) : null;
        var task = ReasoningTask.Create(taskName);
        var prompts = task.EvalSet(n).Select(p => R1Format.EncodePrompt(p.Prompt)).ToList();

        var configs = new List<(string Name, SpeculationOptions? Options)>
        {
            ("plain", null),
            ("ngram-simple n3", new() { Type = SpeculationType.NgramSimple, NgramSize = 3, DraftMax = 16 }),
            ("ngram-simple n4", new() { Type = SpeculationType.NgramSimple, NgramSize = 4, DraftMax = 16 }),
            ("ngram-simple n4 k4", new() { Type = SpeculationType.NgramSimple, NgramSize = 4, DraftMax = 4 }),
            ("ngram-mod n3", new() { Type = SpeculationType.NgramMod, NgramSize = 3, DraftMax = 16 }),
            ("ngram-mod n4", new() { Type = SpeculationType.NgramMod, NgramSize = 4, DraftMax = 16 }),
            ("ngram-mod n4 k4", new() { Type = SpeculationType.NgramMod, NgramSize = 4, DraftMax = 4 }),
        };
        if (m.Model is Sputnik.Models.IMtpModel { HasMtpHead: true })
            foreach (int k in new[] { 1, 2, 3, 4 })
                configs.Add(($"mtp k{k}", new() { Type = SpeculationType.Mtp, DraftMax = k }));
        if (draft != null)
            foreach (int k in new[] { 4, 8, 16 })
                foreach (float pMin in new[] { 0f, 0.5f })
                    configs.Add(($"draft k{k} p{pMin}", new() { DraftModel = draft, DraftMax = k, DraftPMin = pMin }));

        Console.WriteLine($"{target}{(draftPath != null ? $" + draft {draftPath} ({draftThreads} threads)" : "")}: {prompts.Count} {taskName} test prompts, greedy, {threads} threads, best of {reps}; load {Load()}");
        var reference = new List<int>[prompts.Count];
        var best = new double[configs.Count];
        var counts = new (long Generated, long Drafted, long Accepted)[configs.Count];
        for (int rep = 0; rep < reps; rep++)
            for (int c = 0; c < configs.Count; c++)
            {
                var gen = new Generator(m.Model, m.Tokenizer);
                double ms = 0;
                long generated = 0, drafted = 0, accepted = 0;
                for (int i = 0; i < prompts.Count; i++)
                {
                    var stats = new GenerationStats();
                    var o = new GenerationOptions { MaxTokens = 640, Sampling = SamplingOptions.Greedy, Speculation = configs[c].Options };
                    var ids = gen.Generate(m.CreateState(), prompts[i], o, stats).Select(t => t.Id).ToList();
                    if (reference[i] == null) reference[i] = ids;
                    else if (!reference[i].SequenceEqual(ids)) throw new InvalidOperationException($"{configs[c].Name}: prompt {i} decoded differently from plain greedy");
                    ms += stats.GenerationMs;
                    generated += stats.GeneratedTokens;
                    drafted += stats.DraftedTokens;
                    accepted += stats.AcceptedTokens;
                }
                best[c] = Math.Max(best[c], generated * 1000.0 / ms);
                counts[c] = (generated, drafted, accepted);
            }
        Console.WriteLine("| configuration | acceptance | drafted | accepted | generated | decode tok/s | vs plain |");
        Console.WriteLine("|---|---:|---:|---:|---:|---:|---:|");
        for (int c = 0; c < configs.Count; c++)
        {
            var (g, d, a) = counts[c];
            Console.WriteLine($"| {configs[c].Name} | {(d > 0 ? (double)a / d : 0):P1} | {d} | {a} | {g} | {best[c]:F0} | {best[c] / best[0]:F2}x |");
        }
        Console.WriteLine($"identical tokens to plain greedy: yes (checked per prompt); load {Load()}");
    }

    private static string Load() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "?";
}

/// <summary>
/// The cost of verifying k proposed tokens at once: time of one forward over k tokens with logits for every row
/// (<see cref="Sputnik.Models.LanguageModel.ForwardAll"/>, what speculative verification runs) ÷ time of a one-token
/// forward, at a given context depth, k = 1…16. Each k is cut back after its run, so every run starts at the same
/// depth; k values alternate over the repetitions and the best time of each counts. Then plain decoding's step (a
/// one-token Forward) at the same depth, and, when the file has an MTP head, one draft step of that head.
/// </summary>
internal static class VerifyBench
{
    public static void Run(string[] args)
    {
        if (args.Length < 1) throw new ArgumentException("usage: verify <model.gguf> [threads] [depth] [reps] [kmax]");
        string path = args[0];
        int threads = args.Length > 1 ? int.Parse(args[1]) : 2;
        int depth = args.Length > 2 ? int.Parse(args[2]) : 256;
        int reps = args.Length > 3 ? int.Parse(args[3]) : 5;
        int kmax = args.Length > 4 ? int.Parse(args[4]) : 16;

        using var m = SputnikModel.Load(path, new ModelOptions { Threads = threads, ContextLength = depth + kmax + 1 });
        int vocab = m.Model.Config.VocabSize;
        var rng = new Random(3);
        int[] tokens = Enumerable.Range(0, depth + kmax).Select(_ => rng.Next(vocab)).ToArray();
        var state = m.CreateState();
        m.Model.Forward(state, tokens.AsSpan(0, depth));
        var rows = new float[kmax * vocab];
        var best = Enumerable.Repeat(double.MaxValue, kmax + 1).ToArray();
        Console.WriteLine($"{path}: {threads} threads, depth {depth}, best of {reps}; load {File.ReadAllText("/proc/loadavg").Trim()}");
        for (int rep = -1; rep < reps; rep++) // rep −1 warms up (page-in, JIT tiers)
            for (int k = 1; k <= kmax; k++)
            {
                var sw = Stopwatch.StartNew();
                m.Model.ForwardAll(state, tokens.AsSpan(depth, k), rows.AsSpan(0, k * vocab));
                double ms = sw.Elapsed.TotalMilliseconds;
                state.Truncate(depth);
                if (rep >= 0) best[k] = Math.Min(best[k], ms);
            }
        Console.WriteLine("| k | ms | ÷ 1-token forward | ms per token |");
        Console.WriteLine("|---:|---:|---:|---:|");
        for (int k = 1; k <= kmax; k++)
            Console.WriteLine($"| {k} | {best[k]:F3} | {best[k] / best[1]:F2} | {best[k] / k:F3} |");
        // Plain decoding's step: Forward over one token (the last row's logits only), at the same depth.
        double bestDecode = double.MaxValue;
        for (int rep = -1; rep < reps; rep++)
        {
            var sw = Stopwatch.StartNew();
            m.Model.Forward(state, tokens.AsSpan(depth, 1));
            double ms = sw.Elapsed.TotalMilliseconds;
            state.Truncate(depth);
            if (rep >= 0) bestDecode = Math.Min(bestDecode, ms);
        }
        Console.WriteLine($"plain decode step (Forward, 1 token): {bestDecode:F3} ms; k-token verification ÷ it: "
            + string.Join(", ", Enumerable.Range(1, kmax).Select(k => $"k{k} {best[k] / bestDecode:F2}")));
        if (m.Model is Sputnik.Models.IMtpModel { HasMtpHead: true } mtp)
        {
            // One draft step of --spec-type mtp: the head's block and the shared output head at the same depth, fed
            // the trunk's hidden states of the context first (as MtpDraftSource does), cut back after each timed run.
            var head = mtp.CreateMtpState(depth + 1);
            for (int i = 0; i < depth - 1; i++) mtp.MtpForward(head, mtp.TrunkHidden(state, i), tokens[i + 1], computeLogits: false);
            double bestHead = double.MaxValue;
            for (int rep = -1; rep < reps; rep++)
            {
                var sw = Stopwatch.StartNew();
                mtp.MtpForward(head, mtp.TrunkHidden(state, depth - 1), tokens[depth], computeLogits: true);
                double ms = sw.Elapsed.TotalMilliseconds;
                head.Truncate(depth - 1);
                if (rep >= 0) bestHead = Math.Min(bestHead, ms);
            }
            Console.WriteLine($"MTP head, one draft token: {bestHead:F3} ms = {bestHead / best[1]:F2} × a 1-token forward");
        }
        Console.WriteLine($"load after: {File.ReadAllText("/proc/loadavg").Trim()}");
    }
}

/// <summary>
/// Where speculation stops paying in the server: B slots decoding the bundled model's test prompts together
/// through <see cref="Sputnik.Server.Scheduling.BatchedStepExecutor"/>, once with every slot speculating (its own
/// verification forward) and once batched without proposals; aggregate tokens/s of each, best of the repetitions.
/// </summary>
internal static class SpecBatchBench
{
    public static void Run(string[] args)
    {
        if (args.Length < 1) throw new ArgumentException("usage: spec-batch <target.gguf> [draft.gguf|-] [threads] [reps] [B...]");
        string target = args[0];
        string? draftPath = args.Length > 1 && args[1] != "-" ? args[1] : null;
        int threads = args.Length > 2 ? int.Parse(args[2]) : 2;
        int reps = args.Length > 3 ? int.Parse(args[3]) : 2;
        int[] sizes = args.Length > 4 ? args[4..].Select(int.Parse).ToArray() : [1, 2, 3, 4, 8];

        using var m = SputnikModel.Load(target, new ModelOptions { Threads = threads });
        using var draft = draftPath != null ? SputnikModel.Load(draftPath, new ModelOptions { Threads = threads, ContextLength = m.ContextLength }) : null;
        var spec = draft != null ? new SpeculationOptions { DraftModel = draft, DraftMax = 6 } : new SpeculationOptions { Type = SpeculationType.NgramMod, NgramSize = 3, DraftMax = 16 };
        var prompts = ReasoningTask.Create("arithmetic").EvalSet(sizes.Max()).Select(p => R1Format.EncodePrompt(p.Prompt)).ToList();
        Console.WriteLine($"{target}: {(draft != null ? "draft " + draftPath : "ngram-mod n3")}, {threads} threads, best of {reps}; load {File.ReadAllText("/proc/loadavg").Trim()}");
        Console.WriteLine("| active slots | batched tok/s | speculating tok/s | speculating ÷ batched | acceptance |");
        Console.WriteLine("|---:|---:|---:|---:|---:|");
        foreach (int b in sizes)
        {
            double bestPlain = 0, bestSpec = 0, acceptance = 0;
            for (int rep = 0; rep < reps; rep++)
            {
                bestPlain = Math.Max(bestPlain, Time(m, prompts, b, spec, speculate: false, out _));
                bestSpec = Math.Max(bestSpec, Time(m, prompts, b, spec, speculate: true, out acceptance));
            }
            Console.WriteLine($"| {b} | {bestPlain:F0} | {bestSpec:F0} | {bestSpec / bestPlain:F2} | {acceptance:P1} |");
        }
    }

    private static double Time(SputnikModel m, List<int[]> prompts, int b, SpeculationOptions spec, bool speculate, out double acceptance)
    {
        var gen = new Generator(m.Model, m.Tokenizer);
        var executor = new Sputnik.Server.Scheduling.BatchedStepExecutor(m.Model, speculate ? b : 0);
        var active = new List<Sputnik.Server.Scheduling.ActiveSequence>();
        for (int i = 0; i < b; i++)
        {
            var slot = new Sputnik.Server.Scheduling.Slot(i, m.CreateState());
            slot.Draft = Speculator.CreateSource(spec, m.Model, m.Tokenizer);
            var o = new GenerationOptions { MaxTokens = 640, Sampling = SamplingOptions.Greedy, Speculation = spec, DraftSource = slot.Draft };
            var job = new Sputnik.Server.Scheduling.InferenceJob(prompts[i], o, CancellationToken.None);
            var handoff = new DecodeHandoff();
            active.Add(new(job, slot, gen.Generate(slot.State, job.Prompt, o, job.Stats, slot.History, default, handoff).GetEnumerator(), handoff, speculates: true));
        }
        // Prefill every prompt first (the first step of each), so the timing is decode alone.
        foreach (var a in active) a.Steps.MoveNext();
        var all = active.ToList();
        var sw = Stopwatch.StartNew();
        while (active.Count > 0)
        {
            var done = new List<Sputnik.Server.Scheduling.ActiveSequence>();
            executor.Step(active, a => { if (!a.Steps.MoveNext()) done.Add(a); });
            foreach (var a in done) a.Steps.Dispose();
            active.RemoveAll(done.Contains);
        }
        double seconds = sw.Elapsed.TotalSeconds;
        long generated = all.Sum(a => (long)a.Job.Stats.GeneratedTokens - 1); // the first token came with the prefill
        long drafted = all.Sum(a => (long)a.Job.Stats.DraftedTokens), accepted = all.Sum(a => (long)a.Job.Stats.AcceptedTokens);
        acceptance = drafted > 0 ? (double)accepted / drafted : 0;
        return generated / seconds;
    }
}
