package dev.peregrine.engine;

import dev.peregrine.TokenLogprob;
import dev.peregrine.sampling.TopK;
import java.util.ArrayList;
import java.util.List;

/**
 * Log-probabilities of generated tokens ({@link dev.peregrine.GenerationConfig#logprobs}): keeps a
 * copy of each logits row a step wants them for, as the model produced it (sampling then applies
 * its penalty to the row in place), and turns it into a {@link TokenLogprob} once the row's token
 * is known. A row's log-softmax is computed in double: logit - (max + log sum exp(logit - max)),
 * NaN counting as {@code -Infinity} as in sampling; tokens at {@code +Infinity} share the
 * probability equally.
 */
final class LogprobRecorder {
    private final int vocabularySize;
    private final int top;
    private float[] rows = new float[0];
    private final float[] topValues;
    private final int[] topIds;

    LogprobRecorder(int vocabularySize, int top) {
        this.vocabularySize = vocabularySize;
        this.top = Math.min(top, vocabularySize);
        this.topValues = new float[Math.max(1, this.top)];
        this.topIds = new int[Math.max(1, this.top)];
    }

    /** Copies the row at {@code logits[offset ..]} into slot {@code slot} (slots grow as needed). */
    void save(float[] logits, int offset, int slot) {
        int need = Math.multiplyExact(slot + 1, vocabularySize);
        if (rows.length < need) {
            rows = java.util.Arrays.copyOf(rows, need);
        }
        System.arraycopy(logits, offset, rows, slot * vocabularySize, vocabularySize);
    }

    /** {@code token}'s log-probability under the row in slot {@code slot}, with the row's most likely tokens. */
    TokenLogprob of(int slot, int token) {
        int at = slot * vocabularySize;
        float max = Float.NEGATIVE_INFINITY;
        int infinite = 0;
        for (int i = 0; i < vocabularySize; i++) {
            float v = rows[at + i];
            if (v > max) {
                max = v;
            }
            if (v == Float.POSITIVE_INFINITY) {
                infinite++;
            }
        }
        double logSum;
        if (infinite > 0) {
            logSum = Math.log(infinite);
        } else {
            double sum = 0;
            for (int i = 0; i < vocabularySize; i++) {
                float v = rows[at + i];
                if (v > Float.NEGATIVE_INFINITY) { // also skips NaN
                    sum += Math.exp((double) v - max);
                }
            }
            logSum = Math.log(sum);
        }
        List<TokenLogprob.Alternative> alternatives = new ArrayList<>(top);
        if (top > 0) {
            TopK.select(rows, at, vocabularySize, top, topValues, topIds, 0);
            for (int j = 0; j < top; j++) {
                alternatives.add(new TokenLogprob.Alternative(topIds[j], logprob(topValues[j], max, logSum)));
            }
        }
        return new TokenLogprob(token, logprob(rows[at + token], max, logSum), alternatives);
    }

    private static double logprob(float logit, float max, double logSum) {
        if (Float.isNaN(logit) || logit == Float.NEGATIVE_INFINITY || Float.isNaN(max)) {
            return Double.NEGATIVE_INFINITY;
        }
        if (max == Float.POSITIVE_INFINITY) {
            return logit == Float.POSITIVE_INFINITY ? -logSum : Double.NEGATIVE_INFINITY;
        }
        return (double) logit - max - logSum;
    }
}
