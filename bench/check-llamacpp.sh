#!/usr/bin/env bash
# Checks that GGUF files written by `sputnik synth`, `sputnik quantize` and `sputnik convert` load in llama.cpp and
# decode to the same greedy tokens there and in Sputnik, then prints a table.
#
# By default both engines attend in F32 (KV cache f32: Sputnik's -ctk/-ctv f32; llama.cpp's --cache-type-k/-v f32
# with flash attention off, because llama.cpp's flash attention casts an F32 cache to F16 and accumulates
# softmax·V in F16). F32 files must then match token for token (exit status 1 otherwise) unless they part on a
# near-tie: llama.cpp's best and second-best logits closer than TIE (1e-4), where the engines' summation orders
# decide. CACHE_K=f16 CACHE_V=f16 runs both with their default F16 cache instead (llama.cpp's flash attention on):
# F32 partings are then reported, not failed, since llama.cpp's F16 attention arithmetic (Q and V rounded to F16,
# an F16 running sum of softmax·V) moves logits by up to ~0.05 on these random models.
# Quantized files are reported with the share of greedy tokens that agree (the agreeing prefix of each sequence
# over all tokens; the issue asks ≥ 95 %): both engines convert activations byte for byte alike (Q8_0, Q8_1, Q8_K,
# F16, BF16 by weight type; bench/check-quant-kernels.sh), but a float summation-order difference of 1e-7 that lands
# on a rounding boundary flips one 8-bit activation, which moves random-weight logits by ~0.05 (llama.cpp's own
# AVX2 and AVX-512 builds part from each other the same way: see VARIANT below).
# Columns: "tokens equal" / "agree" count each sequence's agreeing prefix (everything after a parting counts as
# disagreement); "same pick on llama.cpp's path" feeds Sputnik llama.cpp's own tokens (the bench helper's `logits`
# mode, teacher forcing) and counts the steps where both engines' argmax is the same, with the largest logit
# difference seen on that path.
#
#   bench/check-llamacpp.sh [N]      (env: CHECK_DIR=/tmp/sputnik-check THREADS=2 ONLY="base|trained|mtp|qwen3|qwen35|smollm3|mistral3|phi3|gemma3|gptoss ..." LLAMACPP_NPM=DIR
#                                     CACHE_K=f32 CACHE_V=f32 SIGMA=0.1; N tokens per prompt, default 24)
#
# CACHE_K / CACHE_V (f32, f16, q8_0, q4_0) run both engines with that KV cache type (llama.cpp's --cache-type-k/-v,
# with flash attention on except for f32, as llama.cpp needs for a quantized V cache; Sputnik's -ctk/-ctv; f16/f16
# passes neither, so both run their defaults). Files whose head size the type cannot take are reported as failing
# to load on both sides. SIGMA is synth's weight spread for the synthetic models.
#
# Besides synth/quantize/convert outputs it checks what `sputnik train` exports: a short SFT run of the dense preset
# (tiny-r1, architecture llama) and of the DeepSeek preset (tiny-r1-ds, architecture deepseek2: MLA + MoE), prompted
# in R1's chat format, and the bundled trained model with its Q8_0 and Q4_K_M files. ONLY=trained checks just those; ONLY=qwen3 just the qwen3 / qwen3moe synth and converted models;
# ONLY=smollm3 / ONLY=mistral3 those architectures' synth (F32, Q8_0, Q4_K_M) and converted models; ONLY takes a list.
# ONLY=phi3 the phi3 ones (LongRoPE: short factors at the default context, long ones where an entry sets a context
# past the original one; both engines then run at that context).
# ONLY=qwen35 the qwen35 and qwen35moe synth models (F32, Q8_0, Q4_K_M) on the text and long prompts.
# ONLY=gemma3 gemma3's (synth: 16-token window on alternate layers; convert: 8-token window), on the text prompts
# plus two longer than any window, so local layers attend to a window that has slid; Sputnik runs them with -ub 8, so
# the local layers' ring caches (window + 7 rows) wrap around many times within each prompt. ONLY=base the llama,
# qwen2 and deepseek2 synth/quantize/convert files. ONLY=gptoss gpt-oss's synth file (MXFP4 experts, sinks, 16-token
# window), the same with its routing pinned, with its experts dequantized to F32, and both, and its MXFP4_MOE / Q8_0
# quantizations, on the same prompts (the variants separate routing flips from Q8_0 activation rounding).
#
# llama.cpp's side is bench/llamacpp-greedy.cpp compiled against the static libraries of the llama.cpp build in
# bench/llamacpp.sh's cache, or with LLAMACPP_NPM=DIR against the shared libraries node-llama-cpp ships (no build;
# see llamacpp_greedy in bench/llamacpp.sh). The synthetic and converted models use larger-than-trained random weights
# (synth --sigma 0.1, the bench's `hf` checkpoints) so greedy output varies instead of repeating one token.
# VARIANT=haswell (the default with LLAMACPP_NPM; VARIANT= turns it off) runs llama.cpp a second time with another
# of node-llama-cpp's CPU builds (libggml-cpu-haswell.so: AVX2 without AVX-512, so its float sums run in another
# order, its integer arithmetic is the same; bench/check-quant-kernels.sh shows both) and reports how much llama.cpp
# agrees with itself ("llama.cpp VARIANT vs llama.cpp"): partings there are the summation-order floor any second
# engine meets on these files.
# To see where two engines' logits differ step by step, bench/compare-logits.py compares llama.cpp's logits
# (GREEDY_LOGITS=FILE) with Sputnik's along llama.cpp's tokens (the bench helper's `logits` mode).
set -euo pipefail
# True when ONLY is unset or names $1.
only() { [ -z "${ONLY:-}" ] || [[ " $ONLY " == *" $1 "* ]]; }

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-24}"
THREADS="${THREADS:-2}"
CACHE_K="${CACHE_K:-f32}"; CACHE_V="${CACHE_V:-f32}"
SIGMA="${SIGMA:-0.1}"
cache_args=()
[ "$CACHE_K/$CACHE_V" = f16/f16 ] || cache_args=(-ctk "$CACHE_K" -ctv "$CACHE_V")
work="${CHECK_DIR:-/tmp/sputnik-check}"
mkdir -p "$work"

