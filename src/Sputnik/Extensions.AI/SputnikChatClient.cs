using System.Runtime.CompilerServices;
using Microsoft.Extensions.AI;
using Sputnik.Inference;
using Sputnik.Models;
using AIChatMessage = Microsoft.Extensions.AI.ChatMessage;
using AIChatOptions = Microsoft.Extensions.AI.ChatOptions;
using SFinishReason = Sputnik.Inference.FinishReason;
using SReasoningOptions = Sputnik.Inference.ReasoningOptions;

namespace Sputnik;

/// <summary>
/// A Microsoft.Extensions.AI <see cref="IChatClient"/> over a local <see cref="SputnikModel"/>: messages are rendered
/// with the model's chat template, reasoning comes back as <see cref="TextReasoningContent"/>, Hermes/Qwen
/// <c>&lt;tool_call&gt;</c> output as <see cref="FunctionCallContent"/>, and every response carries
/// <see cref="UsageDetails"/> (cached and reasoning tokens included).
/// </summary>
/// <remarks>
/// <para>Honoured <see cref="AIChatOptions"/>: <c>Temperature</c>, <c>TopP</c>, <c>TopK</c>, <c>FrequencyPenalty</c>,
/// <c>PresencePenalty</c>, <c>Seed</c>, <c>MaxOutputTokens</c>, <c>StopSequences</c>, <c>Instructions</c>,
/// <c>Tools</c> (function declarations, passed to the template as OpenAI-style <c>tools</c>), <c>ToolMode</c>
/// (<c>None</c> hides the tools), <c>Reasoning.Effort</c> (None turns thinking off; Low/Medium/High allow
/// 256/1024/4096 thinking tokens) and <c>ResponseFormat</c> (JSON adds an instruction to the system prompt; the
/// output is not constrained).</para>
/// <para><b>Thread safety.</b> The client may be used from many threads and shares its model with other chats and
/// clients; requests run one at a time under the model's lock. The client keeps one KV cache across calls, so a
/// conversation that grows by appending messages only computes the new tokens of each request.</para>
/// <para>Disposing the client does not dispose the model.</para>
/// </remarks>
public sealed class SputnikChatClient : IChatClient
{
    private readonly SputnikModel _model;
    private readonly SputnikChatClientOptions _options;
    private readonly ChatPromptBuilder _prompts;
    private readonly Generator _generator;
    private readonly ChatClientMetadata _metadata;
    private readonly List<int> _history = [];
    private InferenceState? _state;

    /// <summary>Creates a client for <paramref name="model"/>; <see cref="SputnikModel.AsChatClient"/> does the same.</summary>
    /// <param name="model">The model; it must outlive the client.</param>
    /// <param name="options">Model id, template, thinking and defaults; when null, the defaults with the model's recommended sampling.</param>
    public SputnikChatClient(SputnikModel model, SputnikChatClientOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        _options = options ?? new SputnikChatClientOptions { Sampling = model.RecommendedSampling(new SputnikChatClientOptions().Sampling) };
        _options.Sampling.Validate();
        _prompts = new ChatPromptBuilder(model.Tokenizer, _options.ChatTemplate ?? model.ChatTemplate);
        _generator = new Generator(model.Model, model.Tokenizer);
        ModelId = _options.ModelId ?? model.Name;
        _metadata = new ChatClientMetadata("sputnik", null, ModelId);
    }

    /// <summary>The model id reported in responses.</summary>
    public string ModelId { get; }

    /// <inheritdoc/>
    public Task<ChatResponse> GetResponseAsync(IEnumerable<AIChatMessage> messages, AIChatOptions? options = null,
        CancellationToken cancellationToken = default) =>
        GetStreamingResponseAsync(messages, options, cancellationToken).ToChatResponseAsync(cancellationToken);

    /// <inheritdoc/>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<AIChatMessage> messages,
        AIChatOptions? options = null, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var turn = Prepare(messages, options);
        string responseId = "chatcmpl-" + Guid.NewGuid().ToString("N")[..24];
        string messageId = "msg-" + Guid.NewGuid().ToString("N")[..24];
        var created = DateTimeOffset.UtcNow;
        ChatResponseUpdate Update(params AIContent[] contents) => new(ChatRole.Assistant, contents)
        {
            ResponseId = responseId, MessageId = messageId, ModelId = ModelId, CreatedAt = created,
        };

        var stats = new GenerationStats();
        var filter = turn.Tools != null ? new ToolCallFilter() : null;
        await foreach (var step in _model.RunExclusiveAsync(() => Run(turn, stats, cancellationToken), cancellationToken).ConfigureAwait(false))
        {
            var split = step.Split ?? new ReasoningDelta("", step.Text);
            if (split.Reasoning.Length > 0) yield return Update(new TextReasoningContent(split.Reasoning));
            string content = filter?.Push(split.Content) ?? split.Content;
            if (content.Length > 0) yield return Update(new TextContent(content));
        }
        cancellationToken.ThrowIfCancellationRequested();

