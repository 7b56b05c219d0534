using System.Text;
using System.Text.Json;

namespace Sputnik.Inference;

/// <summary>
/// OpenAI's harmony chat format (gpt-oss). Every message is <c>&lt;|start|&gt;ROLE[ to=RECIPIENT]&lt;|channel|&gt;CHANNEL[
/// &lt;|constrain|&gt;TYPE]&lt;|message|&gt;BODY&lt;|end|&gt;</c>; the assistant reasons in the <c>analysis</c> channel,
/// answers in <c>final</c> (ended by &lt;|return|&gt;) and calls tools in <c>commentary</c> with a recipient
/// <c>functions.NAME</c> (ended by &lt;|call|&gt;). How hard it reasons is the system message's "Reasoning: low|medium|high"
/// line, which templates fill from the <c>reasoning_effort</c> variable.
/// </summary>
internal static class Harmony
{
    /// <summary>The variable harmony templates read the reasoning effort from (default "medium").</summary>
    public const string EffortVariable = "reasoning_effort";

    /// <summary>True for a harmony template (it writes the analysis channel header).</summary>
    public static bool IsTemplate(string template) => template.Contains(ThinkTags.Harmony.Open, StringComparison.Ordinal);

    /// <summary>
    /// A compact harmony template for synthetic gpt-oss files, written for Sputnik (the official one, which real files
    /// carry, renders tools as TypeScript and knows built-in tools): the system message with the reasoning line, the
    /// first system/developer message and the tools (as JSON) in the developer message, earlier turns' analysis dropped,
    /// tool calls as commentary messages to functions.NAME and tool results from them.
    /// </summary>
    public const string ChatTemplate =
        "{%- set effort = reasoning_effort if reasoning_effort is defined else 'medium' -%}" +
        "<|start|>system<|message|>You are ChatGPT, a large language model trained by OpenAI.\nReasoning: {{ effort }}\n\n" +
        "# Valid channels: analysis, commentary, final. Channel must be included for every message." +
        "{%- if tools %}\nCalls to these tools must go to the commentary channel: 'functions'.{%- endif %}<|end|>" +
        "{%- if messages and messages[0].role in ['system', 'developer'] -%}{%- set instructions = messages[0].content -%}{%- set rest = messages[1:] -%}" +
        "{%- else -%}{%- set instructions = '' -%}{%- set rest = messages -%}{%- endif -%}" +
        "{%- if instructions or tools -%}<|start|>developer<|message|>" +
        "{%- if instructions %}# Instructions\n\n{{ instructions }}\n\n{% endif -%}" +
        "{%- if tools %}# Tools\n\n{%- for tool in tools %}\n{{ (tool.function if tool.function is defined else tool) | tojson }}{%- endfor %}{%- endif -%}<|end|>" +
        "{%- endif -%}" +
        "{%- set last = namespace(tool=none) -%}" +
        "{%- for m in rest -%}" +
        "{%- if m.role == 'assistant' and m.tool_calls -%}" +
        "{%- set call = m.tool_calls[0].function if m.tool_calls[0].function is defined else m.tool_calls[0] -%}" +
        "<|start|>assistant to=functions.{{ call.name }}<|channel|>commentary json<|message|>" +
        "{{ call.arguments if call.arguments is string else call.arguments | tojson }}<|call|>" +
        "{%- set last.tool = call.name -%}" +
        "{%- elif m.role == 'assistant' and loop.last and not add_generation_prompt -%}" +
        "{%- if m.thinking %}<|start|>assistant<|channel|>analysis<|message|>{{ m.thinking }}<|end|>{% endif -%}" +
        "<|start|>assistant<|channel|>final<|message|>{{ m.content }}<|return|>" +
        "{%- elif m.role == 'assistant' -%}<|start|>assistant<|channel|>final<|message|>{{ m.content }}<|end|>" +
        "{%- elif m.role == 'tool' -%}" +
        "{%- if last.tool is none %}{{ raise_exception('a tool message must follow an assistant tool call') }}{% endif -%}" +
        "<|start|>functions.{{ last.tool }} to=assistant<|channel|>commentary<|message|>{{ m.content | tojson }}<|end|>" +
        "{%- else -%}<|start|>{{ m.role }}<|message|>{{ m.content }}<|end|>" +
        "{%- endif -%}" +
        "{%- endfor -%}" +
        "{%- if add_generation_prompt -%}<|start|>assistant{%- endif -%}";
}

/// <summary>
/// Splits streamed harmony output (rendered with its special tokens) into reasoning and answer, incrementally:
/// <c>analysis</c> bodies are reasoning, <c>final</c> bodies and <c>commentary</c> preambles are content, and a message
/// to <c>functions.NAME</c> (in the role header or after the channel, in commentary or analysis) becomes a tool call
/// written into the content as <c>&lt;tool_call&gt;{"name": …, "arguments": …}&lt;/tool_call&gt;</c>, the form
/// <see cref="ToolCallParser"/> and everything after it reads. Headers and terminators are never text. A marker split
/// across tokens is held back until it is complete.
/// </summary>
internal sealed class HarmonyParser
{
    private const string Message = "<|message|>", Channel = "<|channel|>", Start = "<|start|>";
    private static readonly string[] Terminators = ["<|end|>", "<|return|>", "<|call|>"];

    private enum Body { None, Reasoning, Content, ToolCall }

    private readonly StringBuilder _pending = new();
    private readonly StringBuilder _arguments = new();
    private Body _body;
    private string _tool = "";

    /// <summary>Inside an analysis body.</summary>
    public bool InReasoning => _body == Body.Reasoning;

