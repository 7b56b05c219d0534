using Sputnik.Training.Tasks;

namespace Sputnik.Training;

/// <summary>Evaluation result (test or dev split); field names match `sputnik eval --json`.</summary>
internal sealed record EvalResult(string Task, int N, double PassAt1, double PassAtK, int K, double MeanThinkTokens, IReadOnlyDictionary<string, double> PassAt1ByTask,
    IReadOnlyList<EvalFailure> Failures);

/// <summary>One sample that did not earn the full reward: the problem (with its reference trace), what the model wrote, and the grade.</summary>
internal sealed record EvalFailure(Problem Problem, string Completion, Grade Grade);

internal static class Evaluation
{
    /// <summary>
    /// pass@1 = mean fraction of correct samples; pass@k = fraction of problems with at least one correct sample
    /// among k. With k = 1 the single sample is greedy (temperature 0); with k &gt; 1 all k are sampled at temperature.
    /// </summary>
    public static EvalResult Run(RolloutEngine engine, ReasoningTask task, int n, int k, float temperature = 0.7f, int maxNew = 400, int seed = 1, EvalSplit split = EvalSplit.Test)
    {
        var problems = task.EvalSet(n, split: split);
        var prompts = new List<int[]>();
        foreach (var p in problems)
            for (int s = 0; s < k; s++) prompts.Add(R1Format.EncodePrompt(p.Prompt));
        var outs = engine.Generate(prompts, k == 1 ? 0f : temperature, maxNew, seed);
        double sum1 = 0, thinkSum = 0;
        int anyCorrect = 0;
        var byTask = new Dictionary<string, (double Sum, int Count)>();
        var failures = new List<EvalFailure>();
        for (int i = 0; i < problems.Count; i++)
        {
            int correct = 0;
            for (int s = 0; s < k; s++)
            {
                var r = outs[i * k + s];
                thinkSum += r.ThinkTokens;
                var grade = task.Verify(problems[i], r.Text);
                if (grade == Grade.Correct) correct++;
                else failures.Add(new EvalFailure(problems[i], r.Text, grade));
            }
            double frac = (double)correct / k;
            sum1 += frac;
            if (correct > 0) anyCorrect++;
            var t = byTask.GetValueOrDefault(problems[i].Task);
            byTask[problems[i].Task] = (t.Sum + frac, t.Count + 1);
        }
        int count = Math.Max(1, problems.Count);
        return new EvalResult(task.Name, problems.Count, sum1 / count, (double)anyCorrect / count, k, thinkSum / Math.Max(1, outs.Length),
            byTask.ToDictionary(kv => kv.Key, kv => kv.Value.Sum / kv.Value.Count), failures);
    }
}
