using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>The division task: its traces compute the right quotient and remainder, its verifier grades them, and it mixes with the original tasks.</summary>
public class DivisionTaskTests
{
    [Fact]
    public void Reference_completions_verify_and_wrong_remainders_do_not()
    {
        var task = ReasoningTask.Create("division");
        var rng = new Random(3);
        for (int i = 0; i < 300; i++)
        {
            var p = task.Sample(rng, EvalSplit.Train);
            var (a, b) = (int.Parse(p.Key.Split('/')[0]), int.Parse(p.Key.Split('/')[1]));
            Assert.InRange(b, 2, 9);
            Assert.Equal($"{a / b} remainder {a % b}", p.Expected);
            Assert.EndsWith($"so {a}/{b}={a / b} r{a % b}\n", p.Trace);
            Assert.Equal(Grade.Correct, task.Verify(p, p.Trace + "</think>\n\n" + p.Answer));
            Assert.Equal(Grade.WrongAnswer, task.Verify(p, p.Trace + $"</think>\n\nThe answer is {a / b} remainder {a % b + 1}."));
        }
    }

    [Fact]
    public void Long_division_trace_reads_its_digits_through_labels()
    {
        Assert.Equal(
            "347/7, long division:\na: A7 B4 C3\nb: p7\n" +
            "C3: 3: p7*1=7>3 so q0 r3-0=3, 0\n" +
            "B4: 34: p7*1=7 p7*2=14 p7*3=21 p7*4=28 p7*5=35>34 so q4 r34-28=6, 04\n" +
            "A7: 67: p7*1=7 p7*2=14 p7*3=21 p7*4=28 p7*5=35 p7*6=42 p7*7=49 p7*8=56 p7*9=63 so q9 r67-63=4, 049\n" +
            "so 347/7=49 r4\n", DivisionTask.Trace(347, 7));
    }

    [Fact]
    public void A_comma_list_mixes_tasks_and_keeps_each_verifier()
    {
        var mix = ReasoningTask.Create("division,arithmetic");
        var rng = new Random(4);
        var seen = new HashSet<string>();
        for (int i = 0; i < 200; i++)
        {
            var p = mix.Sample(rng, EvalSplit.Train);
            seen.Add(p.Task);
            Assert.Equal(Grade.Correct, mix.Verify(p, p.Trace + "</think>\n\n" + p.Answer));
        }
        Assert.Contains("division", seen);
        Assert.Contains("multiplication", seen);
        Assert.Throws<ArgumentException>(() => ReasoningTask.Create("division,nope"));
    }
}
