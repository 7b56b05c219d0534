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

    /// <summary>The answer is a complete value that nothing but whitespace could extend: generation can stop.</summary>
    public bool IsFinished => _json.IsFinished;

    public bool Allows(int token)
    {
        if (tokenizer.IsEndOfGeneration(token)) return _json.IsComplete;
        var bytes = tokenizer.PieceBytes(token);
        if (InAnswer) return bytes.Length > 0 && _json.CanAccept(bytes);
        // Before or inside thinking: free, unless the token reaches the answer; then its answer part must fit.
        if (!MayReachAnswer(bytes)) return true;
        string? answer = reasoning!.PreviewAnswer(Encoding.UTF8.GetString(bytes));
        return answer == null || _json.CanAccept(Encoding.UTF8.GetBytes(answer));
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
        reasoning!.State == ReasoningParser.Phase.BeforeThinking || bytes.Contains((byte)'>');
}
