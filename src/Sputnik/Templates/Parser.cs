namespace Sputnik.Templates;

/// <summary>Recursive-descent parser from tokens to statements; expressions live in Parser.Expressions.cs.</summary>
internal sealed partial class Parser
{
    private readonly List<Token> _tokens;
    private readonly SourceMap _map;
    private int _i;

    private Parser(List<Token> tokens, SourceMap map)
    {
        _tokens = tokens;
        _map = map;
    }

    public static Stmt[] Parse(List<Token> tokens, SourceMap map)
    {
        var p = new Parser(tokens, map);
        var body = p.ParseBody([], out _);
        return body;
    }

    private Token Cur => _tokens[_i];

    private Token Peek(int k = 1) => _tokens[Math.Min(_i + k, _tokens.Count - 1)];

    private Token Next() => _tokens[_i++];

    private TemplateException Error(string message, int pos) => _map.Error(message, pos);

    private TemplateException Unexpected(Token t, string expected) =>
        Error($"expected {expected}, got {t}", t.Pos);

    private void ExpectOp(string op)
    {
        if (!Cur.IsOp(op)) throw Unexpected(Cur, $"'{op}'");
        _i++;
    }

    private string ExpectName()
    {
        if (Cur.Kind != TokenKind.Name) throw Unexpected(Cur, "a name");
        return Next().Value;
    }

    private void ExpectBlockEnd()
    {
        if (Cur.Kind != TokenKind.BlockEnd) throw Unexpected(Cur, "end of statement block '%}'");
        _i++;
    }

    private static readonly HashSet<string> EndTags =
    [
        "endif", "elif", "else", "endfor", "endset", "endmacro", "endcall", "endfilter", "endgeneration", "endraw",
    ];

