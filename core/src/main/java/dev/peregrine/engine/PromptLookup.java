package dev.peregrine.engine;

import dev.peregrine.Draft;
import dev.peregrine.Drafter;

/**
 * Prompt-lookup drafting: finds the longest n-gram ending the sequence that occurred earlier in it
 * (the most recent occurrence, so the latest context wins) and proposes the tokens that followed
 * it. Where those run into the end of the sequence, the text since the occurrence is repeating
 * itself, and the proposal goes on repeating it (the copy continues from its own first tokens):
 * a loop of 2 tokens drafts as many tokens as any other match, not 1. Stateless: one instance
 * serves any number of requests.
 */
public final class PromptLookup implements Drafter {
    private final int minNgram;
    private final int maxNgram;

    public PromptLookup(int minNgram, int maxNgram) {
        if (minNgram < 1 || maxNgram < minNgram) {
            throw new IllegalArgumentException("need 1 <= minNgram <= maxNgram, got " + minNgram + ".." + maxNgram);
        }
        this.minNgram = minNgram;
        this.maxNgram = maxNgram;
    }

    /** A linear scan per n-gram length: the sequences are at most a context long, and it allocates nothing. */
    @Override
    public void propose(int[] tokens, int length, Draft draft) {
        for (int n = Math.min(maxNgram, length - 1); n >= minNgram; n--) {
            int suffix = length - n;
            // Latest earlier start first; the match may overlap the suffix (a repeating pattern).
            for (int start = suffix - 1; start >= 0; start--) {
                if (matches(tokens, start, suffix, n)) {
                    // Token i of the copy is the sequence's, or from length on the draft's own
                    // (already added: the copy trails the draft by length - start - n >= 1).
                    for (int i = start + n; draft.size() < draft.maxTokens(); i++) {
                        draft.add(i < length ? tokens[i] : draft.token(i - length));
                    }
                    return;
                }
            }
        }
    }

    private static boolean matches(int[] tokens, int a, int b, int n) {
        for (int i = n - 1; i >= 0; i--) { // the last token differs most often: compare it first
            if (tokens[a + i] != tokens[b + i]) {
                return false;
            }
        }
        return true;
    }

    @Override
    public String toString() {
        return "promptLookup(" + minNgram + ".." + maxNgram + ")";
    }
}
