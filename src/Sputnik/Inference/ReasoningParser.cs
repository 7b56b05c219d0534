namespace Sputnik.Inference;

/// <summary>Text released by one <see cref="ReasoningParser.Push"/>: the part that is thinking and the part that is answer.</summary>
internal readonly record struct ReasoningDelta(string Reasoning, string Content)
{
    public bool IsEmpty => Reasoning.Length == 0 && Content.Length == 0;
}

/// <summary>
/// The tags around a model's thinking and the text that closes it when the budget runs out: &lt;think&gt;…&lt;/think&gt;
/// (R1, Qwen3, SmolLM3, Phi-4-mini-reasoning) or Mistral's [THINK]…[/THINK] (Magistral, Ministral 3 Reasoning),
/// told apart by the chat template.
/// </summary>
internal sealed record ThinkTags(string Open, string Close, string CloseText)
{
    public static readonly ThinkTags Think = new("<think>", "</think>", "\n</think>\n\n");
    public static readonly ThinkTags Mistral = new("[THINK]", "[/THINK]", "[/THINK]");

    /// <summary>
    /// Harmony (gpt-oss): reasoning is the analysis channel's body; closing it early ends the message and opens the
    /// final channel. A parser with these tags reads the whole harmony stream (<see cref="HarmonyParser"/>).
    /// </summary>
    public static readonly ThinkTags Harmony = new("<|channel|>analysis<|message|>", "<|end|>", "<|end|><|start|>assistant<|channel|>final<|message|>");

    /// <summary>Harmony's for a harmony template; Mistral's when the template writes [THINK] and never &lt;think&gt;; otherwise &lt;think&gt;.</summary>
    public static ThinkTags Of(string template) =>
        template.Contains(Harmony.Open, StringComparison.Ordinal) ? Harmony
        : template.Contains(Mistral.Open, StringComparison.Ordinal) && !template.Contains(Think.Open, StringComparison.Ordinal) ? Mistral : Think;

    /// <summary>True for the harmony format, whose output is read with its special tokens rendered.</summary>
    public bool IsHarmony => this == Harmony;
}

/// <summary>
/// Splits streamed model output into reasoning and answer at &lt;think&gt;…&lt;/think&gt;, incrementally: a tag
/// split across tokens is held back until it is complete, a missing close tag leaves everything in reasoning,
/// and a prompt that already opened the thinking block (R1-Distill templates end with "&lt;think&gt;\n")
/// starts inside it.
/// </summary>
internal sealed class ReasoningParser
{
    public enum Phase { BeforeThinking, Thinking, Answer }

    private readonly string _open;
    private readonly string _close;
    private string _pending = "";
    private bool _answerStarted;
    // Harmony output has channels rather than one thinking block: its own parser, whose position sets State.
    private readonly HarmonyParser? _harmony;

    public ReasoningParser(bool startsInThinking = false, string openTag = "<think>", string closeTag = "</think>")
    {
        if (openTag.Length == 0 || closeTag.Length == 0) throw new ArgumentException("thinking tags must not be empty");
        _open = openTag;
        _close = closeTag;
        State = startsInThinking ? Phase.Thinking : Phase.BeforeThinking;
        if (openTag == ThinkTags.Harmony.Open && closeTag == ThinkTags.Harmony.Close) _harmony = new HarmonyParser();
    }

    public ReasoningParser(bool startsInThinking, ThinkTags tags) : this(startsInThinking, tags.Open, tags.Close) { }

    public Phase State { get; private set; }

    /// <summary>Last character of the close tag: only a token containing it can end the thinking block.</summary>
    public char CloseTagEnd => _close[^1];

    /// <summary>True once the close tag was seen.</summary>
    public bool ThinkingClosed { get; private set; }

