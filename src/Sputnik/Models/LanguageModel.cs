using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Sputnik.Gguf;
using Sputnik.Tensors;

namespace Sputnik.Models;

/// <summary>
/// A loaded architecture: turns tokens at positions into next-token logits using a per-sequence
/// <see cref="InferenceState"/>. Implementations keep the weights in the mapped file.
/// </summary>
internal abstract class LanguageModel : IDisposable
{
    protected LanguageModel(GgufFile file, ModelConfig config, WorkerPool pool)
    {
        File = file;
        Config = config;
        Pool = pool;
    }

    public GgufFile File { get; }
    public ModelConfig Config { get; }
    public WorkerPool Pool { get; }

    /// <summary>Creates the KV cache (F16) and scratch buffers for one sequence of up to <paramref name="contextLength"/> tokens.</summary>
    public InferenceState CreateState(int contextLength) => CreateState(contextLength, KvCacheType.F16);

    /// <summary>Creates the KV cache in <paramref name="kvType"/> and scratch buffers for one sequence of up to <paramref name="contextLength"/> tokens.</summary>
    public InferenceState CreateState(int contextLength, KvCacheType kvType) => CreateState(contextLength, kvType, kvType);

    /// <summary>
    /// Creates the cache (keys as <paramref name="keyType"/>, values as <paramref name="valueType"/>; an MLA latent
    /// cache, which is both, takes <paramref name="keyType"/> as llama.cpp does) and scratch buffers for one sequence
    /// of up to <paramref name="contextLength"/> tokens. The cache grows with use.
    /// </summary>
    public abstract InferenceState CreateState(int contextLength, KvCacheType keyType, KvCacheType valueType);

    /// <summary>Whether <see cref="ShiftContext"/> works for this architecture.</summary>
    public virtual bool CanShiftContext => false;

    /// <summary>
    /// Context shift: drops cached positions [keep, keep + discard) and moves the later ones down, with their keys
    /// re-rotated to their new positions, so generation can go on in a full context.
    /// </summary>
    public virtual void ShiftContext(InferenceState state, int keep, int discard) =>
        throw new NotSupportedException($"{Config.Architecture} does not support context shift");

    /// <summary>
    /// Feeds <paramref name="tokens"/> at positions state.Cache.Length onward and returns the logits after the
    /// last one (a view into the state, valid until the next call).
    /// </summary>
    public abstract ReadOnlySpan<float> Forward(InferenceState state, ReadOnlySpan<int> tokens);

    /// <summary>
    /// Feeds <paramref name="tokens"/> like <see cref="Forward"/> and writes the logits after every one of them into
    /// <paramref name="logits"/> (tokens.Length × vocabulary floats): the verification pass of speculative decoding.
    /// Each row must equal, bit for bit, what <see cref="Forward"/> gives fed one token at a time, so speculation
    /// never changes the output; this default does exactly that, architectures with a batched path that keeps the
    /// property override it.
    /// </summary>
    public virtual void ForwardAll(InferenceState state, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        int vocab = Config.VocabSize;
        if (logits.Length < (long)tokens.Length * vocab)
            throw new ArgumentException($"the logits buffer holds {logits.Length} floats; {tokens.Length} tokens need {(long)tokens.Length * vocab}");
        for (int i = 0; i < tokens.Length; i++) Forward(state, tokens.Slice(i, 1)).CopyTo(logits.Slice(i * vocab, vocab));
    }

    /// <summary>
    /// Feeds <paramref name="tokens"/> like <see cref="Forward"/> but, instead of logits, writes each token's final
    /// hidden state (after the output norm: what llama.cpp pools into embeddings) into <paramref name="hidden"/>,
    /// tokens.Length × <see cref="ModelConfig.Dim"/> floats. Architectures without it throw NotSupportedException.
    /// </summary>
    public virtual void ForwardHidden(InferenceState state, ReadOnlySpan<int> tokens, Span<float> hidden) =>
        throw new NotSupportedException($"embeddings are not available for the {Config.Architecture} architecture");

    /// <summary>
    /// True for an encoder (bert): it gives embeddings only, and <see cref="Forward"/> / <see cref="ForwardBatch"/>
    /// throw <see cref="NoLogits"/>'s error.
    /// </summary>
    public virtual bool IsEmbeddingOnly => false;

    /// <summary>The error of asking an embedding-only model for logits.</summary>
    protected NotSupportedException NoLogits() =>
        new($"{Config.Architecture} is an embedding model: it gives embeddings, not next-token predictions (no chat or completions)");