# shellcheck source=bench/llamacpp.sh
. "$root/bench/llamacpp.sh"
greedy="$work/llamacpp-greedy"
llamacpp_greedy "$root/bench/llamacpp-greedy.cpp" "$greedy"
# The second llama.cpp: the same binary run from a folder holding only the other CPU variant, which
# ggml_backend_load_all then picks (it searches the working directory; the variants are not on the library path).
VARIANT="${VARIANT-haswell}"
variant_dir=""
if [ -n "$VARIANT" ] && [ -n "${LLAMACPP_NPM:-}" ] && [ -f "$NPM_BINS/libggml-cpu-$VARIANT.so" ]; then
  variant_dir="$work/variant-$VARIANT"
  rm -rf "$variant_dir"; mkdir -p "$variant_dir"
  ln -s "$NPM_BINS/libggml-cpu-$VARIANT.so" "$variant_dir/"
elif [ -n "$VARIANT" ]; then
  echo "note: no second llama.cpp run (VARIANT=$VARIANT needs LLAMACPP_NPM and its libggml-cpu-$VARIANT.so)" >&2
  VARIANT=""
fi

sputnik="$root/sputnik"
"$sputnik" --help > /dev/null
echo "== building the bench helper (tiny Hugging Face checkpoints, Sputnik's logits along llama.cpp's tokens)" >&2
dotnet build "$root/bench/Sputnik.Bench/Sputnik.Bench.csproj" -c Release -o "$work/benchbin" --nologo -v quiet -clp:ErrorsOnly >&2

# ---- the files: "path|made by|type|prompt set|context (empty: each engine's default)|Sputnik's extra flags" ----
files=()
echo "== writing models into $work" >&2
# Models the training pipeline exports (brief SFT: enough for varied greedy output, not a competent model).
only trained && for preset in tiny-r1 tiny-r1-ds; do
  rm -rf "$work/train-$preset"
  "$sputnik" train sft --task arithmetic --preset $preset --out "$work/train-$preset" --steps 60 --batch 8 --eval-n 4 --threads "$THREADS" >&2
  cp "$work/train-$preset/sft.gguf" "$work/trained-$preset.gguf"
  files+=("$work/trained-$preset.gguf|train sft --preset $preset (60 steps)|F32|r1")
