using System.Text;

namespace Sputnik.Training.Tasks;

/// <summary>
/// Multi-digit addition, subtraction and multiplication (up to 4×3 digits) with scratchpad traces a ~1M-parameter
/// model can follow: column arithmetic one digit at a time, each line carrying the partial result forward so the
/// model only ever copies and does one single-digit step.
/// </summary>
internal sealed class ArithmeticTask(char op, int maxDigitsA = 4, int maxDigitsB = 3, string? name = null) : ReasoningTask
{
    public override string Name => name ?? op switch { '+' => "addition", '-' => "subtraction", _ => "multiplication" };

    private static readonly string[] AddPhrasings = ["What is {0} + {1}?", "Compute {0} plus {1}.", "Add {0} and {1}.", "{0} + {1} = ?", "Calculate {0}+{1}", "What is the sum of {0} and {1}?"];
    private static readonly string[] SubPhrasings = ["What is {0} - {1}?", "Compute {0} minus {1}.", "Subtract {1} from {0}.", "{0} - {1} = ?", "Calculate {0}-{1}", "What is the difference {0} - {1}?"];
    private static readonly string[] MulPhrasings = ["What is {0} * {1}?", "Compute {0} times {1}.", "Multiply {0} by {1}.", "{0} * {1} = ?", "Calculate {0}*{1}", "What is the product of {0} and {1}?", "What is {0} x {1}?"];

    private static int Number(Random rng, int maxDigits)
    {
        int digits = rng.Next(1, maxDigits + 1);
        int lo = digits == 1 ? 0 : (int)Math.Pow(10, digits - 1);
        return rng.Next(lo, (int)Math.Pow(10, digits));
    }

    protected override Problem Draw(Random rng)
    {
        int a = Number(rng, op == '*' ? maxDigitsA : Math.Max(maxDigitsA, maxDigitsB));
        int b = Number(rng, op == '*' ? maxDigitsB : Math.Max(maxDigitsA, maxDigitsB));
        var phr = op switch { '+' => AddPhrasings, '-' => SubPhrasings, _ => MulPhrasings };
        string prompt = string.Format(System.Globalization.CultureInfo.InvariantCulture, phr[rng.Next(phr.Length)], a, b);
        long result = op switch { '+' => (long)a + b, '-' => (long)a - b, _ => (long)a * b };
        string trace = op switch { '+' => AddTrace(a, b), '-' => SubTrace(a, b), _ => MulTrace(a, b) };
        return new Problem(Name, $"{a}{op}{b}", prompt, trace, $"The answer is {result}.", result.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    protected override bool IsCorrect(Problem p, string answer) => LastInteger(answer)?.ToString(System.Globalization.CultureInfo.InvariantCulture) == p.Expected;

    private static int Digit(long x, int i) => (int)(x / (long)Math.Pow(10, i) % 10);
    private static int Len(long x) => x == 0 ? 1 : (int)Math.Floor(Math.Log10(x)) + 1;

    /// <summary>Column addition, least significant first: "7+5=12, 2 c1" … each line ends with the digits so far.</summary>
    public static string AddTrace(long a, long b)
    {
        var sb = new StringBuilder();
        sb.Append(a).Append('+').Append(b).Append(", by columns:\n");
        int n = Math.Max(Len(a), Len(b)), carry = 0;
        string partial = "";
        for (int i = 0; i < n; i++)
        {
            int da = Digit(a, i), db = Digit(b, i), s = da + db + carry;
            sb.Append(da).Append('+').Append(db);
            if (carry > 0) sb.Append("+1");
            partial = (s % 10).ToString(System.Globalization.CultureInfo.InvariantCulture) + partial;
            carry = s / 10;
            sb.Append('=').Append(s).Append(", ").Append(partial);
            if (carry > 0) sb.Append(" c1");
            sb.Append('\n');
        }
        if (carry > 0) sb.Append("carry 1, ").Append(partial = "1" + partial).Append('\n');
        sb.Append("so ").Append(a).Append('+').Append(b).Append('=').Append(a + b).Append('\n');
        return sb.ToString();
    }

    /// <summary>Column subtraction with borrows; a smaller minuend is swapped first and the sign put back.</summary>
    public static string SubTrace(long a, long b)
    {
        var sb = new StringBuilder();
        sb.Append(a).Append('-').Append(b);
        long x = a, y = b;
        if (a < b) { sb.Append(", ").Append(a).Append('<').Append(b).Append(" so swap"); (x, y) = (b, a); }
        sb.Append(", by columns:\n");
        int n = Len(x), borrow = 0;
        string partial = "";
        for (int i = 0; i < n; i++)
        {
            int dx = Digit(x, i) - borrow, dy = Digit(y, i);
            sb.Append(Digit(x, i));
            if (borrow > 0) sb.Append("-1");
            borrow = dx < dy ? 1 : 0;
            int r = dx + 10 * borrow - dy;
            if (borrow > 0) sb.Insert(sb.Length, "+10");
            sb.Append('-').Append(dy).Append('=').Append(r).Append(", ");
            partial = r.ToString(System.Globalization.CultureInfo.InvariantCulture) + partial;
            sb.Append(partial);
            if (borrow > 0) sb.Append(" b1");
            sb.Append('\n');
        }
        long diff = x - y;
        sb.Append("so ").Append(x).Append('-').Append(y).Append('=').Append(diff).Append('\n');
        if (a < b) sb.Append("swap back: ").Append(a).Append('-').Append(b).Append('=').Append(a - b).Append('\n');
        return sb.ToString();
    }

    /// <summary>Long multiplication: one partial product per digit of b (shifted), then a running column sum.</summary>
    public static string MulTrace(long a, long b)
    {
        var sb = new StringBuilder();
        sb.Append(a).Append('*').Append(b).Append(", by digits of ").Append(b).Append(":\n");
        int n = Len(b);
        long sum = 0;
        for (int i = 0; i < n; i++)
        {
            int d = Digit(b, i);
            long pp = a * d * (long)Math.Pow(10, i);
            sb.Append(a).Append('*').Append(d);
            if (i > 0) sb.Append('0', i);
            sb.Append('=').Append(pp).Append('\n');
            if (i > 0)
            {
                sb.Append(sum).Append('+').Append(pp).Append('=').Append(sum + pp).Append('\n');
            }
            sum += pp;
        }
        sb.Append("so ").Append(a).Append('*').Append(b).Append('=').Append(a * b).Append('\n');
        return sb.ToString();
    }
}
