using System.Diagnostics;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Inference;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

/// <summary>What <see cref="Distillation.Generate"/> samples: problems of a split, k samples each, at a temperature.</summary>
internal sealed record DistillOptions
{
    public int Problems { get; init; } = 1000;
    public int Samples { get; init; } = 4;
    public float Temperature { get; init; } = 0.7f;
    public int MaxNew { get; init; } = 400;
    public int Seed { get; init; } = 1;
    /// <summary>Where the problems come from: the training split by default, so a student trained on the lines is still scored on unseen problems.</summary>
    public EvalSplit Split { get; init; } = EvalSplit.Train;
    /// <summary>Samples per call of the engine (whole problems): enough to keep every worker busy, few enough that progress moves.</summary>
    public int ChunkSamples { get; init; } = 128;
}

/// <summary>
/// What a generation run kept and why it rejected the rest. Unfinished samples (no end of sequence within the token
/// limit) are rejected whatever they contain; wrong and malformed count the finished ones the verifier turned down.
/// </summary>
internal sealed record DistillStats(int Problems, int Samples, int Accepted, int ProblemsWithAccepted, int Wrong, int Malformed, int Unfinished,
    int SameAsReference, double MeanAcceptedTokens, double Seconds)
{
    public double AcceptanceRate => Samples == 0 ? 0 : (double)Accepted / Samples;
}

