using System.Collections.Concurrent;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Sputnik.Tokenizers;

/// <summary>
/// Regex pre-tokenization for byte-level BPE, reproducing llama.cpp's <c>unicode_regex_split</c>: each regex of the
/// pre-tokenizer's list splits every piece produced by the previous one, and text the regex does not match is kept
/// as its own piece. Regexes that use Unicode categories run over a "collapsed" view of the text (one char per code
/// point: ASCII kept, other code points replaced by a marker for their category, non-ASCII whitespace by \v), which
/// is how llama.cpp evaluates them; regexes without categories run over the code points with non-ASCII whitespace
/// replaced by \v.
/// </summary>
internal sealed class PreTokenizer
{
    // Category markers of the collapsed view (the bytes llama.cpp uses).
    private const char CatOther = '\u00D0', CatNumber = '\u00D1', CatLetter = '\u00D2', CatPunct = '\u00D3', CatMark = '\u00D4', CatSymbol = '\u00D5';

    // Supplementary-plane code points of regex ranges are represented by this lone surrogate in the "wide" view.
    private const char SupplementaryInRange = '\uD800', SupplementaryOther = '\uDC00';

    private const string Gpt2 = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
    private const string Llama3 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    // Mistral's tekken (Mistral Nemo, Ministral 3) as llama.cpp rewrites it for the collapsed view: an optional
    // non-letter, letters that are not a-z, then letters that are not A-Z (CamelCase splits), single digits, and "/"
    // kept with the punctuation run.
    private const string Tekken = @"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    private const string Qwen2 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
    // Qwen3.5: Qwen2's split with combining marks kept inside words (letters and marks together).
    private const string Qwen35 = @"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // o200k (GPT-4o; Phi-4-mini, Llama 4) as llama.cpp runs it: words split at an upper→lower case change with the
    // contraction kept on the word; case is told apart for ASCII only (a non-ASCII letter counts as both), as in
    // llama.cpp's lookahead rewrite of the original \p{Lu}/\p{Ll} classes.
    private const string Gpt4o = @"[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))*((?=[\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
        + @"|[^\r\n\p{L}\p{N}]?((?=[\p{L}])([^a-z]))+((?=[\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])?"
        + @"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    // deepseek-llm letter class; its supplementary-plane ranges are listed separately (DeepseekLlmSupplementary).
    private const string DeepseekLlmLetters =
        "\u0041-\u005A\u0061-\u007A\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF\u0370-\u0373\u0376-\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F\u2145-\u2149\u214E\u2183-\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2-\u2CF3\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A";

    private static readonly (int Lo, int Hi)[] DeepseekLlmSupplementary =
    [
        (0x10400, 0x1044F), (0x104B0, 0x104D3), (0x104D8, 0x104FB), (0x10C80, 0x10CB2), (0x10CC0, 0x10CF2),
        (0x118A0, 0x118DF), (0x1E900, 0x1E943),
    ];

    /// <summary>One split step: a .NET regex plus the view of the text it runs over.</summary>
    private sealed record Step(Regex Regex, bool Collapsed, (int Lo, int Hi)[]? Supplementary);

    /// <summary>Settings llama.cpp ties to a pre-tokenizer name.</summary>
    internal readonly record struct PreInfo(string Kind, bool CleanSpaces, bool IgnoreMerges, bool AddBos, bool NoBos);

    private static readonly ConcurrentDictionary<string, PreTokenizer> Cache = new(StringComparer.Ordinal);
    private static readonly ConcurrentDictionary<string, Regex> RegexCache = new(StringComparer.Ordinal);

    private readonly Step[] _steps;

    private PreTokenizer(Step[] steps) => _steps = steps;

    /// <summary>Maps a GGUF <c>tokenizer.ggml.pre</c> name to the regex family and flags llama.cpp uses.</summary>
    internal static PreInfo Resolve(string pre) => pre switch
    {
        "llama3" or "llama-v3" or "llama-bpe" or "falcon3" or "falcon-h1" or "pixtral" or "midm-2.0" or "lfm2"
            => new("llama3", CleanSpaces: true, IgnoreMerges: true, AddBos: true, NoBos: false),
        "dbrx" or "smaug-bpe" => new("llama3", true, false, false, false),
        "deepseek-llm" => new("deepseek-llm", false, false, false, false),
        "deepseek-coder" => new("deepseek-coder", false, false, false, false),
        "deepseek-v3" => new("deepseek-v3", false, false, false, false),
        "hunyuan-dense" => new("deepseek-v3", false, false, false, false),
        "falcon" => new("falcon", true, false, false, false),
        "starcoder" or "refact" or "codeshell" or "exaone" or "minerva-7b" => new("starcoder", true, false, false, false),
        "command-r" or "smollm" => new("starcoder", false, false, false, false),
        "tekken" => new("tekken", CleanSpaces: false, IgnoreMerges: true, AddBos: true, NoBos: false),
        "gpt-2" or "gpt2" or "phi-2" or "jina-es" or "jina-de" or "gigachat" or "jina-v2-es" or "jina-v2-de" or "a.x-4.0"
            or "mellum" or "jina-v1-en" or "jina-v2-code" or "roberta-bpe" or "mpt" or "olmo" or "jais" or "exaone4"
            => new("gpt2", true, false, false, false),
        "trillion" or "granite-docling" => new("gpt2", false, false, false, false),
        "qwen2" or "deepseek-r1-qwen" or "kormo" or "hunyuan" or "grok-2" => new("qwen2", false, false, false, false),
        "qwen35" => new("qwen35", false, false, false, false),
        "stablelm2" or "megrez" => new("qwen2", true, false, false, false),
        "glm4" or "chatglm-bpe" => new("llama3", true, false, false, NoBos: true),
        "gpt-4o" or "llama4" or "kanana2" or "talkie" => new("gpt-4o", false, false, false, false),
        _ => new("default", true, false, false, false),
    };

