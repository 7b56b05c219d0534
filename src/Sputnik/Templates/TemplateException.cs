namespace Sputnik.Templates;

/// <summary>
/// A lexer, parser or runtime error in a Jinja template. <see cref="Line"/> and <see cref="Column"/> are 1-based
/// and name the place in the template source; a template's own <c>raise_exception(msg)</c> also lands here with
/// <see cref="Exception.Message"/> containing the message text.
/// </summary>
public class TemplateException : Exception
{
    /// <summary>An error at a template position (1-based line and column).</summary>
    public TemplateException(string message, int line, int column, Exception? inner = null)
        : base(line > 0 ? $"{message} (line {line}, column {column})" : message, inner)
    {
        Reason = message;
        Line = line;
        Column = column;
    }

    /// <summary>The error text without the location suffix.</summary>
    public string Reason { get; }

    /// <summary>1-based template line of the error.</summary>
    public int Line { get; }

    /// <summary>1-based template column of the error.</summary>
    public int Column { get; }
}

/// <summary>Raised by a template's <c>raise_exception(msg)</c> call.</summary>
public sealed class TemplateRaisedException(string message, int line, int column)
    : TemplateException(message, line, column);

/// <summary>Use of an undefined value in a way jinja2's default Undefined refuses (attribute, arithmetic, ...).</summary>
public sealed class UndefinedValueException(string message, int line, int column)
    : TemplateException(message, line, column);

internal enum FaultKind
{
    Type,
    Undefined,
    Raised,
}

/// <summary>Internal: a runtime error raised deep in value code, positioned by the evaluator on the way out.</summary>
internal sealed class RuntimeFault(string message, FaultKind kind = FaultKind.Type) : Exception(message)
{
    public RuntimeFault(string message, bool undefined)
        : this(message, undefined ? FaultKind.Undefined : FaultKind.Type)
    {
    }

    public FaultKind Kind { get; } = kind;
}
