package dev.peregrine;

import dev.peregrine.tensor.DType;

/**
 * How to load a model. Immutable; {@code withX} methods return copies.
 *
 * @param backend        "auto" (the best usable backend: CUDA when a GPU is usable, else CPU), "cpu" or "cuda"
 * @param threads        CPU threads (0 = one per physical core, never more than the processors this process may use;
 *                       at most {@link #MAX_THREADS})
 * @param contextLength  the longest sequence allowed (0 = the context length the model file states)
 * @param kvCacheTokens  token capacity of the shared paged KV cache (0 = four full contexts, at most 1 GiB;
 *                       at most {@link #MAX_KV_CACHE_TOKENS}; more than the machine can hold fails the load)
 * @param maxBatchTokens the most tokens one forward step evaluates (at most {@link #MAX_BATCH_TOKENS});
 *                       longer prompts are split
 * @param maxSequences   the most sequences the generator runs together in one batch
 * @param maxWaitingRequests the most requests waiting for a place in the batch (at least 1: every
 *                       request waits there until the next step); more are rejected
 * @param prefixCaching  reuse the KV-cache blocks of identical prompt prefixes across requests
 *                       (a shared system prompt is evaluated once)
 * @param prefillChunkTokens the most prompt tokens evaluated in one step (chunked prefill; default
 *                       512): smaller chunks keep steps short, so running requests keep decoding and
 *                       new ones get their first token sooner while a long prompt is evaluated
 * @param prefillStepMillis how long a step that prefills while other requests run or wait should
 *                       take (0 = always chunks of prefillChunkTokens): the chunk is cut to what fits,
 *                       measured as the model runs (at least 16 tokens), so that decoding requests keep
 *                       their pace. Prompts evaluated with nobody else around take whole chunks (as
 *                       long as one layer of the step takes at most a quarter of this, else fewer
 *                       tokens, down to 128); a request that arrives during such a step gets a step
 *                       of its own between two of its layers (GeneratorMetrics.interleavedSteps), so
 *                       its time to first token does not wait for the chunk. Where even 16 prompt
 *                       tokens take longer than this, prompts take whole chunks too and decoding
 *                       requests step in their pauses, once per this many milliseconds
 * @param deviceIndex    which GPU a GPU backend (or an encoder run on CUDA) uses (0 = the first); the CPU
 *                       backend ignores it
 * @param kvCacheType    how the KV cache stores keys and values: F32 (the default), or F16, which halves
 *                       the cache's memory (twice the tokens in the same budget) and the bytes attention
 *                       reads per position, at the cost of rounding each key and value to a half (11
 *                       significant bits, as llama.cpp's default {@code f16} cache; values beyond
 *                       65504 in magnitude become infinite)
 */
