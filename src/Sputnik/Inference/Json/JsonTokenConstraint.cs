using System.Text;
using Sputnik.Tokenizers;

namespace Sputnik.Inference.Json;

/// <summary>
/// Constrained decoding at the token level: a token is allowed when its bytes keep the answer a valid prefix of a
/// value the schema accepts, and end of generation only once that value is complete. With reasoning, thinking stays
/// free: the constraint starts with the answer text, including the part of a token after the close tag.
/// </summary>
internal sealed class JsonTokenConstraint(SchemaNode schema, Tokenizer tokenizer, ReasoningParser? reasoning) : ITokenFilter
{
    private readonly JsonRecognizer _json = new(schema);

    /// <summary>
    /// Tokens left for the answer, this one included (max_tokens or the context, whichever ends first). A token is
    /// allowed only if the value can still be completed in the tokens after it, a byte each at worst, so the answer
    /// closes before the limit instead of being cut off.
    /// </summary>
    public int Budget { get; set; } = int.MaxValue;

    /// <summary>Set when no token fitted the budget (a vocabulary without the single characters to close with).</summary>
    public bool BudgetRelaxed { get; private set; }

    public void RelaxBudget() => BudgetRelaxed = true;

    private int MaxBytesAfter => BudgetRelaxed || Budget == int.MaxValue ? int.MaxValue : Math.Max(0, Budget - 1);

    /// <summary>The answer is a complete value that nothing but whitespace could extend: generation can stop.</summary>
    public bool IsFinished => _json.IsFinished;

    public bool Allows(int token)
    {
        if (tokenizer.IsEndOfGeneration(token)) return _json.IsComplete;
        var bytes = tokenizer.PieceBytes(token);
        if (InAnswer) return bytes.Length > 0 && _json.CanAccept(bytes, MaxBytesAfter);
        // Before or inside thinking: free, unless the token reaches the answer; then its answer part must fit.
        if (!MayReachAnswer(bytes)) return true;
        string? answer = reasoning!.PreviewAnswer(Encoding.UTF8.GetString(bytes));
        return answer == null || _json.CanAccept(Encoding.UTF8.GetBytes(answer), MaxBytesAfter);
    }

    /// <summary>Takes a sampled token; call before the reasoning parser sees its text.</summary>
    public void Accept(int token)
    {
        if (tokenizer.IsEndOfGeneration(token)) return;
        var bytes = tokenizer.PieceBytes(token);
        if (InAnswer) _json.Accept(bytes);
        else if (MayReachAnswer(bytes) && reasoning!.PreviewAnswer(Encoding.UTF8.GetString(bytes)) is { Length: > 0 } answer)
            _json.Accept(Encoding.UTF8.GetBytes(answer));
    }

    private bool InAnswer => reasoning == null || reasoning.State == ReasoningParser.Phase.Answer;

    // Inside thinking only a token that can finish the close tag ends it; before thinking any token may start the answer.
    private bool MayReachAnswer(ReadOnlySpan<byte> bytes) =>
        reasoning!.State == ReasoningParser.Phase.BeforeThinking || bytes.Contains((byte)reasoning.CloseTagEnd);
}
