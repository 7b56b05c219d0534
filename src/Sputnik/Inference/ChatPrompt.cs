using System.Text.Json.Nodes;
using Sputnik.Templates;
using Sputnik.Tokenizers;

namespace Sputnik.Inference;

/// <summary>A tool call made by the assistant (OpenAI shape: id, function name, JSON arguments).</summary>
public sealed record ToolCall(string Id, string Name, string ArgumentsJson);

/// <summary>One chat turn. Roles: system, user, assistant, tool.</summary>
public sealed record ChatMessage(string Role, string? Content)
{
    /// <summary>The assistant's thinking, kept for display; never fed back to the model (R1 strips it from history).</summary>
    public string? ReasoningContent { get; init; }
    /// <summary>Tool calls the assistant made in this turn.</summary>
    public IReadOnlyList<ToolCall>? ToolCalls { get; init; }
    /// <summary>For a tool message: the id of the call it answers.</summary>
    public string? ToolCallId { get; init; }
    /// <summary>Optional author name (or the tool name for tool messages).</summary>
    public string? Name { get; init; }

    /// <summary>A system message.</summary>
    public static ChatMessage System(string text) => new("system", text);
    /// <summary>A user message.</summary>
    public static ChatMessage User(string text) => new("user", text);
    /// <summary>An assistant message.</summary>
    public static ChatMessage Assistant(string text) => new("assistant", text);
}

/// <summary>A rendered prompt: text, tokens, and whether generation starts inside a &lt;think&gt; block.</summary>
internal sealed record ChatPrompt(string Text, int[] Tokens, bool StartsInThinking);

/// <summary>
/// Renders chat messages with the model's own Jinja chat template (ChatML when the file has none) and tokenizes
/// the result with special tokens parsed, adding BOS only when the template did not already write it.
/// </summary>
internal sealed class ChatPromptBuilder
{
    /// <summary>
    /// Used when the model carries no template: ChatML, with Hermes-style tools (a system block listing them,
    /// assistant calls as <c>&lt;tool_call&gt;</c> JSON) so tool conversations render too.
    /// </summary>
    public const string ChatMLTemplate =
        """{% if tools %}{{ '<|im_start|>system\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n<tools>' }}""" +
        """{% for tool in tools %}{{ '\n' + (tool | tojson) }}{% endfor %}""" +
        """{{ '\n</tools>\n\nFor each function call, return a json object with function name and arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call><|im_end|>\n' }}{% endif %}""" +
        """{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + (message['content'] or '') }}""" +
        """{% if message['tool_calls'] %}{% for tc in message['tool_calls'] %}{{ '\n<tool_call>\n{"name": "' + tc['function']['name'] + '", "arguments": ' + (tc['function']['arguments'] | tojson) + '}\n</tool_call>' }}{% endfor %}{% endif %}""" +
        """{{ '<|im_end|>' + '\n' }}{% endfor %}""" +
        """{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}""";

    private readonly Tokenizer _tokenizer;

    public ChatPromptBuilder(Tokenizer tokenizer, string? template)
    {
        _tokenizer = tokenizer;
        Template = string.IsNullOrWhiteSpace(template) ? ChatMLTemplate : template;
        ChatTemplate.Parse(Template); // fail early, with line and column, on a template we cannot run
    }

    public string Template { get; }

    /// <summary>The thinking tags of this model's template: &lt;think&gt; or Mistral's [THINK].</summary>
    public ThinkTags Tags => ThinkTags.Of(Template);

    /// <summary>
    /// True when the template or vocabulary knows thinking blocks (R1 and its distills, Qwen3, SmolLM3, Ministral 3
    /// Reasoning), or the template is Phi-4-mini-reasoning's, whose model opens &lt;think&gt; itself though neither mentions it.
    /// </summary>
    public bool SupportsThinking => Template.Contains(Tags.Open, StringComparison.Ordinal) || _tokenizer.FindToken(Tags.Open) != null
        || Template.Contains(Models.Phi3.ReasoningSystemLine, StringComparison.Ordinal);