/// <summary>
/// R1's distillation data: sample k answers per problem from a teacher, keep those the task's verifier accepts
/// (rejection sampling), and write each as an OpenAI fine-tuning line, <c>{"messages": [user, assistant]}</c>, with the
/// thinking inline in the assistant's content (<c>&lt;think&gt;\n…&lt;/think&gt;\n\nanswer</c>), which
/// <see cref="ChatDataset"/> reads back for <c>train sft --data</c>. The teacher's prompt is rendered with its own
/// chat template, so any model that thinks in &lt;think&gt; blocks can teach.
/// </summary>
internal static class Distillation
{
    private static readonly JsonSerializerOptions LineOptions = new() { Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>The first <paramref name="n"/> distinct problems (by canonical key) of a split for a seed.</summary>
    public static IReadOnlyList<Problem> Problems(ReasoningTask task, int n, EvalSplit split, int seed)
    {
        var rng = new Random(seed);
        var seen = new HashSet<string>();
        var list = new List<Problem>(n);
        for (long tries = 0; list.Count < n && tries < n * 1000L; tries++)
        {
            var p = task.Sample(rng, split);
            if (seen.Add(p.Key)) list.Add(p);
        }
        if (list.Count < n) throw new ArgumentException($"--n {n}: the {split.ToString().ToLowerInvariant()} split of task '{task.Name}' gave only {list.Count} distinct problems");
        return list;
    }

    /// <summary>The assistant content of the task's own reference trace for <paramref name="p"/>, in the same form as a teacher's line.</summary>
    public static string ReferenceContent(Problem p) => R1Format.ThinkOpen + "\n" + R1Format.CompletionText(p)[..^R1Format.Eos.Length];

    /// <summary>One OpenAI fine-tuning line: the user's question and the assistant's answer.</summary>
    public static string Line(string user, string assistant) => new JsonObject
    {
        ["messages"] = new JsonArray(
            new JsonObject { ["role"] = "user", ["content"] = user },
            new JsonObject { ["role"] = "assistant", ["content"] = assistant }),
    }.ToJsonString(LineOptions);

    /// <summary>
    /// Samples <see cref="DistillOptions.Samples"/> completions of each problem from <paramref name="engine"/>, writes
    /// the accepted ones to <paramref name="output"/> and, for each of them, the same question with the task's reference
    /// trace to <paramref name="referenceOutput"/> (same prompts, same count: the control a student is compared with).
    /// <paramref name="progress"/> gets (samples done, samples in all, accepted so far).
    /// </summary>
    public static DistillStats Generate(RolloutEngine engine, ReasoningTask task, DistillOptions o, TextWriter output, TextWriter? referenceOutput = null,
        Action<int, int, int>? progress = null, CancellationToken ct = default)
    {
        var sw = Stopwatch.StartNew();
        var problems = Problems(task, o.Problems, o.Split, o.Seed);
        var chat = new ChatPromptBuilder(engine.Tokenizer, engine.ChatTemplate);
        int eos = engine.Tokenizer.EosId, total = problems.Count * o.Samples;
        int accepted = 0, solved = 0, wrong = 0, malformed = 0, unfinished = 0, same = 0;
        long acceptedTokens = 0;
        // each chunk's seed comes from its index, so the lines do not depend on the thread count
        int perChunk = Math.Max(1, o.ChunkSamples / o.Samples);
        for (int start = 0, chunk = 0; start < problems.Count; start += perChunk, chunk++)
        {
            ct.ThrowIfCancellationRequested();
            var part = problems.Skip(start).Take(perChunk).ToArray();
            var prompts = new List<int[]>(part.Length * o.Samples);
            var opened = new string[part.Length];
            for (int i = 0; i < part.Length; i++)
            {
                var prompt = chat.Build([ChatMessage.User(part[i].Prompt)]);
                // a generation prompt that opens the think block (R1's "<think>\n") wrote the start of the assistant's turn
                opened[i] = prompt.StartsInThinking ? prompt.Text[prompt.Text.LastIndexOf(chat.Tags.Open, StringComparison.Ordinal)..] : "";
                for (int s = 0; s < o.Samples; s++) prompts.Add(prompt.Tokens);
            }
            var rollouts = engine.Generate(prompts, o.Temperature, o.MaxNew, Seeds.Mix(o.Seed, chunk));
            for (int i = 0; i < part.Length; i++)
            {
                int before = accepted;
                for (int s = 0; s < o.Samples; s++)
                {
                    var r = rollouts[i * o.Samples + s];
                    if (!r.Finished || r.Completion.Length == 0 || r.Completion[^1] != eos) { unfinished++; continue; }
                    string content = opened[i] + engine.Tokenizer.Decode(r.Completion.AsSpan(0, r.Completion.Length - 1), renderSpecial: true);
                    switch (task.Verify(part[i], content))
                    {
                        case Grade.Malformed: malformed++; continue;
                        case Grade.WrongAnswer: wrong++; continue;
                    }
                    accepted++;
                    acceptedTokens += r.Completion.Length;
                    string reference = ReferenceContent(part[i]);
                    if (content == reference) same++;
                    output.WriteLine(Line(part[i].Prompt, content));
                    referenceOutput?.WriteLine(Line(part[i].Prompt, reference));
                }
                if (accepted > before) solved++;
            }
            progress?.Invoke(Math.Min(total, (start + part.Length) * o.Samples), total, accepted);
        }
        return new DistillStats(problems.Count, total, accepted, solved, wrong, malformed, unfinished, same,
            accepted == 0 ? 0 : (double)acceptedTokens / accepted, sw.Elapsed.TotalSeconds);
    }

    /// <summary>
    /// Runs <paramref name="write"/> on writers of temporary files beside <paramref name="paths"/> and moves them all into
    /// place only when it returns: an error or a kill part way leaves no half-written output and any earlier file as
    /// it was. The temporary files are created first, so a path that cannot be written fails before any work.
    /// </summary>
    public static T WriteAtomically<T>(IReadOnlyList<string> paths, Func<IReadOnlyList<TextWriter>, T> write)
    {
        var tmps = paths.Select(p => Path.Combine(Path.GetDirectoryName(Path.GetFullPath(p))!, $".{Path.GetFileName(p)}.{Environment.ProcessId}.tmp")).ToArray();
        var writers = new List<StreamWriter>();
        try
        {
            for (int i = 0; i < tmps.Length; i++)
            {
                try
                {
                    writers.Add(new StreamWriter(tmps[i], append: false, new System.Text.UTF8Encoding(false)));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    throw new IOException($"cannot write {paths[i]}: {e.Message}", e);
                }
            }
            var result = write(writers);
            foreach (var w in writers) w.Dispose();
            for (int i = 0; i < tmps.Length; i++) File.Move(tmps[i], paths[i], overwrite: true);
            return result;
        }
        finally
        {
            foreach (var w in writers) w.Dispose();
            foreach (var t in tmps) if (File.Exists(t)) File.Delete(t);
        }
    }
}
