using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;

namespace Sputnik.Cli;

/// <summary>
/// Range checks attached to options, so a value outside what the flag means (`--temp -1`, `--top-p 2`, `-t 0`) is a
/// parse error — one line naming the flag as typed and the allowed range, exit code 1, before any model is loaded.
/// Shared by run, chat, serve, eval and train so one flag means one range everywhere.
/// </summary>
internal static class FlagRanges
{
    /// <summary>Sampling temperature: 0 (greedy) to 100, as the library's sampler accepts it.</summary>
    public static Option<float> Temperature(this Option<float> o) => o.Within(0, 100, "0 (greedy) to 100");

    public static Option<float> TopP(this Option<float> o) => o.Check(v => v > 0 && v <= 1, "above 0, at most 1 (1 = off)");

    public static Option<float> MinP(this Option<float> o) => o.Within(0, 1, "0 (off) to 1");

    public static Option<float> RepeatPenalty(this Option<float> o) => o.Check(v => v > 0 && v <= 100, "above 0, at most 100 (1 = off)");

    /// <summary>OpenAI's presence and frequency penalties: -2 to 2 (negative values encourage repetition).</summary>
    public static Option<float> Penalty(this Option<float> o) => o.Within(-2, 2, "-2 to 2 (0 = off)");

    public static Option<float> Within(this Option<float> o, float min, float max, string expected) =>
        o.Check(v => v >= min && v <= max, expected);

    public static Option<int> AtLeast(this Option<int> o, int min) => o.CheckInt(v => v >= min, $"{min} or more");

    public static Option<int?> AtLeast(this Option<int?> o, int min) => o.CheckInt(v => v is not { } x || x >= min, $"{min} or more");

    public static Option<double> AtLeast(this Option<double> o, double min) =>
        o.CheckValue(v => v >= min && double.IsFinite(v), $"{min.ToString(CultureInfo.InvariantCulture)} or more");

    // NaN fails every comparison, so `--temp nan` is refused by the same checks.
    private static Option<float> Check(this Option<float> o, Func<float, bool> ok, string expected) => o.CheckValue(ok, expected);

    private static Option<T> CheckInt<T>(this Option<T> o, Func<T, bool> ok, string expected) => o.CheckValue(ok, expected);

    private static Option<T> CheckValue<T>(this Option<T> o, Func<T, bool> ok, string expected)
    {
        o.Validators.Add(result =>
        {
            if (result.Implicit || result.Tokens.Count == 0) return; // defaults are in range by construction
            T value;
            try { value = result.GetValueOrDefault<T>(); }
            catch (InvalidOperationException) { return; } // not a number: the parser reports that itself
            if (!ok(value))
                result.AddError($"{Flag(result, o)} {result.Tokens[^1].Value} is out of range: expected {expected}");
        });
        return o;
    }

    private static string Flag(OptionResult result, Option option) => result.IdentifierToken?.Value ?? option.Name;
}
