using System.Net;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// The chat app over plain HTTP, on the bundled model (no fixture, no browser): what /v1/models tells it about the
/// context, the security headers on its pages, its markup (no inline script or style, which the CSP would block), and
/// what odd paths under /app get.
/// </summary>
public sealed class WebAppTests : IAsyncLifetime
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private TestServer _s = null!;

    public async ValueTask InitializeAsync() =>
        _s = await TestServer.StartAsync(o => o with { ContextLength = 0 }, modelPath: TestServer.BundledModelPath);

    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    [Fact]
    public async Task ModelsReportTheContextALikeLlamaServer()
    {
        // What the file says (the bundled model gets retrained; these follow it).
        long trainedContext, embedding;
        using (var file = Sputnik.Gguf.GgufFile.Open(TestServer.BundledModelPath))
        {
            string arch = file.Architecture!;
            Assert.True(file.TryGetInt64($"{arch}.context_length", out trainedContext));
            Assert.True(file.TryGetInt64($"{arch}.embedding_length", out embedding));
        }
        var card = (await _s.GetJsonAsync("/v1/models"))["data"]![0]!;
        Assert.Equal("sputnik-r1-tiny", (string)card["id"]!);
        int served = Math.Min((int)trainedContext, 4096); // --ctx 0: the model's own, capped at 4096
        Assert.Equal(served, (int)card["context_length"]!);
        var meta = card["meta"]!;
        Assert.Equal(trainedContext, (long)meta["n_ctx_train"]!);
        Assert.Equal(served, (int)meta["n_ctx"]!);
        Assert.Equal(embedding, (long)meta["n_embd"]!);
        Assert.True((int)meta["n_vocab"]! > 0);
        Assert.Equal(new FileInfo(TestServer.BundledModelPath).Length, (long)meta["size"]!);
        Assert.Equal((long)meta["parameters"]!, (long)meta["n_params"]!);
        // The fields that were there before stay.
        Assert.Equal(served, (int)meta["context_length"]!);
        Assert.Equal((int)meta["n_vocab"]!, (int)meta["vocab_size"]!);
        Assert.True((bool)meta["thinking"]!);
        Assert.Equal("model", (string)card["object"]!);
        Assert.Equal(card.ToJsonString(), (await _s.GetJsonAsync("/v1/models/sputnik-r1-tiny")).ToJsonString());
    }

    [Fact]
    public async Task ASmallerServedContextIsWhatTheCardReports()
    {
        int trained = (int)(await _s.GetJsonAsync("/v1/models"))["data"]![0]!["meta"]!["n_ctx_train"]!;
        await using var small = await TestServer.StartAsync(o => o with { ContextLength = 256 }, modelPath: TestServer.BundledModelPath);
        var card = (await small.GetJsonAsync("/v1/models"))["data"]![0]!;
        Assert.Equal(256, (int)card["context_length"]!);
        Assert.Equal(256, (int)card["meta"]!["n_ctx"]!);
        Assert.Equal(trained, (int)card["meta"]!["n_ctx_train"]!);
    }

    [Theory]
    [InlineData("/")]
    [InlineData("/app/index.html")]
    [InlineData("/app/app.js")]
    [InlineData("/app/app.css")]
    [InlineData("/app/vendor/purify.min.js")]
    public async Task AppFilesCarryAStrictCspAndFrameAndSniffHeaders(string path)
    {
        using var resp = await BrowserGet(path);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        string csp = string.Join(";", resp.Headers.GetValues("Content-Security-Policy"));
        var directives = csp.Split(';', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries)
            .ToDictionary(d => d.Split(' ')[0], d => d[(d.IndexOf(' ') + 1)..]);
        Assert.Equal("'none'", directives["default-src"]);
        Assert.Equal("'self'", directives["script-src"]);
        Assert.Equal("'self' data:", directives["img-src"]);
        Assert.Equal("'self'", directives["style-src"]);
        Assert.Equal("'self'", directives["connect-src"]);
        Assert.Equal("'none'", directives["frame-ancestors"]);
        Assert.Equal("'none'", directives["form-action"]);
        Assert.DoesNotContain("unsafe-eval", csp);
        Assert.Equal("DENY", Assert.Single(resp.Headers.GetValues("X-Frame-Options")));
        Assert.Equal("nosniff", Assert.Single(resp.Headers.GetValues("X-Content-Type-Options")));
    }

    [Theory]
    [InlineData("/v1/models")]
    [InlineData("/health")]
    [InlineData("/api/conversations")]
    [InlineData("/app/nope.js")]
    [InlineData("/no/such/route")]
    public async Task EveryResponseSaysNoSniff(string path)
    {
        using var resp = await _s.Client.GetAsync(path, Ct);
        Assert.Equal("nosniff", Assert.Single(resp.Headers.GetValues("X-Content-Type-Options")));
    }

    /// <summary>A GET as a browser sends it: "/" serves the page only to clients asking for HTML (Ollama's clients get text there).</summary>
    private async Task<HttpResponseMessage> BrowserGet(string path)
    {
        using var req = new HttpRequestMessage(HttpMethod.Get, path);
        req.Headers.Accept.ParseAdd("text/html,application/xhtml+xml,*/*;q=0.8");
        return await _s.Client.SendAsync(req, Ct);
    }

    [Fact]
    public async Task ThePageHasNoInlineScriptOrStyle()
    {
        using var page = await BrowserGet("/");
        string html = await page.Content.ReadAsStringAsync(Ct);
        var scripts = Regex.Matches(html, "<script\\b[^>]*>", RegexOptions.IgnoreCase);
        Assert.NotEmpty(scripts);
        Assert.All(scripts, m => Assert.Matches("src=\"/app/[^\"]+\"", m.Value));
        Assert.DoesNotMatch("<script\\b[^>]*>[^<]+</script>", html);
        Assert.DoesNotMatch("(?i)<style\\b", html);
        Assert.DoesNotMatch("(?i)\\sstyle=", html);
        Assert.DoesNotMatch("(?i)\\son[a-z]+=", html);
        Assert.DoesNotMatch("(?i)(src|href)=\"(https?:)?//", html); // nothing from another origin
    }

    [Theory]
    [InlineData("/app")]
    [InlineData("/app/")]
    public async Task TheAppFolderIsThePage(string path)
    {
        using var resp = await _s.Client.GetAsync(path, Ct);
        Assert.Equal(HttpStatusCode.OK, resp.StatusCode);
        Assert.StartsWith("text/html", resp.Content.Headers.ContentType!.ToString());
        Assert.Contains("<title>Sputnik Chat</title>", await resp.Content.ReadAsStringAsync(Ct));
    }

    [Theory]
    [InlineData("/app/nope.js")]
    [InlineData("/app/vendor/")]
    [InlineData("/app/vendor/katex/fonts/")]
    [InlineData("/app/..%2fServerHost.cs")]
    [InlineData("/app/%1B[2Jx.js")]
    public async Task AMissingAppFileIsAJson404NamingIt(string path)
    {
        using var resp = await _s.Client.GetAsync(path, Ct);
        Assert.Equal(HttpStatusCode.NotFound, resp.StatusCode);
        var body = JsonNode.Parse(await resp.Content.ReadAsStringAsync(Ct))!;
        string message = (string)body["error"]!["message"]!;
        Assert.False(string.IsNullOrWhiteSpace(message));
        Assert.DoesNotContain("\u001b", message); // no terminal escapes echoed
    }
}
