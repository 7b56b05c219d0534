using Sputnik.Tensors;

namespace Sputnik.Models;

// Multi-sequence decode: one token from each of several sequences through one pass.
internal abstract partial class DecoderModel
{
    // Activations of a multi-sequence step live here rather than in any one sequence's state, so no state grows
    // batch-sized buffers (the logits rows alone are batch × vocab floats). Created on first use.
    private DecoderState? _batchScratch;

    /// <summary>
    /// The B sequences' rows go through every projection and FFN matrix together (the MatMul kernels read each
    /// weight tile once for all B tokens, so a step streams the weights once instead of B times); RoPE, the cache
    /// write and attention run per row against that row's own sequence and position.
    /// </summary>
    public override void ForwardBatch(IReadOnlyList<InferenceState> states, ReadOnlySpan<int> tokens)
    {
        if (IsEmbeddingOnly) throw NoLogits();
        CheckBatch(states, tokens);
        int n = states.Count;
        if (n == 0) return;
        if (n == 1)
        {
            // The matrix-vector path is the leaner one for a single token.
            Forward(states[0], tokens);
            return;
        }
        var c = Config;
        int dim = c.Dim, vocab = c.VocabSize, cap = 0;
        for (int i = 0; i < n; i++)
        {
            if (states[i] is not DecoderState) throw new ArgumentException($"state {i} was not created by this model", nameof(states));
            if (states[i].Cache.HasRing && states[i].Cache.Reusable(states[i].Position) != states[i].Position)
                throw new InvalidOperationException($"state {i}'s sliding-window cache no longer holds the window of position {states[i].Position}");
            cap = Math.Max(cap, states[i].Capacity);
        }

        var w = _batchScratch ??= new DecoderState(new KvCache(CacheLayerCount, 1, c.KvDim, KvCacheType.F32, c.HeadDim), c, RopeFrequencies(1), RopeMagnitude);
        if (w.SwiGluBody == null) BindJobs(w);
        w.EnsureBatch(n, _maxInputBytes);
        if (w.BatchLogits.Length < n * vocab) w.BatchLogits = new float[n * vocab];
        Embed(w, tokens);
        w.Seqs = states;
        w.SeqsCapacity = cap;
        w.ActSource = null;
        try
        {
            Layers(w, n);
            for (int i = 0; i < n; i++) Ops.RmsNorm(w.X.AsSpan(i * dim, dim), _outputNorm!, c.RmsEps, w.Xb.AsSpan(i * dim, dim));
            w.ActSource = null;
            Project(w, _output, w.Xb, n, w.BatchLogits);
            for (int i = 0; i < n; i++) FinishLogits(w.BatchLogits.AsSpan(i * vocab, vocab));
        }
        finally
        {
            w.Seqs = null; // hold no references to the caller's states between steps
        }
        // Positions advance only once every layer has written its row: a failure part way leaves each sequence
        // where it was, and a retry rewrites the same cache rows.
        for (int i = 0; i < n; i++)
        {
            var s = states[i];
            s.Cache.Length = s.Position + 1;
            w.BatchLogits.AsSpan(i * vocab, vocab).CopyTo(s.Logits);
        }
    }
}
