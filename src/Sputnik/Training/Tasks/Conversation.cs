namespace Sputnik.Training.Tasks;

/// <summary>One earlier exchange: the user's message and the assistant message chat keeps for it (thinking dropped).</summary>
internal sealed record ChatTurn(string User, string AssistantContent);

/// <summary>
/// A conversation whose last question is trained on or graded: earlier turns (already answered), the last problem, and
/// whether the last turn thinks. Its prompt is what `chat` and the server render through the model's template.
/// </summary>
internal sealed record Conversation(IReadOnlyList<ChatTurn> Earlier, Problem Last, bool Thinking)
{
    /// <summary>A single thinking turn: the original training and evaluation format.</summary>
    public static Conversation Single(Problem p) => new([], p, Thinking: true);

    public string PromptText => R1Format.PromptText(Earlier, Last.Prompt, Thinking);

    /// <summary>The target: thinking, &lt;/think&gt; and the answer, or with thinking off the open working and the answer.</summary>
    public string CompletionText => Thinking ? R1Format.CompletionText(Last) : R1Format.NoThinkCompletionText(Last);

    /// <summary>BOS + prompt tokens.</summary>
    public int[] EncodePrompt() => R1Format.Tokenizer.Encode(PromptText, addBos: true, parseSpecial: true).ToArray();

    public int[] EncodeCompletion() => R1Format.Tokenizer.Encode(CompletionText, addBos: false, parseSpecial: true).ToArray();

    /// <summary>Grades a completion of the last question (see <see cref="ReasoningTask.Verify(Problem, string, bool)"/>).</summary>
    public Grade Verify(ReasoningTask task, string completion) => task.Verify(Last, completion, Thinking);
}

/// <summary>
/// How training mixes conversation shapes: a fraction of samples carry 1..<see cref="MaxEarlierTurns"/> earlier turns,
/// and a fraction are asked (and every earlier turn independently was answered) with thinking off. With both fractions
/// 0 it draws exactly the single-turn samples (and random numbers) it drew before conversations existed.
/// </summary>
internal sealed record ConversationMix(double MultiTurn = ConversationMix.DefaultMultiTurn, double NoThink = ConversationMix.DefaultNoThink, int MaxEarlierTurns = 3)
{
    public const double DefaultMultiTurn = 0.3, DefaultNoThink = 0.2;

    public static readonly ConversationMix SingleTurn = new(0, 0);

    /// <summary>Throws a clear error for fractions outside [0, 1].</summary>
    public ConversationMix Validated()
    {
        if (!(MultiTurn >= 0 && MultiTurn <= 1)) throw new ArgumentException($"--multi-turn must be a fraction from 0 to 1 (got {MultiTurn})");
        if (!(NoThink >= 0 && NoThink <= 1)) throw new ArgumentException($"--no-think must be a fraction from 0 to 1 (got {NoThink})");
        if (MaxEarlierTurns < 1) throw new ArgumentException("at least one earlier turn is needed for multi-turn samples");
        return this;
    }

    /// <summary>
    /// Draws one conversation from <paramref name="split"/>. The last problem is drawn first, so the mix never changes
    /// which problems are trained on; earlier turns that would push the reference conversation past
    /// <paramref name="maxSeq"/> tokens are dropped, oldest first.
    /// </summary>
    public Conversation Draw(ReasoningTask task, Random rng, EvalSplit split, int maxSeq)
    {
        var last = task.Sample(rng, split);
        bool thinking = !(NoThink > 0 && rng.NextDouble() < NoThink);
        if (!(MultiTurn > 0 && rng.NextDouble() < MultiTurn)) return new Conversation([], last, thinking);
        int count = rng.Next(1, MaxEarlierTurns + 1);
        var earlier = new List<ChatTurn>(count);
        for (int i = 0; i < count; i++)
        {
            var q = task.Sample(rng, split);
            bool earlierThinking = !(NoThink > 0 && rng.NextDouble() < NoThink);
            earlier.Add(new ChatTurn(q.Prompt, R1Format.HistoryContent(q, earlierThinking)));
        }
        var c = new Conversation(earlier, last, thinking);
        while (c.Earlier.Count > 0 && Length(c) > maxSeq) c = c with { Earlier = c.Earlier.Skip(1).ToArray() };
        return c;
    }

    /// <summary>Tokens of prompt and reference completion (the tokenizer is character level, one token per character or special).</summary>
    public static int Length(Conversation c) => c.EncodePrompt().Length + c.EncodeCompletion().Length;
}