done
# A deepseek2 export with a Multi-Token Prediction block (nextn_predict_layers = 1): llama.cpp must load it and
# skip the block in its main forward, as Sputnik does.
only mtp && {
  rm -rf "$work/train-mtp"
  "$sputnik" train sft --task arithmetic --preset tiny-r1-ds --mtp --out "$work/train-mtp" --steps 60 --batch 8 --eval-n 4 --threads "$THREADS" >&2
  cp "$work/train-mtp/sft.gguf" "$work/trained-tiny-r1-ds-mtp.gguf"
  files+=("$work/trained-tiny-r1-ds-mtp.gguf|train sft --preset tiny-r1-ds --mtp (60 steps)|F32|r1")
  # The shipped model carries a trained MTP block too (its trunk is ONLY=trained's bundled file).
  cp "$root/models/sputnik-r1-tiny.gguf" "$work/bundled-mtp-F32.gguf"
  files+=("$work/bundled-mtp-F32.gguf|models/sputnik-r1-tiny.gguf (with its MTP head)|F32|r1")
}
# The bundled model (fully trained: SFT + GRPO, deepseek2) and its quantized files: trained logits are decisive,
# unlike the random models', so quantized agreement there says what a user of a real model would see.
if only trained; then
  cp "$root/models/sputnik-r1-tiny.gguf" "$work/bundled-F32.gguf"
  files+=("$work/bundled-F32.gguf|models/sputnik-r1-tiny.gguf (trained)|F32|r1")
  for t in Q8_0 Q4_K_M; do
    "$sputnik" quantize "$work/bundled-F32.gguf" "$work/bundled-$t.gguf" $t >&2
    files+=("$work/bundled-$t.gguf|quantize models/sputnik-r1-tiny.gguf|$t|r1")
  done
fi
# gemma3: sliding-window local layers, GeGLU, post-norms, linear RoPE scaling on the global layers.
if only gemma3; then
  "$sputnik" synth --preset gemma3-tiny --type F32 --sigma "$SIGMA" --seed 1 -o "$work/synth-gemma3-tiny-F32.gguf" >&2
  files+=("$work/synth-gemma3-tiny-F32.gguf|synth --preset gemma3-tiny --sigma $SIGMA|F32|long||-ub 8")
  for t in Q8_0 Q4_K_M; do
    "$sputnik" quantize "$work/synth-gemma3-tiny-F32.gguf" "$work/quant-gemma3-tiny-$t.gguf" $t >&2
    files+=("$work/quant-gemma3-tiny-$t.gguf|quantize synth gemma3-tiny|$t|long||-ub 8")
  done
  rm -rf "$work/hf-gemma3"
  dotnet "$work/benchbin/Sputnik.Bench.dll" hf gemma3 "$work/hf-gemma3" 1 >&2
  "$sputnik" convert "$work/hf-gemma3" "$work/conv-gemma3-F32.gguf" --type F32 >&2 2>/dev/null
  files+=("$work/conv-gemma3-F32.gguf|convert (hf gemma3)|F32|long||-ub 8")
