package dev.peregrine;

/**
 * A snapshot of a {@link Generator}'s activity since the model was loaded.
 *
 * @param runningSequences        sequences in the running batch now
 * @param waitingRequests         requests queued for admission now
 * @param kvBlocksUsed            KV-cache blocks in use now (by running requests and open sessions)
 * @param kvBlocksTotal           KV-cache capacity in blocks
 * @param kvBlockSize             positions per block
 * @param steps                   forward steps run
 * @param lastBatchTokens         tokens in the most recent step
 * @param meanBatchTokens         mean tokens per step
 * @param promptTokens            prompt tokens evaluated (recomputation after preemption included)
 * @param generatedTokens         tokens generated
 * @param generationTokensPerSecond generated tokens per second of time spent in forward steps
 * @param meanTimeToFirstTokenMillis mean time from submission to the first token, over requests that got one
 * @param completedRequests       requests that finished (any finish reason)
 * @param rejectedRequests        requests refused because the waiting queue was full
 * @param preemptions             times a running sequence was evicted to free KV blocks
 * @param interleavedSteps        steps run between two layers of a prompt-only step, for requests
 *                                that arrived while it ran (counted in {@code steps} too)
 * @param kvBlocksCachedIdle      unreferenced blocks kept because they hold a cached prompt prefix
 *                                (reusable, and evicted least-recently-used first when blocks run out)
 * @param prefixCacheHitTokens    prompt tokens whose keys and values were reused instead of computed
 * @param speculation             speculative decoding over all requests (see {@link Speculation})
 */
public record GeneratorMetrics(
        int runningSequences,
        int waitingRequests,
        int kvBlocksUsed,
        int kvBlocksTotal,
        int kvBlockSize,
        long steps,
        int lastBatchTokens,
        double meanBatchTokens,
        long promptTokens,
        long generatedTokens,
        double generationTokensPerSecond,
        double meanTimeToFirstTokenMillis,
        long completedRequests,
        long rejectedRequests,
        long preemptions,
        long interleavedSteps,
        int kvBlocksCachedIdle,
        long prefixCacheHitTokens,
        SpeculationStats speculation) {
}
