using Sputnik.Inference;
using Xunit;

namespace Sputnik.Tests.Inference;

public class StopMatcherTests
{
    [Fact]
    public void Stop_string_split_across_pushes_is_never_printed()
    {
        var m = new StopMatcher(["</answer>"]);
        string shown = m.Push("The result is 4<") + m.Push("/ans") + m.Push("wer> trailing");
        Assert.Equal("The result is 4", shown);
        Assert.Equal("</answer>", m.Matched);
        Assert.Equal("", m.Flush());
    }

    [Fact]
    public void Partial_match_that_fails_is_released()
    {
        var m = new StopMatcher(["STOP"]);
        Assert.Equal("a", m.Push("aST"));
        Assert.Equal("STx", m.Push("x"));
        Assert.Null(m.Matched);
        Assert.Equal("", m.Push("S"));
        Assert.Equal("S", m.Flush());
    }

    [Fact]
    public void Earliest_of_several_stops_wins()
    {
        var m = new StopMatcher(["bb", "a"]);
        Assert.Equal("x", m.Push("xabb"));
        Assert.Equal("a", m.Matched);
    }

    [Fact]
    public void No_stops_passes_text_through() => Assert.Equal("hello", new StopMatcher([]).Push("hello"));
}
