namespace Sputnik.Templates;

internal enum TokenKind
{
    Text,
    VarBegin,
    VarEnd,
    BlockBegin,
    BlockEnd,
    Name,
    String,
    Integer,
    Float,
    Operator,
    Eof,
}

/// <summary>One lexical token; <see cref="Pos"/> is an offset into the normalised source.</summary>
internal readonly record struct Token(TokenKind Kind, string Value, int Pos)
{
    public bool Is(TokenKind kind, string value) => Kind == kind && Value == value;

    public bool IsOp(string op) => Kind == TokenKind.Operator && Value == op;

    public bool IsName(string name) => Kind == TokenKind.Name && Value == name;

    public override string ToString() => Kind switch
    {
        TokenKind.Eof => "end of template",
        TokenKind.String => $"string '{Value}'",
        TokenKind.Text => "template data",
        _ => $"'{Value}'",
    };
}

/// <summary>Maps source offsets to 1-based line and column.</summary>
internal sealed class SourceMap
{
    private readonly int[] _lineStarts;

    public SourceMap(string source)
    {
        var starts = new List<int> { 0 };
        for (var i = 0; i < source.Length; i++)
            if (source[i] == '\n') starts.Add(i + 1);
        _lineStarts = [.. starts];
    }

    public (int Line, int Column) Locate(int pos)
    {
        var idx = Array.BinarySearch(_lineStarts, pos);
        if (idx < 0) idx = ~idx - 1;
        return (idx + 1, pos - _lineStarts[idx] + 1);
    }

    public TemplateException Error(string message, int pos)
    {
        var (l, c) = Locate(pos);
        return new TemplateException(message, l, c);
    }
}
