using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Tokenizers;
using Sputnik.Training;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>Multi-turn and thinking-off samples: rendered exactly as chat renders them, verified, mixed and evaluated.</summary>
public class ConversationTests
{
    private static string BundledModel => Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");

    /// <summary>What ChatSession keeps as the assistant message after generating <paramref name="generated"/> (EOS not included).</summary>
    private static string StoredContent(string generated, bool startsInThinking) => ReasoningParser.Split(generated, startsInThinking).Content;

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TrainingRendersAThreeTurnConversationAsChatDoes(bool lastThinking)
    {
        using var file = GgufFile.Open(BundledModel);
        var tokenizer = Tokenizer.Create(TokenizerData.FromGguf(file));
        string template = file.GetStringOrNull("tokenizer.chat_template") ?? throw new InvalidOperationException("the bundled model has no chat template");
        Assert.Equal(R1Format.ChatTemplate, template); // what GgufExport writes is what the bundled file carries
        var builder = new ChatPromptBuilder(tokenizer, template);
        var task = ReasoningTask.Create("arithmetic");
        var rng = new Random(3);
        var first = task.Sample(rng, heldOut: false);
        var second = task.Sample(rng, heldOut: false);
        var third = task.Sample(rng, heldOut: false);

        // Replay the conversation the way chat holds it: turn 1 thinking, turn 2 with thinking off, turn 3 either way.
        // Each reply is the training target minus EOS, and chat keeps what its reasoning parser calls content.
        var messages = new List<ChatMessage>();
        var turns = new List<ChatTurn>();
        foreach (var (p, thinking) in new[] { (first, true), (second, false) })
        {
            messages.Add(ChatMessage.User(p.Prompt));
            var c = new Conversation(turns.ToArray(), p, thinking);
            var rendered = builder.Build(messages, thinking: thinking);
            Assert.Equal(rendered.Tokens, c.EncodePrompt());
            string generated = c.CompletionText[..^R1Format.Eos.Length];
            string content = StoredContent(generated, rendered.StartsInThinking);
            Assert.Equal(R1Format.HistoryContent(p, thinking), content);
            messages.Add(ChatMessage.Assistant(content));
            turns.Add(new ChatTurn(p.Prompt, content));
        }
        messages.Add(ChatMessage.User(third.Prompt));
        var last = new Conversation(turns, third, lastThinking);
        var prompt = builder.Build(messages, thinking: lastThinking);
        Assert.Equal(prompt.Text, R1Format.Bos + last.PromptText);
        Assert.Equal(prompt.Tokens, last.EncodePrompt());
        Assert.Equal(lastThinking, prompt.StartsInThinking);
        Assert.EndsWith(lastThinking ? "<｜Assistant｜><think>\n" : "<｜Assistant｜><think>\n\n</think>\n\n", last.PromptText);
        Assert.Equal(3, last.PromptText.Split(R1Format.User).Length - 1);
        Assert.Equal(2, last.PromptText.Split(R1Format.Eos).Length - 1);
        Assert.DoesNotContain("</think>", last.PromptText[..last.PromptText.LastIndexOf(R1Format.User, StringComparison.Ordinal)]); // earlier thinking dropped
        Assert.Contains(first.Answer + R1Format.Eos, last.PromptText);
        Assert.Contains(second.Trace, last.PromptText);     // the thinking-off turn worked in the open, and chat keeps that
        Assert.Equal(lastThinking, last.CompletionText.Contains("</think>", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("addition")]
    [InlineData("subtraction")]
    [InlineData("multiplication")]
    [InlineData("countdown")]
    public void ThinkingOffGradesTheWholeAnswerAndRejectsThinkTags(string name)
    {
        var task = ReasoningTask.Create(name);
        var rng = new Random(11);
        for (int i = 0; i < 200; i++)
        {
            var p = task.Sample(rng, heldOut: false);
            string gold = R1Format.NoThinkCompletionText(p);
            Assert.DoesNotContain("<think>", gold);
            Assert.DoesNotContain("</think>", gold);
            Assert.Equal(Grade.Correct, task.Verify(p, gold, thinking: false));
            Assert.Equal(Grade.Malformed, task.Verify(p, gold, thinking: true));                                   // no closed block of its own
            Assert.Equal(Grade.Malformed, task.Verify(p, R1Format.CompletionText(p), thinking: false));            // a think block after thinking was closed
            Assert.Equal(Grade.Malformed, task.Verify(p, "", thinking: false));
            string wrong = p.Task == "countdown" ? "The answer is 1+1." : $"{p.Trace}\nThe answer is {long.Parse(p.Expected) + 1}.";
            Assert.Equal(Grade.WrongAnswer, task.Verify(p, wrong, thinking: false));
        }
    }

    [Fact]
    public void LongestMultiplicationFitsAfterThreeEarlierTurns()
    {
        int context = TrainConfig.Preset("tiny-r1-ds", R1Format.Tokenizer.VocabSize).ContextLength;
        var earlier = Enumerable.Range(0, 3).Select(_ => new ChatTurn("What is the product of 9999 and 999?", "The answer is 9989001.")).ToArray();
        foreach (bool thinking in new[] { true, false })
        {
            var p = new Problem("multiplication", "9999*999", "What is the product of 9999 and 999?", ArithmeticTask.MulTrace(9999, 999), "The answer is 9989001.", "9989001");
            Assert.InRange(ConversationMix.Length(new Conversation(earlier, p, thinking)), 450, context);
        }
    }

    [Fact]
    public void MixWithoutConversationsDrawsTheSingleTurnSamplesOfBefore()
    {
        var task = ReasoningTask.Create("arithmetic");
        var mixed = SftTrainer.Draw(task, new Random(5), 32, 640, ConversationMix.SingleTurn);
        var rng = new Random(5);
        for (int i = 0; i < 32; i++)
        {
            var p = task.Sample(rng, heldOut: false);
            Assert.Equal(R1Format.EncodePrompt(p.Prompt).Concat(R1Format.EncodeCompletion(p)), mixed[i].Ids);
        }
    }

    [Fact]
    public void DefaultMixHasTheAdvertisedSharesAndFitsTheContext()
    {
        var task = ReasoningTask.Create("arithmetic");
        var mix = new ConversationMix();
        int context = TrainConfig.Preset("tiny-r1-ds", R1Format.Tokenizer.VocabSize).ContextLength;
        var rng = new Random(9);
        int n = 3000, multi = 0, off = 0, earlierOff = 0, earlierTotal = 0;
        for (int i = 0; i < n; i++)
        {
            var c = mix.Draw(task, rng, EvalSplit.Train, context);
            Assert.True(ConversationMix.Length(c) <= context || c.Earlier.Count == 0);
            Assert.InRange(c.Earlier.Count, 0, 3);
            Assert.Equal(EvalSplit.Train, ReasoningTask.SplitOf(c.Last.Key));
            if (c.Earlier.Count > 0) multi++;
            if (!c.Thinking) off++;
            earlierTotal += c.Earlier.Count;
            earlierOff += c.Earlier.Count(t => t.AssistantContent.Contains("by columns", StringComparison.Ordinal));
        }
        Assert.InRange((double)multi / n, 0.26, 0.34);       // a few long conversations lose all their earlier turns to the context
        Assert.InRange((double)off / n, 0.17, 0.23);
        Assert.InRange((double)earlierOff / earlierTotal, 0.12, 0.24);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(4)]
    public void EvalConversationsEndInTheEvalSetAfterCorrectEarlierTurnsOfTheSameSplit(int turns)
    {
        var task = ReasoningTask.Create("addition");
        var problems = task.EvalSet(40, split: EvalSplit.Dev);
        var conversations = Evaluation.Conversations(task, problems, turns, thinking: false, EvalSplit.Dev, 640);
        Assert.Equal(problems, conversations.Select(c => c.Last));
        Assert.All(conversations, c => Assert.False(c.Thinking));
        Assert.All(conversations, c => Assert.Equal(turns - 1, c.Earlier.Count));
        var again = Evaluation.Conversations(task, problems, turns, thinking: false, EvalSplit.Dev, 640);
        Assert.Equal(conversations.SelectMany(c => c.Earlier), again.SelectMany(c => c.Earlier));   // a fixed set
        foreach (var t in conversations.SelectMany(c => c.Earlier))
        {
            // every addition phrasing names the operands in order, so the question gives back its key and its sum
            var operands = System.Text.RegularExpressions.Regex.Matches(t.User, @"\d+").Select(m => long.Parse(m.Value)).ToArray();
            Assert.Equal(2, operands.Length);
            Assert.Equal(EvalSplit.Dev, ReasoningTask.SplitOf($"{operands[0]}+{operands[1]}"));
            Assert.Equal($"The answer is {operands[0] + operands[1]}.", t.AssistantContent);   // as a thinking chat keeps a correct reply
        }
        Assert.Throws<ArgumentException>(() => Evaluation.Conversations(task, problems, 0, true, EvalSplit.Dev, 640));
    }
}
