using System.Runtime.CompilerServices;
using System.Text;
using Sputnik.Models;

namespace Sputnik.Inference;

/// <summary>Settings of a chat; each can change between turns (except <see cref="ChatTemplate"/>).</summary>
public sealed record ChatOptions
{
    /// <summary>How tokens are sampled; defaults to temperature 0.6, top-p 0.95 (DeepSeek-R1's recommendation).</summary>
    public SamplingOptions Sampling { get; init; } = new() { Temperature = 0.6f, TopP = 0.95f };

    /// <summary>Most tokens one reply may take, thinking included (also capped by the room left in the context).</summary>
    public int MaxTokens { get; init; } = 2048;

    /// <summary>Let the model think before answering (R1 style); off closes the thinking block in the prompt.</summary>
    public bool Thinking { get; init; } = true;

    /// <summary>Thinking tokens allowed before the answer is forced; null for unlimited.</summary>
    public int? ThinkingBudget { get; init; }

    /// <summary>Strings that end the reply when generated (not included in it).</summary>
    public IReadOnlyList<string> StopStrings { get; init; } = [];

    /// <summary>A Jinja chat template to use instead of the model's own; read once, when the chat is created.</summary>
    public string? ChatTemplate { get; init; }

    /// <summary>
    /// When a reply fills the context, drop the older half of the cached conversation after the system prompt and go
    /// on (llama.cpp's --context-shift) instead of ending the reply; <see cref="MaxTokens"/> is then not capped by the room left.
    /// </summary>
    public bool ContextShift { get; init; }

    /// <summary>Speculative decoding (n-gram proposals checked in batched forwards); null for none. The output does not change.</summary>
    public SpeculationOptions? Speculation { get; init; }
}

/// <summary>
/// Text released during a turn. <see cref="ChatSession.SendAsync"/> releases each piece as either reasoning
/// (<see cref="IsReasoning"/>) or answer text, and ends the turn with one update that carries
/// <see cref="Usage"/> and <see cref="FinishReason"/> and no text.
/// </summary>
/// <param name="Reasoning">Thinking text (inside &lt;think&gt;…&lt;/think&gt;), or empty.</param>
/// <param name="Content">Answer text, or empty.</param>
public readonly record struct ChatUpdate(string Reasoning, string Content)
{
    /// <summary>True when this update is thinking rather than answer text.</summary>
    public bool IsReasoning => Reasoning.Length > 0;

    /// <summary>The text of this update, whichever kind it is.</summary>
    public string Text => Reasoning.Length > 0 ? Reasoning : Content;

    /// <summary>Token counts and timings of the turn; set on the last update of a turn only.</summary>
    public ChatUsage? Usage { get; init; }

    /// <summary>Why the turn ended; set on the last update of a turn only.</summary>
    public FinishReason? FinishReason { get; init; }

    /// <summary>True for the last update of a turn (the one with <see cref="Usage"/>).</summary>
    public bool IsFinal => Usage != null;
}

/// <summary>Token counts and timings of one turn.</summary>
/// <param name="InputTokens">Prompt tokens (the whole conversation as rendered by the template).</param>
/// <param name="CachedInputTokens">Prompt tokens found in the KV cache and not computed again.</param>
/// <param name="OutputTokens">Generated tokens, thinking included.</param>
/// <param name="ReasoningTokens">Generated tokens that fell inside the thinking block.</param>
/// <param name="PromptTime">Time spent computing the uncached prompt tokens.</param>
/// <param name="GenerationTime">Time spent generating.</param>
public sealed record ChatUsage(int InputTokens, int CachedInputTokens, int OutputTokens, int ReasoningTokens,
    TimeSpan PromptTime, TimeSpan GenerationTime)
{
    /// <summary>Input plus output tokens.</summary>
    public int TotalTokens => InputTokens + OutputTokens;

    /// <summary>Generated tokens per second.</summary>
    public double TokensPerSecond => GenerationTime > TimeSpan.Zero ? OutputTokens / GenerationTime.TotalSeconds : 0;

    /// <summary>The usage recorded in generation statistics.</summary>
    internal static ChatUsage From(GenerationStats stats)
    {
        ArgumentNullException.ThrowIfNull(stats);
        return new(stats.PromptTokens, stats.CachedPromptTokens, stats.GeneratedTokens, stats.ReasoningTokens,
            TimeSpan.FromMilliseconds(stats.PromptMs), TimeSpan.FromMilliseconds(stats.GenerationMs));
    }
}

