namespace Sputnik.Templates;

/// <summary>Base of all AST nodes; <see cref="Pos"/> is the source offset used for error locations.</summary>
internal abstract record Node(int Pos);

// ---- expressions ----

internal abstract record Expr(int Pos) : Node(Pos);

internal sealed record LiteralExpr(int Pos, object? Value) : Expr(Pos);

internal sealed record NameExpr(int Pos, string Name) : Expr(Pos);

internal sealed record ListExpr(int Pos, Expr[] Items) : Expr(Pos);

internal sealed record TupleExpr(int Pos, Expr[] Items) : Expr(Pos);

internal sealed record DictExpr(int Pos, (Expr Key, Expr Value)[] Items) : Expr(Pos);

internal sealed record AttrExpr(int Pos, Expr Target, string Name) : Expr(Pos);

internal sealed record ItemExpr(int Pos, Expr Target, Expr Index) : Expr(Pos);

internal sealed record SliceExpr(int Pos, Expr Target, Expr? Start, Expr? Stop, Expr? Step) : Expr(Pos);

internal sealed record CallArgs(Expr[] Positional, (string Name, Expr Value)[] Keywords)
{
    public static readonly CallArgs None = new([], []);
}

internal sealed record CallExpr(int Pos, Expr Target, CallArgs Args) : Expr(Pos);

/// <summary><c>target | name(args)</c>; <see cref="Target"/> is null inside a <c>{% filter %}</c> block chain.</summary>
internal sealed record FilterExpr(int Pos, Expr? Target, string Name, CallArgs Args) : Expr(Pos);

internal sealed record TestExpr(int Pos, Expr Target, string Name, CallArgs Args, bool Negated) : Expr(Pos);

internal sealed record UnaryExpr(int Pos, string Op, Expr Operand) : Expr(Pos);

internal sealed record BinaryExpr(int Pos, string Op, Expr Left, Expr Right) : Expr(Pos);

internal sealed record AndExpr(int Pos, Expr Left, Expr Right) : Expr(Pos);

internal sealed record OrExpr(int Pos, Expr Left, Expr Right) : Expr(Pos);

internal sealed record CondExpr(int Pos, Expr Test, Expr Then, Expr? Else) : Expr(Pos);

// ---- statements ----

internal abstract record Stmt(int Pos) : Node(Pos);

internal sealed record TextStmt(int Pos, string Text) : Stmt(Pos);

internal sealed record OutputStmt(int Pos, Expr Value) : Stmt(Pos);

internal sealed record IfStmt(int Pos, (Expr Test, Stmt[] Body)[] Branches, Stmt[]? Else) : Stmt(Pos);

internal sealed record ForStmt(int Pos, string[] Targets, Expr Iter, Expr? Filter, Stmt[] Body, Stmt[]? Else) : Stmt(Pos);

/// <summary><c>set a = v</c>, <c>set a, b = v</c> (several targets) or <c>set ns.attr = v</c> (NamespaceTarget set).</summary>
internal sealed record SetStmt(int Pos, string[] Targets, Expr? NamespaceTarget, Expr Value) : Stmt(Pos);

internal sealed record SetBlockStmt(int Pos, string Target, FilterExpr[] Filters, Stmt[] Body) : Stmt(Pos);

internal sealed record MacroParam(string Name, Expr? Default);

internal sealed record MacroStmt(int Pos, string Name, MacroParam[] Params, Stmt[] Body) : Stmt(Pos);

internal sealed record CallBlockStmt(int Pos, CallExpr Call, MacroParam[] CallerParams, Stmt[] Body) : Stmt(Pos);

internal sealed record FilterBlockStmt(int Pos, FilterExpr[] Filters, Stmt[] Body) : Stmt(Pos);

internal sealed record BreakStmt(int Pos) : Stmt(Pos);

internal sealed record ContinueStmt(int Pos) : Stmt(Pos);

/// <summary><c>{% do expr %}</c>: evaluate and discard.</summary>
internal sealed record DoStmt(int Pos, Expr Value) : Stmt(Pos);
