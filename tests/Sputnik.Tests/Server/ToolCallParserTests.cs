using Xunit;
using Sputnik.Server.Api;

namespace Sputnik.Tests.Server;

public sealed class ToolCallParserTests
{
    [Fact]
    public void ParsesHermesToolCallsAndKeepsTheRest()
    {
        string text = "Let me check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>";
        Assert.True(ToolCallParser.TryParse(text, out var calls, out string rest));
        var call = Assert.Single(calls);
        Assert.Equal("get_weather", call.Function.Name);
        Assert.Equal("{\"city\": \"Paris\"}", call.Function.Arguments);
        Assert.Equal("function", call.Type);
        Assert.StartsWith("call_", call.Id);
        Assert.Equal("Let me check.", rest);
    }

    [Fact]
    public void PlainTextAndBrokenJsonAreNotCalls()
    {
        Assert.False(ToolCallParser.TryParse("no calls here", out _, out string rest));
        Assert.Equal("no calls here", rest);
        Assert.False(ToolCallParser.TryParse("<tool_call>{oops}</tool_call>", out _, out _));
    }
}
