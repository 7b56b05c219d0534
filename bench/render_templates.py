#!/usr/bin/env python3
"""Renders every chat template of a folder with Python jinja2, configured as transformers' apply_chat_template
configures it, and with `sputnik template`, over a fixed set of conversations; prints per template whether the two
agree. A conversation that makes jinja2 raise (a template's raise_exception, an undefined call...) must make
Sputnik fail too: both raising counts as agreement.

    python3 render_templates.py TEMPLATE_DIR SPUTNIK_COMMAND... [--keep DIR] [--only SUBSTRING]

jinja2's environment mirrors transformers.utils.chat_template_utils._compile_jinja_template:
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[{% generation %}, loopcontrols]),
tojson = json.dumps(ensure_ascii=False, indent=..., separators=..., sort_keys=False), raise_exception raising
TemplateError, strftime_now on the local clock (Sputnik reads the same clock). The context is what
apply_chat_template passes: messages, tools (None when absent), documents=None, add_generation_prompt, bos_token,
eos_token.
"""
import concurrent.futures
import datetime
import json
import os
import subprocess
import sys
import tempfile

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a city. Uses <html> & \"quotes\".",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Zürich"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "minimum": 1, "default": 1}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "search",
        "description": "Search the web",
        "parameters": {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}}},
]

