using System.Numerics.Tensors;
using Sputnik.Gguf;
using Sputnik.Models;
using Sputnik.Tokenizers;

namespace Sputnik.Inference;

/// <summary>How the hidden states of a sequence's tokens become one vector (llama.cpp's pooling types).</summary>
internal enum EmbeddingPooling
{
    /// <summary>The average over all tokens (BOS/EOS included), llama.cpp's LLAMA_POOLING_TYPE_MEAN.</summary>
    Mean = 1,
    /// <summary>The first token (BERT's [CLS]).</summary>
    Cls = 2,
    /// <summary>The last token (Qwen3-Embedding, which ends each input with EOS).</summary>
    Last = 3,
}

/// <summary>
/// Text → embedding vectors, as llama.cpp computes them: the input is tokenized with the model's special tokens (BOS,
/// and EOS where tokenizer.ggml.add_eos_token asks for it; bert's [CLS] … [SEP]), run through the model (causal
/// attention for a decoder, both ways for an encoder), and the final hidden states are pooled as the GGUF's
/// <c>&lt;arch&gt;.pooling_type</c> says, then L2-normalised. A batch of inputs is packed into forward passes of up to
/// <see cref="PackTokens"/> tokens, each pass running its inputs together (the weights streamed once for all of
/// them); one KV cache and one hidden-state buffer serve every pass, so a batch allocates no per-input state.
/// Not thread-safe: the caller serialises use, as it does for the model's forward pass.
/// </summary>
internal sealed class Embedder
{
    /// <summary>Tokens packed into one forward pass (llama.cpp's default micro-batch).</summary>
    public const int PackTokens = 512;

    private readonly LanguageModel _model;
    private readonly Tokenizer _tokenizer;
    private readonly KvCacheType _kvType;
    private InferenceState? _state;
    private float[] _hidden = [];
    private int[] _packed = [];
    private int[] _lengths = [];

