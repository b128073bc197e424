package dev.peregrine.jmh;

import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Random;

/** Random weight matrices of a given type, quantised by the reference quantiser. */
final class Weights {
    private Weights() {
    }

    /** A rows x columns matrix with N(0, 0.02) values, as a trained model's weights roughly are. */
    static Tensor random(Arena arena, DType type, int columns, int rows, long seed) {
        Random random = new Random(seed);
        float[] row = new float[columns];
        long rowBytes = type.bytesFor(columns);
        MemorySegment data = arena.allocate(rowBytes * rows, 64);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < columns; i++) {
                row[i] = (float) random.nextGaussian() * 0.02f;
            }
            Quantize.fromFloat(type, row, 0, columns, data, r * rowBytes);
        }
        return new Tensor("w" + seed, type, new long[] {columns, rows}, data);
    }

    static float[] gaussian(int n, long seed) {
        Random random = new Random(seed);
        float[] values = new float[n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextGaussian();
        }
        return values;
    }
}
