using System.Diagnostics;
using System.Text;
using Sputnik.Tokenizers;
using Xunit;

namespace Sputnik.Tests.Tokenizers;

public class TokenizerVectorTests
{
    public static TheoryData<string> FixtureNames => new(VocabFixtures.Names);

    private static string Show(string s) => s.Replace("\n", "\\n").Replace("\t", "\\t").Replace("\r", "\\r");

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Every_vector_matches_llama_cpp(string name)
    {
        var tok = VocabFixtures.Get(name);
        var vectors = VocabFixtures.Vectors(name);
        Assert.NotEmpty(vectors);
        var failures = new StringBuilder();
        int failed = 0;
        foreach (var (input, expected) in vectors)
        {
            int[] actual = tok.Encode(input, addBos: false, parseSpecial: false);
            if (actual.AsSpan().SequenceEqual(expected)) continue;
            failed++;
            failures.AppendLine($"input \"{Show(input)}\"\n  expected {string.Join(' ', expected)}\n  actual   {string.Join(' ', actual)}");
        }
        Assert.True(failed == 0, $"{name}: {failed}/{vectors.Count} vectors differ\n{failures}");
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Decode_of_encode_round_trips(string name)
    {
        var tok = VocabFixtures.Get(name);
        var failures = new StringBuilder();
        foreach (var (input, _) in VocabFixtures.Vectors(name))
        {
            string decoded = tok.Decode(tok.Encode(input, addBos: false), cleanSpaces: false);
            if (decoded != input) failures.AppendLine($"\"{Show(input)}\" -> \"{Show(decoded)}\"");
        }
        Assert.True(failures.Length == 0, failures.ToString());
    }

    [Theory]
    [MemberData(nameof(FixtureNames))]
    public void Long_text_round_trips(string name)
    {
        var tok = VocabFixtures.Get(name);
        var sb = new StringBuilder();
        var vectors = VocabFixtures.Vectors(name);
        while (sb.Length < 100_000)
            foreach (var (input, _) in vectors) sb.Append(input).Append(' ');
        sb.Append(new string('!', 5000)).Append(new string('a', 5000)); // long single words
        string text = sb.ToString();
        // Speed is a benchmark matter, not a timed test; a quadratic merge loop would still show here as a very slow suite.
        int[] ids = tok.Encode(text, addBos: false);
        Assert.Equal(text, tok.Decode(ids, cleanSpaces: false));
    }
}
