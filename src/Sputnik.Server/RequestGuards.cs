using System.Net;
using Microsoft.AspNetCore.Http;
using Microsoft.Net.Http.Headers;

namespace Sputnik.Server;

/// <summary>
/// Checks every request passes before it reaches a route, each answered with OpenAI's error JSON:
/// <list type="bullet">
/// <item>the Host header names this server (--allowed-hosts; loopback names by default on a loopback address), so a
/// web page whose DNS name is rebound to 127.0.0.1 cannot read the history or drive the model;</item>
/// <item>a request with an Origin header is same-origin or from a --cors-origin; cross-site pages get no CORS
/// headers and their writes a 403;</item>
/// <item>a request body is JSON with a JSON content type (415 otherwise), so an HTML form or a "simple" cross-site
/// fetch (text/plain) cannot create completions or conversations;</item>
/// <item>request lines and headers stay under the limits (414, 431) while Kestrel's own, higher limits would only
/// answer with an empty body.</item>
/// </list>
/// </summary>
internal sealed class RequestGuards
{
    /// <summary>The longest path + query answered (Kestrel's default request-line limit).</summary>
    public const int MaxTargetLength = 8 * 1024;
    /// <summary>Header bytes and count answered (Kestrel's defaults).</summary>
    public const int MaxHeaderBytes = 32 * 1024, MaxHeaderCount = 100;
    /// <summary>Kestrel's limits, above ours, so that only requests far past them get Kestrel's empty-bodied error.</summary>
    public const int KestrelRequestLineLimit = 64 * 1024, KestrelHeadersLimit = 256 * 1024, KestrelHeaderCountLimit = 1000;

    private static readonly string[] LoopbackNames = ["localhost", "127.0.0.1", "::1", "[::1]"];
    private readonly HashSet<string>? _hosts; // null: any
    private readonly HashSet<string> _origins;
    private readonly bool _anyOrigin;

    public RequestGuards(ServerOptions options)
    {
        var hosts = options.AllowedHosts ?? (IsLoopback(options.Host) ? LoopbackNames : null);
        _hosts = hosts == null || hosts.Contains("*") ? null : new HashSet<string>(hosts.Select(h => h.Trim()), StringComparer.OrdinalIgnoreCase);
        _anyOrigin = options.CorsOrigins.Contains("*");
        _origins = new HashSet<string>(options.CorsOrigins.Select(o => o.TrimEnd('/')), StringComparer.OrdinalIgnoreCase);
    }

    private static bool IsLoopback(string host) =>
        host == "localhost" || (IPAddress.TryParse(host, out var ip) && IPAddress.IsLoopback(ip));

    public Task InvokeAsync(HttpContext ctx, RequestDelegate next)
    {
        var req = ctx.Request;
        string host = req.Host.Host;
        if (_hosts != null && !_hosts.Contains(host))
            throw new ApiException(400, $"the Host header '{req.Host}' is not one this server answers to; start it with --allowed-hosts {(host.Length > 0 ? host : "NAME")} to allow it",
                "Host", "host_not_allowed");

        int target = (req.Path.Value?.Length ?? 0) + (req.QueryString.Value?.Length ?? 0);
        if (target > MaxTargetLength)
            throw new ApiException(414, $"the request URI is {target} characters long; at most {MaxTargetLength} are allowed", code: "uri_too_long");
        long headerBytes = 0;
        foreach (var h in req.Headers) headerBytes += h.Key.Length + 4 + h.Value.Sum(v => v?.Length ?? 0);
        if (headerBytes > MaxHeaderBytes || req.Headers.Count > MaxHeaderCount)
            throw new ApiException(431, $"the request headers are {headerBytes} bytes in {req.Headers.Count} fields; at most {MaxHeaderBytes} bytes and {MaxHeaderCount} fields are allowed",
                code: "headers_too_large");

        string? origin = req.Headers.Origin;
        bool crossSite = origin != null && !SameOrigin(origin, req);
        bool corsAllowed = crossSite && (_anyOrigin || _origins.Contains(origin!));
        if (corsAllowed)
        {
            ctx.Response.Headers.AccessControlAllowOrigin = _anyOrigin ? "*" : origin;
            ctx.Response.Headers.Vary = HeaderNames.Origin;
            if (HttpMethods.IsOptions(req.Method) && req.Headers.ContainsKey(HeaderNames.AccessControlRequestMethod))
            {
                // Preflight: answered here, before the API key check (browsers send no credentials with it).
                ctx.Response.Headers.AccessControlAllowMethods = "GET, POST, PATCH, DELETE";
                ctx.Response.Headers.AccessControlAllowHeaders = "Authorization, Content-Type, X-Api-Key, X-Conversation-Id";
                ctx.Response.Headers.AccessControlMaxAge = "600";
                ctx.Response.StatusCode = 204;
                return Task.CompletedTask;
            }
        }
        bool writes = HttpMethods.IsPost(req.Method) || HttpMethods.IsPut(req.Method) || HttpMethods.IsPatch(req.Method) || HttpMethods.IsDelete(req.Method);
        if (writes && crossSite && !corsAllowed)
            throw new ApiException(403, $"requests from the web origin '{origin}' are not allowed; start the server with --cors-origin {origin} to allow it",
                "Origin", "origin_not_allowed");
        bool hasBody = req.ContentLength > 0 || req.Headers.TransferEncoding.Count > 0 || req.ContentType != null;
        if (writes && hasBody && !IsJson(req.ContentType) && !Api.Ollama.OllamaEndpoints.Owns(req.Path))
            throw new ApiException(415, $"the request body must be JSON with 'Content-Type: application/json' (got {(req.ContentType is { } ct ? $"'{ct}'" : "none")})",
                "Content-Type", "unsupported_media_type");
        return next(ctx);
    }

    private static bool SameOrigin(string origin, HttpRequest req) =>
        Uri.TryCreate(origin, UriKind.Absolute, out var o) && string.Equals(o.Authority, req.Host.Value, StringComparison.OrdinalIgnoreCase)
        && o.Scheme == req.Scheme;

    private static bool IsJson(string? contentType) =>
        MediaTypeHeaderValue.TryParse(contentType, out var m) && m.MediaType.HasValue
        && (m.MediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || m.MediaType.Value!.EndsWith("+json", StringComparison.OrdinalIgnoreCase));
}
