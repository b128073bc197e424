package dev.peregrine.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * Scratch buffers owned by one worker thread. They grow on demand (during warm-up, or when a longer
 * context or a bigger matrix comes along) and are then reused, so steady-state steps allocate nothing.
 * The matrix-matrix panel is a heap array (see TileProducts.matrixMatrix for why).
 */
final class ThreadScratch implements AutoCloseable {
    private Arena decodedKvArena = Arena.ofShared();

    /**
     * A panel of weight rows dequantised to floats, reused by every token tile of a matrix-matrix
     * product, with a segment view that the dequantisers write through.
     */
    float[] panelFloats = new float[0];
    MemorySegment panelView = MemorySegment.ofArray(panelFloats);
    /** Partial results of the matrix-matrix kernel: panel rows x tile tokens. */
    float[] tileSums = new float[0];
    private short[] shortSums = new short[0];
    private int[] intSums = new int[0];
    private short[] unpacked = new short[0];
    /** Vector accumulators stored as floats (see LaneSums.addLaneSums). */
    float[] lanes = new float[0];
    private float[] transposed = new float[0];
    private float[] valueRows = new float[0];
    /** K-quant sub-block scales and offsets of 4 rows (see RowProducts.rowsQ45K). */
    float[] blockScales = new float[0];
    /** One weight row dequantised to floats (embedding rows, the scalar kernels). */
    float[] row = new float[0];
    /** One token's padded activations, for the tile kernel when a product has only that token. */
    float[] token = new float[0];
    /** Attention scores over a context, one query's after another. */
    float[] scores = new float[0];
    /** The queries one attention call takes through a KV head together, and their value sums. */
    final VectorAttention.Queries attentionQueries = new VectorAttention.Queries();
    final VectorAttention.ValueSums valueSums = new VectorAttention.ValueSums();
    /** KV-cache slot of each context position of the sequence being attended. */
    int[] slots = new int[0];
    /** 0, 1, 2, ...: the rows of {@link #decodedKv}. */
    int[] positions = new int[0];
    /** Off-heap floats: a chunk of one KV head's keys or values decoded from an F16 cache, a row per position. */
    MemorySegment decodedKv = MemorySegment.NULL;
    /** Rope: cos and sign-adjusted sin of one token row, expanded to one value per element. */
    float[] ropeCos = new float[0];
    float[] ropeSin = new float[0];

    /** Makes room for a matrix-matrix panel of the given size in floats. */
    void ensurePanel(int floats) {
        if (panelFloats.length < floats) {
            panelFloats = new float[floats];
            panelView = MemorySegment.ofArray(panelFloats);
        }
    }

    float[] token(int n) {
        if (token.length < n) {
            token = new float[n];
        }
        return token;
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

    /** Value rows of a few positions, transposed (attention over heads narrower than a vector). */
    float[] transposed(int n) {
        if (transposed.length < n) {
            transposed = new float[n];
        }
        return transposed;
    }

    /** Value rows of a few positions as read from the cache, before {@link #transposed}; then a query's zero-padded copy of the latter. */
    float[] valueRows(int n) {
        if (valueRows.length < n) {
            valueRows = new float[n];
        }
        return valueRows;
    }

    /** 32-bit sums of the integer kernels (Q6KProducts), on their way to floats. */
    int[] intSums(int n) {
        if (intSums.length < n) {
            intSums = new int[n];
        }
        return intSums;
    }

    /** Unpacked weight values of the integer kernels (a Q6_K super-block of a group, for several tokens). */
    short[] unpacked(int n) {
        if (unpacked.length < n) {
            unpacked = new short[n];
        }
        return unpacked;
    }

    /** 16-bit block sums of the integer kernels (IntegerProducts, Q4KProducts, Q6KProducts), on their way to floats. */
    short[] shortSums(int n) {
        if (shortSums.length < n) {
            shortSums = new short[n];
        }
        return shortSums;
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

    /** 0 .. n-1. */
    int[] positions(int n) {
        if (positions.length < n) {
            positions = new int[Math.max(n, positions.length * 2)];
            for (int i = 0; i < positions.length; i++) {
                positions[i] = i;
            }
        }
        return positions;
    }

    /** The decoded-rows scratch, with room for {@code floats} floats. */
    MemorySegment decodedKv(int floats) {
        if (decodedKv.byteSize() < floats * 4L) {
            decodedKvArena.close(); // only this thread uses it, and not now
            decodedKvArena = Arena.ofShared();
            decodedKv = decodedKvArena.allocate(floats * 4L, 64);
        }
        return decodedKv;
    }

    void ensureRope(int n) {
        if (ropeCos.length < n) {
            ropeCos = new float[n];
            ropeSin = new float[n];
        }
    }

    @Override
    public void close() {
        decodedKvArena.close();
    }
}
