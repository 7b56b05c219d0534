using Sputnik.Training.Tasks;

namespace Sputnik.Training;

/// <summary>Evaluation result (test or dev split); field names match `sputnik eval --json`.</summary>
internal sealed record EvalResult(string Task, int N, double PassAt1, double PassAtK, int K, double MeanThinkTokens, IReadOnlyDictionary<string, double> PassAt1ByTask,
    IReadOnlyList<EvalFailure> Failures)
{
    /// <summary>Turns per conversation; the last one is graded (1 = single questions).</summary>
    public int Turns { get; init; } = 1;
    /// <summary>False when the graded question was asked with thinking off.</summary>
    public bool Thinking { get; init; } = true;
    /// <summary>Mean generated tokens per sample, thinking and answer together.</summary>
    public double MeanCompletionTokens { get; init; }
}

/// <summary>One sample that did not earn the full reward: the problem (with its reference trace), what the model wrote, and the grade.</summary>
internal sealed record EvalFailure(Problem Problem, string Completion, Grade Grade)
{
    /// <summary>The conversation the problem was asked in (earlier turns and thinking mode).</summary>
    public Conversation? Conversation { get; init; }
}

internal static class Evaluation
{
    /// <summary>
    /// pass@1 = mean fraction of correct samples; pass@k = fraction of problems with at least one correct sample
    /// among k. With k = 1 the single sample is greedy (temperature 0); with k &gt; 1 all k are sampled at temperature.
    /// <paramref name="turns"/> &gt; 1 grades the last question of conversations whose earlier turns
    /// (<see cref="Conversations"/>) were answered correctly; <paramref name="thinking"/> false asks it with thinking off.
    /// </summary>
    public static EvalResult Run(RolloutEngine engine, ReasoningTask task, int n, int k, float temperature = 0.7f, int maxNew = 400, int seed = 1,
        EvalSplit split = EvalSplit.Test, int turns = 1, bool thinking = true)
    {
        var problems = task.EvalSet(n, split: split);
        var conversations = Conversations(task, problems, turns, thinking, split, engine.ContextLength);
        var prompts = new List<int[]>();
        foreach (var c in conversations)
        {
            var prompt = c.EncodePrompt();
            for (int s = 0; s < k; s++) prompts.Add(prompt);
        }
        var outs = engine.Generate(prompts, k == 1 ? 0f : temperature, maxNew, seed);
        double sum1 = 0, thinkSum = 0, lengthSum = 0;
        int anyCorrect = 0;
        var byTask = new Dictionary<string, (double Sum, int Count)>();
        var failures = new List<EvalFailure>();
        for (int i = 0; i < problems.Count; i++)
        {
            int correct = 0;
            for (int s = 0; s < k; s++)
            {
                var r = outs[i * k + s];
                thinkSum += thinking ? r.ThinkTokens : 0;   // with thinking off the working is answer text, not thinking
                lengthSum += r.Completion.Length;
                var grade = conversations[i].Verify(task, r.Text);
                if (grade == Grade.Correct) correct++;
                else failures.Add(new EvalFailure(problems[i], r.Text, grade) { Conversation = conversations[i] });
            }
            double frac = (double)correct / k;
            sum1 += frac;
            if (correct > 0) anyCorrect++;
            var t = byTask.GetValueOrDefault(problems[i].Task);
            byTask[problems[i].Task] = (t.Sum + frac, t.Count + 1);
        }
        int count = Math.Max(1, problems.Count);
        return new EvalResult(task.Name, problems.Count, sum1 / count, (double)anyCorrect / count, k, thinkSum / Math.Max(1, outs.Length),
            byTask.ToDictionary(kv => kv.Key, kv => kv.Value.Sum / kv.Value.Count), failures)
        {
            Turns = turns, Thinking = thinking, MeanCompletionTokens = lengthSum / Math.Max(1, outs.Length),
        };
    }

    /// <summary>
    /// The evaluation conversations: each problem of the evaluation set becomes the last question, after
    /// <paramref name="turns"/> − 1 earlier questions drawn from the same split (seeded by the problem's index, so the
    /// set is fixed) with the answers a thinking chat keeps for them ("The answer is N."). Earlier questions are drawn
    /// again while the conversation and its reference answer do not fit <paramref name="context"/> tokens (or, for a
    /// question that alone does not fit, while they add anything).
    /// </summary>
    public static IReadOnlyList<Conversation> Conversations(ReasoningTask task, IReadOnlyList<Problem> problems, int turns, bool thinking, EvalSplit split, int context)
    {
        if (turns < 1) throw new ArgumentException($"--turns must be at least 1 (got {turns})");
        var list = new List<Conversation>(problems.Count);
        for (int i = 0; i < problems.Count; i++)
        {
            var rng = new Random(Seeds.Mix(EarlierTurnsSeed, i));
            // a question too long for the context on its own is graded as before (cut off); only earlier turns are redrawn
            int room = Math.Max(context, ConversationMix.Length(new Conversation([], problems[i], thinking)));
            for (int tries = 0; ; tries++)
            {
                var earlier = new ChatTurn[turns - 1];
                for (int j = 0; j < earlier.Length; j++)
                {
                    var q = task.Sample(rng, split);
                    earlier[j] = new ChatTurn(q.Prompt, R1Format.HistoryContent(q, thinking: true));
                }
                var c = new Conversation(earlier, problems[i], thinking);
                if (ConversationMix.Length(c) <= room) { list.Add(c); break; }
                if (tries == 100)
                    throw new ArgumentException($"{turns}-turn conversations ending in \"{problems[i].Prompt}\" do not fit the model's {context}-token context; use fewer --turns");
            }
        }
        return list;
    }

    private const int EarlierTurnsSeed = 424242;
}