/// <summary>A whole reply, as returned by <see cref="ChatSession.AskAsync"/>.</summary>
/// <param name="Content">The answer.</param>
/// <param name="Reasoning">The thinking before the answer, or null when the model did not think.</param>
/// <param name="Usage">Token counts and timings.</param>
/// <param name="FinishReason">Why generation ended (<see cref="Inference.FinishReason.Length"/> when the token limit cut it).</param>
public sealed record ChatReply(string Content, string? Reasoning, ChatUsage Usage, FinishReason FinishReason);

/// <summary>
/// A conversation with one model: keeps the messages, renders them with the model's template, and keeps the KV
/// cache between turns so each turn only computes the new tokens. Create one with <see cref="SputnikModel.CreateChat"/>.
/// </summary>
/// <remarks>
/// Turns of all chats on one model run one at a time under the model's lock (see <see cref="SputnikModel"/>), so
/// calling a chat from several threads is safe, but a conversation is a sequence: start the next turn after the
/// previous one ended. Cancelling a turn ends it at the next token; what was generated so far stays in
/// <see cref="Messages"/>, and the async methods then throw <see cref="OperationCanceledException"/>.
/// </remarks>
public sealed class ChatSession
{
    private readonly SputnikModel _model;
    private readonly ChatPromptBuilder _prompts;
    private readonly Generator _generator;
    private readonly InferenceState _state;
    private readonly List<int> _history = [];
    private readonly List<ChatMessage> _messages = [];
    // The draft model's proposals and cache, kept across turns (each turn's prompt repeats the conversation so far).
    private (SpeculationOptions Options, IDraftSource Source)? _draft;

    /// <summary>Starts an empty conversation; <see cref="SputnikModel.CreateChat"/> does the same.</summary>
    /// <param name="model">The model to talk to.</param>
    /// <param name="options">Sampling, limits, thinking and template; when null, the defaults with the model's recommended sampling.</param>
    public ChatSession(SputnikModel model, ChatOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        _model = model;
        // Without options, the model file's recommended sampler settings (general.sampling.*) replace the defaults.
        Options = options ?? new ChatOptions { Sampling = model.RecommendedSampling(new ChatOptions().Sampling) };
        _prompts = new ChatPromptBuilder(model.Tokenizer, Options.ChatTemplate ?? model.ChatTemplate);
        _generator = new Generator(model.Model, model.Tokenizer);
        _state = model.CreateState();
    }

    /// <summary>Settings used by the next turn.</summary>
    public ChatOptions Options { get; set; }

    private IDraftSource? DraftSource(SpeculationOptions? speculation)
    {
        if (speculation?.DraftModel == null) return null;
        if (_draft is not { } d || d.Options != speculation) _draft = d = (speculation, Speculator.CreateSource(speculation, _model.Model, _model.Tokenizer));
        return d.Source;
    }

    /// <summary>The system prompt, placed first when set.</summary>
    public string? SystemPrompt { get; set; }

    /// <summary>The conversation so far (user and assistant messages; the system prompt is kept apart).</summary>
    public IReadOnlyList<ChatMessage> Messages => _messages;

    /// <summary>True when the template or vocabulary knows &lt;think&gt; blocks.</summary>
    public bool SupportsThinking => _prompts.SupportsThinking;

    /// <summary>Statistics of the last turn.</summary>
    internal GenerationStats? LastStats { get; private set; }

    /// <summary>Forgets the conversation (the KV cache is reused as far as the new prompt allows).</summary>
    public void Clear() => _messages.Clear();

    /// <summary>Replaces the conversation (e.g. loaded from a file).</summary>
    public void Load(IEnumerable<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        _messages.Clear();
        _messages.AddRange(messages);
    }

