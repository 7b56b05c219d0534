using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// The chat app in headless Debian chromium, driven over the DevTools protocol (no Selenium or Playwright needed):
/// load the page, send a message, see streamed text and the thinking panel, save a screenshot.
/// Skipped when /usr/bin/chromium is not installed (.ci/run installs it).
/// </summary>
public sealed class BrowserTests
{
    private const string Chromium = "/usr/bin/chromium";
    private static CancellationToken Ct => TestContext.Current.CancellationToken;

    [Fact]
    public async Task ChatPageStreamsAnAnswerWithAThinkingPanel()
    {
        if (!File.Exists(Chromium)) Assert.Skip("chromium is not installed");
        await using var server = await TestServer.StartAsync(o => o with
        {
            ChatTemplate = "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] }}{% endfor %}" +
                           "{% if add_generation_prompt %}{{ '<|assistant|><think>\\n' }}{% endif %}",
        });
        string profile = Path.Combine(Path.GetTempPath(), "sputnik-chromium-" + Guid.NewGuid().ToString("N")[..8]);
        using var browser = Process.Start(new ProcessStartInfo(Chromium,
            ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0", $"--user-data-dir={profile}",
             "--window-size=1100,700", "about:blank"]) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        try
        {
            await using var cdp = await Cdp.ConnectAsync(profile);
            await cdp.SendAsync("Page.navigate", new JsonObject { ["url"] = server.BaseAddress.ToString() });
            await cdp.WaitForAsync("document.readyState === 'complete' && typeof marked === 'object' && document.getElementById('model').options.length > 0", 15);
            await cdp.EvalAsync("""
                document.getElementById('max-tokens').value = 40;
                document.getElementById('budget').value = 10;
                document.getElementById('input').value = 'Tell me a story about a cat';
                document.getElementById('input').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
                """);
            await cdp.WaitForAsync("document.querySelectorAll('.msg.assistant .meta').length > 0", 30);
            var info = await cdp.EvalAsync("""
                JSON.stringify({
                  user: document.querySelector('.msg.user .body').textContent,
                  thinking: document.querySelector('.msg.assistant details.thinking .reasoning')?.textContent ?? '',
                  summary: document.querySelector('.msg.assistant details.thinking summary')?.textContent ?? '',
                  answer: document.querySelector('.msg.assistant .body').textContent,
                  meta: document.querySelector('.msg.assistant .meta span').textContent,
                  conversations: document.querySelectorAll('#conversations li').length })
                """);
            var o = JsonNode.Parse((string)info!)!;
            Assert.Equal("Tell me a story about a cat", (string)o["user"]!);
            Assert.False(string.IsNullOrWhiteSpace((string)o["thinking"]!));
            Assert.StartsWith("Thought for", (string)o["summary"]!);
            Assert.False(string.IsNullOrWhiteSpace((string)o["answer"]!));
            Assert.Contains("tok/s", (string)o["meta"]!);
            Assert.Equal(1, (int)o["conversations"]!);

            // Markdown, code highlighting and math go through the vendored libraries.
            var rendered = JsonNode.Parse((string)(await cdp.EvalAsync("""
                (() => { const d = renderMarkdown('# Title\n\nEuler: $e^{i\\pi}+1=0$ costs $5\n\n```js\nlet a = 1;\n```\n<img src=x onerror=alert(1)>');
                  return JSON.stringify({ h1: !!d.querySelector('h1'), katex: !!d.querySelector('.katex'), hljs: !!d.querySelector('code.hljs'),
                    dollars: d.textContent.includes('$5'), onerror: d.innerHTML.includes('onerror') }); })()
                """))!)!;
            Assert.True((bool)rendered["h1"]!);
            Assert.True((bool)rendered["katex"]!);
            Assert.True((bool)rendered["hljs"]!);
            Assert.True((bool)rendered["dollars"]!);
            Assert.False((bool)rendered["onerror"]!);

            var shot = await cdp.SendAsync("Page.captureScreenshot", new JsonObject { ["format"] = "png" });
            string dir = Path.Combine(AppContext.BaseDirectory, "screenshots");
            Directory.CreateDirectory(dir);
            string file = Path.Combine(dir, "chat.png");
            await File.WriteAllBytesAsync(file, Convert.FromBase64String((string)shot["data"]!), Ct);
            TestContext.Current.SendDiagnosticMessage($"screenshot: {file}");
        }
        finally
        {
            if (!browser.HasExited) browser.Kill(entireProcessTree: true);
            await browser.WaitForExitAsync(Ct);
            try { Directory.Delete(profile, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    /// <summary>A minimal Chrome DevTools Protocol client over one page target.</summary>
    private sealed class Cdp : IAsyncDisposable
    {
        private readonly ClientWebSocket _ws;
        private int _id;

        private Cdp(ClientWebSocket ws) => _ws = ws;

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
            }
        }

        public async Task<JsonNode?> EvalAsync(string expression)
        {
            var r = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["returnByValue"] = true });
            if (r["exceptionDetails"] != null) throw new InvalidOperationException("page script failed: " + r["exceptionDetails"]!.ToJsonString());
            return r["result"]!["value"];
        }

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
}
