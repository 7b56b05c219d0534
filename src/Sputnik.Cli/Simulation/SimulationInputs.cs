namespace Sputnik.Cli.Simulation;

/// <summary>
/// What one replica's work costs, in seconds. The defaults are Sputnik's measurements of qwen2-1.5B Q4_K_M on this
/// repository's 2-core machine (bench/RESULTS.md, 2026-12-05 and the continuous-batching tables): one replica is one
/// such 2-core server. Every number can be overridden (`sputnik simulate --prefill-tps …`).
/// </summary>
internal sealed record CostModel
{
    /// <summary>Prefill at depth 0: pp512 ran at 186.8 t/s.</summary>
    public double PrefillSecondsPerToken { get; init; } = 1 / 186.8;

    /// <summary>The depth at which a prefill token costs twice as much as at depth 0: pp512 at depth 4,096 ran at 86.6 t/s.</summary>
    public double PrefillDoublingDepth { get; init; } = 4096 / (186.8 / 86.6 - 1);

    /// <summary>One sequence's decode step at depth 0: tg64 ran at 33.2 t/s.</summary>
    public double DecodeSecondsPerToken { get; init; } = 1 / 33.2;

    /// <summary>The depth at which a decode step costs twice as much: tg64 at depth 4,096 ran at 24.7 t/s.</summary>
    public double DecodeDoublingDepth { get; init; } = 4096 / (33.2 / 24.7 - 1);

    /// <summary>
    /// Each extra sequence in a batched decode step adds this fraction of one sequence's step: 8 sequences decoded
    /// 45.9 t/s together against 27.2 for one, so a step of 8 took 8 / 1.69 = 4.73 single steps, (4.73 − 1) / 7 more each.
    /// </summary>
    public double BatchMarginalCost { get; init; } = (8 / (45.9 / 27.2) - 1) / 7;

    /// <summary>Restoring a cached prefix copies its KV rows (28 KiB a token for qwen2-1.5B at F16): microseconds a token.</summary>
    public double RestoreSecondsPerToken { get; init; } = 5e-6;

    /// <summary>Sequences a replica generates at once (--parallel).</summary>
    public int Slots { get; init; } = 4;

    /// <summary>Prompt tokens a sequence prefills per scheduler step (--prefill-chunk).</summary>
    public int PrefillChunk { get; init; } = 256;

    /// <summary>Tokens of KV a replica keeps for reuse: 4 slots × 4,096 plus --cache-ram 512 MiB at 28 KiB a token.</summary>
    public int CacheTokens { get; init; } = 4 * 4096 + 512 * 1024 / 28;

    /// <summary>Seconds to prefill <paramref name="n"/> tokens after <paramref name="depth"/> cached ones (the cost grows linearly with depth).</summary>
    public double Prefill(int depth, int n) => n * PrefillSecondsPerToken * (1 + (depth + n / 2.0) / PrefillDoublingDepth);

    /// <summary>Seconds of one decode step for <paramref name="sequences"/> sequences at a mean depth.</summary>
    public double DecodeStep(int sequences, double meanDepth) =>
        DecodeSecondsPerToken * (1 + meanDepth / DecodeDoublingDepth) * (1 + BatchMarginalCost * (sequences - 1));
}

/// <summary>
/// A multi-turn chat workload: conversations start at random (Poisson) times, each with a system prompt drawn from a
/// Zipf-popular set, and a few turns separated by think times; every turn's prompt is the whole conversation so far,
/// so it extends the previous turn's prompt and reply (what a prompt cache can reuse).
/// </summary>
internal sealed record Workload
{
    public int Conversations { get; init; } = 200;
    /// <summary>Conversations start over this many seconds.</summary>
    public double ArrivalSeconds { get; init; } = 600;
    public int SystemPrompts { get; init; } = 50;
    /// <summary>The k-th most popular system prompt is drawn with probability ∝ 1 / k^s.</summary>
    public double ZipfExponent { get; init; } = 1.0;
    public int MinSystemTokens { get; init; } = 300;
    public int MaxSystemTokens { get; init; } = 1500;
    public int MinTurns { get; init; } = 2;
    public int MaxTurns { get; init; } = 6;
    public int MinUserTokens { get; init; } = 20;
    public int MaxUserTokens { get; init; } = 150;
    public int MinReplyTokens { get; init; } = 50;
    public int MaxReplyTokens { get; init; } = 250;
    /// <summary>Mean of the exponential pause between a reply and the user's next message.</summary>
    public double MeanThinkSeconds { get; init; } = 20;
    /// <summary>A conversation ends before a turn whose prompt and reply would not fit this context.</summary>
    public int ContextTokens { get; init; } = 4096;

