// Greedy generation with llama.cpp for bench/check-llamacpp.sh: prints one JSON object with the prompt's token ids,
// the generated ids (argmax of the logits, stopping at end-of-generation like `sputnik run --temp 0`) and, per
// generated token, the gap between the best and second-best logit, so a mismatch on a near-tie can be told apart
// from a real difference.
//
//   llamacpp-greedy MODEL.gguf PROMPT N [THREADS] [CTX] [CACHE_K] [CACHE_V]
//
// CTX (default: just enough; 0 too) sets the context size; stderr then reports llama.cpp's KV buffer line and n_ctx,
// from which the bench derives KV bytes per token. CACHE_K / CACHE_V (f16, f32, q8_0, q4_0; default f16) are
// llama.cpp's --cache-type-k/-v; flash attention is then on, which llama.cpp needs for a quantized V cache, except
// with an F32 cache (f32 f32), where it is off: llama.cpp's flash attention would round an F32 cache to F16.
// GREEDY_LOGITS=FILE (environment) also writes every step's full logits there (n_vocab floats per generated token,
// native byte order), for comparing the engines' logits step by step (bench/compare-logits.py).
// GREEDY_LORA=ADAPTER.gguf (environment) applies a LoRA adapter (llama_adapter_lora_init + llama_set_adapters_lora,
// as llama-cli's --lora does) at scale GREEDY_LORA_SCALE (default 1), for bench/check-lora.sh.
#include "llama.h"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

static bool cache_type(const char * name, ggml_type & type) {
    const std::string s = name;
    if (s == "f16") type = GGML_TYPE_F16;
    else if (s == "f32") type = GGML_TYPE_F32;
    else if (s == "q8_0") type = GGML_TYPE_Q8_0;
    else if (s == "q4_0") type = GGML_TYPE_Q4_0;
    else return false;
    return true;
}

static void quiet_log(ggml_log_level level, const char * text, void *) {
    // Errors still go to stderr; the KV-cache size line is kept because the bench reads it.
    if (level == GGML_LOG_LEVEL_ERROR || std::string(text).find("KV buffer size") != std::string::npos) fputs(text, stderr);
}

