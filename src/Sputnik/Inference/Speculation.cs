using Sputnik.Models;

namespace Sputnik.Inference;

/// <summary>Where speculative decoding gets its proposed tokens.</summary>
public enum SpeculationType
{
    /// <summary>No speculation: one forward per generated token.</summary>
    None,
    /// <summary>Prompt lookup: find the last n tokens earlier in the context and propose what followed them (llama.cpp's ngram-simple).</summary>
    NgramSimple,
    /// <summary>A rolling table from every n-gram seen so far to the token that last followed it, chained (llama.cpp's ngram-mod).</summary>
    NgramMod,
    /// <summary>A smaller model with the same vocabulary drafts greedily (llama.cpp's draft-simple, -md).</summary>
    DraftSimple,
    /// <summary>The model's own Multi-Token Prediction head (DeepSeek-V3 MTP, nextn layers), recursive past one token (<see cref="MtpDraftSource"/>).</summary>
    Mtp,
}

/// <summary>
/// Speculative decoding settings. Proposed tokens are checked in one batched forward; a proposal is kept only where
/// the sampler, run on the verified logits exactly as without speculation, picks the same token, so the output
/// (greedy, or seeded sampling) is the same as without speculation.
/// </summary>
public sealed record SpeculationOptions
{
    /// <summary>Where proposals come from; <see cref="SpeculationType.None"/> turns speculation off.</summary>
    public SpeculationType Type { get; init; } = SpeculationType.None;
    /// <summary>Length of the n-gram looked up (llama.cpp's --spec-ngram-size-n).</summary>
    public int NgramSize { get; init; } = 3;
    /// <summary>Most tokens proposed per verification (llama.cpp's --draft-max).</summary>
    public int DraftMax { get; init; } = 16;
    /// <summary>Fewer proposed tokens than this are not worth a batched verification: decode one token instead (--draft-min).</summary>
    public int DraftMin { get; init; }
    /// <summary>A draft model stops proposing where its most likely token is less likely than this (--draft-p-min; 0: never).</summary>
    public float DraftPMin { get; init; }
    /// <summary>
    /// The draft model of <see cref="SpeculationType.DraftSimple"/> (loaded and disposed by the caller, as the target
    /// is); its vocabulary must be the target's. Setting it with <see cref="Type"/> left at None chooses DraftSimple.
    /// </summary>
    public SputnikModel? DraftModel { get; init; }

    /// <summary>Whether a proposal source is chosen.</summary>
    public bool Enabled => Type != SpeculationType.None || DraftModel != null;

    /// <summary>Throws ArgumentException naming the first setting out of range.</summary>
    public void Validate()
    {
        if (NgramSize is < 1 or > 1024) throw new ArgumentException($"n-gram size {NgramSize} must be between 1 and 1024");
        if (DraftMax is < 1 or > 256) throw new ArgumentException($"draft max {DraftMax} must be between 1 and 256");
        if (DraftMin < 0 || DraftMin > DraftMax) throw new ArgumentException($"draft min {DraftMin} must be between 0 and draft max ({DraftMax})");
        if (!(DraftPMin is >= 0 and <= 1)) throw new ArgumentException($"draft p-min {DraftPMin} must be between 0 and 1");
        if (Type == SpeculationType.DraftSimple && DraftModel == null) throw new ArgumentException("draft-simple speculation needs a draft model (-md FILE)");
        if (DraftModel != null && Type is not (SpeculationType.None or SpeculationType.DraftSimple))
            throw new ArgumentException($"a draft model and {Name(Type)} speculation: choose one");
    }

    /// <summary>llama.cpp's --spec-type names.</summary>
    public static bool TryParseType(string text, out SpeculationType type)
    {
        switch (text.Trim().ToLowerInvariant())
        {
            case "none": type = SpeculationType.None; return true;
            case "ngram-simple": type = SpeculationType.NgramSimple; return true;
            case "ngram-mod": type = SpeculationType.NgramMod; return true;
            case "draft-simple": type = SpeculationType.DraftSimple; return true;
            case "mtp": type = SpeculationType.Mtp; return true;
            default: type = SpeculationType.None; return false;
        }
    }

