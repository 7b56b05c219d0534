#!/usr/bin/env bash
# The cost curve of speculative verification on a real 7B shape: the time of one forward over k tokens with logits
# for every row (what checking k proposals costs) ÷ the time of a one-token forward, k = 1…KMAX, at DEPTH tokens of
# context, best of REPS alternating runs (bench/Sputnik.Bench verify). The model is qwen2-7B's shape with random
# weights, Q4_K_M, written once to WORK (about 4.4 GB; `sputnik synth`). This ratio bounds what any draft can gain:
# with acceptance a per proposal and k proposals, tokens per forward are (1 − a^(k+1)) / (1 − a), each forward costing
# the ratio at k+1.
#
#   bench/verify-cost.sh [THREADS]   (env: WORK=/tmp/sputnik-verify-bench PRESET=qwen2-7b TYPE=Q4_K_M DEPTH=256 REPS=3 KMAX=16)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS="${1:-2}"
work="${WORK:-/tmp/sputnik-verify-bench}"
PRESET="${PRESET:-qwen2-7b}"; TYPE="${TYPE:-Q4_K_M}"
DEPTH="${DEPTH:-256}"; REPS="${REPS:-3}"; KMAX="${KMAX:-16}"
mkdir -p "$work"
model="$work/$PRESET-$TYPE.gguf"
if [ ! -f "$model" ]; then
  echo "== writing $model (random weights in $PRESET's shapes)" >&2
  "$root/sputnik" synth --preset "$PRESET" --type "$TYPE" -o "$model.tmp" -t "$THREADS" >&2
  mv "$model.tmp" "$model"
fi
echo "== building the bench helper" >&2
dotnet build "$root/bench/Sputnik.Bench/Sputnik.Bench.csproj" -c Release -o "$work/benchbin" --nologo -v quiet -clp:ErrorsOnly >&2
echo "$(date -u +%F\ %H:%M) UTC, $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs)), commit $(git -C "$root" rev-parse --short HEAD)"
dotnet "$work/benchbin/Sputnik.Bench.dll" verify "$model" "$THREADS" "$DEPTH" "$REPS" "$KMAX"