SYSTEM = {"role": "system", "content": "You are a helpful assistant. Réponds brièvement."}
HISTORY = [
    {"role": "user", "content": "Hello! How are you?"},
    {"role": "assistant", "content": "I'm fine, thanks. How can I help?"},
    {"role": "user", "content": "Tell me a joke about \"quotes\" & <tags>."},
]
REASONING = [
    {"role": "user", "content": "What is 17 * 3?"},
    {"role": "assistant", "content": "17 * 3 = 51.", "reasoning_content": "17 * 3 = 51, since 17 * 2 = 34 and 34 + 17 = 51."},
    {"role": "user", "content": "And 51 + 9?"},
    {"role": "assistant", "content": "60.", "reasoning_content": "51 + 9 = 60."},
]
TOOL_DICT_ARGS = [
    {"role": "user", "content": "What's the weather in Paris?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call12345", "type": "function",
         "function": {"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}}]},
    {"role": "tool", "tool_call_id": "call12345", "name": "get_weather",
     "content": "{\"temperature\": 21, \"condition\": \"sunny\"}"},
    {"role": "assistant", "content": "It is 21 °C and sunny in Paris."},
    {"role": "user", "content": "And in Rome and Oslo?"},
]
TOOL_STR_ARGS = [
    {"role": "user", "content": "Weather in Rome and Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call67890", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
        {"id": "callabcde", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
    {"role": "tool", "tool_call_id": "call67890", "name": "get_weather", "content": "25 degrees"},
    {"role": "tool", "tool_call_id": "callabcde", "name": "get_weather", "content": "3 degrees"},
]

# name -> (messages, tools); each is rendered with add_generation_prompt False and True.
CONVERSATIONS = {
    "plain": ([{"role": "user", "content": "Hi there"}], None),
    "system_history": ([SYSTEM] + HISTORY, None),
    "reasoning": ([SYSTEM] + REASONING, None),
    "tools": ([SYSTEM] + TOOL_DICT_ARGS, TOOLS),
    "tools_str_args": (TOOL_STR_ARGS, TOOLS),
}
BOS, EOS = "<s>", "</s>"


class GenerationTag(jinja2.ext.Extension):
    """Transparent {% generation %}...{% endgeneration %}, as transformers' AssistantTracker renders text."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def make_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.datetime.now().strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render_jinja2(env, source, messages, tools, gen):
    """('ok', text) or ('error', 'Type: message')."""
    try:
        tpl = env.from_string(source)
        return "ok", tpl.render(messages=messages, tools=tools, documents=None, add_generation_prompt=gen,
                                bos_token=BOS, eos_token=EOS)
    except Exception as e:  # noqa: BLE001 - any failure is an expected outcome to compare
        return "error", f"{type(e).__name__}: {e}"


def render_sputnik(cmd, template_path, messages_path, tools_path, gen):
    args = cmd + ["template", "--file", template_path, "--messages", messages_path, "--bos", BOS, "--eos", EOS]
    if tools_path:
        args += ["--tools", tools_path]
    if gen:
        args.append("--add-generation-prompt")
    p = subprocess.run(args, capture_output=True, timeout=120)
    if p.returncode != 0:
        return "error", p.stderr.decode("utf-8", "replace").strip()
    return "ok", p.stdout.decode("utf-8")


def main():
    argv = sys.argv[1:]
    options = {}
    for flag in ("--keep", "--only"):
        if flag in argv:
            i = argv.index(flag)
            if i + 1 >= len(argv):
                sys.exit(f"{flag} needs a value")
            options[flag] = argv[i + 1]
            del argv[i:i + 2]
    keep, only = options.get("--keep"), options.get("--only", "")
    if len(argv) < 2:
        sys.exit("usage: render_templates.py TEMPLATE_DIR SPUTNIK_COMMAND... [--keep DIR] [--only SUBSTRING]")
    template_dir, sputnik_cmd = argv[0], argv[1:]
    work = keep or tempfile.mkdtemp(prefix="sputnik-templates-")
    os.makedirs(work, exist_ok=True)

    conv_files = {}
    for name, (messages, tools) in CONVERSATIONS.items():
        mpath = os.path.join(work, f"{name}.messages.json")
        with open(mpath, "w", encoding="utf-8") as f:
            json.dump(messages, f, ensure_ascii=False)
        tpath = None
        if tools is not None:
            tpath = os.path.join(work, f"{name}.tools.json")
            with open(tpath, "w", encoding="utf-8") as f:
                json.dump(tools, f, ensure_ascii=False)
        conv_files[name] = (mpath, tpath)

    env = make_env()
    names = sorted(n for n in os.listdir(template_dir) if n.endswith(".jinja") and only in n)
    if not names:
        sys.exit(f"no .jinja templates in {template_dir}" + (f" matching {only!r}" if only else ""))
    jobs = []
    for tname in names:
        path = os.path.join(template_dir, tname)
        with open(path, encoding="utf-8", newline="") as f:
            source = f.read()
        for cname, (messages, tools) in CONVERSATIONS.items():
            for gen in (False, True):
                jobs.append((tname, path, cname, gen, render_jinja2(env, source, messages, tools, gen)))

    def run(job):
        tname, path, cname, gen, _ = job
        mpath, tpath = conv_files[cname]
        return render_sputnik(sputnik_cmd, path, mpath, tpath, gen)

    with concurrent.futures.ThreadPoolExecutor(max_workers=int(os.environ.get("JOBS", "2"))) as pool:
        results = list(pool.map(run, jobs))

    per_template = {}
    raised_both = 0
    for (tname, _, cname, gen, expected), actual in zip(jobs, results):
        case = f"{cname}{'+gen' if gen else ''}"
        agree = expected[0] == actual[0] and (expected[0] == "error" or expected[1] == actual[1])
        if agree and expected[0] == "error":
            raised_both += 1
        entry = per_template.setdefault(tname, {"agree": 0, "differ": [], "raised": {}})
        if agree:
            entry["agree"] += 1
            if expected[0] == "error":
                entry["raised"].setdefault(expected[1].splitlines()[0][:120], []).append(case)
            continue
        entry["differ"].append(case)
        stem = os.path.join(work, f"{tname}.{case}")
        for suffix, (kind, text) in ((".jinja2", expected), (".sputnik", actual)):
            with open(stem + suffix, "w", encoding="utf-8") as f:
                f.write(text if kind == "ok" else f"<<ERROR>> {text}\n")

    total_cases = len(jobs) // max(1, len(names))
    ok_templates = 0
    for tname in names:
        entry = per_template[tname]
        if not entry["differ"]:
            ok_templates += 1
            print(f"identical  {tname}")
            for error, cases in entry["raised"].items():
                print(f"           both raise on {', '.join(cases)}: jinja2 says {error}")
        else:
            print(f"DIFFERENT  {tname}: {', '.join(entry['differ'])}")
    agree_cases = sum(e["agree"] for e in per_template.values())
    print(f"\n{ok_templates}/{len(names)} templates agree on all {total_cases} cases; "
          f"{agree_cases}/{len(jobs)} cases agree ({raised_both} of them raise in both)")
    if ok_templates != len(names):
        print(f"renderings that differ: {work}/<template>.<case>.jinja2 and .sputnik")
    elif not keep:
        for n in os.listdir(work):
            os.remove(os.path.join(work, n))
        os.rmdir(work)
    sys.exit(0 if ok_templates == len(names) else 1)


if __name__ == "__main__":
    main()
