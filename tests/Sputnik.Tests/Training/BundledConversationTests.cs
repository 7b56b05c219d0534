using System.Text.Json.Nodes;
using Sputnik.Inference;
using Sputnik.Tests.Cli;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>The bundled model holds a conversation: later questions see the earlier turns, and thinking can be turned off.</summary>
public class BundledConversationTests
{
    private static string BundledModel => Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");

    // Three kinds of question; the answers are checked, not the wording of the working. The model gets 99 % of test
    // questions right, so these are questions it answers (565 * 588 is one it gets wrong: 25+88=103 in column k2).
    private static readonly (string Question, string Answer)[] Conversation =
    [
        ("What is 347 * 28?", "The answer is 9716."),
        ("What is 52 - 347?", "The answer is -295."),
        ("Add 4721 and 368.", "The answer is 5089."),
    ];

    [Fact]
    public async Task ChatSessionAnswersThreeQuestionsInOneConversationThenOneWithThinkingOff()
    {
        using var model = SputnikModel.Load(BundledModel, new ModelOptions { Threads = 1 });
        var chat = model.CreateChat(new ChatOptions { Sampling = SamplingOptions.Greedy });
        foreach (var (question, answer) in Conversation)
        {
            var reply = await chat.AskAsync(question);
            Assert.Equal(answer, reply.Content);                       // with thinking on the answer is one line
            Assert.Contains("by columns", reply.Reasoning);            // and the working is thinking
            Assert.Equal(FinishReason.Stop, reply.FinishReason);
        }
        Assert.Equal(6, chat.Messages.Count);                         // every turn stayed in the conversation

        chat.Options = chat.Options with { Thinking = false };
        var open = await chat.AskAsync("What is 738 * 46?");
        Assert.Null(open.Reasoning);                                   // no <think> content
        Assert.StartsWith("738*46, by columns:", open.Content);         // the working is shown in the answer
        Assert.EndsWith("The answer is 33948.", open.Content);
        Assert.Equal(FinishReason.Stop, open.FinishReason);
    }

    [Fact]
    public void PipedChatAnswersEveryLineOfAConversation()
    {
        string input = string.Join("\n", Conversation.Select(c => c.Question)) + "\n/think off\nWhat is 738 * 46?\n";
        var r = CliRunner.RunWithInput(input, "chat", "--temp", "0", "-t", "1");
        Assert.True(r.ExitCode == 0, r.StdErr);
        int at = 0;
        foreach (string answer in Conversation.Select(c => c.Answer).Append("The answer is 33948."))
        {
            int i = r.StdOut.IndexOf(answer, at, StringComparison.Ordinal);
            Assert.True(i >= 0, $"'{answer}' missing after position {at} of:\n{r.StdOut}");
            at = i + answer.Length;
        }
    }

    [Fact]
    public void EvalReportsTurnsAndThinkingInItsJson()
    {
        var r = CliRunner.Run("eval", "--task", "addition", "--n", "8", "--turns", "3", "--no-think", "--json", "-t", "1");
        Assert.True(r.ExitCode == 0, r.StdErr);
        var j = JsonNode.Parse(r.StdOut)!.AsObject();
        foreach (var key in new[] { "task", "n", "pass_at_1", "pass_at_k", "k", "mean_think_tokens" }) Assert.True(j.ContainsKey(key), key); // unchanged fields
        Assert.Equal(3, (int)j["turns"]!);
        Assert.False((bool)j["thinking"]!);
        Assert.Equal(0.0, (double)j["mean_think_tokens"]!);
        Assert.True((double)j["mean_completion_tokens"]! > 20, r.StdOut);     // additions are worked in the open
        Assert.True((double)j["pass_at_1"]! >= 0.75, r.StdOut);

        var single = CliRunner.Run("eval", "--task", "addition", "--n", "4", "--json", "-t", "1");
        Assert.True(single.ExitCode == 0, single.StdErr);
        var s = JsonNode.Parse(single.StdOut)!.AsObject();
        Assert.Equal(1, (int)s["turns"]!);
        Assert.True((bool)s["thinking"]!);

        var text = CliRunner.Run("eval", "--task", "addition", "--n", "4", "--turns", "2", "--no-think", "-t", "1");
        Assert.True(text.ExitCode == 0, text.StdErr);
        Assert.Contains("last of 2 turns thinking off", text.StdOut);
    }

    [Theory]
    [InlineData("--turns", "0")]
    [InlineData("--turns", "-2")]
    public void EvalRejectsTurnsBelowOne(string flag, string value)
    {
        var r = CliRunner.Run("eval", "--task", "addition", "--n", "2", flag, value);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("--turns", r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr);
    }

    [Theory]
    [InlineData("--multi-turn", "1.5")]
    [InlineData("--no-think", "-0.1")]
    public void TrainRejectsMixFractionsOutsideZeroToOne(string flag, string value)
    {
        var r = CliRunner.Run("train", "sft", "--out", Path.Combine(Path.GetTempPath(), $"sputnik-mix-{Guid.NewGuid():N}"), "--steps", "1", flag, value);
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains(flag, r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr);
    }
}
