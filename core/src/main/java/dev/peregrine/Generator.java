package dev.peregrine;

import dev.peregrine.engine.Generation;
import dev.peregrine.engine.Scheduler;
import dev.peregrine.engine.SequenceState;
import dev.peregrine.engine.Speculator;
import java.lang.ref.Cleaner;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.NoSuchElementException;
import java.util.Objects;
import java.util.Spliterator;
import java.util.Spliterators;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Consumer;
import java.util.stream.Stream;
import java.util.stream.StreamSupport;

/**
 * Generates text with a {@link Model}. Thread-safe: any number of threads may submit requests at
 * once; they are batched together (continuous batching: one forward pass per step serves every
 * running request, and requests join and leave at every step). See {@link #metrics()}.
 *
 * <p>Prompts given as text are encoded with {@link Model#encode}: BOS added as the model wants it,
 * and the text of special tokens (e.g. from a chat template) recognised as those tokens.
 */
public final class Generator {
    private static final Cleaner CLEANER = Cleaner.create();

    /** How long generateAll waits before it looks at a full waiting queue again. */
    private static final long ROOM_POLL_MILLIS = 10;

    private final Model model;

    Generator(Model model) {
        this.model = model;
    }

    /** Generates a completion of {@code prompt}. */
    public Completion generate(String prompt, GenerationConfig config) {
        return generate(model.encode(prompt), config, t -> { });
    }

    /** Generates a completion of {@code prompt}, passing each token to {@code onToken} (on this thread) as it is made. */
    public Completion generate(String prompt, GenerationConfig config, Consumer<GeneratedToken> onToken) {
        return generate(model.encode(prompt), config, onToken);
    }

    /** Generates a completion of a tokenised prompt (used as given: no BOS is added). */
    public Completion generate(int[] promptTokens, GenerationConfig config, Consumer<GeneratedToken> onToken) {
        Objects.requireNonNull(onToken, "onToken (t -> { } to ignore the tokens)");
        return submit(promptTokens, config).drain(onToken);
    }

    /**
     * Submits a request and returns at once. The future completes on Peregrine's scheduler thread,
     * in the order the requests finish, so what is chained on it without {@code *Async} runs there
     * and holds up every request: chain waiting work with the {@code *Async} variants (a blocking
     * {@code generate} or {@code close} on the scheduler thread is refused with
     * {@link IllegalStateException}: it would wait for itself). Cancelling the future cancels the
     * request (its KV blocks are freed within one step). A request the generator cannot take is
     * refused here, not through the future, so that a caller producing requests faster than they
     * are served feels it at once.
     *
     * @throws RequestRejectedException if the waiting queue is full ({@link ModelOptions#maxWaitingRequests()})
     * @throws IllegalArgumentException if the prompt is empty or holds an id outside the vocabulary
     * @throws PeregrineException       if the prompt is longer than the context
     * @throws IllegalStateException    if the model is closed
     */
    public CompletableFuture<Completion> generateAsync(String prompt, GenerationConfig config) {
        return submitAsync(model.encode(prompt), config);
    }

