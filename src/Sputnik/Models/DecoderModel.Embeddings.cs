using Sputnik.Tensors;

namespace Sputnik.Models;

// Embeddings: the final hidden state of every token (after output_norm), where generation would take logits.
internal abstract partial class DecoderModel
{
    public override void ForwardHidden(InferenceState state, ReadOnlySpan<int> tokens, Span<float> hidden)
    {
        var s = (DecoderState)state;
        CheckHiddenFeed(s, tokens, hidden);
        if (!Causal)
        {
            // Every token of an encoder's input sees every other: the input runs whole, as one packed sequence.
            if (s.Position > 0) throw new InvalidOperationException($"{Config.Architecture} is an encoder: an input is embedded whole, not appended to a sequence");
            ForwardHiddenPacked(s, tokens, [tokens.Length], hidden);
            return;
        }
        int dim = Config.Dim;
        int batch = Math.Max(1, MaxBatch);
        for (int i = 0; i < tokens.Length; i += batch)
        {
            int n = Math.Min(batch, tokens.Length - i);
            Batch(s, tokens.Slice(i, n), computeLogits: false); // leaves the chunk's residual rows in s.X
            FinalHidden(s, n, hidden.Slice(i * dim, n * dim));
        }
    }

    /// <summary>
    /// All the sequences in one pass: their rows go through every matrix together, and attention keeps each row to
    /// its own sequence (cache rows of the sequence only, RoPE at the row's position in it). A lone causal sequence
    /// (or each one, when the cache has sliding-window rings) runs in chunks of <see cref="MaxBatch"/> instead, as
    /// <see cref="ForwardHidden"/> does.
    /// </summary>
    public override void ForwardHiddenPacked(InferenceState state, ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths, Span<float> hidden)
    {
        var s = (DecoderState)state;
        CheckPacked(s, tokens, lengths, hidden);
        s.Truncate(0);
        if (Causal && (lengths.Length == 1 || s.Cache.HasRing))
        {
            // A sliding-window ring keeps only its window's rows, not every packed sequence's: one sequence at a time.
            try
            {
                for (int q = 0, at = 0; q < lengths.Length; at += lengths[q++])
                {
                    ForwardHidden(s, tokens.Slice(at, lengths[q]), hidden.Slice(at * Config.Dim, lengths[q] * Config.Dim));
                    s.Truncate(0);
                }
            }
            finally
            {
                s.Truncate(0);
            }
            return;
        }
        int n = tokens.Length;
        s.EnsureBatch(n, _maxInputBytes);
        s.Pack(lengths, TokenBlock);
        try
        {
            Embed(s, tokens);
            s.Seqs = null;
            s.Cache.Reserve(n);
            Layers(s, n);
            FinalHidden(s, n, hidden[..(n * Config.Dim)]);
        }
        finally
        {
            s.PackedCount = 0;
            s.Truncate(0);
        }
    }

    /// <summary>The n residual rows of s.X as final hidden states: through the output norm (an encoder's last layer has normed them already).</summary>
    private void FinalHidden(DecoderState s, int n, Span<float> hidden)
    {
        int dim = Config.Dim;
        if (_outputNorm == null)
        {
            s.X.AsSpan(0, n * dim).CopyTo(hidden);
            return;
        }
        for (int r = 0; r < n; r++)
            Ops.RmsNorm(s.X.AsSpan(r * dim, dim), _outputNorm, Config.RmsEps, hidden.Slice(r * dim, dim));
    }
}
