using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// DNS rebinding and cross-site writes are refused (Host check, JSON content type, no CORS unless asked), and
/// every refusal — Kestrel-level ones and routing's 404/405 included — is OpenAI's error JSON.
/// </summary>
public sealed class RequestGuardTests : IAsyncLifetime
{
    private TestServer _s = null!;

    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync();
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private static async Task<JsonNode> Error(HttpResponseMessage r, int status, string? code = null)
    {
        Assert.Equal(status, (int)r.StatusCode);
        string text = await r.Content.ReadAsStringAsync(Ct);
        var err = JsonNode.Parse(text)!["error"]!;
        Assert.False(string.IsNullOrEmpty((string?)err["message"]), text);
        Assert.False(string.IsNullOrEmpty((string?)err["type"]), text);
        if (code != null) Assert.Equal(code, (string?)err["code"]);
        return err;
    }

    [Theory]
    [InlineData("attacker.example")]
    [InlineData("attacker.example:8080")]
    [InlineData("192.168.1.10")]
    public async Task AForeignHostHeaderIsRefusedOnALoopbackServer(string host)
    {
        foreach (string path in new[] { "/api/conversations", "/v1/models", "/" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, path);
            req.Headers.Host = host;
            var err = await Error(await _s.Client.SendAsync(req, Ct), 400, "host_not_allowed");
            Assert.Contains("--allowed-hosts", (string)err["message"]!);
        }
        foreach (string ok in new[] { "localhost", "127.0.0.1", $"localhost:{_s.BaseAddress.Port}" })
        {
            using var req = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
            req.Headers.Host = ok;
            Assert.Equal(HttpStatusCode.OK, (await _s.Client.SendAsync(req, Ct)).StatusCode);
        }
    }

    [Fact]
    public async Task AllowedHostsAddsNames()
    {
        await using var s = await TestServer.StartAsync(o => o with { AllowedHosts = ["my-box.lan"] });
        using var req = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        req.Headers.Host = "my-box.lan";
        Assert.Equal(HttpStatusCode.OK, (await s.Client.SendAsync(req, Ct)).StatusCode);
        using var other = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        other.Headers.Host = "attacker.example";
        await Error(await s.Client.SendAsync(other, Ct), 400, "host_not_allowed");
    }

    [Theory]
    [InlineData("/v1/chat/completions", "text/plain")]
    [InlineData("/v1/chat/completions", "application/x-www-form-urlencoded")]
    [InlineData("/v1/completions", "multipart/form-data; boundary=x")]
    [InlineData("/api/conversations", "text/plain")]
    [InlineData("/api/conversations", null)]
    [InlineData("/tokenize", "text/plain;charset=UTF-8")]
    public async Task PostsWithoutAJsonContentTypeAre415(string path, string? contentType)
    {
        var content = new ByteArrayContent(Encoding.UTF8.GetBytes(TestServer.ChatBody(maxTokens: 2)));
        if (contentType != null) content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        var err = await Error(await _s.Client.PostAsync(path, content, Ct), 415, "unsupported_media_type");
        Assert.Contains("application/json", (string)err["message"]!);
        Assert.Empty((await _s.GetJsonAsync("/api/conversations"))["data"]!.AsArray());
    }

    [Fact]
    public async Task CrossSiteWritesAreRefusedAndNoCorsHeadersByDefault()
    {
        using var post = new HttpRequestMessage(HttpMethod.Post, "/api/conversations") { Content = TestServer.Json("{}") };
        post.Headers.Add("Origin", "https://evil.example");
        await Error(await _s.Client.SendAsync(post, Ct), 403, "origin_not_allowed");
        using var get = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        get.Headers.Add("Origin", "https://evil.example");
        var r = await _s.Client.SendAsync(get, Ct);
        Assert.False(r.Headers.Contains("Access-Control-Allow-Origin"));
        // The web app itself is same-origin.
        using var own = new HttpRequestMessage(HttpMethod.Post, "/api/conversations") { Content = TestServer.Json("{}") };
        own.Headers.Add("Origin", _s.BaseAddress.GetLeftPart(UriPartial.Authority));
        Assert.Equal(HttpStatusCode.Created, (await _s.Client.SendAsync(own, Ct)).StatusCode);
    }

