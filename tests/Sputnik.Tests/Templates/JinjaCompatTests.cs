using Sputnik.Templates;
using Xunit;

namespace Sputnik.Tests.Templates;

/// <summary>
/// The jinja2 behaviours that llama.cpp's template collection needed beyond the common subset, each as the small
/// construct a real template uses (bench/check-templates.sh compares the whole collection against Python jinja2;
/// FeatureTests checks the same snippets byte for byte against jinja2's output).
/// </summary>
public class JinjaCompatTests
{
    private static string R(string source, Dictionary<string, object?>? ctx = null) =>
        ChatTemplate.Parse(source).Render(ctx ?? []);

    [Fact]
    public void Membership_in_an_undefined_value_is_false_as_in_granite_3_3()
    {
        // IBM Granite 3.3: {%- if 'citations' in controls and documents %} with no `controls` passed.
        const string src = "{% if 'citations' in controls and documents %}cite{% else %}plain{% endif %}|{{ 'x' not in controls }}";
        Assert.Equal("plain|True", R(src, new() { ["documents"] = null }));
    }

    [Fact]
    public void Attribute_of_an_undefined_value_still_raises_undefined_error()
    {
        var ex = Assert.Throws<UndefinedValueException>(() => R("{{ controls.citations }}"));
        Assert.Equal("'controls' is undefined", ex.Reason);
        Assert.Equal("", R("{{ {'a': 1}.b }}"));
        Assert.Equal("False", R("{{ {'a': 1}.b is defined }}"));
    }

    [Fact]
    public void Integer_dict_keys_index_sort_and_serialise_as_in_seed_oss()
    {
        // ByteDance Seed-OSS: a thinking-budget table keyed by ints, walked with dictsort and indexed by an int.
        const string src = """
            {%- set table = {0: 0, 512: 128, 1024: 256} -%}
            {%- set ns = namespace(interval=none) -%}
            {%- for k, v in table | dictsort -%}{%- if ns.interval is none and budget <= k -%}{%- set ns.interval = v -%}{%- endif -%}{%- endfor -%}
            {{ ns.interval }} {{ table[1024] }} {{ table }} {{ table | tojson }}
            """;
        Assert.Equal("128 256 {0: 0, 512: 128, 1024: 256} {\"0\": 0, \"512\": 128, \"1024\": 256}", R(src, new() { ["budget"] = 300 }));
    }

    [Fact]
    public void Dict_keys_follow_python_equality_and_refuse_unhashable_values()
    {
        Assert.Equal("{1: 'c'} b", R("{{ {1: 'a', 1.0: 'b', true: 'c'} }} {{ {2: 'b'}[2.0] }}"));
        var ex = Assert.ThrowsAny<TemplateException>(() => R("{{ {[1]: 2} }}"));
        Assert.Equal("unhashable type: 'list'", ex.Reason);
    }

    [Fact]
    public void Safe_strings_escape_what_is_added_to_them_as_in_functionary_v3_1()
    {
        // functionary-medium-v3.1: "Use the function '"|safe + t["function"]["name"] + ... + t["function"] | tojson()
        const string src = """{{ "Use '"|safe + name + "'\n"|safe + spec | tojson }}""";
        var ctx = new Dictionary<string, object?> { ["name"] = "a<b", ["spec"] = new Dictionary<string, object?> { ["d"] = "\"q\" & <x>" } };
        Assert.Equal("Use 'a&lt;b'\n{&#34;d&#34;: &#34;\\&#34;q\\&#34; &amp; &lt;x&gt;&#34;}", R(src, ctx));
        Assert.Equal("a<b", R("{{ 'a' ~ '<'|safe ~ 'b' }}"));
        Assert.Equal("True True", R("{{ ('x'|safe) == 'x' }} {{ 'x'|safe is string }}"));
    }

    [Fact]
    public void Filter_generators_are_one_shot_and_not_json_as_in_python()
    {
        Assert.Equal("[3, 1][]", R("{% set g = [3, 1] | select %}{{ g | list }}{{ g | list }}"));
        Assert.Equal("[]", R("{{ none | selectattr('type', 'equalto', 'code_interpreter') | list }}"));
        // llama.cpp's own deepseek-r1 template: tools | map(attribute='function') | tojson fails in jinja2 too.
        var ex = Assert.ThrowsAny<TemplateException>(() => R("{{ tools | map(attribute='function') | tojson }}",
            new() { ["tools"] = new List<object?> { new Dictionary<string, object?> { ["function"] = "f" } } }));
        Assert.Equal("Object of type generator is not JSON serializable", ex.Reason);
        Assert.Equal("object of type 'generator' has no len()",
            Assert.ThrowsAny<TemplateException>(() => R("{{ [1] | map('string') | length }}")).Reason);
    }

    [Fact]
    public void Methods_that_modify_lists_and_dicts_are_refused_like_the_immutable_sandbox()
    {
        // Kimi K2's tool_response_queue.ids.append(...) fails under transformers' ImmutableSandboxedEnvironment.
        var ex = Assert.ThrowsAny<TemplateException>(() => R("{% set q = namespace(ids=[]) %}{% set _ = q.ids.append(1) %}"));
        Assert.IsNotType<UndefinedValueException>(ex);
        Assert.Equal("access to attribute 'append' of 'list' object is unsafe.", ex.Reason);
        Assert.Equal("access to attribute 'update' of 'dict' object is unsafe.",
            Assert.ThrowsAny<TemplateException>(() => R("{{ {}.update({'a': 1}) }}")).Reason);
        Assert.Equal("[] 0 {'a': 1}", R("{% set l = [] %}[{{ l.append }}] {{ [1].index(1) }} {{ {'a': 1}.copy() }}"));
    }
}
