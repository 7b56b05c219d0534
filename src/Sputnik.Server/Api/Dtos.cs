using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sputnik.Server.Api;

// Response shapes, exactly OpenAI's (plus DeepSeek's and llama.cpp's extensions). Null members are left out
// unless OpenAI writes them as null (finish_reason, logprobs, error param/code, message content).

public sealed record ErrorBody(ErrorDetail Error);

public sealed record ErrorDetail(
    string Message,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

public sealed record ChatCompletion(
    string Id, string Object, long Created, string Model, string SystemFingerprint,
    IReadOnlyList<ChatChoice> Choices, Usage? Usage, Timings? Timings, CostEstimate? Cost);

public sealed record ChatChoice(
    int Index,
    ChatResponseMessage Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChoiceLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record ChatResponseMessage(
    string Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Content,
    string? ReasoningContent,
    IReadOnlyList<ToolCallDto>? ToolCalls);

public sealed record ToolCallDto(string Id, string Type, FunctionCallDto Function, int? Index = null);

public sealed record FunctionCallDto(string Name, string Arguments);

public sealed record ChatCompletionChunk(
    string Id, string Object, long Created, string Model, string SystemFingerprint,
    IReadOnlyList<ChunkChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage,
    Timings? Timings = null, CostEstimate? Cost = null);

public sealed record ChunkChoice(
    int Index,
    ChunkDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChoiceLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record ChunkDelta(string? Role = null, string? Content = null, string? ReasoningContent = null, IReadOnlyList<ToolCallDto>? ToolCalls = null);

public sealed record ChoiceLogprobs(IReadOnlyList<TokenLogprob> Content);

public sealed record TokenLogprob(string Token, double Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<TopLogprob> TopLogprobs);

public sealed record TopLogprob(string Token, double Logprob, IReadOnlyList<int> Bytes);

public sealed record Usage(
    int PromptTokens, int CompletionTokens, int TotalTokens,
    int PromptCacheHitTokens, int PromptCacheMissTokens,
    PromptTokensDetails PromptTokensDetails, CompletionTokensDetails CompletionTokensDetails);

public sealed record PromptTokensDetails(int CachedTokens);

public sealed record CompletionTokensDetails(int ReasoningTokens);

/// <summary>llama.cpp's timing block.</summary>
public sealed record Timings(
    int PromptN, double PromptMs, double PromptPerTokenMs, double PromptPerSecond,
    int PredictedN, double PredictedMs, double PredictedPerTokenMs, double PredictedPerSecond, int CacheN);

/// <summary>Estimated price (USD, from the configured per-million table) and energy (CPU seconds × watts).</summary>
public sealed record CostEstimate(
    string Currency, double InputCacheHit, double InputCacheMiss, double Output, double Total,
    double CpuSeconds, double EnergyJoules);

public sealed record TextCompletion(
    string Id, string Object, long Created, string Model, string SystemFingerprint,
    IReadOnlyList<TextChoice> Choices, Usage? Usage, Timings? Timings, CostEstimate? Cost);

public sealed record TextChoice(
    string Text, int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChoiceLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

public sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, ModelMeta Meta);

public sealed record ModelMeta(string Architecture, long Parameters, int ContextLength, int VocabSize, bool ChatTemplate, bool Thinking, int Slots);

public sealed record HealthStatus(string Status, string Model, int SlotsIdle, int SlotsProcessing, int Queued);

public sealed record TokenizeResponse(IReadOnlyList<int> Tokens, IReadOnlyList<string>? Pieces = null);

public sealed record DetokenizeResponse(string Content);

public sealed record ConversationDto(string Id, string Title, long CreatedAt, long UpdatedAt, IReadOnlyList<MessageDto>? Messages = null);

public sealed record MessageDto(long Id, string Role, string Content, string? ReasoningContent, JsonElement? Meta, long CreatedAt);

public sealed record ConversationList(string Object, IReadOnlyList<ConversationDto> Data);

// Request bodies of the small endpoints (the chat/completions bodies are read field by field by RequestReader).

public sealed record TokenizeRequest(string? Content, bool? AddSpecial, bool? WithPieces, bool? ParseSpecial);

public sealed record DetokenizeRequest(int[]? Tokens);

public sealed record ConversationPatch(string? Title);

public sealed record NewMessage(string? Role, string? Content, string? ReasoningContent, JsonElement? Meta);

[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.Strict)]
[JsonSerializable(typeof(ErrorBody))]
[JsonSerializable(typeof(ChatCompletion))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(TextCompletion))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ModelCard))]
[JsonSerializable(typeof(HealthStatus))]
[JsonSerializable(typeof(TokenizeResponse))]
[JsonSerializable(typeof(DetokenizeResponse))]
[JsonSerializable(typeof(TokenizeRequest))]
[JsonSerializable(typeof(DetokenizeRequest))]
[JsonSerializable(typeof(ConversationDto))]
[JsonSerializable(typeof(ConversationList))]
[JsonSerializable(typeof(ConversationPatch))]
[JsonSerializable(typeof(NewMessage))]
[JsonSerializable(typeof(MessageDto))]
public sealed partial class ServerJson : JsonSerializerContext;

/// <summary>The context the endpoints use: <see cref="ServerJson.Default"/> with readable escaping (no \u0022 for quotes).</summary>
public sealed partial class ServerJson
{
    public static ServerJson Api { get; } = new(new System.Text.Json.JsonSerializerOptions
    {
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
