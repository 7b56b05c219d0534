using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Sputnik.Hub;

/// <summary>One file of a repository at a commit, as the hub lists it.</summary>
/// <param name="Path">'/'-separated path inside the repository.</param>
/// <param name="Size">Bytes of the file itself (for an LFS file, the LFS object's size, not the pointer's).</param>
/// <param name="GitOid">The git blob id (SHA-1 of "blob SIZE\0" + bytes).</param>
/// <param name="Sha256">The LFS oid (SHA-256 of the bytes); null for a small file kept in git itself.</param>
internal sealed record RepoFile(string Path, long Size, string GitOid, string? Sha256)
{
    /// <summary>The blob's name in the cache, as huggingface_hub names it: the SHA-256 for LFS files, else the git id.</summary>
    public string BlobId => Sha256 ?? GitOid;
}

// The JSON the hub answers with, as far as Sputnik reads it.
internal sealed record RevisionInfo(string? Id, string? Sha);

internal sealed record LfsInfo(string? Oid, long Size);

internal sealed record TreeEntry(string? Type, string? Path, long Size, string? Oid, LfsInfo? Lfs);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, PropertyNameCaseInsensitive = true)]
[JsonSerializable(typeof(RevisionInfo))]
[JsonSerializable(typeof(List<TreeEntry>))]
internal sealed partial class HubJson : JsonSerializerContext;

/// <summary>A response to a file request, with the hub's headers from the first (pre-redirect) answer.</summary>
internal sealed record FileResponse(HttpResponseMessage Message, string? RepoCommit, string? LinkedEtag, long? LinkedSize) : IDisposable
{
    public void Dispose() => Message.Dispose();
}

/// <summary>A failure worth retrying: a 5xx or 429 answer, a dropped connection, a stalled transfer.</summary>
internal sealed class TransientHubException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// The hub's HTTP protocol as huggingface_hub and llama.cpp speak it: <c>GET {endpoint}/api/models/{repo}/revision/{rev}</c>
/// for the commit, <c>…/tree/{commit}?recursive=true</c> (paged by Link headers) for the files with sizes and LFS
/// oids, and <c>{endpoint}/{repo}/resolve/{commit}/{path}</c> for the bytes, whose redirect to a CDN is followed by
/// hand so the token goes only to the endpoint and the X-Repo-Commit / X-Linked-Etag / X-Linked-Size headers of the
/// first answer are seen.
/// </summary>
internal sealed class HubApi : IDisposable
{
    private const int MaxRedirects = 10;
    private const int MaxListingBytes = 64 << 20; // a hostile or broken server cannot make the listing eat memory
    private const int MaxListingPages = 1000;
    private static readonly TimeSpan ApiTimeout = TimeSpan.FromSeconds(60);

    private readonly HttpClient _http;
    private readonly HubSettings _settings;
    private readonly Uri _endpoint;

    public HubApi(HubSettings settings)
    {
        _settings = settings;
        if (!Uri.TryCreate(settings.Endpoint + "/", UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https"))
            throw new HubException(HubErrorKind.InvalidReference, $"HF_ENDPOINT '{settings.Endpoint}' is not an http(s) URL");
        _endpoint = endpoint;
        _http = new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            ConnectTimeout = TimeSpan.FromSeconds(20),
            AutomaticDecompression = DecompressionMethods.None,
            PooledConnectionLifetime = TimeSpan.FromMinutes(5),
        })
        { Timeout = Timeout.InfiniteTimeSpan };
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("sputnik/0.1");
    }

    public string Endpoint => _settings.Endpoint;

    public void Dispose() => _http.Dispose();

    /// <summary>The commit a branch, tag or commit names.</summary>
    public async Task<string> CommitAsync(ModelReference reference, CancellationToken ct)
    {
        var url = new Uri(_endpoint, $"api/models/{reference.Repo}/revision/{Uri.EscapeDataString(reference.RevisionOrDefault)}");
        var info = await GetJsonAsync(url, HubJson.Default.RevisionInfo, reference, null, ct).ConfigureAwait(false);
        string? sha = info.Sha;
        if (sha == null || !HubCache.IsCommitHash(sha))
            throw new HubException(HubErrorKind.Server, $"{Endpoint} gave no commit for {reference.Repo}@{reference.RevisionOrDefault}");
        return sha;
    }