    /// <summary>
    /// Adds the user's message and streams the reply: one update per piece of text, each either reasoning or
    /// answer, then a last update with <see cref="ChatUpdate.Usage"/> and <see cref="ChatUpdate.FinishReason"/>.
    /// The generation runs on the thread pool under the model's lock; awaiting the next update never blocks a thread.
    /// </summary>
    /// <param name="userText">The user's message.</param>
    /// <param name="cancellationToken">Stops the turn at the next token; the enumeration then throws <see cref="OperationCanceledException"/>.</param>
    /// <exception cref="ContextOverflowException">The conversation no longer fits the context.</exception>
    public async IAsyncEnumerable<ChatUpdate> SendAsync(string userText, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userText);
        await foreach (var u in _model.RunExclusiveAsync(() => SendCore(userText, cancellationToken), cancellationToken).ConfigureAwait(false))
        {
            if (u.Reasoning.Length > 0 && u.Content.Length > 0)
            {
                yield return new ChatUpdate(u.Reasoning, "");
                yield return new ChatUpdate("", u.Content);
            }
            else yield return u;
        }
        cancellationToken.ThrowIfCancellationRequested();
        var stats = LastStats!;
        yield return new ChatUpdate("", "") { Usage = ChatUsage.From(stats), FinishReason = stats.FinishReason };
    }

    /// <summary>Adds the user's message and returns the whole reply once it is complete.</summary>
    /// <param name="userText">The user's message.</param>
    /// <param name="cancellationToken">Stops the turn at the next token and throws <see cref="OperationCanceledException"/>.</param>
    /// <exception cref="ContextOverflowException">The conversation no longer fits the context.</exception>
    public async Task<ChatReply> AskAsync(string userText, CancellationToken cancellationToken = default)
    {
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        ChatUpdate last = default;
        await foreach (var u in SendAsync(userText, cancellationToken).ConfigureAwait(false))
        {
            reasoning.Append(u.Reasoning);
            content.Append(u.Content);
            last = u;
        }
        return new ChatReply(content.ToString(), reasoning.Length > 0 ? reasoning.ToString() : null, last.Usage!, last.FinishReason!.Value);
    }

    /// <summary>
    /// Synchronous form of <see cref="SendAsync"/>: adds the user's message and streams the reply on the calling
    /// thread, as raw steps (an update may hold both reasoning and answer text; no final usage update — see
    /// <see cref="LastStats"/>). Cancellation ends the turn quietly. Holds the model's lock until enumeration ends.
    /// </summary>
    public IEnumerable<ChatUpdate> Send(string userText, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userText);
        _model.Gate.Wait(cancellationToken);
        try
        {
            foreach (var u in SendCore(userText, cancellationToken)) yield return u;
        }
        finally
        {
            _model.Gate.Release();
        }
    }

    /// <summary>One turn, without the model lock: the caller holds it.</summary>
    private IEnumerable<ChatUpdate> SendCore(string userText, CancellationToken cancellationToken)
    {
        _messages.Add(ChatMessage.User(userText));
        var all = SystemPrompt is { Length: > 0 } sys ? _messages.Prepend(ChatMessage.System(sys)).ToList() : _messages;
        var o = Options;
        bool think = o.Thinking && _prompts.SupportsThinking;
        var prompt = _prompts.Build(all, addGenerationPrompt: true, thinking: think);
        int room = _state.Capacity - prompt.Tokens.Length;
        if (room <= 0)
        {
            _messages.RemoveAt(_messages.Count - 1);
            throw new ContextOverflowException($"the conversation ({prompt.Tokens.Length} tokens) no longer fits the context of {_state.Capacity}; /clear to start over");
        }
        var options = new GenerationOptions
        {
            // With context shift the answer may outgrow the room the prompt leaves; without, it stops there.
            MaxTokens = o.ContextShift ? o.MaxTokens : Math.Min(o.MaxTokens, room),
            ContextShift = o.ContextShift,
            Speculation = o.Speculation,
            DraftSource = DraftSource(o.Speculation),
            KeepTokens = o.ContextShift ? _prompts.SystemPrefixTokens(all, prompt.Tokens) : 0,
            Sampling = o.Sampling,
            StopStrings = o.StopStrings,
            Reasoning = new ReasoningOptions
            {
                StartsInThinking = prompt.StartsInThinking,
                Tags = _prompts.Tags,
                // Harmony models always reason (thinking off is "Reasoning: low"): never force their analysis shut.
                MaxThinkingTokens = think || _prompts.Tags.IsHarmony ? o.ThinkingBudget ?? int.MaxValue : 0,
            },
        };
        var stats = new GenerationStats();
        LastStats = stats;
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        try
        {
            foreach (var step in _generator.Generate(_state, prompt.Tokens, options, stats, _history, cancellationToken))
            {
                var split = step.Split ?? new ReasoningDelta("", step.Text);
                if (split.IsEmpty) continue;
                reasoning.Append(split.Reasoning);
                content.Append(split.Content);
                yield return new ChatUpdate(split.Reasoning, split.Content);
            }
        }
        finally
        {
            _messages.Add(new ChatMessage("assistant", content.ToString())
            {
                ReasoningContent = reasoning.Length > 0 ? reasoning.ToString() : null,
            });
        }
    }
}
