using Sputnik.Inference;

namespace Sputnik;

/// <summary>Defaults of a <see cref="SputnikChatClient"/>; a request's <c>ChatOptions</c> override them per call.</summary>
public sealed record SputnikChatClientOptions
{
    /// <summary>The model id reported in responses and metadata; defaults to <see cref="SputnikModel.Name"/>.</summary>
    public string? ModelId { get; init; }

    /// <summary>A Jinja chat template to use instead of the model's own (ChatML when the model has none).</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>Let reasoning models think before answering; a request turns it off with <c>Reasoning.Effort = None</c>.</summary>
    public bool Thinking { get; init; } = true;

    /// <summary>
    /// Thinking tokens allowed before the answer is forced; null for unlimited. A request's
    /// <c>Reasoning.Effort</c> overrides it: Low 256, Medium 1024, High 4096, ExtraHigh unlimited.
    /// </summary>
    public int? ThinkingBudget { get; init; }

    /// <summary>Sampling when a request does not say (temperature 0.6, top-p 0.95 unless set).</summary>
    public SamplingOptions Sampling { get; init; } = new() { Temperature = 0.6f, TopP = 0.95f };

    /// <summary>Most output tokens when a request sets no <c>MaxOutputTokens</c> (also capped by the context).</summary>
    public int MaxOutputTokens { get; init; } = 2048;
}
