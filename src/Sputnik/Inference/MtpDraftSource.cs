using System.Numerics.Tensors;
using Sputnik.Models;

namespace Sputnik.Inference;

/// <summary>
/// Self-speculation with the model's own Multi-Token Prediction head (<c>--spec-type mtp</c>). Pair i of the head's
/// cache is (the trunk's hidden state at i, the token at i+1); its output predicts the token at i+2. Before each
/// draft every new real pair is fed (the trunk's hidden states are kept for every cached position), the last one
/// drafting the first token; further tokens come from feeding the head its own output state and its own draft
/// (recursive, as llama.cpp's MTP for k > 1), and those speculative pairs are cut from its cache again.
/// </summary>
internal sealed class MtpDraftSource : IDraftSource
{
    private readonly IMtpModel _model;
    private readonly InferenceState _trunk, _head;
    private readonly int[] _fedTokens;  // the context the head's pairs were built from: pair i used tokens [0, i+1]
    private int _pairs;                  // real pairs in the head's cache

    public MtpDraftSource(IMtpModel model, InferenceState trunk)
    {
        if (!model.HasMtpHead) throw new ArgumentException("the model has no MTP head (nextn_predict_layers): --spec-type mtp needs one");
        _model = model;
        _trunk = trunk;
        _head = model.CreateMtpState(trunk.Capacity);
        _fedTokens = new int[trunk.Capacity + 1];
    }

    /// <summary>The source <paramref name="options"/> asks for when it is the MTP head; null for other types.</summary>
    public static MtpDraftSource? For(LanguageModel model, InferenceState state, SpeculationOptions options) =>
        options.Type != SpeculationType.Mtp ? null
        : model is IMtpModel { HasMtpHead: true } mtp ? new MtpDraftSource(mtp, state)
        : throw new ArgumentException($"speculation type mtp needs a model with an MTP head (nextn_predict_layers); this {model.Config.Architecture} model has none");

    public int Propose(ReadOnlySpan<int> context, Span<int> draft)
    {
        // The trunk holds every context token but the last (just sampled): hidden states 0..m−1, real pairs 0..m−1.
        int m = context.Length - 1;
        if (m < 1 || draft.IsEmpty || _trunk.Position != m || m > _head.Capacity) return 0;
        // Pairs built from tokens that are no longer the context (a new prompt, a context shift) are dropped.
        int same = context[..Math.Min(context.Length, _pairs + 1)].CommonPrefixLength(_fedTokens.AsSpan(0, _pairs + 1));
        // (The last real pair is always fed again when it is already in: its logits draft the first token.)
        _pairs = Math.Min(Math.Min(_pairs, m - 1), Math.Max(0, same - 1));
        _head.Truncate(_pairs);
        for (int i = _pairs; i < m; i++)
            _model.MtpForward(_head, _model.TrunkHidden(_trunk, i), context[i + 1], computeLogits: i == m - 1);
        context[..(m + 1)].CopyTo(_fedTokens);
        _pairs = m;
        int count = 0;
        draft[count++] = TensorPrimitives.IndexOfMax(_head.Logits);
        while (count < draft.Length && _head.Position < _head.Capacity)
        {
            _model.MtpForward(_head, _model.MtpHidden(_head), draft[count - 1], computeLogits: true);
            draft[count++] = TensorPrimitives.IndexOfMax(_head.Logits);
        }
        _head.Truncate(_pairs);
        return count;
    }
}