fi
# gpt-oss: MXFP4 experts in every file (F32 here means F32 elsewhere, the experts stay MXFP4 and must match
# exactly), attention sinks, a 16-token window on the even layers (the long prompts slide it), YaRN ×32, biases,
# clamped SwiGLU, softmax over the top 4 of 8 experts. MXFP4 is llama.cpp's MXFP4_MOE mix (Q8_0 elsewhere).
if only gptoss; then
  "$sputnik" synth --preset gpt-oss-tiny --type F32 --sigma 0.1 --seed 1 -o "$work/synth-gpt-oss-tiny-F32.gguf" >&2
  files+=("$work/synth-gpt-oss-tiny-F32.gguf|synth --preset gpt-oss-tiny --sigma 0.1 (MXFP4 experts)|F32|long")
  # The same weights with the routing pinned (router bias +20 on experts 0-3, so they are every token's top 4): no
  # expert choice can flip on a rounding difference, the softmax weights still follow the router. If the F32 file
  # parts and this one does not, the partings are routing flips (random weights put near-ties at the top-4 boundary).
  python3 "$root/bench/edit-tensors.py" "$work/synth-gpt-oss-tiny-F32.gguf" "$work/synth-gpt-oss-tiny-F32-pinned.gguf" ffn_gate_inp.bias 4 20
  files+=("$work/synth-gpt-oss-tiny-F32-pinned.gguf|synth gpt-oss-tiny, routing pinned (bench/edit-tensors.py)|F32|long")
  # The experts dequantized to F32 (MXFP4 values are exact in F32): both engines then multiply them with F32
  # activations instead of Q8_0-quantized ones (ggml's vec_dot_type for MXFP4 is Q8_0, and Sputnik follows it).
  "$sputnik" quantize "$work/synth-gpt-oss-tiny-F32.gguf" "$work/synth-gpt-oss-tiny-F32-experts.gguf" F32 >&2
  files+=("$work/synth-gpt-oss-tiny-F32-experts.gguf|synth gpt-oss-tiny, experts dequantized to F32|F32|long")
  python3 "$root/bench/edit-tensors.py" "$work/synth-gpt-oss-tiny-F32-experts.gguf" "$work/synth-gpt-oss-tiny-F32-experts-pinned.gguf" ffn_gate_inp.bias 4 20
  files+=("$work/synth-gpt-oss-tiny-F32-experts-pinned.gguf|the same, routing pinned|F32|long")
  for t in MXFP4 Q8_0; do
    "$sputnik" quantize "$work/synth-gpt-oss-tiny-F32.gguf" "$work/quant-gpt-oss-tiny-$t.gguf" $t >&2
    files+=("$work/quant-gpt-oss-tiny-$t.gguf|quantize synth gpt-oss-tiny|$t|long")
  done
fi
# qwen3 (per-head Q/K norms, head size 128 over a width of 256) and qwen3moe (16 experts, top 4).
if only qwen3; then
for p in qwen3-tiny qwen3moe-tiny; do
  "$sputnik" synth --preset $p --type F32 --sigma "$SIGMA" --seed 1 -o "$work/synth-$p-F32.gguf" >&2
  files+=("$work/synth-$p-F32.gguf|synth --preset $p --sigma $SIGMA|F32")
  for t in Q8_0 Q4_K_M; do
    "$sputnik" quantize "$work/synth-$p-F32.gguf" "$work/quant-$p-$t.gguf" $t >&2
    files+=("$work/quant-$p-$t.gguf|quantize synth $p|$t")
  done
done
for k in qwen3 qwen3moe; do
  rm -rf "$work/hf-$k"
  dotnet "$work/benchbin/Sputnik.Bench.dll" hf $k "$work/hf-$k" 1 >&2
  "$sputnik" convert "$work/hf-$k" "$work/conv-$k-F32.gguf" --type F32 >&2 2>/dev/null
  files+=("$work/conv-$k-F32.gguf|convert (hf $k)|F32")
done
fi
# qwen35 / qwen35moe (Gated DeltaNet layers with a recurrent state, gated full attention with partial M-RoPE; the MoE
# one with a sigmoid-gated shared expert), on prompts longer than one 64-token chunk of llama.cpp's delta rule.
if only qwen35; then
for p in qwen35-tiny qwen35moe-tiny; do
  "$sputnik" synth --preset $p --type F32 --sigma 0.1 --seed 1 -o "$work/synth-$p-F32.gguf" >&2
  files+=("$work/synth-$p-F32.gguf|synth --preset $p --sigma 0.1|F32|long")
  for t in Q8_0 Q4_K_M; do
    "$sputnik" quantize "$work/synth-$p-F32.gguf" "$work/quant-$p-$t.gguf" $t >&2
    files+=("$work/quant-$p-$t.gguf|quantize synth $p|$t|long")
  done
