namespace Sputnik.Templates;

internal sealed partial class Evaluator
{
    public object? Eval(Expr e)
    {
        try
        {
            return EvalCore(e);
        }
        catch (RuntimeFault fault)
        {
            throw Positioned(fault, e.Pos);
        }
    }

    private object? EvalCore(Expr e)
    {
        switch (e)
        {
            case LiteralExpr l: return l.Value;
            case NameExpr n: return _scope.TryGet(n.Name, out var v) ? v : Undefined.Named(n.Name);
            case AttrExpr a: return GetAttr(Eval(a.Target), a.Name);
            case ItemExpr i: return GetItem(Eval(i.Target), Eval(i.Index));
            case SliceExpr s: return Slice(Eval(s.Target), s.Start == null ? null : Eval(s.Start), s.Stop == null ? null : Eval(s.Stop), s.Step == null ? null : Eval(s.Step));
            case CallExpr c: return CallValue(Eval(c.Target), EvalArgs(c.Args));
            case FilterExpr f: return Filters.Apply(this, f.Name, f.Target == null ? null : Eval(f.Target), EvalArgs(f.Args));
            case TestExpr t:
                var r = Tests.Apply(this, t.Name, Eval(t.Target), EvalArgs(t.Args));
                return t.Negated ? !r : r;
            case AndExpr and:
                var left = Eval(and.Left);
                return PyOps.Truthy(left) ? Eval(and.Right) : left;
            case OrExpr or:
                var l2 = Eval(or.Left);
                return PyOps.Truthy(l2) ? l2 : Eval(or.Right);
            case UnaryExpr u:
                var operand = Eval(u.Operand);
                return u.Op switch
                {
                    "not" => !PyOps.Truthy(operand),
                    "-" => PyOps.Negate(operand),
                    _ => operand is Undefined ud ? throw ud.Fault() : operand,
                };
            case BinaryExpr b: return EvalBinary(b);
            case CondExpr ce:
                if (PyOps.Truthy(Eval(ce.Test))) return Eval(ce.Then);
                return ce.Else != null ? Eval(ce.Else) : Undefined.Instance;
            case ListExpr le:
                var list = new List<object?>(le.Items.Length);
                foreach (var item in le.Items) list.Add(Eval(item));
                return list;
            case TupleExpr te:
                var arr = new object?[te.Items.Length];
                for (var k = 0; k < arr.Length; k++) arr[k] = Eval(te.Items[k]);
                return new PyTuple(arr);
            case DictExpr de:
                var d = new PyDict(de.Items.Length);
                foreach (var (key, value) in de.Items)
                {
                    var k = Eval(key);
                    d.Set(k, Eval(value));
                }
                return d;
            default:
                throw new RuntimeFault($"unsupported expression {e.GetType().Name}");
        }
    }

    private object? EvalBinary(BinaryExpr b)
    {
        var l = Eval(b.Left);
        var r = Eval(b.Right);
        return b.Op switch
        {
            "+" => PyOps.Add(l, r),
            "~" => string.Concat(PyFormat.Str(l), PyFormat.Str(r)),
            "==" => PyOps.Equals(l, r),
            "!=" => !PyOps.Equals(l, r),
            "<" => PyOps.Compare(l, r, "<") < 0,
            "<=" => PyOps.Compare(l, r, "<=") <= 0,
            ">" => PyOps.Compare(l, r, ">") > 0,
            ">=" => PyOps.Compare(l, r, ">=") >= 0,
            "in" => PyOps.Contains(r, l),
            "notin" => !PyOps.Contains(r, l),
            _ => PyOps.Arith(b.Op, l, r),
        };
    }

    public Args EvalArgs(CallArgs args, KeyValuePair<string, object?>? extra = null)
    {
        if (args.Positional.Length == 0 && args.Keywords.Length == 0 && extra == null) return Args.Empty;
        var pos = new object?[args.Positional.Length];
        for (var i = 0; i < pos.Length; i++) pos[i] = Eval(args.Positional[i]);
        var kws = new KeyValuePair<string, object?>[args.Keywords.Length + (extra == null ? 0 : 1)];
        for (var i = 0; i < args.Keywords.Length; i++)
            kws[i] = new KeyValuePair<string, object?>(args.Keywords[i].Name, Eval(args.Keywords[i].Value));
        if (extra != null) kws[^1] = extra.Value;
        return new Args(pos, kws);
    }

    public object? CallValue(object? fn, Args args) => fn switch
    {
        Callable c => c.Invoke(this, args),
        Undefined u => throw u.Fault(),
        _ => throw new RuntimeFault($"'{PyOps.TypeName(fn)}' object is not callable"),
    };

    private static readonly HashSet<string> DictMethods = ["get", "items", "keys", "values", "copy"];
    private static readonly HashSet<string> ListMethods = ["index", "count", "copy"];

