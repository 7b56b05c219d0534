using Sputnik.Tensors;

namespace Sputnik.Models;

// Embeddings: the final hidden state of every token (after output_norm), where generation would take logits.
internal abstract partial class DecoderModel
{
    public override void ForwardHidden(InferenceState state, ReadOnlySpan<int> tokens, Span<float> hidden)
    {
        var s = (DecoderState)state;
        int dim = Config.Dim;
        CheckHiddenFeed(s, tokens, hidden);
        int batch = Math.Max(1, MaxBatch);
        for (int i = 0; i < tokens.Length; i += batch)
        {
            int n = Math.Min(batch, tokens.Length - i);
            Batch(s, tokens.Slice(i, n), computeLogits: false); // leaves the chunk's residual rows in s.X
            for (int r = 0; r < n; r++)
                Ops.RmsNorm(s.X.AsSpan(r * dim, dim), _outputNorm, Config.RmsEps, hidden.Slice((i + r) * dim, dim));
        }
    }
}
