namespace Sputnik.Templates;

/// <summary>Environment switches that change how template source is lexed.</summary>
internal sealed record JinjaOptions(bool TrimBlocks = false, bool LstripBlocks = false)
{
    /// <summary>What transformers' apply_chat_template uses: trim_blocks and lstrip_blocks on.</summary>
    public static readonly JinjaOptions HuggingFace = new(true, true);
}

/// <summary>
/// A parsed Jinja template (the jinja2 subset real chat templates use). Parse once, render many times; rendering is
/// thread-safe. Context values are plain .NET objects: string, bool, int/long/double, null, lists, string-keyed
/// dictionaries, <see cref="System.Text.Json.JsonElement"/> or <see cref="System.Text.Json.Nodes.JsonNode"/>.
/// </summary>
internal sealed class JinjaTemplate
{
    private static readonly Scope GlobalScope = new(null, Globals.Create());

    private readonly Stmt[] _body;
    private readonly SourceMap _map;

    private JinjaTemplate(string source, Stmt[] body, SourceMap map)
    {
        Source = source;
        _body = body;
        _map = map;
    }

    public string Source { get; }

    /// <summary>Parses <paramref name="source"/>; lexer and parser errors are <see cref="TemplateException"/>s with line and column.</summary>
    public static JinjaTemplate Parse(string source, JinjaOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(source);
        options ??= new JinjaOptions();
        var normalized = Lexer.Normalize(source);
        var map = new SourceMap(normalized);
        var tokens = Lexer.Tokenize(normalized, options.TrimBlocks, options.LstripBlocks);
        return new JinjaTemplate(source, Parser.Parse(tokens, map), map);
    }

    /// <summary>Renders with <paramref name="context"/> as the template's variables.</summary>
    public string Render(IDictionary<string, object?> context) => Render(context, null);

    /// <summary>Renders; <paramref name="now"/> fixes what <c>strftime_now</c> sees (default: the local clock).</summary>
    public string Render(IDictionary<string, object?> context, DateTime? now)
    {
        ArgumentNullException.ThrowIfNull(context);
        var vars = new Dictionary<string, object?>(context.Count + 4);
        foreach (var kv in context) vars[kv.Key] = ValueConverter.FromDotNet(kv.Value);
        var root = new Scope(GlobalScope, vars);
        Func<DateTime> clock = now is { } fixedNow ? () => fixedNow : () => DateTime.Now;
        return new Evaluator(_map, root, clock).Render(_body);
    }
}
