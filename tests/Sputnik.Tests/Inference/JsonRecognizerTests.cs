using System.Text;
using Sputnik.Inference.Json;
using Xunit;

namespace Sputnik.Tests.Inference;

public class JsonRecognizerTests
{
    /// <summary>Feeds text byte by byte; (whether every byte was accepted, whether the value is complete at the end).</summary>
    internal static (bool Prefix, bool Complete) Run(SchemaNode schema, string text)
    {
        var r = new JsonRecognizer(schema);
        foreach (byte b in Encoding.UTF8.GetBytes(text))
            if (!r.Push(b)) return (false, false);
        return (true, r.IsComplete);
    }

    [Theory]
    [InlineData("{}")]
    [InlineData("[]")]
    [InlineData("\"hi\"")]
    [InlineData("0")]
    [InlineData("-12.5e+3")]
    [InlineData("1E9")]
    [InlineData("true")]
    [InlineData("false")]
    [InlineData("null")]
    [InlineData("{\"a\": [1, 2.0, {\"b\": null}], \"c\": \"x\\n\\u00e9\\\"\"}")]
    [InlineData("  {\n  \"a\" : true\n}  ")]
    [InlineData("\"caf\u00e9 \u65e5\u672c \U0001F600\"")]
    [InlineData("\"\\ud83d\\ude00\"")]
    public void Complete_values_are_accepted(string json)
    {
        Assert.Equal((true, true), Run(SchemaNode.AnyValue, json));
        System.Text.Json.JsonDocument.Parse(json).Dispose(); // the recogniser agrees with a real parser
    }

    [Theory]
    [InlineData("{")]
    [InlineData("{\"a\"")]
    [InlineData("{\"a\":")]
    [InlineData("[1,")]
    [InlineData("\"abc")]
    [InlineData("\"\\u00")]
    [InlineData("-")]
    [InlineData("1.")]
    [InlineData("1e")]
    [InlineData("tr")]
    [InlineData("\"\\ud83d")]
    public void Incomplete_prefixes_are_accepted_but_not_complete(string json) =>
        Assert.Equal((true, false), Run(SchemaNode.AnyValue, json));

    [Theory]
    [InlineData("{,")]
    [InlineData("{\"a\" 1")]
    [InlineData("[1,]")]
    [InlineData("{\"a\":1,}")]
    [InlineData("01")]
    [InlineData("-.5")]
    [InlineData("1.e5")]
    [InlineData("+1")]
    [InlineData("tru ")]
    [InlineData("nul1")]
    [InlineData("\"a\nb\"")]
    [InlineData("\"\\x\"")]
    [InlineData("\"\\u12g")]
    [InlineData("\"\\udc00")]
    [InlineData("\"\\ud83d\\u0041")]
    [InlineData("\"\\ud83dx")]
    [InlineData("{} {}")]
    [InlineData("[1] 2")]
    [InlineData("'a'")]
    public void Invalid_text_is_rejected_at_the_first_bad_byte(string json) =>
        Assert.False(Run(SchemaNode.AnyValue, json).Prefix);

    [Fact]
    public void Invalid_utf8_is_rejected()
    {
        var r = new JsonRecognizer(SchemaNode.AnyValue);
        Assert.True(r.Accept("\"a"u8));
        Assert.False(r.CanAccept([0xFF]));
        Assert.False(r.CanAccept([0xC3, 0x41])); // a lead byte without its continuation
        Assert.True(r.CanAccept([0xC3, 0xA9]));
        Assert.False(r.CanAccept([0xED, 0xA0, 0x80])); // a UTF-16 surrogate in UTF-8
        Assert.False(r.CanAccept([0xE0, 0x80, 0x80])); // overlong
        Assert.False(r.CanAccept([0xF4, 0x90, 0x80, 0x80])); // past U+10FFFF
        Assert.True(r.CanAccept([0xF0, 0x9F, 0x98, 0x80]));
    }

