using Sputnik.Inference;
using Xunit;

namespace Sputnik.Tests.Inference;

public class ReasoningParserTests
{
    private static (string Reasoning, string Content) Feed(ReasoningParser p, IEnumerable<string> pieces)
    {
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
    public void Splits_think_block_from_answer()
    {
        var (r, c) = Feed(new ReasoningParser(), ["<think>\nLet me add.\n</think>\n\nThe answer is 4."]);
        Assert.Equal("Let me add.\n", r);
        Assert.Equal("The answer is 4.", c);
    }

    [Fact]
    public void Tags_split_across_every_character_give_the_same_result()
    {
        const string text = "<think>\n2+2: carry nothing.\n</think>\n\n**4**";
        var whole = Feed(new ReasoningParser(), [text]);
        var split = Feed(new ReasoningParser(), Chars(text));
        Assert.Equal(whole, split);
        Assert.Equal("2+2: carry nothing.\n", split.Reasoning);
        Assert.Equal("**4**", split.Content);
    }

    [Fact]
    public void Partial_close_tag_is_held_back_until_it_resolves()
    {
        var p = new ReasoningParser(startsInThinking: true);
        Assert.Equal(new ReasoningDelta("a ", ""), p.Push("a </thi"));
        Assert.Equal(new ReasoningDelta("</thing> b", ""), p.Push("ng> b"));
        Assert.Equal(ReasoningParser.Phase.Thinking, p.State);
    }

    [Fact]
    public void Missing_close_tag_at_max_tokens_leaves_everything_in_reasoning()
    {
        var (r, c) = Feed(new ReasoningParser(), Chars("<think>\nstill thinking when the budget ran o"));
        Assert.Equal("still thinking when the budget ran o", r);
        Assert.Equal("", c);
    }

    [Fact]
    public void Prompt_that_opened_thinking_starts_inside_it()
    {
        var (r, c) = Feed(new ReasoningParser(startsInThinking: true), Chars("Okay, so 3*3 is 9.\n</think>\n\n9"));
        Assert.Equal("Okay, so 3*3 is 9.\n", r);
        Assert.Equal("9", c);
    }

    [Fact]
    public void Output_without_think_tags_is_all_content()
    {
        var (r, c) = Feed(new ReasoningParser(), Chars("Hello <b>there</b>"));
        Assert.Equal("", r);
        Assert.Equal("Hello <b>there</b>", c);
    }

    [Fact]
    public void Split_of_a_stored_message_keeps_only_the_answer_for_history()
    {
        var (reasoning, content) = ReasoningParser.Split("<think>\nsecret steps\n</think>\n\nFinal.");
        Assert.Equal("secret steps\n", reasoning);
        Assert.Equal("Final.", content);
        Assert.Equal((null, "Plain answer"), ReasoningParser.Split("Plain answer"));
    }
}
