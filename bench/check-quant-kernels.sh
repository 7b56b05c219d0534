#!/usr/bin/env bash
# Do Sputnik's quantized matrix products do llama.cpp's integer arithmetic? For every weight type Sputnik multiplies,
# converts a set of edge-case activation rows (exact .5 ties, negative largest magnitudes, all-zero blocks, values
# one float step from a rounding boundary, denormals, F16/BF16 halfway values) with Sputnik's activation quantizer and
# with ggml-cpu's own from_float for the type's vec_dot_type, and compares the bytes; then compares Sputnik's dot
# products (scalar reference, AVX2, AVX-512, batched kernel) with ggml-cpu's vec_dot on the same weight bytes,
# relative to the RMS of ggml's results (summation order alone: 1e-7 to 1e-6; one activation rounding step: ~1e-3). See
# bench/Sputnik.Bench/QuantCheck.cs and bench/llamacpp-quant-check.cpp. Exit status 1 when any activation differs.
#
#   LLAMACPP_NPM=DIR bench/check-quant-kernels.sh [CPU_VARIANT]   (default zen4; haswell, skylakex, icelake, ...: the
#                                                                libggml-cpu-*.so node-llama-cpp ships; CHECK_DIR)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
variant="${1:-zen4}"
work="${CHECK_DIR:-/tmp/sputnik-quant-check}"
mkdir -p "$work"
# shellcheck source=bench/llamacpp.sh
. "$root/bench/llamacpp.sh"
if [ -z "${LLAMACPP_NPM:-}" ]; then echo "error: LLAMACPP_NPM=DIR (node-llama-cpp's prebuilt libraries) is required" >&2; exit 2; fi
llamacpp_npm
lib="$NPM_BINS/libggml-cpu-$variant.so"
[ -f "$lib" ] || { echo "error: no CPU variant $variant ($lib)" >&2; exit 2; }
g++ -O2 -std=c++17 -I"$NPM_HEADERS/ggml/include" "$root/bench/llamacpp-quant-check.cpp" -o "$work/llamacpp-quant-check" \
  "$NPM_BINS/libggml-base.so" -Wl,-rpath,"$NPM_BINS" -ldl
echo "== building the bench helper" >&2
dotnet build "$root/bench/Sputnik.Bench/Sputnik.Bench.csproj" -c Release -o "$work/benchbin" --nologo -v quiet -clp:ErrorsOnly >&2
dotnet "$work/benchbin/Sputnik.Bench.dll" quant-check write "$work/in.bin"
"$work/llamacpp-quant-check" "$lib" "$work/in.bin" "$work/ggml.bin"
echo "$(llamacpp_version), CPU variant $variant"
dotnet "$work/benchbin/Sputnik.Bench.dll" quant-check compare "$work/in.bin" "$work/ggml.bin"
