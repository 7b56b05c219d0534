using System.Text;

namespace Sputnik.Training.Tasks;

/// <summary>
/// Multi-digit addition, subtraction and multiplication (up to 4×3 digits) with scratchpad traces a ~1M-parameter
/// model can follow: the operands restated digit by digit with place labels, then column arithmetic where every line
/// names the digits it uses, does one small step and carries the result digits so far (see the note above AddTrace).
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

    private static string Inv(long x) => x.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Digits least significant first (0 is one digit).</summary>
    private static int[] Digits(long x)
    {
        var d = new List<int>();
        do { d.Add((int)(x % 10)); x /= 10; } while (x > 0);
        return d.ToArray();
    }

    // Place labels. The two operands use disjoint alphabets so that looking a label up finds exactly one digit.
    private const string LabelsA = "ABCDEFG", LabelsB = "pqrstuv";

    /// <summary>"a: A7 B4 C3": the operand restated least significant digit first, each digit tagged with its place.</summary>
    private static void Restate(StringBuilder sb, string name, int[] digits, string labels)
    {
        sb.Append(name).Append(':');
        for (int i = 0; i < digits.Length; i++) sb.Append(' ').Append(labels[i]).Append(digits[i]);
        sb.Append('\n');
    }

    /// <summary>Restates both operands ("a: …", "b: …") and returns their digits, least significant first.</summary>
    private static (int[] A, int[] B) Restate(StringBuilder sb, long a, long b)
    {
        int[] da = Digits(a), db = Digits(b);
        Restate(sb, "a", da, LabelsA);
        Restate(sb, "b", db, LabelsB);
        return (da, db);
    }

    private static int At(int[] d, int i) => i < d.Length ? d[i] : 0;

    /*
     * Why the traces look like this: a ~1M-parameter transformer cannot reliably find "the 3rd digit from the right"
     * of a number in the prompt, but it can copy the token after a unique label (an induction-head lookup) and do
     * one small computation whose inputs sit on the same line. So each operand is restated once with its digits
     * tagged by place (A, B, C… for a, p, q, r… for b), every column line names the places it reads, and each line
     * ends with the result digits so far (the new digit prepended to the previous line's), so the answer is a copy
     * of the last line and never has to be assembled from scattered digits.
     */

    /// <summary>
    /// Column addition: "B4+q9='13+1=14, 42 c1" — place digits and their sum, then the carry in added on its own (a
    /// trace that added three numbers at once, "B4+q9+1=14", was where the model most often dropped the carry),
    /// the result so far and the carry out; "'" marks a units overflow (see <see cref="AppendEquals"/>).
    /// </summary>
    public static string AddTrace(long a, long b)
    {
        var sb = new StringBuilder();
        sb.Append(a).Append('+').Append(b).Append(", by columns:\n");
        var (da, db) = Restate(sb, a, b);
        int carry = 0;
        string partial = "";
        for (int i = 0; i < Math.Max(da.Length, db.Length); i++)
        {
            int pair = At(da, i) + At(db, i), s = pair + carry;
            partial = Inv(s % 10) + partial;
            sb.Append(LabelsA[i]).Append(At(da, i)).Append('+').Append(LabelsB[i]).Append(At(db, i));
            AppendEquals(sb, At(da, i), At(db, i));
            sb.Append('+').Append(carry);
            AppendEquals(sb, pair, carry);
            sb.Append(", ").Append(partial).Append(" c").Append(s / 10).Append('\n');
            carry = s / 10;
        }
        if (carry > 0) sb.Append("c1: ").Append(partial = "1" + partial).Append('\n');
        sb.Append("so ").Append(a).Append('+').Append(b).Append('=').Append(a + b).Append('\n');
        return sb.ToString();
    }

    /// <summary>
    /// Column subtraction. The operands are restated first and then compared from the top place down
    /// ("cmp: C0&lt;r3 so b-a"; absent digits are 0), so the order is decided from tagged digits on the page rather than
    /// from the prompt. Each column subtracts the two place digits, then the borrow on its own, and adds 10 when
    /// negative ("q4-B5=-1-0=-1+10=9, 95 b1"). A smaller minuend is handled by subtracting the other way round and
    /// putting the sign in the closing line, which also drops the result's leading zeros.
    /// </summary>
    public static string SubTrace(long a, long b)
    {
        var sb = new StringBuilder();
        sb.Append(a).Append('-').Append(b).Append(", by columns:\n");
        var (da, db) = Restate(sb, a, b);
        int places = Math.Max(da.Length, db.Length);
        sb.Append("cmp:");
        bool swap = false;
        for (int i = places - 1; i >= 0; i--)
        {
            int x = At(da, i), y = At(db, i);
            sb.Append(' ').Append(LabelsA[i]).Append(x).Append(x < y ? '<' : x > y ? '>' : '=').Append(LabelsB[i]).Append(y);
            if (x != y) { swap = x < y; break; }
        }
        sb.Append(swap ? " so b-a\n" : " so a-b\n");
        var (top, topLabels, bottom, bottomLabels) = swap ? (db, LabelsB, da, LabelsA) : (da, LabelsA, db, LabelsB);
        int borrow = 0;
        string partial = "";
        for (int i = 0; i < places; i++)
        {
            int pair = At(top, i) - At(bottom, i), d = pair - borrow;
            sb.Append(topLabels[i]).Append(At(top, i)).Append('-').Append(bottomLabels[i]).Append(At(bottom, i)).Append('=').Append(pair)
              .Append('-').Append(borrow).Append('=').Append(d);
            borrow = d < 0 ? 1 : 0;
            if (d < 0) sb.Append("+10=").Append(d += 10);
            partial = Inv(d) + partial;
            sb.Append(", ").Append(partial).Append(" b").Append(borrow).Append('\n');
        }
        sb.Append("so ").Append(a).Append('-').Append(b).Append('=').Append(a - b).Append('\n');
        return sb.ToString();
    }

    /// <summary>
    /// Long multiplication by output columns: column k ("k2:") sums the digit products a_i·b_j with i + j = k, one
    /// product and one running sum at a time ("C7*p8=56 B2*q6=12+56=68 A1*r3=3+68='71"), adds the carry ("+2=73"),
    /// and keeps the low digit ("328 c7"). Every step is a one-digit product or a two-number sum; "'" marks a sum
    /// whose units overflow (see <see cref="AppendEquals"/>).
    /// </summary>
    public static string MulTrace(long a, long b)
    {
        var sb = new StringBuilder();
        sb.Append(a).Append('*').Append(b).Append(", by columns:\n");
        var (da, db) = Restate(sb, a, b);
        int carry = 0;
        string partial = "";
        for (int k = 0; k < da.Length + db.Length - 1; k++)
        {
            sb.Append('k').Append(k).Append(':');
            int sum = 0;
            bool first = true;
            for (int i = Math.Min(k, da.Length - 1); i >= 0 && k - i < db.Length; i--)
            {
                int j = k - i, prod = da[i] * db[j];
                sb.Append(' ').Append(LabelsA[i]).Append(da[i]).Append('*').Append(LabelsB[j]).Append(db[j]).Append('=').Append(prod);
                if (!first) { sb.Append('+').Append(sum); AppendEquals(sb, prod, sum); }
                sum += prod;
                first = false;
            }
            int total = sum + carry;
            sb.Append(" +").Append(carry);
            AppendEquals(sb, sum, carry);
            partial = Inv(total % 10) + partial;
            carry = total / 10;
            sb.Append(", ").Append(partial).Append(" c").Append(carry).Append('\n');
        }
        if (carry > 0) sb.Append('c').Append(carry).Append(": ").Append(partial = Inv(carry) + partial).Append('\n');
        sb.Append("so ").Append(a).Append('*').Append(b).Append('=').Append(a * b).Append('\n');
        return sb.ToString();
    }

    /// <summary>
    /// "=" and the sum x + y, with "'" before it when the units digits overflow ("36+24='60"). The model writes a sum's
    /// digits most significant first, so the tens digit depends on a carry out of the units it has not written yet;
    /// that was where almost all multiplication errors were. The mark makes that carry a token of its own, decided
    /// from the two units digits alone, before the digits that need it.
    /// </summary>
    private static void AppendEquals(StringBuilder sb, int x, int y)
    {
        sb.Append('=');
        if (x % 10 + y % 10 >= 10) sb.Append('\'');
        sb.Append(x + y);
    }
}