    /// <summary>Parses statements until one of <paramref name="ends"/> opens a block tag; that tag's name is consumed.</summary>
    private Stmt[] ParseBody(string[] ends, out string end)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var t = Cur;
            switch (t.Kind)
            {
                case TokenKind.Eof:
                    if (ends.Length > 0)
                        throw Error($"unexpected end of template, expected {string.Join(" or ", ends.Select(e => $"'{e}'"))}", t.Pos);
                    end = "";
                    return [.. body];
                case TokenKind.Text:
                    _i++;
                    body.Add(new TextStmt(t.Pos, t.Value));
                    break;
                case TokenKind.VarBegin:
                    _i++;
                    var e = ParseTuple(true);
                    if (Cur.Kind != TokenKind.VarEnd) throw Unexpected(Cur, "end of print statement '}}'");
                    _i++;
                    body.Add(new OutputStmt(t.Pos, e));
                    break;
                case TokenKind.BlockBegin:
                    _i++;
                    var kw = Cur;
                    if (kw.Kind != TokenKind.Name) throw Unexpected(kw, "a statement name");
                    if (Array.IndexOf(ends, kw.Value) >= 0)
                    {
                        _i++;
                        end = kw.Value;
                        return [.. body];
                    }
                    if (EndTags.Contains(kw.Value))
                        throw Error(ends.Length == 0
                            ? $"unexpected '{kw.Value}'"
                            : $"unexpected '{kw.Value}', expected {string.Join(" or ", ends.Select(x => $"'{x}'"))}", kw.Pos);
                    ParseStatement(body);
                    break;
                default:
                    throw Unexpected(t, "template data or a tag");
            }
        }
    }

    private void ParseStatement(List<Stmt> body)
    {
        var kw = Next();
        switch (kw.Value)
        {
            case "if": body.Add(ParseIf(kw.Pos)); break;
            case "for": body.Add(ParseFor(kw.Pos)); break;
            case "set": body.Add(ParseSet(kw.Pos)); break;
            case "macro": body.Add(ParseMacro(kw.Pos)); break;
            case "call": body.Add(ParseCallBlock(kw.Pos)); break;
            case "filter":
                var filters = ParseFilterChain();
                ExpectBlockEnd();
                body.Add(new FilterBlockStmt(kw.Pos, filters, ParseBody(["endfilter"], out _)));
                ExpectBlockEnd();
                break;
            case "break": ExpectBlockEnd(); body.Add(new BreakStmt(kw.Pos)); break;
            case "continue": ExpectBlockEnd(); body.Add(new ContinueStmt(kw.Pos)); break;
            case "do":
                var e = ParseTuple(true);
                ExpectBlockEnd();
                body.Add(new DoStmt(kw.Pos, e));
                break;
            case "generation":
                ExpectBlockEnd();
                body.AddRange(ParseBody(["endgeneration"], out _));
                ExpectBlockEnd();
                break;
            default:
                throw Error($"unknown tag '{kw.Value}'", kw.Pos);
        }
    }

    private IfStmt ParseIf(int pos)
    {
        var branches = new List<(Expr, Stmt[])>();
        Stmt[]? elseBody = null;
        var test = ParseTuple(true);
        ExpectBlockEnd();
        while (true)
        {
            var body = ParseBody(["elif", "else", "endif"], out var end);
            branches.Add((test, body));
            if (end == "elif")
            {
                test = ParseTuple(true);
                ExpectBlockEnd();
                continue;
            }
            if (end == "else")
            {
                ExpectBlockEnd();
                elseBody = ParseBody(["endif"], out _);
            }
            ExpectBlockEnd();
            return new IfStmt(pos, [.. branches], elseBody);
        }
    }

    private string[] ParseTargets()
    {
        var paren = Cur.IsOp("(");
        if (paren) _i++;
        var names = new List<string> { ExpectName() };
        while (Cur.IsOp(","))
        {
            _i++;
            if (Cur.Kind != TokenKind.Name || Cur.IsName("in")) break;
            names.Add(ExpectName());
        }
        if (paren) ExpectOp(")");
        return [.. names];
    }

    private ForStmt ParseFor(int pos)
    {
        var targets = ParseTargets();
        if (!Cur.IsName("in")) throw Unexpected(Cur, "'in'");
        _i++;
        var iter = ParseTuple(false);
        Expr? filter = null;
        if (Cur.IsName("if"))
        {
            _i++;
            filter = ParseExpression(true);
        }
        if (Cur.IsName("recursive")) throw Error("recursive for loops are not supported", Cur.Pos);
        ExpectBlockEnd();
        var body = ParseBody(["endfor", "else"], out var end);
        Stmt[]? elseBody = null;
        if (end == "else")
        {
            ExpectBlockEnd();
            elseBody = ParseBody(["endfor"], out _);
        }
        ExpectBlockEnd();
        return new ForStmt(pos, targets, iter, filter, body, elseBody);
    }

    private Stmt ParseSet(int pos)
    {
        var first = Cur;
        var name = ExpectName();
        if (Cur.IsOp("."))
        {
            _i++;
            var attr = ExpectName();
            ExpectOp("=");
            var v = ParseTuple(true);
            ExpectBlockEnd();
            return new SetStmt(pos, [attr], new NameExpr(first.Pos, name), v);
        }
        var targets = new List<string> { name };
        while (Cur.IsOp(","))
        {
            _i++;
            targets.Add(ExpectName());
        }
        if (Cur.IsOp("="))
        {
            _i++;
            var v = ParseTuple(true);
            ExpectBlockEnd();
            return new SetStmt(pos, [.. targets], null, v);
        }
        if (targets.Count > 1) throw Unexpected(Cur, "'='");
        var filters = Cur.IsOp("|") ? ParseFilterChain(skipLeadingPipe: true) : [];
        ExpectBlockEnd();
        var body = ParseBody(["endset"], out _);
        ExpectBlockEnd();
        return new SetBlockStmt(pos, name, filters, body);
    }

    private MacroParam[] ParseParams()
    {
        var ps = new List<MacroParam>();
        ExpectOp("(");
        while (!Cur.IsOp(")"))
        {
            if (ps.Count > 0) ExpectOp(",");
            if (Cur.IsOp(")")) break;
            var n = ExpectName();
            Expr? def = null;
            if (Cur.IsOp("="))
            {
                _i++;
                def = ParseExpression(true);
            }
            ps.Add(new MacroParam(n, def));
        }
        _i++;
        return [.. ps];
    }

    private MacroStmt ParseMacro(int pos)
    {
        var name = ExpectName();
        var ps = ParseParams();
        ExpectBlockEnd();
        var body = ParseBody(["endmacro"], out _);
        ExpectBlockEnd();
        return new MacroStmt(pos, name, ps, body);
    }

    private CallBlockStmt ParseCallBlock(int pos)
    {
        var ps = Cur.IsOp("(") ? ParseParams() : [];
        var e = ParseExpression(true);
        if (e is not CallExpr call) throw Error("expected a call expression after 'call'", e.Pos);
        ExpectBlockEnd();
        var body = ParseBody(["endcall"], out _);
        ExpectBlockEnd();
        return new CallBlockStmt(pos, call, ps, body);
    }

    private FilterExpr[] ParseFilterChain(bool skipLeadingPipe = false)
    {
        var list = new List<FilterExpr>();
        if (skipLeadingPipe) ExpectOp("|");
        while (true)
        {
            var t = Cur;
            var name = ParseDottedName();
            var args = Cur.IsOp("(") ? ParseCallArgs() : CallArgs.None;
            list.Add(new FilterExpr(t.Pos, null, name, args));
            if (!Cur.IsOp("|")) break;
            _i++;
        }
        return [.. list];
    }

    private string ParseDottedName()
    {
        var name = ExpectName();
        while (Cur.IsOp(".") && Peek().Kind == TokenKind.Name)
        {
            _i++;
            name += "." + Next().Value;
        }
        return name;
    }
}
