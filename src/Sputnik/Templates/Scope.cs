namespace Sputnik.Templates;

/// <summary>A variable frame; lookups walk outward through <see cref="Parent"/>.</summary>
internal sealed class Scope(Scope? parent, Dictionary<string, object?>? vars = null)
{
    public Dictionary<string, object?> Vars { get; } = vars ?? new Dictionary<string, object?>(4);

    public Scope? Parent { get; } = parent;

    public bool TryGet(string name, out object? value)
    {
        for (var s = this; s != null; s = s.Parent)
            if (s.Vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }
}

/// <summary>The <c>loop</c> variable inside a for loop.</summary>
internal sealed class LoopContext(IReadOnlyList<object?> items)
{
    public int Index0 { get; set; }

    public object? Attr(string name) => name switch
    {
        "index" => (long)Index0 + 1,
        "index0" => (long)Index0,
        "revindex" => (long)(items.Count - Index0),
        "revindex0" => (long)(items.Count - Index0 - 1),
        "first" => Index0 == 0,
        "last" => Index0 == items.Count - 1,
        "length" => (long)items.Count,
        "depth" => 1L,
        "depth0" => 0L,
        "previtem" => Index0 > 0 ? items[Index0 - 1] : Undefined.Named("previtem"),
        "nextitem" => Index0 + 1 < items.Count ? items[Index0 + 1] : Undefined.Named("nextitem"),
        "cycle" => new BuiltinFunction("loop.cycle", (_, a) =>
            a.Count == 0 ? throw new RuntimeFault("no items for cycling given") : a.Positional[Index0 % a.Count]),
        _ => Undefined.NoAttribute(this, name),
    };

    public override string ToString() => "<LoopContext>";
}

/// <summary>A macro (or the body of a call block, bound as <c>caller</c>) closed over its defining scope.</summary>
internal sealed class MacroValue(string name, MacroParam[] parameters, Stmt[] body, Scope closure) : Callable
{
    public string Name { get; } = name;

    public override object? Invoke(Evaluator ev, Args args)
    {
        var scope = new Scope(closure);
        if (args.Count > parameters.Length)
            throw new RuntimeFault($"macro '{Name}' takes not more than {parameters.Length} argument(s)");
        for (var i = 0; i < parameters.Length; i++)
        {
            var p = parameters[i];
            if (args.Has(i, p.Name)) scope.Vars[p.Name] = args.Get(i, p.Name);
        }
        foreach (var kv in args.Keywords)
        {
            if (kv.Key == "caller") scope.Vars["caller"] = kv.Value;
            else if (Array.FindIndex(parameters, p => p.Name == kv.Key) < 0)
                throw new RuntimeFault($"macro '{Name}' takes no keyword argument '{kv.Key}'");
        }
        return ev.RunMacro(scope, parameters, body);
    }
}

/// <summary>A method looked up on a value (<c>s.strip</c>, <c>d.items</c>, <c>l.append</c>) awaiting its call.</summary>
internal sealed class BoundMethod(object? target, string name) : Callable
{
    public override object? Invoke(Evaluator ev, Args args) => PyMethods.Call(target, name, args.WithPlainStrings());
}