    /// <summary>
    /// Feeds several independent sequences, packed one after another in <paramref name="tokens"/> (lengths[k] tokens
    /// each, every one from position 0), and writes every token's final hidden state like <see cref="ForwardHidden"/>.
    /// <paramref name="state"/> is scratch: its cache is overwritten (its capacity must hold all the tokens) and left
    /// empty. Architectures that can run the sequences through one pass (a batch of embedding inputs, the weights
    /// streamed once); this default feeds them one by one.
    /// </summary>
    public virtual void ForwardHiddenPacked(InferenceState state, ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths, Span<float> hidden)
    {
        CheckPacked(state, tokens, lengths, hidden);
        int dim = Config.Dim, at = 0;
        try
        {
            foreach (int len in lengths)
            {
                state.Truncate(0);
                ForwardHidden(state, tokens.Slice(at, len), hidden.Slice(at * dim, len * dim));
                at += len;
            }
        }
        finally
        {
            state.Truncate(0);
        }
    }

    /// <summary>Argument checks of <see cref="ForwardHiddenPacked"/> (before any state is touched).</summary>
    protected void CheckPacked(InferenceState state, ReadOnlySpan<int> tokens, ReadOnlySpan<int> lengths, Span<float> hidden)
    {
        if (lengths.IsEmpty) throw new ArgumentException("no sequences to feed");
        long total = 0;
        foreach (int len in lengths)
        {
            if (len < 1) throw new ArgumentException("a packed sequence has no tokens", nameof(lengths));
            total += len;
        }
        if (total != tokens.Length) throw new ArgumentException($"the lengths add up to {total} tokens, but {tokens.Length} were given", nameof(lengths));
        if (tokens.Length > state.Capacity)
            throw new InvalidOperationException($"context full: {tokens.Length} packed tokens exceed the context of {state.Capacity}");
        if (hidden.Length < total * Config.Dim)
            throw new ArgumentException($"the hidden buffer holds {hidden.Length} floats; {total} tokens need {total * Config.Dim}");
        foreach (int token in tokens)
            if ((uint)token >= (uint)Config.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary ({Config.VocabSize})");
    }

    /// <summary>Argument checks of <see cref="ForwardHidden"/> (before any state is touched).</summary>
    protected void CheckHiddenFeed(InferenceState state, ReadOnlySpan<int> tokens, Span<float> hidden)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to feed");
        if (hidden.Length < (long)tokens.Length * Config.Dim)
            throw new ArgumentException($"the hidden buffer holds {hidden.Length} floats; {tokens.Length} tokens need {(long)tokens.Length * Config.Dim}");
        if (state.Position + tokens.Length > state.Capacity)
            throw new InvalidOperationException($"context full: {state.Position} + {tokens.Length} tokens exceed the context of {state.Capacity}");
        foreach (int token in tokens)
            if ((uint)token >= (uint)Config.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {token} is outside the vocabulary ({Config.VocabSize})");
    }

    /// <summary>
    /// One decode step for several sequences: feeds tokens[i] to states[i] at that state's own position and leaves
    /// the next-token logits in states[i].Logits. Each state appears at most once. Architectures that can, run the
    /// sequences through one batched pass (weights streamed once per step); this default steps them one by one.
    /// Not safe to call concurrently on the same model.
    /// </summary>
    public virtual void ForwardBatch(IReadOnlyList<InferenceState> states, ReadOnlySpan<int> tokens)
    {
        CheckBatch(states, tokens);
        for (int i = 0; i < states.Count; i++)
        {
            var logits = Forward(states[i], tokens.Slice(i, 1));
            if (!Unsafe.AreSame(ref MemoryMarshal.GetReference(logits), ref MemoryMarshal.GetArrayDataReference(states[i].Logits)))
                logits.CopyTo(states[i].Logits);
        }
    }

    /// <summary>Argument checks shared by <see cref="ForwardBatch"/> implementations (before any state is touched).</summary>
    protected void CheckBatch(IReadOnlyList<InferenceState> states, ReadOnlySpan<int> tokens)
    {
        if (states.Count != tokens.Length) throw new ArgumentException($"{states.Count} states but {tokens.Length} tokens");
        for (int i = 0; i < states.Count; i++)
        {
            var s = states[i];
            if ((uint)tokens[i] >= (uint)Config.VocabSize) throw new ArgumentOutOfRangeException(nameof(tokens), $"token id {tokens[i]} is outside the vocabulary ({Config.VocabSize})");
            if (s.Position >= s.Capacity) throw new InvalidOperationException($"context full: sequence {i} already holds {s.Position} of {s.Capacity} positions");
            // A state twice would write its cache position twice in one step; batches are small, so O(n²) is fine.
            for (int j = 0; j < i; j++)
                if (ReferenceEquals(states[j], s)) throw new ArgumentException($"state {j} appears again at {i}", nameof(states));
        }
    }

    public virtual long ParameterCount => File.Tensors.Sum(t => t.ElementCount);

    private readonly List<AdaptableWeight> _adaptable = [];
    private readonly List<LoraAdapter> _adapters = [];

    /// <summary>The attached LoRA adapters; an adapter's id is its index here.</summary>
    public IReadOnlyList<LoraAdapter> Adapters => _adapters;

    /// <summary>Records a matrix whose products apply adapters (every product site adds the low-rank path for it).</summary>
    protected WeightMatrix Adaptable(WeightMatrix m, string baseName, int rowStart = 0)
    {
        _adaptable.Add(new(m, baseName, -1, rowStart));
        return m;
    }

    /// <summary>Records the slices of a 3-D expert stack (slice e is expert e of <paramref name="baseName"/>).</summary>
    protected WeightMatrix[] AdaptableExperts(WeightMatrix[] experts, string baseName)
    {
        for (int e = 0; e < experts.Length; e++) _adaptable.Add(new(experts[e], baseName, e, 0));
        return experts;
    }

    /// <summary>
    /// Attaches an adapter read for this model (<see cref="LoraAdapter.Load(string, GgufFile)"/>) and returns its id; it
    /// applies to the sequences whose <see cref="InferenceState.Adapters"/> name that id with a non-zero scale. Attach
    /// before running sequences: the matrices' factor tables are not swapped under a running forward.
    /// </summary>
    public int AttachAdapter(LoraAdapter adapter)
    {
        if (adapter.Architecture != Config.Architecture)
            throw new InvalidDataException($"LoRA adapter {Path.GetFileName(adapter.Path)}: made for architecture '{adapter.Architecture}' but the model is '{Config.Architecture}'");
        int id = _adapters.Count;
        var targets = new List<(AdaptableWeight Weight, LoraFactors Factors)>();
        foreach (var pair in adapter.Pairs)
        {
            int before = targets.Count;
            foreach (var w in _adaptable)
                if (w.BaseName == pair.BaseName) targets.Add((w, LoraAttach.Factors(adapter, pair, w)));
            if (targets.Count == before)
                throw new InvalidDataException($"LoRA adapter {Path.GetFileName(adapter.Path)}: adapts '{pair.BaseName}', which this {Config.Architecture} model does not use as a projection (a tied output head?)");
        }
        foreach (var (w, factors) in targets)
        {
            var table = w.Matrix.Lora ?? [];
            if (table.Length <= id) Array.Resize(ref table, id + 1);
            table[id] = factors;
            w.Matrix.Lora = table;
        }
        _adapters.Add(adapter);
        return id;
    }

    public void Dispose()
    {
        Pool.Dispose();
        File.Dispose();
        GC.SuppressFinalize(this);
    }
}

/// <summary>Per-sequence mutable state: KV cache plus activation scratch. Not thread-safe; one per sequence.</summary>
internal class InferenceState(KvCache cache, int vocab)
{
    public KvCache Cache { get; } = cache;
    public float[] Logits { get; } = new float[vocab];

