package dev.peregrine.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.TokenLogprob;
import java.util.Random;
import org.junit.jupiter.api.Test;

/** {@link LogprobRecorder} against a log-softmax computed the plain way, in double. */
class LogprobRecorderTest {

    @Test
    void logprobsAreTheLogSoftmaxOfTheSavedRowWithTheBestTokensRanked() {
        Random random = new Random(5);
        int vocab = 1000;
        float[] logits = new float[3 * vocab];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = (float) (random.nextGaussian() * 4);
        }
        logits[vocab + 17] = 30f; // a clear favourite in the second row
        LogprobRecorder recorder = new LogprobRecorder(vocab, 5);
        recorder.save(logits, vocab, 1);
        recorder.save(logits, 0, 0);
        for (int slot = 0; slot < 2; slot++) {
            int offset = slot * vocab;
            double sum = 0;
            for (int i = 0; i < vocab; i++) {
                sum += Math.exp(logits[offset + i]);
            }
            double logSum = Math.log(sum);
            TokenLogprob t = recorder.of(slot, 123);
            assertThat(t.token()).isEqualTo(123);
            assertThat(t.logprob()).isCloseTo(logits[offset + 123] - logSum, within(1e-9));
            assertThat(t.top()).hasSize(5);
            double previous = Double.POSITIVE_INFINITY;
            for (TokenLogprob.Alternative a : t.top()) {
                assertThat(a.logprob()).isCloseTo(logits[offset + a.token()] - logSum, within(1e-9)).isLessThanOrEqualTo(previous);
                previous = a.logprob();
            }
            // No token outside the top 5 is more likely than the fifth.
            int better = 0;
            for (int i = 0; i < vocab; i++) {
                better += logits[offset + i] > logits[offset + t.top().get(4).token()] ? 1 : 0;
            }
            assertThat(better).isEqualTo(4);
        }
        assertThat(recorder.of(1, 17).logprob()).isCloseTo(0, within(1e-6));
        // Sampling changing the caller's row afterwards does not change what was saved.
        logits[123] = -100f;
        assertThat(recorder.of(0, 123).logprob()).isGreaterThan(-50);
    }

    @Test
    void equalLogitsRankByLowerIdAndSpecialValuesCountAsSamplingCountsThem() {
        LogprobRecorder recorder = new LogprobRecorder(6, 3);
        float[] row = {1f, Float.NaN, 3f, 3f, Float.NEGATIVE_INFINITY, 1f};
        recorder.save(row, 0, 0);
        TokenLogprob t = recorder.of(0, 1);
        assertThat(t.logprob()).isEqualTo(Double.NEGATIVE_INFINITY); // NaN counts as -Infinity
        assertThat(t.top()).extracting(TokenLogprob.Alternative::token).containsExactly(2, 3, 0);
        double logSum = Math.log(2 * Math.exp(1) + 2 * Math.exp(3));
        assertThat(t.top().get(0).logprob()).isCloseTo(3 - logSum, within(1e-12));
        assertThat(recorder.of(0, 4).logprob()).isEqualTo(Double.NEGATIVE_INFINITY);

        float[] infinite = {0f, Float.POSITIVE_INFINITY, 5f, Float.POSITIVE_INFINITY};
        LogprobRecorder two = new LogprobRecorder(4, 0);
        two.save(infinite, 0, 0);
        assertThat(two.of(0, 1).logprob()).isCloseTo(-Math.log(2), within(1e-12));
        assertThat(two.of(0, 2).logprob()).isEqualTo(Double.NEGATIVE_INFINITY);
        assertThat(two.of(0, 2).top()).isEmpty();
    }
}
