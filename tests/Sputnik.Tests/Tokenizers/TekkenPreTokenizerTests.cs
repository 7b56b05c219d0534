using System.Text.Json;
using Sputnik.Tokenizers;
using Xunit;

namespace Sputnik.Tests.Tokenizers;

/// <summary>Mistral's tekken pre-tokenizer (Ministral 3), as llama.cpp splits it, and its detection in tokenizer.json.</summary>
public class TekkenPreTokenizerTests
{
    [Fact]
    public void Splits_camel_case_single_digits_and_keeps_slash_with_punctuation()
    {
        var pieces = PreTokenizer.For("tekken").Split("HelloWorld's ABCdef 2024 a/b\n\nxÉcoleNormale");
        // Worked through llama.cpp's regex by hand: an uppercase run then a lowercase run per word, no contraction
        // rule ("'s" is punctuation + letters), one digit per piece; É (non-ASCII) counts as either case, so it continues
        // the lowercase run of "x".
        Assert.Equal(["Hello", "World", "'s", " ABCdef", " ", "2", "0", "2", "4", " a", "/b", "\n\n", "xÉcole", "Normale"], pieces);
        // llama3's split of the same text differs (contractions, three-digit numbers, whole CamelCase words).
        Assert.NotEqual(pieces, PreTokenizer.For("llama-bpe").Split("HelloWorld's ABCdef 2024 a/b\n\nxÉcoleNormale"));
        var info = PreTokenizer.Resolve("tekken");
        Assert.Equal(("tekken", false, true, true), (info.Kind, info.CleanSpaces, info.IgnoreMerges, info.AddBos));
    }

    [Fact]
    public void Tokenizer_json_with_the_tekken_split_is_named_tekken()
    {
        var dir = Directory.CreateTempSubdirectory("sputnik-tekken-");
        try
        {
            var vocab = new Dictionary<string, int> { ["a"] = 0, ["b"] = 1, ["ab"] = 2 };
            var json = new
            {
                model = new { type = "BPE", vocab, merges = new[] { "a b" } },
                pre_tokenizer = new
                {
                    type = "Sequence",
                    pretokenizers = new object[]
                    {
                        new { type = "Split", pattern = new { Regex = HfTokenizerJson.TekkenRegex }, behavior = "Isolated", invert = false },
                        new { type = "ByteLevel", add_prefix_space = false, trim_offsets = true, use_regex = false },
                    },
                },
            };
            string path = Path.Combine(dir.FullName, "tokenizer.json");
            File.WriteAllText(path, JsonSerializer.Serialize(json));
            Assert.Equal("tekken", HfTokenizerJson.Load(path).Pre);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
