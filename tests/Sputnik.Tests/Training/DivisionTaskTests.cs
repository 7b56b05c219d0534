using System.Text.RegularExpressions;
using Sputnik.Training.Tasks;
using Xunit;

namespace Sputnik.Tests.Training;

/// <summary>The division task: its traces compute the right quotient and remainder, its verifier grades them, and it mixes with the original tasks.</summary>
public partial class DivisionTaskTests
{
    [Fact]
    public void Reference_completions_verify_and_wrong_answers_do_not()
    {
        var task = ReasoningTask.Create("division");
        var rng = new Random(3);
        var digitCounts = new HashSet<int>();
        for (int i = 0; i < 300; i++)
        {
            var p = task.Sample(rng, EvalSplit.Train);
            var (a, b) = (int.Parse(p.Key.Split('/')[0]), int.Parse(p.Key.Split('/')[1]));
            Assert.InRange(b, 2, 9);
            Assert.InRange(a, 0, 999);
            digitCounts.Add(a.ToString().Length);
            Assert.Equal($"{a / b} remainder {a % b}", p.Expected);
            Assert.EndsWith($"so {a}/{b}={a / b} remainder {a % b}\n", p.Trace);
            Assert.Equal(Grade.Correct, task.Verify(p, p.Trace + "</think>\n\n" + p.Answer));
            Assert.Equal(Grade.Correct, task.Verify(p, "\n</think>\n\n" + p.Answer, thinking: true));
            Assert.Equal(Grade.WrongAnswer, task.Verify(p, p.Trace + $"</think>\n\nThe answer is {a / b} remainder {a % b + 1}."));
            Assert.Equal(Grade.WrongAnswer, task.Verify(p, p.Trace + $"</think>\n\nThe answer is {a / b + 1} remainder {a % b}."));
            Assert.Equal(Grade.WrongAnswer, task.Verify(p, p.Trace + $"</think>\n\nThe answer is {a / b}."));
            Assert.Equal(Grade.Malformed, task.Verify(p, p.Trace + p.Answer));
        }
        Assert.Equal(new[] { 1, 2, 3 }, digitCounts.Order());
    }

    [Fact]
    public void Long_division_trace_reads_its_digits_through_labels()
    {
        Assert.Equal(
            "347/7, long division:\na: A7 B4 C3\nb: p7\n" +
            "v0 C3: p7*0=0 p7*1=7=v0>C3 so q0 p7*0=0 C3-0=3 x3, 0\n" +
            "x3 B4: p7*4=28 p7*5=35=x3>B4 so q4 p7*4=28 B4-8=-4+10=6 y6, 4\n" +
            "y6 A7: p7*8=56 p7*9=63=y6<A7 so q9 p7*9=63 A7-3=4 z4, 49\n" +
            "so 347/7=49 remainder 4\n", DivisionTask.Trace(347, 7));
    }

    /// <summary>
    /// Every trace in the task's range re-checked line by line from its own text: the labelled digits are the
    /// dividend's and the previous remainder, every product is the times table, every comparison sign is right and
    /// the walk stops exactly at the first multiple above the partial dividend, the remainder is the partial dividend
    /// minus the chosen multiple, and the closing line is the true quotient and remainder.
    /// </summary>
    [Fact]
    public void Every_trace_in_range_is_right_step_by_step()
    {
        for (int b = 2; b <= 9; b++)
            for (int a = 0; a <= 999; a++)
                CheckTrace(a, b, DivisionTask.Trace(a, b));
    }

    private static void CheckTrace(int a, int b, string trace)
    {
        var lines = trace.TrimEnd('\n').Split('\n');
        string digits = a.ToString();
        Assert.Equal($"{a}/{b}, long division:", lines[0]);
        Assert.Equal($"b: p{b}", lines[2]);
        Assert.Equal(digits.Length + 4, lines.Length);
        int rem = 0;
        string quotient = "";
        for (int li = 0; li < digits.Length; li++)
        {
            string line = lines[3 + li];
            int digit = digits[li] - '0', part = rem * 10 + digit;
            var head = HeadRegex().Match(line);
            Assert.True(head.Success, line);
            Assert.Equal(rem, head.Groups[1].Value[1] - '0');
            Assert.Equal(digit, head.Groups[2].Value[1] - '0');
            Assert.Contains($" {head.Groups[2].Value}", lines[1]); // the place digit is the dividend's at that label
            foreach (Match prod in ProductRegex().Matches(line))
            {
                Assert.Equal(b, int.Parse(prod.Groups[1].Value));
                Assert.Equal(b * int.Parse(prod.Groups[2].Value), int.Parse(prod.Groups[3].Value));
            }
            var tries = TryRegex().Matches(line);
            foreach (Match t in tries)
            {
                int m = int.Parse(t.Groups[1].Value);
                Assert.Equal(Cmp(m / 10, rem), t.Groups[2].Value[0]);
                if (t.Groups[3].Success) Assert.Equal(Cmp(m % 10, digit), t.Groups[3].Value[0]);
                else Assert.NotEqual('=', t.Groups[2].Value[0]);
                bool above = m > part, last = t.Index == tries[^1].Index;
                Assert.Equal(last && above, above); // only the last tried multiple may exceed the partial dividend
            }
            var close = CloseRegex().Match(line);
            Assert.True(close.Success, line);
            int q = int.Parse(close.Groups[1].Value), r = int.Parse(close.Groups[2].Value);
            Assert.Equal(part / b, q);
            Assert.Equal(part % b, r);
            quotient = quotient is "" or "0" ? q.ToString() : quotient + q;
            Assert.EndsWith($"{r}, {quotient}", line);
            rem = r;
        }
        Assert.Equal((a / b).ToString(), quotient);
        Assert.Equal($"so {a}/{b}={a / b} remainder {a % b}", lines[^1]);
    }

    private static char Cmp(int x, int y) => x < y ? '<' : x > y ? '>' : '=';

    [GeneratedRegex(@"^([vwxyz]\d) ([A-D]\d):")]
    private static partial Regex HeadRegex();

    [GeneratedRegex(@"p(\d)\*(\d)=(\d+)")]
    private static partial Regex ProductRegex();

    [GeneratedRegex(@"=(\d+)([<=>])[vwxyz]\d(?:([<=>])[A-D]\d)?")]
    private static partial Regex TryRegex();

    [GeneratedRegex(@" so q(\d) p\d\*\d=\d+ [A-D]\d-\d=(?:-\d\+10=)?(\d) [wxyz]\d, \d+$")]
    private static partial Regex CloseRegex();

    [Fact]
    public void The_longest_division_fits_evaluation_and_the_bundled_context()
    {
        int longest = 0;
        for (int b = 2; b <= 9; b++)
            for (int a = 0; a <= 999; a++)
            {
                var p = new Problem("division", $"{a}/{b}", $"How many times does {b} go into {a}, and what is left?", DivisionTask.Trace(a, b), $"The answer is {a / b} remainder {a % b}.", "");
                longest = Math.Max(longest, R1Format.EncodeCompletion(p).Length);
                Assert.True(R1Format.EncodePrompt(p.Prompt).Length + R1Format.EncodeCompletion(p).Length <= 640, p.Key);
            }
        Assert.InRange(longest, 300, 448); // 18 of the 8,000 pass eval's default --max-new 400: docs/training.md evaluates with --max-new 448
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
