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
/// Text → embedding vectors with a decoder model, as llama.cpp computes them: the input is tokenized with the
/// model's special tokens (BOS, and EOS where tokenizer.ggml.add_eos_token asks for it), run through the model with
/// causal attention, and the final hidden states (after output_norm) are pooled as the GGUF's
/// <c>&lt;arch&gt;.pooling_type</c> says, then L2-normalised. One KV cache and one hidden-state buffer serve every
/// input (grown to the longest seen), so a batch of inputs allocates no per-input state.
/// Not thread-safe: the caller serialises use, as it does for the model's forward pass.
/// </summary>
internal sealed class Embedder
{
    private readonly LanguageModel _model;
    private readonly Tokenizer _tokenizer;
    private readonly KvCacheType _kvType;
    private InferenceState? _state;
    private float[] _hidden = [];

    /// <param name="model">The decoder whose final hidden states are pooled.</param>
    /// <param name="tokenizer">The model's tokenizer.</param>
    /// <param name="maxTokens">The longest input accepted (the context the KV cache may grow to).</param>
    /// <param name="kvType">Element format of the KV cache.</param>
    public Embedder(LanguageModel model, Tokenizer tokenizer, int maxTokens, KvCacheType kvType = KvCacheType.F16)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxTokens, 1);
        _model = model;
        _tokenizer = tokenizer;
        _kvType = kvType;
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
        int dim = Dimensions;
        if (tokens.IsEmpty) throw new ArgumentException("an input with no tokens has no embedding");
        if (tokens.Length > MaxTokens) throw new ArgumentException($"the input is {tokens.Length} tokens; at most {MaxTokens} fit the context");
        if (output.Length != dim) throw new ArgumentException($"the output holds {output.Length} floats; the model's embeddings have {dim}");
        var state = StateFor(tokens.Length);
        state.Truncate(0);
        if (_hidden.Length < tokens.Length * dim) _hidden = new float[Math.Min(MaxTokens, Math.Max(tokens.Length, 2 * _hidden.Length / dim)) * dim];
        var hidden = _hidden.AsSpan(0, tokens.Length * dim);
        _model.ForwardHidden(state, tokens, hidden);
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
                for (int i = 0; i < tokens.Length; i++) TensorPrimitives.Add(output, hidden.Slice(i * dim, dim), output);
                TensorPrimitives.Multiply(output, 1f / tokens.Length, output);
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

    // One state for every input, recreated only when an input is longer than any before (doubling, up to MaxTokens).
    private InferenceState StateFor(int tokens)
    {
        if (_state == null || _state.Capacity < tokens)
        {
            int capacity = Math.Min(MaxTokens, Math.Max(Math.Max(tokens, 64), 2 * (_state?.Capacity ?? 0)));
            _state = null; // let the old cache go before the new one is allocated
            _state = _model.CreateState(capacity, _kvType);
        }
        return _state;
    }
}
