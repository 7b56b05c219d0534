using System.Text.Json;
using Sputnik.Gguf;
using Sputnik.Models;
using Xunit;

namespace Sputnik.Tests.Models;

/// <summary>llama2.c's TinyStories 260K model against a float64 reference forward pass.</summary>
public class Stories260KTests
{
    private static readonly string ModelPath = Fixtures.Model("stories260K.gguf");

    private static JsonElement Golden()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Fixtures.Require(Fixtures.Model("stories260K.golden.json"))));
        return doc.RootElement.Clone();
    }

    private static int[] Ints(JsonElement e) => e.ValueKind == JsonValueKind.String
        ? JsonSerializer.Deserialize<int[]>(e.GetString()!)!
        : e.EnumerateArray().Select(x => x.GetInt32()).ToArray();

    private static LanguageModel Load() => ModelLoader.Load(GgufFile.Open(Fixtures.Require(ModelPath)), threads: 1);

    [Fact]
    public void Logits_after_BOS_match_reference_within_1e_4()
    {
        var expected = Golden().GetProperty("logits_pos0_after_BOS").EnumerateArray().Select(x => x.GetSingle()).ToArray();
        using var model = Load();
        var state = model.CreateState(256, KvCacheType.F32);
        var logits = model.Forward(state, [1]).ToArray();
        Assert.Equal(expected.Length, logits.Length);
        float maxDiff = 0;
        for (int i = 0; i < logits.Length; i++) maxDiff = Math.Max(maxDiff, Math.Abs(logits[i] - expected[i]));
        Assert.True(maxDiff < 1e-4f, $"max |logit diff| = {maxDiff}");
    }

    [Fact]
    public void Greedy_200_tokens_from_BOS_match_reference_tokens()
    {
        var expected = Ints(Golden().GetProperty("bos_greedy_200").GetProperty("tokens"));
        using var model = Load();
        var state = model.CreateState(256, KvCacheType.F32);
        var got = new List<int>();
        int token = 1;
        for (int i = 0; i < expected.Length; i++)
        {
            var logits = model.Forward(state, [token]);
            token = System.Numerics.Tensors.TensorPrimitives.IndexOfMax(logits);
            got.Add(token);
        }
        Assert.Equal(expected, got);
    }
}
