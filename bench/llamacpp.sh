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
