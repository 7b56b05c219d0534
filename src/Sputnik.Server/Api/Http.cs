using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Sputnik.Inference;

namespace Sputnik.Server.Api;

/// <summary>Small HTTP helpers shared by the endpoints.</summary>
internal static class Http
{
    /// <summary>
    /// Reads the whole body; Kestrel's MaxRequestBodySize (--max-body) turns an oversized one into a 413, and so does
    /// <paramref name="limit"/>, checked against Content-Length before anything is read and against the bytes as they come.
    /// </summary>
    public static async Task<byte[]> ReadBodyAsync(HttpContext ctx, long limit = long.MaxValue)
    {
        if (ctx.Request.ContentLength > limit) throw BodyTooLarge(limit);
        using var ms = new MemoryStream(ctx.Request.ContentLength is > 0 and var n ? (int)Math.Min(n, 1 << 20) : 0);
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await ctx.Request.Body.ReadAsync(buffer, ctx.RequestAborted)) > 0)
        {
            if (ms.Length + read > limit) throw BodyTooLarge(limit);
            ms.Write(buffer, 0, read);
        }
        return ms.Length == ms.Capacity ? ms.GetBuffer() : ms.ToArray();
    }

    private static ApiException BodyTooLarge(long limit) =>
        new(413, $"the request body is larger than {limit} bytes, the smaller of --max-body and what a prompt that fits this model's context could take",
            code: "request_too_large");

    public static async Task<T> ReadAsync<T>(HttpContext ctx, JsonTypeInfo<T> type)
    {
        var body = await ReadBodyAsync(ctx);
        RequestReader.ParseBody(body).Dispose(); // a 400 for what is not a JSON object
        try
        {
            return JsonSerializer.Deserialize(body, type) ?? throw ApiException.BadRequest("the request body must be a JSON object");
        }
        catch (JsonException ex)
        {
            throw ApiException.BadRequest($"the request body does not match: {ex.Message}", ex.Path?.TrimStart('$', '.'));
        }
    }

    public static async Task WriteJsonAsync<T>(HttpContext ctx, int status, T value, JsonTypeInfo<T> type)
    {
        ctx.Response.StatusCode = status;
        ctx.Response.ContentType = "application/json; charset=utf-8";
        await JsonSerializer.SerializeAsync(ctx.Response.Body, value, type, ctx.RequestAborted);
    }

    /// <summary>
    /// The completion budget: what the request asked for (all the room left when it asked for nothing), clamped to
    /// the room the context leaves after the prompt, as llama-server does; generation that reaches the clamp ends
    /// with finish_reason "length". Only a prompt that leaves no room at all is refused, naming both numbers.
    /// </summary>
    public static int CompletionBudget(ModelHost host, int promptTokens, int? maxTokens, string param = "messages")
    {
        int ctxLen = host.Model.ContextLength;
        if (promptTokens >= ctxLen) throw PromptTooLong(ctxLen, $"{promptTokens} tokens", param);
        int room = ctxLen - promptTokens;
        // With context shift an explicit max_tokens may run past the room (the context makes space as it fills).
        return host.Options.ContextShift && maxTokens != null ? maxTokens.Value : Math.Min(maxTokens ?? room, room);
    }

    /// <summary>The 400 for a prompt that leaves no room in the context; <paramref name="promptSize"/> says how big it is.</summary>
    /// <summary>
    /// Refuses, before tokenizing, a prompt whose text is so long that it cannot fit: no token spells more than
    /// <see cref="ModelHost.MaxTokenBytes"/> bytes, and a character is at least one byte, so text of C characters
    /// is at least C / MaxTokenBytes tokens. Tokenizing megabytes only to refuse them cost ~50× their size in memory.
    /// </summary>
    public static void CheckPromptText(ModelHost host, long characters, string param)
    {
        long atLeast = characters / host.MaxTokenBytes;
        if (atLeast >= host.Model.ContextLength)
            throw PromptTooLong(host.Model.ContextLength, $"{characters} characters, at least {atLeast} tokens", param);
    }

    public static ApiException PromptTooLong(int contextLength, string promptSize, string param) =>
        ApiException.BadRequest(
            $"This model's maximum context length is {contextLength} tokens. However, your prompt is {promptSize}, which leaves no room " +
            "for a completion. Please reduce the length of the messages.", param, "context_length_exceeded");

    /// <summary>
    /// Refuses a response_format whose shortest accepted JSON cannot be written in the completion budget even if
    /// every token were the vocabulary's longest (minLength: 1e9, minItems: 1e9…): such a request could only end
    /// in cut-off JSON. Schemas that fit only with long tokens are served, and end with finish_reason "length" if
    /// the budget runs out mid-value.
    /// </summary>
    public static void CheckSchemaFits(ModelHost host, Sputnik.Inference.Json.SchemaNode schema, int maxTokens)
    {
        long most = (long)maxTokens * host.MaxTokenBytes;
        if (schema.MinBytes > most)
            throw ApiException.BadRequest(
                $"the shortest JSON that 'response_format' accepts is {schema.MinBytes} bytes or more, but the completion budget of {maxTokens} tokens " +
                $"(max_tokens, or the room left in the context) can write at most {most} bytes with this model's vocabulary",
                "response_format", "response_format_cannot_fit");
    }

    /// <summary>A generation failure as an API error (never with internals).</summary>
    public static ApiException Wrap(Exception ex) => ex switch
    {
        ApiException a => a,
        ContextOverflowException c => ApiException.BadRequest(c.Message, "messages", "context_length_exceeded"),
        ArgumentException a => ApiException.BadRequest(a.Message),
        _ => new ApiException(500, "the generation failed inside the server", code: "internal_error"),
    };
}