done
fi
# smollm3 (every 4th layer without RoPE) and mistral3 (YaRN ×16 and the query temperature from 16 tokens on).
for arch in smollm3 mistral3; do
  only $arch || continue
  p=$([ $arch = smollm3 ] && echo smollm3-tiny || echo ministral3-tiny)
  "$sputnik" synth --preset $p --type F32 --sigma "$SIGMA" --seed 1 -o "$work/synth-$p-F32.gguf" >&2
  files+=("$work/synth-$p-F32.gguf|synth --preset $p --sigma $SIGMA|F32")
  for t in Q8_0 Q4_K_M; do
    "$sputnik" quantize "$work/synth-$p-F32.gguf" "$work/quant-$p-$t.gguf" $t >&2
    files+=("$work/quant-$p-$t.gguf|quantize synth $p|$t")
  done
  k=$([ $arch = smollm3 ] && echo smollm3 || echo ministral3)
  rm -rf "$work/hf-$k"
  dotnet "$work/benchbin/Sputnik.Bench.dll" hf $k "$work/hf-$k" 1 >&2
  "$sputnik" convert "$work/hf-$k" "$work/conv-$k-F32.gguf" --type F32 >&2 2>/dev/null
  files+=("$work/conv-$k-F32.gguf|convert (hf $k)|F32")
done
# phi3 (fused QKV and gate/up, 48 of 64 dims rotated, LongRoPE over 4,096 tokens): short factors by default, long
# ones at a context of 8,192; the converted checkpoint's original context is 128, so at 512 it runs long.
if only phi3; then
  "$sputnik" synth --preset phi3-tiny --type F32 --sigma "$SIGMA" --seed 1 -o "$work/synth-phi3-tiny-F32.gguf" >&2
  files+=("$work/synth-phi3-tiny-F32.gguf|synth --preset phi3-tiny --sigma $SIGMA|F32")
  files+=("$work/synth-phi3-tiny-F32.gguf|synth --preset phi3-tiny --sigma $SIGMA, context 8192 (long factors)|F32||8192")
  for t in Q8_0 Q4_K_M; do
    "$sputnik" quantize "$work/synth-phi3-tiny-F32.gguf" "$work/quant-phi3-tiny-$t.gguf" $t >&2
    files+=("$work/quant-phi3-tiny-$t.gguf|quantize synth phi3-tiny|$t")
  done
  rm -rf "$work/hf-phi3"
  dotnet "$work/benchbin/Sputnik.Bench.dll" hf phi3 "$work/hf-phi3" 1 >&2
  "$sputnik" convert "$work/hf-phi3" "$work/conv-phi3-F32.gguf" --type F32 >&2 2>/dev/null
  files+=("$work/conv-phi3-F32.gguf|convert (hf phi3), context 512 (long factors)|F32||512")
fi
if only base; then
for p in qwen2-tiny llama-tiny; do
  "$sputnik" synth --preset $p --type F32 --sigma "$SIGMA" --seed 1 -o "$work/synth-$p-F32.gguf" >&2
  files+=("$work/synth-$p-F32.gguf|synth --preset $p --sigma $SIGMA|F32")
done
"$sputnik" synth --preset deepseek2-tiny --type F32 --seed 1 -o "$work/synth-deepseek2-tiny-F32.gguf" >&2
files+=("$work/synth-deepseek2-tiny-F32.gguf|synth --preset deepseek2-tiny|F32")
for p in qwen2-tiny deepseek2-tiny; do
  for t in Q8_0 Q4_K_M; do
    "$sputnik" quantize "$work/synth-$p-F32.gguf" "$work/quant-$p-$t.gguf" $t >&2
    files+=("$work/quant-$p-$t.gguf|quantize synth $p|$t")
  done
done
for k in llama qwen2 deepseek-v2 deepseek-v3; do
  rm -rf "$work/hf-$k"
  dotnet "$work/benchbin/Sputnik.Bench.dll" hf $k "$work/hf-$k" 1 >&2
  "$sputnik" convert "$work/hf-$k" "$work/conv-$k-F32.gguf" --type F32 >&2 2>/dev/null
  files+=("$work/conv-$k-F32.gguf|convert (hf $k)|F32")
done
"$sputnik" convert "$work/hf-deepseek-v3" "$work/conv-deepseek-v3-Q8_0.gguf" --type Q8_0 >&2 2>/dev/null
files+=("$work/conv-deepseek-v3-Q8_0.gguf|convert (hf deepseek-v3)|Q8_0")
fi

