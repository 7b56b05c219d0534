using System.Text.Json;
using Sputnik.Gguf;
using Sputnik.Inference;
using Sputnik.Models;
using Sputnik.Tokenizers;
using Sputnik.Training.Tasks;

namespace Sputnik.Training;

/// <summary>A token sequence and which of its tokens the loss is taken on (position j predicts token j + 1).</summary>
internal sealed record TrainExample(int[] Ids, bool[] Loss)
{
    /// <summary>Positions with a loss: tokens after the first that are marked.</summary>
    public int Counted { get; } = Loss.Skip(1).Count(x => x);
}

/// <summary>
/// Training sequences for fine-tuning a GGUF model, rendered with the model's own chat template and tokenizer:
/// OpenAI fine-tuning JSONL lines ({"messages": [{"role", "content"}…]}), loss on the assistant turns, or a task's
/// conversations (its traces as the assistant's thinking). The bundled model's template is R1Format's, whose
/// prompt/completion split <see cref="Conversation"/> already renders exactly; other templates go through
/// <see cref="ChatPromptBuilder"/>. JSONL is read and checked whole before training starts.
/// </summary>
internal sealed class TrainingExamples
{
    private readonly List<TrainExample>? _data;
    private readonly ReasoningTask? _task;
    private readonly ConversationMix _mix;
    private readonly Func<Conversation, TrainExample> _encode;
    private readonly int _maxSeq;

    public int PadId { get; }

    private TrainingExamples(List<TrainExample>? data, ReasoningTask? task, ConversationMix mix, Func<Conversation, TrainExample> encode, int maxSeq, int padId)
    {
        _data = data; _task = task; _mix = mix; _encode = encode; _maxSeq = maxSeq; PadId = padId;
    }

    public static TrainingExamples Create(GgufFile f, LoraOptions o, int maxSeq)
    {
        var tokenizer = Tokenizer.Create(TokenizerData.FromGguf(f));
        string? template = f.GetStringOrNull(GgufKeys.ChatTemplate);
        var builder = new ChatPromptBuilder(tokenizer, template);
        int pad = Math.Max(0, tokenizer.EosId);
        if (o.Data != null) return new(LoadJsonl(o.Data, builder, o.LossOnAll, maxSeq), null, o.Mix, _ => throw new InvalidOperationException(), maxSeq, pad);
        var task = ReasoningTask.Create(o.Task);
        bool r1 = template == R1Format.ChatTemplate;
        return new(null, task, o.Mix, c => r1 ? EncodeR1(c, o.LossOnAll) : Encode(c, builder, tokenizer, o.LossOnAll), maxSeq, pad);
    }

    private static TrainExample EncodeR1(Conversation c, bool lossOnAll)
    {
        int[] prompt = c.EncodePrompt(), completion = c.EncodeCompletion();
        return Example(prompt, completion, lossOnAll);
    }

    private static TrainExample Encode(Conversation c, ChatPromptBuilder builder, Tokenizer tokenizer, bool lossOnAll)
    {
        var messages = new List<ChatMessage>();
        foreach (var turn in c.Earlier) { messages.Add(ChatMessage.User(turn.User)); messages.Add(ChatMessage.Assistant(turn.AssistantContent)); }
        messages.Add(ChatMessage.User(c.Last.Prompt));
        var prompt = builder.Build(messages, addGenerationPrompt: true, thinking: c.Thinking);
        string text = c.Thinking
            ? (prompt.StartsInThinking ? "" : R1Format.ThinkOpen + "\n") + c.Last.Trace + R1Format.ThinkClose + "\n\n" + c.Last.Answer
            : R1Format.OpenAnswerText(c.Last);
        int[] completion = [.. tokenizer.Encode(text, addBos: false, parseSpecial: true), tokenizer.EosId];
        return Example(prompt.Tokens, completion, lossOnAll);
    }

    private static TrainExample Example(int[] prompt, int[] completion, bool lossOnAll)
    {
        var ids = prompt.Concat(completion).ToArray();
        var loss = new bool[ids.Length];
        for (int i = lossOnAll ? 1 : prompt.Length; i < ids.Length; i++) loss[i] = true;
        return new TrainExample(ids, loss);
    }