    internal static PreTokenizer For(string pre) => Cache.GetOrAdd(Resolve(pre).Kind, static kind => new PreTokenizer(Build(kind)));

    private static Step[] Build(string kind) => kind switch
    {
        "llama3" => [Cat(Llama3)],
        "qwen2" => [Cat(Qwen2)],
        "qwen35" => [Cat(Qwen35)],
        "tekken" => [Cat(Tekken)],
        "gpt2" => [Cat(Gpt2)],
        "gpt-4o" => [Cat(Gpt4o)],
        "starcoder" => [Cat(@"\p{N}"), Cat(Gpt2)],
        "falcon" => [Cat(@"[\p{P}\$\+<=>\^~\|`]+"), Cat(Gpt2), Cat("[0-9][0-9][0-9]")],
        "deepseek-llm" =>
        [
            Wide("[\r\n]"),
            Wide(@"\s?[" + DeepseekLlmLetters + SupplementaryInRange + "]+", DeepseekLlmSupplementary),
            Wide(@"\s?[!-/:-~！-／：-～‘-‟　-。]+"),
            Wide(@"\s+\z"), // std::regex '$' (no multiline) = end of the piece only
            Wide("[一-龥ࠀ-一가-퟿]+"),
            Cat(@"\p{N}+"),
        ],
        "deepseek-coder" => [Wide("[\r\n]"), Cat(@"\s?\p{L}+"), Cat(@"\s?\p{P}+"), Wide("[一-龥ࠀ-一가-퟿]+"), Cat(@"\p{N}")],
        "deepseek-v3" =>
        [
            Cat(@"\p{N}{1,3}"),
            Wide("[一-龥぀-ゟ゠-ヿ]+"),
            Cat(@"[!""#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^" + "\r\n" + @"\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[" + "\r\n" + @"]*|\s*[" + "\r\n" + @"]+|\s+(?!\S)|\s+"),
        ],
        _ => [Cat(@"[\p{P}\$\+<=>\^~\|]+"), Cat(Gpt2), Cat(@"\p{N}+"), Cat("[0-9][0-9][0-9]")],
    };

    private static Step Cat(string pattern) => new(Compile(CollapsePattern(pattern)), Collapsed: true, null);

    private static Step Wide(string pattern, (int, int)[]? supplementary = null) => new(Compile(pattern), Collapsed: false, supplementary);

    private static Regex Compile(string pattern) =>
        RegexCache.GetOrAdd(pattern, static p => new Regex(p, RegexOptions.Compiled | RegexOptions.CultureInvariant));

    /// <summary>Rewrites \p{N}/\p{L}/\p{P}/\p{M}/\p{S} into classes over the collapsed view (marker + ASCII members).</summary>
    internal static string CollapsePattern(string pattern)
    {
        var sb = new StringBuilder(pattern.Length * 2);
        bool inside = false;
        for (int i = 0; i < pattern.Length; i++)
        {
            char c = pattern[i];
            if (c == '\\' && i + 1 < pattern.Length && pattern[i + 1] != 'p')
            {
                sb.Append(c).Append(pattern[i + 1]);
                i++;
                continue;
            }
            if (c == '[' && !inside) { inside = true; sb.Append(c); continue; }
            if (c == ']' && inside) { inside = false; sb.Append(c); continue; }
            if (c == '\\' && i + 4 < pattern.Length && pattern[i + 1] == 'p' && pattern[i + 2] == '{' && pattern[i + 4] == '}')
            {
                string members = pattern[i + 3] switch
                {
                    'N' => CatNumber + "0-9",
                    'L' => CatLetter + "A-Za-z",
                    'P' => CatPunct + @"!-#%-*,-/:-;?-@\[-\]_\{\}",
                    'M' => CatMark.ToString(),
                    'S' => CatSymbol + @"\$\+<->\^`\|",
                    _ => throw new NotSupportedException($"unsupported category in pre-tokenizer regex: {pattern.Substring(i, 5)}"),
                };
                sb.Append(inside ? members : "[" + members + "]");
                i += 4;
                continue;
            }
            sb.Append(c);
        }
        return sb.ToString();
    }