    public ReasoningDelta Push(string text)
    {
        if (_harmony != null) return Harmonized(_harmony.Push(text));
        _pending += text;
        string reasoning = "", content = "";
        while (_pending.Length > 0)
        {
            if (State == Phase.BeforeThinking)
            {
                // Leading whitespace may precede the open tag; anything else means the model answered directly.
                string trimmed = _pending.TrimStart();
                if (trimmed.Length == 0) return new(reasoning, content);
                if (trimmed.StartsWith(_open, StringComparison.Ordinal))
                {
                    _pending = trimmed[_open.Length..];
                    State = Phase.Thinking;
                    continue;
                }
                if (_open.StartsWith(trimmed, StringComparison.Ordinal)) return new(reasoning, content);
                State = Phase.Answer;
                continue;
            }
            if (State == Phase.Thinking)
            {
                int i = _pending.IndexOf(_close, StringComparison.Ordinal);
                if (i >= 0)
                {
                    reasoning += _pending[..i];
                    _pending = _pending[(i + _close.Length)..];
                    State = Phase.Answer;
                    ThinkingClosed = true;
                    continue;
                }
                int hold = PartialSuffix(_pending, _close);
                reasoning += _pending[..^hold];
                _pending = _pending[^hold..];
                return new(StripLeadingNewline(reasoning), content);
            }
            // Answer: the blank lines between the close tag and the answer are layout, not content.
            string answer = _answerStarted || !ThinkingClosed ? _pending : _pending.TrimStart('\n', '\r', ' ');
            _pending = "";
            if (answer.Length > 0) _answerStarted = true;
            content += answer;
        }
        return new(StripLeadingNewline(reasoning), content);
    }

    private bool _reasoningStarted;

    /// <summary>
    /// The answer text pushing <paramref name="text"/> would release, without pushing it: null while the text would
    /// leave the parser outside the answer (still before or inside thinking).
    /// </summary>
    public string? PreviewAnswer(string text)
    {
        if (_harmony != null)
        {
            var probe = _harmony.Clone();
            var d = probe.Push(text);
            return probe.InAnswer ? d.Content : null;
        }
        var saved = (_pending, State, ThinkingClosed, _answerStarted, _reasoningStarted);
        var delta = Push(text);
        bool answer = State == Phase.Answer;
        (_pending, State, ThinkingClosed, _answerStarted, _reasoningStarted) = saved;
        return answer ? delta.Content : null;
    }

    // The newline after <think> is layout; drop it once, at the very start of the reasoning.
    private string StripLeadingNewline(string reasoning)
    {
        if (_reasoningStarted || reasoning.Length == 0) return reasoning;
        string r = reasoning.TrimStart('\n', '\r');
        if (r.Length > 0) _reasoningStarted = true;
        return r;
    }

    /// <summary>Releases held-back text at the end of generation: an unclosed thinking block stays reasoning.</summary>
    public ReasoningDelta Flush()
    {
        if (_harmony != null) return Harmonized(_harmony.Flush());
        string rest = _pending;
        _pending = "";
        return State switch
        {
            Phase.Thinking => new(StripLeadingNewline(rest), ""),
            Phase.BeforeThinking => new("", rest),
            _ => new("", rest),
        };
    }

    // Thinking inside an analysis body, Answer inside a final or commentary body, BeforeThinking in between (headers).
    private ReasoningDelta Harmonized(ReasoningDelta d)
    {
        var h = _harmony!;
        State = h.InReasoning ? Phase.Thinking : h.InAnswer ? Phase.Answer : Phase.BeforeThinking;
        ThinkingClosed = h.ReasoningClosed;
        return d;
    }

    private static int PartialSuffix(string text, string tag)
    {
        for (int len = Math.Min(tag.Length - 1, text.Length); len > 0; len--)
            if (text.AsSpan(text.Length - len).SequenceEqual(tag.AsSpan(0, len))) return len;
        return 0;
    }

    /// <summary>Splits a complete message into (reasoning, content); content is what R1's template keeps in history.</summary>
    public static (string? Reasoning, string Content) Split(string text, bool startsInThinking = false, ThinkTags? tags = null)
    {
        var p = new ReasoningParser(startsInThinking, tags ?? ThinkTags.Think);
        var a = p.Push(text);
        var b = p.Flush();
        string reasoning = a.Reasoning + b.Reasoning;
        return (p.ThinkingClosed || p.State == Phase.Thinking ? reasoning : null, a.Content + b.Content);
    }
}
