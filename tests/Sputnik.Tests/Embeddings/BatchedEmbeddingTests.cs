using Sputnik.Inference;
using Xunit;

namespace Sputnik.Tests.Embeddings;

/// <summary>
/// A batch of inputs packed into one forward pass gives what each input gives alone: rows of different inputs share
/// the matrix products but never each other's attention, and every input starts again at position 0.
/// </summary>
public sealed class BatchedEmbeddingTests
{
    // Lengths around the attention block (16 rows) and the cache tile (64 positions), so blocks and tiles of one
    // input sit next to another input's.
    private static readonly string[] Texts =
    [
        "Hello",
        "The quick brown fox jumps over the lazy dog.",
        string.Join(' ', Enumerable.Range(0, 70).Select(i => $"w{i * 7 % 13}")),
        "a b",
        string.Join(' ', Enumerable.Range(0, 25).Select(i => $"token{i % 5} and more")),
        "Embeddings put similar texts close together.",
    ];

    [Theory]
    [InlineData("qwen3-last")]
    [InlineData("llama-mean")]
    [InlineData("bert-cls")]
    [InlineData("bert-mean")]
    [InlineData("nomic-mean")]
    [InlineData("gemma3-mean")]
    [InlineData("gemma3-mean", 8)]
    public void PackedHiddenStatesEqualEachInputAlone(string which, int maxBatch = 0)
    {
        using var model = SputnikModel.Load(EmbeddingModels.Named(which), new ModelOptions { Threads = 2, ContextLength = 512 });
        var m = model.Model;
        // A small batch gives gemma3's window layers a ring (16 + 8 − 1 rows) shorter than the pack: each input then runs alone.
        if (maxBatch > 0) ((Sputnik.Models.DecoderModel)m).MaxBatch = maxBatch;
        var embedder = new Embedder(m, model.Tokenizer, 512);
        var inputs = Texts.Select(embedder.Tokenize).ToList();
        int dim = m.Config.Dim, total = inputs.Sum(t => t.Length);
        Assert.True(total <= Embedder.PackTokens, $"the texts are {total} tokens; they must fit one pack for this test");

        var packed = new float[total * dim];
        var state = m.CreateState(total, Sputnik.Models.KvCacheType.F32);
        if (maxBatch > 0) Assert.True(state.Cache.HasRing, "the small batch gave no ring");
        m.ForwardHiddenPacked(state, inputs.SelectMany(t => t).ToArray(), inputs.Select(t => t.Length).ToArray(), packed);
        Assert.Equal(0, state.Position); // scratch, left empty

        int at = 0;
        foreach (var tokens in inputs)
        {
            var alone = new float[tokens.Length * dim];
            var own = m.CreateState(tokens.Length, Sputnik.Models.KvCacheType.F32);
            m.ForwardHidden(own, tokens, alone);
            double worst = 0;
            for (int j = 0; j < alone.Length; j++) worst = Math.Max(worst, Math.Abs(alone[j] - packed[at * dim + j]));
            Assert.True(worst <= 1e-4, $"input of {tokens.Length} tokens at row {at}: hidden states differ by up to {worst}");
            at += tokens.Length;
        }
    }

    [Theory]
    [InlineData("qwen3-last")]
    [InlineData("bert-mean")]
    public void EmbedAllPacksInputsAndMatchesOneByOne(string which)
    {
        using var model = SputnikModel.Load(EmbeddingModels.Named(which), new ModelOptions { Threads = 2, ContextLength = 512 });
        var batchEmbedder = new Embedder(model.Model, model.Tokenizer, 512);
        // Enough inputs for several packs, the long one alone in none of them.
        var inputs = Enumerable.Range(0, 5).SelectMany(_ => Texts).Select(batchEmbedder.Tokenize).ToList();
        int first = batchEmbedder.PackSize(inputs, 0);
        Assert.InRange(first, 3, inputs.Count - 1); // several inputs per pass, and more than one pass
        Assert.True(inputs.Take(first).Sum(t => t.Length) <= Embedder.PackTokens);
        Assert.True(inputs.Take(first + 1).Sum(t => t.Length) > Embedder.PackTokens);

        var batched = new float[inputs.Count][];
        batchEmbedder.EmbedAll(inputs, batched);
        var oneByOne = new Embedder(model.Model, model.Tokenizer, 512);
        for (int i = 0; i < inputs.Count; i++)
        {
            var alone = new float[oneByOne.Dimensions];
            oneByOne.Embed(inputs[i], alone);
            double cosine = EmbeddingModels.Cosine(alone, batched[i]);
            Assert.True(cosine >= 0.999999, $"input {i}: cosine {cosine:F8} between batched and alone");
            Assert.Equal(1.0, Math.Sqrt(batched[i].Sum(x => (double)x * x)), 5);
        }
        // The same text at different places in different packs: the same vector.
        Assert.True(EmbeddingModels.Cosine(batched[0], batched[Texts.Length]) >= 0.999999);
        Assert.True(EmbeddingModels.Cosine(batched[0], batched[1]) < 0.999, "two different texts gave the same embedding");
    }

    [Fact]
    public void PackedArgumentsAreChecked()
    {
        using var model = SputnikModel.Load(EmbeddingModels.BertCls(), new ModelOptions { Threads = 1, ContextLength = 512 });
        var m = model.Model;
        var state = m.CreateState(8);
        var hidden = new float[16 * m.Config.Dim];
        Assert.Throws<ArgumentException>(() => m.ForwardHiddenPacked(state, [101, 5, 102], [2], hidden));           // lengths ≠ tokens
        Assert.Throws<ArgumentException>(() => m.ForwardHiddenPacked(state, [101, 5, 102], [3, 0], hidden));        // an empty sequence
        Assert.Throws<InvalidOperationException>(() => m.ForwardHiddenPacked(state, new int[9], [9], hidden));     // past the capacity
        Assert.Throws<ArgumentOutOfRangeException>(() => m.ForwardHiddenPacked(state, [101, 99999], [2], hidden)); // not a token
        // An encoder has no next-token logits.
        Assert.Contains("embedding model", Assert.Throws<NotSupportedException>(() => m.Forward(m.CreateState(8), [101, 5])).Message);
        Assert.True(m.IsEmbeddingOnly);
    }
}
