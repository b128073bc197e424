package dev.peregrine.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Candidates;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/**
 * {@link Backend#selectCandidates}'s host default, as the CPU backend runs it, against a plain
 * sort of each row: ties, NaN (ranked as -Infinity), both infinities, both zeros, rows of a padded
 * stride whose padding holds larger values that must not be chosen.
 */
class CandidateSelectionTest {
    private static final int VOCAB = 3001;
    private static final int STRIDE = 3008;
    private static final int ROWS = 5;

    private static float[] rows(Random random) {
        float[] logits = new float[ROWS * STRIDE];
        for (int r = 0; r < ROWS; r++) {
            for (int i = 0; i < STRIDE; i++) {
                logits[r * STRIDE + i] = i >= VOCAB ? 1e30f : switch (random.nextInt(r == 4 ? 3 : 16)) {
                    case 0 -> Float.NaN;
                    case 1 -> Float.NEGATIVE_INFINITY;
                    case 2 -> random.nextBoolean() ? 0f : -0f;
                    case 3 -> random.nextInt(40) == 0 ? Float.POSITIVE_INFINITY : 1f;
                    default -> Math.round(random.nextGaussian() * 6) / 2f; // steps of 0.5: many ties
                };
            }
        }
        return logits;
    }

    /** Row {@code r}'s ids by rank: logit descending (NaN as -Infinity, -0 equal to +0), then id. */
    private static int[] ranked(float[] logits, int r) {
        return IntStream.range(0, VOCAB).boxed()
                .sorted(Comparator.<Integer>comparingDouble(i -> -rankValue(logits[r * STRIDE + i])).thenComparingInt(i -> i))
                .mapToInt(Integer::intValue).toArray();
    }

    private static double rankValue(float x) {
        return Float.isNaN(x) ? Double.NEGATIVE_INFINITY : x == 0 ? 0.0 : x;
    }

    @Test
    void theDefaultSelectionIsTheFirstKOfASort() {
        Random random = new Random(23);
        try (Backend backend = new CpuBackendProvider().create(new BackendConfig(1, 0))) {
            Buffer buffer = backend.allocate((long) ROWS * STRIDE);
            Candidates candidates = new Candidates();
            for (int round = 0; round < 3; round++) {
                float[] logits = rows(random);
                backend.write(logits, 0, buffer, 0, logits.length);
                for (int k : new int[] {1, 2, 40, 1024}) {
                    candidates.reset(ROWS + 2, k);
                    backend.selectCandidates(buffer, ROWS, STRIDE, VOCAB, candidates, 2);
                    for (int r = 0; r < ROWS; r++) {
                        int[] expected = Arrays.copyOf(ranked(logits, r), k);
                        int at = candidates.offset(2 + r);
                        assertThat(Arrays.copyOfRange(candidates.ids(), at, at + k)).as("row %d, k %d", r, k)
                                .containsExactly(expected);
                        for (int j = 0; j < k; j++) {
                            assertThat(candidates.values()[at + j] == rankValue(logits[r * STRIDE + expected[j]]))
                                    .as("row %d, value %d", r, j).isTrue();
                        }
                    }
                }
            }
        }
    }

    @Test
    void theDefaultSelectionAllocatesNothingOnceWarm() {
        var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        try (Backend backend = new CpuBackendProvider().create(new BackendConfig(1, 0))) {
            float[] logits = rows(new Random(5));
            Buffer buffer = backend.allocate(logits.length);
            backend.write(logits, 0, buffer, 0, logits.length);
            Candidates candidates = new Candidates();
            candidates.reset(ROWS, 40);
            for (int i = 0; i < 2_000; i++) {
                backend.selectCandidates(buffer, ROWS, STRIDE, VOCAB, candidates, 0);
            }
            long before = threads.getCurrentThreadAllocatedBytes();
            for (int i = 0; i < 1_000; i++) {
                backend.selectCandidates(buffer, ROWS, STRIDE, VOCAB, candidates, 0);
            }
            assertThat(threads.getCurrentThreadAllocatedBytes() - before).as("bytes allocated by 1000 selections")
                    .isLessThan(1024);
        }
    }

    @Test
    void argumentsAreChecked() {
        try (Backend backend = new CpuBackendProvider().create(new BackendConfig(1, 0))) {
            Buffer buffer = backend.allocate(2 * 100);
            Candidates candidates = new Candidates();
            candidates.reset(2, 40);
            assertThatThrownBy(() -> backend.selectCandidates(buffer, 2, 100, 30, candidates, 0))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("k <= vocab");
            assertThatThrownBy(() -> backend.selectCandidates(buffer, 2, 100, 100, candidates, 1))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("outside the 2 rows");
            assertThatThrownBy(() -> candidates.reset(1, Backend.MAX_CANDIDATES + 1))
                    .isInstanceOf(IllegalArgumentException.class);
        }
    }
}