    /// <summary>Splits <paramref name="text"/> into pre-tokenized words (as substrings of the original text).</summary>
    internal List<string> Split(string text)
    {
        var result = new List<string>();
        if (text.Length == 0) return result;

        // code points and the char index where each starts
        var cps = new List<int>(text.Length);
        var charStart = new List<int>(text.Length + 1);
        for (int i = 0; i < text.Length;)
        {
            charStart.Add(i);
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cps.Add(char.ConvertToUtf32(text[i], text[i + 1]));
                i += 2;
            }
            else
            {
                cps.Add(char.IsSurrogate(text[i]) ? 0xFFFD : text[i]);
                i++;
            }
        }
        charStart.Add(text.Length);

        string? collapsed = null;
        var wideViews = new Dictionary<(int, int)[], string>(ReferenceEqualityComparer.Instance);
        var offsets = new List<int> { cps.Count };
        foreach (var step in _steps)
        {
            string view;
            if (step.Collapsed) view = collapsed ??= BuildCollapsed(cps);
            else
            {
                var key = step.Supplementary ?? s_noRanges;
                if (!wideViews.TryGetValue(key, out view!)) wideViews[key] = view = BuildWide(cps, step.Supplementary);
            }
            var next = new List<int>(offsets.Count * 2);
            int start = 0;
            foreach (int len in offsets)
            {
                SplitPiece(step.Regex, view.Substring(start, len), next);
                start += len;
            }
            offsets = next;
        }

        int pos = 0;
        foreach (int len in offsets)
        {
            if (len == 0) continue;
            int a = charStart[pos], b = charStart[pos + len];
            result.Add(text.Substring(a, b - a));
            pos += len;
        }
        return result;
    }

    private static readonly (int, int)[] s_noRanges = [];

    private static void SplitPiece(Regex regex, string piece, List<int> output)
    {
        int last = 0;
        for (var m = regex.Match(piece); m.Success; m = m.NextMatch())
        {
            if (m.Length == 0) continue;
            if (m.Index > last) output.Add(m.Index - last);
            output.Add(m.Length);
            last = m.Index + m.Length;
        }
        if (last < piece.Length) output.Add(piece.Length - last);
    }

    private static string BuildCollapsed(List<int> cps)
    {
        return string.Create(cps.Count, cps, static (span, list) =>
        {
            for (int i = 0; i < span.Length; i++) span[i] = CollapseCodepoint(list[i]);
        });
    }

    private static string BuildWide(List<int> cps, (int Lo, int Hi)[]? ranges)
    {
        return string.Create(cps.Count, (cps, ranges), static (span, st) =>
        {
            for (int i = 0; i < span.Length; i++)
            {
                int cp = st.cps[i];
                if (cp < 0x80) span[i] = (char)cp;
                else if (UnicodeInfo.IsWhitespace(cp)) span[i] = '\v';
                else if (cp <= 0xFFFF) span[i] = (char)cp;
                else span[i] = InRanges(cp, st.ranges) ? SupplementaryInRange : SupplementaryOther;
            }
        });
    }

    private static bool InRanges(int cp, (int Lo, int Hi)[]? ranges)
    {
        if (ranges == null) return false;
        foreach (var (lo, hi) in ranges) if (cp >= lo && cp <= hi) return true;
        return false;
    }

    internal static char CollapseCodepoint(int cp)
    {
        if (cp < 0x80) return (char)cp;
        if (UnicodeInfo.IsWhitespace(cp)) return '\v';
        return CharUnicodeInfo.GetUnicodeCategory(cp) switch
        {
            UnicodeCategory.UppercaseLetter or UnicodeCategory.LowercaseLetter or UnicodeCategory.TitlecaseLetter
                or UnicodeCategory.ModifierLetter or UnicodeCategory.OtherLetter => CatLetter,
            UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber => CatNumber,
            UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark => CatMark,
            UnicodeCategory.ConnectorPunctuation or UnicodeCategory.DashPunctuation or UnicodeCategory.OpenPunctuation
                or UnicodeCategory.ClosePunctuation or UnicodeCategory.InitialQuotePunctuation
                or UnicodeCategory.FinalQuotePunctuation or UnicodeCategory.OtherPunctuation => CatPunct,
            UnicodeCategory.MathSymbol or UnicodeCategory.CurrencySymbol or UnicodeCategory.ModifierSymbol
                or UnicodeCategory.OtherSymbol => CatSymbol,
            _ => CatOther,
        };
    }
}

/// <summary>Unicode facts the tokenizers need, matching llama.cpp's tables.</summary>
internal static class UnicodeInfo
{
    /// <summary>The Unicode White_Space property (llama.cpp's <c>is_whitespace</c>).</summary>
    internal static bool IsWhitespace(int cp) => cp switch
    {
        >= 0x09 and <= 0x0D => true,
        0x20 or 0x85 or 0xA0 or 0x1680 => true,
        >= 0x2000 and <= 0x200A => true,
        0x2028 or 0x2029 or 0x202F or 0x205F or 0x3000 => true,
        _ => false,
    };
}
