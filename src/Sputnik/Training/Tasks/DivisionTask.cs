using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Sputnik.Training.Tasks;

/// <summary>
/// Integer division with remainder: a dividend of 1–4 digits by a divisor from 2 to 9 ("What is 347 divided by 7?"),
/// answered "The answer is 49 remainder 4." The trace is long division written for a ~1M-parameter model, in the
/// style of <see cref="ArithmeticTask"/>'s: the dividend restated with place labels (most significant first, so the
/// lines follow the order of the work), then one line per digit that brings the digit down, walks the divisor's
/// multiples until one is too large (each a times-table fact the arithmetic traces already use), subtracts, and
/// ends with the quotient digits so far, so the answer is a copy of the last line.
/// </summary>
internal sealed partial class DivisionTask : ReasoningTask
{
    public override string Name => "division";

    private static readonly string[] Phrasings =
    [
        "What is {0} divided by {1}?", "Divide {0} by {1}.", "{0} / {1} = ?", "What is {0} / {1} with remainder?",
        "Compute {0} divided by {1}, with remainder.", "How many times does {1} go into {0}, and what is left?",
    ];

    private const string Labels = "ABCD";

    protected override Problem Draw(Random rng)
    {
        int digits = rng.Next(1, 5);
        int a = rng.Next(digits == 1 ? 0 : (int)Math.Pow(10, digits - 1), (int)Math.Pow(10, digits));
        int b = rng.Next(2, 10);
        string prompt = string.Format(CultureInfo.InvariantCulture, Phrasings[rng.Next(Phrasings.Length)], a, b);
        string expected = Expected(a / b, a % b);
        return new Problem(Name, $"{a}/{b}", prompt, Trace(a, b), $"The answer is {expected}.", expected);
    }

    private static string Expected(int q, int r) => string.Create(CultureInfo.InvariantCulture, $"{q} remainder {r}");

    /// <summary>
    /// "B4: 34: p7*1=7 p7*2=14 p7*3=21 p7*4=28 p7*5=35&gt;34 so q4 r34-28=6, 04": the dividend and divisor are first
    /// restated exactly as the arithmetic traces restate operands ("a: A7 B4 C3", units first; "b: p7"), because the
    /// adapter cannot teach the frozen attention new lookups: every later line finds its digits through labels the
    /// base model already copies from. Each line is the partial dividend (the last remainder with the labelled digit
    /// appended), the labelled divisor's multiples up to the first that exceeds it (or up to 9), the quotient digit,
    /// the remainder as a subtraction, and the quotient so far.
    /// </summary>
    public static string Trace(int a, int b)
    {
        var sb = new StringBuilder();
        string digits = a.ToString(CultureInfo.InvariantCulture);
        int len = digits.Length;
        sb.Append(a).Append('/').Append(b).Append(", long division:\na:");
        for (int i = 0; i < len; i++) sb.Append(' ').Append(Labels[i]).Append(digits[len - 1 - i]);
        sb.Append("\nb: p").Append(b).Append('\n');
        int rem = 0;
        string quotient = "";
        for (int i = len - 1; i >= 0; i--)
        {
            char digit = digits[len - 1 - i];
            int part = rem * 10 + (digit - '0');
            sb.Append(Labels[i]).Append(digit).Append(": ").Append(part).Append(':');
            int q = 0;
            for (int k = 1; k <= 9; k++)
            {
                sb.Append(" p").Append(b).Append('*').Append(k).Append('=').Append(b * k);
                if (b * k > part) { sb.Append('>').Append(part); break; }
                q = k;
            }
            rem = part - b * q;
            quotient += (char)('0' + q);
            sb.Append(" so q").Append(q).Append(" r").Append(part).Append('-').Append(b * q).Append('=').Append(rem).Append(", ").Append(quotient).Append('\n');
        }
        sb.Append("so ").Append(a).Append('/').Append(b).Append('=').Append(a / b).Append(" r").Append(a % b).Append('\n');
        return sb.ToString();
    }

    /// <summary>Correct when the last "Q remainder R" (or "Q r R") in the answer is the right pair.</summary>
    protected override bool IsCorrect(Problem p, string answer)
    {
        var ms = PairRegex().Matches(answer);
        if (ms.Count == 0) return false;
        var m = ms[^1];
        return long.TryParse(m.Groups[1].Value, CultureInfo.InvariantCulture, out long q) && long.TryParse(m.Groups[2].Value, CultureInfo.InvariantCulture, out long r)
            && Expected((int)Math.Clamp(q, int.MinValue, int.MaxValue), (int)Math.Clamp(r, int.MinValue, int.MaxValue)) == p.Expected;
    }

    [GeneratedRegex(@"(-?\d+)\s*(?:remainder|rem|r|R)\s*(\d+)")]
    private static partial Regex PairRegex();
}