public record ModelOptions(String backend, int threads, int contextLength, long kvCacheTokens, int maxBatchTokens,
                           int maxSequences, int maxWaitingRequests, boolean prefixCaching, int prefillChunkTokens,
                           int prefillStepMillis, int deviceIndex, DType kvCacheType) {
    public ModelOptions {
        if (backend == null || backend.isBlank()) {
            throw new IllegalArgumentException("backend must be 'auto' or a backend name");
        }
        if (threads < 0 || threads > MAX_THREADS) {
            throw new IllegalArgumentException("threads must be 0 (one per core) to " + MAX_THREADS + ", got " + threads);
        }
        if (contextLength < 0) {
            throw new IllegalArgumentException("contextLength must be >= 0 (0 = the model's), got " + contextLength);
        }
        if (kvCacheTokens < 0 || kvCacheTokens > MAX_KV_CACHE_TOKENS) {
            throw new IllegalArgumentException("kvCacheTokens must be 0 (the default budget) to " + MAX_KV_CACHE_TOKENS
                    + ", got " + kvCacheTokens);
        }
        if (maxBatchTokens < 1 || maxBatchTokens > MAX_BATCH_TOKENS) {
            throw new IllegalArgumentException("maxBatchTokens must be 1 to " + MAX_BATCH_TOKENS + ", got " + maxBatchTokens);
        }
        if (maxSequences < 1 || maxSequences > maxBatchTokens) {
            throw new IllegalArgumentException("maxSequences must be in 1.." + maxBatchTokens + " (maxBatchTokens), got " + maxSequences);
        }
        if (prefillChunkTokens < 1) {
            throw new IllegalArgumentException("prefillChunkTokens must be >= 1, got " + prefillChunkTokens);
        }
        if (prefillStepMillis < 0) {
            throw new IllegalArgumentException("prefillStepMillis must be >= 0, got " + prefillStepMillis);
        }
        if (deviceIndex < 0) {
            throw new IllegalArgumentException("deviceIndex must be >= 0, got " + deviceIndex);
        }
        if (kvCacheType != DType.F32 && kvCacheType != DType.F16) {
            throw new IllegalArgumentException("kvCacheType must be F32 or F16, got " + kvCacheType);
        }
        if (maxWaitingRequests < 1) {
            // Every request waits in the queue, if only until the next step: 0 would refuse them all.
            throw new IllegalArgumentException("maxWaitingRequests must be >= 1, got " + maxWaitingRequests);
        }
    }

    /** The most CPU threads (as ggml's GGML_MAX_N_THREADS): each is a platform thread and its scratch. */
    public static final int MAX_THREADS = 512;
    /** The most tokens one forward step may evaluate: the step's buffers grow with it. */
    public static final int MAX_BATCH_TOKENS = 1 << 16;
    /** The most KV-cache tokens that may be asked for (the cache's block count must fit an int). */
    public static final long MAX_KV_CACHE_TOKENS = 1L << 32;

    public static ModelOptions defaults() {
        return new ModelOptions("auto", 0, 0, 0, 512, 64, 1024, true, 512, 50, 0, DType.F32);
    }

    public ModelOptions withBackend(String name) {
        return new ModelOptions(name, threads, contextLength, kvCacheTokens, maxBatchTokens, maxSequences, maxWaitingRequests, prefixCaching, prefillChunkTokens, prefillStepMillis, deviceIndex, kvCacheType);
    }

    public ModelOptions withThreads(int n) {
        return new ModelOptions(backend, n, contextLength, kvCacheTokens, maxBatchTokens, maxSequences, maxWaitingRequests, prefixCaching, prefillChunkTokens, prefillStepMillis, deviceIndex, kvCacheType);
    }

    public ModelOptions withContextLength(int n) {
        return new ModelOptions(backend, threads, n, kvCacheTokens, maxBatchTokens, maxSequences, maxWaitingRequests, prefixCaching, prefillChunkTokens, prefillStepMillis, deviceIndex, kvCacheType);
    }

    public ModelOptions withKvCacheTokens(long n) {
        return new ModelOptions(backend, threads, contextLength, n, maxBatchTokens, maxSequences, maxWaitingRequests, prefixCaching, prefillChunkTokens, prefillStepMillis, deviceIndex, kvCacheType);
    }

    public ModelOptions withMaxBatchTokens(int n) {
        return new ModelOptions(backend, threads, contextLength, kvCacheTokens, n, Math.min(maxSequences, n), maxWaitingRequests, prefixCaching, prefillChunkTokens, prefillStepMillis, deviceIndex, kvCacheType);
    }

    public ModelOptions withMaxSequences(int n) {
        return new ModelOptions(backend, threads, contextLength, kvCacheTokens, maxBatchTokens, n, maxWaitingRequests, prefixCaching, prefillChunkTokens, prefillStepMillis, deviceIndex, kvCacheType);
    }

    public ModelOptions withPrefixCaching(boolean on) {
        return new ModelOptions(backend, threads, contextLength, kvCacheTokens, maxBatchTokens, maxSequences, maxWaitingRequests, on, prefillChunkTokens, prefillStepMillis, deviceIndex, kvCacheType);
    }

    public ModelOptions withPrefillChunkTokens(int n) {
        return new ModelOptions(backend, threads, contextLength, kvCacheTokens, maxBatchTokens, maxSequences, maxWaitingRequests, prefixCaching, n, prefillStepMillis, deviceIndex, kvCacheType);
    }

    public ModelOptions withPrefillStepMillis(int millis) {
        return new ModelOptions(backend, threads, contextLength, kvCacheTokens, maxBatchTokens, maxSequences, maxWaitingRequests, prefixCaching, prefillChunkTokens, millis, deviceIndex, kvCacheType);
    }

    public ModelOptions withMaxWaitingRequests(int n) {
        return new ModelOptions(backend, threads, contextLength, kvCacheTokens, maxBatchTokens, maxSequences, n, prefixCaching, prefillChunkTokens, prefillStepMillis, deviceIndex, kvCacheType);
    }

    /** Which GPU a GPU backend uses (CUDA device ordinal). */
    public ModelOptions withDeviceIndex(int n) {
        return new ModelOptions(backend, threads, contextLength, kvCacheTokens, maxBatchTokens, maxSequences, maxWaitingRequests, prefixCaching, prefillChunkTokens, prefillStepMillis, n, kvCacheType);
    }

    /** How the KV cache stores keys and values: F32, or F16 for half the memory and bandwidth. */
    public ModelOptions withKvCacheType(DType type) {
        return new ModelOptions(backend, threads, contextLength, kvCacheTokens, maxBatchTokens, maxSequences, maxWaitingRequests, prefixCaching, prefillChunkTokens, prefillStepMillis, deviceIndex, type);
    }
}
