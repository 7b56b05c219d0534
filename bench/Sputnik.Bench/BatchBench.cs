using System.Diagnostics;
using Sputnik.Gguf;
using Sputnik.Models;

/// <summary>
/// Aggregate decode throughput of B sequences stepped together (one <see cref="LanguageModel.ForwardBatch"/> per
/// step) against the same B sequences stepped one after another (B single-token forwards). Both run in the same
/// process, alternating, best of several repetitions, so a ratio survives a loaded machine better than either number.
/// </summary>
internal static class BatchBench
{
    public static void Run(string[] args)
    {
        string path = args.Length > 0 ? args[0] : throw new ArgumentException("usage: batch <model.gguf> [threads] [steps] [B...] [only]");
        int threads = args.Length > 1 ? int.Parse(args[1]) : 2;
        int steps = args.Length > 2 ? int.Parse(args[2]) : 16;
        // "only" after the sizes skips the sequential runs (for profiling the batched step alone)
        bool batchedOnly = args.Length > 3 && args[^1] == "only";
        string[] rest = args.Length > 3 ? args[3..(batchedOnly ? ^1 : ^0)] : [];
        int[] sizes = rest.Length > 0 ? rest.Select(int.Parse).ToArray() : [1, 4, 8];
        const int Prompt = 32, Reps = 3;

        using var model = ModelLoader.Load(GgufFile.Open(path), threads);
        Console.WriteLine($"{path}: {threads} threads, {steps} decode steps after a {Prompt}-token prompt per sequence, kv F16, best of {Reps}");
        Console.WriteLine($"load average before: {LoadAverage()}");
        var rng = new Random(1);
        foreach (int b in sizes)
        {
            double bestBatched = double.MaxValue, bestSeq = double.MaxValue;
            // warm-up (page-in, JIT tiering), then alternate the two so load swings hit both alike
            Time(model, b, steps, Prompt, rng, batched: true);
            if (!batchedOnly) Time(model, b, steps, Prompt, rng, batched: false);
            for (int rep = 0; rep < Reps; rep++)
            {
                bestBatched = Math.Min(bestBatched, Time(model, b, steps, Prompt, rng, batched: true));
                if (!batchedOnly) bestSeq = Math.Min(bestSeq, Time(model, b, steps, Prompt, rng, batched: false));
            }
            double tb = b * steps / bestBatched, ts = b * steps / bestSeq;
            if (batchedOnly) Console.WriteLine($"B={b}: batched {tb:F1} tok/s aggregate ({tb / b:F1} per sequence)");
            else Console.WriteLine($"B={b}: batched {tb:F1} tok/s aggregate ({tb / b:F1} per sequence), sequential {ts:F1} tok/s; batched/sequential {tb / ts:F2}x");
        }
        Console.WriteLine($"load average after: {LoadAverage()}");
    }

    private static double Time(LanguageModel model, int b, int steps, int prompt, Random rng, bool batched)
    {
        var states = new InferenceState[b];
        for (int i = 0; i < b; i++)
        {
            states[i] = model.CreateState(prompt + steps + 1, KvCacheType.F16);
            model.Forward(states[i], Enumerable.Range(0, prompt).Select(_ => rng.Next(model.Config.VocabSize)).ToArray());
        }
        var tokens = new int[b];
        long t0 = Stopwatch.GetTimestamp();
        for (int step = 0; step < steps; step++)
        {
            for (int i = 0; i < b; i++) tokens[i] = (step * 31 + i * 7) % model.Config.VocabSize;
            if (batched) model.ForwardBatch(states, tokens);
            else for (int i = 0; i < b; i++) model.Forward(states[i], tokens.AsSpan(i, 1));
        }
        return Stopwatch.GetElapsedTime(t0).TotalSeconds;
    }

    private static string LoadAverage() =>
        File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";
}
