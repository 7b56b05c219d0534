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

    /// <summary>R1's template, reduced to what a single-turn tiny model needs; the generation prompt opens &lt;think&gt;.</summary>
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

    /// <summary>The assistant's target: thinking, the closing tag, the answer and EOS.</summary>
    public static string CompletionText(Problem p) => p.Trace + ThinkClose + "\n\n" + p.Answer + Eos;

    /// <summary>BOS + prompt tokens.</summary>
    public static int[] EncodePrompt(string user) => Tokenizer.Encode(PromptText(user), addBos: true, parseSpecial: true).ToArray();

    public static int[] EncodeCompletion(Problem p) => Tokenizer.Encode(CompletionText(p), addBos: false, parseSpecial: true).ToArray();
}