    /// <summary>The llama.cpp name of <paramref name="type"/>.</summary>
    public static string Name(SpeculationType type) => type switch
    {
        SpeculationType.NgramSimple => "ngram-simple",
        SpeculationType.NgramMod => "ngram-mod",
        SpeculationType.DraftSimple => "draft-simple",
        SpeculationType.Mtp => "mtp",
        _ => "none",
    };
}

/// <summary>Proposes tokens likely to follow a context, without running the model.</summary>
internal interface IDraftSource
{
    /// <summary>Writes up to draft.Length proposed continuations of <paramref name="context"/>; returns how many.</summary>
    int Propose(ReadOnlySpan<int> context, Span<int> draft);
}

/// <summary>
/// Prompt lookup: the most recent earlier occurrence of the context's last n tokens, and the tokens that followed it.
/// A linear scan back over the context: cheap next to a forward pass at the context sizes a CPU runs.
/// </summary>
internal sealed class NgramLookup(int n) : IDraftSource
{
    public int Propose(ReadOnlySpan<int> context, Span<int> draft)
    {
        if (context.Length <= n) return 0;
        var key = context[^n..];
        for (int start = context.Length - n - 1; start >= 0; start--)
        {
            if (!context.Slice(start, n).SequenceEqual(key)) continue;
            int from = start + n, count = Math.Min(draft.Length, context.Length - from);
            context.Slice(from, count).CopyTo(draft);
            return count;
        }
        return 0;
    }
}

/// <summary>
/// A table from the hash of every n-gram seen so far to the token that last followed it; a draft chains lookups
/// (the proposed token extends the key for the next). The table is updated incrementally as the context grows and
/// rebuilt when the context is not an extension of what it saw (a new prompt, a context shift).
/// </summary>
internal sealed class NgramTable(int n) : IDraftSource
{
    private const int Bits = 18; // 256 Ki entries, 1 MiB: collisions only cost a bad proposal, never a wrong output
    private readonly int[] _next = new int[1 << Bits];
    private readonly int[] _key = new int[n];
    private int _seen, _lastSeen; // context tokens already in the table, and the last of them

    public int Propose(ReadOnlySpan<int> context, Span<int> draft)
    {
        Sync(context);
        if (context.Length < n) return 0;
        context[^n..].CopyTo(_key);
        int count = 0;
        while (count < draft.Length)
        {
            int t = _next[Slot(_key)] - 1;
            if (t < 0) break;
            draft[count++] = t;
            Array.Copy(_key, 1, _key, 0, n - 1);
            _key[n - 1] = t;
        }
        return count;
    }

    private void Sync(ReadOnlySpan<int> context)
    {
        // Checking only the last seen token keeps this O(new tokens); a stale entry it misses costs a rejected
        // proposal, never a wrong output.
        if (_seen > context.Length || (_seen > 0 && context[_seen - 1] != _lastSeen))
        {
            Array.Clear(_next);
            _seen = 0;
        }
        for (int i = Math.Max(_seen, n); i < context.Length; i++)
            _next[Slot(context.Slice(i - n, n))] = context[i] + 1; // 0 marks an empty slot
        _seen = context.Length;
        if (_seen > 0) _lastSeen = context[_seen - 1];
    }

    private static int Slot(ReadOnlySpan<int> gram)
    {
        ulong h = 14695981039346656037UL;
        foreach (int t in gram) h = (h ^ (uint)t) * 1099511628211UL;
        return (int)(h >> (64 - Bits));
    }
}

/// <summary>
/// One sequence's speculation: proposes tokens after a sampled one, feeds them all in one forward that keeps the
/// logits of every position, and hands those rows out one by one while the sampler keeps agreeing with the
/// proposals. The first disagreement truncates the cache back past the rejected proposals.
/// </summary>
internal sealed class Speculator
{
    private readonly LanguageModel _model;
    private readonly SpeculationOptions _options;
    private readonly IDraftSource _source;
    private readonly int[] _block;   // the sampled token followed by the proposals
    private float[] _rows = [];      // logits after each token of _block
    private int _drafted, _next;     // proposals in the block; index of the next one to check

