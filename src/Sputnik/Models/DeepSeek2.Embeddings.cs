using Sputnik.Tensors;

namespace Sputnik.Models;

// Embeddings: the final hidden state of every token (after output_norm), where generation would take logits.
internal sealed partial class DeepSeek2
{
    public override void ForwardHidden(InferenceState state, ReadOnlySpan<int> tokens, Span<float> hidden)
    {
        var s = state as State ?? throw new ArgumentException("state was not created by this model");
        CheckHiddenFeed(s, tokens, hidden);
        var c = DsConfig;
        int dim = c.Dim;
        if (tokens.Length == 1 || s.Latent == null)
        {
            // The paths Forward takes for these: token by token, the residual left in s.X.
            for (int i = 0; i < tokens.Length; i++)
            {
                Step(s, tokens[i], computeLogits: false);
                Ops.RmsNorm(s.X, _outputNorm, c.RmsEps, hidden.Slice(i * dim, dim));
            }
            return;
        }
        int batch = Math.Max(1, MaxBatch);
        for (int i = 0; i < tokens.Length; i += batch)
        {
            int n = Math.Min(batch, tokens.Length - i);
            Prefill(s, tokens.Slice(i, n), computeLogits: false); // leaves the chunk's residual rows in s.Prefill.X
            var x = s.Prefill!.X;
            for (int r = 0; r < n; r++)
                Ops.RmsNorm(x.AsSpan(r * dim, dim), _outputNorm, c.RmsEps, hidden.Slice((i + r) * dim, dim));
        }
    }
}
