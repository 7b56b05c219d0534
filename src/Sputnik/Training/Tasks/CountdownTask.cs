using System.Text;

namespace Sputnik.Training.Tasks;

/// <summary>
/// Countdown: combine 3–4 numbers, each used exactly once, with + − × ÷ (exact division only) to reach a target.
/// Traces are Stream-of-Search style: a few failed tries marked "no", then the solution marked "ok".
/// </summary>
internal sealed class CountdownTask : ReasoningTask
{
    public override string Name => "countdown";

    private static readonly string[] Phrasings =
    [
        "Use {0} to make {1}.", "Reach {1} using the numbers {0}.", "Using {0} once each with + - * /, make {1}.",
        "Countdown: numbers {0}, target {1}.", "Make {1} from {0}.",
    ];

    private readonly record struct Item(long Value, string Expr, bool Atom);

    /// <summary>Combines random pairs until one number is left; returns the steps and the final item, or null when a step fails.</summary>
    private static (List<string> Steps, Item Result)? RandomPlay(Random rng, IReadOnlyList<int> numbers)
    {
        var items = numbers.Select(n => new Item(n, n.ToString(System.Globalization.CultureInfo.InvariantCulture), true)).ToList();
        var steps = new List<string>();
        while (items.Count > 1)
        {
            int i = rng.Next(items.Count), j = rng.Next(items.Count - 1);
            if (j >= i) j++;
            var (a, b) = (items[i], items[j]);
            if (a.Value < b.Value) (a, b) = (b, a); // larger first keeps subtraction non-negative
            char op = "+-*/"[rng.Next(4)];
            long v;
            switch (op)
            {
                case '+': v = a.Value + b.Value; break;
                case '-': v = a.Value - b.Value; break;
                case '*': v = a.Value * b.Value; break;
                default:
                    if (b.Value == 0 || a.Value % b.Value != 0) return null;
                    v = a.Value / b.Value; break;
            }
            steps.Add($"{a.Value}{op}{b.Value}={v}");
            string Wrap(Item x) => x.Atom ? x.Expr : "(" + x.Expr + ")";
            var merged = new Item(v, Wrap(a) + op + Wrap(b), false);
            items.RemoveAt(Math.Max(i, j));
            items.RemoveAt(Math.Min(i, j));
            items.Add(merged);
        }
        return (steps, items[0]);
    }

    protected override Problem Draw(Random rng)
    {
        while (true)
        {
            int count = rng.Next(3, 5);
            var nums = Enumerable.Range(0, count).Select(_ => rng.Next(1, count == 3 ? 26 : 13)).ToList();
            var sol = RandomPlay(rng, nums);
            if (sol is not { } s || s.Result.Value < 1 || s.Result.Value > 100) continue;
            long target = s.Result.Value;
            var sorted = string.Join(",", nums.OrderBy(x => x));
            string list = string.Join(", ", nums);
            string prompt = string.Format(System.Globalization.CultureInfo.InvariantCulture, Phrasings[rng.Next(Phrasings.Length)], list, target);
            var sb = new StringBuilder();
            sb.Append("numbers ").Append(list).Append(", target ").Append(target).Append('\n');
            int fails = rng.Next(0, 3);
            for (int f = 0, guard = 0; f < fails && guard < 50; guard++)
            {
                if (RandomPlay(rng, nums) is not { } w || w.Result.Value == target) continue;
                sb.Append("try ").Append(string.Join(", ", w.Steps)).Append(" no\n");
                f++;
            }
            sb.Append("try ").Append(string.Join(", ", s.Steps)).Append(" ok\n");
            return new Problem(Name, $"cd:{sorted}>{target}", prompt, sb.ToString(), $"The answer is {s.Result.Expr}.",
                target.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
    }

    /// <summary>The expression must use exactly the given numbers and evaluate (exactly, as a fraction) to the target.</summary>
    protected override bool IsCorrect(Problem p, string answer)
    {
        var expr = new string(answer.Where(ch => char.IsDigit(ch) || "+-*/() ".Contains(ch)).ToArray()).Trim();
        var key = p.Key[3..];
        var want = key[..key.IndexOf('>')].Split(',').Select(long.Parse).OrderBy(x => x).ToArray();
        long target = long.Parse(p.Expected, System.Globalization.CultureInfo.InvariantCulture);
        try
        {
            var parser = new ExprParser(expr);
            var (num, den) = parser.Parse();
            var used = parser.Numbers.OrderBy(x => x).ToArray();
            return used.SequenceEqual(want) && den != 0 && num == target * den;
        }
        catch (FormatException) { return false; }
        catch (DivideByZeroException) { return false; }
        catch (OverflowException) { return false; }
    }

    /// <summary>Recursive-descent parser over + − × ÷ and parentheses with exact rational results.</summary>
    private sealed class ExprParser(string s)
    {
        private int _i;
        public List<long> Numbers { get; } = [];

        public (long Num, long Den) Parse()
        {
            var r = Sum();
            Skip();
            if (_i != s.Length) throw new FormatException("trailing text");
            return r;
        }

        private void Skip() { while (_i < s.Length && s[_i] == ' ') _i++; }

        private (long, long) Sum()
        {
            var a = Product();
            while (true)
            {
                Skip();
                if (_i >= s.Length || (s[_i] != '+' && s[_i] != '-')) return a;
                char op = s[_i++];
                var b = Product();
                a = op == '+' ? Norm(checked(a.Item1 * b.Item2 + b.Item1 * a.Item2), checked(a.Item2 * b.Item2))
                              : Norm(checked(a.Item1 * b.Item2 - b.Item1 * a.Item2), checked(a.Item2 * b.Item2));
            }
        }

        private (long, long) Product()
        {
            var a = Atom();
            while (true)
            {
                Skip();
                if (_i >= s.Length || (s[_i] != '*' && s[_i] != '/')) return a;
                char op = s[_i++];
                var b = Atom();
                if (op == '/' && b.Item1 == 0) throw new DivideByZeroException();
                a = op == '*' ? Norm(checked(a.Item1 * b.Item1), checked(a.Item2 * b.Item2)) : Norm(checked(a.Item1 * b.Item2), checked(a.Item2 * b.Item1));
            }
        }

        private (long, long) Atom()
        {
            Skip();
            if (_i < s.Length && s[_i] == '(')
            {
                _i++;
                var v = Sum();
                Skip();
                if (_i >= s.Length || s[_i] != ')') throw new FormatException("missing )");
                _i++;
                return v;
            }
            int start = _i;
            while (_i < s.Length && char.IsDigit(s[_i])) _i++;
            if (_i == start || _i - start > 6) throw new FormatException("number expected");
            long n = long.Parse(s.AsSpan(start, _i - start), System.Globalization.CultureInfo.InvariantCulture);
            Numbers.Add(n);
            return (n, 1);
        }

        private static (long, long) Norm(long n, long d)
        {
            if (d < 0) { n = -n; d = -d; }
            long g = Gcd(Math.Abs(n), d);
            return g == 0 ? (n, d) : (n / g, d / g);
        }

        private static long Gcd(long a, long b) { while (b != 0) (a, b) = (b, a % b); return a; }
    }
}
