using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Sputnik.Training.Tasks;

/// <summary>
/// Integer division with remainder: a dividend of 1–3 digits (0–999) by a divisor from 2 to 9 ("What is 347 divided by
/// 7?"), answered "The answer is 49 remainder 4." The trace is long division written so that an adapter over the
/// frozen bundled model can follow it: every number it writes is a copy through a place label, a times-table fact,
/// a one-digit comparison or a one-digit difference, the operations the arithmetic traces already train (see
/// <see cref="Trace"/>). Three digits, not four: with four the longest traces pass 400 tokens (evaluation's default
/// completion length) and the mean grows by a line of work, each line a chance to slip.
/// </summary>
internal sealed partial class DivisionTask(int maxDigits = 3) : ReasoningTask
{
    public override string Name => "division";

    private static readonly string[] Phrasings =
    [
        "What is {0} divided by {1}?", "Divide {0} by {1}.", "{0} / {1} = ?", "What is {0} / {1} with remainder?",
        "Compute {0} divided by {1}, with remainder.", "How many times does {1} go into {0}, and what is left?",
    ];

    // Place labels of the dividend (units first, as the arithmetic traces restate operands), and the label each
    // place's remainder gets; "v" labels the zero remainder the first line starts from. All distinct from "p" (the
    // divisor) and from each other, so a label is found by one lookup.
    private const string Places = "ABCD", RemainderLabels = "wxyz";
    private const char StartLabel = 'v';

    protected override Problem Draw(Random rng)
    {
        int digits = rng.Next(1, maxDigits + 1);
        int a = rng.Next(digits == 1 ? 0 : (int)Math.Pow(10, digits - 1), (int)Math.Pow(10, digits));
        int b = rng.Next(2, 10);
        string prompt = string.Format(CultureInfo.InvariantCulture, Phrasings[rng.Next(Phrasings.Length)], a, b);
        string expected = Expected(a / b, a % b);
        return new Problem(Name, $"{a}/{b}", prompt, Trace(a, b), $"The answer is {expected}.", expected);
    }

    private static string Expected(int q, int r) => string.Create(CultureInfo.InvariantCulture, $"{q} remainder {r}");

    /// <summary>Place i's remainder label (i = 0 for the units): D's is "w", C's "x", B's "y", A's "z".</summary>
    private static char RemainderLabel(int place) => RemainderLabels[RemainderLabels.Length - 1 - place];

    /// <summary>
    /// Long division, one line per dividend digit from the top:
    /// <code>
    /// 347/7, long division:
    /// a: A7 B4 C3
    /// b: p7
    /// v0 C3: p7*0=0 p7*1=7=v0>C3 so q0 p7*0=0 C3-0=3 x3, 0
    /// x3 B4: p7*4=28 p7*5=35=x3>B4 so q4 p7*4=28 B4-8=-4+10=6 y6, 4
    /// y6 A7: p7*8=56 p7*9=63=y6&lt;A7 so q9 p7*9=63 A7-3=4 z4, 49
    /// so 347/7=49 remainder 4
    /// </code>
    /// A line opens with the partial dividend as two labelled digits: the previous line's remainder ("x3") and the
    /// place digit brought down ("B4"). Why each step is shaped as it is (the adapter cannot teach the frozen
    /// attention new lookups, and comparing two two-digit numbers is a skill no original trace exercises):
    /// <list type="bullet">
    /// <item>The walk starts at the largest multiple not above the tens, k0 = ⌊10t/b⌋ ("p7*4=28" under x3), so a line
    /// tries at most a few multiples (walking from 1 made traces twice as long).</item>
    /// <item>Each further multiple is compared digit by digit against the labelled digits, as subtraction's "cmp"
    /// compares its operands: its tens against the remainder ("35=x3"), and only on a tie its units against the place
    /// digit ("&gt;B4"). The first "&gt;" ends the walk; the quotient digit is the multiple before it (or 9).</item>
    /// <item>The remainder is smaller than the divisor, so it is one digit: the place digit minus the multiple's
    /// units, plus 10 when negative, written as subtraction's columns write it ("B4-8=-4+10=6"), then labelled
    /// for the next line ("y6").</item>
    /// <item>The quotient so far ends the line with no leading zero, so the closing line copies it, and the closing
    /// line spells the pair as the answer does ("49 remainder 4"): an earlier trace ended "r4" and the model then
    /// miscopied the remainder into the answer.</item>
    /// </list>
    /// </summary>
    public static string Trace(int a, int b)
    {
        if (a < 0 || b < 2 || b > 9) throw new ArgumentOutOfRangeException(nameof(b), "division traces take a ≥ 0 and a divisor 2–9");
        var sb = new StringBuilder();
        string digits = a.ToString(CultureInfo.InvariantCulture);
        int len = digits.Length;
        if (len > Places.Length) throw new ArgumentOutOfRangeException(nameof(a), $"division traces take at most {Places.Length} digits");
        sb.Append(a).Append('/').Append(b).Append(", long division:\na:");
        for (int i = 0; i < len; i++) sb.Append(' ').Append(Places[i]).Append(digits[len - 1 - i]);
        sb.Append("\nb: p").Append(b).Append('\n');
        int rem = 0;
        char remLabel = StartLabel;
        string quotient = "";
        for (int i = len - 1; i >= 0; i--)
        {
            char place = Places[i];
            int digit = digits[len - 1 - i] - '0', part = rem * 10 + digit;
            sb.Append(remLabel).Append(rem).Append(' ').Append(place).Append(digit).Append(':');
            int q = rem * 10 / b;
            AppendProduct(sb, b, q);
            for (int k = q + 1; k <= 9; k++)
            {
                int m = b * k;
                AppendProduct(sb, b, k);
                char sign = Sign(m / 10, rem);
                sb.Append(sign).Append(remLabel).Append(rem);
                if (sign == '=')
                {
                    sign = Sign(m % 10, digit);
                    sb.Append(sign).Append(place).Append(digit);
                }
                if (sign == '>') break;
                q = k;
            }
            int units = b * q % 10, diff = digit - units;
            sb.Append(" so q").Append(q);
            AppendProduct(sb, b, q);
            sb.Append(' ').Append(place).Append(digit).Append('-').Append(units).Append('=').Append(diff);
            if (diff < 0) sb.Append("+10=").Append(diff += 10);
            if (diff != part - b * q) throw new InvalidOperationException($"division trace for {a}/{b}: remainder {diff} at place {place}");
            rem = diff;
            remLabel = RemainderLabel(i);
            quotient = quotient is "" or "0" ? q.ToString(CultureInfo.InvariantCulture) : quotient + q;
            sb.Append(' ').Append(remLabel).Append(rem).Append(", ").Append(quotient).Append('\n');
        }
        sb.Append("so ").Append(a).Append('/').Append(b).Append('=').Append(Expected(a / b, a % b)).Append('\n');
        return sb.ToString();
    }

    private static void AppendProduct(StringBuilder sb, int b, int k) => sb.Append(" p").Append(b).Append('*').Append(k).Append('=').Append(b * k);

    private static char Sign(int x, int y) => x < y ? '<' : x > y ? '>' : '=';

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
