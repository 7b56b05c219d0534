#!/usr/bin/env bash
# llama.cpp's own fine-tuning, for scale next to Sputnik's LoRA SFT: builds `llama-finetune` (examples/training in the
# llama.cpp bundle of node-llama-cpp) against the package's prebuilt libraries — they export ggml-opt and
# llama_opt_*, so no cmake build is needed — and runs a full F32 fine-tune (AdamW, every weight trained; the only
# kind llama-finetune does) of synthetic models in real shapes, a few optimizer steps each. Prints training tokens/s
# (steps after the first, which allocates the graphs, over their wall time) and peak RSS (/usr/bin/time -v).
#
#   LLAMACPP_NPM=/tmp/nlc bench/finetune-llamacpp.sh [preset ...]     (default: qwen2-0.5b qwen3-1.7b)
#
# Settings: THREADS (2), CTX (tokens per sequence, 256), STEPS (optimizer steps, 4; one sequence each), and
# MEM_FACTOR: bytes of memory per parameter assumed for the run (weights, gradients and two AdamW moments in F32 =
# 16) — a model whose estimate exceeds MemAvailable is skipped with a line saying so rather than run into the OOM
# killer on a shared machine.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
# shellcheck source=llamacpp.sh
source "$here/llamacpp.sh"

THREADS="${THREADS:-2}"
CTX="${CTX:-256}"
STEPS="${STEPS:-4}"
MEM_FACTOR="${MEM_FACTOR:-16}"
LLAMACPP_NPM="${LLAMACPP_NPM:-/tmp/nlc}"
presets=("$@")
[ ${#presets[@]} -gt 0 ] || presets=(qwen2-0.5b qwen3-1.7b)
work="$LLAMACPP_CACHE/finetune"
mkdir -p "$work"

llamacpp_npm
finetune="$LLAMACPP_CACHE/llama-finetune-npm"
if [ ! -x "$finetune" ]; then
  echo "== compiling llama-finetune against node-llama-cpp's prebuilt libraries" >&2
  g++ -O2 -DNDEBUG -std=c++17 -I"$NPM_HEADERS/include" -I"$NPM_HEADERS/ggml/include" -I"$NPM_HEADERS/common" -I"$NPM_HEADERS/vendor" \
    "$NPM_HEADERS/examples/training/finetune.cpp" -o "$finetune" \
    "$NPM_BINS/libllama-common.so" "$(ls "$NPM_BINS"/libllama.v*.so | head -1)" "$(ls "$NPM_BINS"/libggml.v*.so | head -1)" \
    "$NPM_BINS/libggml-base.so" -Wl,-rpath,"$NPM_BINS" -lpthread -ldl
fi

# Training text: the repository's docs, cut to the tokens that make STEPS + 2 windows (llama-finetune's dataset is
# windows of CTX tokens at a stride of CTX/2; it keeps 5 % for validation, so STEPS + 1 train, the first of them the
# warm-up step that allocates the graphs).
docs="$work/docs.txt"
cat "$root/README.md" "$root/docs/training.md" "$root/docs/architecture.md" > "$docs"
need_tokens=$(( CTX + (STEPS + 2) * CTX / 2 + 2 ))

echo "# $(llamacpp_version); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(nproc) cores; $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "# llama-finetune, full fine-tune F32 (AdamW), -t $THREADS, -c $CTX, batch = ubatch = $CTX"
for preset in "${presets[@]}"; do
  model="$work/$preset-f32.gguf"
  if [ ! -f "$model" ]; then
    echo "== synthesizing $preset (F32)" >&2
    "$root/sputnik" synth --preset "$preset" --type F32 -o "$model" >&2
  fi
  params=$(( $(stat -c %s "$model") / 4 ))
  need=$(( params * MEM_FACTOR / 1024 / 1024 ))
  avail=$(( $(grep MemAvailable /proc/meminfo | awk '{print $2}') / 1024 ))
  if [ "$need" -gt "$avail" ]; then
    echo "$preset: skipped: about $(( params / 1000000 ))M parameters need about $(( need / 1024 )) GiB for a full F32 AdamW fine-tune, $(( avail / 1024 )) GiB available"
    continue
  fi
  text="$work/$preset-train.txt"
  doc_tokens=$("$root/sputnik" tokenize -m "$model" -f "$docs" | wc -w)
  [ "$doc_tokens" -gt "$need_tokens" ] || { echo "error: the docs make only $doc_tokens tokens, $need_tokens needed" >&2; exit 1; }
  head -c $(( $(stat -c %s "$docs") * need_tokens / doc_tokens + 64 )) "$docs" > "$text"
  log="$work/$preset.log"
  # Every progress update of the train bar ends in \r; stamp each with the time it arrived.
  # run from the prebuilt libraries' folder, where ggml finds the CPU backend built for this machine
  (cd "$LLAMACPP_RUN_DIR" && /usr/bin/time -v -o "$work/$preset.time" "$finetune" -m "$model" -f "$text" -t "$THREADS" -c "$CTX" -b "$CTX" -ub "$CTX" \
    --epochs 1 -ngl 0 ${FINETUNE_ARGS:-} -o "$work/$preset-out.gguf" 2>&1 >/dev/null) \
    | python3 -u -c '
import sys, time
buf = b""
while True:
    ch = sys.stdin.buffer.read(1)
    if not ch: break
    if ch in (b"\r", b"\n"):
        line = buf.decode("utf-8", "replace"); buf = b""
        if line.strip(): print(f"{time.monotonic():.3f} {line}", flush=True)
    else: buf += ch
' > "$log" || { echo "$preset: llama-finetune failed (log: $log)"; tail -5 "$log" >&2; continue; }
  rm -f "$work/$preset-out.gguf"
  python3 - "$log" "$work/$preset.time" "$preset" "$CTX" "$params" <<'EOF'
import re, sys
log, timef, preset, ctx, params = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
steps = [(float(l.split()[0]), int(m.group(1))) for l in open(log, encoding="utf-8")
         if "train:" in l and (m := re.search(r"data=0*(\d+)/", l))]
rss = next(int(l.split()[-1]) for l in open(timef) if "Maximum resident set size" in l)
wall = next(l.split()[-1] for l in open(timef) if "Elapsed (wall clock)" in l)
if len(steps) < 2:
    sys.exit(f"{preset}: fewer than two training steps in {log}")
(t0, d0), (t1, d1) = steps[0], steps[-1]
tps = (d1 - d0) * ctx / (t1 - t0)
print(f"{preset}: {params/1e6:.0f}M parameters, {d1} steps of {ctx} tokens; {tps:.1f} training tokens/s "
      f"(steps {d0 + 1}-{d1}: {t1 - t0:.1f} s), peak RSS {rss/1024/1024:.2f} GiB, wall {wall}")
EOF
done