    /// <summary>Checks the fields; throws ArgumentException naming the first that is out of range.</summary>
    public void Validate()
    {
        static void Check(bool ok, string what)
        {
            if (!ok) throw new ArgumentException(what);
        }
        Check(Conversations >= 1, "conversations must be at least 1");
        Check(ArrivalSeconds > 0 && double.IsFinite(ArrivalSeconds), "the arrival window must be a positive number of seconds");
        Check(SystemPrompts >= 1, "there must be at least one system prompt");
        Check(ZipfExponent >= 0 && double.IsFinite(ZipfExponent), "the Zipf exponent must be ≥ 0");
        Check(MinSystemTokens >= 1 && MaxSystemTokens >= MinSystemTokens, "system prompt lengths: 1 ≤ min ≤ max");
        Check(MinTurns >= 1 && MaxTurns >= MinTurns, "turns: 1 ≤ min ≤ max");
        Check(MinUserTokens >= 1 && MaxUserTokens >= MinUserTokens, "user message lengths: 1 ≤ min ≤ max");
        Check(MinReplyTokens >= 1 && MaxReplyTokens >= MinReplyTokens, "reply lengths: 1 ≤ min ≤ max");
        Check(MeanThinkSeconds >= 0 && double.IsFinite(MeanThinkSeconds), "the think time must be ≥ 0 seconds");
        Check(ContextTokens >= MaxSystemTokens + MaxUserTokens + MaxReplyTokens, "the context must hold a first turn of the longest lengths");
    }
}

/// <summary>One conversation of a <see cref="Workload"/>, drawn in advance so every routing policy replays the same one.</summary>
internal sealed record Conversation(int Id, double Start, int SystemPrompt, int SystemTokens, int[] UserTokens, int[] ReplyTokens, double[] ThinkSeconds)
{
    public int Turns => UserTokens.Length;

    /// <summary>Draws the conversations of a workload from a seed: the same seed gives the same conversations.</summary>
    public static List<Conversation> Draw(Workload w, int seed)
    {
        w.Validate();
        var rng = new Random(seed);
        var systemTokens = new int[w.SystemPrompts];
        for (int k = 0; k < systemTokens.Length; k++) systemTokens[k] = rng.Next(w.MinSystemTokens, w.MaxSystemTokens + 1);
        // Zipf: cumulative weights 1/k^s, sampled by binary search.
        var cumulative = new double[w.SystemPrompts];
        double sum = 0;
        for (int k = 0; k < cumulative.Length; k++) cumulative[k] = sum += 1 / Math.Pow(k + 1, w.ZipfExponent);
        var list = new List<Conversation>(w.Conversations);
        double rate = w.Conversations / w.ArrivalSeconds, t = 0;
        for (int c = 0; c < w.Conversations; c++)
        {
            t += -Math.Log(1 - rng.NextDouble()) / rate;
            int pick = Array.BinarySearch(cumulative, rng.NextDouble() * sum);
            int system = pick >= 0 ? pick : Math.Min(~pick, cumulative.Length - 1);
            int turns = rng.Next(w.MinTurns, w.MaxTurns + 1);
            var users = new List<int>();
            var replies = new List<int>();
            var thinks = new List<double>();
            int length = systemTokens[system];
            for (int i = 0; i < turns; i++)
            {
                int user = rng.Next(w.MinUserTokens, w.MaxUserTokens + 1), reply = rng.Next(w.MinReplyTokens, w.MaxReplyTokens + 1);
                double think = -Math.Log(1 - rng.NextDouble()) * w.MeanThinkSeconds;
                if (length + user + reply > w.ContextTokens) break;
                length += user + reply;
                users.Add(user);
                replies.Add(reply);
                thinks.Add(think);
            }
            list.Add(new Conversation(c, t, system, systemTokens[system], [.. users], [.. replies], [.. thinks]));
        }
        return list;
    }
}
