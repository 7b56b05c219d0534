#!/usr/bin/env bash
# Renders every chat template of llama.cpp's models/templates collection with Python jinja2 (configured as
# transformers' apply_chat_template) and with `sputnik template`, over conversations with a system prompt, history,
# reasoning_content, tools, tool calls and tool results, each with and without add_generation_prompt; prints per
# template "identical" or the cases that differ (a case where jinja2 raises must make Sputnik fail too).
#
#   bench/check-templates.sh [--keep DIR] [--only NAME-PART]   # needs python3 with jinja2, npm, git; exits 1 if any template differs
#
# llama.cpp's source comes from npm's node-llama-cpp package (its llama/gitRelease.bundle), cloned into a temporary
# folder (or the check-llamacpp.sh cache when that already holds it); nothing is written into the repository except
# the CLI build in out/cli.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python3 -c 'import jinja2' 2>/dev/null || { echo "error: python3 with jinja2 is needed (apt-get install python3-jinja2)" >&2; exit 1; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cached="${SPUTNIK_BENCH_CACHE:-$HOME/.cache/sputnik-bench}/llama.cpp"
if [ -d "$cached/models/templates" ]; then
  src="$cached"
else
  echo "== installing node-llama-cpp (for its llama.cpp source bundle) into $tmp" >&2
  npm install --prefix "$tmp/npm" node-llama-cpp --ignore-scripts --no-audit --no-fund --loglevel=error >&2
  bundle="$tmp/npm/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  [ -f "$bundle" ] || { echo "error: $bundle not found in the node-llama-cpp package" >&2; exit 1; }
  git -c advice.detachedHead=false clone --quiet "$bundle" "$tmp/llama.cpp" >&2
  src="$tmp/llama.cpp"
fi
echo "== $(cd "$src" && git log -1 --format='llama.cpp %h %cs') models/templates: $(ls "$src/models/templates"/*.jinja | wc -l) templates" >&2

echo "== building the CLI (out/cli)" >&2
dotnet build "$root/src/Sputnik.Cli" -c Release -o "$root/out/cli" --nologo -v quiet -clp:ErrorsOnly >&2
python3 "$root/bench/render_templates.py" "$src/models/templates" dotnet "$root/out/cli/Sputnik.Cli.dll" "$@"
