using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Sputnik.Server.Api;
using Sputnik.Server.Api.Ollama;

namespace Sputnik.Server;

/// <summary>
/// Outermost middleware: every failure becomes OpenAI's error JSON with the right status — never a stack trace —
/// and every response is counted by status for /metrics.
/// </summary>
internal static class ErrorHandling
{
    public static async Task InvokeAsync(HttpContext ctx, RequestDelegate next, ServerMetrics metrics, Action<LogLevel, string>? log)
    {
        try
        {
            await next(ctx);
            if (!ctx.Response.HasStarted && ctx.Response.StatusCode >= 400 && ctx.Response.ContentType == null && ctx.Response.ContentLength is null or 0)
                await WriteAsync(ctx, Unexplained(ctx));
        }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested)
        {
            ctx.Response.StatusCode = 499; // client closed the request; nothing to send
        }
        catch (Exception ex)
        {
            var err = ex switch
            {
                ApiException a => a,
                BadHttpRequestException b when b.StatusCode == 413 => new ApiException(413, "the request body is too large", code: "request_too_large"),
                BadHttpRequestException b => new ApiException(b.StatusCode, b.Message),
                IOException when ctx.RequestAborted.IsCancellationRequested => null,
                _ => null,
            };
            if (err == null && !ctx.RequestAborted.IsCancellationRequested)
            {
                log?.Invoke(LogLevel.Error, $"{ctx.Request.Method} {ctx.Request.Path}: {ex}");
                err = new ApiException(500, "internal server error", code: "internal_error");
            }
            if (err != null) await WriteAsync(ctx, err);
        }
        finally
        {
            metrics.RecordStatus(ctx.Response.StatusCode);
        }
    }

    /// <summary>
    /// An error status set without a body — no route (any path, dotted ones included), a route without this method
    /// (405 with the Allow header routing set), a parameter that did not bind — explained in OpenAI's shape.
    /// </summary>
    private static ApiException Unexplained(HttpContext ctx)
    {
        var req = ctx.Request;
        int status = ctx.Response.StatusCode;
        string allow = ctx.Response.Headers.Allow.ToString();
        return status switch
        {
            404 => new ApiException(404, $"Unknown route: {req.Method} {req.Path}", code: "unknown_route"),
            405 => new ApiException(405, $"{req.Method} is not allowed on {req.Path}; use {(allow.Length > 0 ? allow : "another method")}", code: "method_not_allowed"),
            _ => new ApiException(status, $"the request to {req.Method} {req.Path} is not valid (HTTP {status})"),
        };
    }

    public static async Task WriteAsync(HttpContext ctx, ApiException err)
    {
        if (ctx.Response.HasStarted)
        {
            // Mid-stream: an SSE error event is all that can still be said.
            if (ctx.Response.ContentType?.StartsWith("text/event-stream", StringComparison.Ordinal) == true)
            {
                try
                {
                    var sse = new Sse(ctx.Response);
                    await sse.WriteAsync(new ErrorBody(new ErrorDetail(err.Message, err.Type, err.Param, err.Code)), ServerJson.Api.ErrorBody, ctx.RequestAborted);
                    await sse.DoneAsync(ctx.RequestAborted);
                }
                catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { }
            }
            else if (ctx.Response.ContentType?.StartsWith("application/x-ndjson", StringComparison.Ordinal) == true)
            {
                // Ollama's streams end a failure with an {"error": ...} line.
                try
                {
                    await System.Text.Json.JsonSerializer.SerializeAsync(ctx.Response.Body, new OllamaError(err.Message), OllamaJson.Api.OllamaError, ctx.RequestAborted);
                    await ctx.Response.Body.WriteAsync("\n"u8.ToArray(), ctx.RequestAborted);
                }
                catch (Exception) when (ctx.RequestAborted.IsCancellationRequested) { }
            }
            return;
        }
        var allow = ctx.Response.Headers.Allow;
        var corsOrigin = ctx.Response.Headers.AccessControlAllowOrigin;
        ctx.Response.Clear();
        if (err.Status == 405) ctx.Response.Headers.Allow = allow;
        if (corsOrigin.Count > 0) ctx.Response.Headers.AccessControlAllowOrigin = corsOrigin; // a cross-site caller may read the error
        if (err.RetryAfterSeconds is { } s) ctx.Response.Headers.RetryAfter = s.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (err.Status == 401) ctx.Response.Headers.WWWAuthenticate = "Bearer";
        if (OllamaEndpoints.Owns(ctx.Request.Path))
        {
            await Http.WriteJsonAsync(ctx, err.Status, new OllamaError(err.Message), OllamaJson.Api.OllamaError);
            return;
        }
        await Http.WriteJsonAsync(ctx, err.Status, new ErrorBody(new ErrorDetail(err.Message, err.Type, err.Param, err.Code)), ServerJson.Api.ErrorBody);
    }
}

/// <summary>With --api-key: the API routes need "Authorization: Bearer KEY" (or "x-api-key: KEY"); /health and the web app's files do not.</summary>
internal static class ApiKeyCheck
{
    public static Task InvokeAsync(HttpContext ctx, RequestDelegate next, string key)
    {
        var path = ctx.Request.Path;
        bool open = path == "/" || path == "/health" || path.StartsWithSegments("/app");
        if (open) return next(ctx);
        string? auth = ctx.Request.Headers.Authorization;
        string? given = auth != null && auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) ? auth[7..].Trim() : ctx.Request.Headers["x-api-key"].FirstOrDefault();
        if (given == null) throw new ApiException(401, "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'.", code: "missing_api_key");
        if (!FixedTimeEquals(given, key)) throw new ApiException(401, "Incorrect API key provided.", code: "invalid_api_key");
        return next(ctx);
    }

    private static bool FixedTimeEquals(string a, string b) =>
        System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(
            System.Text.Encoding.UTF8.GetBytes(a), System.Text.Encoding.UTF8.GetBytes(b));
}