int main(int argc, char ** argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT N [THREADS] [CTX] [CACHE_K] [CACHE_V]\n", argv[0]);
        return 2;
    }
    const std::string prompt = argv[2];
    const int n_predict = std::atoi(argv[3]);
    const int threads = argc > 4 ? std::atoi(argv[4]) : 2;
    const int ctx_size = argc > 5 ? std::atoi(argv[5]) : 0;
    ggml_type type_k = GGML_TYPE_F16, type_v = GGML_TYPE_F16;
    if ((argc > 6 && !cache_type(argv[6], type_k)) || (argc > 7 && !cache_type(argv[7], type_v))) {
        fprintf(stderr, "error: cache types are f16, f32, q8_0 or q4_0\n");
        return 2;
    }
    const bool custom_cache = argc > 6;

    llama_log_set(quiet_log, nullptr);
    ggml_backend_load_all();
    // Which CPU variant ggml loaded (its compiled-in features), for the checks to record.
    fprintf(stderr, "system_info: %s\n", llama_print_system_info());
    llama_model * model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) { fprintf(stderr, "error: cannot load %s\n", argv[1]); return 1; }
    const llama_vocab * vocab = llama_model_get_vocab(model);

    const int n_prompt = -llama_tokenize(vocab, prompt.c_str(), (int32_t) prompt.size(), nullptr, 0, true, true);
    std::vector<llama_token> tokens(n_prompt);
    if (llama_tokenize(vocab, prompt.c_str(), (int32_t) prompt.size(), tokens.data(), n_prompt, true, true) < 0) {
        fprintf(stderr, "error: tokenization failed\n");
        return 1;
    }
    // An empty prompt without BOS would give nothing to decode; Sputnik starts from BOS then too.
    if (tokens.empty()) tokens.push_back(llama_vocab_bos(vocab));

    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = ctx_size > 0 ? (uint32_t) ctx_size : (uint32_t) (tokens.size() + n_predict + 1);
    cp.n_batch = (uint32_t) tokens.size();
    // GREEDY_UBATCH=N (environment): prefill in micro-batches of N tokens (llama.cpp's -ub), e.g. 1 to take the
    // matrix-vector path for every prompt token.
    if (const char * ub = std::getenv("GREEDY_UBATCH"); ub && std::atoi(ub) > 0) cp.n_ubatch = (uint32_t) std::atoi(ub);
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    if (custom_cache) {
        cp.type_k = type_k;
        cp.type_v = type_v;
        // Flash attention casts an F32 cache to F16 before it attends (llama-graph.cpp, build_attn_mha), so F32
        // attention needs it off: K·Q, softmax and softmax·V then run as F32 matrix products.
        const bool f32_cache = type_k == GGML_TYPE_F32 && type_v == GGML_TYPE_F32;
        cp.flash_attn_type = f32_cache ? LLAMA_FLASH_ATTN_TYPE_DISABLED : LLAMA_FLASH_ATTN_TYPE_ENABLED;
    }
    llama_context * ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "error: cannot create a context\n"); return 1; }
    fprintf(stderr, "n_ctx = %u\n", llama_n_ctx(ctx));
    llama_adapter_lora * lora = nullptr;
    if (const char * lora_path = std::getenv("GREEDY_LORA"); lora_path && *lora_path) {
        lora = llama_adapter_lora_init(model, lora_path);
        if (!lora) { fprintf(stderr, "error: cannot load the LoRA adapter %s\n", lora_path); return 1; }
        const char * scale_text = std::getenv("GREEDY_LORA_SCALE");
        float scale = scale_text && *scale_text ? (float) std::atof(scale_text) : 1.0f;
        if (llama_set_adapters_lora(ctx, &lora, 1, &scale) != 0) { fprintf(stderr, "error: cannot apply the LoRA adapter\n"); return 1; }
    }

    const int n_vocab = llama_vocab_n_tokens(vocab);
    std::vector<llama_token> out;
    std::vector<float> gaps;
    std::vector<llama_token> feed = tokens;
    const char * dump_path = std::getenv("GREEDY_LOGITS");
    FILE * dump = dump_path && *dump_path ? fopen(dump_path, "wb") : nullptr;
    if (dump_path && *dump_path && !dump) { fprintf(stderr, "error: cannot write %s\n", dump_path); return 1; }
    for (int i = 0; i < n_predict; i++) {
        if (llama_decode(ctx, llama_batch_get_one(feed.data(), (int32_t) feed.size())) != 0) {
            fprintf(stderr, "error: decode failed\n");
            return 1;
        }
        const float * logits = llama_get_logits_ith(ctx, -1);
        if (dump) fwrite(logits, sizeof(float), (size_t) n_vocab, dump);
        int best = 0, second = -1;
        for (int t = 1; t < n_vocab; t++) {
            if (logits[t] > logits[best]) { second = best; best = t; }
            else if (second < 0 || logits[t] > logits[second]) second = t;
        }
        if (llama_vocab_is_eog(vocab, best)) break;
        out.push_back(best);
        gaps.push_back(logits[best] - logits[second]);
        feed.assign(1, best);
    }

    if (dump) fclose(dump);
    printf("{\"prompt_tokens\":[");
    for (size_t i = 0; i < tokens.size(); i++) printf("%s%d", i ? "," : "", tokens[i]);
    printf("],\"tokens\":[");
    for (size_t i = 0; i < out.size(); i++) printf("%s%d", i ? "," : "", out[i]);
    printf("],\"gaps\":[");
    for (size_t i = 0; i < gaps.size(); i++) printf("%s%.6g", i ? "," : "", gaps[i]);
    printf("]}\n");

    llama_free(ctx);
    llama_model_free(model);
    return 0;
}
