package dev.peregrine.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The activations of one matmul call, as the kernels want to read them. Filled by
 * {@link Kernels#prepareMatmul} on the calling thread, then read by every worker. Buffers grow on
 * demand and are kept, so the steady state allocates nothing.
 */
final class MatmulInput implements AutoCloseable {
    private Arena arena = Arena.ofShared();

    /** The activations as the caller passed them: tokens x columns floats. */
    MemorySegment x;
    /**
     * The row of {@link #x} (and of the product's output) where this input's tokens start: the
     * copies below hold tokens from there, at 0, and the kernels write token t's products to
     * output row {@code firstToken + t}. 0 unless the product is split by tokens.
     */
    int firstToken;
    int columns;
    /** {@code columns} rounded up to a whole number of vector pairs; rows of the copies below are this long. */
    int paddedColumns;

    /** Up to 16 tokens' activations for the row kernels, each row zero-padded to {@code paddedColumns} floats. */
    MemorySegment floats = MemorySegment.NULL;
    /**
     * More tokens' activations for the tile kernel, rows zero-padded likewise: a heap array, which
     * the tile kernel indexes with ints (see TileProducts.tile4x4), and a segment view of it.
     */
    float[] rows = new float[0];
    MemorySegment rowsView = MemorySegment.ofArray(rows);

    /**
     * The activations quantised to 8 bits for {@link IntegerProducts}: tokens x columns shorts, twice:
     * a native segment, which the one-token kernels read, and a heap array, from which the
     * several-token kernels broadcast 4 or 8 values a column (loads from the segment in those
     * loops took a quarter of Q4_0's prefill; the array, read by the one-token kernel, made Q4_0's
     * decode ~10% slower on one core: docs/PERFORMANCE.md). Then per block of 32 (token after
     * token) its scale and 8 x the sum of its values, wrapped to 16 bits.
     */
    short[] quantisedValues = new short[0];
    MemorySegment quantised = MemorySegment.NULL;
    float[] quantisedScales = new float[0];
    short[] quantisedCorrections = new short[0];
    private Arena quantisedArena = Arena.ofShared();

    void ensureQuantised(int tokens, int columns) {
        long values = (long) tokens * columns;
        if (quantisedValues.length < values) {
            quantisedValues = new short[grown(quantisedValues.length, values)];
        }
        if (quantised.byteSize() < 2 * values) {
            quantisedArena.close(); // no worker reads the old buffer between calls
            quantisedArena = Arena.ofShared();
            quantised = quantisedArena.allocate(2L * grown((int) (quantised.byteSize() / 2), values), 64);
        }
        int blocks = Math.toIntExact(values / 32);
        if (quantisedScales.length < blocks) {
            quantisedScales = new float[grown(quantisedScales.length, blocks)];
            quantisedCorrections = new short[quantisedScales.length];
        }
    }

    /**
     * The new length of a buffer of {@code length} that must hold {@code needed}: at least half as
     * long again, so that prompt chunks of slowly growing sizes reallocate it a few times, not at
     * every chunk (exact sizes made a 1024-token prompt reallocate the 1.3 MB row copy 7 times, some
     * of them inside the decode that followed).
     */
    static int grown(int length, long needed) {
        long target = Math.max(needed, length + length / 2L);
        return Math.toIntExact(Math.max(needed, Math.min(target, Integer.MAX_VALUE - 8)));
    }

    void ensureCapacity(int paddedColumns) {
        if (floats.byteSize() < paddedColumns * 4L) {
            arena.close(); // no worker reads the old buffers between calls
            arena = Arena.ofShared();
            floats = arena.allocate(paddedColumns * 4L, 64);
        }
    }

    void ensureRows(int floatCount) {
        if (rows.length < floatCount) {
            rows = new float[grown(rows.length, floatCount)];
            rowsView = MemorySegment.ofArray(rows);
        }
    }

    @Override
    public void close() {
        arena.close();
        quantisedArena.close();
    }
}
