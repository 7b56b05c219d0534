#!/usr/bin/env bash
# Embeddings/s of Sputnik and llama.cpp on the same synthetic models and the same token ids: INPUTS inputs of LENGTH
# tokens (default 64 × 128), both engines packing them into 512-token batches (llama.cpp as llama-embedding does:
# one sequence id per input, n_batch = n_ubatch = 512), best of REPS timed passes after one warm-up. It also reports
# the lowest cosine between the two engines' vectors, as a check that both computed the same thing.
#
#   bench/embed-bench.sh [THREADS]   (env: WORK=/tmp/sputnik-embed-bench PRESETS="qwen3-0.6b all-minilm-l6"
#                                     TYPE=Q8_0 INPUTS=64 LENGTH=128 REPS=3 LLAMACPP_NPM=DIR)
#
# Presets: qwen3-0.6b is Qwen3-Embedding-0.6B's shape (last-token pooling, EOS added), all-minilm-l6 and bge-small are
# the bert encoders' (mean and CLS pooling); bert-tiny and qwen3-tiny make a seconds-long smoke run. llama.cpp's side
# is bench/llamacpp-embed.cpp, compiled against the llama.cpp of bench/llamacpp.sh (or node-llama-cpp's prebuilt
# libraries with LLAMACPP_NPM=DIR, as check-llamacpp.sh does).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
THREADS="${1:-2}"
work="${WORK:-/tmp/sputnik-embed-bench}"
PRESETS="${PRESETS:-qwen3-0.6b all-minilm-l6}"
TYPE="${TYPE:-Q8_0}"
INPUTS="${INPUTS:-64}"; LENGTH="${LENGTH:-128}"; REPS="${REPS:-3}"
mkdir -p "$work"

# shellcheck source=bench/llamacpp.sh
. "$root/bench/llamacpp.sh"
embed="$work/llamacpp-embed"
llamacpp_greedy "$root/bench/llamacpp-embed.cpp" "$embed"

echo "== building the bench helper" >&2
dotnet build "$root/bench/Sputnik.Bench/Sputnik.Bench.csproj" -c Release -o "$work/benchbin" --nologo -v quiet -clp:ErrorsOnly >&2
bench() { dotnet "$work/benchbin/Sputnik.Bench.dll" "$@"; }

printf '\n| model | type | inputs × tokens | threads | Sputnik emb/s | llama.cpp emb/s | lowest cosine |\n|---|---|---|---|---|---|---|\n'
for preset in $PRESETS; do
  model="$work/$preset-$TYPE.gguf"; tokens="$work/$preset-$INPUTS-$LENGTH.txt"
  [ -f "$model" ] && [ -f "$tokens" ] || bench embed prepare "$preset" "$TYPE" "$model" "$tokens" "$INPUTS" "$LENGTH" >&2
  ours="$(bench embed run "$model" "$tokens" "$THREADS" "$REPS" "$work/$preset.sputnik.f32")"
  theirs="$(cd "$LLAMACPP_RUN_DIR" && "$embed" "$model" "$tokens" "$THREADS" "$REPS" "$work/$preset.llamacpp.f32")"
  echo "$ours" >&2; echo "$theirs" >&2
  cosine="$(python3 - "$work/$preset.sputnik.f32" "$work/$preset.llamacpp.f32" "$INPUTS" <<'EOF'
import struct, sys
a = open(sys.argv[1], 'rb').read(); b = open(sys.argv[2], 'rb').read(); n = int(sys.argv[3])
fa = struct.unpack(f'{len(a) // 4}f', a); fb = struct.unpack(f'{len(b) // 4}f', b)
d = len(fa) // n
cos = []
for i in range(n):
    x, y = fa[i * d:(i + 1) * d], fb[i * d:(i + 1) * d]
    dot = sum(p * q for p, q in zip(x, y)); nx = sum(p * p for p in x) ** .5; ny = sum(q * q for q in y) ** .5
    cos.append(dot / (nx * ny))
print(f'{min(cos):.6f}')
EOF
)"
  rate() { sed -n 's/.*, \([0-9.]*\) embeddings\/s/\1/p' <<< "$1"; }
  printf '| %s | %s | %s × %s | %s | %s | %s | %s |\n' "$preset" "$TYPE" "$INPUTS" "$LENGTH" "$THREADS" "$(rate "$ours")" "$(rate "$theirs")" "$cosine"
done
