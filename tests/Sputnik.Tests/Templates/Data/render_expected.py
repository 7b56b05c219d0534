#!/usr/bin/env python3
"""Renders every template in cases.json over every conversation with Python jinja2, in an environment that
mirrors transformers' apply_chat_template (transformers.utils.chat_template_utils._compile_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[AssistantTracker-like
{% generation %}, loopcontrols]), tojson = json.dumps(x, ensure_ascii=False, indent, separators, sort_keys=False),
raise_exception -> TemplateError, strftime_now fixed at 2024-07-26 for determinism. Context as transformers
passes it: messages, tools (None when absent), documents=None, add_generation_prompt, bos_token, eos_token.

Writes expected.json: {"<template>|<conversation>|<gen>": {"output": str} or {"error": str}}.
Run: python3 render_expected.py  (Debian python3-jinja2 3.1.x)
"""
import datetime
import json
import os

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment

HERE = os.path.dirname(os.path.abspath(__file__))
FIXED_NOW = datetime.datetime(2024, 7, 26, 10, 30, 0)


class GenerationTag(jinja2.ext.Extension):
    """Transparent {% generation %}...{% endgeneration %}, as transformers' AssistantTracker renders it."""
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
        return FIXED_NOW.strftime(fmt)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def main():
    with open(os.path.join(HERE, "cases.json"), encoding="utf-8") as f:
        cases = json.load(f)
    env = make_env()
    expected = {}
    for t in cases["templates"]:
        with open(os.path.join(HERE, t["file"]), encoding="utf-8", newline="") as f:
            tpl = env.from_string(f.read())
        for conv in cases["conversations"]:
            for gen in (False, True):
                ctx = {
                    "messages": conv["messages"],
                    "tools": cases["tools"] if conv["tools"] else None,
                    "documents": None,
                    "add_generation_prompt": gen,
                }
                if t["bos_token"] is not None:
                    ctx["bos_token"] = t["bos_token"]
                if t["eos_token"] is not None:
                    ctx["eos_token"] = t["eos_token"]
                key = f'{t["name"]}|{conv["name"]}|{"gen" if gen else "nogen"}'
                try:
                    expected[key] = {"output": tpl.render(**ctx)}
                except Exception as e:  # noqa: BLE001 - the error text is part of the expectation
                    expected[key] = {"error": str(e), "type": type(e).__name__}
    with open(os.path.join(HERE, "expected.json"), "w", encoding="utf-8", newline="\n") as f:
        json.dump(expected, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    ok = sum(1 for v in expected.values() if "output" in v)
    print(f"{len(expected)} cases, {ok} rendered, {len(expected) - ok} raised")


if __name__ == "__main__":
    main()
