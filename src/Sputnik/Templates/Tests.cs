namespace Sputnik.Templates;

/// <summary>jinja2's built-in tests (<c>x is defined</c>, <c>x is divisibleby 3</c>...).</summary>
internal static class Tests
{
    public static bool Apply(Evaluator ev, string name, object? v, Args a)
    {
        _ = ev;
        switch (name)
        {
            case "defined": return v is not Undefined;
            case "undefined": return v is Undefined;
            case "none": return v is null;
            case "boolean": return v is bool;
            case "true": return v is true;
            case "false": return v is false;
            case "integer": return v is long;
            case "float": return v is double;
            case "number": return v is long or double or bool;
            case "string": return v is string or SafeString;
            case "mapping": return v is PyDict;
            case "iterable": return v is string or SafeString or List<object?> or PyTuple or PyDict or PyIterator or Undefined;
            case "sequence": return v is string or SafeString or List<object?> or PyTuple or PyDict or Undefined;
            case "callable": return v is Callable;
            case "lower": return PyFormat.Str(v) is var ls && ls.Any(char.IsLetter) && !ls.Any(char.IsUpper);
            case "upper": return PyFormat.Str(v) is var us && us.Any(char.IsLetter) && !us.Any(char.IsLower);
            case "odd": return Int(v) % 2 != 0;
            case "even": return Int(v) % 2 == 0;
            case "divisibleby":
                var div = Int(a.Get(0, "num"));
                return div != 0 && Int(v) % div == 0;
            case "eq" or "equalto" or "==": return PyOps.Equals(v, a.Get(0, "other"));
            case "ne" or "!=": return !PyOps.Equals(v, a.Get(0, "other"));
            case "lt" or "lessthan" or "<": return PyOps.Compare(v, a.Get(0, "other")) < 0;
            case "le" or "<=": return PyOps.Compare(v, a.Get(0, "other")) <= 0;
            case "gt" or "greaterthan" or ">": return PyOps.Compare(v, a.Get(0, "other")) > 0;
            case "ge" or ">=": return PyOps.Compare(v, a.Get(0, "other")) >= 0;
            case "in": return PyOps.Contains(a.Get(0, "seq"), v);
            case "sameas":
                var other = a.Get(0, "other");
                return ReferenceEquals(v, other) || (v is null && other is null) || (v is bool b1 && other is bool b2 && b1 == b2);
            case "escaped": return v is SafeString;
            default: throw new RuntimeFault($"no test named '{name}'");
        }
    }

    private static long Int(object? v) => v switch
    {
        long n => n,
        bool b => b ? 1 : 0,
        double d when d == Math.Floor(d) => (long)d,
        Undefined u => throw u.Fault(),
        _ => throw new RuntimeFault($"expected an integer, got {PyOps.TypeName(v)}"),
    };
}