text_prompts=("Once upon a time there was" "The quick brown fox jumps over the lazy dog" "1 + 2 = 3, 4 + 5 =" "Hello")
# Prompts longer than the sliding windows of the gemma3 models (about 60 and 110 tokens).
long_prompts=("The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat and the bird sings a song about the river"
  "In the beginning there was only the sea, and the sea was wide and deep and dark, and over it the wind moved from the east to the west, carrying salt and rain and the voices of birds that had never seen land, until one morning an island rose")
# R1's generation prompt as the trained models see it (BOS is added by both engines; specials are parsed).
r1_prompts=($'<｜User｜>What is 347 + 2895?<｜Assistant｜><think>\n' $'<｜User｜>Compute 58 times 7.<｜Assistant｜><think>\n'
  $'<｜User｜>What is 905 - 47?<｜Assistant｜><think>\n' $'<｜User｜>Hello<｜Assistant｜><think>\n')

# ---- run both engines ----
results="$work/results.jsonl"
: > "$results"
for entry in "${files[@]}"; do
  IFS='|' read -r path made type pset ctx extra <<< "$entry"
  read -ra sp_extra <<< "$extra"
  case "$pset" in
    r1) prompts=("${r1_prompts[@]}") ;;
    long) prompts=("${text_prompts[@]}" "${long_prompts[@]}") ;;
    *) prompts=("${text_prompts[@]}") ;;
  esac
  for i in "${!prompts[@]}"; do
    prompt="${prompts[$i]}"
    echo "-- $(basename "$path") prompt $i" >&2
    if [ ${#cache_args[@]} -gt 0 ]; then llama_extra=("${ctx:-0}" "$CACHE_K" "$CACHE_V"); else llama_extra=(${ctx:+"$ctx"}); fi
    llama="$(cd "$LLAMACPP_RUN_DIR" && GREEDY_LOGITS="$work/llama.logits" "$greedy" "$path" "$prompt" "$N" "$THREADS" "${llama_extra[@]}" 2>"$work/llama.err")" || { cat "$work/llama.err" >&2; llama='{"error":"llama.cpp failed to load or run"}'; }
    sp="$("$sputnik" run -m "$path" -p "$prompt" -n "$N" --temp 0 -t "$THREADS" ${ctx:+-c "$ctx"} "${cache_args[@]}" "${sp_extra[@]}" --json 2>"$work/sputnik.err")" || { cat "$work/sputnik.err" >&2; sp='{"error":"sputnik failed to load or run"}'; }
    llama2='{}'
    if [ -n "$variant_dir" ]; then
      llama2="$(cd "$variant_dir" && "$greedy" "$path" "$prompt" "$N" "$THREADS" "${llama_extra[@]}" 2>"$work/llama2.err")" || llama2='{"error":"llama.cpp failed"}'
    fi
    # Sputnik's logits along llama.cpp's tokens (teacher forcing): does each step pick llama.cpp's token?
    forced='{}'
    if [[ "$llama" != *error* && "$sp" != *error* ]]; then
      printf '%s' "$llama" > "$work/llama.json"
      dotnet "$work/benchbin/Sputnik.Bench.dll" logits "$path" "$work/llama.json" "$work/sputnik.logits" "${ctx:-0}" "$CACHE_K" "$CACHE_V" "$THREADS" 2>"$work/sputnik.err" \
        && forced="$(python3 "$root/bench/compare-logits.py" "$work/llama.json" "$work/llama.logits" "$work/sputnik.logits" --json)" || cat "$work/sputnik.err" >&2
    fi
    python3 -c 'import json,sys; print(json.dumps({"file": sys.argv[1], "made": sys.argv[2], "type": sys.argv[3], "prompt": int(sys.argv[4]), "llama": json.loads(sys.argv[5]), "sputnik": json.loads(sys.argv[6]), "forced": json.loads(sys.argv[7]), "llama2": json.loads(sys.argv[8])}))' \
      "$(basename "$path")" "$made" "$type" "$i" "$llama" "$sp" "$forced" "$llama2" >> "$results"
  done
done

echo "$(llamacpp_version); $N greedy tokens per prompt, ${#text_prompts[@]} prompts per file (files checked on long prompts: $(( ${#text_prompts[@]} + ${#long_prompts[@]} ))), $THREADS threads, KV cache K $CACHE_K V $CACHE_V"
echo "llama.cpp's CPU build: $(sed -n 's/^system_info: //p' "$work/llama.err" | head -1)"
[ -n "$VARIANT" ] && echo "second llama.cpp ($VARIANT): $(sed -n 's/^system_info: //p' "$work/llama2.err" | head -1)"
VARIANT="$VARIANT" CACHE_K="$CACHE_K" CACHE_V="$CACHE_V" python3 - "$results" <<'PY'
import json, os, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault((r["file"], r["made"], r["type"]), []).append(r)
bad = False
TIE = 1e-4
# Exact agreement is required of F32 files when both engines attend in F32; other caches are reported.
exact = os.environ.get("CACHE_K") == "f32" and os.environ.get("CACHE_V") == "f32"
variant = os.environ.get("VARIANT", "")
def prefix(a, b):
    """Length of the agreeing prefix of two token lists, and the longer length."""
    k = 0
    while k < min(len(a), len(b)) and a[k] == b[k]: k += 1
    return k, max(len(a), len(b))
self_col = f" llama.cpp {variant} vs llama.cpp: agree |" if variant else ""
print("| file | made by | type | prompt tokens equal | first token equal | sequences equal | tokens equal | agree | same pick on llama.cpp's path | max \\|Δlogit\\| there | distinct tokens | llama.cpp top-2 gap where they part |" + self_col)
print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |" + (" ---: |" if variant else ""))
for (f, made, typ), rs in rows.items():
    if any("error" in r["sputnik"] for r in rs):
        print(f"| {f} | {made} | {typ} | Sputnik failed to load{' (llama.cpp too)' if any('error' in r['llama'] for r in rs) else ''} | | | | | | | | |")
        bad = bad or not all("error" in r["llama"] for r in rs)
        continue
    if any("error" in r["llama"] for r in rs):
        print(f"| {f} | {made} | {typ} | llama.cpp failed to load | | | | | | | | |")
        bad = True
        continue
    n = len(rs)
    ptok = sum(r["llama"]["prompt_tokens"] == r["sputnik"]["prompt_tokens"] for r in rs)
    first = sum(r["llama"]["tokens"][:1] == r["sputnik"]["tokens"][:1] for r in rs)
    seq = sum(r["llama"]["tokens"] == r["sputnik"]["tokens"] for r in rs)
    same = total = 0
    gaps = []
    distinct = set()
    for r in rs:
        a, b = r["llama"]["tokens"], r["sputnik"]["tokens"]
        distinct.update(a)
        k, longer = prefix(a, b)
        same += k
        total += longer
        # Parting where one engine ended the sequence (end-of-generation) is never a tie.
        if k < max(len(a), len(b)): gaps.append(r["llama"]["gaps"][k] if k < len(a) and k < len(b) else float("inf"))
    gap = ", ".join(f"{g:.3g}" + (" (tie)" if g < TIE else "") for g in gaps) if gaps else "-"
    share = 100 * same / total if total else 100
    fs = [r.get("forced") or {} for r in rs]
    fsame, fsteps = sum(x.get("same", 0) for x in fs), sum(x.get("steps", 0) for x in fs)
    forced = f"{fsame}/{fsteps} ({100 * fsame / fsteps:.0f} %)" if fsteps else "-"
    fmax = f"{max(x.get('max', 0) for x in fs):.2g}" if fsteps else "-"
    selfagree = ""
    if variant:
        pairs = [prefix(r["llama"]["tokens"], r["llama2"]["tokens"]) for r in rs if "tokens" in (r.get("llama2") or {})]
        s2, t2 = sum(p[0] for p in pairs), sum(p[1] for p in pairs)
        selfagree = f" {s2}/{t2} ({100 * s2 / t2:.0f} %) |" if len(pairs) == n and t2 else " - |"
    print(f"| {f} | {made} | {typ} | {ptok}/{n} | {first}/{n} | {seq}/{n} | {same}/{total} | {share:.0f} % | {forced} | {fmax} | {len(distinct)} | {gap} |" + selfagree)
    if ptok < n or (typ == "F32" and exact and any(g >= TIE for g in gaps)): bad = True
sys.exit(1 if bad else 0)
PY
