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
    ];

    [Theory]
    [InlineData("qwen3-last")]
    [InlineData("llama-mean")]
    public void MatchesLlamaCpp(string which)
    {
        string package = Path.Combine(Nlc, "node_modules", "node-llama-cpp", "dist", "index.js");
        if (!File.Exists(package)) Assert.Skip($"node-llama-cpp is not installed under {Nlc} (npm install node-llama-cpp there, or set LLAMACPP_NPM)");
        string path = which == "qwen3-last" ? EmbeddingModels.Qwen3LastToken() : EmbeddingModels.LlamaMean();

        using var model = SputnikModel.Load(path, new ModelOptions { ContextLength = 256, Threads = 2, KvType = global::Sputnik.Models.KvCacheType.F32 });
        var embedder = new Embedder(model.Model, model.Tokenizer, model.ContextLength, global::Sputnik.Models.KvCacheType.F32);
        Assert.Equal(which == "qwen3-last" ? EmbeddingPooling.Last : EmbeddingPooling.Mean, embedder.Pooling);
        var tokens = Texts.Select(embedder.Tokenize).ToList();
        if (which == "qwen3-last") Assert.All(tokens, t => Assert.Equal(model.Tokenizer.EosId, t[^1])); // add_eos_token
        var ours = tokens.Select(t =>
        {
            var v = new float[embedder.Dimensions];
            embedder.Embed(t, v);
            return v;
        }).ToList();

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
                for (const tokens of inputs) out.push(Array.from((await context.getEmbeddingFor(tokens)).vector));
                console.log(JSON.stringify(out));
                await context.dispose(); await model.dispose(); await llama.dispose();
                """);
            string input = Path.Combine(dir, "tokens.json");
            File.WriteAllText(input, JsonSerializer.Serialize(tokens));
            var r = ProcessRunner.Run(ProcessRunner.Info("node", [script, path, input], dir), TimeSpan.FromMinutes(3));
            Assert.True(r.ExitCode == 0, r.ToString());
            var theirs = JsonSerializer.Deserialize<float[][]>(r.StdOut.Trim().Split('\n')[^1])!;
            Assert.Equal(Texts.Length, theirs.Length);
            // Not one vector for everything: the inputs' embeddings differ, in llama.cpp as here.
            Assert.True(EmbeddingModels.Cosine(theirs[0], theirs[1]) < 0.99, "llama.cpp gave the first two inputs the same embedding");
            for (int i = 0; i < Texts.Length; i++)
            {
                Assert.Equal(embedder.Dimensions, theirs[i].Length);
                double cosine = EmbeddingModels.Cosine(ours[i], theirs[i]);
                Assert.True(cosine >= 0.9999, $"input {i} ({tokens[i].Length} tokens): cosine {cosine:F6} with llama.cpp");
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
