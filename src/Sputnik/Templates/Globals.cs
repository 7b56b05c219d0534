using System.Globalization;
using System.Text;

namespace Sputnik.Templates;

/// <summary>Template globals: range, dict, namespace, joiner, cycler, and transformers' raise_exception and strftime_now.</summary>
internal static class Globals
{
    public static Dictionary<string, object?> Create() => new()
    {
        ["range"] = new BuiltinFunction("range", (_, a) => Range(a)),
        ["dict"] = new BuiltinFunction("dict", (_, a) =>
        {
            var d = new PyDict();
            if (a.Count > 0 && a.Positional[0] is PyDict src)
                foreach (var kv in src) d[kv.Key] = kv.Value;
            foreach (var kv in a.Keywords) d[kv.Key] = kv.Value;
            return d;
        }),
        ["namespace"] = new BuiltinFunction("namespace", (_, a) =>
        {
            var ns = new Namespace();
            if (a.Count > 0 && a.Positional[0] is PyDict src)
                foreach (var kv in src) ns.Attrs[kv.Key as string ?? throw new RuntimeFault("namespace() keywords must be strings")] = kv.Value;
            foreach (var kv in a.Keywords) ns.Attrs[kv.Key] = kv.Value;
            return ns;
        }),
        ["raise_exception"] = new BuiltinFunction("raise_exception", (_, a) =>
            throw new RuntimeFault(PyFormat.Str(a.Get(0, "message")), FaultKind.Raised)),
        ["strftime_now"] = new BuiltinFunction("strftime_now", (ev, a) => Strftime(ev.Clock(), PyFormat.Str(a.Get(0, "format")))),
        ["joiner"] = new BuiltinFunction("joiner", (_, a) =>
        {
            var sep = a.Get(0, "sep", ", ");
            var used = false;
            return new BuiltinFunction("joiner", (_, _) =>
            {
                if (used) return sep;
                used = true;
                return "";
            });
        }),
        ["cycler"] = new BuiltinFunction("cycler", (_, a) =>
        {
            var items = a.Positional;
            var cycler = new Namespace();
            var pos = 0;
            cycler.Attrs["next"] = new BuiltinFunction("next", (_, _) => items[pos++ % items.Length]);
            cycler.Attrs["reset"] = new BuiltinFunction("reset", (_, _) =>
            {
                pos = 0;
                return null;
            });
            return cycler;
        }),
    };

    private static List<object?> Range(Args a)
    {
        long Arg(int i) => a.Positional[i] is long n ? n : a.Positional[i] is bool b ? (b ? 1 : 0) : throw new RuntimeFault("range() integer argument expected");
        long start = 0, stop, step = 1;
        switch (a.Count)
        {
            case 1: stop = Arg(0); break;
            case 2: start = Arg(0); stop = Arg(1); break;
            case 3: start = Arg(0); stop = Arg(1); step = Arg(2); break;
            default: throw new RuntimeFault("range expected 1 to 3 arguments");
        }
        if (step == 0) throw new RuntimeFault("range() arg 3 must not be zero");
        var r = new List<object?>();
        for (var i = start; step > 0 ? i < stop : i > stop; i += step)
        {
            r.Add(i);
            if (r.Count > 100_000) throw new RuntimeFault("range too big");
        }
        return r;
    }

    private static readonly string[] Months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
    private static readonly string[] Days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

    /// <summary>Python's strftime for the C-locale directives.</summary>
    public static string Strftime(DateTime t, string fmt)
    {
        var sb = new StringBuilder();
        var ci = CultureInfo.InvariantCulture;
        for (var i = 0; i < fmt.Length; i++)
        {
            if (fmt[i] != '%' || i + 1 >= fmt.Length) { sb.Append(fmt[i]); continue; }
            var c = fmt[++i];
            var dow = ((int)t.DayOfWeek + 6) % 7;
            sb.Append(c switch
            {
                'd' => t.Day.ToString("00", ci),
                'm' => t.Month.ToString("00", ci),
                'Y' => t.Year.ToString("0000", ci),
                'y' => (t.Year % 100).ToString("00", ci),
                'b' or 'h' => Months[t.Month - 1][..3],
                'B' => Months[t.Month - 1],
                'a' => Days[dow][..3],
                'A' => Days[dow],
                'H' => t.Hour.ToString("00", ci),
                'I' => ((t.Hour + 11) % 12 + 1).ToString("00", ci),
                'M' => t.Minute.ToString("00", ci),
                'S' => t.Second.ToString("00", ci),
                'p' => t.Hour < 12 ? "AM" : "PM",
                'j' => t.DayOfYear.ToString("000", ci),
                'w' => ((int)t.DayOfWeek).ToString(ci),
                'f' => (t.Ticks % TimeSpan.TicksPerSecond / 10).ToString("000000", ci),
                '%' => "%",
                _ => "%" + c,
            });
        }
        return sb.ToString();
    }
}