    /**
     * Generates completions of all {@code prompts}, batched together; results in prompt order.
     * Every prompt is checked before any is queued. Prompts beyond the room in the waiting queue
     * ({@link ModelOptions#maxWaitingRequests()}) are queued as the room appears. The first request
     * to fail stops the call: no more prompts are queued, the others are cancelled, and its
     * exception is thrown, as {@link #generate} throws it. If the calling thread is interrupted,
     * every request still running is cancelled and comes back {@link FinishReason#CANCELLED} with
     * what it had generated (a prompt not queued yet: with nothing); the interrupt flag stays set.
     */
    public List<Completion> generateAll(List<String> prompts, GenerationConfig config) {
        model.scheduler().requireOtherThread("wait for generations");
        List<int[]> encoded = new ArrayList<>(prompts.size());
        for (String p : prompts) {
            int[] tokens = model.encode(p);
            checkPrompt(tokens, config);
            encoded.add(tokens);
        }
        List<FutureSink> sinks = new ArrayList<>(prompts.size());
        // Released whenever one of this call's requests ends: what the waits below wake on.
        Semaphore ended = new Semaphore(0);
        AtomicReference<FutureSink> firstFailed = new AtomicReference<>();
        boolean interrupted = false;
        try {
            for (int i = 0; i < encoded.size() && !interrupted; i++) {
                FutureSink sink = null;
                while (sink == null && !interrupted) {
                    throwIfFailed(firstFailed);
                    // Waiting for room before submitting keeps this call's waits out of the rejection count.
                    if (model.scheduler().waitingQueueFull()) {
                        interrupted = !awaitRoom(ended);
                        continue;
                    }
                    try {
                        sink = submitAsync(encoded.get(i), config);
                        sinks.add(sink);
                        FutureSink submitted = sink;
                        sink.whenComplete((c, e) -> {
                            if (e != null) {
                                firstFailed.compareAndSet(null, submitted);
                            }
                            ended.release();
                        });
                    } catch (RequestRejectedException full) {
                        interrupted = !awaitRoom(ended); // another caller took the room meanwhile
                    }
                }
            }
            if (interrupted) {
                sinks.forEach(FutureSink::cancelRequest); // their futures still complete, as CANCELLED
            }
            List<Completion> completions = new ArrayList<>(prompts.size());
            for (int i = 0; i < encoded.size(); i++) {
                while (i < sinks.size() && completions.size() == i) {
                    try {
                        completions.add(awaitCompletion(sinks.get(i), firstFailed, ended));
                    } catch (InterruptedException e) {
                        if (!interrupted) {
                            interrupted = true;
                            sinks.forEach(FutureSink::cancelRequest);
                        }
                    }
                }
                if (i >= sinks.size()) {
                    completions.add(new Completion(encoded.get(i), new int[0], "", FinishReason.CANCELLED,
                            new Timings(model.loadNanos(), 0, 0, 0, 0)));
                }
            }
            return completions;
        } catch (RuntimeException | Error e) {
            sinks.forEach(FutureSink::cancelRequest);
            throw e;
        } finally {
            if (interrupted) {
                Thread.currentThread().interrupt();
            }
        }
    }

    /** Throws the exception of the first of this call's requests to fail, if one has. */
    private static void throwIfFailed(AtomicReference<FutureSink> firstFailed) {
        FutureSink failed = firstFailed.get();
        if (failed != null) {
            try {
                completionOf(failed);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt(); // not reached: the future is done
            }
        }
    }

    /** {@code sink}'s completion, or, as soon as any of this call's requests fails, that one's exception. */
    private static Completion awaitCompletion(FutureSink sink, AtomicReference<FutureSink> firstFailed, Semaphore ended)
            throws InterruptedException {
        while (!sink.isDone()) {
            throwIfFailed(firstFailed);
            ended.tryAcquire(ROOM_POLL_MILLIS, TimeUnit.MILLISECONDS);
        }
        return completionOf(sink);
    }

    /**
     * Waits while the waiting queue is full: until one of this call's requests ends ({@code ended}),
     * or a few milliseconds for the scheduler to admit a waiting one (or for other callers'
     * requests to leave the queue). False if interrupted.
     */
    private static boolean awaitRoom(Semaphore ended) {
        try {
            ended.tryAcquire(ROOM_POLL_MILLIS, TimeUnit.MILLISECONDS);
            ended.drainPermits();
            return true;
        } catch (InterruptedException e) {
            return false;
        }
    }

    /** The future's completion, or its request's own exception (not wrapped). */
    private static Completion completionOf(FutureSink sink) throws InterruptedException {
        try {
            return sink.get();
        } catch (ExecutionException e) {
            switch (e.getCause()) {
                case RuntimeException r -> throw r;
                case Error r -> throw r;
                default -> throw new PeregrineException("the generation failed: " + e.getCause(), e.getCause());
            }
        }
    }

    /**
     * Streams the tokens of a completion as they are generated. Close the stream
     * (try-with-resources) if you stop early: that cancels the request and frees its KV blocks
     * within one step. A stream dropped without closing is cancelled when it is garbage-collected.
     */
    public Stream<GeneratedToken> stream(String prompt, GenerationConfig config) {
        ResultQueue results = submit(model.encode(prompt), config);
        Iterator<GeneratedToken> it = new Iterator<>() {
            private GeneratedToken next;

            @Override
            public boolean hasNext() {
                if (next == null) {
                    next = results.next();
                }
                return next != null;
            }

            @Override
            public GeneratedToken next() {
                if (!hasNext()) {
                    throw new NoSuchElementException();
                }
                GeneratedToken t = next;
                next = null;
                return t;
            }
        };
        Cleaner.Cleanable cleanup = CLEANER.register(it, results::cancel);
        return StreamSupport.stream(Spliterators.spliteratorUnknownSize(it, Spliterator.ORDERED | Spliterator.NONNULL), false)
                .onClose(cleanup::clean);
    }

