// llama.cpp's side of bench/check-quant-kernels.sh: for each case of a file written by the bench helper's
// `quant-check write` mode, converts every activation row with ggml-cpu's own from_float for the weight type's
// vec_dot_type (Q8_0, Q8_1, Q8_K, F16, BF16: what a llama.cpp matrix product does to its input first) and takes
// ggml-cpu's vec_dot of every weight row with it, then writes both for `quant-check compare`.
//
//   llamacpp-quant-check CPU_BACKEND.so IN.bin OUT.bin
//
// CPU_BACKEND.so is one of the CPU variants node-llama-cpp ships (libggml-cpu-zen4.so, -haswell.so, ...), loaded
// with dlopen so the kernels are exactly those llama.cpp picks at run time on that CPU.
// IN.bin:  int32 cases; per case int32 weight_type, k, rows, acts; rows weight rows (ggml_row_size bytes each);
//          acts × k floats.
// OUT.bin: per case int32 vec_dot_type; per activation int32 n + its n converted bytes; rows × acts floats
//          (vec_dot of weight row r with activation a at [r * acts + a]).
#include <dlfcn.h>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <vector>
#include "ggml.h"
#include "ggml-cpu.h"

typedef const struct ggml_type_traits_cpu * (*traits_fn)(enum ggml_type);

static bool read_all(FILE * f, void * p, size_t n) { return fread(p, 1, n, f) == n; }

int main(int argc, char ** argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s CPU_BACKEND.so IN.bin OUT.bin\n", argv[0]); return 2; }
    void * lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "error: %s\n", dlerror()); return 1; }
    auto get_traits = (traits_fn) dlsym(lib, "ggml_get_type_traits_cpu");
    auto cpu_init = (void (*)(void)) dlsym(lib, "ggml_cpu_init");
    if (!get_traits || !cpu_init) { fprintf(stderr, "error: %s lacks ggml_get_type_traits_cpu / ggml_cpu_init\n", argv[1]); return 1; }
    cpu_init();
    FILE * in = fopen(argv[2], "rb");
    FILE * out = fopen(argv[3], "wb");
    if (!in || !out) { fprintf(stderr, "error: cannot open %s or %s\n", argv[2], argv[3]); return 1; }
    int32_t cases = 0;
    if (!read_all(in, &cases, 4) || cases < 0 || cases > 10000) { fprintf(stderr, "error: bad header\n"); return 1; }
    for (int c = 0; c < cases; c++) {
        int32_t h[4];
        if (!read_all(in, h, sizeof h)) { fprintf(stderr, "error: truncated case %d\n", c); return 1; }
        const auto wt = (enum ggml_type) h[0];
        const int64_t k = h[1], rows = h[2], acts = h[3];
        if (h[0] < 0 || h[0] >= GGML_TYPE_COUNT || k <= 0 || k > (1 << 20) || rows <= 0 || rows > 4096 || acts <= 0 || acts > 4096
            || k % ggml_blck_size(wt) != 0) {
            fprintf(stderr, "error: bad case %d (type %d, k %lld)\n", c, h[0], (long long) k);
            return 1;
        }
        const auto * tw = get_traits(wt);
        const enum ggml_type at = tw->vec_dot_type;
        const auto * ta = get_traits(at);
        const size_t wrow = ggml_row_size(wt, k), arow = ggml_row_size(at, k);
        std::vector<uint8_t> w(wrow * rows), a(arow * acts);
        std::vector<float> x(k * acts), dots(rows * acts);
        if (!read_all(in, w.data(), w.size()) || !read_all(in, x.data(), x.size() * 4)) { fprintf(stderr, "error: truncated case %d\n", c); return 1; }
        int32_t at32 = at;
        fwrite(&at32, 4, 1, out);
        for (int64_t j = 0; j < acts; j++) {
            if (at == GGML_TYPE_F32) memcpy(a.data() + j * arow, x.data() + j * k, arow);
            else ta->from_float(x.data() + j * k, a.data() + j * arow, k);
            int32_t n = (int32_t) arow;
            fwrite(&n, 4, 1, out);
            fwrite(a.data() + j * arow, 1, arow, out);
        }
        for (int64_t r = 0; r < rows; r++)
            for (int64_t j = 0; j < acts; j++)
                tw->vec_dot((int) k, &dots[r * acts + j], 0, w.data() + r * wrow, 0, a.data() + j * arow, 0, 1);
        fwrite(dots.data(), 4, dots.size(), out);
    }
    fclose(out);
    fclose(in);
    return 0;
}
