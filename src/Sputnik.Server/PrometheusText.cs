using System.Globalization;
using System.Text;

namespace Sputnik.Server;

/// <summary>One sample of a Prometheus text exposition: name, labels and value.</summary>
public sealed record PrometheusSample(string Name, IReadOnlyDictionary<string, string> Labels, double Value);

/// <summary>
/// Prometheus' text exposition format (0.0.4): written by /metrics (the server's and the router's) and read by the
/// router from its replicas. The reader is strict: a line that is not a comment, a blank or a well-formed sample is
/// a <see cref="FormatException"/> naming the line, so a test that parses /metrics proves the text is valid.
/// </summary>
public static class PrometheusText
{
    /// <summary>Appends one metric family: its HELP and TYPE lines and a sample per (labels, value).</summary>
    /// <param name="labels">"" or a rendered label set such as <c>{status="200"}</c> (see <see cref="Labels"/>).</param>
    public static void Append(StringBuilder sb, string name, string type, string help, IEnumerable<(string Labels, double Value)> values)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
        sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
        foreach (var (labels, value) in values)
            sb.Append(name).Append(labels).Append(' ').Append(Number(value)).Append('\n');
    }

    /// <summary>A label set, values escaped as the format asks (backslash, quote, newline).</summary>
    public static string Labels(params (string Name, string Value)[] labels)
    {
        var sb = new StringBuilder("{");
        for (int i = 0; i < labels.Length; i++)
        {
            if (i > 0) sb.Append(',');
            sb.Append(labels[i].Name).Append("=\"");
            foreach (char c in labels[i].Value)
                sb.Append(c switch { '\\' => "\\\\", '"' => "\\\"", '\n' => "\\n", _ => c.ToString() });
            sb.Append('"');
        }
        return sb.Append('}').ToString();
    }

    private static string Number(double v) =>
        double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf" : double.IsNaN(v) ? "NaN" : v.ToString("R", CultureInfo.InvariantCulture);

    /// <summary>Every sample in <paramref name="text"/>; HELP/TYPE comments are checked for form, other comments skipped.</summary>
    /// <exception cref="FormatException">a line that is not valid exposition text (its number and content in the message)</exception>
    public static List<PrometheusSample> Parse(string text)
    {
        var samples = new List<PrometheusSample>();
        int lineNo = 0;
        foreach (var raw in text.Split('\n'))
        {
            lineNo++;
            string line = raw.TrimEnd('\r');
            if (line.Trim().Length == 0) continue;
            try
            {
                if (line.StartsWith('#')) CheckComment(line);
                else samples.Add(ParseSample(line));
            }
            catch (FormatException ex)
            {
                string shown = line.Length > 120 ? line[..120] + "…" : line;
                throw new FormatException($"line {lineNo} is not Prometheus text ({ex.Message}): {shown}");
            }
        }
        return samples;
    }

    /// <summary>The sum of every sample named <paramref name="name"/> (0 when there is none).</summary>
    public static double Sum(IEnumerable<PrometheusSample> samples, string name) => samples.Where(s => s.Name == name).Sum(s => s.Value);

    private static void CheckComment(string line)
    {
        var parts = line.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length < 2 || (parts[1] != "HELP" && parts[1] != "TYPE")) return; // a free comment
        if (parts.Length < 3 || !IsMetricName(parts[2])) throw new FormatException($"{parts[1]} without a metric name");
        if (parts[1] == "TYPE" && (parts.Length < 4 || parts[3].Trim() is not ("counter" or "gauge" or "histogram" or "summary" or "untyped")))
            throw new FormatException("TYPE must be counter, gauge, histogram, summary or untyped");
    }

    private static PrometheusSample ParseSample(string line)
    {
        int i = 0;
        while (i < line.Length && IsNameChar(line[i], i == 0)) i++;
        if (i == 0) throw new FormatException("no metric name");
        string name = line[..i];
        var labels = new Dictionary<string, string>(StringComparer.Ordinal);
        if (i < line.Length && line[i] == '{')
        {
            i++;
            while (true)
            {
                while (i < line.Length && line[i] == ' ') i++;
                if (i < line.Length && line[i] == '}') { i++; break; }
                int start = i;
                while (i < line.Length && IsNameChar(line[i], i == start) && line[i] != ':') i++;
                if (i == start) throw new FormatException("bad label name");
                string label = line[start..i];
                if (i >= line.Length || line[i] != '=' || i + 1 >= line.Length || line[i + 1] != '"') throw new FormatException($"label {label} has no quoted value");
                i += 2;
                var value = new StringBuilder();
                while (true)
                {
                    if (i >= line.Length) throw new FormatException($"label {label}'s value is not closed");
                    char c = line[i++];
                    if (c == '"') break;
                    if (c == '\\')
                    {
                        if (i >= line.Length) throw new FormatException("a backslash ends the line");
                        char e = line[i++];
                        value.Append(e switch { 'n' => '\n', '\\' => '\\', '"' => '"', _ => throw new FormatException($"unknown escape \\{e}") });
                    }
                    else value.Append(c);
                }
                if (!labels.TryAdd(label, value.ToString())) throw new FormatException($"label {label} twice");
                while (i < line.Length && line[i] == ' ') i++;
                if (i < line.Length && line[i] == ',') i++;
                else if (i < line.Length && line[i] == '}') { i++; break; }
                else throw new FormatException("expected ',' or '}' after a label");
            }
        }
        if (i >= line.Length || (line[i] != ' ' && line[i] != '\t')) throw new FormatException("no value after the name");
        var rest = line[i..].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
        if (rest.Length is < 1 or > 2) throw new FormatException("expected a value and at most a timestamp");
        double v = rest[0] switch
        {
            "+Inf" or "Inf" => double.PositiveInfinity,
            "-Inf" => double.NegativeInfinity,
            "NaN" => double.NaN,
            _ => double.TryParse(rest[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double d) ? d : throw new FormatException($"value '{rest[0]}' is not a number"),
        };
        if (rest.Length == 2 && !long.TryParse(rest[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
            throw new FormatException($"timestamp '{rest[1]}' is not an integer");
        return new PrometheusSample(name, labels, v);
    }

    private static bool IsMetricName(string s) => s.Length > 0 && s.Select((c, i) => IsNameChar(c, i == 0)).All(ok => ok);

    // [a-zA-Z_:][a-zA-Z0-9_:]*
    private static bool IsNameChar(char c, bool first) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or '_' or ':' || (!first && c is >= '0' and <= '9');
}
