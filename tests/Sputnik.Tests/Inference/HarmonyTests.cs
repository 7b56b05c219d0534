using System.Text.Json.Nodes;
using Sputnik.Inference;
using Sputnik.Templates;
using Xunit;

namespace Sputnik.Tests.Inference;

/// <summary>
/// gpt-oss's harmony format: output channels through the reasoning parser (recorded harmony output, fed whole and a
/// character at a time), tool calls into the canonical &lt;tool_call&gt; form, and the templates (Sputnik's compact one
/// and, when the llama.cpp bundle is on this machine, the official openai-gpt-oss-120b.jinja).
/// </summary>
public class HarmonyTests
{
    // What gpt-oss-20b writes after "<|start|>assistant" (the generation prompt), as the decoder renders it with its
    // special tokens; the closing <|return|> / <|call|> is an end-of-generation token and never reaches the parser.
    private const string Answer =
        "<|channel|>analysis<|message|>User asks 2+2. Simple: 4.<|end|><|start|>assistant<|channel|>final<|message|>2 + 2 = **4**.";
    private const string Call =
        "<|channel|>analysis<|message|>Need weather; call the tool.<|end|><|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"location\":\"Paris\"}";

    private static (string Reasoning, string Content) Feed(IEnumerable<string> pieces)
    {
        var p = new ReasoningParser(false, ThinkTags.Harmony);
        string r = "", c = "";
        foreach (var piece in pieces)
        {
            var d = p.Push(piece);
            r += d.Reasoning;
            c += d.Content;
        }
        var f = p.Flush();
        return (r + f.Reasoning, c + f.Content);
    }

    private static IEnumerable<string> Chars(string s) => s.Select(ch => ch.ToString());

    [Fact]
    public void Analysis_is_reasoning_and_final_is_content()
    {
        var whole = Feed([Answer]);
        Assert.Equal("User asks 2+2. Simple: 4.", whole.Reasoning);
        Assert.Equal("2 + 2 = **4**.", whole.Content);
        Assert.Equal(whole, Feed(Chars(Answer)));
    }

    [Fact]
    public void Parser_state_follows_the_channels()
    {
        var p = new ReasoningParser(false, ThinkTags.Harmony);
        Assert.Equal(ReasoningParser.Phase.BeforeThinking, p.State);
        p.Push("<|channel|>analysis<|message|>hm");
        Assert.Equal(ReasoningParser.Phase.Thinking, p.State);
        p.Push("m<|end|><|start|>assistant<|channel|>fin");
        Assert.Equal(ReasoningParser.Phase.BeforeThinking, p.State);
        Assert.True(p.ThinkingClosed);
        Assert.Null(p.PreviewAnswer("al"));
        Assert.Equal("ok", p.PreviewAnswer("al<|message|>ok"));
        var d = p.Push("al<|message|>ok");
        Assert.Equal(ReasoningParser.Phase.Answer, p.State);
        Assert.Equal("ok", d.Content);
    }

    [Fact]
    public void A_commentary_message_to_a_function_becomes_a_tool_call()
    {
        foreach (var pieces in new[] { new[] { Call }, Chars(Call).ToArray() })
        {
            var (reasoning, content) = Feed(pieces);
            Assert.Equal("Need weather; call the tool.", reasoning);
            Assert.True(ToolCallParser.TryParse(content, out var calls, out string rest));
            var call = Assert.Single(calls);
            Assert.Equal("get_weather", call.Name);
            Assert.Equal("Paris", JsonNode.Parse(call.ArgumentsJson)!["location"]!.GetValue<string>());
            Assert.Equal("", rest);
        }
    }

    [Fact]
    public void Recipient_after_the_channel_and_a_constraint_token_are_understood()
    {
        const string text = "<|channel|>commentary to=functions.add <|constrain|>json<|message|>{\"a\": 1, \"b\": 2}<|call|>";
        var (reasoning, content) = Feed([text]);
        Assert.Equal("", reasoning);
        Assert.True(ToolCallParser.TryParse(content, out var calls, out _));
        Assert.Equal("add", calls[0].Name);
        Assert.Equal(3, JsonNode.Parse(calls[0].ArgumentsJson)!["a"]!.GetValue<int>() + JsonNode.Parse(calls[0].ArgumentsJson)!["b"]!.GetValue<int>());
    }

    [Fact]
    public void Arguments_that_are_not_json_pass_as_a_string()
    {
        var (_, content) = Feed(["<|start|>assistant to=functions.echo<|channel|>commentary<|message|>not json"]);
        Assert.True(ToolCallParser.TryParse(content, out var calls, out _));
        Assert.Equal("not json", calls[0].ArgumentsJson);
    }

    [Fact]
    public void Commentary_preamble_is_content_and_headers_never_leak()
    {
        const string text = "<|channel|>analysis<|message|>plan<|end|><|start|>assistant<|channel|>commentary<|message|>Checking the weather.<|end|>" +
            "<|start|>assistant<|channel|>final<|message|>Sunny.";
        var (reasoning, content) = Feed(Chars(text));
        Assert.Equal("plan", reasoning);
        Assert.Equal("Checking the weather.Sunny.", content);
        Assert.DoesNotContain("<|", content);
    }

