using System.Globalization;
using System.Text.Json.Nodes;
using Sputnik.Inference;
using Sputnik.Tests.Cli;
using Sputnik.Training;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>
/// `sputnik generate` (rejection sampling from a teacher) and `train sft --data` (OpenAI fine-tuning lines): only
/// verified lines are written, output appears whole or not at all, bad input is one clear line, and a generated line
/// trains on exactly the tokens the task's own trainer builds.
/// </summary>
public class DistillationTests
{
    private static string BundledModel => Path.Combine(Fixtures.RepoRoot, "models", "sputnik-r1-tiny.gguf");

    private static string TempDir()
    {
        string dir = Path.Combine(Path.GetTempPath(), $"sputnik-distill-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static ChatPromptBuilder R1Chat => new(R1Format.Tokenizer, R1Format.ChatTemplate);

    [Fact]
    public void GenerateWritesOnlyVerifiedLinesAndTheirReferences()
    {
        string dir = TempDir();
        try
        {
            string outPath = Path.Combine(dir, "teacher.jsonl"), refPath = Path.Combine(dir, "reference.jsonl");
            // T 1.5 on the bundled model: hot enough that many samples go wrong, so the filter has something to reject
            var r = CliRunner.Run("generate", "--task", "arithmetic", "--n", "16", "--samples", "3", "--temperature", "1.5",
                "--out", outPath, "--reference-out", refPath, "--json", "-t", "2");
            Assert.True(r.ExitCode == 0, r.StdErr);
            var stats = JsonNode.Parse(r.StdOut)!.AsObject();
            int accepted = (int)stats["accepted"]!, rejected = (int)stats["wrong"]! + (int)stats["malformed"]! + (int)stats["unfinished"]!;
            Assert.Equal(48, (int)stats["samples"]!);
            Assert.Equal(48, accepted + rejected);
            Assert.True(accepted > 0 && rejected > 0, r.StdOut);

            var task = ReasoningTask.Create("arithmetic");
            var byPrompt = Distillation.Problems(task, 16, EvalSplit.Train, seed: 1).ToDictionary(p => p.Prompt);
            var lines = File.ReadAllLines(outPath);
            var references = File.ReadAllLines(refPath);
            Assert.Equal(accepted, lines.Length);
            Assert.Equal(accepted, references.Length);
            for (int i = 0; i < lines.Length; i++)
            {
                var messages = ChatDataset.ParseLine(lines[i], $"line {i + 1}");
                Assert.Equal(["user", "assistant"], messages.Select(m => m.Role));
                var problem = byPrompt[messages[0].Content!];
                Assert.Equal(EvalSplit.Train, ReasoningTask.SplitOf(problem.Key));
                Assert.StartsWith("<think>\n", messages[1].Content, StringComparison.Ordinal);
                Assert.Equal(Grade.Correct, task.Verify(problem, messages[1].Content!));
                var reference = ChatDataset.ParseLine(references[i], $"reference line {i + 1}");
                Assert.Equal(messages[0].Content, reference[0].Content);
                Assert.Equal(Distillation.ReferenceContent(problem), reference[1].Content);
            }
            Assert.Equal(lines.Count(l => references.Contains(l)), (int)stats["same_as_reference"]!);
            Assert.Equal(["reference.jsonl", "teacher.jsonl"], Directory.GetFiles(dir).Select(Path.GetFileName).Order());   // no temporary files left
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void AFailedOrCancelledGenerationLeavesTheEarlierFileAsItWas()
    {
        string dir = TempDir();
        try
        {
            string outPath = Path.Combine(dir, "data.jsonl");
            File.WriteAllText(outPath, "earlier\n");
            using var engine = new RolloutEngine(BundledModel, 1);
            using var cts = new CancellationTokenSource();
            var o = new DistillOptions { Problems = 6, Samples = 2, ChunkSamples = 4, Temperature = 0.7f };
            int chunks = 0;
            Assert.ThrowsAny<OperationCanceledException>(() => Distillation.WriteAtomically([outPath], w =>
                Distillation.Generate(engine, ReasoningTask.Create("addition"), o, w[0], progress: (_, _, _) => { chunks++; cts.Cancel(); }, ct: cts.Token)));
            Assert.Equal(1, chunks);                                                   // it had written a chunk's lines before the stop
            Assert.Equal("earlier\n", File.ReadAllText(outPath));
            Assert.Equal(["data.jsonl"], Directory.GetFiles(dir).Select(Path.GetFileName));

            Assert.Throws<InvalidOperationException>(() => Distillation.WriteAtomically<int>([outPath], w =>
            {
                w[0].WriteLine("half");
                throw new InvalidOperationException("stop");
            }));
            Assert.Equal("earlier\n", File.ReadAllText(outPath));
            Assert.Equal(["data.jsonl"], Directory.GetFiles(dir).Select(Path.GetFileName));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("unknown task 'bogus'", "--task", "bogus", "--out", "{dir}/a.jsonl")]
    [InlineData("--samples", "--samples", "0", "--out", "{dir}/a.jsonl")]
    [InlineData("cannot write /nonexistent-dir/a.jsonl", "--out", "/nonexistent-dir/a.jsonl")]
    [InlineData("unknown split 'validation'", "--split", "validation", "--out", "{dir}/a.jsonl")]
    [InlineData("teacher model not found", "--teacher", "{dir}/missing.gguf", "--out", "{dir}/a.jsonl")]
    public void BadInputIsOneClearLineAndWritesNothing(string expected, params string[] args)
    {
        string dir = TempDir();
        try
        {
            var r = CliRunner.Run(["generate", "--n", "4", .. args.Select(a => a.Replace("{dir}", dir, StringComparison.Ordinal))]);
            Assert.Equal(1, r.ExitCode);
            var lines = r.StdErr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Single(lines);
            Assert.Contains(expected, lines[0], StringComparison.Ordinal);
            Assert.Empty(Directory.GetFiles(dir));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void AReferenceLineTrainsOnExactlyTheTokensOfTheTaskTrainer()
    {
        var task = ReasoningTask.Create("arithmetic");
        foreach (var p in Distillation.Problems(task, 12, EvalSplit.Train, seed: 3))
        {
            var messages = ChatDataset.ParseLine(Distillation.Line(p.Prompt, Distillation.ReferenceContent(p)), "line");
            var (ids, promptLen) = ChatDataset.Render(messages, R1Chat, R1Format.Tokenizer);
            var c = Conversation.Single(p);
            Assert.Equal(c.EncodePrompt(), ids[..promptLen]);
            Assert.Equal(c.EncodeCompletion(), ids[promptLen..]);
        }
    }

    [Fact]
    public void AConversationRendersItsEarlierTurnsAsContextAndAnAnswerWithoutThinkingAfterTheHeader()
    {
        var messages = ChatDataset.ParseLine("""
            {"messages": [{"role": "user", "content": "What is 2 + 3?"}, {"role": "assistant", "content": "<think>\nA2\n</think>\n\nThe answer is 5."},
             {"role": "user", "content": "And 4 + 4?"}, {"role": "assistant", "content": "The answer is 8."}]}
            """.ReplaceLineEndings(" "), "line");
        var (ids, promptLen) = ChatDataset.Render(messages, R1Chat, R1Format.Tokenizer);
        var tok = R1Format.Tokenizer;
        // the earlier answer keeps only what follows </think>; the last one has no thinking, so the prompt stops at the header
        Assert.Equal("<｜User｜>What is 2 + 3?<｜Assistant｜>The answer is 5.<｜end▁of▁sentence｜><｜User｜>And 4 + 4?<｜Assistant｜>",
            tok.Decode(ids.AsSpan(1, promptLen - 1), renderSpecial: true));
        Assert.Equal(tok.BosId, ids[0]);
        Assert.Equal("The answer is 8.<｜end▁of▁sentence｜>", tok.Decode(ids.AsSpan(promptLen), renderSpecial: true));
    }

    [Theory]
    [InlineData("[1, 2]", "line 1: not a conversation: expected an object with a \"messages\" array")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}", "line 1: not a conversation: it does not end with a non-empty assistant message")]
    [InlineData("{\"messages\": [{\"role\": \"assistant\", \"content\": \"hi\"}]}", "line 1: not a conversation: it has no user message")]
    [InlineData("{\"messages\": [{\"role\": \"robot\", \"content\": \"hi\"}]}", "line 1: not a conversation: message 1 has role 'robot'")]
    [InlineData("{\"messages\": [{\"role\": \"user\", \"content\": 3}]}", "line 1: not a conversation: message 1 (user) has no string \"content\"")]
    [InlineData("{\"messages\": [", "line 1: not JSON")]
    public void ALineThatIsNotAConversationIsRefusedByLine(string line, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => ChatDataset.ParseLine(line, "line 1"));
        Assert.StartsWith(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TrainSftReadsConversationsAndNamesTheBadLineOfAFile()
    {
        string dir = TempDir();
        try
        {
            var task = ReasoningTask.Create("easy");
            string data = Path.Combine(dir, "data.jsonl");
            File.WriteAllLines(data, Distillation.Problems(task, 40, EvalSplit.Train, seed: 1).Select(p => Distillation.Line(p.Prompt, Distillation.ReferenceContent(p))));
            string run = Path.Combine(dir, "run");
            var r = CliRunner.Run("train", "sft", "--data", data, "--task", "easy", "--preset", "micro", "--out", run, "--steps", "3", "--batch", "4", "--eval-n", "2", "--threads", "2");
            Assert.True(r.ExitCode == 0, r.StdErr);
            Assert.Contains("data: 40 conversations", r.StdErr, StringComparison.Ordinal);
            Assert.Equal(4, File.ReadAllLines(Path.Combine(run, "metrics.csv")).Length);   // header + 3 steps

            File.AppendAllText(data, "{\"messages\": \"hello\"}\n");
            string bad = Path.Combine(dir, "bad");
            r = CliRunner.Run("train", "sft", "--data", data, "--task", "easy", "--preset", "micro", "--out", bad, "--steps", "3");
            Assert.Equal(1, r.ExitCode);
            Assert.Equal($"error: {data}:41: not a conversation: expected an object with a \"messages\" array", r.StdErr.Trim());
            Assert.False(Directory.Exists(bad));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    [Fact]
    public void BatchesWalkEachEpochOnceInAShuffledOrder()
    {
        string dir = TempDir();
        try
        {
            string data = Path.Combine(dir, "data.jsonl");
            var problems = Distillation.Problems(ReasoningTask.Create("easy"), 10, EvalSplit.Train, seed: 2);
            File.WriteAllLines(data, problems.Select(p => Distillation.Line(p.Prompt, Distillation.ReferenceContent(p))));
            var ds = ChatDataset.Load(data, R1Chat, R1Format.Tokenizer, maxSeq: 448);
            Assert.Equal(10, ds.Examples.Count);
            var epoch = Enumerable.Range(0, 5).SelectMany(step => ds.Batch(step, 2)).ToList();            // steps 0-4 of 2: one epoch
            Assert.Equal(ds.Examples.Select(e => e.Ids).OrderBy(Key), epoch.Select(e => e.Ids).OrderBy(Key));
            Assert.NotEqual(ds.Examples.Select(e => Key(e.Ids)), epoch.Select(e => Key(e.Ids)));             // shuffled
            Assert.Equal(ds.Batch(7, 3).Select(e => Key(e.Ids)), ChatDataset.Load(data, R1Chat, R1Format.Tokenizer, 448).Batch(7, 3).Select(e => Key(e.Ids)));

            int shortest = ds.Examples.Min(e => e.Ids.Length);
            Assert.True(ds.Examples.Max(e => e.Ids.Length) > shortest);
            var small = ChatDataset.Load(data, R1Chat, R1Format.Tokenizer, maxSeq: shortest);
            Assert.Equal(10, small.Examples.Count + small.Skipped);
            Assert.True(small.Skipped > 0);
            var none = Assert.Throws<InvalidDataException>(() => ChatDataset.Load(data, R1Chat, R1Format.Tokenizer, maxSeq: 10));
            Assert.Contains("none of its 10 conversations fits the model's 10-token context", none.Message, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static string Key(int[] ids) => string.Join(",", ids.Select(i => i.ToString(CultureInfo.InvariantCulture)));
}
