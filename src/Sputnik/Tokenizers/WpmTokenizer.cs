using System.Globalization;
using System.Text;

namespace Sputnik.Tokenizers;

/// <summary>
/// WordPiece ("bert" model) as llama.cpp's llm_tokenizer_wpm. The GGUF vocabulary is in "phantom space" form (the
/// converter turns a word-start piece "foo" into "▁foo" and a continuation "##oo" into "oo"). Text is split into
/// words at whitespace, and every punctuation character, ASCII symbol and CJK ideograph becomes a word of its own;
/// control characters, NUL and U+FFFD are dropped; with the normalizer's flags the text is lowercased and its accents
/// stripped (each character replaced by its canonical decomposition's base, as
/// llama.cpp's NFD step does, then combining marks dropped). Each word, prefixed with ▁, is covered greedily by the longest
/// vocabulary pieces from the left; a word with any position no piece starts at becomes one [UNK]. Special tokens
/// add [CLS] first and [SEP] last.
/// </summary>
internal sealed class WpmTokenizer : Tokenizer
{
    private const char Space = '\u2581'; // ▁
    private readonly bool _lowercase, _stripAccents;
    private readonly int _sepId, _maxPieceLength;

    internal WpmTokenizer(TokenizerData data) : base(data)
    {
        _lowercase = data.Lowercase ?? false;
        _stripAccents = data.StripAccents ?? _lowercase;
        _sepId = data.SepId is { } sep && sep >= 0 && sep < data.Tokens.Length ? sep : Math.Min(102, data.Tokens.Length - 1);
        _maxPieceLength = data.Tokens.Max(t => t?.Length ?? 0);
        if (BosId < 0) throw new ArgumentException("a WordPiece vocabulary needs a [CLS] token (tokenizer.ggml.bos_token_id, default 101)", nameof(data));
        if (UnknownId is null) throw new ArgumentException("a WordPiece vocabulary needs an unknown token ([UNK])", nameof(data));
    }

    /// <summary>The separator appended after the text ([SEP]).</summary>
    public int SepId => _sepId;

    public override int? ClosingId => _sepId;

    private protected override byte[] ComputeTokenBytes(int id) =>
        Encoding.UTF8.GetBytes(GetTokenType(id) == TokenType.Normal ? TokenPiece(id).Replace(Space, ' ') : TokenPiece(id));

    private protected override void EncodeFragments(string text, List<Fragment> fragments, bool addSpecial, List<int> output)
    {
        if (addSpecial) output.Add(BosId);
        var words = new List<string>();
        foreach (var f in fragments)
        {
            if (!f.IsText) { output.Add(f.Id); continue; }
            words.Clear();
            Split(text.AsSpan(f.Start, f.Length), words);
            foreach (string word in words) EncodeWord(word, output);
        }
        if (addSpecial) output.Add(_sepId);
    }

    /// <summary>llama.cpp's preprocess: normalised words, punctuation and CJK characters as words of their own.</summary>
    private void Split(ReadOnlySpan<char> text, List<string> words)
    {
        var source = text;
        var word = new StringBuilder();
        void Finish()
        {
            if (word.Length > 0) words.Add(word.ToString());
            word.Clear();
        }
        Span<char> utf16 = stackalloc char[2];
        for (int i = 0; i < source.Length;)
        {
            Rune.DecodeFromUtf16(source[i..], out var decoded, out int width); // a lone surrogate reads as U+FFFD
            i += width;
            int cp = _stripAccents ? UnicodeNfd.Base(decoded.Value) : decoded.Value;
            if (UnicodeInfo.IsWhitespace(cp))
            {
                Finish();
                continue;
            }
            var category = CharUnicodeInfo.GetUnicodeCategory(cp);
            if (cp == 0 || cp == 0xFFFD || IsControl(category)) continue;
            if (_stripAccents && category is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark) continue;
            var rune = new Rune(cp);
            if (_lowercase) rune = Rune.ToLowerInvariant(rune);
            if (IsPunctuation(category) || cp < 0x7F && IsSymbol(category) || IsChinese(cp))
            {
                Finish();
                words.Add(rune.ToString());
                continue;
            }
            word.Append(utf16[..rune.EncodeToUtf16(utf16)]);
        }
        Finish();
    }

    /// <summary>Longest pieces from the left over ▁word; one [UNK] for the whole word when some position has none.</summary>
    private void EncodeWord(string word, List<int> output)
    {
        string w = Space + word;
        int before = output.Count;
        for (int i = 0; i < w.Length;)
        {
            int matched = 0;
            for (int len = Math.Min(w.Length - i, _maxPieceLength); len > 0; len--)
            {
                if (PieceLookup.TryGetValue(w.AsSpan(i, len), out int id))
                {
                    output.Add(id);
                    matched = len;
                    break;
                }
            }
            if (matched == 0)
            {
                output.RemoveRange(before, output.Count - before);
                break;
            }
            i += matched;
        }
        if (output.Count == before) output.Add(UnknownId!.Value);
    }

    private static bool IsControl(UnicodeCategory c) =>
        c is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.PrivateUse or UnicodeCategory.Surrogate;

    private static bool IsPunctuation(UnicodeCategory c) => c is UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation
        or UnicodeCategory.OpenPunctuation or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
        or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation;

    private static bool IsSymbol(UnicodeCategory c) =>
        c is UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol or UnicodeCategory.OtherSymbol;

    // llama.cpp's is_chinese_char ranges (BERT's CJK Unified Ideographs and extensions).
    private static bool IsChinese(int cp) =>
        cp is >= 0x4E00 and <= 0x9FFF or >= 0x3400 and <= 0x4DBF or >= 0x20000 and <= 0x2A6DF or >= 0x2A700 and <= 0x2B73F
            or >= 0x2B740 and <= 0x2B81F or >= 0x2B920 and <= 0x2CEAF or >= 0xF900 and <= 0xFAFF or >= 0x2F800 and <= 0x2FA1F;
}