    /// <summary>Every file of the repository at <paramref name="commit"/>, following the listing's pages.</summary>
    public async Task<List<RepoFile>> ListAsync(ModelReference reference, string commit, CancellationToken ct)
    {
        var files = new List<RepoFile>();
        Uri? url = new(_endpoint, $"api/models/{reference.Repo}/tree/{commit}?recursive=true");
        for (int page = 0; url != null; page++)
        {
            if (page == MaxListingPages) throw new HubException(HubErrorKind.Server, $"{Endpoint}: the listing of {reference.Repo} has over {MaxListingPages} pages");
            Uri? next = null;
            var entries = await GetJsonAsync(url, HubJson.Default.ListTreeEntry, reference, r => next = NextPage(r, url), ct).ConfigureAwait(false);
            foreach (var e in entries)
            {
                // Paths and ids become file names in the cache: a listing cannot point outside it.
                if (e.Type != "file" || e.Path is not { Length: > 0 } path || !IsSafePath(path) || e.Oid is not { } oid || !IsHex(oid, 40)) continue;
                string? sha = e.Lfs?.Oid is { } lfs && IsHex(lfs, 64) ? lfs : null;
                files.Add(new RepoFile(path, e.Lfs?.Size ?? e.Size, oid, sha));
            }
            url = next;
        }
        return files;
    }

    private static bool IsHex(string s, int length) => s.Length == length && s.All(char.IsAsciiHexDigitLower);

    /// <summary>A relative '/'-separated path with no empty, '.' or '..' part and no backslash, colon or control character.</summary>
    internal static bool IsSafePath(string path) =>
        path.Length <= 1024 && path.Split('/').All(p => p.Length > 0 && p != "." && p != ".." && !p.Any(c => char.IsControl(c) || c is '\\' or ':'));

    /// <summary>The "next" URL of a Link header (RFC 8288), resolved against the current page.</summary>
    private static Uri? NextPage(HttpResponseMessage response, Uri current)
    {
        if (!response.Headers.TryGetValues("Link", out var values)) return null;
        foreach (string link in values.SelectMany(v => v.Split(',')))
        {
            int open = link.IndexOf('<'), close = link.IndexOf('>');
            if (open < 0 || close < open || !link[close..].Contains("rel=\"next\"", StringComparison.OrdinalIgnoreCase)) continue;
            return Uri.TryCreate(current, link[(open + 1)..close], out var next) ? next : null;
        }
        return null;
    }

