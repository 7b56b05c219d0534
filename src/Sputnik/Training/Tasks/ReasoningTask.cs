using System.Text.RegularExpressions;

namespace Sputnik.Training.Tasks;

/// <summary>One generated problem. Key is the canonical form ("347*28") used for the held-out split; Prompt is one
/// of several phrasings; Trace is the step-by-step thinking for SFT; Answer is the final text after &lt;/think&gt;.</summary>
internal sealed record Problem(string Task, string Key, string Prompt, string Trace, string Answer, string Expected);

/// <summary>Problem splits by hash: training, and the held-out class divided into dev and test. HeldOut = dev ∪ test
/// (what evaluation used before the dev split).</summary>
internal enum EvalSplit { Train, Dev, Test, HeldOut }

/// <summary>How a completion scored: correct, well-formed but wrong, or malformed (no closed think block or no answer).</summary>
internal enum Grade { Malformed, WrongAnswer, Correct }

/// <summary>A task with exact answers: a generator, a trace writer and a verifier.</summary>
internal abstract partial class ReasoningTask
{
    public abstract string Name { get; }

    /// <summary>Draws a problem (any split); callers use <see cref="Sample(Random, bool)"/> to respect the split.</summary>
    protected abstract Problem Draw(Random rng);

    /// <summary>Checks the final answer text (already cut after &lt;/think&gt;).</summary>
    protected abstract bool IsCorrect(Problem p, string answer);

    /// <summary>
    /// Held-out split by hash of the canonical key: 1 in <see cref="HeldOutModulus"/> problems is evaluation-only,
    /// so a training run never sees any phrasing of an evaluation problem. The held-out class is itself split in two
    /// by a high bit of the same hash (<see cref="DevBit"/>): the development split (<see cref="EvalSplit.Dev"/>, for
    /// choosing settings and for in-run checks) and the test split (<see cref="EvalSplit.Test"/>, reported numbers).
    /// Training draws from neither, exactly as before the dev split existed.
    /// </summary>
    public const int HeldOutModulus = 10;

    /// <summary>Bit of the FNV-1a hash that separates dev (1) from test (0) inside the held-out class. A high bit:
    /// FNV's low bits depend only on the low bits of the characters (bit 0 is a parity of them).</summary>
    public const int DevBit = 20;

    private static uint Hash(string key)
    {
        uint h = 2166136261;
        foreach (char ch in key) { h ^= ch; h *= 16777619; }
        return h;
    }

    /// <summary>True for evaluation-only problems (dev or test); training never draws them.</summary>
    public static bool IsHeldOut(string key) => Hash(key) % HeldOutModulus == 0;

    /// <summary>Which split a canonical key falls in.</summary>
    public static EvalSplit SplitOf(string key)
    {
        uint h = Hash(key);
        if (h % HeldOutModulus != 0) return EvalSplit.Train;
        return ((h >> DevBit) & 1) != 0 ? EvalSplit.Dev : EvalSplit.Test;
    }

    /// <summary>Draws until the problem falls in the wanted split (heldOut: false = training, true = dev or test).</summary>
    public Problem Sample(Random rng, bool heldOut) => Sample(rng, heldOut ? EvalSplit.HeldOut : EvalSplit.Train);

    /// <summary>Draws until the problem falls in the wanted split.</summary>
    public Problem Sample(Random rng, EvalSplit split)
    {
        for (int i = 0; ; i++)
        {
            var p = Draw(rng);
            var s = SplitOf(p.Key);
            if (s == split || (split == EvalSplit.HeldOut && s != EvalSplit.Train)) return p;
            if (i > 100000) throw new InvalidOperationException($"{Name}: cannot draw a {split} problem");
        }
    }

    /// <summary>
    /// The first n distinct problems of a split for a seed: a fixed evaluation set. All splits walk the same random
    /// stream, so the test set is the test half of the pre-split held-out sequence, in order (<see cref="EvalSplit.HeldOut"/>
    /// gives that whole sequence, as EvalSet did before dev existed).
    /// </summary>
    public IReadOnlyList<Problem> EvalSet(int n, int seed = 12345, EvalSplit split = EvalSplit.Test)
    {
        if (split == EvalSplit.Train) throw new ArgumentException("the training split is not an evaluation set");
        var rng = new Random(seed);
        var seen = new HashSet<string>();
        var list = new List<Problem>();
        for (int tries = 0; list.Count < n && tries < n * 1000; tries++)
        {
            var p = Sample(rng, split);
            if (seen.Add(p.Key)) list.Add(p);
        }
        return list;
    }

    /// <summary>Parses a split name: test, dev, held-out (dev + test, the pre-split evaluation set).</summary>
    public static EvalSplit ParseSplit(string name) => name switch
    {
        "test" => EvalSplit.Test,
        "dev" => EvalSplit.Dev,
        "held-out" => EvalSplit.HeldOut,
        _ => throw new ArgumentException($"unknown split '{name}' (test, dev, held-out)"),
    };

