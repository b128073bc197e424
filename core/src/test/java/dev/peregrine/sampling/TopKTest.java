package dev.peregrine.sampling;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

class TopKTest {

    /**
     * The ranking spelled out: a full sort by logit (NaN as -Infinity; -0 and +0 equal, which
     * Double.compare would not have) descending, then id ascending.
     */
    static int[] sortedIds(float[] logits, int offset, int n) {
        return IntStream.range(0, n).boxed()
                .sorted(Comparator.<Integer>comparingDouble(i -> rankValue(logits[offset + i]) == 0 ? 0.0 : -rankValue(logits[offset + i]))
                        .thenComparingInt(i -> i))
                .mapToInt(Integer::intValue).toArray();
    }

    private static float rankValue(float x) {
        return Float.isNaN(x) ? Float.NEGATIVE_INFINITY : x;
    }

    /**
     * Rows with many ties (values in steps of 0.5), NaN, both infinities and both zeros, read at an
     * offset: the selection is the sort's first k, with the sort's values.
     */
    static float[] awkwardRow(Random random, int n) {
        float[] row = new float[n];
        for (int i = 0; i < n; i++) {
            row[i] = switch (random.nextInt(12)) {
                case 0 -> Float.NaN;
                case 1 -> Float.NEGATIVE_INFINITY;
                case 2 -> random.nextBoolean() ? 0f : -0f;
                case 3 -> random.nextInt(50) == 0 ? Float.POSITIVE_INFINITY : 0f;
                default -> Math.round(random.nextGaussian() * 4) / 2f;
            };
        }
        return row;
    }

    @Test
    void selectionIsTheFirstKOfASort() {
        Random random = new Random(17);
        for (int n : new int[] {1, 2, 7, 100, 3000}) {
            for (int round = 0; round < 20; round++) {
                float[] row = awkwardRow(random, n);
                float[] padded = new float[n + 9];
                Arrays.fill(padded, 1e30f); // outside the row: never read
                System.arraycopy(row, 0, padded, 5, n);
                int[] sorted = sortedIds(row, 0, n);
                for (int k : new int[] {1, 2, 3, 40, n}) {
                    if (k > n) {
                        continue;
                    }
                    float[] values = new float[k + 4];
                    int[] ids = new int[k + 4];
                    TopK.select(padded, 5, n, k, values, ids, 4);
                    assertThat(Arrays.copyOfRange(ids, 4, 4 + k)).as("n %d, k %d", n, k)
                            .containsExactly(Arrays.copyOf(sorted, k));
                    for (int j = 0; j < k; j++) {
                        assertThat(Float.compare(values[4 + j], rankValue(row[sorted[j]]))).as("value %d", j).isZero();
                    }
                }
            }
        }
    }

    @Test
    void rankRestoresTheOrderOfNearlyRankedCandidates() {
        Random random = new Random(3);
        for (int round = 0; round < 200; round++) {
            int n = 1 + random.nextInt(60);
            float[] values = new float[n + 2];
            int[] ids = new int[n + 2];
            for (int j = 0; j < n; j++) {
                values[2 + j] = random.nextInt(5);
                ids[2 + j] = random.nextInt(1000);
            }
            TopK.rank(values, ids, 2, n);
            for (int j = 1; j < n; j++) {
                boolean ordered = values[2 + j - 1] > values[2 + j]
                        || (values[2 + j - 1] == values[2 + j] && ids[2 + j - 1] <= ids[2 + j]);
                assertThat(ordered).as("entries %d and %d", j - 1, j).isTrue();
            }
        }
        float[] values = {3, 2, 2, 2, 1};
        int[] ids = {9, 8, 1, 5, 0};
        TopK.rank(values, ids, 0, 5);
        assertThat(ids).containsExactly(9, 1, 5, 8, 0);
    }

    @Test
    void kMustBeBetweenOneAndTheRowLength() {
        float[] row = new float[10];
        assertThatThrownBy(() -> TopK.select(row, 0, 10, 0, new float[1], new int[1], 0))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> TopK.select(row, 0, 10, 11, new float[11], new int[11], 0))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> TopK.select(row, 1, 10, 3, new float[3], new int[3], 0))
                .isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> TopK.select(row, 0, 10, 3, new float[3], new int[3], 1))
                .isInstanceOf(IndexOutOfBoundsException.class);
    }
}
