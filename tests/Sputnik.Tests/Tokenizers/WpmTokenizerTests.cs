using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tokenizers;
using Sputnik.Tools;
using Xunit;

namespace Sputnik.Tests.Tokenizers;

/// <summary>WordPiece ("bert") as llama.cpp's llm_tokenizer_wpm, on a hand-made phantom-space vocabulary.</summary>
public sealed class WpmTokenizerTests
{
    private static readonly string[] Pieces =
    [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
        "▁un", "aff", "able", "▁,", "▁hello", "▁world", "▁!", "▁un", "a", "▁a", "ff", "▁的", "▁x", "▁cafe", "▁$",
    ];

    private static Tokenizer Make(bool? lowercase = true, bool? stripAccents = null) => Tokenizer.Create(new TokenizerData
    {
        Model = "bert", Tokens = Pieces, TokenTypes = Pieces.Select(p => p.StartsWith('[') ? 3 : 1).ToArray(),
        BosId = 2, UnknownId = 1, SepId = 3, PadId = 0, Lowercase = lowercase, StripAccents = stripAccents,
    });

    private static int Id(string piece) => Array.LastIndexOf(Pieces, piece); // "▁un" twice: the last one wins, as in llama.cpp

    [Fact]
    public void WordsAreCoveredByTheLongestPiecesFromTheLeft()
    {
        var tok = Make();
        Assert.IsType<WpmTokenizer>(tok);
        // "unaffable" → ▁un aff able (▁una and ▁unaf are no pieces); "," and "!" are words of their own.
        Assert.Equal([2, Id("▁un"), Id("aff"), Id("able"), Id("▁,"), Id("▁hello"), Id("▁world"), Id("▁!"), 3],
            tok.Encode("Unaffable,   HELLO\tworld!", addBos: true));
        Assert.Equal([Id("▁hello")], tok.Encode("hello", addBos: false));
    }

    [Fact]
    public void AWordWithAnUncoverablePositionIsOneUnknown()
    {
        var tok = Make();
        // "helloq": ▁hello matches, then no piece starts at "q" → the whole word is [UNK], the next word goes on.
        Assert.Equal([1, Id("▁world")], tok.Encode("helloq world", addBos: false));
        // "€x": € is a symbol but not ASCII, so it stays in the word, which no piece starts.
        Assert.Equal([1], tok.Encode("€x", addBos: false));
        // "$" is an ASCII symbol: a word of its own.
        Assert.Equal([Id("▁$"), Id("▁x")], tok.Encode("$x", addBos: false));
    }

    [Fact]
    public void NormalisationFollowsTheFlags()
    {
        // Lowercase (and, by default with it, accents stripped after NFD): "Café" → "cafe".
        Assert.Equal([Id("▁cafe")], Make().Encode("Café", addBos: false));
        // Lowercase without stripping: "café" keeps its é and is no piece.
        Assert.Equal([1], Make(lowercase: true, stripAccents: false).Encode("Café", addBos: false));
        // Neither (llama.cpp's default when the file has no normalizer keys): case stays.
        Assert.Equal([1], Make(lowercase: null).Encode("Hello", addBos: false));
        Assert.Equal([Id("▁hello")], Make(lowercase: null).Encode("hello", addBos: false));
        // CJK ideographs are words of their own; control characters vanish.
        Assert.Equal([Id("▁hello"), Id("▁的"), Id("▁x")], Make().Encode("hello的\u0001x", addBos: false));
    }

    [Theory]
    [InlineData(0xE9, 'e')]      // é
    [InlineData(0x1FA, 'A')]     // Ǻ: Å + acute, Å: A + ring
    [InlineData(0x1E69, 's')]    // ṩ: two marks below and above
    [InlineData(0xD55C, 0x1112)] // 한: its leading consonant ㅎ (Hangul is decomposed by rule)
    [InlineData('x', 'x')]
    [InlineData(0x301, 0x301)]   // a combining mark is its own base (then dropped as an accent)
    public void AccentStrippingMapsToTheBaseCharacter(int cp, int expected) => Assert.Equal(expected, UnicodeNfd.Base(cp));

    [Fact]
    public void SpecialTokensInTheTextAreParsedWhenAsked()
    {
        var tok = Make();
        Assert.Equal([2, Id("▁hello"), 4, Id("▁world"), 3], tok.Encode("hello[MASK]world", addBos: true, parseSpecial: true));
        Assert.Equal(" hello world", tok.Decode([Id("▁hello"), Id("▁world")])); // ▁ reads as a space, as llama.cpp renders it
    }

    [Fact]
    public void TheFileKeysRoundTrip()
    {
        var data = SyntheticVocab.CreateWordPiece(1000);
        var w = new GgufWriter();
        w.Set(GgufKeys.GeneralArchitecture, "bert");
        data.WriteTo(w);
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-wpm-{Environment.ProcessId}.gguf");
        try
        {
            w.Write(path);
            var back = TokenizerData.FromGguf(path);
            Assert.Equal(("bert", 102, true), (back.Model, back.SepId, back.Lowercase));
            var tok = Tokenizer.Create(back);
            int[] ids = tok.Encode("Hello, world", addBos: true);
            Assert.Equal((101, 102), (ids[0], ids[^1]));
            Assert.DoesNotContain(100, ids); // every letter is a piece: no [UNK]
            Assert.True(ids.Length > 5, "the words split into several pieces");
        }
        finally
        {
            File.Delete(path);
        }
    }
}
