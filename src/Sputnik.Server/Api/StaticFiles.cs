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

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/", (HttpContext ctx) => Serve(ctx, "index.html"));
        app.MapGet("/app/{**path}", (HttpContext ctx, string path) => Serve(ctx, path));
    }

    private static async Task Serve(HttpContext ctx, string path)
    {
        string name = "wwwroot/" + path;
        if (path.Contains("..", StringComparison.Ordinal) || !Names.Contains(name))
            throw new ApiException(404, $"no such file: /app/{path}", code: "not_found");
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
        ctx.Response.Headers.CacheControl = path.StartsWith("vendor/", StringComparison.Ordinal) ? "public, max-age=86400" : "no-cache";
        using var s = Asm.GetManifestResourceStream(name)!;
        await s.CopyToAsync(ctx.Response.Body, ctx.RequestAborted);
    }
}
