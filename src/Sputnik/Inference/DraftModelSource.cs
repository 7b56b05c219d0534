using Sputnik.Models;
using Sputnik.Tokenizers;

namespace Sputnik.Inference;

/// <summary>
/// Proposals from a smaller model with the target's vocabulary (llama.cpp's draft-simple): the draft decodes greedily
/// from the context, stopping early where its most likely token is less likely than <c>pMin</c>. The draft keeps
/// its own KV cache in step with the context: each call cuts it back to the prefix it shares with the context
/// (dropping the proposals the target rejected, and whatever came after a context shift) and feeds the rest.
/// One per sequence; it may outlive a generation, so the next turn reuses the draft's cache of the shared prefix.
/// </summary>
internal sealed class DraftModelSource : IDraftSource
{
    /// <summary>llama.cpp's SPEC_VOCAB_MAX_SIZE_DIFFERENCE: vocabularies may differ by this many (padding) tokens.</summary>
    public const int MaxVocabDifference = 128;
    /// <summary>llama.cpp's SPEC_VOCAB_CHECK_START_TOKEN_ID: the first few ids (control tokens) may differ in text.</summary>
    public const int FirstComparedToken = 5;

    private readonly LanguageModel _draft;
    private readonly InferenceState _state;
    private readonly List<int> _cached; // the tokens whose keys and values _state holds
    private readonly float _pMin;
    private readonly int _targetVocab;
    private readonly int[] _one = new int[1];

    /// <param name="draft">The draft model; its vocabulary must match the target's (<see cref="CheckCompatible"/>).</param>
    /// <param name="target">The tokenizer of the model that verifies the proposals.</param>
    /// <param name="targetVocab">Rows of the target's output (proposals past it are never made).</param>
    /// <param name="pMin">Stop drafting where the draft's top token has a lower probability than this (0: never).</param>
    public DraftModelSource(SputnikModel draft, Tokenizer target, int targetVocab, float pMin)
    {
        CheckCompatible(target, draft.Tokenizer);
        _draft = draft.Model;
        _state = draft.CreateState();
        _cached = new List<int>(_state.Capacity);
        _pMin = pMin;
        _targetVocab = targetVocab;
    }

    public int Propose(ReadOnlySpan<int> context, Span<int> draft)
    {
        int n = context.Length;
        int room = Math.Min(draft.Length, _state.Capacity - n); // the drafted tokens but the last go into the draft's cache
        if (n == 0 || room <= 0) return 0;
        // Keep the longest prefix shared with the context, but at least the last context token is fed: its logits start the draft.
        int shared = 0, limit = Math.Min(Math.Min(_cached.Count, _state.Position), n - 1);
        while (shared < limit && _cached[shared] == context[shared]) shared++;
        int kept = _state.Truncate(_state.Restorable(shared));
        _cached.RemoveRange(kept, _cached.Count - kept);
        _draft.Forward(_state, context[kept..]);
        for (int i = kept; i < n; i++) _cached.Add(context[i]);

        int count = 0;
        while (true)
        {
            int best = Best(_state.Logits, out float p);
            if (best >= _targetVocab || p < _pMin) break; // a padding id the target has no row for, or an unsure guess
            draft[count++] = best;
            if (count == room) break; // the last proposal need not go into the draft's cache
            _one[0] = best;
            _draft.Forward(_state, _one);
            _cached.Add(best);
        }
        return count;
    }

    /// <summary>The most likely token and its probability (computed only when <see cref="_pMin"/> asks for it).</summary>
    private int Best(float[] logits, out float probability)
    {
        int best = 0;
        float max = logits[0];
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > max) { max = logits[i]; best = i; }
        probability = 1;
        if (_pMin > 0)
        {
            double sum = 0;
            foreach (float l in logits) sum += Math.Exp(l - max);
            probability = (float)(1 / sum);
        }
        return best;
    }

    /// <summary>
    /// As llama.cpp checks a draft model: the same tokenizer type, the same BOS and EOS handling, vocabulary sizes
    /// within <see cref="MaxVocabDifference"/>, and the same text for every token from <see cref="FirstComparedToken"/>
    /// on. Throws ArgumentException saying what differs.
    /// </summary>
    public static void CheckCompatible(Tokenizer target, Tokenizer draft)
    {
        const string Prefix = "the draft model cannot propose tokens for this model: ";
        if (target.Model != draft.Model)
            throw new ArgumentException(Prefix + $"its tokenizer is '{Gguf.DisplayText.Name(draft.Model)}', the target's is '{Gguf.DisplayText.Name(target.Model)}'");
        if (target.AddBos != draft.AddBos || (target.AddBos && target.BosId != draft.BosId))
            throw new ArgumentException(Prefix + $"BOS differs (target: add {target.AddBos}, id {target.BosId}; draft: add {draft.AddBos}, id {draft.BosId})");
        if (target.AddEos != draft.AddEos || (target.AddEos && target.EosId != draft.EosId))
            throw new ArgumentException(Prefix + $"EOS differs (target: add {target.AddEos}, id {target.EosId}; draft: add {draft.AddEos}, id {draft.EosId})");
        if (Math.Abs(target.VocabSize - draft.VocabSize) > MaxVocabDifference)
            throw new ArgumentException(Prefix + $"its vocabulary has {draft.VocabSize} tokens, the target's {target.VocabSize} (at most {MaxVocabDifference} apart)");
        for (int id = FirstComparedToken; id < Math.Min(target.VocabSize, draft.VocabSize); id++)
            if (!target.PieceText(id).SequenceEqual(draft.PieceText(id)))
                throw new ArgumentException(Prefix + $"token {id} is '{Gguf.DisplayText.Name(target.TokenPiece(id))}' in the target and '{Gguf.DisplayText.Name(draft.TokenPiece(id))}' in the draft");
    }
}