    [Fact]
    public void Cut_off_analysis_stays_reasoning_and_plain_text_is_content()
    {
        Assert.Equal(("still thinking", ""), Feed(["<|channel|>analysis<|message|>still thin", "king"]));
        Assert.Equal(("", "Hello there"), Feed(["Hello", " there"]));
        var (r, c) = ReasoningParser.Split(Answer, tags: ThinkTags.Harmony);
        Assert.Equal(("User asks 2+2. Simple: 4.", "2 + 2 = **4**."), (r, c));
    }

    [Fact]
    public void The_budget_close_text_ends_analysis_and_opens_final()
    {
        var (r, c) = Feed(["<|channel|>analysis<|message|>long thought", ThinkTags.Harmony.CloseText, "Answer."]);
        Assert.Equal("long thought", r);
        Assert.Equal("Answer.", c);
    }

    // ---------------- templates ----------------

    private static readonly DateTime Now = new(2026, 12, 5);

    private static object Msg(string role, string content, object? thinking = null)
    {
        var d = new Dictionary<string, object?> { ["role"] = role, ["content"] = content };
        if (thinking != null) d["thinking"] = thinking;
        return d;
    }

    private static readonly object[] Conversation =
    [
        Msg("system", "Be brief."),
        Msg("user", "2+2?"),
        Msg("assistant", "4", thinking: "SECRET EARLIER ANALYSIS"),
        Msg("user", "And 3+3?"),
    ];

    private static string? OfficialTemplate()
    {
        string cache = Environment.GetEnvironmentVariable("LLAMACPP_CACHE")
            ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "sputnik-bench");
        foreach (string path in new[]
                 {
                     Path.Combine(Fixtures.Root, "templates", "openai-gpt-oss-120b.jinja"),
                     Path.Combine(cache, "llama.cpp-npm", "models", "templates", "openai-gpt-oss-120b.jinja"),
                 })
            if (File.Exists(path)) return File.ReadAllText(path);
        return null;
    }

    [Fact]
    public void Compact_template_renders_harmony_with_the_effort_and_drops_earlier_analysis()
    {
        string text = ChatTemplate.Apply(Harmony.ChatTemplate, Conversation, addGenerationPrompt: true,
            extra: new Dictionary<string, object?> { [Harmony.EffortVariable] = "high" }, now: Now);
        Assert.StartsWith("<|start|>system<|message|>", text);
        Assert.Contains("Reasoning: high\n", text);
        Assert.Contains("<|start|>developer<|message|># Instructions\n\nBe brief.", text);
        Assert.Contains("<|start|>user<|message|>2+2?<|end|><|start|>assistant<|channel|>final<|message|>4<|end|>", text);
        Assert.DoesNotContain("SECRET", text);
        Assert.EndsWith("<|start|>user<|message|>And 3+3?<|end|><|start|>assistant", text);
        Assert.Contains("Reasoning: medium", ChatTemplate.Apply(Harmony.ChatTemplate, Conversation, addGenerationPrompt: true, now: Now));
        Assert.Equal(ThinkTags.Harmony, ThinkTags.Of(Harmony.ChatTemplate));
    }

    [Fact]
    public void Compact_template_renders_tool_calls_and_results()
    {
        var call = new Dictionary<string, object?>
        {
            ["role"] = "assistant", ["content"] = null,
            ["tool_calls"] = new List<object?> { new Dictionary<string, object?> { ["type"] = "function", ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["arguments"] = JsonNode.Parse("{\"location\":\"Paris\"}") } } },
        };
        object[] messages = [Msg("user", "Weather in Paris?"), call, Msg("tool", "{\"sky\":\"clear\"}")];
        var tools = new List<object?> { new Dictionary<string, object?> { ["type"] = "function", ["function"] = new Dictionary<string, object?> { ["name"] = "get_weather", ["description"] = "Weather now" } } };
        string text = ChatTemplate.Apply(Harmony.ChatTemplate, messages, addGenerationPrompt: true, tools: tools, now: Now);
        Assert.Contains("Calls to these tools must go to the commentary channel: 'functions'.", text);
        Assert.Contains("\"name\": \"get_weather\"", text);
        Assert.Contains("<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"location\": \"Paris\"}<|call|>", text);
        Assert.Contains("<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\"{\\\"sky\\\":\\\"clear\\\"}\"<|end|>", text);
    }

    [Fact]
    public void Official_template_renders_the_effort_and_drops_earlier_analysis()
    {
        string template = OfficialTemplate() ?? throw SkipMissing();
        Assert.Equal(ThinkTags.Harmony, ThinkTags.Of(template));
        string text = ChatTemplate.Apply(template, Conversation, addGenerationPrompt: true,
            extra: new Dictionary<string, object?> { [Harmony.EffortVariable] = "low" }, now: Now);
        Assert.StartsWith("<|start|>system<|message|>You are ChatGPT", text);
        Assert.Contains("Current date: 2026-12-05\n\nReasoning: low\n\n", text);
        Assert.Contains("<|start|>developer<|message|># Instructions\n\nBe brief.", text);
        Assert.DoesNotContain("SECRET", text);
        Assert.EndsWith("<|start|>user<|message|>And 3+3?<|end|><|start|>assistant", text);
        // The parser reads what this template's model writes: the generation prompt plus recorded output.
        Assert.Equal(("User asks 2+2. Simple: 4.", "2 + 2 = **4**."), Feed([Answer]));
    }

    private static Exception SkipMissing()
    {
        Assert.Skip("openai-gpt-oss-120b.jinja is not here (llama.cpp's models/templates in ~/.cache/sputnik-bench/llama.cpp-npm or ../shared/fixtures/templates)");
        return new InvalidOperationException("unreachable");
    }
}
