package dev.peregrine.engine;

import dev.peregrine.Draft;
import java.util.Arrays;

/**
 * One request's current proposal: tokens and, for those drawn at random, the distribution each
 * was drawn from (normalised). Reused from step to step; the probability rows are allocated the
 * first time a drafter gives one.
 */
final class DraftBuffer implements Draft {
    private final int vocabularySize;
    private final int[] tokens;
    private final boolean[] hasRow;
    private float[] rows;
    private int size;
    private int limit;

    DraftBuffer(int capacity, int vocabularySize) {
        this.vocabularySize = vocabularySize;
        this.tokens = new int[capacity];
        this.hasRow = new boolean[capacity];
    }

    /** Empties the draft and lets it take up to {@code maxTokens} tokens. */
    void reset(int maxTokens) {
        size = 0;
        limit = Math.min(maxTokens, tokens.length);
    }

    /** Drops tokens from {@code newSize} on (e.g. tokens a drafter could not finish). */
    void truncate(int newSize) {
        size = Math.min(size, newSize);
    }

    @Override
    public int maxTokens() {
        return limit;
    }

    @Override
    public int size() {
        return size;
    }

    @Override
    public int vocabularySize() {
        return vocabularySize;
    }

    @Override
    public int token(int index) {
        java.util.Objects.checkIndex(index, size);
        return tokens[index];
    }

    /** Whether the token at position {@code i} came with the distribution it was drawn from (else it was added alone). */
    boolean hasProbabilities(int i) {
        return hasRow[i];
    }

    /** The probability the drafter gave {@code token} at position {@code i}: one-hot for a token added alone. */
    float probability(int i, int token) {
        if (!hasRow[i]) {
            return token == tokens[i] ? 1f : 0f;
        }
        return rows[i * vocabularySize + token];
    }

    @Override
    public void add(int token) {
        checkToken(token);
        hasRow[size] = false;
        tokens[size++] = token;
    }

    @Override
    public void add(int token, float[] probabilities) {
        checkToken(token);
        if (probabilities.length != vocabularySize) {
            throw new IllegalArgumentException("a draft distribution needs " + vocabularySize + " entries, got "
                    + probabilities.length);
        }
        double sum = 0;
        for (float p : probabilities) {
            if (!(p >= 0) || p == Float.POSITIVE_INFINITY) {
                throw new IllegalArgumentException("draft probabilities must be finite and >= 0, got " + p);
            }
            sum += p;
        }
        if (!(probabilities[token] > 0)) {
            throw new IllegalArgumentException("token " + token + " has probability 0 in the distribution it was drawn from");
        }
        addNormalised(token, probabilities, sum);
    }

    /** Allocates the probability rows now rather than at the first draft that has them. */
    void allocateRows() {
        if (rows == null) {
            rows = new float[tokens.length * vocabularySize];
        }
    }

    /** Adds a token with its distribution divided by {@code sum}; no checks (the engine's own drafts). */
    void addNormalised(int token, float[] probabilities, double sum) {
        allocateRows();
        int base = size * vocabularySize;
        for (int id = 0; id < vocabularySize; id++) {
            rows[base + id] = (float) (probabilities[id] / sum);
        }
        hasRow[size] = true;
        tokens[size++] = token;
    }

    /**
     * Draws from the residual distribution {@code max(0, p - q_i)}, normalised, where
     * {@code q_i} is position i's draft distribution; {@code u} is uniform in [0, 1). When the
     * residual is empty (p == q up to rounding; a rejection is then almost impossible) it draws
     * from p itself.
     */
    int drawResidual(int i, float[] p, double u) {
        double sum = 0;
        for (int id = 0; id < vocabularySize; id++) {
            sum += Math.max(0f, p[id] - probability(i, id));
        }
        if (!(sum > 0)) {
            return draw(p, vocabularySize, u);
        }
        double target = u * sum;
        double cumulative = 0;
        int last = -1;
        for (int id = 0; id < vocabularySize; id++) {
            float r = Math.max(0f, p[id] - probability(i, id));
            if (r > 0) {
                cumulative += r;
                last = id;
                if (target < cumulative) {
                    return id;
                }
            }
        }
        return last; // rounding left target at the very end
    }

    /** Draws an index of {@code weights[0 .. n)} with probability proportional to its weight; {@code u} in [0, 1). */
    static int draw(float[] weights, int n, double u) {
        double sum = 0;
        for (int id = 0; id < n; id++) {
            sum += weights[id];
        }
        double target = u * sum;
        double cumulative = 0;
        int last = -1;
        for (int id = 0; id < n; id++) {
            if (weights[id] > 0) {
                cumulative += weights[id];
                last = id;
                if (target < cumulative) {
                    return id;
                }
            }
        }
        return last;
    }

    private void checkToken(int token) {
        if (size >= limit) {
            throw new IllegalStateException("the draft is full (" + limit + " tokens)");
        }
        if (token < 0 || token >= vocabularySize) {
            throw new IllegalArgumentException("draft token " + token + " is outside the vocabulary of " + vocabularySize);
        }
    }

    @Override
    public String toString() {
        return "Draft" + Arrays.toString(Arrays.copyOf(tokens, size));
    }
}
