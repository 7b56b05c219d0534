using System.Diagnostics;
using Sputnik.Templates;
using Xunit;

namespace Sputnik.Tests.Templates;

public class EngineTests
{
    private static string R(string source, Dictionary<string, object?>? ctx = null) =>
        ChatTemplate.Parse(source).Render(ctx ?? []);

    [Fact]
    public void Plain_dotnet_values_print_like_python()
    {
        var ctx = new Dictionary<string, object?>
        {
            ["i"] = 3,
            ["d"] = 1.0,
            ["b"] = true,
            ["n"] = null,
            ["list"] = new List<object?> { "x", 2, null },
            ["map"] = new Dictionary<string, object?> { ["a"] = 1, ["b"] = new[] { "q" } },
        };
        Assert.Equal("3 1.0 True None ['x', 2, None] {'a': 1, 'b': ['q']}", R("{{ i }} {{ d }} {{ b }} {{ n }} {{ list }} {{ map }}", ctx));
    }

    [Fact]
    public void Undefined_prints_empty_is_falsy_and_iterates_empty()
    {
        Assert.Equal("[]", R("[{{ nope }}]"));
        Assert.Equal("no", R("{% if nope %}yes{% else %}no{% endif %}"));
        Assert.Equal("empty", R("{% for x in nope %}{{ x }}{% else %}empty{% endfor %}"));
        Assert.Equal("False True 0", R("{{ nope is defined }} {{ nope is undefined }} {{ nope | length }}"));
        Assert.Equal("", R("{{ {'a': 1}.missing }}"));
    }

    [Fact]
    public void Undefined_attribute_and_arithmetic_raise_with_location()
    {
        var ex = Assert.Throws<UndefinedValueException>(() => R("line one\n\n  {{ nope.attr }}"));
        Assert.Equal("'nope' is undefined", ex.Reason);
        Assert.Equal(3, ex.Line);
        Assert.Equal(10, ex.Column); // the '.' of the failing attribute access
        Assert.Contains("line 3, column 10", ex.Message);

        var add = Assert.Throws<UndefinedValueException>(() => R("{{ nope + 1 }}"));
        Assert.Equal("'nope' is undefined", add.Reason);
    }

    [Fact]
    public void Raise_exception_surfaces_message_and_location()
    {
        var ex = Assert.Throws<TemplateRaisedException>(() => R("ok\n{{ raise_exception('Roles must alternate') }}"));
        Assert.Equal("Roles must alternate", ex.Reason);
        Assert.Equal(2, ex.Line);
    }

    [Fact]
    public void Parse_errors_name_line_and_column()
    {
        var unclosed = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("a\n{% if x %}\nbody"));
        Assert.Contains("'endif'", unclosed.Reason);

        var badExpr = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("x\n  {{ 1 + }}"));
        Assert.Equal(2, badExpr.Line);
        Assert.Equal(10, badExpr.Column);

        var unknownTag = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("\n\n{% frobnicate %}"));
        Assert.Equal("unknown tag 'frobnicate'", unknownTag.Reason);
        Assert.Equal(3, unknownTag.Line);
        Assert.Equal(4, unknownTag.Column);

        var unterminated = Assert.Throws<TemplateException>(() => ChatTemplate.Parse("{{ 'abc }}"));
        Assert.Equal(1, unterminated.Line);
        Assert.Equal(4, unterminated.Column);
    }

    [Fact]
    public void Type_errors_are_template_exceptions_with_python_messages()
    {
        var ex = Assert.Throws<TemplateException>(() => R("{{ 'a' + 1 }}"));
        Assert.Equal("can only concatenate str (not \"int\") to str", ex.Reason);
        Assert.Equal(1, ex.Line);
    }

    [Fact]
    public void Strftime_now_uses_the_given_clock()
    {
        var t = ChatTemplate.Parse("{{ strftime_now('%d %b %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M %A %B') }}");
        Assert.Equal("26 Jul 2024|2024-07-26 10:30 Friday July", t.Render(new Dictionary<string, object?>(), new DateTime(2024, 7, 26, 10, 30, 0)));
    }

    [Fact]
    public void Generation_blocks_are_transparent()
    {
        Assert.Equal("<a>x</a>", R("<a>{% generation %}x{% endgeneration %}</a>"));
    }

    [Fact]
    public void Parsed_templates_are_cached_by_source()
    {
        const string src = "{{ messages | length }} cached";
        Assert.Same(ChatTemplate.Parse(src), ChatTemplate.Parse(src));
    }

    [Fact]
    public void Apply_passes_hf_style_context()
    {
        var messages = new List<object?>
        {
            new Dictionary<string, object?> { ["role"] = "user", ["content"] = "hi" },
        };
        const string src = "{{ bos_token }}{% for m in messages %}{{ m.role }}:{{ m.content }}{% endfor %}{{ tools is none }}{{ add_generation_prompt }}{{ extra_flag }}";
        var result = ChatTemplate.Apply(src, messages, addGenerationPrompt: true, bosToken: "<s>",
            extra: new Dictionary<string, object?> { ["extra_flag"] = 42 });
        Assert.Equal("<s>user:hiTrueTrue42", result);
    }
}
