using System.Text.Json;
using Sputnik.Templates;
using Xunit;

namespace Sputnik.Tests.Templates;

/// <summary>
/// Renders published chat templates over the conversations in Data/cases.json and compares byte for byte with
/// Data/expected.json, which Data/render_expected.py produced with Python jinja2 in transformers' environment.
/// </summary>
public class ConformanceTests
{
    private static readonly string DataDir = Path.Combine(Fixtures.RepoRoot, "tests", "Sputnik.Tests", "Templates", "Data");
    private static readonly DateTime FixedNow = new(2024, 7, 26, 10, 30, 0);

    private static readonly Lazy<JsonElement> CasesJson = new(() => Load("cases.json"));
    private static readonly Lazy<JsonElement> ExpectedJson = new(() => Load("expected.json"));

    private static JsonElement Load(string name) =>
        JsonDocument.Parse(File.ReadAllText(Path.Combine(DataDir, name))).RootElement.Clone();

    public static IEnumerable<object[]> CaseKeys() =>
        Load("expected.json").EnumerateObject().Select(p => new object[] { p.Name });

    [Theory]
    [MemberData(nameof(CaseKeys))]
    public void Renders_like_python_jinja2(string key)
    {
        var parts = key.Split('|');
        var cases = CasesJson.Value;
        var template = cases.GetProperty("templates").EnumerateArray().Single(t => t.GetProperty("name").GetString() == parts[0]);
        var conversation = cases.GetProperty("conversations").EnumerateArray().Single(c => c.GetProperty("name").GetString() == parts[1]);
        var source = File.ReadAllText(Path.Combine(DataDir, template.GetProperty("file").GetString()!));

        var context = new Dictionary<string, object?>
        {
            ["messages"] = conversation.GetProperty("messages"),
            ["tools"] = conversation.GetProperty("tools").GetBoolean() ? cases.GetProperty("tools") : null,
            ["documents"] = null,
            ["add_generation_prompt"] = parts[2] == "gen",
        };
        foreach (var tok in new[] { "bos_token", "eos_token" })
            if (template.GetProperty(tok).ValueKind == JsonValueKind.String) context[tok] = template.GetProperty(tok).GetString();

        var expected = ExpectedJson.Value.GetProperty(key);
        var tpl = ChatTemplate.Parse(source);
        if (expected.TryGetProperty("output", out var output))
        {
            Assert.Equal(output.GetString(), tpl.Render(context, FixedNow));
        }
        else
        {
            var ex = Assert.ThrowsAny<TemplateException>(() => tpl.Render(context, FixedNow));
            Assert.Equal(expected.GetProperty("error").GetString(), ex.Reason);
            var type = expected.GetProperty("type").GetString();
            if (type == "TemplateError") Assert.IsType<TemplateRaisedException>(ex);
            if (type == "UndefinedError") Assert.IsType<UndefinedValueException>(ex);
        }
    }

    [Fact]
    public void Apply_matches_expected_for_llama_with_tools()
    {
        var cases = CasesJson.Value;
        var conversation = cases.GetProperty("conversations").EnumerateArray().Single(c => c.GetProperty("name").GetString() == "tool_call_dict_args");
        var source = File.ReadAllText(Path.Combine(DataDir, "llama-3.2-3b-instruct.jinja"));
        var rendered = ChatTemplate.Apply(
            source,
            conversation.GetProperty("messages").EnumerateArray().Select(m => (object?)m),
            addGenerationPrompt: true,
            bosToken: "<|begin_of_text|>",
            eosToken: "<|eot_id|>",
            tools: cases.GetProperty("tools").EnumerateArray().Select(t => (object?)t),
            now: FixedNow);
        Assert.Equal(ExpectedJson.Value.GetProperty("llama-3.2-3b-instruct|tool_call_dict_args|gen").GetProperty("output").GetString(), rendered);
    }
}