    /// <summary>b examples: drawn with replacement from the data, or fresh task conversations that fit the context.</summary>
    public List<TrainExample> Draw(Random rng, int b)
    {
        var list = new List<TrainExample>(b);
        if (_data != null)
        {
            for (int i = 0; i < b; i++) list.Add(_data[rng.Next(_data.Count)]);
            return list;
        }
        for (int tries = 0; list.Count < b; tries++)
        {
            if (tries > 1000 * b) throw new InvalidOperationException($"{_task!.Name}: almost no example fits the {_maxSeq}-token training context");
            var ex = _encode(_mix.Draw(_task!, rng, EvalSplit.Train, _maxSeq));
            if (ex.Ids.Length <= _maxSeq) list.Add(ex);
        }
        return list;
    }

    /// <summary>Pads into tokens [B, T]; targets[j] = ids[j + 1] where that token carries loss, −1 elsewhere.</summary>
    public static (int[] Tokens, int[] Targets, int T, int Counted) Pack(IReadOnlyList<TrainExample> seqs, int pad)
    {
        int b = seqs.Count, t = seqs.Max(s => s.Ids.Length);
        var tokens = new int[b * t];
        var targets = new int[b * t];
        Array.Fill(targets, -1);
        Array.Fill(tokens, pad);
        int counted = 0;
        for (int i = 0; i < b; i++)
        {
            var (ids, loss) = (seqs[i].Ids, seqs[i].Loss);
            ids.CopyTo(tokens, i * t);
            for (int j = 0; j < ids.Length - 1; j++)
                if (loss[j + 1]) { targets[i * t + j] = ids[j + 1]; counted++; }
        }
        return (tokens, targets, t, counted);
    }

    /// <summary>
    /// Reads OpenAI fine-tuning lines. A line that is not a conversation (not a JSON object with a "messages" array of
    /// {role, content} objects, roles system/user/assistant, at least one assistant turn) is refused with its line
    /// number. Each assistant turn's tokens carry the loss: the span between the rendering of the conversation up to
    /// it with the generation prompt and the rendering through it. Sequences longer than maxSeq are cut.
    /// </summary>
    public static List<TrainExample> LoadJsonl(string path, ChatPromptBuilder builder, bool lossOnAll, int maxSeq)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"--data {path} not found");
        var list = new List<TrainExample>();
        int lineNo = 0;
        foreach (var line in File.ReadLines(path))
        {
            lineNo++;
            if (string.IsNullOrWhiteSpace(line)) continue;
            var messages = ParseConversation(line, out string? why);
            if (messages == null) throw new InvalidDataException($"{path}:{lineNo}: not a conversation: {why}");
            var full = builder.Build(messages, addGenerationPrompt: false).Tokens;
            var loss = new bool[full.Length];
            if (lossOnAll) Array.Fill(loss, true);
            else
                for (int i = 0; i < messages.Count; i++)
                {
                    if (messages[i].Role != "assistant") continue;
                    int from = builder.Build(messages.Take(i).ToList(), addGenerationPrompt: true).Tokens.Length;
                    int to = builder.Build(messages.Take(i + 1).ToList(), addGenerationPrompt: false).Tokens.Length;
                    for (int j = Math.Min(from, full.Length); j < Math.Min(to, full.Length); j++) loss[j] = true;
                }
            int len = Math.Min(full.Length, maxSeq);
            var ex = new TrainExample(full[..len], loss[..len]);
            if (ex.Counted > 0) list.Add(ex);
        }
        if (list.Count == 0) throw new InvalidDataException($"{path}: no conversation with an assistant turn to train on");
        return list;
    }

    private static readonly string[] Roles = ["system", "user", "assistant"];

    private static List<ChatMessage>? ParseConversation(string line, out string? why)
    {
        why = null;
        JsonDocument doc;
        try { doc = JsonDocument.Parse(line); }
        catch (JsonException e) { why = "invalid JSON (" + e.Message.Split('.')[0] + ")"; return null; }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("messages", out var msgs) || msgs.ValueKind != JsonValueKind.Array)
            {
                why = "expected an object with a \"messages\" array";
                return null;
            }
            var list = new List<ChatMessage>();
            foreach (var m in msgs.EnumerateArray())
            {
                if (m.ValueKind != JsonValueKind.Object || !m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String
                    || !m.TryGetProperty("content", out var content) || content.ValueKind != JsonValueKind.String)
                {
                    why = $"message {list.Count + 1} is not a {{\"role\", \"content\"}} object with string values";
                    return null;
                }
                string r = role.GetString()!;
                if (!Roles.Contains(r)) { why = $"message {list.Count + 1} has role '{r}' (system, user or assistant)"; return null; }
                list.Add(new ChatMessage(r, content.GetString()));
            }
            if (!list.Any(m => m.Role == "assistant")) { why = "no assistant message"; return null; }
            return list;
        }
    }
}
