using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Sputnik.Tests.Hub;

/// <summary>
/// A Hugging Face hub on loopback that speaks the routes Sputnik uses, the way huggingface.co answers them:
/// <c>/api/models/{o}/{r}/revision/{rev}</c> (the commit), <c>/api/models/{o}/{r}/tree/{rev}?recursive=true</c> (files
/// with size, git oid and LFS oid, in pages linked by a Link header), <c>/{o}/{r}/resolve/{rev}/{path}</c> (a 302 to
/// a second "CDN" route with X-Repo-Commit, X-Linked-Etag and X-Linked-Size), and the CDN route serving bytes with
/// Range. Faults can be injected per file: drop the connection mid-file, answer 503, serve bytes that do not match
/// the listed oid, stall. Repositories can require a token (401 without it).
/// </summary>
internal sealed class StandInHub : IAsyncDisposable
{
    public sealed class HubFile(string path, byte[] bytes)
    {
        public string Path { get; } = path;
        public byte[] Bytes { get; } = bytes;
        public string Sha256 { get; } = Convert.ToHexStringLower(SHA256.HashData(bytes));
        public string GitOid { get; } = Convert.ToHexStringLower(SHA1.HashData([.. System.Text.Encoding.ASCII.GetBytes($"blob {bytes.Length}\0"), .. bytes]));

        /// <summary>The size the listing states instead of the real one (a model too large for the disk).</summary>
        public long? ListedSize { get; set; }

        /// <summary>Bytes the CDN sends instead of <see cref="Bytes"/> (a corrupt upload or a lying mirror).</summary>
        public byte[]? Served { get; set; }

        /// <summary>The next N requests for this file end the connection after DropAfter bytes.</summary>
        public int DropTimes { get; set; }
        public long DropAfter { get; set; }

        /// <summary>The next N requests for this file get a 503.</summary>
        public int FailTimes { get; set; }

        /// <summary>The next N requests send the headers, then nothing for this long.</summary>
        public int StallTimes { get; set; }
    }

    private sealed record Repo(string Commit, Dictionary<string, HubFile> Files, string? Token);

    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<string, Repo> _repos = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, HubFile> _blobs = new(StringComparer.Ordinal);

    /// <summary>Entries per listing page: small, so pagination is exercised.</summary>
    public int PageSize { get; set; } = 2;

    /// <summary>GETs of the CDN route, and every Range header they carried.</summary>
    public int CdnRequests => _cdnRequests;
    private int _cdnRequests;
    public long BytesServed => Interlocked.Read(ref _bytesServed);
    private long _bytesServed;
    public ConcurrentQueue<string> Ranges { get; } = new();

    /// <summary>Authorization headers seen by the CDN route (the token must not follow the redirect there).</summary>
    public ConcurrentQueue<string> CdnAuthorizations { get; } = new();

    public string Endpoint { get; private set; } = "";

    private StandInHub(WebApplication app) => _app = app;

