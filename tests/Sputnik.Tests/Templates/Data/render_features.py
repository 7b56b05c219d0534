#!/usr/bin/env python3
"""Renders the engine feature snippets below with Python jinja2 (transformers' ImmutableSandboxedEnvironment settings)
into features.json for FeatureTests."""
import json, datetime, jinja2, jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
ctx = {"s": "  Hello World  ", "n": 7, "f": 2.5, "l": [3, 1, 2], "d": {"b": 1, "a": 2},
       "msgs": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}, {"role": "user", "content": "bye"}],
       "e": [], "t": True, "z": None}
cases = [
 "{{ s }}|{{ n }}|{{ f }}|{{ t }}|{{ z }}|{{ l }}|{{ d }}",
 "{{ 1.0 }} {{ 1e20 }} {{ 0.1 + 0.2 }} {{ 10 / 4 }} {{ 10 // 4 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 8 }} {{ 7 % 2 }}",
 "{{ 'a' ~ 1 ~ none }} {{ 'x' * 3 }} {{ [1] + [2] }} {{ (1, 'a') }} {{ (1,) }}",
 "{{ 1 and 'x' }}|{{ 0 or 'y' }}|{{ '' or [] }}|{{ not none }}|{{ none and 1 }}",
 "{{ 'yes' if t else 'no' }}|{{ 'yes' if z }}|{{ 'a' if z else 'b' if t else 'c' }}",
 "{% if n > 5 %}big{% elif n > 2 %}mid{% else %}small{% endif %}",
 "{% for x in l %}{{ loop.index }}/{{ loop.index0 }}/{{ loop.revindex }}/{{ loop.revindex0 }}/{{ loop.first }}/{{ loop.last }}/{{ loop.length }};{% endfor %}",
 "{% for x in l %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }};{% endfor %}",
 "{% for x in e %}{{ x }}{% else %}empty{% endfor %}",
 "{% for m in msgs if m.role == 'user' %}{{ loop.index }}:{{ m.content }} {% endfor %}",
 "{% for k, v in d.items() %}{{ k }}={{ v }},{% endfor %}",
 "{% for k, v in d | dictsort %}{{ k }}={{ v }},{% endfor %}",
 "{% for x in l %}{% if x == 1 %}{% continue %}{% endif %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}",
 "{% set ns = namespace(count=0, found=false) %}{% for x in l %}{% set ns.count = ns.count + x %}{% endfor %}{{ ns.count }} {{ ns.found }}",
 "{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c = [1, 2] %}{{ c }}",
 "{% set x %}  block {{ n }}  {% endset %}[{{ x }}]",
 "{% for x in l %}{% set y = x %}{% endfor %}{{ y is defined }}",
 "{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cy') }}",
 "{% macro wrap() %}[{{ caller() }}]{% endmacro %}{% call wrap() %}inner{% endcall %}",
 "{% filter upper %}shout {{ n }}{% endfilter %}",
 "{# comment #}a{#- trimmed -#}  b",
 "{% raw %}{{ not parsed }}{% endraw %}",
 "  {%- if t -%}  x  {%- endif -%}  |{{- '  y  ' -}}  |",
 "line1\n    {% if t %}\n    body\n    {% endif %}\nline2\n",
 "{{ s | trim }}|{{ s | upper }}|{{ s | lower }}|{{ 'hello world' | capitalize }}|{{ 'hello wORLD-foo' | title }}",
 "{{ 'aXbXc' | replace('X', '-') }}|{{ l | join(', ') }}|{{ l | first }}|{{ l | last }}|{{ l | length }}|{{ s | count }}",
 "{{ undefined_var | default('dflt') }}|{{ '' | default('empty', true) }}|{{ '' | d('x') }}",
 "{{ n | string }}{{ '42' | int + 1 }}|{{ '3.5' | float }}|{{ 'abc' | list }}|{{ d | items | list }}",
 "{{ msgs | selectattr('role', 'equalto', 'user') | map(attribute='content') | join(',') }}|{{ msgs | rejectattr('role', 'eq', 'user') | list | length }}",
 "{{ l | map('string') | join('') }}|{{ [1, 2, 1, 'A', 'a'] | unique | list }}|{{ -3 | abs }}|{{ 2.567 | round(2) }}|{{ 2.5 | round }}",
 "{{ l | reverse | list }}|{{ l | sort }}|{{ l | sort(reverse=true) }}|{{ l | min }}|{{ l | max }}|{{ l | sum }}|{{ 'abc' | reverse }}",
 "{{ d | tojson }}|{{ {'x': [1, {'y': none}], 'u': 'é<>&\\''} | tojson }}|{{ l | tojson(indent=2) }}",
 "{{ '<a href=\"x\">' | e }}|{{ 'one two  three' | wordcount }}|{{ 'a\nb\n\nc' | indent(2) }}|{{ l | batch(2) | list }}",
 "{{ n is defined }} {{ q is undefined }} {{ z is none }} {{ s is string }} {{ d is mapping }} {{ l is iterable }} {{ l is sequence }} {{ n is number }} {{ n is integer }} {{ f is float }} {{ t is boolean }} {{ t is true }} {{ z is false }}",
 "{{ n is odd }} {{ n is even }} {{ 9 is divisibleby 3 }} {{ 'a' is in 'cat' }} {{ 'x' is eq 'x' }} {{ 1 is ne 2 }} {{ range is callable }} {{ 'abc' is lower }} {{ 'ABC' is upper }} {{ n is not none }}",
 "{{ s.strip() }}|{{ s.lstrip() }}|{{ s.rstrip() }}|{{ 'xxhixx'.strip('x') }}|{{ 'a,b,,c'.split(',') }}|{{ 'a b  c'.split() }}|{{ 'a,b,c'.split(',', 1) }}",
 "{{ 'hello'.startswith('he') }} {{ 'hello'.endswith(('x', 'lo')) }} {{ 'hello'.replace('l', 'L') }} {{ 'hello'.upper() }} {{ 'HeLLo'.lower() }} {{ 'hello world'.title() }} {{ 'hello'.capitalize() }} {{ 'hello'.find('l') }} {{ 'hello'.count('l') }} {{ '-'.join(['a', 'b']) }} {{ '{} and {}'.format(1, 'x') }}",
 "{{ d.get('a') }} {{ d.get('zz', 'none!') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d['b'] }} {{ d.b }}",
 "{{ 'abcdef'[1:3] }} {{ 'abcdef'[::-1] }} {{ 'abcdef'[-2:] }} {{ l[-1] }} {{ l[:2] }} {{ l[::2] }} {{ 'abc'[0] }} {{ msgs[1:] | length }}",
 "{{ 'b' in 'abc' }} {{ 2 in l }} {{ 'a' in d }} {{ 5 not in l }} {{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ [1, 2] == [1, 2] }} {{ n >= 7 }}",
 "{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ dict(a=1, b='x') }} {{ 'a\\tb\\n' }}|{{ \"it's\" }}|{{ '\\u00e9' }}",
 "{% set j = joiner('|') %}{% for x in l %}{{ j() }}{{ x }}{% endfor %}",
 "{{ ['it\\'s', \"q\\\"\", 'a\\nb'] }} {{ {'k': none, 'f': 1.5, 't': true} }}",
 "{{ x.y is defined }} {{ d.zz is defined }} {{ d.zz }}|{{ e | first is defined }}",
 "{% raw %}\n  {{ x }}\n{% endraw %}\nq",
 "a\r\nb\r\n{% if true %}\r\nc\r\n{% endif %}\r\n",
 "  {%- if true %} a {% endif -%}  \n  b|{% if true -%}\n\n  a\n{%- endif %}",
 "{{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ 'x' ~ 1 + 2 if false else 'z' }} {{ {'a': {'b': 1}} }}",
 "{% macro m(a, b=2) %}{{ a }}-{{ b }}{% endmacro %}{% for x in [1, 2] %}{{ m(x) }}{{ loop.cycle('o', 'e') }} {% endfor %}",
 # membership in an undefined value is false (Undefined iterates as empty): IBM Granite 3.3's `'citations' in controls`
 "{{ 'a' in nope }}|{{ 'a' not in nope }}|{{ 'citations' in controls and documents }}|{{ nope is defined and nope.x }}",
 "{{ nope.x }}",
 "{{ nope.x.y }}",
 # dicts keyed by numbers and tuples: ByteDance Seed-OSS's {0: 0, 512: 128, ...} thinking-budget table
 "{% set m = {0: 0, 512: 128, 1024: 256} %}{{ m[512] }} {{ m.get(1024) }} {{ 0 in m }} {{ '0' in m }} {{ m }} {{ m | tojson }}{% for k, v in m | dictsort %} {{ k }}>{{ v }}{% endfor %}",
 "{{ {1: 'a', 1.0: 'b', true: 'c', 'x': 2} }} {{ {(1, 'b'): 3}[(1, 'b')] }} {{ {2.5: 1, false: 2} | tojson }} {{ {1: 2}[1.0] }} {{ {'a': 1, 2: 'b'}.items() | list }}",
 "{{ {3: 'c', 1: 'a'} | tojson(sort_keys=true) }} {{ {1: 2} == {1.0: 2} }} {{ {1: 1}[2] is defined }} {{ {1: 1} | length }}",
 "{{ {[1]: 2} }}",
 # Markup: what `safe`/`escape` return; adding a plain str to it escapes the str (functionary v3.1's tool list)
 "{{ 'a'|safe + '<' }}|{{ '<' + 'a'|safe }}|{{ ('a'|safe + '<') ~ '>' }}|{{ '%s&'|safe % '<' }}|{{ ('x'|safe) == 'x' }}|{{ 'x'|safe is string }}|{{ '<b>'|safe|length }}|{{ '<'|e + '<' }}|{{ '<'|e|e }}|{{ ('A<'|safe).lower() }}|{{ '\"'|safe|tojson }}|{{ ('<'|safe) in '<a' }}",
 "{{ 'f'|safe + {'a': '<'} | tojson }}|{{ ('ab'|safe)[1] }}|{{ ['<', 'a'|safe] | join }}|{{ 'x'|safe is escaped }}|{{ 'x' is escaped }}|{{ ('k'|safe) | upper }}|{{ {'k'|safe: 1}['k'] }}",
 "{{ 'a'|safe + 1 }}",
 # generators: map/select/reject/selectattr/rejectattr are lazy one-shot iterators; reverse gives an iterator
 "{% set g = l | select %}{{ g | list }}{{ g | list }}|{% if e | select %}truthy{% endif %}|{{ l | select | first }}|{{ l | map('string') | join('-') }}|{{ (l | select)[0] is defined }}|{{ l | reverse | first }}|{{ l | reverse | list }}",
 "{{ none | selectattr('a') | list }}|{{ none | map(attribute='a') | list }}|{{ none | reject | list }}|{{ 0 | select | list }}|{{ 2 in (l | select) }}|{{ l | select is iterable }}|{{ l | select is sequence }}",
 "{% for x in l | select %}{{ loop.index }}/{{ loop.length }}:{{ x }} {% endfor %}|{{ msgs | map(attribute='role') | unique | list }}|{{ l | map('string') | sort | list }}",
 "{{ l | map('string') | length }}",
 "{{ l | select | tojson }}",
 "{{ l | reverse | tojson }}",
 "{{ l | select | last }}",
 "{{ msgs | map(attribute='content') | count }}",
 # transformers' ImmutableSandboxedEnvironment refuses methods that modify lists and dicts
 "{% set x = [1] %}[{{ x.append }}]{{ x.index(1) }} {{ x.count(1) }} {{ x.copy() }} {{ d.copy() }} {{ d.get('a') }}",
 "{% set x = [1] %}{{ x.append(2) }}",
 "{{ d.update({'c': 3}) }}",
 "{{ d.pop('a') }}",
 "{{ l.sort() }}",
 "{{ d.setdefault('q', 1) }}",
]
out = []
for c in cases:
    try:
        r = {"template": c, "output": env.from_string(c).render(**ctx)}
    except Exception as ex:
        r = {"template": c, "error": f"{type(ex).__name__}: {ex}"}
    out.append(r)
json.dump({"context": ctx, "cases": out}, open(__import__("os").path.join(__import__("os").path.dirname(__import__("os").path.abspath(__file__)), "features.json"), "w", encoding="utf-8"), ensure_ascii=False, indent=1)
for r in out:
    if "error" in r: print("ERR", r)
print(len(out))
