using System.Text;

namespace Sputnik.Templates;

/// <summary>Tree-walking interpreter for parsed templates: statements here, expressions in Evaluator.Expressions.cs.</summary>
internal sealed partial class Evaluator
{
    private enum Flow
    {
        Normal,
        Break,
        Continue,
    }

    private readonly SourceMap _map;
    private Scope _scope;

    public Evaluator(SourceMap map, Scope root, Func<DateTime> clock)
    {
        _map = map;
        _scope = root;
        Clock = clock;
    }

    public Func<DateTime> Clock { get; }

    public string Render(Stmt[] body)
    {
        var sb = new StringBuilder(1024);
        Exec(body, sb);
        return sb.ToString();
    }

    /// <summary>Runs a macro body in <paramref name="scope"/>; missing parameters take their defaults there.</summary>
    public object? RunMacro(Scope scope, MacroParam[] parameters, Stmt[] body)
    {
        var saved = _scope;
        _scope = scope;
        try
        {
            foreach (var p in parameters)
            {
                if (scope.Vars.ContainsKey(p.Name)) continue;
                scope.Vars[p.Name] = p.Default != null ? Eval(p.Default) : Undefined.Named(p.Name);
            }
            var sb = new StringBuilder();
            Exec(body, sb);
            return sb.ToString();
        }
        finally
        {
            _scope = saved;
        }
    }

    private TemplateException Positioned(RuntimeFault f, int pos)
    {
        var (line, col) = _map.Locate(pos);
        return f.Kind switch
        {
            FaultKind.Raised => new TemplateRaisedException(f.Message, line, col),
            FaultKind.Undefined => new UndefinedValueException(f.Message, line, col),
            _ => new TemplateException(f.Message, line, col, f),
        };
    }

    private Flow Exec(Stmt[] body, StringBuilder sb)
    {
        foreach (var stmt in body)
        {
            var flow = ExecOne(stmt, sb);
            if (flow != Flow.Normal) return flow;
        }
        return Flow.Normal;
    }

    private Flow ExecOne(Stmt stmt, StringBuilder sb)
    {
        switch (stmt)
        {
            case TextStmt t:
                sb.Append(t.Text);
                return Flow.Normal;
            case OutputStmt o:
                var v = Eval(o.Value);
                if (v is string s) sb.Append(s);
                else if (v is not Undefined) sb.Append(PyFormat.Str(v));
                return Flow.Normal;
            case IfStmt i:
                foreach (var (test, branch) in i.Branches)
                    if (PyOps.Truthy(Eval(test))) return Exec(branch, sb);
                return i.Else != null ? Exec(i.Else, sb) : Flow.Normal;
            case ForStmt f:
                ExecFor(f, sb);
                return Flow.Normal;
            case SetStmt st:
                ExecSet(st);
                return Flow.Normal;
            case SetBlockStmt sbk:
                var inner = new StringBuilder();
                Exec(sbk.Body, inner);
                _scope.Vars[sbk.Target] = ApplyFilters(sbk.Filters, inner.ToString());
                return Flow.Normal;
            case MacroStmt m:
                _scope.Vars[m.Name] = new MacroValue(m.Name, m.Params, m.Body, _scope);
                return Flow.Normal;
            case CallBlockStmt cb:
                var caller = new MacroValue("caller", cb.CallerParams, cb.Body, _scope);
                var result = Guard(cb.Pos, () =>
                {
                    var fn = Eval(cb.Call.Target);
                    var args = EvalArgs(cb.Call.Args, new KeyValuePair<string, object?>("caller", caller));
                    return CallValue(fn, args);
                });
                sb.Append(PyFormat.Str(result));
                return Flow.Normal;
            case FilterBlockStmt fb:
                var body = new StringBuilder();
                Exec(fb.Body, body);
                sb.Append(PyFormat.Str(ApplyFilters(fb.Filters, body.ToString())));
                return Flow.Normal;
            case BreakStmt:
                return Flow.Break;
            case ContinueStmt:
                return Flow.Continue;
            case DoStmt d:
                Eval(d.Value);
                return Flow.Normal;
            default:
                throw _map.Error($"unsupported statement {stmt.GetType().Name}", stmt.Pos);
        }
    }

    private T Guard<T>(int pos, Func<T> f)
    {
        try
        {
            return f();
        }
        catch (RuntimeFault fault)
        {
            throw Positioned(fault, pos);
        }
    }

    private object? ApplyFilters(FilterExpr[] filters, object? value)
    {
        foreach (var f in filters)
        {
            var args = EvalArgs(f.Args);
            value = Guard(f.Pos, () => Filters.Apply(this, f.Name, value, args));
        }
        return value;
    }

    private void Bind(Scope scope, string[] targets, object? item, int pos)
    {
        if (targets.Length == 1)
        {
            scope.Vars[targets[0]] = item;
            return;
        }
        var parts = Guard(pos, () => PyOps.Iterate(item));
        if (parts.Count != targets.Length)
            throw _map.Error(parts.Count > targets.Length
                ? $"too many values to unpack (expected {targets.Length})"
                : $"not enough values to unpack (expected {targets.Length}, got {parts.Count})", pos);
        for (var i = 0; i < targets.Length; i++) scope.Vars[targets[i]] = parts[i];
    }

    private void ExecFor(ForStmt f, StringBuilder sb)
    {
        var source = Eval(f.Iter);
        var items = Guard(f.Iter.Pos, () => PyOps.Iterate(source));
        var outer = _scope;
        if (f.Filter != null)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                var probe = new Scope(outer);
                Bind(probe, f.Targets, item, f.Pos);
                _scope = probe;
                try
                {
                    if (PyOps.Truthy(Eval(f.Filter))) kept.Add(item);
                }
                finally
                {
                    _scope = outer;
                }
            }
            items = kept;
        }
        var loop = new LoopContext(items);
        var count = items.Count;
        try
        {
            for (var i = 0; i < count; i++)
            {
                var scope = new Scope(outer);
                Bind(scope, f.Targets, items[i], f.Pos);
                loop.Index0 = i;
                scope.Vars["loop"] = loop;
                _scope = scope;
                if (Exec(f.Body, sb) == Flow.Break) break;
            }
        }
        finally
        {
            _scope = outer;
        }
        if (count == 0 && f.Else != null) Exec(f.Else, sb);
    }

    private void ExecSet(SetStmt st)
    {
        var value = Eval(st.Value);
        if (st.NamespaceTarget != null)
        {
            var target = Eval(st.NamespaceTarget);
            if (target is not Namespace ns)
                throw _map.Error("cannot assign attribute on non-namespace object", st.Pos);
            ns.Attrs[st.Targets[0]] = value;
            return;
        }
        Bind(_scope, st.Targets, value, st.Pos);
    }
}