    /// <param name="model">The model that verifies proposals.</param>
    /// <param name="options">Limits.</param>
    /// <param name="source">Where proposals come from (<see cref="CreateSource"/> makes the one the options name).</param>
    public Speculator(LanguageModel model, SpeculationOptions options, IDraftSource source)
    {
        options.Validate();
        _model = model;
        _options = options;
        _source = source;
        _block = new int[options.DraftMax + 1];
    }

    /// <summary>The proposal source <paramref name="options"/> names, for one sequence (<paramref name="state"/>: mtp drafts from its hidden states) of the target model.</summary>
    public static IDraftSource CreateSource(SpeculationOptions options, LanguageModel target, Tokenizers.Tokenizer targetTokenizer, InferenceState? state = null) =>
        options.DraftModel is { } draft ? new DraftModelSource(draft, targetTokenizer, target.Config.VocabSize, options.DraftPMin) : options.Type switch
        {
            SpeculationType.NgramSimple => new NgramLookup(options.NgramSize),
            SpeculationType.NgramMod => new NgramTable(options.NgramSize),
            SpeculationType.Mtp when state != null => MtpDraftSource.For(target, state, options)!,
            _ => throw new ArgumentException($"speculation type {SpeculationOptions.Name(options.Type)} has no draft source"),
        };

    public int Drafted { get; private set; }
    public int Accepted { get; private set; }
    /// <summary>Batched verifications run.</summary>
    public int Verifications { get; private set; }

    /// <summary>Proposals fed but not yet checked against the sampler.</summary>
    public int Pending => _drafted - _next;

    /// <summary>
    /// Whether <paramref name="token"/>, just sampled, is the next proposal (already in the cache). If so the state's
    /// logits become the row after it; if not, the cache drops every unchecked proposal.
    /// </summary>
    public bool TryAccept(InferenceState state, int token)
    {
        if (Pending == 0) return false;
        if (_block[_next + 1] == token)
        {
            _next++;
            Accepted++;
            int vocab = state.Logits.Length;
            _rows.AsSpan(_next * vocab, vocab).CopyTo(state.Logits);
            return true;
        }
        Discard(state);
        return false;
    }

    /// <summary>Drops unchecked proposals from the cache (before anything else feeds or shifts it).</summary>
    public void Discard(InferenceState state)
    {
        if (Pending > 0) state.Truncate(state.Position - Pending);
        _drafted = _next = 0;
    }

    /// <summary>
    /// Feeds <paramref name="token"/> (the last entry of <paramref name="history"/>) together with proposals for what
    /// follows it, leaving the logits after <paramref name="token"/> in the state.
    /// </summary>
    /// <param name="state">The sequence, holding every token of <paramref name="history"/> but the last.</param>
    /// <param name="history">Prompt and generated tokens, ending with <paramref name="token"/>.</param>
    /// <param name="token">The token just sampled.</param>
    /// <param name="tokensLeft">Tokens the generation may still produce after this one: proposals past them could never be used.</param>
    public void Feed(InferenceState state, List<int> history, int token, int tokensLeft)
    {
        _drafted = _next = 0;
        int room = Math.Min(Math.Min(_options.DraftMax, tokensLeft), state.Capacity - state.Position - 1);
        int drafted = room > 0 ? _source.Propose(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(history), _block.AsSpan(1, room)) : 0;
        _block[0] = token;
        if (drafted == 0 || drafted < _options.DraftMin)
        {
            _model.Forward(state, _block.AsSpan(0, 1));
            return;
        }
        int vocab = state.Logits.Length;
        if (_rows.Length < (drafted + 1) * vocab) _rows = new float[(_options.DraftMax + 1) * vocab];
        _model.ForwardAll(state, _block.AsSpan(0, drafted + 1), _rows);
        _rows.AsSpan(0, vocab).CopyTo(state.Logits);
        _drafted = drafted;
        Drafted += drafted;
        Verifications++;
    }
}
