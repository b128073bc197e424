package dev.peregrine.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Scratch buffers owned by one worker thread. They grow on demand (during warm-up, or when a longer
 * context or a bigger matrix comes along) and are then reused, so steady-state steps allocate nothing.
 * The matrix-matrix buffers are off-heap and 64-byte aligned so that vector loads never straddle
 * cache lines.
 */
final class ThreadScratch implements AutoCloseable {
    private Arena arena = Arena.ofShared();

    /** A panel of weight rows dequantised to floats, reused by every token tile of a matrix-matrix product. */
    MemorySegment panel = MemorySegment.NULL;
    /** A tile of activation rows, zero-padded to the panel's row length. */
    MemorySegment tile = MemorySegment.NULL;
    /** Partial results of the matrix-matrix kernel: panel rows x tile tokens. */
    float[] tileSums = new float[0];
    /** Vector accumulators stored as floats (see VectorKernels.addLaneSums). */
    float[] lanes = new float[0];
    /** K-quant sub-block scales and offsets of 4 rows (see VectorKernels.rowsQ4K). */
    float[] blockScales = new float[0];
    /** One weight row dequantised to floats (embedding rows, the scalar kernels). */
    float[] row = new float[0];
    /** Attention scores of one (token, head) over its context. */
    float[] scores = new float[0];
    /** KV-cache slot of each context position of the sequence being attended. */
    int[] slots = new int[0];
    /** Rope: cos and sign-adjusted sin of one token row, expanded to one value per element. */
    float[] ropeCos = new float[0];
    float[] ropeSin = new float[0];

    /** Makes room for a panel and a tile of the given sizes in floats. */
    void ensureMatrixBuffers(int panelFloats, int tileFloats) {
        if (panel.byteSize() < panelFloats * 4L || tile.byteSize() < tileFloats * 4L) {
            arena.close(); // only this thread uses them, and not now
            arena = Arena.ofShared();
            panel = arena.allocate(Math.max(panelFloats * 4L, panel.byteSize()), 64);
            tile = arena.allocate(Math.max(tileFloats * 4L, tile.byteSize()), 64);
        }
    }

    float[] row(int n) {
        if (row.length < n) {
            row = new float[n];
        }
        return row;
    }

    /** Per-block scale factors of the rows a K-quant row kernel is reading. */
    float[] blockScales(int n) {
        if (blockScales.length < n) {
            blockScales = new float[n];
        }
        return blockScales;
    }

    /** Lanes of vector accumulators, stored to be summed in a fixed order. */
    float[] lanes(int n) {
        if (lanes.length < n) {
            lanes = new float[n];
        }
        return lanes;
    }

    float[] tileSums(int n) {
        if (tileSums.length < n) {
            tileSums = new float[n];
        }
        return tileSums;
    }

    float[] scores(int n) {
        if (scores.length < n) {
            scores = new float[Math.max(n, scores.length * 2)];
        }
        return scores;
    }

    int[] slots(int n) {
        if (slots.length < n) {
            slots = new int[Math.max(n, slots.length * 2)];
        }
        return slots;
    }

    void ensureRope(int n) {
        if (ropeCos.length < n) {
            ropeCos = new float[n];
            ropeSin = new float[n];
        }
    }

    @Override
    public void close() {
        arena.close();
    }
}
