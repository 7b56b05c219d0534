using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;

namespace Sputnik.Server.Api.Ollama;

// Ollama's wire shapes (ollama/ollama api/types.go). Durations are nanoseconds; times are RFC 3339.

internal sealed record OllamaError(string Error);

internal sealed record OllamaMessage(
    string Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string Content,
    string? Thinking = null,
    IReadOnlyList<OllamaToolCall>? ToolCalls = null);

internal sealed record OllamaToolCall(OllamaToolCallFunction Function, string? Id = null);

internal sealed record OllamaToolCallFunction(int Index, string Name, JsonElement Arguments);


internal sealed record OllamaChatChunk(string Model, DateTime CreatedAt, OllamaMessage Message, bool Done, string? DoneReason = null,
    long? TotalDuration = null, long? LoadDuration = null, int? PromptEvalCount = null, long? PromptEvalDuration = null,
    int? EvalCount = null, long? EvalDuration = null);

internal sealed record OllamaGenerateChunk(string Model, DateTime CreatedAt,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string Response, bool Done,
    string? Thinking = null, IReadOnlyList<OllamaToolCall>? ToolCalls = null, string? DoneReason = null, IReadOnlyList<int>? Context = null,
    long? TotalDuration = null, long? LoadDuration = null, int? PromptEvalCount = null, long? PromptEvalDuration = null,
    int? EvalCount = null, long? EvalDuration = null);

internal sealed record OllamaDetails(string ParentModel, string Format, string Family, IReadOnlyList<string> Families,
    string ParameterSize, string QuantizationLevel);

internal sealed record OllamaModelEntry(string Name, string Model, DateTime ModifiedAt, long Size, string Digest, OllamaDetails Details);

internal sealed record OllamaTags(IReadOnlyList<OllamaModelEntry> Models);

internal sealed record OllamaRunningModel(string Name, string Model, long Size, string Digest, OllamaDetails Details,
    DateTime ExpiresAt, long SizeVram, int ContextLength);

internal sealed record OllamaPs(IReadOnlyList<OllamaRunningModel> Models);

internal sealed record OllamaShow(string Modelfile, string Parameters, string Template, OllamaDetails Details,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] JsonObject ModelInfo, IReadOnlyList<string> Capabilities, DateTime ModifiedAt);

internal sealed record OllamaVersion(string Version);

/// <summary>A line of /api/pull's progress: a status, and for a file its digest and bytes.</summary>
internal sealed record OllamaPullStatus(string Status, string? Digest = null, long? Total = null, long? Completed = null);

internal sealed record OllamaEmbedResponse(string Model, IReadOnlyList<float[]> Embeddings, long TotalDuration, long LoadDuration, int PromptEvalCount);

internal sealed record OllamaLegacyEmbedding(float[] Embedding);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(OllamaError))]
[JsonSerializable(typeof(OllamaChatChunk))]
[JsonSerializable(typeof(OllamaGenerateChunk))]
[JsonSerializable(typeof(OllamaTags))]
[JsonSerializable(typeof(OllamaPs))]
[JsonSerializable(typeof(OllamaShow))]
[JsonSerializable(typeof(OllamaVersion))]
[JsonSerializable(typeof(OllamaPullStatus))]
[JsonSerializable(typeof(OllamaEmbedResponse))]
[JsonSerializable(typeof(OllamaLegacyEmbedding))]
internal sealed partial class OllamaJson : JsonSerializerContext
{
    /// <summary>The context the endpoints use: readable escaping (no \u0022 for quotes, text as it is).</summary>
    public static OllamaJson Api { get; } = new(new JsonSerializerOptions
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