    public static async Task<StandInHub> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        var hub = new StandInHub(app);
        app.MapGet("/api/models/{owner}/{name}/revision/{rev}", (string owner, string name, string rev, HttpContext ctx) =>
            hub.Find(ctx, $"{owner}/{name}", rev, out var repo) ?? Results.Json(new JsonObject { ["id"] = $"{owner}/{name}", ["sha"] = repo!.Commit }));
        app.MapGet("/api/models/{owner}/{name}/tree/{rev}", (string owner, string name, string rev, int? cursor, HttpContext ctx) =>
            hub.Find(ctx, $"{owner}/{name}", rev, out var repo) ?? hub.Tree(ctx, repo!, cursor ?? 0));
        app.MapGet("/{owner}/{name}/resolve/{rev}/{**path}", (string owner, string name, string rev, string path, HttpContext ctx) =>
        {
            if (hub.Find(ctx, $"{owner}/{name}", rev, out var repo) is { } error) return error;
            if (!repo!.Files.TryGetValue(path, out var file))
            {
                ctx.Response.Headers["X-Error-Code"] = "EntryNotFound";
                return Results.NotFound();
            }
            ctx.Response.Headers["X-Repo-Commit"] = repo.Commit;
            ctx.Response.Headers["X-Linked-Etag"] = $"\"{file.Sha256}\"";
            ctx.Response.Headers["X-Linked-Size"] = file.Bytes.Length.ToString();
            // The bytes live on a "CDN": another origin (localhost rather than 127.0.0.1), as huggingface.co redirects LFS files.
            return Results.Redirect($"http://localhost:{ctx.Connection.LocalPort}/cdn/{file.Sha256}?path={Uri.EscapeDataString(path)}");
        });
        app.MapGet("/cdn/{oid}", (string oid, HttpContext ctx) => hub.Serve(oid, ctx));
        await app.StartAsync();
        hub.Endpoint = app.Urls.First().TrimEnd('/');
        return hub;
    }

    /// <summary>Adds (or replaces) a repository with one commit holding <paramref name="files"/>.</summary>
    public string[] AddRepo(string repo, IEnumerable<HubFile> files, string? token = null)
    {
        string commit = Convert.ToHexStringLower(SHA1.HashData(System.Text.Encoding.UTF8.GetBytes(repo + Guid.NewGuid())));
        var map = files.ToDictionary(f => f.Path, StringComparer.Ordinal);
        foreach (var f in map.Values) _blobs[f.Sha256] = f;
        _repos[repo] = new Repo(commit, map, token);
        return [commit];
    }

    public string Commit(string repo) => _repos[repo].Commit;

    public HubFile File(string repo, string path) => _repos[repo].Files[path];

    /// <summary>401/404 answers with the hub's X-Error-Code, or null when the repository and revision exist.</summary>
    private IResult? Find(HttpContext ctx, string name, string rev, out Repo? repo)
    {
        repo = null;
        string? auth = ctx.Request.Headers.Authorization;
        // As huggingface.co: a missing repository is 401 RepoNotFound to anonymous callers (so private repositories
        // stay hidden) and 404 with a token; a private one with a wrong token is 403.
        if (!_repos.TryGetValue(name, out var found) || (found.Token != null && auth == null))
        {
            ctx.Response.Headers["X-Error-Code"] = "RepoNotFound";
            return Results.StatusCode(auth == null ? 401 : 404);
        }
        if (found.Token != null && auth != $"Bearer {found.Token}") return Results.StatusCode(403);
        if (rev != "main" && rev != found.Commit)
        {
            ctx.Response.Headers["X-Error-Code"] = "RevisionNotFound";
            return Results.NotFound();
        }
        repo = found;
        return null;
    }

    private IResult Tree(HttpContext ctx, Repo repo, int cursor)
    {
        var entries = new JsonArray();
        var all = repo.Files.Values.OrderBy(f => f.Path, StringComparer.Ordinal).ToList();
        foreach (var f in all.Skip(cursor).Take(PageSize))
        {
            entries.Add(new JsonObject
            {
                ["type"] = "file",
                ["oid"] = f.GitOid,
                ["size"] = f.ListedSize ?? f.Bytes.Length,
                ["path"] = f.Path,
                ["lfs"] = f.Path.EndsWith(".gguf", StringComparison.Ordinal)
                    ? new JsonObject { ["oid"] = f.Sha256, ["size"] = f.ListedSize ?? f.Bytes.Length, ["pointerSize"] = 134 }
                    : null,
            });
        }
        if (cursor + PageSize < all.Count)
            ctx.Response.Headers["Link"] = $"<{ctx.Request.Path}?recursive=true&cursor={cursor + PageSize}>; rel=\"next\"";
        return Results.Content(entries.ToJsonString(), "application/json");
    }

    private async Task Serve(string oid, HttpContext ctx)
    {
        Interlocked.Increment(ref _cdnRequests);
        if (ctx.Request.Headers.Authorization.Count > 0) CdnAuthorizations.Enqueue(ctx.Request.Headers.Authorization!);
        if (!_blobs.TryGetValue(oid, out var file))
        {
            ctx.Response.StatusCode = 404;
            return;
        }
        lock (file)
        {
            if (file.FailTimes > 0)
            {
                file.FailTimes--;
                ctx.Response.StatusCode = 503;
                return;
            }
        }
        byte[] bytes = file.Served ?? file.Bytes;
        long from = 0, to = bytes.Length - 1;
        string? range = ctx.Request.Headers.Range;
        if (range != null)
        {
            Ranges.Enqueue(range);
            string[] parts = range["bytes=".Length..].Split('-');
            from = long.Parse(parts[0]);
            if (parts[1].Length > 0) to = Math.Min(to, long.Parse(parts[1]));
            if (from >= bytes.Length)
            {
                ctx.Response.StatusCode = 416;
                return;
            }
            ctx.Response.StatusCode = 206;
            ctx.Response.Headers.ContentRange = $"bytes {from}-{to}/{bytes.Length}";
        }
        long length = to - from + 1;
        ctx.Response.ContentLength = length;
        bool drop, stall;
        lock (file)
        {
            drop = file.DropTimes > 0;
            if (drop) file.DropTimes--;
            stall = !drop && file.StallTimes > 0;
            if (stall) file.StallTimes--;
        }
        if (stall)
        {
            await ctx.Response.Body.FlushAsync();
            await Task.Delay(TimeSpan.FromSeconds(30), ctx.RequestAborted).ContinueWith(_ => { });
            ctx.Abort();
            return;
        }
        long send = drop ? Math.Min(length, Math.Max(0, file.DropAfter - from)) : length;
        for (long at = 0; at < send;)
        {
            int n = (int)Math.Min(64 * 1024, send - at);
            await ctx.Response.Body.WriteAsync(bytes.AsMemory((int)(from + at), n));
            at += n;
            Interlocked.Add(ref _bytesServed, n);
        }
        if (drop)
        {
            await ctx.Response.Body.FlushAsync();
            ctx.Abort(); // the connection dies with the body unfinished
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