    // Methods transformers' ImmutableSandboxedEnvironment refuses (jinja2.sandbox's _mutable_spec): reading one gives
    // an undefined value that raises a SecurityError when called.
    private static readonly HashSet<string> DictMutators = ["update", "setdefault", "clear", "pop", "popitem"];
    private static readonly HashSet<string> ListMutators = ["append", "insert", "extend", "clear", "reverse", "remove", "pop", "sort"];

    public static object? GetAttr(object? obj, string name)
    {
        switch (obj)
        {
            case PyDict d:
                if (DictMethods.Contains(name)) return new BoundMethod(d, name);
                if (DictMutators.Contains(name)) return Undefined.Unsafe(obj, name);
                return d.TryGetValue(name, out var v) ? v : Undefined.NoAttribute(obj, name);
            case Namespace ns:
                return ns.Attrs.TryGetValue(name, out var nv) ? nv : Undefined.NoAttribute(obj, name);
            case LoopContext loop:
                return loop.Attr(name);
            case string:
                return PyMethods.IsStringMethod(name) ? new BoundMethod(obj, name) : Undefined.NoAttribute(obj, name);
            case SafeString m:
                return PyMethods.IsStringMethod(name) ? new BoundMethod(m.Value, name) : Undefined.NoAttribute(obj, name);
            case List<object?>:
                if (ListMutators.Contains(name)) return Undefined.Unsafe(obj, name);
                return ListMethods.Contains(name) ? new BoundMethod(obj, name) : Undefined.NoAttribute(obj, name);
            case Undefined u:
                throw u.Fault();
            default:
                return Undefined.NoAttribute(obj, name);
        }
    }

    public static object? GetItem(object? obj, object? key)
    {
        switch (obj)
        {
            case PyDict d:
                if (d.TryGet(key, out var v)) return v;
                return key is string k2 ? GetAttr(d, k2) : new Undefined($"'dict object' has no attribute {PyFormat.Repr(key)}");
            case IReadOnlyList<object?> list when key is long or bool:
                var idx = key is bool b ? (b ? 1 : 0) : (long)key;
                if (idx < 0) idx += list.Count;
                return idx >= 0 && idx < list.Count ? list[(int)idx] : new Undefined($"'{PyOps.TypeName(obj)} object' has no attribute '{key}'");
            case SafeString m:
                return GetItem(m.Value, key);
            case string s when key is long n:
                if (n < 0) n += s.Length;
                return n >= 0 && n < s.Length ? s[(int)n].ToString() : new Undefined($"'str object' has no attribute '{key}'");
            case Undefined u:
                throw u.Fault();
            default:
                return key is string name ? GetAttr(obj, name) : new Undefined($"'{PyOps.TypeName(obj)} object' has no attribute {PyFormat.Repr(key)}");
        }
    }

    public static object? Slice(object? obj, object? start, object? stop, object? step)
    {
        if (obj is Undefined u) throw u.Fault();
        if (obj is SafeString m) obj = m.Value;
        var len = obj switch
        {
            string s => s.Length,
            IReadOnlyList<object?> l => l.Count,
            _ => throw new RuntimeFault($"'{PyOps.TypeName(obj)}' object is not subscriptable"),
        };
        var st = step == null ? 1 : ToIndex(step);
        if (st == 0) throw new RuntimeFault("slice step cannot be zero");
        int lo, hi;
        if (st > 0)
        {
            lo = start == null ? 0 : Clamp(ToIndex(start), len, 0, len);
            hi = stop == null ? len : Clamp(ToIndex(stop), len, 0, len);
        }
        else
        {
            lo = start == null ? len - 1 : Clamp(ToIndex(start), len, -1, len - 1);
            hi = stop == null ? -1 : Clamp(ToIndex(stop), len, -1, len - 1);
        }
        var indices = new List<int>();
        for (var i = lo; st > 0 ? i < hi : i > hi; i += st) indices.Add(i);
        if (obj is string str)
        {
            if (st == 1) return str.Substring(lo, Math.Max(0, hi - lo));
            return string.Concat(indices.Select(i => str[i]));
        }
        var items = (IReadOnlyList<object?>)obj!;
        var result = indices.Select(i => items[i]).ToList();
        return obj is PyTuple ? new PyTuple([.. result]) : result;
    }

    private static int ToIndex(object? v) => v switch
    {
        long n => (int)Math.Clamp(n, int.MinValue / 2, int.MaxValue / 2),
        bool b => b ? 1 : 0,
        _ => throw new RuntimeFault("slice indices must be integers or None"),
    };

    private static int Clamp(int i, int len, int min, int max)
    {
        if (i < 0) i += len;
        return Math.Clamp(i, min, max);
    }
}
