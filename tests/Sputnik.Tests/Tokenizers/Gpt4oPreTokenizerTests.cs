using Sputnik.Tokenizers;
using Xunit;

namespace Sputnik.Tests.Tokenizers;

/// <summary>
/// The "gpt-4o" pre-tokenizer (o200k: Phi-4-mini, Phi-4-mini-reasoning, Llama 4) splits as llama.cpp's regex does:
/// contractions stay on their word, words part where lower case turns upper, one leading non-letter joins a word,
/// digits go in threes, punctuation keeps a following newline or slash.
/// </summary>
public class Gpt4oPreTokenizerTests
{
    [Theory]
    [InlineData("Hello World", new[] { "Hello", " World" })]
    [InlineData("don't stop", new[] { "don't", " stop" })]
    [InlineData("camelCaseWord", new[] { "camel", "Case", "Word" })]
    [InlineData("HTTPServer 2024", new[] { "HTTPServer", " ", "202", "4" })]
    [InlineData("x = 1234567;\n\ny", new[] { "x", " =", " ", "123", "456", "7", ";\n\n", "y" })]
    [InlineData("a/b//c", new[] { "a", "/b", "//", "c" })]
    [InlineData("Größe Maß", new[] { "Größe", " Maß" })]
    public void Splits_as_llama_cpp(string text, string[] pieces)
    {
        Assert.Equal("gpt-4o", PreTokenizer.Resolve("gpt-4o").Kind);
        Assert.False(PreTokenizer.Resolve("gpt-4o").CleanSpaces);
        Assert.Equal(pieces, PreTokenizer.For("gpt-4o").Split(text));
    }
}
