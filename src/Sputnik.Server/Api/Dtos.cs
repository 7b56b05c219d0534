using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sputnik.Server.Api;

// Response shapes, exactly OpenAI's (plus DeepSeek's and llama.cpp's extensions). Null members are left out
// unless OpenAI writes them as null (finish_reason, logprobs, error param/code, message content).

internal sealed record ErrorBody(ErrorDetail Error);

internal sealed record ErrorDetail(
    string Message,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

internal sealed record ChatCompletion(
    string Id, string Object, long Created, string Model, string SystemFingerprint,
    IReadOnlyList<ChatChoice> Choices, Usage? Usage, Timings? Timings, CostEstimate? Cost);

internal sealed record ChatChoice(
    int Index,
    ChatResponseMessage Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChoiceLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record ChatResponseMessage(
    string Role,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Content,
    string? ReasoningContent,
    IReadOnlyList<ToolCallDto>? ToolCalls);

internal sealed record ToolCallDto(string Id, string Type, FunctionCallDto Function, int? Index = null);

internal sealed record FunctionCallDto(string Name, string Arguments);

internal sealed record ChatCompletionChunk(
    string Id, string Object, long Created, string Model, string SystemFingerprint,
    IReadOnlyList<ChunkChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] Usage? Usage,
    Timings? Timings = null, CostEstimate? Cost = null);

internal sealed record ChunkChoice(
    int Index,
    ChunkDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChoiceLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record ChunkDelta(string? Role = null, string? Content = null, string? ReasoningContent = null, IReadOnlyList<ToolCallDto>? ToolCalls = null);

internal sealed record ChoiceLogprobs(IReadOnlyList<TokenLogprob> Content);

internal sealed record TokenLogprob(string Token, double Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<TopLogprob> TopLogprobs);

internal sealed record TopLogprob(string Token, double Logprob, IReadOnlyList<int> Bytes);

internal sealed record Usage(
    int PromptTokens, int CompletionTokens, int TotalTokens,
    int PromptCacheHitTokens, int PromptCacheMissTokens,
    PromptTokensDetails PromptTokensDetails, CompletionTokensDetails CompletionTokensDetails);

internal sealed record PromptTokensDetails(int CachedTokens);

internal sealed record CompletionTokensDetails(int ReasoningTokens);

/// <summary>llama.cpp's timing block; the draft counts only when speculative decoding proposed something, as there.</summary>
internal sealed record Timings(
    int PromptN, double PromptMs, double PromptPerTokenMs, double PromptPerSecond,
    int PredictedN, double PredictedMs, double PredictedPerTokenMs, double PredictedPerSecond, int CacheN,
    int? DraftN = null, int? DraftNAccepted = null);

/// <summary>Estimated price (USD, from the configured per-million table) and energy (CPU seconds × watts).</summary>
internal sealed record CostEstimate(
    string Currency, double InputCacheHit, double InputCacheMiss, double Output, double Total,
    double CpuSeconds, double EnergyJoules);

internal sealed record TextCompletion(
    string Id, string Object, long Created, string Model, string SystemFingerprint,
    IReadOnlyList<TextChoice> Choices, Usage? Usage, Timings? Timings, CostEstimate? Cost);

internal sealed record TextChoice(
    string Text, int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChoiceLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

internal sealed record ModelList(string Object, IReadOnlyList<ModelCard> Data);

/// <summary>A /v1/models entry: OpenAI's fields, the context a request must fit in (context_length, as OpenRouter names it), and meta.</summary>
internal sealed record ModelCard(string Id, string Object, long Created, string OwnedBy, int ContextLength, ModelMeta Meta);

/// <summary>
/// Facts about the served model: Sputnik's names, then llama-server's (n_ctx_train: the context the model was trained
/// with; n_ctx: the context each slot has, which prompt + completion must fit in; size: the file's bytes).
/// </summary>
internal sealed record ModelMeta(string Architecture, long Parameters, int ContextLength, int VocabSize, bool ChatTemplate, bool Thinking, int Slots,
    int NVocab, int NCtxTrain, int NCtx, int NEmbd, long NParams, long Size);

/// <summary>/health: the slots of every loaded model together, and each loaded model (Model: a single-model server's one).</summary>
internal sealed record HealthStatus(string Status, string? Model, int SlotsIdle, int SlotsProcessing, int Queued, IReadOnlyList<HealthModel> Models);

/// <summary>A loaded model in /health: its memory (file and KV cache), when it unloads (Ollama's expires_at), its slots.</summary>
internal sealed record HealthModel(string Id, long Size, DateTime ExpiresAt, int SlotsIdle, int SlotsProcessing, int Queued);

internal sealed record TokenizeResponse(IReadOnlyList<int> Tokens, IReadOnlyList<string>? Pieces = null);

internal sealed record DetokenizeResponse(string Content);

internal sealed record ConversationDto(string Id, string Title, long CreatedAt, long UpdatedAt, IReadOnlyList<MessageDto>? Messages = null);

internal sealed record MessageDto(long Id, string Role, string Content, string? ReasoningContent, JsonElement? Meta, long CreatedAt);

internal sealed record ConversationList(string Object, IReadOnlyList<ConversationDto> Data);

internal sealed record EmbeddingUsage(int PromptTokens, int TotalTokens);

internal sealed record EmbeddingFloats(string Object, int Index, float[] Embedding);

internal sealed record EmbeddingBase64(string Object, int Index, string Embedding);

internal sealed record EmbeddingList(string Object, IReadOnlyList<EmbeddingFloats> Data, string Model, EmbeddingUsage Usage);

/// <summary>encoding_format "base64": each vector as the base64 of its little-endian float32 bytes.</summary>
internal sealed record EmbeddingListBase64(string Object, IReadOnlyList<EmbeddingBase64> Data, string Model, EmbeddingUsage Usage);

// Request bodies of the small endpoints (the chat/completions bodies are read field by field by RequestReader).

internal sealed record TokenizeRequest(string? Content, bool? AddSpecial, bool? WithPieces, bool? ParseSpecial);

internal sealed record DetokenizeRequest(int[]? Tokens);

internal sealed record ConversationPatch(string? Title);

internal sealed record NewMessage(string? Role, string? Content, string? ReasoningContent, JsonElement? Meta);

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
[JsonSerializable(typeof(EmbeddingList))]
[JsonSerializable(typeof(EmbeddingListBase64))]
internal sealed partial class ServerJson : JsonSerializerContext;

/// <summary>The context the endpoints use: <see cref="ServerJson.Default"/> with readable escaping (no \u0022 for quotes).</summary>
internal sealed partial class ServerJson
{
    public static ServerJson Api { get; } = new(new System.Text.Json.JsonSerializerOptions
    {
        PropertyNamingPolicy = System.Text.Json.JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });
}
