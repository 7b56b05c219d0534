using System.Globalization;

namespace Sputnik.Templates;

/// <summary>Expression grammar with jinja2's precedence:
/// ternary &lt; or &lt; and &lt; not &lt; comparison &lt; + - &lt; ~ &lt; * / // % &lt; ** &lt; unary &lt; postfix, filters, tests.</summary>
internal sealed partial class Parser
{
    private Expr ParseTuple(bool withCondExpr)
    {
        var pos = Cur.Pos;
        var first = ParseExpression(withCondExpr);
        if (!Cur.IsOp(",")) return first;
        var items = new List<Expr> { first };
        while (Cur.IsOp(","))
        {
            _i++;
            if (!StartsExpression(Cur)) break;
            items.Add(ParseExpression(withCondExpr));
        }
        return new TupleExpr(pos, [.. items]);
    }

    private static bool StartsExpression(Token t) => t.Kind switch
    {
        TokenKind.Name => t.Value is not ("in" or "if" or "else" or "and" or "or" or "recursive"),
        TokenKind.String or TokenKind.Integer or TokenKind.Float => true,
        TokenKind.Operator => t.Value is "(" or "[" or "{" or "-" or "+",
        _ => false,
    };

    private Expr ParseExpression(bool withCondExpr) => withCondExpr ? ParseCondExpr() : ParseOr();