        ChatFinishReason finish = stats.FinishReason == SFinishReason.Stop ? ChatFinishReason.Stop : ChatFinishReason.Length;
        if (filter != null)
        {
            var (text, calls) = filter.Finish();
            if (text.Length > 0) yield return Update(new TextContent(text));
            if (calls.Count > 0)
            {
                yield return Update([.. calls.Select(ChatClientConversions.ToFunctionCall)]);
                finish = ChatFinishReason.ToolCalls;
            }
        }
        var last = Update(new UsageContent(Usage(stats)));
        last.FinishReason = finish;
        yield return last;
    }

    /// <summary>Returns <see cref="ChatClientMetadata"/>, the <see cref="SputnikModel"/>, or this client; null otherwise.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null)
    {
        ArgumentNullException.ThrowIfNull(serviceType);
        if (serviceKey != null) return null;
        if (serviceType == typeof(ChatClientMetadata)) return _metadata;
        if (serviceType == typeof(SputnikModel)) return _model;
        return serviceType.IsInstanceOfType(this) ? this : null;
    }

    /// <summary>Drops the client's KV cache; the model stays loaded.</summary>
    public void Dispose() => _state = null;

    private sealed record Turn(int[] Tokens, GenerationOptions Options, List<object?>? Tools);

    private Turn Prepare(IEnumerable<AIChatMessage> messages, AIChatOptions? o)
    {
        var extra = new List<string>();
        if (o?.Instructions is { Length: > 0 } instructions) extra.Add(instructions);
        if (ChatClientConversions.JsonHint(o?.ResponseFormat) is { } hint) extra.Add(hint);
        var list = ChatClientConversions.ToMessages(messages, extra);
        if (list.Count == 0) throw new ArgumentException("at least one message is required", nameof(messages));
        var tools = ChatClientConversions.ToTools(o);

        int? budget = o?.Reasoning?.Effort switch
        {
            ReasoningEffort.None => 0,
            ReasoningEffort.Low => 256,
            ReasoningEffort.Medium => 1024,
            ReasoningEffort.High => 4096,
            ReasoningEffort.ExtraHigh => null,
            _ => _options.ThinkingBudget,
        };
        bool think = _prompts.SupportsThinking && (o?.Reasoning?.Effort is { } effort ? effort != ReasoningEffort.None : _options.Thinking);
        // Harmony (gpt-oss) takes the effort as its system message's Reasoning line instead of a thinking budget.
        bool harmony = _prompts.Tags.IsHarmony;
        string? level = o?.Reasoning?.Effort switch
        {
            ReasoningEffort.Low => "low",
            ReasoningEffort.Medium => "medium",
            ReasoningEffort.High or ReasoningEffort.ExtraHigh => "high",
            _ => null,
        };
        var effortVariable = harmony && level != null ? new Dictionary<string, object?> { [Harmony.EffortVariable] = level } : null;
        var prompt = _prompts.Build(list, addGenerationPrompt: true, tools: tools, thinking: think, extra: effortVariable);

        int room = _model.ContextLength - prompt.Tokens.Length;
        if (room <= 0)
            throw new ContextOverflowException($"the conversation ({prompt.Tokens.Length} tokens) does not fit the context of {_model.ContextLength}");
        int max = o?.MaxOutputTokens ?? _options.MaxOutputTokens;
        if (max < 1) throw new ArgumentOutOfRangeException(nameof(o), $"MaxOutputTokens {max} must be at least 1");

        var s = _options.Sampling;
        var sampling = s with
        {
            Temperature = o?.Temperature ?? s.Temperature,
            TopP = o?.TopP ?? s.TopP,
            TopK = o?.TopK ?? s.TopK,
            FrequencyPenalty = o?.FrequencyPenalty ?? s.FrequencyPenalty,
            PresencePenalty = o?.PresencePenalty ?? s.PresencePenalty,
            Seed = o?.Seed is { } seed ? unchecked((ulong)seed) : s.Seed,
        };
        sampling.Validate();
        var generation = new GenerationOptions
        {
            MaxTokens = Math.Min(max, room),
            Sampling = sampling,
            StopStrings = o?.StopSequences is { Count: > 0 } stops ? [.. stops] : [],
            Reasoning = new SReasoningOptions
            {
                StartsInThinking = prompt.StartsInThinking,
                Tags = _prompts.Tags,
                MaxThinkingTokens = harmony ? _options.ThinkingBudget ?? int.MaxValue : think ? budget ?? int.MaxValue : 0,
            },
        };
        return new Turn(prompt.Tokens, generation, tools);
    }

    // Called under the model lock: the client's one KV cache is created on first use and reused for prefix hits.
    private IEnumerable<GeneratedToken> Run(Turn turn, GenerationStats stats, CancellationToken cancellationToken)
    {
        _state ??= _model.CreateState();
        return _generator.Generate(_state, turn.Tokens, turn.Options, stats, _history, cancellationToken);
    }

    private static UsageDetails Usage(GenerationStats s) => new()
    {
        InputTokenCount = s.PromptTokens,
        OutputTokenCount = s.GeneratedTokens,
        TotalTokenCount = s.PromptTokens + s.GeneratedTokens,
        CachedInputTokenCount = s.CachedPromptTokens,
        ReasoningTokenCount = s.ReasoningTokens,
    };
}
