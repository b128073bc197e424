package dev.peregrine.sampling;

import java.util.Objects;

/**
 * The ranking of logits that {@link Sampler} uses, and that every backend's candidate selection
 * ({@code Backend.selectCandidates}) must reproduce: a larger logit ranks first, equal logits rank
 * by token id (the lower first), and NaN counts as {@code -Infinity} (it comes from a broken
 * computation and has no meaningful rank). Under this order the k best tokens of a row, and their
 * order, are unique.
 */
public final class TopK {
    private TopK() {
    }

    /**
     * Writes the {@code k} best tokens of {@code logits[offset .. offset + n)} (token id = index -
     * offset), best first, to {@code ids[to .. to + k)}, and their logits to {@code values[to .. to + k)}
     * (NaN written as {@code -Infinity}). A heap of the k best so far while the row is scanned
     * (nearly O(n) for small k: most tokens fail the one comparison with the heap's worst), then a
     * heap sort of the k. Allocates nothing.
     *
     * @throws IllegalArgumentException unless {@code 1 <= k <= n}
     */
    public static void select(float[] logits, int offset, int n, int k, float[] values, int[] ids, int to) {
        if (k < 1 || k > n) {
            throw new IllegalArgumentException("top-k needs 1 <= k <= " + n + ", got " + k);
        }
        Objects.checkFromIndexSize(offset, n, logits.length);
        Objects.checkFromIndexSize(to, k, values.length);
        Objects.checkFromIndexSize(to, k, ids.length);
        for (int j = 0; j < k; j++) {
            ids[to + j] = j;
        }
        for (int i = k / 2 - 1; i >= 0; i--) {
            siftDown(logits, offset, ids, to, i, k);
        }
        for (int id = k; id < n; id++) {
            int worst = ids[to];
            if (ranksBefore(logits[offset + id], id, logits[offset + worst], worst)) {
                ids[to] = id;
                siftDown(logits, offset, ids, to, 0, k);
            }
        }
        // Heap sort: the worst of the heap goes to its end, which leaves the best first.
        for (int size = k - 1; size > 0; size--) {
            int worst = ids[to];
            ids[to] = ids[to + size];
            ids[to + size] = worst;
            siftDown(logits, offset, ids, to, 0, size);
        }
        for (int j = 0; j < k; j++) {
            values[to + j] = rankValue(logits[offset + ids[to + j]]);
        }
    }

    /**
     * Sorts {@code n} candidates at {@code from} into rank order by their values (NaN-free), an
     * insertion sort: cheap for candidates that are already nearly ranked, e.g. after a monotonic
     * but not strictly monotonic function (a soft-cap) made some of them equal.
     */
    public static void rank(float[] values, int[] ids, int from, int n) {
        for (int i = from + 1; i < from + n; i++) {
            float value = values[i];
            int id = ids[i];
            int j = i - 1;
            while (j >= from && ranksBefore(value, id, values[j], ids[j])) {
                values[j + 1] = values[j];
                ids[j + 1] = ids[j];
                j--;
            }
            values[j + 1] = value;
            ids[j + 1] = id;
        }
    }

    /** Whether token {@code a} with logit {@code x} ranks before token {@code b} with logit {@code y}. */
    public static boolean ranksBefore(float x, int a, float y, int b) {
        float rx = rankValue(x);
        float ry = rankValue(y);
        return rx > ry || (rx == ry && a < b);
    }

    /** The value a logit ranks by: itself, or {@code -Infinity} for NaN. */
    static float rankValue(float x) {
        return Float.isNaN(x) ? Float.NEGATIVE_INFINITY : x;
    }

    /** Restores the heap {@code ids[to .. to + size)} below {@code i}; the worst token is at the root. */
    private static void siftDown(float[] logits, int offset, int[] ids, int to, int i, int size) {
        int item = ids[to + i];
        float itemValue = logits[offset + item];
        while (true) {
            int child = 2 * i + 1;
            if (child >= size) {
                break;
            }
            int left = ids[to + child];
            if (child + 1 < size) {
                int right = ids[to + child + 1];
                if (ranksBefore(logits[offset + left], left, logits[offset + right], right)) {
                    child++;
                }
            }
            int worse = ids[to + child];
            if (!ranksBefore(itemValue, item, logits[offset + worse], worse)) {
                break;
            }
            ids[to + i] = worse;
            i = child;
        }
        ids[to + i] = item;
    }
}
