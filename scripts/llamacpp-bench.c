// Same-host llama.cpp reference for `peregrine bench`: prefill of P random tokens in one batch
// and decode of N tokens one at a time (as llama-bench's pp and tg), median of R repetitions,
// through the llama.cpp library that the npm package node-llama-cpp ships prebuilt (its CPU
// backends include a Zen 4 / AVX-512 build, chosen at run time). No llama.h is needed: the
// parameter structs are passed through as the library's own defaults, only n_ctx, n_batch and
// n_ubatch (their first three fields in every llama.cpp version since 2024) are set, and the
// thread count goes through llama_set_n_threads.
//
//   npm pack @node-llama-cpp/linux-x64@3.22.1 && tar xzf node-llama-cpp-linux-x64-3.22.1.tgz
//   B=$PWD/package/bins/linux-x64
//   L="-l:libllama.v0.5.0.so -l:libggml.v0.5.0.so -l:libggml-base.so"
//   gcc -O2 scripts/llamacpp-bench.c -o llamacpp-bench -L$B $L -Wl,-rpath,$B
//   ./llamacpp-bench $B MODEL.gguf 512 128 3 2     (P N R THREADS)
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
// The parameter structs, passed through opaquely: larger than the library's (llama_context_params
// is 160 bytes in this build), which returns into them and reads only its own fields from them.
typedef struct { char b[512]; } blob;
typedef struct { int32_t n_tokens; int32_t *token; float *embd; int32_t *pos; int32_t *n_seq_id; int32_t **seq_id; int8_t *logits; } llama_batch;
void ggml_backend_load_all_from_path(const char *);
void llama_backend_init(void);
blob llama_model_default_params(void);
blob llama_context_default_params(void);
void *llama_model_load_from_file(const char *, blob);
void *llama_init_from_model(void *, blob);
void llama_set_n_threads(void *, int32_t, int32_t);
llama_batch llama_batch_get_one(int32_t *, int32_t);
int32_t llama_decode(void *, llama_batch);
void llama_synchronize(void *);
void *llama_get_memory(void *);
void llama_memory_clear(void *, int);
void *llama_model_get_vocab(const void *);
int32_t llama_vocab_n_tokens(const void *);
void llama_free(void *);
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static int cmp(const void *a, const void *b) { double x = *(double *)a, y = *(double *)b; return x < y ? -1 : x > y; }
int main(int argc, char **argv) {
    if (argc < 7) { fprintf(stderr, "usage: llamacpp-bench BINS MODEL P N R THREADS\n"); return 2; }
    int P = atoi(argv[3]), N = atoi(argv[4]), R = atoi(argv[5]), T = atoi(argv[6]);
    if (P < 0 || N < 1 || R < 1 || R > 64 || T < 1) { fprintf(stderr, "need P >= 0, N >= 1, 1 <= R <= 64, THREADS >= 1\n"); return 2; }
    ggml_backend_load_all_from_path(argv[1]);
    llama_backend_init();
    void *model = llama_model_load_from_file(argv[2], llama_model_default_params());
    if (!model) { fprintf(stderr, "load failed\n"); return 1; }
    blob cp = llama_context_default_params();
    uint32_t *u = (uint32_t *) cp.b;
    u[0] = P + N + 16; u[1] = P > 1 ? P : 512; u[2] = P > 1 ? P : 512;   // n_ctx, n_batch, n_ubatch
    void *ctx = llama_init_from_model(model, cp);
    if (!ctx) { fprintf(stderr, "context failed\n"); return 1; }
    llama_set_n_threads(ctx, T, T);
    int vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
    int32_t *toks = malloc(sizeof(int32_t) * (P + N + 1));
    srand(1);
    for (int i = 0; i < P + N + 1; i++) toks[i] = rand() % vocab;
    double pp[64], tg[64];
    for (int r = -1; r < R; r++) {                   // r = -1: warm-up
        llama_memory_clear(llama_get_memory(ctx), 1);
        double t0 = now();
        if (P > 0 && llama_decode(ctx, llama_batch_get_one(toks, P))) { fprintf(stderr, "decode failed\n"); return 1; }
        llama_synchronize(ctx);
        double t1 = now();
        llama_memory_clear(llama_get_memory(ctx), 1);
        double t2 = now();
        for (int i = 0; i < N; i++) {
            if (llama_decode(ctx, llama_batch_get_one(toks + P + i, 1))) { fprintf(stderr, "decode failed\n"); return 1; }
            llama_synchronize(ctx);
        }
        double t3 = now();
        if (r >= 0) { pp[r] = P / (t1 - t0); tg[r] = N / (t3 - t2); }
    }
    qsort(pp, R, sizeof(double), cmp); qsort(tg, R, sizeof(double), cmp);
    printf("llama.cpp %s threads %d: pp%d %.1f tok/s, tg%d %.1f tok/s (median of %d; min/max tg %.1f/%.1f)\n",
           argv[2], T, P, pp[R / 2], N, tg[R / 2], R, tg[0], tg[R - 1]);
    llama_free(ctx);
    return 0;
}