    /// <summary>Renders <paramref name="messages"/> with the template and tokenizes the result.</summary>
    /// <param name="messages">The conversation, system message first when there is one.</param>
    /// <param name="addGenerationPrompt">Open the assistant's turn at the end (the template's <c>add_generation_prompt</c>).</param>
    /// <param name="tools">OpenAI-style tool objects for the template's <c>tools</c> variable; null for none.</param>
    /// <param name="thinking">false closes the thinking block in the prompt so the model answers directly.</param>
    /// <param name="extra">More template variables.</param>
    public ChatPrompt Build(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true,
        IEnumerable<object?>? tools = null, bool thinking = true, IDictionary<string, object?>? extra = null)
    {
        string bos = _tokenizer.BosId >= 0 ? _tokenizer.TokenPiece(_tokenizer.BosId) : "";
        string eos = _tokenizer.EosId >= 0 ? _tokenizer.TokenPiece(_tokenizer.EosId) : "";
        // Templates with a thinking switch (Qwen3's enable_thinking) turn thinking off their own way; others get
        // a closed think block appended below.
        if (!thinking && Template.Contains("enable_thinking", StringComparison.Ordinal) && extra?.ContainsKey("enable_thinking") != true)
            extra = new Dictionary<string, object?>(extra ?? new Dictionary<string, object?>()) { ["enable_thinking"] = false };
        // Harmony models always reason; the least they do is the system message's "Reasoning: low".
        if (!thinking && Tags.IsHarmony && extra?.ContainsKey(Harmony.EffortVariable) != true)
            extra = new Dictionary<string, object?>(extra ?? new Dictionary<string, object?>()) { [Harmony.EffortVariable] = "low" };
        string text = ChatTemplate.Apply(Template, messages.Select(ToTemplateValue), addGenerationPrompt, bos, eos, tools, extra);
        bool startsInThinking = addGenerationPrompt && text.TrimEnd().EndsWith(Tags.Open, StringComparison.Ordinal);
        if (startsInThinking && !thinking)
        {
            text += (text.EndsWith('\n') ? "" : "\n") + "\n</think>\n\n";
            startsInThinking = false;
        }
        bool templateWroteBos = bos.Length > 0 && text.StartsWith(bos, StringComparison.Ordinal);
        int[] tokens = _tokenizer.Encode(text, addBos: !templateWroteBos, parseSpecial: true);
        return new ChatPrompt(text, tokens, startsInThinking);
    }

    /// <summary>
    /// Leading tokens of <paramref name="prompt"/> that a context shift keeps: those the conversation's leading
    /// system messages render to (BOS alone when there are none), as far as the prompt starts with them.
    /// </summary>
    public int SystemPrefixTokens(IReadOnlyList<ChatMessage> messages, int[] prompt)
    {
        int n = 0;
        while (n < messages.Count && messages[n].Role == "system") n++;
        int bos = prompt.Length > 0 && prompt[0] == _tokenizer.BosId ? 1 : 0;
        if (n == 0) return bos;
        int[] system;
        try
        {
            system = Build(messages.Take(n).ToList(), addGenerationPrompt: false).Tokens;
        }
        catch (TemplateException)
        {
            return bos; // a template that insists on a user turn renders no system-only prefix
        }
        int common = 0;
        while (common < system.Length && common < prompt.Length && system[common] == prompt[common]) common++;
        return Math.Max(bos, common);
    }

    private static Dictionary<string, object?> ToTemplateValue(ChatMessage m)
    {
        var d = new Dictionary<string, object?> { ["role"] = m.Role, ["content"] = m.Content ?? "" };
        if (m.Name != null) d["name"] = m.Name;
        if (m.ToolCallId != null) d["tool_call_id"] = m.ToolCallId;
        if (m.ToolCalls is { Count: > 0 })
        {
            if (m.Content == null) d["content"] = null;
            d["tool_calls"] = m.ToolCalls.Select(tc => (object?)new Dictionary<string, object?>
            {
                ["id"] = tc.Id,
                ["type"] = "function",
                ["function"] = new Dictionary<string, object?>
                {
                    ["name"] = tc.Name,
                    // Templates index into arguments (Llama, Qwen) so pass an object when the JSON is one.
                    ["arguments"] = ParseArguments(tc.ArgumentsJson),
                },
            }).ToList();
        }
        return d;
    }

    private static object? ParseArguments(string json)
    {
        try
        {
            return JsonNode.Parse(json) is JsonObject o ? o : json;
        }
        catch (System.Text.Json.JsonException)
        {
            return json;
        }
    }
}
