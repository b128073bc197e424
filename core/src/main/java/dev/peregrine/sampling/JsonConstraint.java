package dev.peregrine.sampling;

import java.util.Arrays;
import java.util.function.IntFunction;
import java.util.function.IntPredicate;

/**
 * Keeps one generation's output a JSON object ({@link dev.peregrine.GenerationConfig#jsonOutput}):
 * before each draw, every token whose text could not continue the output so far into a JSON object
 * gets a {@code -Infinity} logit, and an end-of-generation token is allowed only once the object has
 * closed (then nothing else is). Other control tokens never are (a Hugging Face tokenizer shows
 * them as text, which could otherwise pass for string content). The state after the generated tokens is kept per token, so the
 * position being sampled may move back (rejected speculative drafts) and forward without re-reading
 * the whole output.
 *
 * <p>Cost per draw: one check per vocabulary token, most decided by their first byte or, inside a
 * string, by a flag computed once per token (plain text fits any string).
 */
public final class JsonConstraint {
    private final int vocabularySize;
    private final byte[][] tokenBytes;
    private final boolean[] endOfGeneration;
    private final boolean[] control;
    private final int generationStart;
    private final JsonGrammar scratch = new JsonGrammar();

    /** states[k]: after the first k generated tokens; tokens[k]: the k-th generated token. */
    private JsonGrammar[] states = {new JsonGrammar()};
    private int[] tokens = new int[16];
    private int known;

    /**
     * @param vocabularySize  tokens in the vocabulary
     * @param bytesOf         each token's bytes in a text (empty for control tokens); not modified
     * @param endOfGeneration whether a token ends the generation
     * @param control         whether a token is a control token (never allowed unless it ends the generation)
     * @param generationStart index in the token history of the first generated token
     */
    public JsonConstraint(int vocabularySize, IntFunction<byte[]> bytesOf, IntPredicate endOfGeneration, IntPredicate control,
                          int generationStart) {
        this.vocabularySize = vocabularySize;
        this.tokenBytes = new byte[vocabularySize][];
        this.endOfGeneration = new boolean[vocabularySize];
        this.control = new boolean[vocabularySize];
        for (int id = 0; id < vocabularySize; id++) {
            tokenBytes[id] = bytesOf.apply(id);
            this.endOfGeneration[id] = endOfGeneration.test(id);
            this.control[id] = control.test(id);
        }
        this.generationStart = generationStart;
    }

    /**
     * Sets the logits of the tokens that may not follow {@code history[0 .. count)} to
     * {@code -Infinity}, in {@code logits[offset .. offset + vocabularySize)}. If the output can no
     * longer become a JSON object (it cannot happen through this mask) only end tokens stay.
     */
    void apply(int[] history, int count, float[] logits, int offset) {
        JsonGrammar state = stateAfter(history, count);
        boolean complete = state.isComplete() || state.isDead();
        for (int id = 0; id < vocabularySize; id++) {
            boolean allowed = endOfGeneration[id] ? complete : !complete && !control[id] && state.accepts(tokenBytes[id], scratch);
            if (!allowed) {
                logits[offset + id] = Float.NEGATIVE_INFINITY;
            }
        }
    }

    /** The grammar state after the generated tokens in {@code history[generationStart .. count)}. */
    private JsonGrammar stateAfter(int[] history, int count) {
        int n = count - generationStart;
        if (n < 0) {
            throw new IllegalArgumentException("position " + count + " is before the generation's start " + generationStart);
        }
        int valid = Math.min(known, n);
        for (int k = 0; k < valid; k++) {
            if (tokens[k] != history[generationStart + k]) {
                valid = k;
                break;
            }
        }
        if (states.length < n + 1) {
            int grown = Math.max(n + 1, 2 * states.length);
            JsonGrammar[] more = Arrays.copyOf(states, grown);
            for (int k = states.length; k < grown; k++) {
                more[k] = new JsonGrammar();
            }
            states = more;
            tokens = Arrays.copyOf(tokens, grown);
        }
        for (int k = valid; k < n; k++) {
            int token = history[generationStart + k];
            tokens[k] = token;
            states[k + 1].copyFrom(states[k]);
            states[k + 1].feed(tokenBytes[token]);
        }
        known = n;
        return states[n];
    }
}
