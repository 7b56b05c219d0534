# Shared by compare-llamacpp.sh and check-llamacpp.sh (source it): fetches llama.cpp's source and builds targets of
# it, CPU only, Release, cached under ${SPUTNIK_BENCH_CACHE:-~/.cache/sputnik-bench} so re-runs start immediately.
#
# llama.cpp comes from npm's node-llama-cpp package, which ships llama.cpp's source as a git bundle
# (node_modules/node-llama-cpp/llama/gitRelease.bundle): the only registry these machines can reach.

LLAMACPP_CACHE="${SPUTNIK_BENCH_CACHE:-$HOME/.cache/sputnik-bench}"
LLAMACPP_SRC="$LLAMACPP_CACHE/llama.cpp"
LLAMACPP_BUILD="$LLAMACPP_SRC/build"

# Clones the source from the npm package's bundle unless it is already cached.
llamacpp_source() {
  [ -d "$LLAMACPP_SRC/.git" ] && return 0
  mkdir -p "$LLAMACPP_CACHE"
  local tmp
  tmp="$(mktemp -d)"
  echo "== installing node-llama-cpp (for its llama.cpp source bundle) into $tmp" >&2
  npm install --prefix "$tmp" node-llama-cpp --ignore-scripts --no-audit --no-fund --loglevel=error >&2
  local bundle="$tmp/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  if [ ! -f "$bundle" ]; then echo "error: $bundle not found in the node-llama-cpp package" >&2; rm -rf "$tmp"; return 1; fi
  rm -rf "$LLAMACPP_SRC"
  git clone --quiet "$bundle" "$LLAMACPP_SRC" >&2
  rm -rf "$tmp"
  (cd "$LLAMACPP_SRC" && git log -1 --format='llama.cpp %h %cs %s') > "$LLAMACPP_CACHE/llama.cpp.version" || true
}

# The cached llama.cpp's version line ("llama.cpp <hash> <date> <subject>").
llamacpp_version() {
  cat "$LLAMACPP_CACHE/llama.cpp.version" 2>/dev/null || echo "llama.cpp (unknown version)"
}

# Builds the given CMake targets (e.g. llama-bench, or llama for the static libraries); configures once.
llamacpp_build() {
  llamacpp_source
  if [ ! -f "$LLAMACPP_BUILD/CMakeCache.txt" ]; then
    echo "== configuring llama.cpp (Release, CPU only, GGML_NATIVE=ON, static)" >&2
    cmake -S "$LLAMACPP_SRC" -B "$LLAMACPP_BUILD" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
      -DLLAMA_CURL=OFF -DGGML_CUDA=OFF -DGGML_VULKAN=OFF -DGGML_METAL=OFF -DGGML_OPENMP=ON \
      -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >&2
  fi
  local t
  for t in "$@"; do
    echo "== building llama.cpp target $t" >&2
    cmake --build "$LLAMACPP_BUILD" --target "$t" -j "$(nproc)" >&2
  done
}

# With LLAMACPP_NPM=DIR (an npm prefix where `npm install node-llama-cpp --ignore-scripts` ran): sets NPM_BINS, the
# folder of the linux-x64 shared libraries node-llama-cpp ships, and NPM_HEADERS, the source bundle of the same
# package (cloned once), and records that version. The binaries built against them run from NPM_BINS, where ggml
# looks for the CPU backend built for this machine.
llamacpp_npm() {
  NPM_BINS="$LLAMACPP_NPM/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64"
  NPM_HEADERS="$LLAMACPP_CACHE/llama.cpp-npm"
  local bundle="$LLAMACPP_NPM/node_modules/node-llama-cpp/llama/gitRelease.bundle"
  if [ ! -d "$NPM_BINS" ] || [ ! -f "$bundle" ]; then echo "error: no node-llama-cpp linux-x64 binaries and source bundle under $LLAMACPP_NPM" >&2; return 1; fi
  if [ ! -d "$NPM_HEADERS/.git" ]; then
    mkdir -p "$LLAMACPP_CACHE"
    git clone --quiet "$bundle" "$NPM_HEADERS" >&2
  fi
  local release
  release="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["buildOptions"]["llamaCpp"]["release"])' "$NPM_BINS/_nlcBuildMetadata.json" 2>/dev/null || echo unknown)"
  (cd "$NPM_HEADERS" && git log -1 --format="llama.cpp %h %cs (node-llama-cpp prebuilt, release $release)") > "$LLAMACPP_CACHE/llama.cpp.version" || true
  LLAMACPP_RUN_DIR="$NPM_BINS"
  [ -z "${LLAMACPP_CPU_SKIP:-}" ] || llamacpp_skip_cpu
}

