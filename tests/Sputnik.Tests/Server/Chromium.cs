using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// Headless Debian chromium with one page, driven over the DevTools protocol (no Selenium or Playwright needed).
/// Every page's CSP violations are collected in window.__csp from the first script on.
/// </summary>
internal sealed class Chromium : IAsyncDisposable
{
    public const string Path = "/usr/bin/chromium";
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    private readonly Process _process;
    private readonly string _profile;

    private Chromium(Process process, string profile, Cdp page)
    {
        _process = process;
        _profile = profile;
        Page = page;
    }

    public Cdp Page { get; }

    /// <summary>Skips the test when chromium is not installed (.ci/run installs it).</summary>
    public static async Task<Chromium> StartAsync()
    {
        if (!File.Exists(Path)) Assert.Skip($"chromium is not installed at {Path}");
        string profile = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "sputnik-chromium-" + Guid.NewGuid().ToString("N")[..8]);
        var process = Process.Start(new ProcessStartInfo(Path,
            ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", $"--user-data-dir={profile}",
             "--window-size=1280,800", "about:blank"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        try
        {
            var page = await Cdp.ConnectAsync(profile);
            await page.SendAsync("Page.enable");
            await page.SendAsync("Page.addScriptToEvaluateOnNewDocument", new JsonObject
            {
                ["source"] = "window.__csp = []; document.addEventListener('securitypolicyviolation', e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));",
            });
            return new Chromium(process, profile, page);
        }
        catch
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
    }

    /// <summary>Sets the viewport (CSS pixels); mobile also turns on the mobile viewport and touch behaviour.</summary>
    public Task ViewportAsync(int width, int height, bool mobile) =>
        Page.SendAsync("Emulation.setDeviceMetricsOverride", new JsonObject
        {
            ["width"] = width, ["height"] = height, ["deviceScaleFactor"] = 1, ["mobile"] = mobile,
        });

    /// <summary>Opens the chat app and waits until it has loaded the model list.</summary>
    public async Task OpenAppAsync(Uri server)
    {
        await Page.SendAsync("Page.navigate", new JsonObject { ["url"] = server.ToString() });
        await Page.WaitForAsync("document.readyState === 'complete' && typeof marked === 'object' && document.getElementById('model').options.length > 0", 15);
    }

    /// <summary>Saves a PNG of the viewport under the test output folder and names it in the test output.</summary>
    public async Task<string> ScreenshotAsync(string name)
    {
        var shot = await Page.SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" });
        string dir = System.IO.Path.Combine(AppContext.BaseDirectory, "TestResults", "screenshots");
        Directory.CreateDirectory(dir);
        string file = System.IO.Path.Combine(dir, name);
        await File.WriteAllBytesAsync(file, Convert.FromBase64String((string)shot["data"]!), Ct);
        TestContext.Current.TestOutputHelper?.WriteLine($"screenshot: {file}");
        TestContext.Current.SendDiagnosticMessage($"screenshot: {file}");
        return file;
    }

    public async ValueTask DisposeAsync()
    {
        await Page.DisposeAsync();
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync(CancellationToken.None);
        _process.Dispose();
        try { Directory.Delete(_profile, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

/// <summary>A minimal Chrome DevTools Protocol client over one page target; events that arrive are kept in order.</summary>
internal sealed class Cdp : IAsyncDisposable
{
    private static CancellationToken Ct => TestContext.Current.CancellationToken;
    private readonly ClientWebSocket _ws;
    private int _id;

    private Cdp(ClientWebSocket ws) => _ws = ws;

    /// <summary>Events (messages with a method and no id) received so far.</summary>
    public List<JsonNode> Events { get; } = [];

    public static async Task<Cdp> ConnectAsync(string profile)
    {
        string portFile = Path.Combine(profile, "DevToolsActivePort");
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!File.Exists(portFile) || new FileInfo(portFile).Length == 0)
        {
            if (DateTime.UtcNow > deadline) throw new TimeoutException("chromium did not open its DevTools port");
            await Task.Delay(50, Ct);
        }
        int port = int.Parse((await File.ReadAllLinesAsync(portFile, Ct))[0]);
        using var http = new HttpClient();
        var targets = JsonNode.Parse(await http.GetStringAsync($"http://127.0.0.1:{port}/json/list", Ct))!.AsArray();
        string url = (string)targets.First(t => (string)t!["type"]! == "page")!["webSocketDebuggerUrl"]!;
        var ws = new ClientWebSocket();
        await ws.ConnectAsync(new Uri(url), Ct);
        return new Cdp(ws);
    }

    public async Task<JsonNode> SendAsync(string method, JsonObject? parameters = null)
    {
        int id = ++_id;
        var msg = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters ?? new JsonObject() };
        await _ws.SendAsync(Encoding.UTF8.GetBytes(msg.ToJsonString()), WebSocketMessageType.Text, true, Ct);
        var buffer = new byte[1 << 16];
        while (true)
        {
            using var ms = new MemoryStream();
            WebSocketReceiveResult r;
            do
            {
                r = await _ws.ReceiveAsync(buffer, Ct);
                ms.Write(buffer, 0, r.Count);
            } while (!r.EndOfMessage);
            var reply = JsonNode.Parse(ms.ToArray())!;
            if (reply["id"] is { } rid && (int)rid == id)
            {
                if (reply["error"] != null) throw new InvalidOperationException($"{method}: {reply["error"]!.ToJsonString()}");
                return reply["result"]!;
            }
            if (reply["method"] != null) Events.Add(reply);
        }
    }

    public async Task<JsonNode?> EvalAsync(string expression)
    {
        var r = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true });
        if (r["exceptionDetails"] != null) throw new InvalidOperationException("page script failed: " + r["exceptionDetails"]!.ToJsonString());
        return r["result"]!["value"];
    }

    /// <summary>Evaluates an expression that returns JSON.stringify(…) and parses it.</summary>
    public async Task<JsonNode> EvalJsonAsync(string expression) => JsonNode.Parse((string)(await EvalAsync(expression))!)!;

    public async Task WaitForAsync(string condition, int seconds)
    {
        var deadline = DateTime.UtcNow.AddSeconds(seconds);
        while (true)
        {
            try
            {
                if (await EvalAsync($"!!({condition})") is JsonValue v && v.GetValue<bool>()) return;
            }
            catch (InvalidOperationException) when (DateTime.UtcNow < deadline) { } // page still loading
            if (DateTime.UtcNow > deadline) throw new TimeoutException($"waited {seconds} s for: {condition}");
            await Task.Delay(100, Ct);
        }
    }

    public async ValueTask DisposeAsync()
    {
        try { await _ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None); } catch (WebSocketException) { }
        _ws.Dispose();
    }
}
