// Embedding throughput of llama.cpp for bench/embed-bench.sh, run as llama-embedding runs a batch: inputs are packed
// into batches of up to 512 tokens (n_batch = n_ubatch = 512, one sequence id per input, the memory cleared before
// each batch), pooled as the GGUF says, and read with llama_get_embeddings_seq.
//
//   llamacpp-embed MODEL.gguf TOKENS.txt THREADS REPS OUT.f32
//
// TOKENS.txt holds one input per line as space-separated token ids (the same ids Sputnik embeds, specials included).
// Prints "llama.cpp: N inputs, T tokens, best S s of REPS, E embeddings/s" and writes the last rep's vectors,
// L2-normalised, to OUT.f32 (N × n_embd floats) for the script's cosine check against Sputnik's.
#include "llama.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

static void quiet_log(ggml_log_level level, const char * text, void *) {
    if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: %s MODEL.gguf TOKENS.txt THREADS REPS OUT.f32\n", argv[0]);
        return 2;
    }
    const int threads = std::atoi(argv[3]), reps = std::atoi(argv[4]);
    const int n_batch = 512;
    std::vector<std::vector<llama_token>> inputs;
    {
        std::ifstream in(argv[2]);
        std::string line;
        while (std::getline(in, line)) {
            std::istringstream words(line);
            std::vector<llama_token> ids;
            for (long id; words >> id;) ids.push_back((llama_token) id);
            if (!ids.empty()) inputs.push_back(ids);
        }
    }
    if (inputs.empty()) {
        fprintf(stderr, "error: no inputs in %s\n", argv[2]);
        return 1;
    }

    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
    auto mparams = llama_model_default_params();
    llama_model * model = llama_model_load_from_file(argv[1], mparams);
    if (!model) {
        fprintf(stderr, "error: cannot load %s\n", argv[1]);
        return 1;
    }
    auto cparams = llama_context_default_params();
    cparams.embeddings = true;
    cparams.n_ctx = n_batch;
    cparams.n_batch = n_batch;
    cparams.n_ubatch = n_batch;
    cparams.n_seq_max = 64;
    cparams.kv_unified = true; // the batch's sequences share one n_ctx-sized cache
    cparams.n_threads = threads;
    cparams.n_threads_batch = threads;
    llama_context * ctx = llama_init_from_model(model, cparams);
    if (!ctx) {
        fprintf(stderr, "error: cannot create the context\n");
        return 1;
    }
    const int n_embd = llama_model_n_embd(model);
    const bool encoder = llama_model_has_encoder(model) && !llama_model_has_decoder(model);
    std::vector<float> out(inputs.size() * n_embd);
    llama_batch batch = llama_batch_init(n_batch, 0, 1);
    long total_tokens = 0;
    for (const auto & ids : inputs) total_tokens += (long) ids.size();

    double best = 1e30;
    for (int rep = 0; rep < reps + 1; rep++) { // the first pass warms up
        auto t0 = std::chrono::steady_clock::now();
        size_t next = 0;
        while (next < inputs.size()) {
            // As many whole inputs as fit n_batch tokens and the sequence limit.
            size_t first = next;
            batch.n_tokens = 0;
            while (next < inputs.size() && next - first < cparams.n_seq_max &&
                   batch.n_tokens + (int) inputs[next].size() <= n_batch) {
                const auto & ids = inputs[next];
                for (size_t p = 0; p < ids.size(); p++) {
                    int i = batch.n_tokens++;
                    batch.token[i] = ids[p];
                    batch.pos[i] = (llama_pos) p;
                    batch.n_seq_id[i] = 1;
                    batch.seq_id[i][0] = (llama_seq_id) (next - first);
                    batch.logits[i] = p + 1 == ids.size();
                }
                next++;
            }
            if (next == first) {
                fprintf(stderr, "error: input %zu is longer than %d tokens\n", first, n_batch);
                return 1;
            }
            llama_memory_clear(llama_get_memory(ctx), true);
            int rc = encoder ? llama_encode(ctx, batch) : llama_decode(ctx, batch);
            if (rc != 0) {
                fprintf(stderr, "error: llama_%s returned %d\n", encoder ? "encode" : "decode", rc);
                return 1;
            }
            for (size_t k = first; k < next; k++) {
                const float * v = llama_get_embeddings_seq(ctx, (llama_seq_id) (k - first));
                if (!v) {
                    fprintf(stderr, "error: no pooled embedding for input %zu (pooling none?)\n", k);
                    return 1;
                }
                double norm = 0;
                for (int j = 0; j < n_embd; j++) norm += (double) v[j] * v[j];
                float scale = norm > 0 ? (float) (1.0 / std::sqrt(norm)) : 0.0f;
                for (int j = 0; j < n_embd; j++) out[k * n_embd + j] = v[j] * scale;
            }
        }
        double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (rep > 0 && s < best) best = s;
    }
    printf("llama.cpp: %zu inputs, %ld tokens, best %.3f s of %d, %.2f embeddings/s\n",
           inputs.size(), total_tokens, best, reps, inputs.size() / best);
    std::ofstream(argv[5], std::ios::binary).write((const char *) out.data(), (std::streamsize) (out.size() * sizeof(float)));
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