# With LLAMACPP_CPU_SKIP="name ..." (e.g. sapphirerapids): ggml loads the best-scoring libggml-cpu-*.so of the
# executable's folder and of the current one, so the binaries run from a folder of links to NPM_BINS' libraries
# without those variants, and ggml picks the next best. On a Xeon with AMX, the sapphirerapids backend aborts on
# DeepSeek-V2-Lite (GGML_ASSERT(*cur_backend_id != -1) in ggml-backend.cpp); the zen4 one (AVX-512, VNNI, BF16, no
# AMX) runs it.
llamacpp_skip_cpu() {
  local dir="$LLAMACPP_CACHE/run-skip-$(echo "$LLAMACPP_CPU_SKIP" | tr ' ,' '__')" f name skip v
  rm -rf "$dir" && mkdir -p "$dir"
  for f in "$NPM_BINS"/*; do
    name="$(basename "$f")"; skip=0
    for v in $(echo "$LLAMACPP_CPU_SKIP" | tr ',' ' '); do [ "$name" = "libggml-cpu-$v.so" ] && skip=1; done
    [ $skip = 1 ] || ln -s "$f" "$dir/$name"
  done
  echo "== llama.cpp CPU backends skipped: $LLAMACPP_CPU_SKIP (running from $dir)" >&2
  LLAMACPP_RUN_DIR="$dir"
}

# Makes llama-bench and prints its path. With LLAMACPP_NPM=DIR it compiles the bundle's tools/llama-bench against
# node-llama-cpp's prebuilt libraries (libllama-common included; about 30 s, no cmake build). Otherwise it builds the
# llama-bench target of the Release build (about 10 minutes the first time).
llamacpp_bench() {
  if [ -n "${LLAMACPP_NPM:-}" ]; then
    llamacpp_npm || return 1
    local out="$LLAMACPP_CACHE/llama-bench-npm"
    if [ ! -x "$out" ]; then
      echo "== compiling llama-bench against node-llama-cpp's prebuilt libraries" >&2
      g++ -O2 -DNDEBUG -std=c++17 -I"$NPM_HEADERS/include" -I"$NPM_HEADERS/ggml/include" -I"$NPM_HEADERS/common" -I"$NPM_HEADERS/vendor" \
        "$NPM_HEADERS/tools/llama-bench/llama-bench.cpp" "$NPM_HEADERS/tools/llama-bench/main.cpp" -o "$out" \
        "$NPM_BINS/libllama-common.so" "$(ls "$NPM_BINS"/libllama.v*.so | head -1)" "$(ls "$NPM_BINS"/libggml.v*.so | head -1)" \
        "$NPM_BINS/libggml-base.so" -Wl,-rpath,"$NPM_BINS" -lpthread -ldl
    fi
    echo "$out"
    return 0
  fi
  [ -x "$LLAMACPP_BUILD/bin/llama-bench" ] || llamacpp_build llama-bench
  LLAMACPP_RUN_DIR="$PWD"
  echo "$LLAMACPP_BUILD/bin/llama-bench"
}
# Compiles bench/llamacpp-greedy.cpp (argument 1) into argument 2 and sets LLAMACPP_RUN_DIR, the directory to run it
# from: with LLAMACPP_NPM=DIR against node-llama-cpp's shared libraries and the headers of the same package (see
# llamacpp_npm; no build), otherwise against the static libraries of a Release build of llama.cpp (about 10 minutes
# of all cores the first time).
llamacpp_greedy() {
  local src="$1" out="$2"
  if [ -n "${LLAMACPP_NPM:-}" ]; then
    llamacpp_npm || return 1
    local libllama libggml
    libllama="$(ls "$NPM_BINS"/libllama.v*.so | head -1)"
    libggml="$(ls "$NPM_BINS"/libggml.v*.so | head -1)"
    echo "== compiling $(basename "$src") against node-llama-cpp's prebuilt $(basename "$libllama")" >&2
    g++ -O2 -std=c++17 -I"$NPM_HEADERS/include" -I"$NPM_HEADERS/ggml/include" "$src" -o "$out" \
      "$libllama" "$libggml" "$NPM_BINS/libggml-base.so" -Wl,-rpath,"$NPM_BINS" -lpthread -ldl
    return 0
  fi
  llamacpp_build llama
  echo "== compiling $(basename "$src")" >&2
  g++ -O2 -std=c++17 -I"$LLAMACPP_SRC/include" -I"$LLAMACPP_SRC/ggml/include" "$src" -o "$out" \
    "$LLAMACPP_BUILD/src/libllama.a" "$LLAMACPP_BUILD/ggml/src/libggml.a" "$LLAMACPP_BUILD/ggml/src/libggml-cpu.a" \
    "$LLAMACPP_BUILD/ggml/src/libggml-base.a" -fopenmp -lpthread -ldl
  LLAMACPP_RUN_DIR="$PWD"
}

# Compiles the bundle's tools/quantize (llama-quantize) against node-llama-cpp's prebuilt libraries into argument 1
# (LLAMACPP_NPM=DIR required; a few seconds): the reference for which type `sputnik quantize` gives each tensor
# (QuantMixLlamaCppTests).
llamacpp_quantize() {
  local out="$1"
  if [ -z "${LLAMACPP_NPM:-}" ]; then echo "error: llamacpp_quantize needs LLAMACPP_NPM=DIR (node-llama-cpp's prebuilt libraries)" >&2; return 1; fi
  llamacpp_npm || return 1
  g++ -O1 -DNDEBUG -std=c++17 -I"$NPM_HEADERS/include" -I"$NPM_HEADERS/ggml/include" -I"$NPM_HEADERS/common" -I"$NPM_HEADERS/vendor" \
    "$NPM_HEADERS/tools/quantize/quantize.cpp" "$NPM_HEADERS/tools/quantize/main.cpp" -o "$out" \
    "$NPM_BINS/libllama-common.so" "$(ls "$NPM_BINS"/libllama.v*.so | head -1)" "$(ls "$NPM_BINS"/libggml.v*.so | head -1)" \
    "$NPM_BINS/libggml-base.so" -Wl,-rpath,"$NPM_BINS" -lpthread -ldl
}
