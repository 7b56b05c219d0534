using Xunit;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Sputnik.Tests.Server;

/// <summary>
/// response_format enforced by constrained decoding: the story model never writes JSON by itself (checked below),
/// so valid JSON in these answers is the constraint's doing.
/// </summary>
public sealed class ResponseFormatTests : IAsyncLifetime
{
    private const string Schema = """
        {"type":"object","properties":{
          "name":{"type":"string","maxLength":12},
          "age":{"type":"integer"},
          "mood":{"enum":["happy","sad"]},
          "pets":{"type":"array","items":{"type":"string","maxLength":6},"maxItems":2},
          "owner":{"anyOf":[{"type":"null"},{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"],"additionalProperties":false}]}
        },"required":["name","age","mood","pets","owner"],"additionalProperties":false}
        """;

    private static string SchemaFormat(string schema = Schema) =>
        $$$""","response_format":{"type":"json_schema","json_schema":{"name":"person","strict":true,"schema":{{{schema}}}}}""";

    private TestServer _s = null!;

    public async ValueTask InitializeAsync() => _s = await TestServer.StartAsync();
    public async ValueTask DisposeAsync() => await _s.DisposeAsync();

    private static string Content(JsonNode body) => (string)body["choices"]![0]!["message"]!["content"]!;

    /// <summary>Asserts the text is an object the schema above accepts.</summary>
    private static void AssertPerson(string content)
    {
        using var doc = JsonDocument.Parse(content);
        var o = doc.RootElement;
        Assert.Equal(JsonValueKind.Object, o.ValueKind);
        Assert.Equal(5, o.EnumerateObject().Count());
        Assert.True(o.GetProperty("name").GetString()!.Length <= 12);
        Assert.True(o.GetProperty("age").TryGetInt64(out _));
        Assert.Contains(o.GetProperty("mood").GetString(), new[] { "happy", "sad" });
        var pets = o.GetProperty("pets");
        Assert.True(pets.GetArrayLength() <= 2);
        Assert.All(pets.EnumerateArray(), p => Assert.True(p.GetString()!.Length <= 6));
        var owner = o.GetProperty("owner");
        Assert.True(owner.ValueKind == JsonValueKind.Null || owner.GetProperty("ok").ValueKind is JsonValueKind.True or JsonValueKind.False);
    }

