using Sputnik.Tokenizers;

namespace Sputnik.Training.Tasks;

/// <summary>
/// The tiny model's tokenizer and chat format. The vocabulary is character level: every printable ASCII character
/// plus newline, and single tokens for DeepSeek-R1's specials. It is stored as a SentencePiece ("llama") vocabulary
/// with no multi-character pieces, so Sputnik's SPM tokenizer (and llama.cpp's) never merges anything and each
/// character maps to exactly one token; space is '▁' as SPM requires and add_space_prefix is off so text
/// round-trips exactly. Characters outside the set become &lt;unk&gt;.
/// </summary>
internal static class R1Format
{
    public const string Bos = "<｜begin▁of▁sentence｜>";
    public const string Eos = "<｜end▁of▁sentence｜>";
    public const string User = "<｜User｜>";
    public const string Assistant = "<｜Assistant｜>";
    public const string ThinkOpen = "<think>";
    public const string ThinkClose = "</think>";

    /// <summary>
    /// R1's template, reduced to what the tiny model needs: user and assistant turns (an assistant message's thinking,
    /// anything up to its last &lt;/think&gt;, is dropped as R1 does); the generation prompt opens &lt;think&gt;.
    /// </summary>
    public const string ChatTemplate =
        "{{ bos_token }}{% for message in messages %}" +
        "{% if message['role'] == 'system' %}{{ message['content'] }}" +
        "{% elif message['role'] == 'user' %}<｜User｜>{{ message['content'] }}" +
        "{% elif message['role'] == 'assistant' %}{% set content = message['content'] %}" +
        "{% if '</think>' in content %}{% set content = content.split('</think>')[-1].lstrip() %}{% endif %}" +
        "<｜Assistant｜>{{ content }}<｜end▁of▁sentence｜>{% endif %}{% endfor %}" +
        "{% if add_generation_prompt %}<｜Assistant｜><think>\n{% endif %}";

    public static TokenizerData Vocabulary()
    {
        var tokens = new List<string> { "<unk>", Bos, Eos, User, Assistant, ThinkOpen, ThinkClose, "\n", "\u2581" };
        var types = new List<int> { (int)TokenType.Unknown, (int)TokenType.Control, (int)TokenType.Control, (int)TokenType.UserDefined,
            (int)TokenType.UserDefined, (int)TokenType.UserDefined, (int)TokenType.UserDefined, (int)TokenType.Normal, (int)TokenType.Normal };
        for (char ch = '!'; ch <= '~'; ch++) { tokens.Add(ch.ToString()); types.Add((int)TokenType.Normal); }
        return new TokenizerData
        {
            Model = "llama",
            Tokens = tokens.ToArray(),
            Scores = new float[tokens.Count],
            TokenTypes = types.ToArray(),
            BosId = 1, EosId = 2, UnknownId = 0,
            AddBos = true, AddEos = false, AddSpacePrefix = false,
        };
    }

    private static Tokenizer? s_tokenizer;
    public static Tokenizer Tokenizer => s_tokenizer ??= Tokenizer.Create(Vocabulary());

    /// <summary>What the chat template renders for one user turn with the generation prompt (minus BOS).</summary>
    public static string PromptText(string user) => User + user + Assistant + ThinkOpen + "\n";

    /// <summary>
    /// What the chat template renders for a conversation (minus BOS): every earlier turn as the user's message and the
    /// assistant message chat and the server keep (<see cref="HistoryContent"/>), then the question with the generation
    /// prompt; with thinking off the think block is closed empty, as ChatPromptBuilder does for thinking=false.
    /// </summary>
    public static string PromptText(IReadOnlyList<ChatTurn> earlier, string user, bool thinking)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var turn in earlier) sb.Append(User).Append(turn.User).Append(Assistant).Append(turn.AssistantContent).Append(Eos);
        sb.Append(PromptText(user));
        if (!thinking) sb.Append(ClosedThinking);
        return sb.ToString();
    }

    /// <summary>What follows the generation prompt's "&lt;think&gt;\n" when thinking is off: an empty block, closed.</summary>
    public const string ClosedThinking = "\n" + ThinkClose + "\n\n";

    /// <summary>The assistant's target: thinking, the closing tag, the answer and EOS.</summary>
    public static string CompletionText(Problem p) => p.Trace + ThinkClose + "\n\n" + p.Answer + Eos;

    /// <summary>
    /// The answer with thinking off. A 0.9M-parameter model cannot multiply 4×3 digits in one step, so it works in the
    /// open: the same column trace it writes when thinking, now as plain answer text, a blank line, then the answer.
    /// Thinking off therefore changes where the working is shown, not whether there is any.
    /// </summary>
    public static string OpenAnswerText(Problem p) => p.Trace + "\n" + p.Answer;

    /// <summary>The assistant's target with thinking off (the prompt already closed the empty think block): no think tags.</summary>
    public static string NoThinkCompletionText(Problem p) => OpenAnswerText(p) + Eos;

    /// <summary>
    /// The assistant message chat and the server keep for an earlier turn that answered <paramref name="p"/>: the text
    /// after &lt;/think&gt; with the blank line before it trimmed (ReasoningParser), i.e. the answer alone with thinking on,
    /// and everything generated (the open working and the answer) with thinking off.
    /// </summary>
    public static string HistoryContent(Problem p, bool thinking) => thinking ? p.Answer : OpenAnswerText(p);

    /// <summary>BOS + prompt tokens.</summary>
    public static int[] EncodePrompt(string user) => Tokenizer.Encode(PromptText(user), addBos: true, parseSpecial: true).ToArray();

    public static int[] EncodeCompletion(Problem p) => Tokenizer.Encode(CompletionText(p), addBos: false, parseSpecial: true).ToArray();
}