    [Fact]
    public async Task CorsOriginAllowsThatOriginOnly()
    {
        const string app = "https://app.example";
        await using var s = await TestServer.StartAsync(o => o with { CorsOrigins = [app], ApiKey = "k" });
        using var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions");
        preflight.Headers.Add("Origin", app);
        preflight.Headers.Add("Access-Control-Request-Method", "POST");
        preflight.Headers.Add("Access-Control-Request-Headers", "authorization, content-type");
        var pre = await s.Client.SendAsync(preflight, Ct);
        Assert.Equal(HttpStatusCode.NoContent, pre.StatusCode);
        Assert.Equal(app, pre.Headers.GetValues("Access-Control-Allow-Origin").Single());
        Assert.Contains("POST", pre.Headers.GetValues("Access-Control-Allow-Methods").Single());

        using var post = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestServer.Json(TestServer.ChatBody(maxTokens: 2)) };
        post.Headers.Add("Origin", app);
        post.Headers.Authorization = new("Bearer", "k");
        var ok = await s.Client.SendAsync(post, Ct);
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(app, ok.Headers.GetValues("Access-Control-Allow-Origin").Single());

        using var evil = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions") { Content = TestServer.Json(TestServer.ChatBody(maxTokens: 2)) };
        evil.Headers.Add("Origin", "https://evil.example");
        evil.Headers.Authorization = new("Bearer", "k");
        await Error(await s.Client.SendAsync(evil, Ct), 403, "origin_not_allowed");
    }

    [Theory]
    [InlineData("/favicon.ico")]
    [InlineData("/wp-login.php")]
    [InlineData("/v1/models.json")]
    [InlineData("/nothing/here")]
    public async Task UnknownPathsDottedOrNotAre404WithABody(string path) =>
        await Error(await _s.Client.GetAsync(path, Ct), 404, "unknown_route");

    [Theory]
    [InlineData("HEAD", "/health", "GET")]
    [InlineData("DELETE", "/v1/chat/completions", "POST")]
    [InlineData("GET", "/v1/completions", "POST")]
    [InlineData("PUT", "/v1/models", "GET")]
    public async Task AKnownPathWithAnotherMethodIs405WithAllow(string method, string path, string allowed)
    {
        using var req = new HttpRequestMessage(new HttpMethod(method), path);
        var r = await _s.Client.SendAsync(req, Ct);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, r.StatusCode);
        Assert.Contains(allowed, r.Content.Headers.Allow);
        if (method != "HEAD") await Error(r, 405, "method_not_allowed");
    }

    [Theory]
    [InlineData("/app/")]
    [InlineData("/app")]
    public async Task TheAppFolderLeadsToTheApp(string path)
    {
        var r = await _s.Client.GetAsync(path, Ct);
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("text/html", r.Content.Headers.ContentType?.MediaType);
    }

    [Fact]
    public async Task LongUrisAndHugeHeadersGetErrorBodies()
    {
        await Error(await _s.Client.GetAsync("/v1/models?q=" + new string('a', 20_000), Ct), 414, "uri_too_long");
        using var req = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        req.Headers.Add("X-Big", new string('b', 40_000));
        await Error(await _s.Client.SendAsync(req, Ct), 431, "headers_too_large");
    }

    /// <summary>A raw request line too long even for Kestrel's raised limit: Kestrel answers itself, and still does not crash or hang.</summary>
    [Fact]
    public async Task ARequestLineBeyondKestrelsLimitIsStillAnswered()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(_s.BaseAddress.Host, _s.BaseAddress.Port, Ct);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET /{new string('a', 100_000)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"), Ct);
        var buf = new byte[4096];
        int n = await stream.ReadAsync(buf, Ct);
        Assert.StartsWith("HTTP/1.1 414", Encoding.ASCII.GetString(buf, 0, n));
    }
}

/// <summary>The new serve flags refuse bad values with a message naming the flag (the CLI prints it as one line).</summary>
public sealed class ServerOptionsTests
{
    [Theory]
    [InlineData("--cache-disk-mb")]
    [InlineData("--cache-ram")]
    [InlineData("--max-body")]
    [InlineData("--allowed-hosts")]
    [InlineData("--cors-origin")]
    public void BadValuesNameTheirFlag(string flag)
    {
        var ok = new Sputnik.Server.ServerOptions { ModelPath = "m.gguf" };
        ok.Validate();
        var bad = flag switch
        {
            "--cache-disk-mb" => ok with { CacheDiskMb = -1 },
            "--cache-ram" => ok with { CacheRamMb = double.NaN },
            "--max-body" => ok with { MaxBodyBytes = 0 },
            "--allowed-hosts" => ok with { AllowedHosts = ["http://x/"] },
            _ => ok with { CorsOrigins = ["app.example"] },
        };
        var ex = Assert.Throws<ArgumentException>(bad.Validate);
        Assert.Contains(flag, ex.Message);
    }
}
