package dev.peregrine;

import dev.peregrine.engine.Generation;
import dev.peregrine.engine.IdleSequences;
import dev.peregrine.engine.SequenceState;
import java.util.Arrays;
import java.util.Objects;
import java.util.function.Consumer;
import java.util.function.Supplier;

/**
 * One sequence whose state (tokens and their cached keys and values) is kept across calls: a
 * chat, or a document processed piece by piece. Not meant for several threads at once (calls are
 * serialised); cheap to create; {@link #close()} gives its KV-cache blocks back. While a session is
 * idle (between calls) and the cache runs out, the model may drop its cached keys and values,
 * least recently used sessions first; its tokens stay, and its next generation evaluates them
 * again, with the same results.
 *
 * <pre>{@code
 * try (Session chat = model.newSession()) {
 *     chat.append(renderedPrompt);
 *     Completion answer = chat.generate(GenerationConfig.greedy().maxTokens(200), t -> System.out.print(t.text()));
 * }
 * }</pre>
 */
public final class Session implements AutoCloseable {
    private final Model model;
    private final SequenceState seq;
    private final IdleSequences idleSequences;
    /** Held during every call, so that the model drops the cached state only while the session is idle. */
    private final IdleSequences.Entry idle;
    private int unreportedFrom;
    /** Set by {@link #close()}, under the in-use lock; every later call but close fails. */
    private boolean closed;

    Session(Model model) {
        this(model, new SequenceState(model.kvCache(), model.contextLength()));
    }

    private Session(Model model, SequenceState seq) {
        this.model = model;
        this.seq = seq;
        this.unreportedFrom = seq.length();
        this.idleSequences = model.scheduler().idleSequences();
        this.idle = idleSequences.register(seq);
    }

    /**
     * Appends text. At the start of the session BOS is added as the model wants it; the text of
     * special tokens is recognised. The text is evaluated lazily, by the next {@link #generate}.
     */
    public Session append(String text) {
        return inUse(() -> append(model.encode(text, seq.length() == 0)));
    }

    /** Appends token ids as they are. */
    public Session append(int... tokens) {
        return inUse(() -> appendTokens(tokens));
    }

    private Session appendTokens(int[] tokens) {
        if (seq.length() + tokens.length > seq.contextLength()) {
            throw new PeregrineException("appending " + tokens.length + " tokens to " + seq.length()
                    + " would exceed the context length " + seq.contextLength());
        }
        for (int t : tokens) {
            if (t < 0 || t >= model.vocabularySize()) {
                throw new IllegalArgumentException("token id " + t + " is outside the vocabulary of " + model.vocabularySize());
            }
        }
        seq.append(tokens);
        return this;
    }

    /** Generates from the current state; generated tokens stay in the session. */
    public Completion generate(GenerationConfig config) {
        return generate(config, t -> { });
    }

    /**
     * Generates from the current state, passing each token to {@code onToken} (on this thread) as
     * it is made. The session's sequence runs in the generator's batch with other requests. If
     * {@code onToken} throws, the generation stops, the session keeps the tokens passed to it (the
     * one it threw on included), and the exception is rethrown.
     */
    public Completion generate(GenerationConfig config, Consumer<GeneratedToken> onToken) {
        Objects.requireNonNull(config, "config (GenerationConfig.defaults() for the defaults)");
        Objects.requireNonNull(onToken, "onToken (t -> { } to ignore the tokens)");
        return inUse(() -> generateInUse(config, onToken));
    }

    private Completion generateInUse(GenerationConfig config, Consumer<GeneratedToken> onToken) {
        if (seq.length() == 0) {
            throw new IllegalStateException("the session is empty: append a prompt first");
        }
        Generator.checkRoomToGenerate(seq.length(), seq.contextLength(), config);
        int[] all = seq.tokens();
        int[] prompt = Arrays.copyOfRange(all, Math.min(unreportedFrom, all.length), all.length);
        Generation generation = new Generation(seq, prompt, config, model.tokenizer(), model.loadNanos(),
                Generator.newSpeculator(model, config));
        ResultQueue results = new ResultQueue();
        int start = seq.length();
        results.attach(model.scheduler().submit(generation, false, results));
        Completion c;
        try {
            c = results.drain(onToken);
        } catch (RuntimeException | Error e) {
            // A consumer that threw, or a failed request: the session keeps exactly the tokens that
            // were handed out (the scheduler may have made a few more before the cancel took), and
            // the next completion's prompt starts after them.
            int kept = start + results.delivered();
            if (seq.length() > kept) {
                seq.rewind(seq.length() - kept);
            }
            unreportedFrom = seq.length();
            throw e;
        }
        unreportedFrom = seq.length();
        return c;
    }

    /** Number of tokens in the session (its next position). */
    public int position() {
        return inUse(seq::length);
    }

    /** The session's tokens. */
    public int[] tokens() {
        return inUse(seq::tokens);
    }

    /** Removes the last {@code n} tokens (and their cached state). */
    public Session rewind(int n) {
        return inUse(() -> {
            seq.rewind(n);
            unreportedFrom = Math.min(unreportedFrom, seq.length());
            return this;
        });
    }

    /** A new session with the same tokens, sharing this one's cached state copy-on-write. */
    public Session fork() {
        return inUse(() -> new Session(model, seq.fork()));
    }

    /** Gives the session's KV-cache blocks back; the session cannot be used afterwards. Closing twice does nothing. */
    @Override
    public void close() {
        model.scheduler().requireOtherThread("close a session");
        idle.lock();
        try {
            if (!closed) {
                closed = true;
                idleSequences.unregister(idle);
                seq.close();
            }
        } finally {
            idle.unlock();
        }
    }

    /**
     * Runs a call with the session marked in use, so that its cached state stays while the call runs.
     *
     * @throws IllegalStateException if the session or its model is closed
     */
    private <T> T inUse(Supplier<T> call) {
        model.ensureOpen();
        // From a Drafter: its session may be locked by a caller waiting for the scheduler.
        model.scheduler().requireOtherThread("use a session");
        idle.lock();
        try {
            if (closed) {
                throw new IllegalStateException("the session is closed");
            }
            return call.get();
        } finally {
            idle.unlock();
        }
    }
}
