using System.Text.Json;
using Sputnik.Inference;
using Sputnik.Tokenizers;

namespace Sputnik.Training;

/// <summary>
/// Supervised data read from OpenAI fine-tuning lines (<c>{"messages": [{"role": …, "content": …}, …]}</c>, one
/// conversation a line, ending in the assistant message to learn). Each conversation is rendered with a model's own
/// chat template: the prompt is every message before the last with the generation prompt, the completion is the last
/// assistant message followed by what the template closes a turn with (R1's end-of-sentence, ChatML's
/// &lt;|im_end|&gt;). Thinking travels inline in the content (<c>&lt;think&gt;\n…&lt;/think&gt;\n\nanswer</c>), as
/// R1's distillation data and <c>sputnik generate</c> write it; when the generation prompt already opens the block
/// (R1's template ends with <c>&lt;think&gt;\n</c>) that opening is part of the prompt, not the completion. Only the
/// last assistant message is learned: R1's template drops the thinking of earlier ones, so they are context.
/// </summary>
internal sealed class ChatDataset
{
    /// <summary>Stands in for the assistant's content to find where a template puts it and what it writes after it.</summary>
    private const string Sentinel = "\u0001sputnik-assistant-content\u0001";

    private readonly (int[] Ids, int PromptLen)[] _examples;
    private int[] _order = [];
    private int _orderEpoch = -1;
    private readonly int _seed;

    private ChatDataset((int[] Ids, int PromptLen)[] examples, int skipped, int seed)
    {
        _examples = examples;
        Skipped = skipped;
        _seed = seed;
    }

    public IReadOnlyList<(int[] Ids, int PromptLen)> Examples => _examples;

    /// <summary>Conversations left out because prompt and completion together exceed the context.</summary>
    public int Skipped { get; }

    /// <summary>
    /// Reads every line of <paramref name="path"/> (blank lines skipped) and renders it with <paramref name="chat"/>.
    /// A line that is not a conversation is an error naming the file and line; conversations longer than
    /// <paramref name="maxSeq"/> tokens are left out and counted, and a file with none that fits is an error.
    /// </summary>
    public static ChatDataset Load(string path, ChatPromptBuilder chat, Tokenizer tokenizer, int maxSeq, int seed = 1)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"--data {path} not found");
        var examples = new List<(int[] Ids, int PromptLen)>();
        int skipped = 0, lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var ex = Render(ParseLine(line, $"{path}:{lineNo}"), chat, tokenizer);
            if (ex.Ids.Length > maxSeq) skipped++;
            else examples.Add(ex);
        }
        if (examples.Count == 0)
            throw new InvalidDataException(skipped > 0
                ? $"{path}: none of its {skipped} conversations fits the model's {maxSeq}-token context"
                : $"{path}: no conversations (expected one {{\"messages\": [...]}} object per line)");
        return new ChatDataset(examples.ToArray(), skipped, seed);
    }

    /// <summary>
    /// Parses one line: a JSON object whose "messages" array holds system/user/assistant messages with string
    /// content, at least one user message, ending in a non-empty assistant message. <paramref name="where"/> names
    /// the line in errors ("FILE:LINE").
    /// </summary>
    public static IReadOnlyList<ChatMessage> ParseLine(string line, string where)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(line);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{where}: not JSON ({e.Message})");
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("messages", out var arr) || arr.ValueKind != JsonValueKind.Array)
                throw NotConversation(where, "expected an object with a \"messages\" array");
            var messages = new List<ChatMessage>();
            foreach (var m in arr.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String)
                    throw NotConversation(where, $"message {messages.Count + 1} has no \"role\"");
                string r = role.GetString()!;
                if (r is not ("system" or "user" or "assistant"))
                    throw NotConversation(where, $"message {messages.Count + 1} has role '{Gguf.DisplayText.Safe(r, 40)}' (system, user or assistant)");
                if (!m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                    throw NotConversation(where, $"message {messages.Count + 1} ({r}) has no string \"content\"");
                messages.Add(new ChatMessage(r, content.GetString()));
            }
            if (!messages.Any(m => m.Role == "user")) throw NotConversation(where, "it has no user message");
            if (messages[^1].Role != "assistant" || string.IsNullOrEmpty(messages[^1].Content))
                throw NotConversation(where, "it does not end with a non-empty assistant message");
            return messages;
        }
    }

    private static InvalidDataException NotConversation(string where, string why) => new($"{where}: not a conversation: {why}");

    /// <summary>Renders a conversation ending in an assistant message into prompt + completion tokens (see the class).</summary>
    public static (int[] Ids, int PromptLen) Render(IReadOnlyList<ChatMessage> messages, ChatPromptBuilder chat, Tokenizer tokenizer)
    {
        var earlier = messages.Take(messages.Count - 1).ToList();
        string content = messages[^1].Content ?? "";
        var prompt = chat.Build(earlier, addGenerationPrompt: true);
        string withSentinel = chat.Build([.. earlier, ChatMessage.Assistant(Sentinel)], addGenerationPrompt: false).Text;
        int at = withSentinel.IndexOf(Sentinel, StringComparison.Ordinal);
        if (at < 0) throw new InvalidDataException("the chat template does not write the assistant's content");
        string head = withSentinel[..at], close = withSentinel[(at + Sentinel.Length)..];
        int[] promptIds = prompt.Tokens;
        string completion = content;
        if (prompt.Text.StartsWith(head, StringComparison.Ordinal))
        {
            // What the generation prompt adds after the assistant header (R1's "<think>\n") is the prompt's when the
            // content starts with it; content that does not (an answer without thinking) follows the header alone.
            string opened = prompt.Text[head.Length..];
            if (content.StartsWith(opened, StringComparison.Ordinal)) completion = content[opened.Length..];
            else if (opened.Length > 0) promptIds = Encode(tokenizer, head);
        }
        int[] completionIds = tokenizer.Encode(completion + close, addBos: false, parseSpecial: true);
        return ([.. promptIds, .. completionIds], promptIds.Length);
    }

    /// <summary>The tokens of rendered text, BOS added unless the template wrote it (as ChatPromptBuilder.Build does).</summary>
    private static int[] Encode(Tokenizer tokenizer, string rendered)
    {
        string bos = tokenizer.BosId >= 0 ? tokenizer.TokenPiece(tokenizer.BosId) : "";
        bool wroteBos = bos.Length > 0 && rendered.StartsWith(bos, StringComparison.Ordinal);
        return tokenizer.Encode(rendered, addBos: !wroteBos, parseSpecial: true);
    }

    /// <summary>
    /// The <paramref name="b"/> examples of optimizer step <paramref name="step"/>: epochs of the data, each in an
    /// order shuffled by (seed, epoch), read b at a time. The same step always gets the same examples, so a run resumed
    /// after a kill continues the stream where it was.
    /// </summary>
    public List<(int[] Ids, int PromptLen)> Batch(int step, int b)
    {
        var batch = new List<(int[] Ids, int PromptLen)>(b);
        for (long i = (long)step * b; batch.Count < b; i++)
        {
            int epoch = (int)(i / _examples.Length);
            if (epoch != _orderEpoch)
            {
                _order = Enumerable.Range(0, _examples.Length).ToArray();
                new Random(Seeds.Mix(_seed, epoch)).Shuffle(_order);
                _orderEpoch = epoch;
            }
            batch.Add(_examples[_order[(int)(i % _examples.Length)]]);
        }
        return batch;
    }
}
