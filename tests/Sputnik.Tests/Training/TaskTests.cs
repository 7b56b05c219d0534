using Sputnik.Training;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

public class TaskTests
{
    [Theory]
    [InlineData("addition")]
    [InlineData("subtraction")]
    [InlineData("multiplication")]
    [InlineData("countdown")]
    [InlineData("arithmetic")]
    public void GoldCompletionIsCorrectAndCorruptionsAreNot(string name)
    {
        var task = ReasoningTask.Create(name);
        var rng = new Random(7);
        for (int i = 0; i < 300; i++)
        {
            var p = task.Sample(rng, heldOut: false);
            string gold = R1Format.CompletionText(p);
            Assert.Equal(Grade.Correct, task.Verify(p, gold));
            Assert.Equal(Grade.Malformed, task.Verify(p, p.Trace + p.Answer));            // no </think>
            Assert.Equal(Grade.Malformed, task.Verify(p, p.Trace + "</think>\n\nI am not sure."));
            string wrong = p.Task == "countdown" ? "</think> The answer is 1+1." : $"</think> The answer is {long.Parse(p.Expected) + 1}.";
            Assert.Equal(Grade.WrongAnswer, task.Verify(p, wrong));
        }
    }

    [Fact]
    public void TracesComputeStepByStep()
    {
        Assert.Equal("347+285, by columns:\na: A7 B4 C3\nb: p5 q8 r2\nA7+p5='12+0=12, 2 c1\nB4+q8='12+1=13, 32 c1\nC3+r2=5+1=6, 632 c0\nso 347+285=632\n",
            ArithmeticTask.AddTrace(347, 285));
        Assert.Equal("95+7, by columns:\na: A5 B9\nb: p7\nA5+p7='12+0=12, 2 c1\nB9+q0=9+1='10, 02 c1\nc1: 102\nso 95+7=102\n", ArithmeticTask.AddTrace(95, 7));
        Assert.Equal("347*28, by columns:\na: A7 B4 C3\nb: p8 q2\nk0: A7*p8=56 +0=56, 6 c5\nk1: B4*p8=32 A7*q2=14+32=46 +5='51, 16 c5\n" +
            "k2: C3*p8=24 B4*q2=8+24='32 +5=37, 716 c3\nk3: C3*q2=6 +3=9, 9716 c0\nso 347*28=9716\n", ArithmeticTask.MulTrace(347, 28));
        Assert.Equal("304-9, by columns:\na: A4 B0 C3\nb: p9\ncmp: C3>r0 so a-b\nA4-p9=-5-0=-5+10=5, 5 b1\nB0-q0=0-1=-1+10=9, 95 b1\nC3-r0=3-1=2, 295 b0\nso 304-9=295\n",
            ArithmeticTask.SubTrace(304, 9));
        // a smaller minuend: compared from the top place (absent digits are 0), subtracted the other way, sign in the closing line
        Assert.Equal("52-347, by columns:\na: A2 B5\nb: p7 q4 r3\ncmp: C0<r3 so b-a\np7-A2=5-0=5, 5 b0\nq4-B5=-1-0=-1+10=9, 95 b1\nr3-C0=3-1=2, 295 b0\nso 52-347=-295\n",
            ArithmeticTask.SubTrace(52, 347));
        Assert.Equal("45-45, by columns:\na: A5 B4\nb: p5 q4\ncmp: B4=q4 A5=p5 so a-b\nA5-p5=0-0=0, 0 b0\nB4-q4=0-0=0, 00 b0\nso 45-45=0\n", ArithmeticTask.SubTrace(45, 45));
        Assert.Contains("cmp: D6>s5 so a-b", ArithmeticTask.SubTrace(6000, 5999));
        Assert.Contains("cmp: D6=s6 C0<r1 so b-a", ArithmeticTask.SubTrace(6000, 6100));
        // every trace line's arithmetic is right: the closing line states the true result for random operands
        var rng = new Random(5);
        for (int i = 0; i < 200; i++)
        {
            int a = rng.Next(10000), b = rng.Next(1000);
            Assert.EndsWith($"so {a}*{b}={a * b}\n", ArithmeticTask.MulTrace(a, b));
            Assert.EndsWith($"so {a}+{b}={a + b}\n", ArithmeticTask.AddTrace(a, b));
            int c = rng.Next(10000);
            string sub = ArithmeticTask.SubTrace(a, c);
            Assert.EndsWith($"so {a}-{c}={a - c}\n", sub);
            Assert.Contains(a < c ? " so b-a\n" : " so a-b\n", sub);
        }
    }

    [Fact]
    public void LongestProblemsFitTheTinyPresetsContext()
    {
        // SFT skips examples longer than the context, so a trace that grew past it would silently drop the hardest problems
        int context = TrainConfig.Preset("tiny-r1-ds", R1Format.Tokenizer.VocabSize).ContextLength;
        foreach (var (a, b) in new[] { (9999, 999), (9898, 989), (8989, 898) })
        {
            var p = new Problem("multiplication", $"{a}*{b}", $"What is the product of {a} and {b}?", ArithmeticTask.MulTrace(a, b), $"The answer is {(long)a * b}.", "");
            int length = R1Format.EncodePrompt(p.Prompt).Length + R1Format.EncodeCompletion(p).Length;
            Assert.InRange(length, 300, context);
        }
    }

    [Fact]
    public void PhrasingsVaryAndNumbersStayInRange()
    {
        var task = ReasoningTask.Create("multiplication");
        var rng = new Random(3);
        var ps = Enumerable.Range(0, 500).Select(_ => task.Sample(rng, false)).ToList();
        Assert.True(ps.Select(p => p.Prompt.Split(' ')[0]).Distinct().Count() >= 4);
        Assert.All(ps, p => { var ab = p.Key.Split('*'); Assert.True(ab[0].Length <= 4 && ab[1].Length <= 3); });
        Assert.Contains(ps, p => p.Key.Split('*')[0].Length == 4 && p.Key.Split('*')[1].Length == 3);
    }

