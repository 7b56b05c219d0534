using System.Text.Json.Nodes;
using Sputnik.Inference;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// Speculative decoding in the server's slots: the same answers as without it, llama-server's draft_n and
/// draft_n_accepted in the timings, the totals in /metrics, and a draft model with another vocabulary refused at start.
/// </summary>
public class SpeculationServerTests
{
    private const string Question = """{"model":"m","messages":[{"role":"user","content":"What is 347+2895?"}],"max_tokens":300,"temperature":0}""";

    private static async Task<(string Content, JsonNode Timings)> AskAsync(TestServer server)
    {
        var (status, body, _) = await server.PostAsync("/v1/chat/completions", Question);
        Assert.True(status == 200, body.ToJsonString());
        var message = body["choices"]![0]!["message"]!;
        return ((string?)message["reasoning_content"] + "|" + (string?)message["content"], body["timings"]!);
    }

    [Fact]
    public async Task Slots_speculate_with_ngrams_and_with_a_draft_model_without_changing_the_answer()
    {
        string plain;
        await using (var server = await TestServer.StartAsync(o => o with { ContextLength = 0 }, modelPath: TestServer.BundledModelPath))
        {
            var (content, timings) = await AskAsync(server);
            plain = content;
            Assert.Null(timings["draft_n"]); // as llama-server: no draft counts when nothing was proposed
        }
        Assert.Contains("3242", plain);

        var ngram = new SpeculationOptions { Type = SpeculationType.NgramMod, NgramSize = 3, DraftMax = 8 };
        await using (var server = await TestServer.StartAsync(o => o with { ContextLength = 0, Speculation = ngram }, modelPath: TestServer.BundledModelPath))
        {
            var (content, timings) = await AskAsync(server);
            Assert.Equal(plain, content);
            int drafted = (int)timings["draft_n"]!, accepted = (int)timings["draft_n_accepted"]!;
            Assert.True(drafted > 0, "a reasoning trace that restates its operands proposed nothing");
            Assert.InRange(accepted, 1, drafted);
            string metrics = await server.Client.GetStringAsync("/metrics", TestContext.Current.CancellationToken);
            Assert.Contains($"sputnik_draft_tokens_total {drafted}\n", metrics);
            Assert.Contains($"sputnik_draft_accepted_tokens_total {accepted}\n", metrics);
        }

        // The model as its own draft: every proposal is what the model then picks.
        await using (var server = await TestServer.StartAsync(o => o with { ContextLength = 0, DraftModelPath = TestServer.BundledModelPath, Speculation = new SpeculationOptions { DraftMax = 4 } },
            modelPath: TestServer.BundledModelPath))
        {
            var (content, timings) = await AskAsync(server);
            Assert.Equal(plain, content);
            Assert.True((int)timings["draft_n"]! > 0);
            Assert.Equal((int)timings["draft_n"]!, (int)timings["draft_n_accepted"]!);
        }
    }

    [Fact]
    public async Task A_draft_model_with_another_vocabulary_stops_the_start_with_a_reason()
    {
        var e = await Assert.ThrowsAsync<ArgumentException>(() => TestServer.StartAsync(o => o with { DraftModelPath = TestServer.ModelPath }, modelPath: TestServer.BundledModelPath));
        Assert.Contains("the draft model cannot propose tokens for this model", e.Message);
        Assert.Contains("choose one", Assert.Throws<ArgumentException>(() => new Sputnik.Server.ServerOptions
        {
            ModelPath = "m.gguf", DraftModelPath = "d.gguf", Speculation = new SpeculationOptions { Type = SpeculationType.NgramMod },
        }.Validate()).Message);
    }
}