    /** What the generator is doing and has done: batch sizes, queue, KV use, throughput, time to first token. */
    public GeneratorMetrics metrics() {
        return model.scheduler().metrics();
    }

    private ResultQueue submit(int[] promptTokens, GenerationConfig config) {
        model.scheduler().requireOtherThread("wait for a generation"); // its caller waits for the tokens
        ResultQueue results = new ResultQueue();
        results.attach(submit(promptTokens, config, results));
        return results;
    }

    private FutureSink submitAsync(int[] promptTokens, GenerationConfig config) {
        FutureSink sink = new FutureSink();
        sink.request = submit(promptTokens, config, sink);
        return sink;
    }

    private Scheduler.Request submit(int[] promptTokens, GenerationConfig config, Scheduler.Sink sink) {
        checkPrompt(promptTokens, config);
        Speculator speculator = newSpeculator(model, config);
        SequenceState seq = newSequence(promptTokens);
        Generation generation = new Generation(seq, promptTokens, config, model.tokenizer(), model.loadNanos(), speculator);
        try {
            return model.scheduler().submit(generation, true, sink);
        } catch (RuntimeException e) {
            seq.close();
            throw e;
        }
    }

    /**
     * Refuses a request that asks for tokens where none fits: {@code length} tokens already fill the
     * context. (Scoring such a prompt, {@link GenerationConfig#promptLogprobs}, is fine.)
     */
    static void checkRoomToGenerate(int length, int contextLength, GenerationConfig config) {
        if (length >= contextLength && config.maxTokens() > 0 && !config.wantsPromptLogprobs()) {
            throw new PeregrineException("the prompt has " + length + " tokens, the whole context length " + contextLength
                    + ": there is no room to generate a token");
        }
    }

    /**
     * The per-request state of the config's speculation, or null without one; checks the draft
     * model's tokenizer against {@code model}'s before anything is queued.
     */
    static Speculator newSpeculator(Model model, GenerationConfig config) {
        return config.speculation().map(s -> s.newSpeculator(model)).orElse(null);
    }

    private SequenceState newSequence(int[] promptTokens) {
        model.ensureOpen();
        SequenceState seq = new SequenceState(model.kvCache(), model.contextLength());
        seq.append(promptTokens);
        return seq;
    }

    private void checkPrompt(int[] tokens, GenerationConfig config) {
        Objects.requireNonNull(config, "config (GenerationConfig.defaults() for the defaults)");
        if (tokens.length == 0) {
            throw new IllegalArgumentException("the prompt has no tokens: the text is empty, or the tokenizer drops all of it,"
                    + " and the model adds no BOS token");
        }
        if (tokens.length > model.contextLength()) {
            throw new PeregrineException("the prompt has " + tokens.length + " tokens, more than the context length "
                    + model.contextLength());
        }
        checkRoomToGenerate(tokens.length, model.contextLength(), config);
        for (int t : tokens) {
            if (t < 0 || t >= model.vocabularySize()) {
                throw new IllegalArgumentException("token id " + t + " is outside the vocabulary of " + model.vocabularySize());
            }
        }
    }

    /**
     * A future whose cancellation cancels the request, as does completing it from outside (a
     * caller's {@code complete}, or {@code orTimeout} firing): its result is no longer wanted.
     */
    private static final class FutureSink extends CompletableFuture<Completion> implements Scheduler.Sink {
        private volatile Scheduler.Request request;

        @Override
        public void onToken(GeneratedToken token) {
        }

        @Override
        public void onComplete(Completion c) {
            super.complete(c);
        }

        @Override
        public void onError(RuntimeException error) {
            super.completeExceptionally(error);
        }

        @Override
        public boolean complete(Completion value) {
            return cancelRequestIf(super.complete(value));
        }

        @Override
        public boolean completeExceptionally(Throwable error) {
            return cancelRequestIf(super.completeExceptionally(error));
        }

        @Override
        public boolean cancel(boolean mayInterruptIfRunning) {
            // The future first, so that a request finishing meanwhile cannot complete it instead.
            return cancelRequestIf(super.cancel(mayInterruptIfRunning));
        }

        private boolean cancelRequestIf(boolean completedHere) {
            if (completedHere) {
                cancelRequest();
            }
            return completedHere;
        }

        /** Cancels the request; the future then completes with its CANCELLED completion. */
        void cancelRequest() {
            Scheduler.Request r = request;
            if (r != null) {
                r.cancel();
            }
        }
    }
}