    private async Task<T> GetJsonAsync<T>(Uri url, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, ModelReference reference,
        Action<HttpResponseMessage>? inspect, CancellationToken ct)
    {
        for (int attempt = 1; ; attempt++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(ApiTimeout);
            try
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, url);
                Authorize(request);
                using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
                EnsureSuccess(response, reference, null);
                inspect?.Invoke(response);
                var body = new MemoryStream();
                await using (var stream = await response.Content.ReadAsStreamAsync(timeout.Token).ConfigureAwait(false))
                    await CopyCappedAsync(stream, body, MaxListingBytes, timeout.Token).ConfigureAwait(false);
                body.Position = 0;
                try
                {
                    return JsonSerializer.Deserialize(body, type) ?? throw new JsonException("null");
                }
                catch (JsonException e)
                {
                    throw new HubException(HubErrorKind.Server, $"{Endpoint} answered {url.AbsolutePath} with JSON Sputnik cannot read ({e.Message})");
                }
            }
            catch (Exception e) when (IsNetworkFailure(e, ct))
            {
                throw new HubException(HubErrorKind.Offline, $"cannot reach {Endpoint} ({Describe(e)})", e);
            }
            catch (TransientHubException) when (attempt < _settings.MaxAttempts)
            {
                await Task.Delay(Backoff(attempt), ct).ConfigureAwait(false);
            }
            catch (TransientHubException e)
            {
                throw new HubException(HubErrorKind.Server, $"{Endpoint} keeps failing: {e.Message}");
            }
        }
    }

    private static async Task CopyCappedAsync(Stream from, MemoryStream to, int cap, CancellationToken ct)
    {
        var buffer = new byte[81920];
        int n;
        while ((n = await from.ReadAsync(buffer, ct).ConfigureAwait(false)) > 0)
        {
            if (to.Length + n > cap) throw new HubException(HubErrorKind.Server, $"the hub's listing is over {cap >> 20} MiB");
            to.Write(buffer, 0, n);
        }
    }

    /// <summary>
    /// Requests bytes [<paramref name="from"/>, <paramref name="to"/>] (to inclusive; null = to the end) of a file,
    /// following redirects by hand. The caller disposes the answer.
    /// </summary>
    public async Task<FileResponse> GetFileAsync(ModelReference reference, string commit, string path, long from, long? to, CancellationToken ct)
    {
        string escaped = string.Join('/', path.Split('/').Select(Uri.EscapeDataString));
        var url = new Uri(_endpoint, $"{reference.Repo}/resolve/{commit}/{escaped}");
        string? repoCommit = null, etag = null;
        long? size = null;
        for (int hop = 0; hop <= MaxRedirects; hop++)
        {
            var request = new HttpRequestMessage(HttpMethod.Get, url);
            if (url.Host == _endpoint.Host && url.Port == _endpoint.Port) Authorize(request);
            if (from > 0 || to != null) request.Headers.Range = new RangeHeaderValue(from, to);
            var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct).ConfigureAwait(false);
            repoCommit ??= Header(response, "X-Repo-Commit");
            etag ??= Header(response, "X-Linked-Etag")?.Trim('"');
            size ??= long.TryParse(Header(response, "X-Linked-Size"), out long s) ? s : null;
            if ((int)response.StatusCode is >= 300 and < 400 && response.Headers.Location is { } location)
            {
                url = location.IsAbsoluteUri ? location : new Uri(url, location);
                response.Dispose();
                if (url.Scheme is not ("http" or "https")) throw new HubException(HubErrorKind.Server, $"{Endpoint} redirected {path} to a non-HTTP URL");
                continue;
            }
            try
            {
                EnsureSuccess(response, reference, path);
            }
            catch
            {
                response.Dispose();
                throw;
            }
            return new FileResponse(response, repoCommit, etag, size);
        }
        throw new HubException(HubErrorKind.Server, $"{Endpoint}: more than {MaxRedirects} redirects for {path}");
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : null;

    private void Authorize(HttpRequestMessage request)
    {
        if (_settings.Token is { } token) request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    /// <summary>
    /// One clear message per failing status: 404 (the hub's X-Error-Code tells a missing repo, revision and file
    /// apart), 401/403 (private or gated: set HF_TOKEN), 5xx and 429 (transient, retried), anything else.
    /// 206 Partial Content and 416 Range Not Satisfiable are for the downloader to judge.
    /// </summary>
    private void EnsureSuccess(HttpResponseMessage response, ModelReference reference, string? path)
    {
        int status = (int)response.StatusCode;
        if (status is >= 200 and < 300 || status == 416) return;
        string? code = Header(response, "X-Error-Code");
        string repo = reference.Repo;
        if (status >= 500 || status == 429 || status == 408)
            throw new TransientHubException($"HTTP {status} from {response.RequestMessage?.RequestUri?.Host}");
        string hint = _settings.Token == null ? "set HF_TOKEN (or pass --token) to a token that can read it" : "the token given (HF_TOKEN or --token) may not read it";
        throw (status, code) switch
        {
            (_, "GatedRepo") => new HubException(HubErrorKind.AccessDenied, $"{repo} is gated: accept its conditions at {Endpoint}/{repo}, then {hint}"),
            (_, "RevisionNotFound") => new HubException(HubErrorKind.NotFound, $"{repo} has no revision '{reference.RevisionOrDefault}'"),
            (_, "EntryNotFound") => new HubException(HubErrorKind.NotFound, $"{repo} has no file '{path}' at revision '{reference.RevisionOrDefault}'"),
            (404, _) when path != null => new HubException(HubErrorKind.NotFound, $"{repo} has no file '{path}' at revision '{reference.RevisionOrDefault}'"),
            (404, _) => new HubException(HubErrorKind.NotFound, $"model repository {repo} not found on {Endpoint}"),
            (401 or 403, "RepoNotFound") => new HubException(HubErrorKind.NotFound, $"model repository {repo} not found on {Endpoint} (if it is private, {hint})"),
            (401 or 403, _) => new HubException(HubErrorKind.AccessDenied, $"{Endpoint} refused access to {repo} (HTTP {status}): the repository is private, gated or missing; {hint}"),
            _ => new HubException(HubErrorKind.Server, $"{Endpoint} answered HTTP {status} for {repo}{(path != null ? "/" + path : "")}"),
        };
    }

    /// <summary>No answer at all: refused connection, unknown host, reset, a timeout that was not the caller's cancel.</summary>
    internal static bool IsNetworkFailure(Exception e, CancellationToken ct) =>
        e is HttpRequestException { StatusCode: null } || (e is OperationCanceledException && !ct.IsCancellationRequested);

    internal static string Describe(Exception e) => e switch
    {
        OperationCanceledException => "timed out",
        HttpRequestException { InnerException: { } inner } => inner.Message,
        _ => e.Message,
    };

    /// <summary>Wait before try <paramref name="attempt"/> + 1: the base delay doubled per failure, capped.</summary>
    public TimeSpan Backoff(int attempt) =>
        TimeSpan.FromTicks(Math.Min(_settings.MaxRetryDelay.Ticks, _settings.RetryDelay.Ticks << Math.Min(attempt - 1, 16)));
}
