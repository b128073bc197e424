package dev.peregrine.engine;

import dev.peregrine.GeneratorMetrics;
import dev.peregrine.SpeculationStats;
import dev.peregrine.kv.KvCache;
import java.util.concurrent.atomic.AtomicLong;

/** Counters the scheduler updates and any thread may read. */
final class Metrics {
    final AtomicLong steps = new AtomicLong();
    /** Decoding steps of speculating requests that did not draft because speculation was timed slower. */
    final AtomicLong speculationPlainSteps = new AtomicLong();
    final AtomicLong batchTokens = new AtomicLong();
    final AtomicLong stepNanos = new AtomicLong();
    final AtomicLong promptTokens = new AtomicLong();
    final AtomicLong generatedTokens = new AtomicLong();
    final AtomicLong firstTokens = new AtomicLong();
    final AtomicLong firstTokenNanos = new AtomicLong();
    final AtomicLong completed = new AtomicLong();
    final AtomicLong rejected = new AtomicLong();
    final AtomicLong preemptions = new AtomicLong();
    final AtomicLong interleavedSteps = new AtomicLong();
    final AtomicLong draftedTokens = new AtomicLong();
    final AtomicLong acceptedTokens = new AtomicLong();
    final AtomicLong verifications = new AtomicLong();
    final AtomicLong forwardPassesSaved = new AtomicLong();
    private volatile int lastBatchTokens;

    void recordStep(int tokens, long nanos) {
        steps.incrementAndGet();
        batchTokens.addAndGet(tokens);
        stepNanos.addAndGet(nanos);
        lastBatchTokens = tokens;
    }

    void recordFirstToken(long nanosSinceSubmit) {
        firstTokens.incrementAndGet();
        firstTokenNanos.addAndGet(nanosSinceSubmit);
    }

    void recordSpeculation(int drafted, int accepted, int saved) {
        draftedTokens.addAndGet(drafted);
        acceptedTokens.addAndGet(accepted);
        verifications.incrementAndGet();
        forwardPassesSaved.addAndGet(saved);
    }

    GeneratorMetrics snapshot(int running, int waiting, KvCache kv) {
        long s = steps.get();
        long ft = firstTokens.get();
        long busy = stepNanos.get();
        return new GeneratorMetrics(running, waiting, kv.usedBlocks(), kv.totalBlocks(), kv.blockSize(), s,
                lastBatchTokens, s == 0 ? 0 : (double) batchTokens.get() / s, promptTokens.get(),
                generatedTokens.get(), busy == 0 ? 0 : generatedTokens.get() * 1e9 / busy,
                ft == 0 ? 0 : firstTokenNanos.get() / 1e6 / ft, completed.get(), rejected.get(), preemptions.get(), interleavedSteps.get(),
                kv.cachedIdleBlocks(), kv.prefixHitTokens(), new SpeculationStats(draftedTokens.get(),
                acceptedTokens.get(), verifications.get(), forwardPassesSaved.get(), speculationPlainSteps.get()));
    }
}
