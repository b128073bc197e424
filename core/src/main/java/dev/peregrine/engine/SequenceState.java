package dev.peregrine.engine;

import dev.peregrine.kv.KvSequence;
import java.util.Arrays;

/**
 * One sequence's state: its token history, how much of it is in the KV cache, and the logits that
 * follow the last evaluated token. Tokens may be appended without being evaluated yet (a prompt, or
 * the last sampled token); {@link #ensureLogits} evaluates whatever is pending.
 */
public final class SequenceState implements AutoCloseable {
    private final Engine engine;
    private final KvSequence kv;
    private final float[] logits;
    private int[] tokens = new int[64];
    private int length;
    private boolean logitsValid;

    public SequenceState(Engine engine) {
        this(engine, engine.kvCache().newSequence());
    }

    private SequenceState(Engine engine, KvSequence kv) {
        this.engine = engine;
        this.kv = kv;
        this.logits = new float[engine.vocabularySize()];
    }

    public int length() {
        return length;
    }

    public int token(int i) {
        return tokens[i];
    }

    public int[] tokens() {
        return Arrays.copyOf(tokens, length);
    }

    /** The token history array itself (valid up to {@link #length()}), for samplers; do not modify. */
    public int[] tokenArray() {
        return tokens;
    }

    public int pendingTokens() {
        return length - kv.length();
    }

    public void append(int token) {
        if (length == tokens.length) {
            tokens = Arrays.copyOf(tokens, tokens.length * 2);
        }
        tokens[length++] = token;
        logitsValid = false;
    }

    public void append(int[] ids) {
        for (int id : ids) {
            append(id);
        }
    }

    /**
     * Evaluates pending tokens and returns the logits that follow the whole history (the array is
     * this sequence's and is overwritten by the next evaluation).
     */
    public float[] ensureLogits() {
        if (logitsValid) {
            return logits;
        }
        if (length == 0) {
            throw new IllegalStateException("an empty sequence has no logits: append a prompt first");
        }
        if (kv.length() == length) {
            // Everything is cached but the logits are stale (after a rewind): recompute the last position.
            kv.truncate(length - 1);
        }
        int from = kv.length();
        engine.evaluate(kv, tokens, from, length - from, logits);
        logitsValid = true;
        return logits;
    }

    /** Removes the last {@code n} tokens. */
    public void rewind(int n) {
        if (n < 0 || n > length) {
            throw new IllegalArgumentException("cannot rewind " + n + " tokens of a sequence of " + length);
        }
        length -= n;
        if (kv.length() > length) {
            kv.truncate(length);
        }
        logitsValid = false;
    }

    /** A copy sharing the cached keys and values (copy-on-write). */
    public SequenceState fork() {
        SequenceState copy = new SequenceState(engine, kv.fork());
        copy.tokens = Arrays.copyOf(tokens, tokens.length);
        copy.length = length;
        copy.logitsValid = logitsValid;
        System.arraycopy(logits, 0, copy.logits, 0, logits.length);
        return copy;
    }

    public int contextLength() {
        return engine.contextLength();
    }

    @Override
    public void close() {
        kv.close();
    }
}
