using System.Text.Json;
using System.Text.Json.Serialization;
using Sputnik.Inference;

namespace Sputnik.Cli;

/// <summary>Saved conversations: {"system": "...", "messages": [{"role","content","reasoning_content"}]}.</summary>
internal static class ChatFile
{
    private sealed record Message(
        [property: JsonPropertyName("role")] string Role,
        [property: JsonPropertyName("content")] string? Content,
        [property: JsonPropertyName("reasoning_content")] string? ReasoningContent);

    private sealed record Conversation(
        [property: JsonPropertyName("system")] string? System,
        [property: JsonPropertyName("messages")] List<Message> Messages);

    private static readonly JsonSerializerOptions Options = new(JsonOutput.Indented) { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull };

    public static void Save(string path, ChatSession session)
    {
        var conv = new Conversation(session.SystemPrompt, session.Messages.Select(m => new Message(m.Role, m.Content, m.ReasoningContent)).ToList());
        // Write beside the target and move into place: a crash mid-write never destroys an earlier save.
        string tmp = path + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(conv, Options));
        File.Move(tmp, path, overwrite: true);
    }

    public static void Load(string path, ChatSession session)
    {
        var conv = JsonSerializer.Deserialize<Conversation>(File.ReadAllText(path), Options)
            ?? throw new JsonException($"{path}: empty conversation file");
        if (conv.Messages == null) throw new JsonException($"{path}: no \"messages\" array");
        var roles = new HashSet<string> { "user", "assistant", "system", "tool" };
        foreach (var m in conv.Messages)
            if (m.Role == null || !roles.Contains(m.Role)) throw new JsonException($"{path}: unknown role '{m.Role}'");
        session.SystemPrompt = conv.System;
        session.Load(conv.Messages.Select(m => new ChatMessage(m.Role, m.Content) { ReasoningContent = m.ReasoningContent }));
    }
}
