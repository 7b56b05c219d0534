using System.Text.Json;
using Sputnik.Inference;
using Sputnik.Tests.Library;
using Xunit;

namespace Sputnik.Tests.Embeddings;

/// <summary>
/// Sputnik's embeddings against llama.cpp's, both from the same tokens: node-llama-cpp's LlamaEmbeddingContext (its
/// prebuilt CPU library, installed under /tmp/nlc as bench/check-llamacpp.sh uses it) embeds each input, pooling as
/// the GGUF's &lt;arch&gt;.pooling_type says. Skipped where /tmp/nlc is absent.
/// </summary>
public sealed class LlamaCppEmbeddingTests
{
    private static readonly string Nlc = Environment.GetEnvironmentVariable("LLAMACPP_NPM") ?? "/tmp/nlc";

    private static readonly string[] Texts =
    [
        "Hello",
        "The quick brown fox jumps over the lazy dog.",
        "Embeddings put similar texts close together; a reranker scores pairs instead.",
        string.Join(' ', Enumerable.Range(0, 40).Select(i => $"w{i * 7 % 13}")),
        "Café DÉJÀ-vu: ¿Qué? 東京 costs $5 & more\tthan\u00a0that!",
    ];

    [Theory]
    [InlineData("qwen3-last")]
    [InlineData("llama-mean")]
    [InlineData("bert-cls")]
    [InlineData("bert-mean")]
    [InlineData("nomic-mean")]
    public void MatchesLlamaCpp(string which)
    {
        string package = Path.Combine(Nlc, "node_modules", "node-llama-cpp", "dist", "index.js");
        if (!File.Exists(package)) Assert.Skip($"node-llama-cpp is not installed under {Nlc} (npm install node-llama-cpp there, or set LLAMACPP_NPM)");
        string path = EmbeddingModels.Named(which);
        bool bert = which.StartsWith("bert", StringComparison.Ordinal) || which.StartsWith("nomic", StringComparison.Ordinal);

        using var model = SputnikModel.Load(path, new ModelOptions { ContextLength = 256, Threads = 2, KvType = global::Sputnik.Models.KvCacheType.F32 });
        var embedder = new Embedder(model.Model, model.Tokenizer, model.ContextLength, global::Sputnik.Models.KvCacheType.F32);
        var expectedPooling = which switch
        {
            "qwen3-last" => EmbeddingPooling.Last,
            "bert-cls" => EmbeddingPooling.Cls,
            _ => EmbeddingPooling.Mean,
        };
        Assert.Equal(expectedPooling, embedder.Pooling);
        var tokens = Texts.Select(embedder.Tokenize).ToList();
        if (which == "qwen3-last") Assert.All(tokens, t => Assert.Equal(model.Tokenizer.EosId, t[^1])); // add_eos_token
        if (bert) Assert.All(tokens, t => Assert.Equal((101, 102), (t[0], t[^1])));                       // [CLS] … [SEP]
        // All inputs at once, as the server and the generator run them: packed into one forward pass.
        var ours = new float[tokens.Count][];
        Assert.Equal(tokens.Count, embedder.PackSize(tokens, 0));
        embedder.EmbedAll(tokens, ours);

        string dir = Directory.CreateTempSubdirectory("sputnik-nlc-").FullName;
        try
        {
            string script = Path.Combine(dir, "embed.mjs");
            File.WriteAllText(script, $$"""
                import { getLlama } from {{JsonSerializer.Serialize(package)}};
                import { readFileSync } from "node:fs";
                const inputs = JSON.parse(readFileSync(process.argv[3], "utf8"));
                const llama = await getLlama({ gpu: false, build: "never", logLevel: "error" });
                const model = await llama.loadModel({ modelPath: process.argv[2] });
                const context = await model.createEmbeddingContext({ contextSize: 256, threads: 2 });
                const out = [];
                for (const tokens of inputs.tokens) out.push(Array.from((await context.getEmbeddingFor(tokens)).vector));
                const words = inputs.texts.map(t => Array.from(model.tokenize(t)));
                console.log(JSON.stringify({ embeddings: out, tokens: words }));
                await context.dispose(); await model.dispose(); await llama.dispose();
                """);
            string input = Path.Combine(dir, "tokens.json");
            File.WriteAllText(input, JsonSerializer.Serialize(new { tokens, texts = Texts }));
            var r = ProcessRunner.Run(ProcessRunner.Info("node", [script, path, input], dir), TimeSpan.FromMinutes(3));
            Assert.True(r.ExitCode == 0, r.ToString());
            var answer = JsonSerializer.Deserialize<LlamaCppAnswer>(r.StdOut.Trim().Split('\n')[^1], new JsonSerializerOptions { PropertyNameCaseInsensitive = true })!;
            var theirs = answer.Embeddings;
            // The tokenizer first (without special tokens, as llama_tokenize(add_special: false)): WordPiece is new here.
            for (int i = 0; i < Texts.Length; i++)
                Assert.Equal(answer.Tokens[i], model.Tokenizer.Encode(Texts[i], addBos: false));
            Assert.Equal(Texts.Length, theirs.Length);
            // Not one vector for everything: the inputs' embeddings differ, in llama.cpp as here.
            Assert.True(EmbeddingModels.Cosine(theirs[0], theirs[1]) < 0.99, "llama.cpp gave the first two inputs the same embedding");
            for (int i = 0; i < Texts.Length; i++)
            {
                Assert.Equal(embedder.Dimensions, theirs[i].Length);
                double cosine = EmbeddingModels.Cosine(ours[i], theirs[i]);
                TestContext.Current.TestOutputHelper?.WriteLine($"{which} input {i} ({tokens[i].Length} tokens): cosine {cosine:F7}");
                Assert.True(cosine >= 0.9999, $"input {i} ({tokens[i].Length} tokens): cosine {cosine:F6} with llama.cpp");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

internal sealed record LlamaCppAnswer(float[][] Embeddings, int[][] Tokens);