    /// <summary>R1-style grading: the answer is whatever follows the last &lt;/think&gt;.</summary>
    public Grade Verify(Problem p, string completion) => Verify(p, completion, thinking: true);

    /// <summary>
    /// Grades a completion of <paramref name="p"/>. With thinking on, the answer is whatever follows the last
    /// &lt;/think&gt; and a completion without one is malformed. With thinking off the prompt already closed the think
    /// block, so the completion is the answer: its open working, a blank line, and the final paragraph, which is graded
    /// (the whole reply when it has no blank line); a completion that opens or closes a think block of its own is malformed.
    /// </summary>
    public Grade Verify(Problem p, string completion, bool thinking)
    {
        string answer;
        if (thinking)
        {
            int close = completion.LastIndexOf("</think>", StringComparison.Ordinal);
            if (close < 0) return Grade.Malformed;
            answer = completion[(close + "</think>".Length)..].Trim();
        }
        else
        {
            if (completion.Contains("<think>", StringComparison.Ordinal) || completion.Contains("</think>", StringComparison.Ordinal)) return Grade.Malformed;
            // the open working comes first; the answer is the last paragraph (the whole reply when it has only one)
            string reply = completion.Trim();
            int blank = reply.LastIndexOf("\n\n", StringComparison.Ordinal);
            answer = blank < 0 ? reply : reply[(blank + 2)..].Trim();
        }
        if (answer.Length == 0 || !DigitRegex().IsMatch(answer)) return Grade.Malformed;
        return IsCorrect(p, answer) ? Grade.Correct : Grade.WrongAnswer;
    }

    /// <summary>Reward from the verifier: 1 correct, 0.1 well-formed but wrong, 0 malformed (TinyZero's scheme).</summary>
    public static float Reward(Grade g) => g switch { Grade.Correct => 1f, Grade.WrongAnswer => 0.1f, _ => 0f };

    /// <summary>The last integer in the text (boxed or not), or null.</summary>
    public static long? LastInteger(string text)
    {
        var ms = IntRegex().Matches(text);
        if (ms.Count == 0) return null;
        return long.TryParse(ms[^1].Value, out long v) ? v : null;
    }

    [GeneratedRegex(@"-?\d+")]
    private static partial Regex IntRegex();

    [GeneratedRegex(@"\d")]
    private static partial Regex DigitRegex();

    /// <summary>Creates a task by CLI name; "a,b" is a uniform mixture of the named tasks (e.g. division with replay of the original ones).</summary>
    public static ReasoningTask Create(string name) => name.Contains(',') ? new MixTask(name, name.Split(',').Select(Create).ToArray()) : name switch
    {
        "arithmetic" => new MixTask("arithmetic", [new ArithmeticTask('+'), new ArithmeticTask('-'), new ArithmeticTask('*')]),
        "addition" => new ArithmeticTask('+'),
        "subtraction" => new ArithmeticTask('-'),
        "multiplication" => new ArithmeticTask('*'),
        "countdown" => new CountdownTask(),
        "all" => new MixTask("all", [new ArithmeticTask('+'), new ArithmeticTask('-'), new ArithmeticTask('*'), new CountdownTask()]),
        "easy" => new ArithmeticTask('+', maxDigitsA: 2, maxDigitsB: 2, name: "easy"),
        "division" => new DivisionTask(),
        _ => throw new ArgumentException($"unknown task '{name}' (arithmetic, addition, subtraction, multiplication, countdown, all, easy, division; or a comma-separated mixture)"),
    };
}

/// <summary>A uniform mixture of tasks; problems keep their own task's verifier.</summary>
internal sealed class MixTask(string name, ReasoningTask[] parts) : ReasoningTask
{
    // leaf tasks by name, through nested mixtures ("division,all"), so every problem finds its own verifier
    private readonly Dictionary<string, ReasoningTask> _byName = Leaves(parts);

    private static Dictionary<string, ReasoningTask> Leaves(ReasoningTask[] parts)
    {
        var d = new Dictionary<string, ReasoningTask>();
        foreach (var p in parts)
            if (p is MixTask m) foreach (var kv in m._byName) d.TryAdd(kv.Key, kv.Value);
            else d.TryAdd(p.Name, p);
        return d;
    }
    public override string Name => name;
    protected override Problem Draw(Random rng) => parts[rng.Next(parts.Length)].DrawPublic(rng);
    protected override bool IsCorrect(Problem p, string answer) => _byName[p.Task].IsCorrectPublic(p, answer);
}

internal abstract partial class ReasoningTask
{
    internal Problem DrawPublic(Random rng) => Draw(rng);
    internal bool IsCorrectPublic(Problem p, string answer) => IsCorrect(p, answer);
}
