package dev.peregrine.cpu;

import static dev.peregrine.cpu.LaneSums.addLaneSums;
import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;
import static dev.peregrine.cpu.VectorKernels.FLOAT;
import static dev.peregrine.cpu.VectorKernels.TILE_ROWS;
import static dev.peregrine.cpu.VectorKernels.TILE_TOKENS;

import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;

/**
 * The matrix-matrix (tile) kernel for float weight rows and for the types without a column-major
 * product: panels of rows dequantised once ({@link FloatDecoders}) and multiplied with every
 * token, 4 rows x 4 tokens from registers.
 */
final class TileProducts {
    /** A dequantised weight panel holds about this many floats (512 KB: half of a 1 MB L2). */
    private static final int PANEL_FLOATS = 128 * 1024;
    /**
     * Columns per pass of the register tile: 4 panel rows and 4 token rows of this length take 16 KB
     * of L1. Only the order of memory traffic depends on it, not the arithmetic.
     */
    private static final int K_CHUNK = 1024;

    /**
     * Dequantises panels of weight rows once and multiplies each with all tokens, a register tile
     * of 4 rows x 4 tokens at a time, in column chunks small enough that the panel rows and token
     * rows of a tile stay in L1. Rows and tokens past the end are padded and not stored.
     */
    static void matrixMatrix(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                             ThreadScratch scratch) {
        int n = w.columns();
        int kp = input.paddedColumns;
        int outWidth = w.rows();
        int panelRows = Math.clamp(PANEL_FLOATS / kp / TILE_ROWS * TILE_ROWS, TILE_ROWS, 128);
        scratch.ensurePanel(panelRows * kp);
        // Heap arrays with int indices: C2 hoists their bounds checks out of the tile loop, which
        // it does not do for the same loads from memory segments at long offsets.
        float[] panel = scratch.panelFloats;
        // One token (Q8_0 rows read in place from the file): each thread copies the prepared row,
        // since a grouped product prepares the heap copy only for several tokens.
        float[] xs = input.rows;
        if (tokens == 1) {
            xs = scratch.token(kp);
            MemorySegment.copy(input.floats, FLOAT, 0, xs, 0, kp);
        }
        float[] sums = scratch.tileSums(panelRows * TILE_TOKENS);
        // The FMA chain of each (panel row, tile token), carried from one column chunk to the next.
        float[] chains = scratch.lanes(panelRows * TILE_TOKENS * FL);
        for (int chunk = rowStart; chunk < rowEnd; chunk += panelRows) {
            int count = Math.min(panelRows, rowEnd - chunk);
            int paddedCount = (count + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS;
            for (int i = 0; i < paddedCount; i++) {
                if (i < count) {
                    FloatDecoders.decodeRange(w, w.rowOffset(chunk + i), n, scratch.panelView,
                            4L * i * kp, kp, scratch);
                } else {
                    java.util.Arrays.fill(panel, i * kp, (i + 1) * kp, 0f);
                }
            }
            for (int t0 = 0; t0 < tokens; t0 += TILE_TOKENS) {
                int tileTokens = Math.min(TILE_TOKENS, tokens - t0);
                // A short last tile repeats its last token; those results are not stored.
                int x0 = t0 * kp;
                int x1 = (t0 + Math.min(1, tileTokens - 1)) * kp;
                int x2 = (t0 + Math.min(2, tileTokens - 1)) * kp;
                int x3 = (t0 + Math.min(3, tileTokens - 1)) * kp;
                java.util.Arrays.fill(chains, 0, paddedCount * TILE_TOKENS * FL, 0f);
                for (int k = 0; k < kp; k += K_CHUNK) {
                    int length = Math.min(K_CHUNK, kp - k);
                    for (int r0 = 0; r0 < paddedCount; r0 += TILE_ROWS) {
                        tile4x4(panel, r0 * kp + k, xs, x0 + k, x1 + k, x2 + k, x3 + k, kp, length, chains,
                                r0 * TILE_TOKENS * FL);
                    }
                }
                java.util.Arrays.fill(sums, 0, paddedCount * TILE_TOKENS, 0f);
                addLaneSums(chains, sums, 0, paddedCount * TILE_TOKENS);
                for (int r = 0; r < count; r++) {
                    for (int t = 0; t < tileTokens; t++) {
                        out.set(FLOAT, ((long) (input.firstToken + t0 + t) * outWidth + chunk + r) * Float.BYTES,
                                sums[r * TILE_TOKENS + t]);
                    }
                }
            }
        }
    }

    /**
     * Continues, over {@code length} columns (a whole number of vectors), the FMA chains of 4 panel
     * rows (row r from index {@code a + r * stride} of {@code panel}) with 4 token rows (token t
     * from index {@code xt} of {@code xs}): chain (r, t) is the vector at
     * {@code chains[at + (r * 4 + t) * FL]}.
     */
    static void tile4x4(float[] panel, int a, float[] xs, int x0, int x1, int x2, int x3, int stride,
                        int length, float[] chains, int at) {
        FloatVector c00 = FloatVector.fromArray(F, chains, at);
        FloatVector c01 = FloatVector.fromArray(F, chains, at + FL);
        FloatVector c02 = FloatVector.fromArray(F, chains, at + 2 * FL);
        FloatVector c03 = FloatVector.fromArray(F, chains, at + 3 * FL);
        FloatVector c10 = FloatVector.fromArray(F, chains, at + 4 * FL);
        FloatVector c11 = FloatVector.fromArray(F, chains, at + 5 * FL);
        FloatVector c12 = FloatVector.fromArray(F, chains, at + 6 * FL);
        FloatVector c13 = FloatVector.fromArray(F, chains, at + 7 * FL);
        FloatVector c20 = FloatVector.fromArray(F, chains, at + 8 * FL);
        FloatVector c21 = FloatVector.fromArray(F, chains, at + 9 * FL);
        FloatVector c22 = FloatVector.fromArray(F, chains, at + 10 * FL);
        FloatVector c23 = FloatVector.fromArray(F, chains, at + 11 * FL);
        FloatVector c30 = FloatVector.fromArray(F, chains, at + 12 * FL);
        FloatVector c31 = FloatVector.fromArray(F, chains, at + 13 * FL);
        FloatVector c32 = FloatVector.fromArray(F, chains, at + 14 * FL);
        FloatVector c33 = FloatVector.fromArray(F, chains, at + 15 * FL);
        int w1 = a + stride;
        int w2 = a + 2 * stride;
        int w3 = a + 3 * stride;
        for (int j = 0; j < length; j += FL) {
            FloatVector r0 = FloatVector.fromArray(F, panel, a + j);
            FloatVector r1 = FloatVector.fromArray(F, panel, w1 + j);
            FloatVector r2 = FloatVector.fromArray(F, panel, w2 + j);
            FloatVector r3 = FloatVector.fromArray(F, panel, w3 + j);
            FloatVector v0 = FloatVector.fromArray(F, xs, x0 + j);
            c00 = r0.fma(v0, c00);
            c10 = r1.fma(v0, c10);
            c20 = r2.fma(v0, c20);
            c30 = r3.fma(v0, c30);
            FloatVector v1 = FloatVector.fromArray(F, xs, x1 + j);
            c01 = r0.fma(v1, c01);
            c11 = r1.fma(v1, c11);
            c21 = r2.fma(v1, c21);
            c31 = r3.fma(v1, c31);
            FloatVector v2 = FloatVector.fromArray(F, xs, x2 + j);
            c02 = r0.fma(v2, c02);
            c12 = r1.fma(v2, c12);
            c22 = r2.fma(v2, c22);
            c32 = r3.fma(v2, c32);
            FloatVector v3 = FloatVector.fromArray(F, xs, x3 + j);
            c03 = r0.fma(v3, c03);
            c13 = r1.fma(v3, c13);
            c23 = r2.fma(v3, c23);
            c33 = r3.fma(v3, c33);
        }
        c00.intoArray(chains, at);
        c01.intoArray(chains, at + FL);
        c02.intoArray(chains, at + 2 * FL);
        c03.intoArray(chains, at + 3 * FL);
        c10.intoArray(chains, at + 4 * FL);
        c11.intoArray(chains, at + 5 * FL);
        c12.intoArray(chains, at + 6 * FL);
        c13.intoArray(chains, at + 7 * FL);
        c20.intoArray(chains, at + 8 * FL);
        c21.intoArray(chains, at + 9 * FL);
        c22.intoArray(chains, at + 10 * FL);
        c23.intoArray(chains, at + 11 * FL);
        c30.intoArray(chains, at + 12 * FL);
        c31.intoArray(chains, at + 13 * FL);
        c32.intoArray(chains, at + 14 * FL);
        c33.intoArray(chains, at + 15 * FL);
    }

    private TileProducts() {
    }
}
