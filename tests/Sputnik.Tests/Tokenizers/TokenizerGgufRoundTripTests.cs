using Sputnik.Gguf;
using Sputnik.Tokenizers;
using Xunit;

namespace Sputnik.Tests.Tokenizers;

public class TokenizerGgufRoundTripTests
{
    [Fact]
    public void WriteTo_is_the_inverse_of_FromGguf_for_a_real_vocabulary()
    {
        var original = TokenizerData.FromGguf(Fixtures.Require(Fixtures.Tokenizer("ggml-vocab-llama-spm.gguf"))) with
        {
            EotId = 7, EomId = 8, PadId = 9, AddEos = true, AddSpacePrefix = false,
        };
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-tok-{Guid.NewGuid():N}.gguf");
        try
        {
            var w = new GgufWriter().Set("general.architecture", "llama");
            original.WriteTo(w);
            w.Write(path);
            var back = TokenizerData.FromGguf(path);
            Assert.Equal(original.Model, back.Model);
            Assert.Equal(original.Pre, back.Pre);
            Assert.Equal(original.Tokens, back.Tokens);
            Assert.Equal(original.Scores, back.Scores);
            Assert.Equal(original.TokenTypes, back.TokenTypes);
            Assert.Equal(original.Merges, back.Merges);
            Assert.Equal((original.BosId, original.EosId, original.UnknownId, original.PadId, original.EotId, original.EomId),
                (back.BosId, back.EosId, back.UnknownId, back.PadId, back.EotId, back.EomId));
            Assert.Equal((original.AddBos, original.AddEos, original.AddSpacePrefix), (back.AddBos, back.AddEos, back.AddSpacePrefix));
            string text = "Hello world, ünïcode ✓";
            Assert.Equal(Tokenizer.Create(original).Encode(text), Tokenizer.Create(back).Encode(text));
        }
        finally
        {
            File.Delete(path);
        }
    }
}
