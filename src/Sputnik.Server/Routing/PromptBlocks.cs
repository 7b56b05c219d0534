using System.Text;
using System.Text.Json;

namespace Sputnik.Server.Routing;

/// <summary>
/// What prefix routing knows of a request: its prompt as chained block hashes, and the key that places its
/// conversation on the ring. The prompt is the request's messages rendered role by role (the router does not know
/// the replica's chat template, and needs none: the same messages render to the same prefix on every turn), cut
/// into blocks of <see cref="RouterOptions.BlockChars"/> characters as the inference extension's prefix scorer cuts
/// them; block i's hash covers blocks 0..i, so a match of block i is a match of the whole prefix up to it.
/// </summary>
/// <param name="Blocks">chained hashes of the whole blocks, at most <see cref="RouterOptions.MaxBlocks"/></param>
/// <param name="Key">places the conversation on the ring: the conversation header when sent, else the prompt up to
/// the end of its first user message (the same on every turn of a chat), else its first blocks; 0: nothing to go by</param>
/// <param name="KeyBlocks">whole blocks inside the part of the prompt the key covers: a replica that was sent at
/// least these (and at least one) has seen this conversation</param>
internal readonly record struct PromptBlocks(ulong[] Blocks, ulong Key, int KeyBlocks)
{
    public static readonly PromptBlocks None = new([], 0, 0);

    /// <summary>Reads the prompt of an OpenAI (chat) completion or an Ollama chat/generate request; None for anything else or bad JSON.</summary>
    public static PromptBlocks From(string path, string? conversation, ReadOnlyMemory<byte> body, int blockChars, int maxBlocks)
    {
        string? text = null;
        int keyChars = 0;
        if (body.Length > 0 && Kind(path) is { } kind)
        {
            try
            {
                using var doc = JsonDocument.Parse(body);
                (text, keyChars) = kind == PromptKind.Chat ? RenderChat(doc.RootElement) : RenderPrompt(doc.RootElement);
            }
            catch (JsonException) { } // the replica answers it with a 400
        }
        if (text == null && conversation == null) return None;
        text ??= "";
        int limit = Math.Min(text.Length, blockChars * maxBlocks);
        var blocks = new ulong[limit / blockChars];
        ulong chain = 0xcbf29ce484222325;
        for (int b = 0; b < blocks.Length; b++)
            blocks[b] = chain = Mix(Fnv(text.AsSpan(b * blockChars, blockChars), chain));
        ulong key = conversation != null ? Mix(Fnv(conversation, 0x9e3779b97f4a7c15))
            : text.Length > 0 ? Mix(Fnv(text.AsSpan(0, Math.Min(keyChars, text.Length)), 0x9e3779b97f4a7c15)) : 0;
        return new PromptBlocks(blocks, key, Math.Min(blocks.Length, Math.Min(keyChars, text.Length) / blockChars));
    }

    private enum PromptKind { Chat, Prompt }

    private static PromptKind? Kind(string path) => path.TrimEnd('/') switch
    {
        "/v1/chat/completions" or "/chat/completions" or "/api/chat" => PromptKind.Chat,
        "/v1/completions" or "/completions" or "/api/generate" => PromptKind.Prompt,
        _ => null,
    };

    /// <summary>"role\ncontent\n\n" per message; the key covers everything up to the end of the first user message.</summary>
    private static (string?, int) RenderChat(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("messages", out var messages) || messages.ValueKind != JsonValueKind.Array)
            return (null, 0);
        var sb = new StringBuilder();
        int keyChars = -1;
        foreach (var m in messages.EnumerateArray())
        {
            if (m.ValueKind != JsonValueKind.Object) continue;
            string role = m.TryGetProperty("role", out var r) && r.ValueKind == JsonValueKind.String ? r.GetString()! : "";
            sb.Append(role).Append('\n');
            if (m.TryGetProperty("content", out var content)) AppendContent(sb, content);
            if (m.TryGetProperty("tool_calls", out var calls)) sb.Append(calls.GetRawText());
            sb.Append("\n\n");
            if (keyChars < 0 && role == "user") keyChars = sb.Length;
        }
        return (sb.ToString(), keyChars < 0 ? sb.Length : keyChars);
    }

    private static void AppendContent(StringBuilder sb, JsonElement content)
    {
        if (content.ValueKind == JsonValueKind.String) sb.Append(content.GetString());
        else if (content.ValueKind == JsonValueKind.Array)
            foreach (var part in content.EnumerateArray())
                sb.Append(part.ValueKind == JsonValueKind.Object && part.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String
                    ? t.GetString() : part.GetRawText());
    }

    /// <summary>A completion's prompt (text, or token ids as their JSON), after an Ollama request's system prompt; the key covers its first four blocks.</summary>
    private static (string?, int) RenderPrompt(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("prompt", out var prompt)) return (null, 0);
        var sb = new StringBuilder();
        if (root.TryGetProperty("system", out var system) && system.ValueKind == JsonValueKind.String) sb.Append(system.GetString()).Append("\n\n");
        sb.Append(prompt.ValueKind == JsonValueKind.String ? prompt.GetString() : prompt.GetRawText());
        return (sb.ToString(), 256);
    }

    private static ulong Fnv(ReadOnlySpan<char> chars, ulong seed)
    {
        ulong h = seed;
        foreach (char c in chars)
        {
            h = (h ^ (byte)c) * 0x100000001b3;
            h = (h ^ (byte)(c >> 8)) * 0x100000001b3;
        }
        return h;
    }

    /// <summary>splitmix64's finaliser: FNV's low bits are poor ring positions on their own.</summary>
    internal static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
        z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
        return z ^ (z >> 31);
    }
}
