using Sputnik.Models;

namespace Sputnik.Inference;

/// <summary>Settings of a chat; each can change between turns.</summary>
public sealed record ChatOptions
{
    public SamplingOptions Sampling { get; init; } = new() { Temperature = 0.6f, TopP = 0.95f };
    public int MaxTokens { get; init; } = 2048;
    /// <summary>Let the model think before answering (R1 style); off closes the thinking block in the prompt.</summary>
    public bool Thinking { get; init; } = true;
    /// <summary>Thinking tokens allowed before the answer is forced; null for unlimited.</summary>
    public int? ThinkingBudget { get; init; }
    public IReadOnlyList<string> StopStrings { get; init; } = [];
}

/// <summary>Text released during a turn, already split into thinking and answer.</summary>
public readonly record struct ChatUpdate(string Reasoning, string Content);

/// <summary>
/// A conversation with one model: keeps the messages, renders them with the model's template, and keeps the KV
/// cache between turns so each turn only computes the new tokens. Not thread-safe: one turn at a time.
/// </summary>
public sealed class ChatSession
{
    private readonly SputnikModel _model;
    private readonly ChatPromptBuilder _prompts;
    private readonly Generator _generator;
    private readonly InferenceState _state;
    private readonly List<int> _history = [];
    private readonly List<ChatMessage> _messages = [];

    public ChatSession(SputnikModel model, ChatOptions? options = null)
    {
        _model = model;
        _prompts = new ChatPromptBuilder(model.Tokenizer, model.ChatTemplate);
        _generator = new Generator(model.Model, model.Tokenizer);
        _state = model.CreateState();
        Options = options ?? new ChatOptions();
    }

    public ChatOptions Options { get; set; }

    /// <summary>The system prompt, placed first when set.</summary>
    public string? SystemPrompt { get; set; }

    public IReadOnlyList<ChatMessage> Messages => _messages;

    public bool SupportsThinking => _prompts.SupportsThinking;

    /// <summary>Statistics of the last turn.</summary>
    public GenerationStats? LastStats { get; private set; }

    public void Clear() => _messages.Clear();

    /// <summary>Replaces the conversation (e.g. loaded from a file).</summary>
    public void Load(IEnumerable<ChatMessage> messages)
    {
        _messages.Clear();
        _messages.AddRange(messages);
    }

    /// <summary>
    /// Adds the user's message and streams the reply. The assistant message (answer, with its reasoning kept
    /// aside) is appended when the turn ends, also when it is cancelled part way.
    /// </summary>
    public IEnumerable<ChatUpdate> Send(string userText, CancellationToken cancellationToken = default)
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
            MaxTokens = Math.Min(o.MaxTokens, room),
            Sampling = o.Sampling,
            StopStrings = o.StopStrings,
            Reasoning = new ReasoningOptions
            {
                StartsInThinking = prompt.StartsInThinking,
                MaxThinkingTokens = think ? o.ThinkingBudget ?? int.MaxValue : 0,
            },
        };
        var stats = new GenerationStats();
        LastStats = stats;
        var reasoning = new System.Text.StringBuilder();
        var content = new System.Text.StringBuilder();
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
