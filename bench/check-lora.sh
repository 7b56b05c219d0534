#!/usr/bin/env bash
# Checks that LoRA adapters apply the same way in Sputnik (`run --lora`) and llama.cpp (llama_adapter_lora_init +
# llama_set_adapters_lora in bench/llamacpp-greedy.cpp, with GREEDY_LORA): greedy tokens of each (model, adapter)
# pair in both engines, plus the base model alone as the reference, both attending in F32 (as check-llamacpp.sh).
#
#   bench/check-lora.sh [N]     (env: CHECK_DIR=/tmp/sputnik-check-lora THREADS=2 LLAMACPP_NPM=DIR SIGMA=0.05
#                                ADAPTERS="model.gguf=adapter.gguf ..." to check given adapters, e.g. trained ones)
#
# Without ADAPTERS it writes its own: a synthetic qwen2 (synth --preset qwen2-tiny, F32 and Q8_0) and the bundled
# deepseek2 model (models/sputnik-r1-tiny.gguf), each with a random adapter from `sputnik synth-lora` (rank 8,
# alpha 16, A and B uniform in ±SIGMA: large enough that greedy output differs from the base model's). On deepseek2
# llama.cpp applies adapters only to attn_output, the FFNs and the experts, which is all synth-lora writes there.
# Exit status 1 when an F32 pair parts on more than a near-tie (top-2 gap ≥ 1e-4 in llama.cpp's logits).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-24}"
THREADS="${THREADS:-2}"
SIGMA="${SIGMA:-0.05}"
work="${CHECK_DIR:-/tmp/sputnik-check-lora}"
mkdir -p "$work"
# shellcheck source=bench/llamacpp.sh
. "$root/bench/llamacpp.sh"
greedy="$work/llamacpp-greedy"
llamacpp_greedy "$root/bench/llamacpp-greedy.cpp" "$greedy"
sputnik="$root/sputnik"

pairs=()
if [ -n "${ADAPTERS:-}" ]; then
  read -ra pairs <<< "$ADAPTERS"
else
  "$sputnik" synth --preset qwen2-tiny --type F32 --sigma 0.1 --seed 1 -o "$work/qwen2-tiny-F32.gguf" >&2
  "$sputnik" quantize "$work/qwen2-tiny-F32.gguf" "$work/qwen2-tiny-Q8_0.gguf" Q8_0 >&2
  cp "$root/models/sputnik-r1-tiny.gguf" "$work/bundled.gguf"
  for m in qwen2-tiny-F32 bundled; do
    "$sputnik" synth-lora -m "$work/$m.gguf" -o "$work/$m.lora.gguf" --rank 8 --alpha 16 --sigma "$SIGMA" --seed 7 >&2
  done
  cp "$work/qwen2-tiny-F32.lora.gguf" "$work/qwen2-tiny-Q8_0.lora.gguf"
  pairs=("$work/qwen2-tiny-F32.gguf=$work/qwen2-tiny-F32.lora.gguf" "$work/qwen2-tiny-Q8_0.gguf=$work/qwen2-tiny-Q8_0.lora.gguf"
    "$work/bundled.gguf=$work/bundled.lora.gguf")
fi

text_prompts=("Once upon a time there was" "The quick brown fox jumps over the lazy dog" "1 + 2 = 3, 4 + 5 =" "Hello")
r1_prompts=($'<｜User｜>What is 347 + 2895?<｜Assistant｜><think>\n' $'<｜User｜>Compute 58 times 7.<｜Assistant｜><think>\n')
results="$work/results.jsonl"
: > "$results"
for pair in "${pairs[@]}"; do
  model="${pair%%=*}"; adapter="${pair#*=}"
  case "$(basename "$model")" in bundled*|*r1*) prompts=("${r1_prompts[@]}") ;; *) prompts=("${text_prompts[@]}") ;; esac
  for i in "${!prompts[@]}"; do
    prompt="${prompts[$i]}"
    echo "-- $(basename "$model") + $(basename "$adapter") prompt $i" >&2
    base="$("$sputnik" run -m "$model" -p "$prompt" -n "$N" --temp 0 -t "$THREADS" -ctk f32 -ctv f32 --json 2>"$work/sputnik.err")" || { cat "$work/sputnik.err" >&2; base='{"error":"sputnik failed"}'; }
    sp="$("$sputnik" run -m "$model" --lora "$adapter" -p "$prompt" -n "$N" --temp 0 -t "$THREADS" -ctk f32 -ctv f32 --json 2>"$work/sputnik.err")" || { cat "$work/sputnik.err" >&2; sp='{"error":"sputnik failed"}'; }
    llama="$(cd "$LLAMACPP_RUN_DIR" && GREEDY_LORA="$adapter" "$greedy" "$model" "$prompt" "$N" "$THREADS" 0 f32 f32 2>"$work/llama.err")" || { cat "$work/llama.err" >&2; llama='{"error":"llama.cpp failed"}'; }
    python3 -c 'import json,sys; print(json.dumps({"model": sys.argv[1], "adapter": sys.argv[2], "prompt": int(sys.argv[3]), "base": json.loads(sys.argv[4]), "sputnik": json.loads(sys.argv[5]), "llama": json.loads(sys.argv[6])}))' \
      "$(basename "$model")" "$(basename "$adapter")" "$i" "$base" "$sp" "$llama" >> "$results"
  done
done

echo "$(llamacpp_version); $N greedy tokens per prompt, $THREADS threads, KV cache f32 in both engines"
python3 - "$results" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault((r["model"], r["adapter"]), []).append(r)
bad = False
TIE = 1e-4
print("| model | adapter | sequences equal | tokens equal (agreeing prefix) | adapter changed Sputnik's output | llama.cpp top-2 gap where they part |")
print("| --- | --- | ---: | ---: | ---: | --- |")
for (m, a), rs in rows.items():
    if any("error" in r["sputnik"] or "error" in r["llama"] for r in rs):
        print(f"| {m} | {a} | failed: {'Sputnik' if any('error' in r['sputnik'] for r in rs) else 'llama.cpp'} | | | |")
        bad = True
        continue
    seq = same = total = changed = 0
    gaps = []
    for r in rs:
        x, y = r["llama"]["tokens"], r["sputnik"]["tokens"]
        seq += x == y
        k = 0
        while k < min(len(x), len(y)) and x[k] == y[k]: k += 1
        same += k; total += max(len(x), len(y))
        if k < max(len(x), len(y)): gaps.append(r["llama"]["gaps"][k] if k < len(x) and k < len(y) else float("inf"))
        changed += r["base"].get("tokens") != y
    gap = ", ".join(f"{g:.3g}" + (" (tie)" if g < TIE else "") for g in gaps) if gaps else "-"
    print(f"| {m} | {a} | {seq}/{len(rs)} | {same}/{total} ({100 * same / max(1, total):.0f} %) | {changed}/{len(rs)} | {gap} |")
    if "Q8_0" not in m and any(g >= TIE for g in gaps): bad = True
sys.exit(1 if bad else 0)
PY
