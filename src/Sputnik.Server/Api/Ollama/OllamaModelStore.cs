using System.Diagnostics;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Sputnik.Hub;

namespace Sputnik.Server.Api.Ollama;

/// <summary>
/// POST /api/pull and DELETE /api/delete on a multi-model server: Ollama's shapes over the Hugging Face cache. A
/// pull is the hub's (resumable, SHA-256 checked), named by a hub reference (owner/repo[:QUANT], hf.co/…); its
/// progress streams as Ollama's NDJSON status lines. Both change what the server can serve, so with --api-key they
/// need the key like every API route. A single-model server answers them 404, saying why.
/// </summary>
internal static class OllamaModelStore
{
    public static void Map(IEndpointRouteBuilder app, ModelRegistry? registry)
    {
        if (registry == null)
        {
            const string why = "serves one model (-m); run `sputnik serve` without -m to pull and delete models in the Hugging Face cache";
            app.MapPost("/api/pull", () => { throw new ApiException(404, $"/api/pull: this server {why}"); });
            app.MapDelete("/api/delete", () => { throw new ApiException(404, $"/api/delete: this server {why}"); });
            return;
        }
        app.MapPost("/api/pull", (HttpContext ctx) => Pull(ctx, registry));
        app.MapDelete("/api/delete", (HttpContext ctx) => Delete(ctx, registry));
    }

    private static async Task Pull(HttpContext ctx, ModelRegistry registry)
    {
        string name;
        bool stream;
        using (var doc = RequestReader.ParseBody(await Http.ReadBodyAsync(ctx, 64 * 1024)))
        {
            var f = new JsonFields(doc.RootElement);
            name = OllamaReader.ModelName(f);
            stream = f.Bool("stream") ?? true;
            f.Bool("insecure");
        }
        var reference = Reference(name);
        var progress = Channel.CreateBounded<PullProgress>(new BoundedChannelOptions(64) { FullMode = BoundedChannelFullMode.DropOldest });
        var hub = new ModelHub(registry.Hub) { Progress = p => progress.Writer.TryWrite(p) };
        var output = new NdJson(ctx);
        if (stream) await output.WriteAsync(new OllamaPullStatus("pulling manifest"));
        var pull = Task.Run(async () =>
        {
            try
            {
                return await hub.PullAsync(reference, ctx.RequestAborted);
            }
            finally
            {
                progress.Writer.TryComplete();
            }
        });
        var last = Stopwatch.GetTimestamp();
        int file = -1;
        await foreach (var p in progress.Reader.ReadAllAsync(ctx.RequestAborted))
        {
            // A line when a file starts or ends, else at most ten a second.
            bool edge = p.Index != file || p.Done == p.Total;
            if (!stream || (!edge && Stopwatch.GetElapsedTime(last) < TimeSpan.FromMilliseconds(100))) continue;
            file = p.Index;
            last = Stopwatch.GetTimestamp();
            await output.WriteAsync(new OllamaPullStatus($"pulling {p.BlobId[..Math.Min(12, p.BlobId.Length)]}", "sha256:" + p.BlobId, p.Total, p.Done));
        }
        try
        {
            await pull;
        }
        catch (HubException e)
        {
            if (!ctx.Response.HasStarted) throw new ApiException(Status(e.Kind), e.Message, "model");
            await output.WriteAsync(new OllamaError(e.Message));
            return;
        }
        registry.Refresh();
        if (stream)
        {
            // The downloader checked every file's SHA-256 against the hub's before it kept it.
            await output.WriteAsync(new OllamaPullStatus("verifying sha256 digest"));
            await output.WriteAsync(new OllamaPullStatus("writing manifest"));
            await output.WriteAsync(new OllamaPullStatus("success"));
        }
        else await Http.WriteJsonAsync(ctx, 200, new OllamaPullStatus("success"), OllamaJson.Api.OllamaPullStatus);
    }

    /// <summary>
    /// Deletes a cached model's files (blobs no other snapshot uses too). A loaded model is unloaded first, as
    /// `ollama rm` does; one with requests in flight is refused (409) rather than pulled from under them.
    /// </summary>
    private static async Task Delete(HttpContext ctx, ModelRegistry registry)
    {
        string name;
        using (var doc = RequestReader.ParseBody(await Http.ReadBodyAsync(ctx, 64 * 1024)))
            name = OllamaReader.ModelName(new JsonFields(doc.RootElement));
        var model = registry.Find(name);
        string root = Path.GetFullPath(registry.Hub.CacheRoot) + Path.DirectorySeparatorChar;
        if (model == null || !Path.GetFullPath(model.Path).StartsWith(root, StringComparison.Ordinal) || !ModelReference.TryParse(model.Id, out var reference))
            throw new ApiException(404, $"model '{name}' not found", "model", "model_not_found");
        if (registry.Unload(model.Id) == UnloadResult.Busy)
            throw new ApiException(409, $"model '{name}' is answering requests; delete it when they are done", "model", "model_in_use");
        try
        {
            new ModelHub(registry.Hub).Remove(reference!);
        }
        catch (HubException e) when (e.Kind == HubErrorKind.NotFound)
        {
            throw new ApiException(404, $"model '{name}' not found", "model", "model_not_found");
        }
        finally
        {
            registry.Refresh();
        }
        ctx.Response.StatusCode = 200;
        ctx.Response.ContentLength = 0;
    }

    /// <summary>The hub reference a pull names (Ollama's ":latest" tag means the default quant).</summary>
    private static ModelReference Reference(string name)
    {
        if (name.EndsWith(":latest", StringComparison.OrdinalIgnoreCase)) name = name[..^":latest".Length];
        try
        {
            if (ModelReference.TryParse(name, out var reference)) return reference!;
        }
        catch (HubException e)
        {
            throw ApiException.BadRequest(e.Message, "model");
        }
        throw ApiException.BadRequest($"'{Gguf.DisplayText.Safe(name, 200)}' is not a Hugging Face model reference; pull owner/repo or owner/repo:QUANT (e.g. Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q4_K_M)", "model");
    }

    private static int Status(HubErrorKind kind) => kind switch
    {
        HubErrorKind.NotFound or HubErrorKind.NoGguf or HubErrorKind.QuantNotFound => 404,
        HubErrorKind.InvalidReference => 400,
        HubErrorKind.AccessDenied => 403,
        HubErrorKind.DiskFull => 507,
        HubErrorKind.Offline or HubErrorKind.Server or HubErrorKind.Corrupt => 502,
        _ => 500,
    };

    /// <summary>Ollama's NDJSON lines, the first starting the 200 response.</summary>
    private sealed class NdJson(HttpContext ctx)
    {
        public Task WriteAsync(OllamaPullStatus status) => WriteAsync(status, OllamaJson.Api.OllamaPullStatus);

        public Task WriteAsync(OllamaError error) => WriteAsync(error, OllamaJson.Api.OllamaError);

        private async Task WriteAsync<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type)
        {
            var response = ctx.Response;
            if (!response.HasStarted)
            {
                response.StatusCode = 200;
                response.ContentType = "application/x-ndjson";
                response.Headers.CacheControl = "no-cache";
            }
            await JsonSerializer.SerializeAsync(response.Body, value, type, ctx.RequestAborted);
            await response.Body.WriteAsync("\n"u8.ToArray(), ctx.RequestAborted);
            await response.Body.FlushAsync(ctx.RequestAborted);
        }
    }
}
