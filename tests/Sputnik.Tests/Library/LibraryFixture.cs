namespace Sputnik.Tests.Library;

/// <summary>The stories260K test model and templates for library tests (it has no template of its own).</summary>
internal static class LibraryFixture
{
    public static string ModelPath => Fixtures.Require(Fixtures.Model("stories260K.gguf"));

    public static SputnikModel Load() => SputnikModel.Load(ModelPath, new ModelOptions { Threads = 1, ContextLength = 512 });

    /// <summary>An R1-style template: the generation prompt opens a &lt;think&gt; block.</summary>
    public const string R1Template =
        "{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\n" +
        "{% elif m['role'] == 'assistant' %}Assistant: {{ m['content'] }}\n{% endif %}{% endfor %}" +
        "{% if add_generation_prompt %}Assistant: <think>\n{% endif %}";

    /// <summary>A template that renders tools, tool calls and tool results (Hermes style).</summary>
    public const string ToolTemplate =
        "{% if tools %}Tools:{% for t in tools %} {{ t['function']['name'] }}({{ t['function']['parameters'] | tojson }}){% endfor %}\n{% endif %}" +
        "{% for m in messages %}{% if m['role'] == 'tool' %}Tool {{ m['tool_call_id'] }}: {{ m['content'] }}\n" +
        "{% elif m['tool_calls'] %}{{ m['role'] }}:{% for c in m['tool_calls'] %} <tool_call>{\"name\": \"{{ c['function']['name'] }}\", \"arguments\": {{ c['function']['arguments'] | tojson }}}</tool_call>{% endfor %}\n" +
        "{% else %}{{ m['role'] }}: {{ m['content'] }}\n{% endif %}{% endfor %}" +
        "{% if add_generation_prompt %}assistant: {% endif %}";
}
