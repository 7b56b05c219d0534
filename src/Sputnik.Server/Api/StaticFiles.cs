using System.Reflection;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Sputnik.Server.Api;

/// <summary>The chat web app, embedded in this assembly (wwwroot/**), so the server works offline from one binary.</summary>
internal static class StaticFiles
{
    private static readonly Assembly Asm = typeof(StaticFiles).Assembly;
    private static readonly HashSet<string> Names = [.. Asm.GetManifestResourceNames()];

    /// <summary>
    /// The app's pages run only the app's own scripts and styles: model output is markdown rendered to HTML, so a
    /// prompt-injected model must not be able to run script, load remote images or fonts (which would leak the chat
    /// through their URLs), post forms anywhere, or frame the page. KaTeX sets heights and margins in style
    /// attributes, hence 'unsafe-inline' for style attributes only (style elements and url() fetches stay blocked).
    /// </summary>
    public const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; " +
        "font-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

    public static void Map(IEndpointRouteBuilder app)
    {
        // "/" is mapped with Ollama's endpoints: the page for browsers, "Ollama is running" for Ollama's clients.
        // "/app" and "/app/" are the page itself; the route value is absent for them.
        app.MapGet("/app", (HttpContext ctx) => Serve(ctx, "index.html"));
        app.MapGet("/app/{**path}", (HttpContext ctx, string? path) => Serve(ctx, string.IsNullOrEmpty(path) ? "index.html" : path));
    }

    /// <summary>X-Content-Type-Options: nosniff on every response of the server (API JSON and errors included).</summary>
    public static Task NoSniff(HttpContext ctx, RequestDelegate next)
    {
        // OnStarting, because the error handler clears the headers set before an exception.
        ctx.Response.OnStarting(() =>
        {
            ctx.Response.Headers.XContentTypeOptions = "nosniff";
            return Task.CompletedTask;
        });
        return next(ctx);
    }

    public static async Task Serve(HttpContext ctx, string path)
    {
        string name = "wwwroot/" + path;
        if (path.Contains("..", StringComparison.Ordinal) || !Names.Contains(name))
            throw new ApiException(404, $"no such file: /app/{Printable(path)}", code: "not_found");
        ctx.Response.ContentType = Path.GetExtension(path) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".svg" => "image/svg+xml",
            ".png" => "image/png",
            ".woff2" => "font/woff2",
            _ => "text/plain; charset=utf-8",
        };
        var headers = ctx.Response.Headers;
        headers.CacheControl = path.StartsWith("vendor/", StringComparison.Ordinal) ? "public, max-age=86400" : "no-cache";
        headers.ContentSecurityPolicy = ContentSecurityPolicy;
        headers.XFrameOptions = "DENY";
        headers["Referrer-Policy"] = "no-referrer";
        using var s = Asm.GetManifestResourceStream(name)!;
        ctx.Response.ContentLength = s.Length;
        await s.CopyToAsync(ctx.Response.Body, ctx.RequestAborted);
    }

    /// <summary>The requested path as it can be echoed in an error: control characters replaced, length capped.</summary>
    private static string Printable(string path)
    {
        string shown = path.Length > 200 ? path[..200] + "…" : path;
        return string.Create(shown.Length, shown, (span, src) =>
        {
            for (int i = 0; i < src.Length; i++) span[i] = char.IsControl(src[i]) ? '?' : src[i];
        });
    }
}