    /// <summary>Inside a final or commentary body (the answer has begun).</summary>
    public bool InAnswer => _body is Body.Content or Body.ToolCall;

    /// <summary>True once an analysis message ended.</summary>
    public bool ReasoningClosed { get; private set; }

    /// <summary>True once any answer text or tool call was released.</summary>
    public bool Answered { get; private set; }

    /// <summary>An independent copy (to preview what a token would release).</summary>
    public HarmonyParser Clone()
    {
        var c = new HarmonyParser { _body = _body, _tool = _tool, ReasoningClosed = ReasoningClosed, Answered = Answered };
        c._pending.Append(_pending);
        c._arguments.Append(_arguments);
        return c;
    }

    public ReasoningDelta Push(string text)
    {
        _pending.Append(text);
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        while (_pending.Length > 0)
        {
            string p = _pending.ToString();
            if (_body == Body.None)
            {
                int m = p.IndexOf(Message, StringComparison.Ordinal);
                if (m < 0)
                {
                    // No header yet. Text that cannot be one (a model answering without harmony framing) is content.
                    if (CouldBeHeader(p)) break;
                    Emit(content, p);
                    _pending.Clear();
                    break;
                }
                OpenBody(p[..m]);
                _pending.Remove(0, m + Message.Length);
                continue;
            }
            int end = -1, endLength = 0;
            foreach (string t in Terminators)
            {
                int i = p.IndexOf(t, StringComparison.Ordinal);
                if (i >= 0 && (end < 0 || i < end)) (end, endLength) = (i, t.Length);
            }
            if (end >= 0)
            {
                Release(p[..end], reasoning, content);
                _pending.Remove(0, end + endLength);
                CloseBody(content);
                continue;
            }
            int hold = Terminators.Max(t => PartialSuffix(p, t));
            Release(p[..^hold], reasoning, content);
            _pending.Remove(0, p.Length - hold);
            break;
        }
        return new(reasoning.ToString(), content.ToString());
    }

    /// <summary>Releases what is held at the end of generation: an unterminated body is released as what it was.</summary>
    public ReasoningDelta Flush()
    {
        var reasoning = new StringBuilder();
        var content = new StringBuilder();
        string rest = _pending.ToString();
        _pending.Clear();
        if (_body == Body.None)
        {
            if (rest.Trim().Length > 0 && !rest.Contains(Channel, StringComparison.Ordinal) && !rest.Contains(Start, StringComparison.Ordinal)) Emit(content, rest);
        }
        else
        {
            Release(rest, reasoning, content);
            CloseBody(content);
        }
        return new(reasoning.ToString(), content.ToString());
    }

    /// <summary>Whether <paramref name="p"/> may still grow into a message header (role, recipient, channel, constraint).</summary>
    private static bool CouldBeHeader(string p)
    {
        string t = p.TrimStart();
        if (t.Length == 0) return true;
        foreach (string start in new[] { Start, Channel, "<|constrain|>", "assistant", " to=", "to=" })
            if (t.StartsWith(start, StringComparison.Ordinal) || start.StartsWith(t, StringComparison.Ordinal)) return true;
        return false;
    }

    private void OpenBody(string header)
    {
        string channel = "";
        int c = header.IndexOf(Channel, StringComparison.Ordinal);
        if (c >= 0)
        {
            int s = c + Channel.Length, e = s;
            while (e < header.Length && (char.IsLetterOrDigit(header[e]) || header[e] == '_')) e++;
            channel = header[s..e];
        }
        string recipient = "";
        int to = header.IndexOf("to=", StringComparison.Ordinal);
        if (to >= 0)
        {
            int s = to + 3, e = s;
            while (e < header.Length && !char.IsWhiteSpace(header[e]) && header[e] != '<') e++;
            recipient = header[s..e];
        }
        if (recipient.StartsWith("functions.", StringComparison.Ordinal))
        {
            _body = Body.ToolCall;
            _tool = recipient["functions.".Length..];
            _arguments.Clear();
        }
        else _body = channel == "analysis" ? Body.Reasoning : Body.Content;
    }

    private void Release(string text, StringBuilder reasoning, StringBuilder content)
    {
        if (text.Length == 0) return;
        switch (_body)
        {
            case Body.Reasoning: reasoning.Append(text); break;
            case Body.Content: Emit(content, text); break;
            case Body.ToolCall: _arguments.Append(text); break;
        }
    }

    private void CloseBody(StringBuilder content)
    {
        if (_body == Body.Reasoning) ReasoningClosed = true;
        if (_body == Body.ToolCall)
        {
            content.Append(ToolCallText(_tool, _arguments.ToString()));
            Answered = true;
        }
        _body = Body.None;
    }

    private void Emit(StringBuilder content, string text)
    {
        content.Append(text);
        if (text.Length > 0) Answered = true;
    }

    /// <summary>A call in the canonical &lt;tool_call&gt; form; arguments that are not a JSON value pass as a JSON string.</summary>
    internal static string ToolCallText(string name, string arguments)
    {
        string args = arguments.Trim();
        try
        {
            using var doc = JsonDocument.Parse(args.Length == 0 ? "{}" : args);
            args = doc.RootElement.GetRawText();
        }
        catch (JsonException)
        {
            args = JsonSerializer.Serialize(arguments);
        }
        return $"{ToolCallParser.OpenTag}{{\"name\": {JsonSerializer.Serialize(name)}, \"arguments\": {args}}}</tool_call>";
    }

    private static int PartialSuffix(string text, string tag)
    {
        for (int len = Math.Min(tag.Length - 1, text.Length); len > 0; len--)
            if (text.AsSpan(text.Length - len).SequenceEqual(tag.AsSpan(0, len))) return len;
        return 0;
    }
}