    [Fact]
    public void HeldOutSplitIsDisjoint()
    {
        var task = ReasoningTask.Create("all");
        var rng = new Random(1);
        var train = Enumerable.Range(0, 3000).Select(_ => task.Sample(rng, false).Key).ToHashSet();
        var eval = task.EvalSet(300, split: EvalSplit.HeldOut);
        Assert.Equal(300, eval.Count);
        Assert.All(eval, p => Assert.True(ReasoningTask.IsHeldOut(p.Key)));
        Assert.DoesNotContain(eval, p => train.Contains(p.Key));
        Assert.Equal(eval.Select(p => p.Key), task.EvalSet(300, split: EvalSplit.HeldOut).Select(p => p.Key)); // deterministic
    }

    [Theory]
    [InlineData("arithmetic")]
    [InlineData("all")]
    public void DevTestAndTrainingSplitsAreDisjoint(string name)
    {
        var task = ReasoningTask.Create(name);
        var rng = new Random(7);
        var train = Enumerable.Range(0, 5000).Select(_ => task.Sample(rng, heldOut: false).Key).ToHashSet();
        var test = task.EvalSet(300, split: EvalSplit.Test);
        var dev = task.EvalSet(300, split: EvalSplit.Dev);
        Assert.Equal(300, test.Count);
        Assert.Equal(300, dev.Count);
        Assert.All(train, k => Assert.Equal(EvalSplit.Train, ReasoningTask.SplitOf(k)));
        Assert.All(test, p => Assert.Equal(EvalSplit.Test, ReasoningTask.SplitOf(p.Key)));
        Assert.All(dev, p => Assert.Equal(EvalSplit.Dev, ReasoningTask.SplitOf(p.Key)));
        var testKeys = test.Select(p => p.Key).ToHashSet();
        var devKeys = dev.Select(p => p.Key).ToHashSet();
        Assert.Empty(testKeys.Intersect(devKeys));
        Assert.Empty(train.Intersect(testKeys));
        Assert.Empty(train.Intersect(devKeys));
        // both halves are held out; the training sampler draws from neither
        Assert.All(testKeys.Concat(devKeys), k => Assert.True(ReasoningTask.IsHeldOut(k)));
        // the same random stream: the test set is the test half of the pre-split held-out sequence, in order
        var heldOut = task.EvalSet(600, split: EvalSplit.HeldOut).Select(p => p.Key).ToList();
        Assert.Equal(heldOut.Where(k => ReasoningTask.SplitOf(k) == EvalSplit.Test).Take(100), test.Take(100).Select(p => p.Key));
        // neither half is tiny: each is between a third and two thirds of the held-out class
        int nDev = heldOut.Count(k => ReasoningTask.SplitOf(k) == EvalSplit.Dev);
        Assert.InRange(nDev, 200, 400);
    }

    [Fact]
    public void TrainingDrawsNeverYieldDevOrTestKeys()
    {
        var task = ReasoningTask.Create("arithmetic");
        var dev = task.EvalSet(500, split: EvalSplit.Dev).Select(p => p.Key).ToHashSet();
        var test = task.EvalSet(500, split: EvalSplit.Test).Select(p => p.Key).ToHashSet();
        // SFT (SftTrainer.Draw) and GRPO both draw training problems through Sample(rng, heldOut: false)
        var rng2 = new Random(5);
        for (int i = 0; i < 20000; i++)
        {
            var k = task.Sample(rng2, heldOut: false).Key;
            Assert.DoesNotContain(k, dev);
            Assert.DoesNotContain(k, test);
            Assert.Equal(EvalSplit.Train, ReasoningTask.SplitOf(k));
        }
    }

    [Fact]
    public void CountdownVerifierChecksNumbersAndValue()
    {
        var task = ReasoningTask.Create("countdown");
        var p = new Problem("countdown", "cd:3,4,25>88", "Use 25, 3, 4 to make 88.", "", "", "88");
        Assert.Equal(Grade.Correct, task.Verify(p, "</think>\nThe answer is (25-3)*4."));
        Assert.Equal(Grade.Correct, task.Verify(p, "</think>\n4*(25 - 3)"));
        Assert.Equal(Grade.WrongAnswer, task.Verify(p, "</think>\nThe answer is 88."));          // numbers not used
        Assert.Equal(Grade.WrongAnswer, task.Verify(p, "</think>\nThe answer is (25-3)*4*1."));  // extra number
        Assert.Equal(Grade.WrongAnswer, task.Verify(p, "</think>\nThe answer is (25-4)*3."));
    }

    [Fact]
    public void CharacterTokenizerRoundTripsEveryTrainingText()
    {
        var tok = R1Format.Tokenizer;
        var rng = new Random(5);
        var task = ReasoningTask.Create("all");
        for (int i = 0; i < 200; i++)
        {
            var p = task.Sample(rng, false);
            string text = R1Format.PromptText(p.Prompt) + R1Format.CompletionText(p);
            var ids = tok.Encode(text, addBos: true, parseSpecial: true);
            Assert.Equal(tok.BosId, ids[0]);
            Assert.Equal(text, tok.Decode(ids.AsSpan(1), renderSpecial: true));
            Assert.DoesNotContain(0, ids); // no <unk>
        }
        Assert.Single(tok.Encode("<think>", addBos: false, parseSpecial: true));
        Assert.Equal(7, tok.Encode("Hi you!", addBos: false, parseSpecial: true).Length);
    }
}
