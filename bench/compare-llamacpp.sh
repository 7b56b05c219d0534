#!/usr/bin/env bash
# Benchmarks one GGUF file with llama.cpp's llama-bench and with `sputnik bench`, same threads, alternating,
# and prints both plus the Sputnik/llama.cpp ratios.
#
#   bench/compare-llamacpp.sh MODEL.gguf [THREADS]      (env: PP=128 TG=64 REPS=3 ROUNDS=2 DEPTH=0 CTK=f16 CTV=f16 FA=auto WARMUP=1)
#
# DEPTH is llama-bench's -d (a comma list: each test runs after that many tokens are in the context); CTK/CTV its
# -ctk/-ctv; FA its -fa (on, off or auto; a quantized V cache needs on); WARMUP=0 passes --no-warmup to both (each
# engine then skips the untimed run before each test, which at a large DEPTH repeats the whole prefill). Both engines
# get the same values.
#   bench/compare-llamacpp.sh --build-only              (just fetch + build llama-bench)
#
# llama-bench is fetched and built by bench/llamacpp.sh (llama.cpp's source from npm's node-llama-cpp package; a
# CPU-only Release build cached under ${SPUTNIK_BENCH_CACHE:-~/.cache/sputnik-bench}), or with LLAMACPP_NPM=DIR (an
# npm prefix where `npm install node-llama-cpp --ignore-scripts` ran) compiled in seconds against the prebuilt
# libraries that package ships. With LLAMACPP_NPM, LLAMACPP_CPU_SKIP="sapphirerapids" keeps ggml from loading that CPU
# backend variant (it aborts on DeepSeek-V2-Lite on a Xeon with AMX; see bench/llamacpp.sh).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PP="${PP:-128}"; TG="${TG:-64}"; REPS="${REPS:-3}"; ROUNDS="${ROUNDS:-2}"
DEPTH="${DEPTH:-0}"; CTK="${CTK:-f16}"; CTV="${CTV:-f16}"; FA="${FA:-auto}"; WARMUP="${WARMUP:-1}"
warmup_flag=(); [ "$WARMUP" = 0 ] && warmup_flag=(--no-warmup)

build_only=0
if [ "${1:-}" = "--build-only" ]; then build_only=1; shift; fi
if [ $build_only = 0 ] && [ $# -lt 1 ]; then
  echo "usage: $0 MODEL.gguf [THREADS]  |  $0 --build-only" >&2
  exit 1
fi
model="${1:-}"
threads="${2:-$(nproc)}"
if [ $build_only = 0 ] && [ ! -f "$model" ]; then echo "error: model file not found: $model" >&2; exit 1; fi
[ $build_only = 1 ] || model="$(realpath "$model")"   # llama-bench runs from its libraries' folder

# shellcheck source=bench/llamacpp.sh
. "$root/bench/llamacpp.sh"
llamacpp_bench > /dev/null   # once in this shell, so LLAMACPP_RUN_DIR is set here
bench_bin="$(llamacpp_bench)"
llamacpp_version >&2
[ $build_only = 1 ] && { echo "$bench_bin"; exit 0; }

# Build the Sputnik CLI once before timing anything.
"$root/sputnik" --help > /dev/null

out="$(mktemp -d)"
echo "== model $model, threads $threads, pp$PP, tg$TG, depth $DEPTH, cache $CTK/$CTV, $REPS reps, warm-up $WARMUP, $ROUNDS alternating rounds" >&2
for round in $(seq 1 "$ROUNDS"); do
  echo "-- round $round: llama-bench" >&2
  (cd "$LLAMACPP_RUN_DIR" && "$bench_bin" -m "$model" -p "$PP" -n "$TG" -d "$DEPTH" -ctk "$CTK" -ctv "$CTV" -fa "$FA" -t "$threads" -r "$REPS" "${warmup_flag[@]}" -o json) > "$out/llama.$round.json"
  echo "-- round $round: sputnik bench" >&2
  "$root/sputnik" bench -m "$model" -p "$PP" -n "$TG" -d "$DEPTH" -ctk "$CTK" -ctv "$CTV" -t "$threads" -r "$REPS" "${warmup_flag[@]}" --json > "$out/sputnik.$round.json"
done

python3 - "$out" "$ROUNDS" "$model" "$threads" "$PP" "$TG" <<'PY'
import json, sys, os
out, rounds, model, threads, pp, tg = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6]
runs = {}  # (engine, kind, depth) -> [(mean, std)] over rounds
for r in range(1, rounds + 1):
    for e in json.load(open(f"{out}/llama.{r}.json")):
        kind = "pp" if e["n_gen"] == 0 else "tg"
        runs.setdefault(("llama.cpp", kind, e.get("n_depth", 0)), []).append((e["avg_ts"], e["stddev_ts"]))
    s = json.load(open(f"{out}/sputnik.{r}.json"))
    for res in s["results"]:
        for kind in ("pp", "tg"):
            if res.get(kind):
                runs.setdefault(("sputnik", kind, res["depth"]), []).append((res[kind]["tok_s"], res[kind]["std"]))
def best(key):
    v = runs.get(key, [])
    return max(v) if v else (float("nan"), float("nan"))
print(f"model: {os.path.basename(model)} ({os.path.getsize(model) / 2**20:.1f} MiB), threads: {threads}; "
      f"best of {rounds} alternating rounds, each the mean ± stddev of its reps")
print(f"| test | llama.cpp t/s | sputnik t/s | sputnik / llama.cpp |")
print(f"| ---- | ------------: | ----------: | ------------------: |")
for depth in sorted({k[2] for k in runs}):
    for kind, n in (("pp", pp), ("tg", tg)):
        if int(n) == 0: continue  # PP=0 or TG=0: that test was not run
        a, sa = best(("llama.cpp", kind, depth)); b, sb = best(("sputnik", kind, depth))
        at = f" @ d{depth}" if depth else ""
        print(f"| {kind}{n}{at} | {a:.2f} ± {sa:.2f} | {b:.2f} ± {sb:.2f} | {b / a if a else float('nan'):.3f} |")
PY
rm -rf "$out"
