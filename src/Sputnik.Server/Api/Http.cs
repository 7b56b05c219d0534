using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Microsoft.AspNetCore.Http;
using Sputnik.Inference;

namespace Sputnik.Server.Api;

/// <summary>Small HTTP helpers shared by the endpoints.</summary>
internal static class Http
{
    /// <summary>Reads the whole body; Kestrel's MaxRequestBodySize turns an oversized one into a 413.</summary>
    public static async Task<byte[]> ReadBodyAsync(HttpContext ctx)
    {
        using var ms = new MemoryStream();
        await ctx.Request.Body.CopyToAsync(ms, ctx.RequestAborted);
        return ms.ToArray();
    }

    public static async Task<T> ReadAsync<T>(HttpContext ctx, JsonTypeInfo<T> type)
    {
        var body = await ReadBodyAsync(ctx);
        RequestReader.ParseBody(body);
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

    /// <summary>Checks prompt + completion against the slot's context; returns the completion budget.</summary>
    public static int CheckContext(ModelHost host, int promptTokens, int? maxTokens)
    {
        int ctxLen = host.Model.ContextLength;
        if (promptTokens >= ctxLen || promptTokens + (maxTokens ?? 1) > ctxLen)
            throw ApiException.BadRequest(
                $"This model's maximum context length is {ctxLen} tokens. However, you requested {promptTokens + (maxTokens ?? 0)} tokens " +
                $"({promptTokens} in the messages, {maxTokens ?? 0} in the completion). Please reduce the length of the messages or completion.",
                "messages", "context_length_exceeded");
        return maxTokens ?? ctxLen - promptTokens;
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
