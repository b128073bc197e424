package dev.peregrine.embedding;

import dev.peregrine.Pooling;
import java.nio.FloatBuffer;

/** Pooling of token states into one vector, and L2 normalisation. */
public final class Pooler {
    /** sentence-transformers' Normalize (torch's F.normalize) divides by at least this. */
    private static final double MIN_NORM = 1e-12;

    private Pooler() {
    }

    /**
     * Pools one sequence of a batch's last_hidden_state.
     *
     * @param hidden     {@code [batch, length, width]} floats, row-major
     * @param row        the sequence's index in the batch
     * @param length     positions per sequence (padded length)
     * @param width      floats per position (hidden size)
     * @param tokens     real tokens of the sequence; they come first, padding after them
     */
    public static float[] pool(Pooling pooling, FloatBuffer hidden, int row, int length, int width, int tokens) {
        return pool(pooling, hidden, row, length, width, tokens, 0);
    }

    /**
     * {@link #pool}, with the first {@code skipped} positions left out of a mean (sentence-transformers'
     * prompt mask: its leading special token and the prompt's); none left: a zero vector, as there.
     * CLS and last-token pooling take their position as before.
     */
    public static float[] pool(Pooling pooling, FloatBuffer hidden, int row, int length, int width, int tokens,
                               int skipped) {
        if (tokens < 1 || tokens > length) {
            throw new IllegalArgumentException("a sequence of " + length + " positions cannot hold " + tokens + " tokens");
        }
        int base = row * length * width;
        float[] out = new float[width];
        switch (pooling) {
            case CLS -> hidden.get(base, out);
            case LAST_TOKEN -> hidden.get(base + (tokens - 1) * width, out);
            case MEAN -> {
                // Sum in double: a long text adds hundreds of values of mixed sign.
                double[] sum = new double[width];
                int first = Math.min(Math.max(skipped, 0), tokens);
                for (int t = first; t < tokens; t++) {
                    int at = base + t * width;
                    for (int i = 0; i < width; i++) {
                        sum[i] += hidden.get(at + i);
                    }
                }
                int count = tokens - first;
                for (int i = 0; count > 0 && i < width; i++) {
                    out[i] = (float) (sum[i] / count);
                }
            }
        }
        return out;
    }

    /** Scales {@code v} in place to unit length (a zero vector stays zero). */
    public static void normalize(float[] v) {
        double sq = 0;
        for (float x : v) {
            sq += (double) x * x;
        }
        double scale = 1 / Math.max(Math.sqrt(sq), MIN_NORM);
        for (int i = 0; i < v.length; i++) {
            v[i] = (float) (v[i] * scale);
        }
    }
}
