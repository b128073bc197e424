package dev.peregrine.sampling;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import org.junit.jupiter.api.Test;

/** {@link JsonConstraint}'s mask over a small vocabulary, as the output grows and moves back. */
class JsonConstraintTest {
    // 0 EOS (control, ends generation), 1 "<|im_start|>" shown as text (control), then text tokens.
    private static final String[] TEXTS = {"", "<|im_start|>", "{", "}", "\"", "a", ":", "1", " ", "x}", "\"a\":"};

    private static float[] mask(JsonConstraint c, int[] history, int count) {
        float[] logits = new float[TEXTS.length];
        c.apply(history, count, logits, 0);
        return logits;
    }

    private static boolean[] allowed(float[] logits) {
        boolean[] a = new boolean[logits.length];
        for (int i = 0; i < logits.length; i++) {
            a[i] = logits[i] != Float.NEGATIVE_INFINITY;
        }
        return a;
    }

    @Test
    void onlyTokensThatKeepAJsonObjectPrefixAndEndTokensOnlyOnceItCloses() {
        JsonConstraint c = new JsonConstraint(TEXTS.length, id -> TEXTS[id].getBytes(StandardCharsets.UTF_8),
                id -> id == 0, id -> id <= 1, 2);
        int[] history = {9, 9, 2, 10, 7, 3, 0};  // two prompt tokens, then {"a":1}
        // At the start only "{" fits.
        assertThat(allowed(mask(c, history, 2))).containsExactly(false, false, true, false, false, false, false, false, false,
                false, false);
        // After "{": a key ("\"" or "\"a\":"), the end, whitespace.
        boolean[] afterBrace = allowed(mask(c, history, 3));
        assertThat(afterBrace[4]).isTrue();
        assertThat(afterBrace[10]).isTrue();
        assertThat(afterBrace[3]).isTrue();
        assertThat(afterBrace[8]).isTrue();
        assertThat(afterBrace[5]).as("a bare word").isFalse();
        assertThat(afterBrace[1]).as("a control token, even with text").isFalse();
        assertThat(afterBrace[0]).as("EOS before the object closes").isFalse();
        // Inside a value after {"a":1 : digits, the close, "x}" no.
        boolean[] inNumber = allowed(mask(c, history, 5));
        assertThat(inNumber[7]).isTrue();
        assertThat(inNumber[3]).isTrue();
        assertThat(inNumber[9]).isFalse();
        // Closed: only EOS.
        assertThat(allowed(mask(c, history, 6))).containsExactly(true, false, false, false, false, false, false, false, false,
                false, false);
        // Moving back (a rejected draft) and on along another path gives that path's mask.
        int[] other = {9, 9, 2, 4, 5};  // {"a  (inside a key)
        boolean[] inKey = allowed(mask(c, other, 5));
        assertThat(inKey[5]).isTrue();
        assertThat(inKey[1]).as("control tokens are never string content").isFalse();
        assertThat(Arrays.equals(allowed(mask(c, history, 3)), afterBrace)).isTrue();
    }
}
