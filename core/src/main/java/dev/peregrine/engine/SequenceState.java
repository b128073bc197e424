package dev.peregrine.engine;

import dev.peregrine.kv.KvCache;
import dev.peregrine.kv.KvSequence;
import java.util.Arrays;

/**
 * One sequence's state: its token history and how much of it is in the KV cache. Tokens may be
 * appended without being evaluated yet (a prompt, or the last sampled token): those are
 * {@link #pendingTokens() pending}, and the scheduler evaluates them.
 */
public final class SequenceState implements AutoCloseable {
    private final KvSequence kv;
    private final int contextLength;
    private int[] tokens = new int[64];
    private int length;

    public SequenceState(KvCache cache, int contextLength) {
        this(cache.newSequence(), contextLength);
    }

    private SequenceState(KvSequence kv, int contextLength) {
        this.kv = kv;
        this.contextLength = contextLength;
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

    public KvSequence kv() {
        return kv;
    }

    public int contextLength() {
        return contextLength;
    }

    /** Tokens appended but not yet in the KV cache. */
    public int pendingTokens() {
        return length - kv.length();
    }

    public void append(int token) {
        if (length == tokens.length) {
            tokens = Arrays.copyOf(tokens, tokens.length * 2);
        }
        tokens[length++] = token;
    }

    public void append(int[] ids) {
        for (int id : ids) {
            append(id);
        }
    }

    /**
     * Makes sure the next evaluation produces the logits that follow the whole history: when
     * everything is cached already (after a rewind, or a finished generation), the last position
     * is evaluated again. Returns the number of tokens to evaluate.
     */
    public int prepareForGeneration() {
        if (length > 0 && kv.length() == length) {
            kv.truncate(length - 1);
        }
        return pendingTokens();
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
    }

    /** Drops the cached keys and values (the tokens stay): they are recomputed when next evaluated. */
    public void evict() {
        kv.truncate(0);
    }

    /** A copy sharing the cached keys and values (copy-on-write). */
    public SequenceState fork() {
        SequenceState copy = new SequenceState(kv.fork(), contextLength);
        copy.tokens = Arrays.copyOf(tokens, tokens.length);
        copy.length = length;
        return copy;
    }

    @Override
    public void close() {
        kv.close();
    }
}