    [Fact]
    public async Task WithoutAResponseFormatTheModelDoesNotWriteJson()
    {
        var (_, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(user: "Reply in JSON", maxTokens: 60));
        Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(Content(body)));
    }

    [Fact]
    public async Task JsonObjectAnswersOfARandomModelParseAsObjects()
    {
        // A random-weight model: its free text is noise, so only the constraint can make these answers JSON.
        string path = Path.Combine(Path.GetTempPath(), $"sputnik-json-{Guid.NewGuid():N}.gguf");
        Sputnik.Tools.SyntheticModel.Write(path, new Sputnik.Tools.SynthOptions
        {
            Preset = Sputnik.Tools.SyntheticModel.FindPreset("qwen2-tiny"), FileType = Sputnik.Tools.FileType.Q8_0, Seed = 3,
        });
        try
        {
            await using var s = await TestServer.StartAsync(o => o with { ModelPath = path });
            // The body names no model: the server's is a temp file's.
            string Body(int maxTokens, string extra) => TestServer.ChatBody(user: "Reply in JSON", maxTokens: maxTokens, extra: extra).Replace("\"model\":\"stories260K\",", "");
            var free = await s.PostAsync("/v1/chat/completions", Body(40, ""","temperature":1,"seed":1"""));
            Assert.True(free.Status == 200, free.Body.ToJsonString());
            Assert.ThrowsAny<JsonException>(() => JsonDocument.Parse(Content(free.Body)));
            foreach (int seed in new[] { 1, 2, 3 })
            {
                var (status, body, _) = await s.PostAsync("/v1/chat/completions",
                    Body(400, $$""","response_format":{"type":"json_object"},"temperature":1,"seed":{{seed}}"""));
                Assert.Equal(200, status);
                Assert.True("stop" == (string)body["choices"]![0]!["finish_reason"]!, Content(body));
                using var doc = JsonDocument.Parse(Content(body));
                Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task AJsonObjectAnswerClosesWithinMaxTokens()
    {
        // Left alone, the story model keeps adding members for hundreds of tokens; the budget makes it close in time.
        var (_, body, _) = await _s.PostAsync("/v1/chat/completions",
            TestServer.ChatBody(user: "Reply in JSON", maxTokens: 30, extra: ""","response_format":{"type":"json_object"}"""));
        Assert.Equal("stop", (string)body["choices"]![0]!["finish_reason"]!);
        Assert.True((int)body["usage"]!["completion_tokens"]! <= 30);
        using var doc = JsonDocument.Parse(Content(body));
        Assert.Equal(JsonValueKind.Object, doc.RootElement.ValueKind);
    }

    [Fact]
    public async Task JsonSchemaAnswerValidates()
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(maxTokens: 300, extra: SchemaFormat()));
        Assert.Equal(200, status);
        Assert.Equal("stop", (string)body["choices"]![0]!["finish_reason"]!);
        AssertPerson(Content(body));
    }

    [Fact]
    public async Task SampledJsonSchemaAnswersValidate()
    {
        foreach (int seed in new[] { 1, 2, 3 })
        {
            var (_, body, _) = await _s.PostAsync("/v1/chat/completions",
                TestServer.ChatBody(maxTokens: 300, extra: SchemaFormat() + $$""","temperature":1,"seed":{{seed}}"""));
            Assert.Equal("stop", (string)body["choices"]![0]!["finish_reason"]!);
            AssertPerson(Content(body));
        }
    }

    [Fact]
    public async Task StreamedJsonSchemaAnswerValidates()
    {
        var r = await _s.Client.PostAsync("/v1/chat/completions",
            TestServer.Json(TestServer.ChatBody(maxTokens: 300, stream: true, extra: SchemaFormat())), TestContext.Current.CancellationToken);
        var (events, done, _) = TestServer.ParseSse(await r.Content.ReadAsStringAsync(TestContext.Current.CancellationToken));
        Assert.True(done);
        string content = string.Concat(events.Select(e => (string?)e["choices"]![0]!["delta"]!["content"] ?? ""));
        Assert.True(events.Count > 3, "the answer came in one piece, not streamed");
        Assert.Equal("stop", (string)events[^1]["choices"]![0]!["finish_reason"]!);
        AssertPerson(content);
    }

    [Theory]
    [InlineData("""{"type":"string","pattern":"^a"}""", "pattern")]
    [InlineData("""{"type":"object","properties":{"n":{"type":"number","minimum":0}}}""", "minimum")]
    [InlineData("""{"$ref":"#/$defs/missing"}""", "$ref")]
    public async Task UnsupportedSchemaKeywordsAre400NamingTheKeyword(string schema, string keyword)
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(extra: SchemaFormat(schema)));
        Assert.Equal(400, status);
        var err = body["error"]!;
        Assert.Equal("invalid_request_error", (string)err["type"]!);
        Assert.Equal("response_format.json_schema.schema", (string)err["param"]!);
        Assert.Equal("unsupported_schema", (string)err["code"]!);
        Assert.Contains($"'{keyword}'", (string)err["message"]!);
    }

    [Theory]
    [InlineData(""","response_format":{"type":"json_schema"}""", "response_format.json_schema")]
    [InlineData(""","response_format":{"type":"json_schema","json_schema":{"name":"x"}}""", "response_format.json_schema.schema")]
    [InlineData(""","response_format":{"type":"json_schema","json_schema":{"name":"bad name!","schema":{}}}""", "response_format.json_schema.name")]
    [InlineData(""","response_format":{"type":"json_schema","json_schema":{"schema":{},"strict":"yes"}}""", "response_format.json_schema.strict")]
    public async Task MalformedJsonSchemaFormatsAre400(string extra, string param)
    {
        var (status, body, _) = await _s.PostAsync("/v1/chat/completions", TestServer.ChatBody(extra: extra));
        Assert.Equal(400, status);
        Assert.Equal(param, (string)body["error"]!["param"]!);
    }
}