    /// <param name="model">The model whose final hidden states are pooled.</param>
    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="maxTokens">The longest input accepted (the context the KV cache may grow to).</param>
    /// <param name="kvType">Element format of the KV cache.</param>
    public Embedder(LanguageModel model, Tokenizer tokenizer, int maxTokens, KvCacheType kvType = KvCacheType.F16)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        _model = model;
        _tokenizer = tokenizer;
        // An encoder's keys and values live for one pass only: F32, as llama.cpp attends them without a cache.
        _kvType = model.IsEmbeddingOnly ? KvCacheType.F32 : kvType;
        MaxTokens = maxTokens;
        Pooling = PoolingOf(model.File, model.Config.Architecture);
    }

    public EmbeddingPooling Pooling { get; }

    /// <summary>Length of each vector: the model's hidden size.</summary>
    public int Dimensions => _model.Config.Dim;

    public int MaxTokens { get; }

    /// <summary>
    /// The pooling a GGUF asks for. llama.cpp leaves a decoder model without the key at "none" (one vector per
    /// token), which has no single-vector answer; Sputnik pools those by the mean, like llama-embedding users ask for
    /// with --pooling mean. Rank pooling belongs to rerankers, whose output is a score, not an embedding.
    /// </summary>
    public static EmbeddingPooling PoolingOf(GgufFile file, string architecture)
    {
        string key = architecture + ".pooling_type";
        if (!file.Metadata.TryGetValue(key, out var v)) return EmbeddingPooling.Mean;
        return v.AsInt64() switch
        {
            0 or 1 => EmbeddingPooling.Mean,
            2 => EmbeddingPooling.Cls,
            3 => EmbeddingPooling.Last,
            4 => throw new NotSupportedException($"'{key}' is 4 (rank): this is a reranker, which scores pairs instead of embedding texts"),
            var other => throw new GgufFormatException($"'{key}' is {other?.ToString() ?? v.ToString()}; llama.cpp knows 0 (none), 1 (mean), 2 (cls), 3 (last) and 4 (rank)"),
        };
    }

    /// <summary>The tokens an input is embedded from: llama.cpp's common_tokenize(text, add_special: true, parse_special: true).</summary>
    public int[] Tokenize(string text) => _tokenizer.Encode(text, addBos: true, parseSpecial: true);

    /// <summary>
    /// Embeds one tokenized input into <paramref name="output"/> (<see cref="Dimensions"/> floats), L2-normalised
    /// when <paramref name="normalize"/>.
    /// </summary>
    public void Embed(ReadOnlySpan<int> tokens, Span<float> output, bool normalize = true)
    {
        if (output.Length != Dimensions) throw new ArgumentException($"the output holds {output.Length} floats; the model's embeddings have {Dimensions}");
        CheckInput(tokens.Length, "the input");
        if (_packed.Length < tokens.Length) _packed = new int[Math.Max(tokens.Length, PackTokens)];
        tokens.CopyTo(_packed);
        if (_lengths.Length < 1) _lengths = new int[16];
        _lengths[0] = tokens.Length;
        var hidden = RunPacked(tokens.Length, 1);
        Pool(hidden, output, normalize);
    }

    /// <summary>Embeds every input, a pack of them per forward pass (<see cref="PackSize"/>), into <paramref name="outputs"/>[i].</summary>
    public void EmbedAll(IReadOnlyList<int[]> inputs, float[][] outputs, bool normalize = true)
    {
        for (int i = 0; i < inputs.Count;)
        {
            int count = PackSize(inputs, i);
            EmbedPack(inputs, i, count, outputs, normalize);
            i += count;
        }
    }

    /// <summary>
    /// How many inputs from <paramref name="start"/> on go into the next forward pass: as many as fit in
    /// <see cref="PackTokens"/> tokens, and at least one (a longer input runs alone).
    /// </summary>
    public int PackSize(IReadOnlyList<int[]> inputs, int start)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(start, inputs.Count);
        int count = 1, tokens = inputs[start].Length;
        while (start + count < inputs.Count && tokens + inputs[start + count].Length <= PackTokens)
            tokens += inputs[start + count++].Length;
        return count;
    }

    /// <summary>
    /// Embeds inputs[start .. start + count) in one forward pass into outputs[start ..] (new arrays of
    /// <see cref="Dimensions"/> floats), L2-normalised when <paramref name="normalize"/>.
    /// </summary>
    public void EmbedPack(IReadOnlyList<int[]> inputs, int start, int count, float[][] outputs, bool normalize = true)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        if (start < 0 || start + count > inputs.Count || start + count > outputs.Length)
            throw new ArgumentOutOfRangeException(nameof(count), $"inputs [{start}, {start + count}) outside the {inputs.Count} inputs or {outputs.Length} outputs");
        int total = 0;
        for (int k = 0; k < count; k++)
        {
            CheckInput(inputs[start + k].Length, $"input {start + k}");
            total += inputs[start + k].Length;
        }
        if (_packed.Length < total) _packed = new int[Math.Max(total, PackTokens)];
        if (_lengths.Length < count) _lengths = new int[Math.Max(count, 2 * _lengths.Length)];
        int at = 0;
        for (int k = 0; k < count; k++)
        {
            inputs[start + k].CopyTo(_packed, at);
            at += _lengths[k] = inputs[start + k].Length;
        }
        var hidden = RunPacked(total, count);
        int dim = Dimensions;
        at = 0;
        for (int k = 0; k < count; k++)
        {
            var v = new float[dim];
            Pool(hidden.Slice(at * dim, _lengths[k] * dim), v, normalize);
            outputs[start + k] = v;
            at += _lengths[k];
        }
    }

    private void CheckInput(int tokens, string what)
    {
        if (tokens == 0) throw new ArgumentException($"{what} has no tokens, so no embedding");
        if (tokens > MaxTokens) throw new ArgumentException($"{what} is {tokens} tokens; at most {MaxTokens} fit the context");
    }

    // The packed tokens in _packed[..total] (_lengths[..count] each) through the model: their hidden states.
    private Span<float> RunPacked(int total, int count)
    {
        int dim = Dimensions;
        var state = StateFor(total);
        if (_hidden.Length < total * dim) _hidden = new float[Math.Max(total, Math.Min(PackTokens, MaxTokens)) * dim];
        var hidden = _hidden.AsSpan(0, total * dim);
        _model.ForwardHiddenPacked(state, _packed.AsSpan(0, total), _lengths.AsSpan(0, count), hidden);
        return hidden;
    }

    // One input's hidden states (its tokens × Dimensions) into one vector.
    private void Pool(ReadOnlySpan<float> hidden, Span<float> output, bool normalize)
    {
        int dim = Dimensions, tokens = hidden.Length / dim;
        switch (Pooling)
        {
            case EmbeddingPooling.Cls:
                hidden[..dim].CopyTo(output);
                break;
            case EmbeddingPooling.Last:
                hidden[^dim..].CopyTo(output);
                break;
            default:
                output.Clear();
                for (int i = 0; i < tokens; i++) TensorPrimitives.Add(output, hidden.Slice(i * dim, dim), output);
                TensorPrimitives.Multiply(output, 1f / tokens, output);
                break;
        }
        if (normalize) Normalize(output);
    }

    /// <summary>Scales <paramref name="v"/> to unit length (left as is when it is all zeros).</summary>
    public static void Normalize(Span<float> v)
    {
        float norm = TensorPrimitives.Norm(v);
        if (norm > 0) TensorPrimitives.Multiply(v, 1f / norm, v);
    }

    /// <summary>
    /// The first <paramref name="dimensions"/> components of a normalised embedding, normalised again (Matryoshka
    /// truncation, as OpenAI's and Ollama's "dimensions" do it).
    /// </summary>
    public static float[] Shorten(ReadOnlySpan<float> embedding, int dimensions)
    {
        if (dimensions < 1 || dimensions > embedding.Length)
            throw new ArgumentOutOfRangeException(nameof(dimensions), $"dimensions must be between 1 and {embedding.Length} (got {dimensions})");
        var v = embedding[..dimensions].ToArray();
        Normalize(v);
        return v;
    }

    // One state for every pass, recreated only when a pass is longer than any before (doubling, up to the larger of
    // MaxTokens and a full pack).
    private InferenceState StateFor(int tokens)
    {
        if (_state == null || _state.Capacity < tokens)
        {
            int limit = Math.Max(MaxTokens, PackTokens);
            int capacity = Math.Min(limit, Math.Max(Math.Max(tokens, 64), 2 * (_state?.Capacity ?? 0)));
            _state = null; // let the old cache go before the new one is allocated
            _state = _model.CreateState(capacity, _kvType);
        }
        return _state;
    }
}
