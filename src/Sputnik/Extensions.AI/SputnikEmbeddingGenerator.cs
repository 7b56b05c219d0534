using Microsoft.Extensions.AI;
using Sputnik.Inference;

namespace Sputnik;

/// <summary>
/// A Microsoft.Extensions.AI <see cref="IEmbeddingGenerator{TInput, TEmbedding}"/> over a local <see cref="SputnikModel"/>:
/// each text becomes one L2-normalised vector, pooled from the model's final hidden states as the GGUF's
/// <c>&lt;arch&gt;.pooling_type</c> says (last token for Qwen3-Embedding, first for CLS models, the mean otherwise, as
/// llama.cpp computes them). <see cref="EmbeddingGenerationOptions.Dimensions"/> keeps that many leading components
/// and normalises again (Matryoshka truncation).
/// </summary>
/// <remarks>
/// <para><b>Thread safety.</b> Calls may come from many threads; they run one at a time under the model's lock (shared
/// with its chats and chat clients). The inputs of one call are packed into forward passes of up to
/// 512 tokens, each running its inputs together through one reused KV cache.</para>
/// <para>An input longer than the model's context (<see cref="SputnikModel.ContextLength"/>) throws
/// ArgumentException. Disposing the generator does not dispose the model.</para>
/// </remarks>
public sealed class SputnikEmbeddingGenerator : IEmbeddingGenerator<string, Embedding<float>>
{
    private readonly SputnikModel _model;
    private readonly Embedder _embedder;
    private readonly EmbeddingGeneratorMetadata _metadata;

    /// <summary>Creates a generator for <paramref name="model"/>; <see cref="SputnikModel.AsEmbeddingGenerator"/> does the same.</summary>
    /// <param name="model">The model; it must outlive the generator.</param>
    /// <param name="modelId">The model id reported with each embedding; the model's name when null.</param>
    /// <exception cref="NotSupportedException">The model is a reranker (rank pooling) or its architecture has no embeddings.</exception>
    public SputnikEmbeddingGenerator(SputnikModel model, string? modelId = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _embedder = new Embedder(model.Model, model.Tokenizer, model.ContextLength, model.KvType);
        ModelId = modelId ?? model.Name;
        _metadata = new EmbeddingGeneratorMetadata("sputnik", null, ModelId, _embedder.Dimensions);
    }

    /// <summary>The model id reported with each embedding.</summary>
    public string ModelId { get; }

    /// <summary>Length of the vectors (the model's hidden size) unless a request asks for fewer.</summary>
    public int Dimensions => _embedder.Dimensions;

    /// <inheritdoc/>
    public async Task<GeneratedEmbeddings<Embedding<float>>> GenerateAsync(IEnumerable<string> values,
        EmbeddingGenerationOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(values);
        var texts = values.ToList();
        int? dimensions = options?.Dimensions;
        if (dimensions is { } d && (d < 1 || d > _embedder.Dimensions))
            throw new ArgumentOutOfRangeException(nameof(options), $"Dimensions must be between 1 and {_embedder.Dimensions} (got {d})");
        var tokenized = texts.Select(t => _embedder.Tokenize(t ?? throw new ArgumentException("an input text is null", nameof(values)))).ToList();
        foreach (var tokens in tokenized)
            if (tokens.Length > _embedder.MaxTokens)
                throw new ArgumentException($"an input is {tokens.Length} tokens; the model's context holds {_embedder.MaxTokens}", nameof(values));

        var vectors = new float[tokenized.Count][];
        await _model.Gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // A pack of inputs per forward pass (their rows through the weights together), cancellable between packs.
            for (int i = 0; i < tokenized.Count;)
            {
                cancellationToken.ThrowIfCancellationRequested();
                int start = i, count = _embedder.PackSize(tokenized, i);
                await Task.Run(() => _embedder.EmbedPack(tokenized, start, count, vectors), CancellationToken.None).ConfigureAwait(false);
                i += count;
            }
        }
        finally
        {
            _model.Gate.Release();
        }
        var result = new GeneratedEmbeddings<Embedding<float>>(texts.Count);
        long inputTokens = 0;
        for (int i = 0; i < vectors.Length; i++)
        {
            var kept = dimensions is { } n && n < vectors[i].Length ? Embedder.Shorten(vectors[i], n) : vectors[i];
            result.Add(new Embedding<float>(kept) { ModelId = ModelId, CreatedAt = DateTimeOffset.UtcNow });
            inputTokens += tokenized[i].Length;
        }
        result.Usage = new UsageDetails { InputTokenCount = inputTokens, TotalTokenCount = inputTokens };
        return result;
    }

    /// <summary>Returns <see cref="EmbeddingGeneratorMetadata"/>, the <see cref="SputnikModel"/>, or this generator; null otherwise.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(EmbeddingGeneratorMetadata)) return _metadata;
        if (serviceType == typeof(SputnikModel)) return _model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Nothing to release: the KV cache goes with the generator; the model stays loaded.</summary>
    public void Dispose() { }
}
