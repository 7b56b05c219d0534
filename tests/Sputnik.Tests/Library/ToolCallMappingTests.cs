using Microsoft.Extensions.AI;
using Xunit;

namespace Sputnik.Tests.Library;

/// <summary>How generated &lt;tool_call&gt; text becomes FunctionCallContent (the tiny test model never writes one).</summary>
public sealed class ToolCallMappingTests
{
    [Fact]
    public void FilterHoldsBackCallMarkupSplitAcrossChunks()
    {
        var filter = new ToolCallFilter();
        string shown = "";
        foreach (var piece in new[] { "Let me ", "check.<tool", "_call>{\"name\": \"get_weather\", ", "\"arguments\": {\"city\": \"Paris\"}}</tool_call>" })
            shown += filter.Push(piece);
        Assert.Equal("Let me check.", shown);
        var (text, calls) = filter.Finish();
        Assert.Equal("", text);
        var call = ChatClientConversions.ToFunctionCall(Assert.Single(calls));
        Assert.Equal("get_weather", call.Name);
        Assert.StartsWith("call_", call.CallId);
        Assert.Equal("Paris", call.Arguments!["city"]!.ToString());
    }

    [Fact]
    public void FilterReleasesALessThanThatIsNotACall()
    {
        var filter = new ToolCallFilter();
        Assert.Equal("a ", filter.Push("a <to"));
        Assert.Equal("<tooth> b", filter.Push("oth> b"));
        Assert.Equal(("", 0), (filter.Finish().Text, filter.Finish().Calls.Count));
    }

    [Fact]
    public void MessagesMapToTemplateMessages()
    {
        List<ChatMessage> messages =
        [
            new(ChatRole.System, "Be brief."),
            new(ChatRole.User, "Weather?"),
            new(ChatRole.Assistant, [new TextReasoningContent("think"), new FunctionCallContent("c1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
            new(ChatRole.Tool, [new FunctionResultContent("c1", "Sunny"), new FunctionResultContent("c2", 21)]),
        ];
        var mapped = ChatClientConversions.ToMessages(messages, ["Answer in JSON."]);
        Assert.Equal(["system", "user", "assistant", "tool", "tool"], mapped.Select(m => m.Role));
        Assert.Equal("Be brief.\n\nAnswer in JSON.", mapped[0].Content);
        var call = Assert.Single(mapped[2].ToolCalls!);
        Assert.Equal(("c1", "get_weather", "{\"city\":\"Paris\"}"), (call.Id, call.Name, call.ArgumentsJson));
        Assert.Equal("think", mapped[2].ReasoningContent);
        Assert.Equal(("c1", "Sunny"), (mapped[3].ToolCallId, mapped[3].Content));
        Assert.Equal(("c2", "21"), (mapped[4].ToolCallId, mapped[4].Content));
    }

    [Fact]
    public void ChatMLFallbackRendersToolsCallsAndResults()
    {
        using var model = LibraryFixture.Load();
        var builder = new Sputnik.Inference.ChatPromptBuilder(model.Tokenizer, null);
        var tools = ChatClientConversions.ToTools(new ChatOptions { Tools = [AIFunctionFactory.Create((string city) => city, "get_weather")] });
        var messages = ChatClientConversions.ToMessages(
        [
            new(ChatRole.User, "Weather?"),
            new(ChatRole.Assistant, [new FunctionCallContent("c1", "get_weather", new Dictionary<string, object?> { ["city"] = "Paris" })]),
            new(ChatRole.Tool, [new FunctionResultContent("c1", "Sunny")]),
        ], []);
        string text = builder.Build(messages, tools: tools).Text;
        Assert.Contains("<tools>\n{\"type\": \"function\"", text);
        Assert.Contains("<|im_start|>assistant\n\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call><|im_end|>", text);
        Assert.Contains("<|im_start|>tool\nSunny<|im_end|>", text);
        Assert.EndsWith("<|im_start|>assistant\n", text);
        // Without tools the fallback is plain ChatML.
        Assert.Equal("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n", builder.Build([Sputnik.Inference.ChatMessage.User("Hi")]).Text);
    }
}