    [Theory]
    [InlineData("", 2)] // {}
    [InlineData("{", 1)]
    [InlineData("{\"a", 4)] // ":0}
    [InlineData("{\"a\":[1,", 3)] // 0]}
    [InlineData("{\"a\":\"x\\u00", 4)] // 2 digits, ", }
    [InlineData("{\"a\":1.", 2)]
    [InlineData("{\"a\":tr", 3)]
    [InlineData("{}", 0)]
    public void The_bytes_needed_to_complete_are_counted(string prefix, int expected)
    {
        var r = new JsonRecognizer(SchemaNode.AnyObject);
        Assert.True(r.Accept(Encoding.UTF8.GetBytes(prefix)));
        Assert.Equal(expected, r.MinBytesToComplete());
    }

    [Fact]
    public void Required_members_count_towards_the_bytes_needed()
    {
        using var doc = System.Text.Json.JsonDocument.Parse("""{"type":"object","properties":{"ok":{"type":"boolean"},"n":{"type":"integer"}},"required":["ok","n"]}""");
        var r = new JsonRecognizer(JsonSchemaCompiler.Compile(doc.RootElement));
        Assert.Equal("""{"n":0,"ok":true}""".Length, r.MinBytesToComplete());
        Assert.True(r.Accept("""{"ok":"""u8));
        Assert.Equal("""true,"n":0}""".Length, r.MinBytesToComplete());
        // With only 5 bytes left, nothing that opens more structure fits.
        Assert.False(r.CanAccept("""fal"""u8, 5));
        Assert.True(r.CanAccept("""false,"n":1"""u8, 1));
    }

    [Fact]
    public void Whitespace_runs_are_bounded()
    {
        string ok = "[" + new string(' ', JsonRecognizer.MaxWhitespace) + "1]";
        string tooMuch = "[" + new string(' ', JsonRecognizer.MaxWhitespace + 1) + "1]";
        Assert.True(Run(SchemaNode.AnyValue, ok).Complete);
        Assert.False(Run(SchemaNode.AnyValue, tooMuch).Prefix);
        // Whitespace inside strings is content, not layout.
        Assert.True(Run(SchemaNode.AnyValue, "\"" + new string(' ', 50) + "\"").Complete);
    }

    [Fact]
    public void Numbers_have_bounded_length()
    {
        Assert.True(Run(SchemaNode.AnyValue, new string('9', 20)).Prefix);
        Assert.False(Run(SchemaNode.AnyValue, new string('9', 21)).Prefix);
    }

    [Fact]
    public void A_top_level_number_is_complete_but_not_finished_until_whitespace()
    {
        var r = new JsonRecognizer(SchemaNode.AnyValue);
        Assert.True(r.Accept("12"u8));
        Assert.True(r.IsComplete);
        Assert.False(r.IsFinished);
        Assert.True(r.Accept(" "u8));
        Assert.True(r.IsFinished);
    }

    [Fact]
    public void Closing_the_top_level_object_finishes()
    {
        var r = new JsonRecognizer(SchemaNode.AnyObject);
        Assert.True(r.Accept("{\"a\":[1]"u8));
        Assert.False(r.IsFinished);
        Assert.True(r.Accept("}"u8));
        Assert.True(r.IsFinished);
        Assert.False(r.CanAccept("1"u8));
        Assert.True(r.CanAccept(" "u8));
    }

    [Fact]
    public void Json_object_mode_refuses_other_top_level_values()
    {
        Assert.False(Run(SchemaNode.AnyObject, "[").Prefix);
        Assert.False(Run(SchemaNode.AnyObject, "\"").Prefix);
        Assert.True(Run(SchemaNode.AnyObject, " {").Prefix);
    }

    [Fact]
    public void A_rejected_accept_leaves_the_state_unchanged()
    {
        var r = new JsonRecognizer(SchemaNode.AnyValue);
        Assert.True(r.Accept("[1"u8));
        Assert.False(r.Accept(",]"u8));
        Assert.True(r.Accept("]"u8));
        Assert.True(r.IsFinished);
    }

    [Fact]
    public void Nesting_is_bounded()
    {
        Assert.True(Run(SchemaNode.AnyValue, new string('[', JsonRecognizer.MaxDepth)).Prefix);
        Assert.False(Run(SchemaNode.AnyValue, new string('[', JsonRecognizer.MaxDepth + 1)).Prefix);
    }
}
