using System.Globalization;
using System.Text;

namespace Sputnik.Templates;

/// <summary>
/// Splits Jinja source into template data and tag tokens, applying jinja2's whitespace rules:
/// <c>{%-</c>/<c>-%}</c> stripping, trim_blocks (drop the newline after a block or comment tag) and
/// lstrip_blocks (drop indentation before a block or comment tag). Newlines are normalised to <c>\n</c> and
/// one trailing newline is dropped, as jinja2 does with keep_trailing_newline=False.
/// </summary>
internal sealed class Lexer
{
    private static readonly string[] Operators2 = ["//", "**", "==", "!=", "<=", ">="];
    private const string Operators1 = "+-*/%~<>=()[]{},.:|";

    private readonly string _src;
    private readonly bool _trimBlocks;
    private readonly bool _lstripBlocks;
    private readonly SourceMap _map;
    private readonly List<Token> _tokens = [];
    private int _pos;

    private Lexer(string src, bool trimBlocks, bool lstripBlocks)
    {
        _src = src;
        _trimBlocks = trimBlocks;
        _lstripBlocks = lstripBlocks;
        _map = new SourceMap(src);
    }

    public static string Normalize(string source)
    {
        var s = source.Contains('\r') ? source.Replace("\r\n", "\n").Replace('\r', '\n') : source;
        return s.EndsWith('\n') ? s[..^1] : s;
    }

    /// <summary>Tokenises already-normalised source (see <see cref="Normalize"/>).</summary>
    public static List<Token> Tokenize(string normalized, bool trimBlocks, bool lstripBlocks)
    {
        var lexer = new Lexer(normalized, trimBlocks, lstripBlocks);
        lexer.Run();
        return lexer._tokens;
    }

    private void Run()
    {
        var lineStarting = true;
        while (_pos < _src.Length)
        {
            var idx = FindTagStart(_pos);
            if (idx < 0)
            {
                _tokens.Add(new Token(TokenKind.Text, _src[_pos..], _pos));
                _pos = _src.Length;
                break;
            }
            var kind = _src[idx + 1];
            var sign = idx + 2 < _src.Length && (_src[idx + 2] == '-' || _src[idx + 2] == '+') ? _src[idx + 2] : '\0';
            var text = _src[_pos..idx];
            var isRaw = kind == '%' && IsRawStart(idx + 2 + (sign == '\0' ? 0 : 1), out _);
            text = StripBefore(text, sign, kind != '{', lineStarting);
            if (text.Length > 0) _tokens.Add(new Token(TokenKind.Text, text, _pos));
            var p = idx + 2 + (sign == '\0' ? 0 : 1);
            if (isRaw) p = LexRaw(idx, p);
            else if (kind == '#') p = LexComment(idx, p);
            else p = LexTag(idx, p, kind == '%');
            _pos = p;
            lineStarting = p > 0 && _src[p - 1] == '\n';
        }
        _tokens.Add(new Token(TokenKind.Eof, "", _src.Length));
    }

    private int FindTagStart(int from)
    {
        for (var i = _src.IndexOf('{', from); i >= 0 && i + 1 < _src.Length; i = _src.IndexOf('{', i + 1))
        {
            var c = _src[i + 1];
            if (c == '{' || c == '%' || c == '#') return i;
        }
        return -1;
    }

    private string StripBefore(string text, char sign, bool lstripEligible, bool lineStarting)
    {
        if (sign == '-') return text.TrimEnd();
        if (sign == '+' || !_lstripBlocks || !lstripEligible) return text;
        var lpos = text.LastIndexOf('\n') + 1;
        if (lpos == 0 && !lineStarting) return text;
        if (lpos == text.Length) return text;
        for (var i = lpos; i < text.Length; i++)
            if (!char.IsWhiteSpace(text[i])) return text;
        return text[..lpos];
    }

    private int AfterEnd(int p, bool minus, bool block)
    {
        if (minus)
        {
            while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        }
        else if (block && _trimBlocks && p < _src.Length && _src[p] == '\n')
        {
            p++;
        }
        return p;
    }

    private int LexComment(int start, int p)
    {
        var end = _src.IndexOf("#}", p, StringComparison.Ordinal);
        if (end < 0) throw _map.Error("missing end of comment tag", start);
        var minus = end > p && _src[end - 1] == '-';
        return AfterEnd(end + 2, minus, true);
    }

    private bool IsRawStart(int p, out int afterTag)
    {
        afterTag = -1;
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        if (string.CompareOrdinal(_src, p, "raw", 0, 3) != 0) return false;
        p += 3;
        if (p < _src.Length && (char.IsLetterOrDigit(_src[p]) || _src[p] == '_')) return false;
        while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
        var minus = p < _src.Length && _src[p] == '-';
        if (minus) p++;
        if (string.CompareOrdinal(_src, p, "%}", 0, 2) != 0) return false;
        afterTag = AfterEnd(p + 2, minus, false); // jinja2 applies no trim_blocks after {% raw %}
        return true;
    }

    private int LexRaw(int start, int p)
    {
        IsRawStart(p, out var bodyStart);
        for (var i = _src.IndexOf("{%", bodyStart, StringComparison.Ordinal); i >= 0; i = _src.IndexOf("{%", i + 2, StringComparison.Ordinal))
        {
            var q = i + 2;
            var sign = q < _src.Length && (_src[q] == '-' || _src[q] == '+') ? _src[q] : '\0';
            if (sign != '\0') q++;
            while (q < _src.Length && char.IsWhiteSpace(_src[q])) q++;
            if (string.CompareOrdinal(_src, q, "endraw", 0, 6) != 0) continue;
            q += 6;
            while (q < _src.Length && char.IsWhiteSpace(_src[q])) q++;
            var minus = q < _src.Length && _src[q] == '-';
            if (minus) q++;
            if (string.CompareOrdinal(_src, q, "%}", 0, 2) != 0) continue;
            var body = StripBefore(_src[bodyStart..i], sign, true, bodyStart > 0 && _src[bodyStart - 1] == '\n');
            if (body.Length > 0) _tokens.Add(new Token(TokenKind.Text, body, bodyStart));
            return AfterEnd(q + 2, minus, true);
        }
        throw _map.Error("missing end of raw directive", start);
    }

