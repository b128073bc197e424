package dev.peregrine;

/**
 * Where a {@link Drafter} puts its proposal: up to {@link #maxTokens()} tokens, in order, each
 * either alone or with the distribution it was drawn from.
 *
 * <p>With greedy decoding only the tokens matter. With sampling, a token added alone is treated
 * as certain (the drafter's distribution is one-hot at it): this is always correct, and right for
 * any drafter that picks tokens deterministically. Give a distribution only if the token really
 * was drawn at random from it; then drafts are accepted more often where the model agrees with
 * it, and the output distribution is still exactly the model's.
 */
public interface Draft {
    /** The most tokens this draft may still take. */
    int maxTokens();

    /** Tokens added so far. */
    int size();

    /**
     * Token {@code index} of those added so far (0 is the first).
     *
     * @throws IndexOutOfBoundsException unless {@code 0 <= index < size()}
     */
    int token(int index);

    /** Vocabulary size of the model (token ids are in {@code [0, vocabularySize)}). */
    int vocabularySize();

    /**
     * Adds a token proposed with certainty.
     *
     * @throws IllegalArgumentException if the token is outside the vocabulary
     * @throws IllegalStateException    if the draft is full
     */
    void add(int token);

    /**
     * Adds a token drawn from {@code probabilities} (one weight per vocabulary entry, non-negative
     * and finite; normalised here, so any positive total will do). The array is copied.
     *
     * @throws IllegalArgumentException if the token is outside the vocabulary, the array has the
     *                                  wrong length or holds a negative or non-finite weight, or the
     *                                  token itself has weight 0
     * @throws IllegalStateException    if the draft is full
     */
    void add(int token, float[] probabilities);
}