    private Expr ParseCondExpr()
    {
        var expr = ParseOr();
        while (Cur.IsName("if"))
        {
            var pos = Next().Pos;
            var test = ParseOr();
            Expr? otherwise = null;
            if (Cur.IsName("else"))
            {
                _i++;
                otherwise = ParseCondExpr();
            }
            expr = new CondExpr(pos, test, expr, otherwise);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Cur.IsName("or"))
        {
            var pos = Next().Pos;
            left = new OrExpr(pos, left, ParseAnd());
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Cur.IsName("and"))
        {
            var pos = Next().Pos;
            left = new AndExpr(pos, left, ParseNot());
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (Cur.IsName("not"))
        {
            var pos = Next().Pos;
            return new UnaryExpr(pos, "not", ParseNot());
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var left = ParseMath1();
        Expr? chain = null;
        while (true)
        {
            var t = Cur;
            string op;
            if (t.Kind == TokenKind.Operator && t.Value is "==" or "!=" or "<" or ">" or "<=" or ">=")
            {
                op = t.Value;
                _i++;
            }
            else if (t.IsName("in"))
            {
                op = "in";
                _i++;
            }
            else if (t.IsName("not") && Peek().IsName("in"))
            {
                op = "notin";
                _i += 2;
            }
            else break;
            var right = ParseMath1();
            var cmp = new BinaryExpr(t.Pos, op, left, right);
            chain = chain == null ? cmp : new AndExpr(t.Pos, chain, cmp);
            left = right;
        }
        return chain ?? left;
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Cur.Kind == TokenKind.Operator && Cur.Value is "+" or "-")
        {
            var t = Next();
            left = new BinaryExpr(t.Pos, t.Value, left, ParseConcat());
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Cur.IsOp("~"))
        {
            var t = Next();
            left = new BinaryExpr(t.Pos, "~", left, ParseMath2());
        }
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Cur.Kind == TokenKind.Operator && Cur.Value is "*" or "/" or "//" or "%")
        {
            var t = Next();
            left = new BinaryExpr(t.Pos, t.Value, left, ParsePow());
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(true);
        while (Cur.IsOp("**"))
        {
            var t = Next();
            left = new BinaryExpr(t.Pos, "**", left, ParseUnary(true));
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Expr node;
        if (Cur.IsOp("-") || Cur.IsOp("+"))
        {
            var t = Next();
            node = new UnaryExpr(t.Pos, t.Value, ParseUnary(false));
        }
        else
        {
            node = ParsePostfix(ParsePrimary());
        }
        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimary()
    {
        var t = Next();
        switch (t.Kind)
        {
            case TokenKind.Name:
                return t.Value switch
                {
                    "true" or "True" => new LiteralExpr(t.Pos, true),
                    "false" or "False" => new LiteralExpr(t.Pos, false),
                    "none" or "None" => new LiteralExpr(t.Pos, null),
                    _ => new NameExpr(t.Pos, t.Value),
                };
            case TokenKind.String:
                var s = t.Value;
                while (Cur.Kind == TokenKind.String) s += Next().Value;
                return new LiteralExpr(t.Pos, s);
            case TokenKind.Integer:
                return new LiteralExpr(t.Pos, long.Parse(t.Value, CultureInfo.InvariantCulture));
            case TokenKind.Float:
                return new LiteralExpr(t.Pos, double.Parse(t.Value, CultureInfo.InvariantCulture));
            case TokenKind.Operator when t.Value == "(":
                if (Cur.IsOp(")"))
                {
                    _i++;
                    return new TupleExpr(t.Pos, []);
                }
                var inner = ParseTuple(true);
                if (Cur.IsOp(",")) _i++;
                ExpectOp(")");
                return inner;
            case TokenKind.Operator when t.Value == "[":
                var items = new List<Expr>();
                while (!Cur.IsOp("]"))
                {
                    if (items.Count > 0) ExpectOp(",");
                    if (Cur.IsOp("]")) break;
                    items.Add(ParseExpression(true));
                }
                _i++;
                return new ListExpr(t.Pos, [.. items]);
            case TokenKind.Operator when t.Value == "{":
                var pairs = new List<(Expr, Expr)>();
                while (!Cur.IsOp("}"))
                {
                    if (pairs.Count > 0) ExpectOp(",");
                    if (Cur.IsOp("}")) break;
                    var k = ParseExpression(true);
                    ExpectOp(":");
                    pairs.Add((k, ParseExpression(true)));
                }
                _i++;
                return new DictExpr(t.Pos, [.. pairs]);
            default:
                throw Error($"unexpected {t}", t.Pos);
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            var t = Cur;
            if (t.IsOp("."))
            {
                _i++;
                var n = Next();
                if (n.Kind == TokenKind.Name) node = new AttrExpr(t.Pos, node, n.Value);
                else if (n.Kind == TokenKind.Integer) node = new ItemExpr(t.Pos, node, new LiteralExpr(n.Pos, long.Parse(n.Value, CultureInfo.InvariantCulture)));
                else throw Unexpected(n, "an attribute name");
            }
            else if (t.IsOp("["))
            {
                _i++;
                node = ParseSubscript(t.Pos, node);
            }
            else if (t.IsOp("("))
            {
                node = new CallExpr(t.Pos, node, ParseCallArgs());
            }
            else return node;
        }
    }

    private Expr ParseSubscript(int pos, Expr target)
    {
        Expr? start = null;
        if (!Cur.IsOp(":")) start = ParseExpression(true);
        if (Cur.IsOp("]"))
        {
            _i++;
            return new ItemExpr(pos, target, start!);
        }
        ExpectOp(":");
        Expr? stop = null, step = null;
        if (!Cur.IsOp("]") && !Cur.IsOp(":")) stop = ParseExpression(true);
        if (Cur.IsOp(":"))
        {
            _i++;
            if (!Cur.IsOp("]")) step = ParseExpression(true);
        }
        ExpectOp("]");
        return new SliceExpr(pos, target, start, stop, step);
    }

    private CallArgs ParseCallArgs()
    {
        ExpectOp("(");
        var pos = new List<Expr>();
        var kws = new List<(string, Expr)>();
        while (!Cur.IsOp(")"))
        {
            if (pos.Count + kws.Count > 0) ExpectOp(",");
            if (Cur.IsOp(")")) break;
            if (Cur.Kind == TokenKind.Name && Peek().IsOp("="))
            {
                var name = Next().Value;
                _i++;
                kws.Add((name, ParseExpression(true)));
            }
            else
            {
                if (kws.Count > 0) throw Error("positional argument follows keyword argument", Cur.Pos);
                pos.Add(ParseExpression(true));
            }
        }
        _i++;
        return new CallArgs([.. pos], [.. kws]);
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            var t = Cur;
            if (t.IsOp("|"))
            {
                _i++;
                var nameTok = Cur;
                var name = ParseDottedName();
                var args = Cur.IsOp("(") ? ParseCallArgs() : CallArgs.None;
                node = new FilterExpr(nameTok.Pos, node, name, args);
            }
            else if (t.IsName("is"))
            {
                _i++;
                var negated = false;
                if (Cur.IsName("not"))
                {
                    _i++;
                    negated = true;
                }
                var nameTok = Cur;
                var name = nameTok.Kind == TokenKind.Name ? ParseDottedName() : throw Unexpected(nameTok, "a test name");
                CallArgs args;
                if (Cur.IsOp("(")) args = ParseCallArgs();
                else if (StartsTestArg(Cur)) args = new CallArgs([ParsePostfix(ParsePrimary())], []);
                else args = CallArgs.None;
                node = new TestExpr(nameTok.Pos, node, name, args, negated);
            }
            else if (t.IsOp("("))
            {
                node = new CallExpr(t.Pos, node, ParseCallArgs());
            }
            else return node;
        }
    }

    private static bool StartsTestArg(Token t) => t.Kind switch
    {
        TokenKind.Name => t.Value is not ("else" or "or" or "and" or "is" or "if" or "in" or "not"),
        TokenKind.String or TokenKind.Integer or TokenKind.Float => true,
        TokenKind.Operator => t.Value is "[" or "{",
        _ => false,
    };
}
