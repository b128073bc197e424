package dev.peregrine.engine;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GeneratedToken;
import dev.peregrine.GenerationConfig;
import dev.peregrine.GeneratorMetrics;
import dev.peregrine.PeregrineException;
import dev.peregrine.RequestRejectedException;
import dev.peregrine.kv.KvCache;
import dev.peregrine.kv.KvCacheFullException;
import dev.peregrine.model.LlamaGraph;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BatchLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.Condition;
import java.util.concurrent.locks.LockSupport;
import java.util.concurrent.locks.ReentrantLock;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Continuous batching: one step loop per model, on its own thread, runs every active request
 * together. Each step it admits waiting requests (by {@link GenerationConfig#priority}, then first
 * come, first served) while the KV cache has room, builds one ragged batch — one token for every
 * decoding sequence, then chunks of the prompts being prefilled up to the token budget — runs one
 * forward pass, and samples each sequence that got logits with its own config and random
 * generator (from each row's best candidates, selected by the backend, when every row's sampling
 * allows it; see {@link #setCandidateSampling}). Requests join and leave at every step. When the KV cache runs
 * out, the running request of the lowest priority (the newest of those) is preempted: its blocks
 * are freed and it is recomputed from its tokens later, so no request is lost or corrupted. A
 * waiting request of higher priority than running ones preempts them for the room or the batch
 * place it needs, as vLLM's priority scheduling does.
 *
 * <p>A step of prompts only (nothing decoding) may pause between two layers: requests that
 * arrived since it started are admitted and run as a step of their own in the pause
 * ({@link #interleave}), after which the paused step goes on from where it stopped. Prompts
 * evaluated with nobody else around therefore take whole chunks, the cheapest per token, without
 * holding up a newcomer's first token for the length of the chunk. On a model where even the least
 * chunk outlasts the step target, prompts are not mixed into decoding steps either: the prompt step
 * takes the whole chunk and the decoding requests step in its pauses, each time the target has
 * passed ({@link #deferDecoding}).
 *
 * <p>Speculative decoding: before building the batch, each decoding request that speculates (and
 * whose batch is small enough, see {@link Speculator}) gets a draft of k tokens, appended to its
 * sequence; the batch then evaluates the last token and the draft as one span with logits for
 * all k + 1 positions, and {@link Generation#acceptDrafts} keeps what the model agrees with.
 * Draft models run through {@link DraftModelRunner}s, all of a step's requests together, under
 * the draft model's {@link #runExclusive} lock; this scheduler holds no lock of its own while
 * drafting, so two models drafting for each other cannot deadlock.
 */
public final class Scheduler implements AutoCloseable {
    /**
     * Prompt tokens per step a prefill always gets: the least chunk, and what a prompt skipped in
     * the previous step (for a shorter one that completed) gets in the next.
     */
    static final int MIN_PREFILL_PROGRESS = 16;
    /**
     * The least chunk of a prompt step that may pause (see {@link #wholeChunk}): smaller chunks
     * stream every weight for fewer tokens (on the CPU, 128-token chunks cost up to 1.2x per token
     * what 512-token ones do, smollm2-135m Q8_0; 16-token ones 1.5x).
     */
    static final int WHOLE_CHUNK_FLOOR = 128;
    /**
     * Most prompt tokens per step for a request that scores its prompt: each needs a logits row
     * (64 rows of a 128K vocabulary are 32 MB).
     */
    public static final int PROMPT_LOGPROB_CHUNK = 64;
    private static final Logger LOG = LoggerFactory.getLogger(Scheduler.class);
    /** How long close() waits for the loop's current step before it interrupts a blocking host callback. */
    private static final long CLOSE_NUDGE_MILLIS = 5_000;
    /** Whether the loop is in a host's Drafter, which close() may interrupt. */
    private volatile boolean inHostCallback;
    /** How long the loop sleeps while nothing runs and the first waiting request waits for sessions' calls. */
    private static final long WAIT_FOR_SESSIONS_NANOS = 200_000;
    /** Timeouts from this long on are no limit: their deadlines would not fit in nanoTime's arithmetic. */
    private static final Duration NO_DEADLINE_FROM = Duration.ofDays(36_500);
    /** Receives a request's results; called on the scheduler thread, so it must not block. */
    public interface Sink {
        void onToken(GeneratedToken token);

        void onComplete(Completion completion);

        void onError(RuntimeException error);
    }

    /** A submitted generation. */
    public final class Request {
        private final Generation generation;
        private final boolean ownsSequence;
        private final Sink sink;
        private final long submittedNanos = System.nanoTime();
        /** Submission order: first come, first served among requests of one priority. */
        private final long arrival;
        private final int priority;
        private final long deadlineNanos;
        private volatile boolean cancelled;
        private boolean firstTokenSeen;
        private boolean inStep;
        /** In a step that paused between layers for other steps (see {@link #interleave}): those leave it alone. */
        private boolean inPausedStep;
        /** Whether this prefill got no tokens in the previous step (a shorter prompt completed in it). */
        private boolean skippedLastStep;
        private int drafted; // draft tokens appended to the sequence for this step

        private Request(Generation generation, boolean ownsSequence, Sink sink, long arrival) {
            this.generation = generation;
            this.ownsSequence = ownsSequence;
            this.sink = sink;
            this.arrival = arrival;
            this.priority = generation.config().priority();
            // A century or more is no limit (a deadline far enough to overflow nanoTime's arithmetic).
            Duration limit = generation.config().timeout();
            long timeout = limit.compareTo(NO_DEADLINE_FROM) >= 0 ? 0 : limit.toNanos();
            this.deadlineNanos = timeout == 0 ? 0 : submittedNanos + timeout;
        }

        /** Ends the request at the next step; it completes with {@link FinishReason#CANCELLED}. */
        public void cancel() {
            cancelled = true;
            wakeUp();
        }

        private SequenceState seq() {
            return generation.sequence();
        }

        /** Whether this request goes before {@code other}: a lower priority value, else an earlier arrival. */
        private boolean before(Request other) {
            return priority != other.priority ? priority < other.priority : arrival < other.arrival;
        }
    }

    private final LlamaGraph graph;
    private final KvCache kv;
    private final int vocabularySize;
    /** The token ids sampling chooses from: the tokenizer's, which a padded embedding table may exceed. */
    private final int sampledVocabularySize;
    private final int maxBatchTokens;
    private final int maxSequences;
    private final int maxWaiting;
    private final boolean prefixCaching;
    private final int prefillChunkTokens;
    /**
     * How long a step that prefills should take, 0 for fixed chunks. A request that arrives waits
     * for the step in flight, so its time to first token is this plus its own prefill: the chunk of
     * a long prompt is sized to this from the measured cost per token (between
     * {@link #MIN_PREFILL_PROGRESS} and the configured chunk), rather than fixed in tokens, which
     * is 10x too long on a slow model and needlessly short on a fast one.
     */
    private final long prefillStepNanos;
    /** Measured time per token of steps that prefill (moving average), 0 until the first such step. */
    private double prefillNanosPerToken;
    /** The step being built or run. */
    private Step step;
    /**
     * The step run inside another's pause: a prompt step that pauses between layers for newly
     * arrived requests keeps its own batch and bookkeeping while theirs runs.
     */
    private Step spareStep;
    /** Time spent in steps run inside another step's pause (not that step's own cost). */
    private long interleavedNanos;
    /** When the last step with decoding tokens ended (see {@link #deferDecoding}). */
    private long lastDecodingStepEnd;
    /** Whether steps may sample from the backend's best candidates (see {@link #setCandidateSampling}). */
    private volatile boolean candidateSampling = true;
    private volatile long candidateSteps;
    private final Thread thread;

    /** Held while this model's graph or backend is in use: by this scheduler's steps and by {@link #runExclusive}. */
    private final ReentrantLock stepLock = new ReentrantLock();
    private final ReentrantLock lock = new ReentrantLock();
    private final Condition workArrived = lock.newCondition();
    private final ConcurrentLinkedQueue<Request> incoming = new ConcurrentLinkedQueue<>();
    private final AtomicInteger queued = new AtomicInteger();
    private final AtomicLong arrivals = new AtomicLong();
    /** Open sessions' sequences, whose KV blocks may be dropped while the sessions are idle. */
    private final IdleSequences idleSequences = new IdleSequences();
    private volatile boolean closed;

    // Owned by the scheduler thread.
    /** In admission order: by priority, then arrival ({@link Request#before}). */
    private final List<Request> waiting = new ArrayList<>();
    /** By priority, then admission: the last is the first to preempt. */
    private final List<Request> running = new ArrayList<>();
    private final List<Request> finished = new ArrayList<>();
    private final List<Request> prefilling = new ArrayList<>();
    private final List<DraftModelRunner> draftRunners = new ArrayList<>();

    private final Metrics metrics = new Metrics();
    private volatile int runningCount;

    /**
     * @param vocabularySize floats per logits row (the model's vocabulary)
     * @param sampledVocabularySize the token ids sampling chooses from (the tokenizer's vocabulary)
     * @param maxBatchTokens most tokens evaluated per step (the graph must hold that many)
     * @param maxSequences   most sequences running at once
     * @param maxWaiting     most requests waiting for admission; more are rejected
     * @param prefixCaching  reuse the KV blocks of identical prompt prefixes across requests
     * @param prefillChunkTokens most prompt tokens evaluated per step (bounds how long a step takes,
     *                       and so how long a new request waits for its first token)
     * @param prefillStepMillis how long a step that prefills should take; 0 for chunks of
     *                       prefillChunkTokens whatever they cost
     */
    public Scheduler(LlamaGraph graph, KvCache kv, int vocabularySize, int sampledVocabularySize, int maxBatchTokens,
                     int maxSequences, int maxWaiting, boolean prefixCaching, int prefillChunkTokens, int prefillStepMillis,
                     String name) {
        if (maxSequences > maxBatchTokens) {
            throw new IllegalArgumentException("maxSequences " + maxSequences + " exceeds maxBatchTokens " + maxBatchTokens);
        }
        if (sampledVocabularySize < 1 || sampledVocabularySize > vocabularySize) {
            throw new IllegalArgumentException("sampledVocabularySize must be in 1.." + vocabularySize + ", got "
                    + sampledVocabularySize);
        }
        this.graph = graph;
        this.kv = kv;
        this.vocabularySize = vocabularySize;
        this.sampledVocabularySize = sampledVocabularySize;
        this.maxBatchTokens = maxBatchTokens;
        this.maxSequences = maxSequences;
        this.maxWaiting = maxWaiting;
        this.prefixCaching = prefixCaching;
        this.prefillChunkTokens = prefillChunkTokens;
        this.prefillStepNanos = prefillStepMillis * 1_000_000L;
        this.step = new Step(new BatchLayout(kv.blockSize()), new LogitRows(vocabularySize, maxSequences, maxBatchTokens));
        // Steps in a pause are those of new requests, mostly one logits row each: grown if need be.
        this.spareStep = new Step(new BatchLayout(kv.blockSize()), new LogitRows(vocabularySize, 1, maxBatchTokens));
        this.thread = Thread.ofPlatform().daemon().name("peregrine-scheduler-" + name).unstarted(this::loop);
        thread.start();
    }

    /**
     * Queues a generation. The request's sequence must hold its prompt; if {@code ownsSequence}
     * the scheduler closes the sequence when the request ends.
     *
     * @throws RequestRejectedException when the waiting queue is full
     */
    public Request submit(Generation generation, boolean ownsSequence, Sink sink) {
        if (closed) {
            throw new IllegalStateException("the model is closed");
        }
        // Made before it takes a place in the queue, so that a request that cannot be made takes none.
        Request r = new Request(generation, ownsSequence, sink, arrivals.getAndIncrement());
        if (queued.incrementAndGet() > maxWaiting) {
            queued.decrementAndGet();
            metrics.rejected.incrementAndGet();
            throw new RequestRejectedException("the waiting queue is full (" + maxWaiting
                    + " requests); try again later or raise ModelOptions.maxWaitingRequests");
        }
        incoming.add(r);
        // Closed meanwhile: the loop may have taken its last look at the incoming queue. Whoever
        // takes the request out fails it: this caller here, else the loop.
        if (closed && incoming.remove(r)) {
            queued.decrementAndGet();
            throw new IllegalStateException("the model is closed");
        }
        wakeUp();
        return r;
    }

    /** Whether a {@link #submit} now would be refused for want of room in the waiting queue. */
    public boolean waitingQueueFull() {
        return queued.get() >= maxWaiting;
    }

    public KvCache kvCache() {
        return kv;
    }

    /** Where sessions register their sequences, so that their blocks can be taken back while they are idle. */
    public IdleSequences idleSequences() {
        return idleSequences;
    }

    int maxBatchTokens() {
        return maxBatchTokens;
    }

    int vocabularySize() {
        return vocabularySize;
    }

    int sampledVocabularySize() {
        return sampledVocabularySize;
    }

    LlamaGraph graph() {
        return graph;
    }

    /**
     * Whether a step whose logit rows can all be sampled from their best candidates
     * ({@link Generation#candidatesNeeded}) asks the backend for only those instead of whole rows
     * (on by default). The tokens are the same either way; off is for comparing the two paths.
     */
    public void setCandidateSampling(boolean enabled) {
        candidateSampling = enabled;
    }

    /** How many steps so far sampled from candidates instead of whole logits rows. */
    public long candidateSteps() {
        return candidateSteps;
    }

    /**
     * Runs {@code work}, which uses this model's graph, KV cache and backend for another model's
     * scheduler (speculative drafting), while this scheduler's own steps wait.
     *
     * @throws IllegalStateException if the model is closed
     */
    void runExclusive(Runnable work) {
        stepLock.lock();
        try {
            if (closed) {
                throw new IllegalStateException("the draft model is closed");
            }
            work.run();
        } finally {
            stepLock.unlock();
        }
    }

    public GeneratorMetrics metrics() {
        return metrics.snapshot(runningCount, queued.get(), kv);
    }

    private void wakeUp() {
        lock.lock();
        try {
            workArrived.signal();
        } finally {
            lock.unlock();
        }
    }

    private void loop() {
        while (true) {
            lock.lock();
            try {
                while (!closed && incoming.isEmpty() && waiting.isEmpty() && running.isEmpty()) {
                    workArrived.awaitUninterruptibly();
                }
            } finally {
                lock.unlock();
            }
            if (closed) {
                break;
            }
            try {
                step();
            } catch (RuntimeException | Error e) {
                // A failed step (e.g. a backend error) fails the requests in it, not the loop.
                RuntimeException error = e instanceof RuntimeException re ? re
                        : new PeregrineException("forward step failed: " + e, e);
                for (Request r : running) {
                    dropDrafts(r);
                }
                for (Request r : List.copyOf(running)) {
                    fail(r, error);
                }
                running.clear();
                runningCount = 0;
            }
        }
        IllegalStateException error = new IllegalStateException("the model is closed");
        drainIncoming();
        for (Request r : running) {
            fail(r, error);
        }
        for (Request r : waiting) {
            fail(r, error);
        }
        running.clear();
        waiting.clear();
        runningCount = 0; // the metrics of a closed model count nothing running or waiting
        queued.set(0);
    }

    private void step() {
        drainIncoming();
        endCancelledAndExpired();
        admit();
        if (running.isEmpty()) {
            if (!waiting.isEmpty()) {
                // The first waiting request waits for room held by sessions in the middle of a call.
                LockSupport.parkNanos(WAIT_FOR_SESSIONS_NANOS);
            }
            return;
        }
        long t0 = System.nanoTime(); // drafting counts as step time: it is part of what a token costs
        long stepNanos;
        draft();
        stepLock.lock();
        try {
            buildBatch(true);
            if (step.layout.tokenCount == 0) {
                return;
            }
            interleavedNanos = 0;
            long forwardStart = System.nanoTime();
            // A step with no decoding token may pause between layers for requests that arrive
            // meanwhile, so that it can be a long prompt's whole chunk without delaying them.
            forward(step.prefillOnly ? pause : null);
            long end = System.nanoTime() - interleavedNanos;
            stepNanos = end - t0;
            metrics.recordStep(step.layout.tokenCount, stepNanos);
            if (step.prefillTokens > 0) {
                // Cost per token of steps that prefill, fixed costs included, so that the chunk
                // converges to the size whose step takes the target (an average, not the last step's noise).
                double perToken = (double) (end - forwardStart) / step.layout.tokenCount;
                prefillNanosPerToken = prefillNanosPerToken == 0 ? perToken : 0.7 * prefillNanosPerToken + 0.3 * perToken;
            }
        } finally {
            stepLock.unlock();
        }
        finishStep(stepNanos);
    }

    private void forward(LlamaGraph.Pause pause) {
        int candidates = candidatesPerRow();
        if (candidates > 0) {
            graph.forwardCandidates(step.layout, sampledVocabularySize,
                    step.logitRows.candidateRows(step.layout.logitCount, candidates), pause);
            candidateSteps++;
        } else {
            graph.forward(step.layout, step.logitRows.fullRows(step.layout.logitCount), pause);
        }
    }

    /** What the engine does in a step's pause between layers: a step for requests that arrived meanwhile. */
    private final LlamaGraph.Pause pause = new LlamaGraph.Pause() {
        @Override
        public boolean wanted() {
            return !incoming.isEmpty()
                    || step.decodingInPauses && System.nanoTime() - lastDecodingStepEnd >= prefillStepNanos;
        }

        @Override
        public void run() {
            interleave();
        }
    };

    /**
     * A step inside the pause of the current one (a prefill-only step, see {@link #buildBatch}):
     * admits the requests that arrived, and runs their prompts (and any other request not in the
     * paused step) as a step of their own, so that a long prompt's chunk does not hold up their
     * first tokens. The paused step's requests are left alone: not cancelled, preempted or
     * scheduled until it has finished.
     */
    private void interleave() {
        long start = System.nanoTime();
        Step paused = step;
        for (Request r : paused.requests) {
            r.inPausedStep = true;
        }
        step = spareStep;
        try {
            drainIncoming();
            endCancelledAndExpired();
            admit();
            buildBatch(false);
            if (step.layout.tokenCount > 0) {
                long t0 = System.nanoTime();
                forward(null);
                metrics.recordStep(step.layout.tokenCount, System.nanoTime() - t0);
                metrics.interleavedSteps.incrementAndGet();
                finishStep(-1);
            }
            // Requests that now decode (the newcomers, once their prompts are done) step in the later pauses.
            for (Request r : running) {
                paused.decodingInPauses |= !r.inPausedStep && r.seq().pendingTokens() == 1;
            }
        } finally {
            spareStep = step;
            step = paused;
            for (Request r : paused.requests) {
                r.inPausedStep = false;
            }
            interleavedNanos += System.nanoTime() - start;
        }
    }

    /**
     * After the forward: the step's sequences advance, their tokens are sampled, finished requests
     * end. {@code stepNanos} (-1 for a step in a pause, which drafts nothing) is what the step took,
     * drafting included: each speculating request's decoding step is timed for its governor.
     */
    private void finishStep(long stepNanos) {
        Step s = step;
        if (s.decodingTokens > 0) {
            lastDecodingStepEnd = System.nanoTime();
        }
        for (int i = 0; i < s.requests.size(); i++) {
            Request r = s.requests.get(i);
            int stepTokens = s.newLength[i] - r.seq().kv().length();
            r.seq().kv().advance(s.newLength[i]);
            Speculator speculator = r.generation.speculator();
            // A decoding step (not a prompt's last chunk): one token, or the drafts and one more.
            boolean timedDecoding = speculator != null && stepNanos >= 0 && s.logitRow[i] >= 0 && stepTokens == 1 + r.drafted;
            boolean speculated = r.drafted > 0;
            if (s.promptRow[i] >= 0) {
                r.generation.scorePrompt(s.logitRows, s.promptRow[i], stepTokens, s.newLength[i] - stepTokens);
            }
            // A prompt scored for its log-probabilities may end there (maxTokens 0, or a full context).
            if (s.logitRow[i] >= 0 && (r.drafted > 0 || !r.generation.reachedLimit())) {
                if (!r.firstTokenSeen) {
                    r.firstTokenSeen = true;
                    metrics.recordFirstToken(System.nanoTime() - r.submittedNanos);
                }
                if (r.drafted > 0) {
                    int drafted = r.drafted;
                    r.drafted = 0;
                    int handedOut = r.generation.acceptDrafts(s.logitRows, s.logitRow[i], drafted, r.sink);
                    metrics.generatedTokens.addAndGet(handedOut);
                    metrics.recordSpeculation(speculator.lastDrafted(), speculator.lastAccepted(), speculator.lastSaved());
                } else {
                    GeneratedToken token = r.generation.accept(s.logitRows, s.logitRow[i]);
                    if (token != null) {
                        metrics.generatedTokens.incrementAndGet();
                        r.sink.onToken(token);
                    }
                }
            }
            if (timedDecoding && speculator.recordStepTime(stepNanos, speculated ? speculator.lastAccepted() + 1 : 1, speculated)) {
                metrics.speculationPlainSteps.incrementAndGet();
            }
            // After verification, so that rejected drafts never reach the prefix index.
            if (prefixCaching) {
                r.seq().kv().indexFullBlocks(r.seq().tokenArray());
            }
        }
        // Take finished requests out of the batch before telling their callers, so that what a
        // caller then reads from the metrics no longer counts them.
        finished.clear();
        for (Request r : running) {
            if (r.generation.isFinished()) {
                finished.add(r);
                releaseSequence(r);
            }
        }
        running.removeAll(finished);
        runningCount = running.size();
        for (Request r : finished) {
            complete(r);
        }
    }

    /**
     * Candidates per logit row that let every request of the step sample exactly as from whole
     * rows (the most any of them needs), or 0 when some request needs whole rows, needs more than
     * a backend selects ({@link Backend#MAX_CANDIDATES}), or the step wants no logits.
     */
    private int candidatesPerRow() {
        if (!candidateSampling || step.layout.logitCount == 0) {
            return 0;
        }
        int most = 0;
        for (int i = 0; i < step.requests.size(); i++) {
            if (step.promptRow[i] >= 0) {
                return 0; // a prompt being scored needs whole rows
            }
            if (step.logitRow[i] >= 0) {
                Request r = step.requests.get(i);
                int needed = r.generation.candidatesNeeded(r.drafted > 0);
                if (needed == 0) {
                    return 0;
                }
                most = Math.max(most, needed);
            }
        }
        return most <= Backend.MAX_CANDIDATES ? most : 0;
    }

    private void drainIncoming() {
        for (Request r; (r = incoming.poll()) != null; ) {
            enqueue(r);
        }
    }

    /** Puts {@code r} in the waiting list at its place (usually the end: searched from there). */
    private void enqueue(Request r) {
        int at = waiting.size();
        while (at > 0 && r.before(waiting.get(at - 1))) {
            at--;
        }
        waiting.add(at, r);
    }

    /** Adds {@code r} to the running list after every request of its priority or a lower value. */
    private void startRunning(Request r) {
        int at = running.size();
        while (at > 0 && running.get(at - 1).priority > r.priority) {
            at--;
        }
        running.add(at, r);
        runningCount = running.size();
    }

    /**
     * The running request to preempt so that {@code r} can be admitted: the last (lowest priority,
     * newest) of those with a higher priority value than r's, outside a paused step; null if none.
     */
    private Request lowerPriorityThan(Request r) {
        for (int i = running.size() - 1; i >= 0 && running.get(i).priority > r.priority; i--) {
            if (!running.get(i).inPausedStep) {
                return running.get(i);
            }
        }
        return null;
    }

    /**
     * Drops the cached keys and values that a waiting request other than {@code r} holds (a
     * session's, or a reused prefix), the last in the waiting order first: it evaluates them again
     * when admitted. Returns whether there was one.
     */
    private boolean evictWaiting(Request r) {
        for (int i = waiting.size() - 1; i >= 0; i--) {
            Request w = waiting.get(i);
            if (w != r && w.seq().kv().blockCount() > 0) {
                w.seq().evict();
                return true;
            }
        }
        return false;
    }

    private void endCancelledAndExpired() {
        long now = System.nanoTime();
        finished.clear();
        for (Iterator<Request> it = running.iterator(); it.hasNext(); ) {
            Request r = it.next();
            if (!r.inPausedStep && cancelledOrExpired(r, now) != null) {
                releaseSequence(r);
                it.remove();
                finished.add(r);
            }
        }
        runningCount = running.size();
        for (Iterator<Request> it = waiting.iterator(); it.hasNext(); ) {
            Request r = it.next();
            if (cancelledOrExpired(r, now) != null) {
                it.remove();
                queued.decrementAndGet();
                finished.add(r);
            }
        }
        for (Request r : finished) {
            GeneratedToken rest = r.generation.abort(cancelledOrExpired(r, now));
            if (rest != null) {
                r.sink.onToken(rest);
            }
            complete(r);
        }
    }

    private static FinishReason cancelledOrExpired(Request r, long now) {
        return r.cancelled ? FinishReason.CANCELLED
                : r.deadlineNanos != 0 && now - r.deadlineNanos > 0 ? FinishReason.TIMEOUT : null;
    }

    /**
     * Moves waiting requests to running in their order (priority, then arrival) while the batch
     * has places and the KV cache room for their prompts, preempting running requests of lower
     * priority for them.
     */
    private void admit() {
        int promised = 0; // blocks that the prompts admitted in this pass will take
        while (!waiting.isEmpty()) {
            Request r = waiting.getFirst();
            if (r.generation.reachedLimit()) {
                waiting.removeFirst();
                queued.decrementAndGet();
                complete(r);
                continue;
            }
            if (running.size() >= maxSequences) {
                Request victim = lowerPriorityThan(r);
                if (victim == null) {
                    break;
                }
                preempt(victim);
                continue;
            }
            SequenceState seq = r.seq();
            if (prefixCaching && seq.kv().length() == 0 && !r.generation.wantsPromptRows()) {
                try {
                    seq.kv().reuseCachedPrefix(seq.tokenArray(), seq.length());
                } catch (RuntimeException e) {
                    // This request's own state is unusable (e.g. its session's sequence was closed):
                    // it fails alone, or the loop would meet it again at every step.
                    waiting.removeFirst();
                    queued.decrementAndGet();
                    fail(r, e);
                    continue;
                }
            }
            int blocks = blocksFor(seq.length() + 1);
            int needed = blocks - seq.kv().blockCount();
            if (blocks > kv.totalBlocks()) {
                waiting.removeFirst();
                queued.decrementAndGet();
                if (r.generation.hasOutput()) {
                    // It grew to fill the whole cache: it ends as at a full context (llama.cpp's
                    // context is its KV cache), with what it generated, rather than failing.
                    GeneratedToken rest = r.generation.abort(FinishReason.CONTEXT_FULL);
                    if (rest != null) {
                        r.sink.onToken(rest);
                    }
                    complete(r);
                } else {
                    fail(r, new KvCacheFullException("a sequence of " + seq.length() + " tokens needs " + blocks
                            + " KV blocks but the cache has only " + kv.totalBlocks() + "; raise ModelOptions.kvCacheTokens"));
                }
                continue;
            }
            if (needed > kv.freeBlocks() - promised) {
                if (idleSequences.evictOne() || evictWaiting(r)) {
                    continue; // an idle session's blocks, or a waiting one's, before any running request's
                }
                Request victim = lowerPriorityThan(r);
                if (victim != null) {
                    preempt(victim); // may free fewer blocks than it held (shared prefixes): try again
                    continue;
                }
                // The rest is held by running requests, which will free it, or by sessions in the
                // middle of a call, which will leave them idle or waiting (and so evictable) when
                // the call ends or submits its request: wait for either.
                if (r.ownsSequence) {
                    seq.evict(); // don't hold reused blocks while waiting
                }
                break; // in order: later requests wait behind this one
            }
            waiting.removeFirst();
            queued.decrementAndGet();
            r.generation.admitted();
            startRunning(r);
            promised += Math.max(0, needed);
        }
    }

    private int blocksFor(int tokens) {
        return (tokens + kv.blockSize() - 1) / kv.blockSize();
    }

    /**
     * Drafts for the decoding requests that speculate this step and appends the drafts to their
     * sequences. The drafts share the step's token budget; a request speculates only while the
     * batch holds at most its speculation's {@code maxBatchSequences} sequences.
     */
    private void draft() {
        int decoding = 0;
        for (Request r : running) {
            if (r.seq().pendingTokens() == 1) {
                decoding++;
            }
        }
        int spare = maxBatchTokens - decoding;
        for (int i = 0; i < running.size() && spare > 0; i++) {
            Request r = running.get(i);
            Speculator s = r.generation.speculator();
            if (s == null || r.seq().pendingTokens() != 1 || running.size() > s.maxBatchSequences() || !s.speculatesNow()) {
                continue;
            }
            int k = Math.min(r.generation.draftLimit(), spare);
            if (k <= 0) {
                continue;
            }
            if (s.draftModel() != null) {
                s.wanted = k;
                if (runnerFor(s.draftModel()).add(s)) {
                    spare -= k;
                }
                continue;
            }
            try {
                int drafted;
                inHostCallback = true;
                try {
                    drafted = s.proposeWithDrafter(k);
                } finally {
                    inHostCallback = false;
                    Thread.interrupted(); // close()'s nudge, if any, was for the callback only
                }
                spare -= appendDrafts(r, drafted);
            } catch (RuntimeException | Error e) {
                // The host's drafter failed: only its request fails.
                failRunning(r, new PeregrineException("the drafter failed: " + e, e));
                i--;
            }
        }
        for (DraftModelRunner runner : draftRunners) {
            try {
                runner.run(candidateSampling);
                for (Speculator s : runner.work()) {
                    appendDrafts(requestOf(s), s.draft().size());
                }
            } catch (RuntimeException | Error e) {
                for (Speculator s : runner.work()) {
                    if (runner.draftModel().closed) {
                        // The host closed the draft model: speculation only ever changed the speed,
                        // so its requests go on decoding plainly.
                        s.stop();
                    } else {
                        failRunning(requestOf(s), new PeregrineException("drafting with the draft model failed: " + e, e));
                    }
                }
            } finally {
                runner.clear();
            }
        }
    }

    private DraftModelRunner runnerFor(Scheduler draftModel) {
        for (DraftModelRunner runner : draftRunners) {
            if (runner.draftModel() == draftModel) {
                return runner;
            }
        }
        DraftModelRunner runner = new DraftModelRunner(draftModel);
        draftRunners.add(runner);
        return runner;
    }

    private Request requestOf(Speculator s) {
        for (Request r : running) {
            if (r.generation.speculator() == s) {
                return r;
            }
        }
        throw new IllegalStateException("no running request drafts with " + s);
    }

    /** Appends the speculator's first {@code n} draft tokens to the request's sequence; returns n. */
    private static int appendDrafts(Request r, int n) {
        DraftBuffer draft = r.generation.speculator().draft();
        for (int j = 0; j < n; j++) {
            r.seq().append(draft.token(j));
        }
        r.drafted = n;
        return n;
    }

    /** Takes this step's drafts out of the request's sequence again (they were never evaluated). */
    private static void dropDrafts(Request r) {
        if (r.drafted > 0) {
            r.seq().rewind(r.drafted);
            r.drafted = 0;
        }
    }

    private void failRunning(Request r, RuntimeException error) {
        dropDrafts(r);
        running.remove(r);
        runningCount = running.size();
        fail(r, error);
    }

    /**
     * One token for every decoding sequence, then prompt chunks up to the prefill budget (sized so
     * that the step takes about {@link #prefillStepNanos}), by priority, then shortest remaining
     * prompt first, so that a short request arriving during a long prefill gets its first token
     * quickly. Decoding tokens go in priority order too, so when the cache runs out it is a request
     * of the lowest priority that is preempted, not one of a higher priority found later.
     * In a step where a prompt completes, longer prompts wait, which keeps that step (and the
     * caller's time to first token) short; a prompt that waited in the previous step gets at least
     * {@link #MIN_PREFILL_PROGRESS} tokens, so a long prompt progresses at least every other step.
     *
     * <p>A step with prompts only and nobody waiting ({@code mayPause}: not itself a step in a
     * pause) takes the whole configured chunk instead, and pauses between layers when a request
     * arrives (see {@link #interleave}): a prompt processed alone is not cut into small chunks,
     * which cost up to 1.5x as much per token, for requests that may never come. So does a prompt
     * step that leaves the decoding requests to its pauses ({@link #deferDecoding}).
     */
    private void buildBatch(boolean mayPause) {
        step.clear();
        prefilling.clear();
        for (Request r : running) {
            r.inStep = r.inPausedStep; // a paused step's requests are neither scheduled nor preempted
        }
        boolean deferDecoding = mayPause && deferDecoding();
        int decodingTokens = 0;
        for (int i = 0; i < running.size(); i++) {
            Request r = running.get(i);
            if (r.inPausedStep) {
                continue;
            }
            if (r.seq().pendingTokens() == 1 + r.drafted) {
                if (deferDecoding) {
                    step.decodingInPauses = true;
                    r.inStep = true; // not preempted for the prompt: it only waits for a pause
                    continue;
                }
                if (addToStep(r, 1 + r.drafted)) {
                    decodingTokens += 1 + r.drafted; // drafts may have been dropped for want of KV room
                } else if (i >= running.size() || running.get(i) != r) {
                    i--; // r was preempted (else it waits out this step)
                }
            } else {
                prefilling.add(r);
            }
        }
        step.decodingTokens = decodingTokens;
        step.prefillOnly = mayPause && decodingTokens == 0;
        boolean alone = step.prefillOnly && waiting.isEmpty() && incoming.isEmpty();
        boolean wholeChunk = alone || step.decodingInPauses;
        int budget = Math.min(maxBatchTokens - decodingTokens, wholeChunk ? wholeChunk() : prefillChunk());
        if (prefilling.isEmpty() || budget <= 0) {
            return;
        }
        prefilling.sort((x, y) -> x.priority != y.priority ? Integer.compare(x.priority, y.priority)
                : Integer.compare(x.seq().pendingTokens(), y.seq().pendingTokens()));
        // First those owed progress, then the rest by priority, shortest first.
        for (Request r : prefilling) {
            if (r.skippedLastStep && running.contains(r)) {
                budget -= prefill(r, Math.min(r.seq().pendingTokens(), Math.min(budget, MIN_PREFILL_PROGRESS)));
            }
        }
        boolean completesOne = false;
        for (Request r : prefilling) {
            if (r.inStep || !running.contains(r)) {
                continue; // owed progress above, or preempted while making room for an earlier one
            }
            int pending = r.seq().pendingTokens();
            boolean skip = completesOne || budget <= 0;
            r.skippedLastStep = skip && completesOne;
            if (skip) {
                continue;
            }
            int n = prefill(r, Math.min(pending, budget));
            budget -= n;
            completesOne = n == pending;
        }
    }

    /**
     * The prompt tokens of a step that may pause between layers (a prompt alone, or one whose
     * decoding requests step in its pauses): the configured chunk while one layer of such a step
     * takes at most a quarter of the step target (a request arriving meanwhile waits for the
     * layer's end: smollm2-135m Q8_0, `bench --ttft`, 128-token chunks 1.19x its idle time to first
     * token, 256 1.47x, 512 1.81x; pp512 726 / 787 / 828 tok/s), else fewer, down to
     * {@link #WHOLE_CHUNK_FLOOR}; the whole chunk before the cost is known (a GPU's first prompt
     * in one step, not split at a guess).
     */
    private int wholeChunk() {
        return chunkTaking(prefillStepNanos / 4 * graph.layers(), WHOLE_CHUNK_FLOOR);
    }

    /** The prompt tokens a step may hold: the configured chunk, cut to the step-time target once the cost is known. */
    private int prefillChunk() {
        return chunkTaking(prefillStepNanos, MIN_PREFILL_PROGRESS);
    }

    /**
     * The prompt tokens that take about {@code nanos} at the measured cost per token, between
     * {@code least} and the configured chunk (the configured chunk itself while there is no step
     * target or no measurement yet).
     */
    private int chunkTaking(long nanos, int least) {
        if (prefillStepNanos == 0 || prefillNanosPerToken == 0) {
            return prefillChunkTokens;
        }
        long fit = (long) (nanos / prefillNanosPerToken);
        return (int) Math.max(Math.min(least, prefillChunkTokens), Math.min(fit, prefillChunkTokens));
    }

    /**
     * Whether this step should hold prompts only, its decoding requests stepping in its pauses:
     * when even the least chunk ({@link #MIN_PREFILL_PROGRESS} tokens) takes longer than the
     * step target (a slow model), a step mixing decode tokens with prompt tokens would hold every
     * decoding request for that long at each token; instead the prompt takes the whole chunk and
     * the decoding requests get a step of their own between two of its layers each time the
     * target has passed. Not while any request speculates (its drafts are part of this step).
     */
    private boolean deferDecoding() {
        if (prefillStepNanos == 0 || prefillNanosPerToken * MIN_PREFILL_PROGRESS <= prefillStepNanos) {
            return false;
        }
        boolean prompts = false;
        for (Request r : running) {
            if (r.drafted > 0) {
                return false;
            }
            prompts |= !r.inPausedStep && r.seq().pendingTokens() > 1;
        }
        return prompts;
    }

    /** Adds up to {@code n} prompt tokens of {@code r} to the step; returns how many it added. */
    private int prefill(Request r, int n) {
        if (r.generation.wantsPromptRows()) {
            n = Math.min(n, PROMPT_LOGPROB_CHUNK);
        }
        if (n <= 0 || !addToStep(r, n)) {
            return 0;
        }
        r.skippedLastStep = false;
        step.prefillTokens += n;
        metrics.promptTokens.addAndGet(n);
        return n;
    }

    /**
     * Adds the next {@code n} pending tokens of {@code r} to the step, making KV room by
     * preempting the newest running requests of the lowest priority that are not in the step.
     * Returns false if {@code r} itself had to be preempted, or waits out this step (then it
     * stays running).
     */
    private boolean addToStep(Request r, int n) {
        SequenceState seq = r.seq();
        while (true) {
            try {
                seq.kv().reserve(n);
                break;
            } catch (KvCacheFullException e) {
                if (r.drafted > 0) {
                    // Never preempt anyone for a draft: decode without it.
                    dropDrafts(r);
                    n = 1;
                    continue;
                }
                if (idleSequences.evictOne()) {
                    continue; // an idle session's blocks, before any running request's
                }
                Request victim = newestOutsideStep();
                if (victim == r && heldInAPauseBelow(r)) {
                    // The room r lacks is held by a request of lower priority in a paused step,
                    // which no one may preempt until that step ends; r's next step will. (Were r
                    // preempted, its admission would preempt the other, both would be admitted
                    // again, and the same could happen for ever.)
                    return false;
                }
                preempt(victim);
                if (victim == r) {
                    return false;
                }
            }
        }
        int pending = seq.pendingTokens();
        int start = seq.kv().length();
        boolean wantsLogits = n == pending;
        // A prompt being scored wants a row at every position (promptLogprobs).
        boolean promptRows = r.generation.wantsPromptRows() && r.drafted == 0 && start + n <= r.generation.promptEnd();
        BatchLayout layout = step.layout;
        int s = layout.addSequence(seq.kv().blockTable(), seq.kv().blockCount());
        int firstLogitRow = layout.logitCount;
        for (int j = 0; j < n; j++) {
            // A verification span wants the logits of every position: the token before the draft and each draft token.
            layout.addToken(s, seq.token(start + j), start + j, promptRows || (wantsLogits && j >= n - 1 - r.drafted));
        }
        r.inStep = true;
        int samplingRow = promptRows ? firstLogitRow + n - 1 : firstLogitRow;
        step.add(r, start + n, wantsLogits ? samplingRow : -1, promptRows ? firstLogitRow : -1);
        return true;
    }

    /** Whether a running request of lower priority than {@code r} is in a paused step (and so cannot be preempted). */
    private boolean heldInAPauseBelow(Request r) {
        for (Request x : running) {
            if (x.inPausedStep && x.priority > r.priority) {
                return true;
            }
        }
        return false;
    }

    /**
     * The running request not in this step of the lowest priority, the most recently admitted of
     * those (there is always one: the caller's).
     */
    private Request newestOutsideStep() {
        for (int i = running.size() - 1; i >= 0; i--) {
            if (!running.get(i).inStep) {
                return running.get(i);
            }
        }
        throw new IllegalStateException("no request outside the step to preempt");
    }

    private void preempt(Request r) {
        dropDrafts(r);
        r.seq().evict();
        running.remove(r);
        runningCount = running.size();
        enqueue(r);
        queued.incrementAndGet();
        metrics.preemptions.incrementAndGet();
    }

    /** Gives back the KV blocks of a request's own sequence (a session keeps its sequence). */
    private static void releaseSequence(Request r) {
        if (r.ownsSequence) {
            r.seq().close();
        }
    }

    private void complete(Request r) {
        metrics.completed.incrementAndGet();
        releaseSequence(r);
        closeSpeculator(r);
        r.sink.onComplete(r.generation.completion());
    }

    private void fail(Request r, RuntimeException error) {
        releaseSequence(r);
        closeSpeculator(r);
        r.sink.onError(error);
    }

    /** Gives back a draft model's KV blocks held for the request. */
    private static void closeSpeculator(Request r) {
        Speculator s = r.generation.speculator();
        if (s != null) {
            s.close();
        }
    }

    /**
     * Refuses {@code action} (a call that waits for this scheduler, or closes it) on the scheduler's
     * own thread, where a host's {@code Drafter} runs: it would wait for itself, for ever.
     *
     * @throws IllegalStateException on the scheduler thread
     */
    public void requireOtherThread(String action) {
        if (Thread.currentThread() == thread) {
            throw new IllegalStateException("cannot " + action + " on the model's own scheduler thread (from a Drafter):"
                    + " it would wait for itself");
        }
    }

    /** Stops the loop after its current step; requests still queued or running fail. */
    @Override
    public void close() {
        closed = true;
        wakeUp();
        // The loop ends after its current step. The caller frees the backend next, so the wait may
        // not end early: an interrupted caller still waits (and keeps its interrupt).
        boolean interrupted = false;
        boolean nudged = false;
        long waitStart = System.nanoTime();
        while (thread.isAlive()) {
            try {
                thread.join(CLOSE_NUDGE_MILLIS);
            } catch (InterruptedException e) {
                interrupted = true;
            }
            if (!nudged && inHostCallback && System.nanoTime() - waitStart > CLOSE_NUDGE_MILLIS * 1_000_000L) {
                // Still in a host callback (a Drafter) after seconds: it is blocking. An interrupt
                // may wake it; a callback that ignores it keeps close() waiting. (A long step of
                // the engine's own is waited for, not interrupted.)
                LOG.warn("closing {}: the scheduler has been in a Drafter for more than {} ms; interrupting it",
                        thread.getName(), CLOSE_NUDGE_MILLIS);
                thread.interrupt();
                nudged = true;
            }
        }
        if (interrupted) {
            Thread.currentThread().interrupt();
        }
        // Wait for another model's drafting in this model to end before the caller frees the backend.
        stepLock.lock();
        stepLock.unlock();
    }

    /**
     * A forward step: its batch, its logits, and per request the KV length it reaches, the logits row
     * it samples from (or -1) and the first of its prompt rows (or -1).
     */
    private static final class Step {
        final BatchLayout layout;
        final LogitRows logitRows;
        final List<Request> requests = new ArrayList<>();
        int[] newLength = new int[16];
        int[] logitRow = new int[16];
        /** The first of a row per position, for a prompt being scored; -1 otherwise. */
        int[] promptRow = new int[16];
        /** Prompt tokens in the step. */
        int prefillTokens;
        /** Decoding tokens in the step. */
        int decodingTokens;
        /** No decoding token: the step may pause between layers. */
        boolean prefillOnly;
        /** Decoding requests were left out of this prompt step: they step in its pauses. */
        boolean decodingInPauses;

        Step(BatchLayout layout, LogitRows logitRows) {
            this.layout = layout;
            this.logitRows = logitRows;
        }

        void clear() {
            layout.clear();
            requests.clear();
            prefillTokens = 0;
            decodingTokens = 0;
            prefillOnly = false;
            decodingInPauses = false;
        }

        void add(Request r, int length, int row, int firstPromptRow) {
            int i = requests.size();
            if (i == newLength.length) {
                newLength = Arrays.copyOf(newLength, i * 2);
                logitRow = Arrays.copyOf(logitRow, i * 2);
                promptRow = Arrays.copyOf(promptRow, i * 2);
            }
            requests.add(r);
            newLength[i] = length;
            logitRow[i] = row;
            promptRow[i] = firstPromptRow;
        }
    }
}