    /// <summary>
    /// The attached LoRA adapters (ids of <see cref="LanguageModel.Adapters"/>) and scales this sequence runs with; a
    /// batch applies each row's own. Changing it invalidates what the cache holds (callers truncate: the prompt cache
    /// keys its entries by <see cref="LoraSet.Key"/>).
    /// </summary>
    public LoraSet Adapters { get; set; } = LoraSet.None;

    /// <summary>The low-rank path's job for this state's products, created by the first product that needs it.</summary>
    internal LoraJob? LoraJob;

    /// <summary>Positions already in the cache.</summary>
    public int Position => Cache.Length;

    public int Capacity => Cache.Capacity;

    /// <summary>
    /// The attention cache as raw rows for prompt-cache snapshots; null when it cannot be snapshotted (a
    /// sliding-window ring keeps only the last window, not the prefix rows a snapshot restores).
    /// </summary>
    public virtual ICacheRows? Rows => Cache.HasRing ? null : Cache;

    /// <summary>
    /// Forgets positions from <paramref name="length"/> on (prompt reuse keeps a common prefix) and returns the
    /// position kept: <paramref name="length"/> (at most <see cref="Position"/>), or 0 when a sliding-window ring has
    /// already overwritten part of the window that position needs, so the caller recomputes the prefix. A state with
    /// recurrent layers can only go back to a length <see cref="Restorable"/> names; any other length throws.
    /// </summary>
    public virtual int Truncate(int length) => Cache.Length = Cache.Reusable(length);

    /// <summary>
    /// The longest prefix of at most <paramref name="length"/> positions this state can be cut back to: any length
    /// up to <see cref="Position"/> for an attention cache; for a recurrent state (qwen35's Gated DeltaNet, which
    /// cannot be rewound) its current length or a checkpoint, else 0.
    /// </summary>
    public virtual int Restorable(int length) => Math.Clamp(length, 0, Position);

    /// <summary>
    /// Asks the state to keep a checkpoint at <paramref name="length"/> positions (reached now or by a later feed),
    /// so a later prompt sharing that prefix can resume there. Attention caches need none and ignore it.
    /// </summary>
    public virtual void RequestCheckpoint(int length) { }
}
