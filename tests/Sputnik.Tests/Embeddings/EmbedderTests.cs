using System.Text.Json.Nodes;
using Microsoft.Extensions.AI;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Tests.Tools;
using Xunit;

namespace Sputnik.Tests.Embeddings;

/// <summary>Pooling as the GGUF says, one reused KV cache for many inputs, the IEmbeddingGenerator and `sputnik embed`.</summary>
public sealed class EmbedderTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Theory]
    [InlineData(null, "Mean")]
    [InlineData(0u, "Mean")]
    [InlineData(1u, "Mean")]
    [InlineData(2u, "Cls")]
    [InlineData(3u, "Last")]
    public void PoolingComesFromTheFile(uint? key, string expected)
    {
        string path = key is { } k ? EmbeddingModels.Synth("llama-tiny", $"pool{k}", ("llama.pooling_type", GgufValue.Of(k))) : EmbeddingModels.Synth("llama-tiny", "plain");
        using var file = GgufFile.Open(path);
        Assert.Equal(expected, Embedder.PoolingOf(file, "llama").ToString());
    }

    [Fact]
    public void RerankersAndUnknownPoolingAreRefused()
    {
        using (var rank = GgufFile.Open(EmbeddingModels.Synth("llama-tiny", "pool4", ("llama.pooling_type", GgufValue.Of(4u)))))
            Assert.Contains("reranker", Assert.Throws<NotSupportedException>(() => Embedder.PoolingOf(rank, "llama")).Message);
        using var odd = GgufFile.Open(EmbeddingModels.Synth("llama-tiny", "pool9", ("llama.pooling_type", GgufValue.Of(9u))));
        Assert.Contains("llama.pooling_type", Assert.Throws<GgufFormatException>(() => Embedder.PoolingOf(odd, "llama")).Message);
    }

    [Fact]
    public void PoolingPicksTheRowsItNames()
    {
        string[] texts = ["a b c d", "hello world"];
        foreach (var (tag, pooling) in new[] { ("pool2", 2u), ("pool3", 3u), ("pool1", 1u) })
        {
            using var model = SputnikModel.Load(EmbeddingModels.Synth("llama-tiny", tag, ("llama.pooling_type", GgufValue.Of(pooling))), new ModelOptions { Threads = 1, ContextLength = 64 });
            var embedder = new Embedder(model.Model, model.Tokenizer, 64);
            foreach (string text in texts)
            {
                int[] tokens = embedder.Tokenize(text);
                int dim = embedder.Dimensions;
                var hidden = new float[tokens.Length * dim];
                var state = model.Model.CreateState(64);
                model.Model.ForwardHidden(state, tokens, hidden);
                var expected = new float[dim];
                for (int j = 0; j < dim; j++)
                    expected[j] = pooling switch
                    {
                        2 => hidden[j],
                        3 => hidden[(tokens.Length - 1) * dim + j],
                        _ => Enumerable.Range(0, tokens.Length).Sum(i => hidden[i * dim + j]) / tokens.Length,
                    };
                var got = new float[dim];
                embedder.Embed(tokens, got, normalize: false);
                // the mean sums in another order; a tolerance, not rounding to 4 places (-1.6800499 and -1.6800500 round apart)
                for (int j = 0; j < dim; j++) Assert.Equal(expected[j], got[j], 1e-4f);
                embedder.Embed(tokens, got);
                Assert.Equal(1.0, Math.Sqrt(got.Sum(x => (double)x * x)), 5);
            }
        }
    }

    [Fact]
    public void ReusingTheCacheDoesNotLeakOneInputIntoTheNext()
    {
        using var model = SputnikModel.Load(EmbeddingModels.Qwen3LastToken(), new ModelOptions { Threads = 1, ContextLength = 512 });
        int[] shortInput = new Embedder(model.Model, model.Tokenizer, 512).Tokenize("short text");
        var fresh = new Embedder(model.Model, model.Tokenizer, 512);
        var alone = new float[fresh.Dimensions];
        fresh.Embed(shortInput, alone);

        var reused = new Embedder(model.Model, model.Tokenizer, 512);
        var scratch = new float[reused.Dimensions];
        reused.Embed(reused.Tokenize("a b"), scratch);                                                   // small cache first
        reused.Embed(reused.Tokenize(string.Join(' ', Enumerable.Repeat("longer input", 40))), scratch); // grows it
        var after = new float[reused.Dimensions];
        reused.Embed(shortInput, after);
        Assert.Equal(alone, after);
        Assert.Throws<ArgumentException>(() => reused.Embed(new int[513], after));
    }

    [Fact]
    public async Task TheEmbeddingGeneratorIsMicrosoftExtensionsAi()
    {
        using var model = SputnikModel.Load(EmbeddingModels.Qwen3LastToken(), new ModelOptions { Threads = 1, ContextLength = 256 });
        IEmbeddingGenerator<string, Embedding<float>> generator = model.AsEmbeddingGenerator("qwen3-embed");
        var result = await generator.GenerateAsync(["first text", "second, longer text", "first text"], cancellationToken: Ct);
        Assert.Equal(3, result.Count);
        Assert.All(result, e => Assert.Equal((256, "qwen3-embed"), (e.Dimensions, e.ModelId)));
        Assert.Equal(result[0].Vector.ToArray(), result[2].Vector.ToArray());
        Assert.True(EmbeddingModels.Cosine(result[0].Vector.Span, result[1].Vector.Span) < 0.999);
        var embedder = new Embedder(model.Model, model.Tokenizer, 256);
        Assert.Equal(new[] { "first text", "second, longer text", "first text" }.Sum(t => embedder.Tokenize(t).Length), result.Usage!.InputTokenCount);

        var shorter = await generator.GenerateAsync(["first text"], new EmbeddingGenerationOptions { Dimensions = 32 }, Ct);
        Assert.Equal(32, shorter[0].Dimensions);
        Assert.Equal(1.0, Math.Sqrt(shorter[0].Vector.ToArray().Sum(x => (double)x * x)), 5);
        Assert.Equal(256, generator.GetService<EmbeddingGeneratorMetadata>()!.DefaultModelDimensions);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => generator.GenerateAsync(["x"], new EmbeddingGenerationOptions { Dimensions = 257 }, Ct));
        await Assert.ThrowsAsync<ArgumentException>(() => generator.GenerateAsync([string.Join(' ', Enumerable.Repeat("word", 400))], cancellationToken: Ct));
    }

    [Fact]
    public async Task TheCliPrintsOpenAiShapedJson()
    {
        string path = EmbeddingModels.Qwen3LastToken();
        var json = JsonNode.Parse(CliHarness.Ok("embed", "-m", path, "-t", "1", "first text", "second text", "--dimensions", "8"))!;
        var data = json["data"]!.AsArray();
        Assert.Equal(2, data.Count);
        Assert.All(data, d => Assert.Equal(8, d!["embedding"]!.AsArray().Count));
        Assert.Equal(1, (int)data[1]!["index"]!);
        Assert.True((int)json["usage"]!["prompt_tokens"]! > 4);

        using var model = SputnikModel.Load(path, new ModelOptions { Threads = 1 });
        var library = await model.AsEmbeddingGenerator().GenerateAsync(["first text"], new EmbeddingGenerationOptions { Dimensions = 8 }, Ct);
        Assert.Equal(library[0].Vector.ToArray(), data[0]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray());

        var bad = CliHarness.Run("embed", "-m", path, "x", "--dimensions", "9999");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--dimensions", bad.Err);
        Assert.Equal(1, CliHarness.Run("embed", "-m", path).ExitCode); // no text
    }
}
