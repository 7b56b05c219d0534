using System.Text.Json;
using System.Text.Json.Nodes;
using Sputnik.Inference;
using Sputnik.Tests.Server;
using Sputnik.Tests.Tools;
using Xunit;

namespace Sputnik.Tests.Embeddings;

/// <summary>A bert encoder through `sputnik embed` and the server: embeddings served, chat and completions refused with a 400.</summary>
public sealed class EncoderServingTests
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task TheServerEmbedsWithAnEncoderAndRefusesToChat()
    {
        string path = EmbeddingModels.BertCls();
        await using var s = await TestServer.StartAsync(modelPath: path);
        var (status, json, _) = await s.PostAsync("/v1/embeddings", """{"model":"bert","input":["Hello, world!","A second text","Hello, world!"]}""");
        Assert.Equal(200, status);
        var vectors = json["data"]!.AsArray().Select(d => d!["embedding"]!.AsArray().Select(x => (float)x!).ToArray()).ToList();
        Assert.Equal(3, vectors.Count);
        Assert.All(vectors, v => Assert.Equal(128, v.Length));
        Assert.Equal(vectors[0], vectors[2]);
        Assert.True(EmbeddingModels.Cosine(vectors[0], vectors[1]) < 0.999);

        // The library gives the same vector.
        using (var model = SputnikModel.Load(path, new ModelOptions { Threads = 1, ContextLength = 512 }))
        {
            var library = await model.AsEmbeddingGenerator().GenerateAsync(["A second text"], cancellationToken: Ct);
            Assert.True(EmbeddingModels.Cosine(library[0].Vector.Span, vectors[1]) >= 0.99999);
        }

        var ollama = await s.PostAsync("/api/embed", """{"model":"bert","input":"Hello, world!"}""");
        Assert.Equal(200, ollama.Status);
        Assert.True(EmbeddingModels.Cosine(ollama.Body["embeddings"]![0]!.AsArray().Select(x => (float)x!).ToArray(), vectors[0]) >= 0.99999);

        foreach (var (route, body) in new[]
                 {
                     ("/v1/chat/completions", """{"model":"bert","messages":[{"role":"user","content":"hi"}],"max_tokens":4}"""),
                     ("/v1/completions", """{"model":"bert","prompt":"hi","max_tokens":4}"""),
                     ("/api/chat", """{"model":"bert","messages":[{"role":"user","content":"hi"}],"stream":false}"""),
                     ("/api/generate", """{"model":"bert","prompt":"hi","stream":false}"""),
                 })
        {
            var (code, error, _) = await s.PostAsync(route, body);
            Assert.Equal(400, code);
            var err = error["error"]!;
            string message = err is JsonObject openAi ? (string)openAi["message"]! : (string)err!; // OpenAI's object, Ollama's string
            Assert.Contains("is an embedding model", message);
        }
        // Ollama cuts a long input to the context, keeping the closing [SEP].
        var cut = await s.PostAsync("/api/embed", JsonSerializer.Serialize(new { model = "bert", input = string.Join(' ', Enumerable.Repeat("once upon a time", 300)) }));
        Assert.Equal(200, cut.Status);
        Assert.Equal(512, (int)cut.Body["prompt_eval_count"]!);
        var show = await s.PostAsync("/api/show", """{"model":"bert"}""");
        Assert.Equal(["embedding"], show.Body["capabilities"]!.AsArray().Select(c => (string)c!).ToArray());
        // The refusals left the server working.
        Assert.Equal(200, (await s.PostAsync("/v1/embeddings", """{"input":"still here"}""")).Status);
    }

    [Fact]
    public void TheCliEmbedsWithAnEncoder()
    {
        string path = EmbeddingModels.BertMean();
        var json = JsonNode.Parse(CliHarness.Ok("embed", "-m", path, "-t", "1", "first text", "second text"))!;
        var data = json["data"]!.AsArray();
        Assert.Equal(2, data.Count);
        var first = data[0]!["embedding"]!.AsArray().Select(x => (float)x!).ToArray();
        Assert.Equal(128, first.Length);
        Assert.Equal(1.0, Math.Sqrt(first.Sum(x => (double)x * x)), 4);

        using var model = SputnikModel.Load(path, new ModelOptions { Threads = 1 });
        var embedder = new Embedder(model.Model, model.Tokenizer, model.ContextLength);
        Assert.Equal(EmbeddingPooling.Mean, embedder.Pooling);
        var alone = new float[128];
        embedder.Embed(embedder.Tokenize("first text"), alone);
        Assert.True(EmbeddingModels.Cosine(alone, first) >= 0.99999);
        Assert.Equal(new[] { "first text", "second text" }.Sum(t => embedder.Tokenize(t).Length), (int)json["usage"]!["prompt_tokens"]!);
    }
}
