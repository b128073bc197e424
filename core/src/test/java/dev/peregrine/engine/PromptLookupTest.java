package dev.peregrine.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class PromptLookupTest {
    private static int[] propose(PromptLookup lookup, int k, int... tokens) {
        DraftBuffer draft = new DraftBuffer(16, 100);
        draft.reset(k);
        lookup.propose(tokens, tokens.length, draft);
        int[] out = new int[draft.size()];
        for (int i = 0; i < out.length; i++) {
            out[i] = draft.token(i);
        }
        return out;
    }

    @Test
    void proposesWhatFollowedTheLongestMatchingNgram() {
        PromptLookup lookup = new PromptLookup(1, 3);
        // "7 8 9" ends the sequence and occurred at 0, followed by 10 11 12.
        assertThat(propose(lookup, 3, 7, 8, 9, 10, 11, 12, 5, 9, 8, 7, 8, 9)).containsExactly(10, 11, 12);
        // Only "9" matches (at 2, followed by 10 ...); the 2-gram "5 9" occurs nowhere else.
        assertThat(propose(lookup, 2, 7, 8, 9, 10, 11, 5, 9)).containsExactly(10, 11);
    }

    @Test
    void prefersTheLatestOccurrenceAndMayRunIntoTheSuffix() {
        PromptLookup lookup = new PromptLookup(2, 2);
        // "1 2" at 0 (then 3) and at 3 (then 4): the latest wins.
        assertThat(propose(lookup, 1, 1, 2, 3, 1, 2, 4, 1, 2)).containsExactly(4);
        // A repeating pattern: the continuation overlaps the n-gram itself, and goes on repeating
        // past the end of the sequence, as many tokens as the draft takes.
        assertThat(propose(lookup, 5, 6, 6, 6)).containsExactly(6, 6, 6, 6, 6);
        assertThat(propose(lookup, 5, 1, 2, 1, 2, 1, 2)).containsExactly(1, 2, 1, 2, 1);
        assertThat(propose(lookup, 4, 9, 1, 2, 3, 1, 2)).containsExactly(3, 1, 2, 3);
    }

    @Test
    void proposesNothingWithoutAMatch() {
        PromptLookup lookup = new PromptLookup(2, 4);
        assertThat(propose(lookup, 4, 1, 2, 3, 4, 5)).isEmpty();
        assertThat(propose(lookup, 4, 1)).isEmpty();
        assertThat(Arrays.stream(propose(new PromptLookup(1, 1), 4, 3, 4, 3)).boxed()).containsExactly(4, 3, 4, 3);
    }

    @Test
    void rejectsBadNgramRanges() {
        assertThatThrownBy(() -> new PromptLookup(0, 2)).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new PromptLookup(3, 2)).isInstanceOf(IllegalArgumentException.class);
    }
}