    private int LexTag(int start, int p, bool block)
    {
        _tokens.Add(new Token(block ? TokenKind.BlockBegin : TokenKind.VarBegin, block ? "{%" : "{{", start));
        var depth = 0;
        while (true)
        {
            while (p < _src.Length && char.IsWhiteSpace(_src[p])) p++;
            if (p >= _src.Length)
                throw _map.Error(block ? "unexpected end of template, expected '%}'" : "unexpected end of template, expected '}}'", start);
            if (depth == 0)
            {
                var close = block ? "%}" : "}}";
                var minus = _src[p] == '-' && string.CompareOrdinal(_src, p + 1, close, 0, 2) == 0;
                var plus = block && _src[p] == '+' && string.CompareOrdinal(_src, p + 1, close, 0, 2) == 0;
                if (minus || plus || string.CompareOrdinal(_src, p, close, 0, 2) == 0)
                {
                    _tokens.Add(new Token(block ? TokenKind.BlockEnd : TokenKind.VarEnd, close, p));
                    var after = p + 2 + (minus || plus ? 1 : 0);
                    return AfterEnd(after, minus, block && !plus);
                }
            }
            var c = _src[p];
            if (char.IsLetter(c) || c == '_')
            {
                var s = p;
                while (p < _src.Length && (char.IsLetterOrDigit(_src[p]) || _src[p] == '_')) p++;
                _tokens.Add(new Token(TokenKind.Name, _src[s..p], s));
            }
            else if (char.IsAsciiDigit(c))
            {
                p = LexNumber(p);
            }
            else if (c == '\'' || c == '"')
            {
                p = LexString(p);
            }
            else
            {
                var op = MatchOperator(p) ?? throw _map.Error($"unexpected char '{c}'", p);
                if (op is "(" or "[" or "{") depth++;
                else if (op is ")" or "]" or "}") depth = Math.Max(0, depth - 1);
                _tokens.Add(new Token(TokenKind.Operator, op, p));
                p += op.Length;
            }
        }
    }

    private string? MatchOperator(int p)
    {
        foreach (var op in Operators2)
            if (string.CompareOrdinal(_src, p, op, 0, 2) == 0) return op;
        return Operators1.Contains(_src[p]) ? _src[p].ToString() : null;
    }

    private int LexNumber(int p)
    {
        var s = p;
        while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || _src[p] == '_')) p++;
        var isFloat = false;
        if (p + 1 < _src.Length && _src[p] == '.' && char.IsAsciiDigit(_src[p + 1]))
        {
            isFloat = true;
            p++;
            while (p < _src.Length && (char.IsAsciiDigit(_src[p]) || _src[p] == '_')) p++;
        }
        if (p < _src.Length && (_src[p] == 'e' || _src[p] == 'E'))
        {
            var q = p + 1;
            if (q < _src.Length && (_src[q] == '+' || _src[q] == '-')) q++;
            if (q < _src.Length && char.IsAsciiDigit(_src[q]))
            {
                isFloat = true;
                p = q;
                while (p < _src.Length && char.IsAsciiDigit(_src[p])) p++;
            }
        }
        var text = _src[s..p].Replace("_", "");
        _tokens.Add(new Token(isFloat ? TokenKind.Float : TokenKind.Integer, text, s));
        return p;
    }

    private int LexString(int p)
    {
        var quote = _src[p];
        var s = p++;
        var sb = new StringBuilder();
        while (true)
        {
            if (p >= _src.Length) throw _map.Error("unexpected end of string", s);
            var c = _src[p];
            if (c == quote) { p++; break; }
            if (c != '\\') { sb.Append(c); p++; continue; }
            if (p + 1 >= _src.Length) throw _map.Error("unexpected end of string", s);
            var e = _src[p + 1];
            p += 2;
            switch (e)
            {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case '\\': sb.Append('\\'); break;
                case '\'': sb.Append('\''); break;
                case '"': sb.Append('"'); break;
                case 'a': sb.Append('\a'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'v': sb.Append('\v'); break;
                case '\n': break;
                case 'x': p = AppendHex(sb, p, 2, s); break;
                case 'u': p = AppendHex(sb, p, 4, s); break;
                case 'U': p = AppendHex(sb, p, 8, s); break;
                case >= '0' and <= '7':
                    var v = e - '0';
                    for (var k = 0; k < 2 && p < _src.Length && _src[p] is >= '0' and <= '7'; k++, p++) v = v * 8 + (_src[p] - '0');
                    sb.Append((char)v);
                    break;
                default: sb.Append('\\').Append(e); break;
            }
        }
        _tokens.Add(new Token(TokenKind.String, sb.ToString(), s));
        return p;
    }

    private int AppendHex(StringBuilder sb, int p, int n, int start)
    {
        if (p + n > _src.Length || !int.TryParse(_src.AsSpan(p, n), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var cp))
            throw _map.Error("truncated \\x/\\u escape in string", start);
        sb.Append(char.ConvertFromUtf32(cp));
        return p + n;
    }
}
