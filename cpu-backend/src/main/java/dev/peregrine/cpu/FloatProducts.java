package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * F32 products with a vector lane per weight row: {@link HalfProducts}' column-major groups with
 * the weights already floats, so there is nothing to convert. Products of more than 16 tokens copy
 * a chunk of a group into the thread's panel and take {@link FloatPanels}' passes, as F16 does.
 *
 * <p>Why not the file's rows: a row kernel reads a token's activations once per group of rows and
 * ends every row with a lane sum, while here the weights are one stream per half-group.
 *
 * <p>Why 256-bit vectors: on this project's Zen 4 host a 512-bit FMA whose weights come from memory
 * streamed at 8-10 GB/s on one core, the same loop with 256-bit vectors at 21-22 GB/s (and a 512-bit
 * add at 21: see docs/PERFORMANCE.md, 2026-11-29 (16:12-19:12)). Products of several tokens read the
 * copy through the panel (in L2) or chunk by chunk, so only the reads from memory need the narrow vectors.
 *
 * <p>Layout: rows in groups of {@link #GROUP_ROWS} (the last padded with zero rows), each group as
 * two half-groups of {@link #HALF} rows, the first then the second; a half-group's columns one after
 * another, a column being its rows' floats in row order. That is {@link FloatPanels}' panel layout
 * for the whole row, so a chunk of a group goes to the panel in two bulk copies.
 *
 * <p>Arithmetic: each (row, token) output is one chain of FMAs over the row's columns in order,
 * {@code acc = fma(w, x, acc)}, for one token or many, so results do not depend on the batch.
 */
final class FloatProducts {
    /** Rows per group: the column-major products' group (64 with AVX-512). */
    static final int GROUP_ROWS = IntegerProducts.GROUP_ROWS;
    /** Rows per half-group. */
    private static final int HALF = GROUP_ROWS / 2;
    /** The loads' and FMAs' vectors: 256 bits, or the preferred species where that is narrower. */
    private static final VectorSpecies<Float> W = F.vectorBitSize() > 256 ? FloatVector.SPECIES_256 : F;
    private static final int WL = W.length();
    /** Whether a half-group is four {@link #W} vectors (else two: the preferred species is W). */
    private static final boolean FOUR = HALF == 4 * WL;
    /** Tokens a pass of {@link #fourTokens}. */
    private static final int PASS_TOKENS = 4;
    /**
     * Up to this many tokens take passes of {@link #fourTokens} over the weights in place rather
     * than the panel's passes of 8, which cost their copy and, short of 8 tokens, repeat the last
     * one (KernelBench prefill F32, 2,048 x 8,192, one core / two: 5 tokens 24.6 / 47.9 -> 36.7 /
     * 79.4 GFLOP/s, 8 35.2 / 77.1 -> 64.3 / 81.5, 16 54.3 / 106.9 -> 77.2 / 135.3; 24 alike).
     */
    private static final int DIRECT_TOKENS = 16;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

    static {
        if (HALF != 4 * WL && HALF != 2 * WL) {
            throw new ExceptionInInitializerError("F32 products need a half-group of 2 or 4 vectors, not " + HALF + " / " + WL);
        }
    }

    private FloatProducts() {
    }

    /** Bytes of the column-major copy: four per value, rows padded to a group. */
    static long bytes(int rows, int columns) {
        return 4L * IntegerProducts.groups(rows) * GROUP_ROWS * columns;
    }

    /** Byte offset of half-group {@code half} of group {@code group}. */
    private static long halfAt(int group, int half, int columns) {
        return 4L * ((long) group * GROUP_ROWS + (long) half * HALF) * columns;
    }

    /**
     * Writes group {@code group} of the column-major copy {@code to} of the F32 rows {@code from}
     * (the file's layout, {@code rowBytes} a row); {@code to} starts zeroed, so padding rows are
     * zeros. A tile of 64 columns at a time, transposed on the heap and written in bulk, a half-group
     * per write (as {@link HalfProducts#copyGroup}).
     */
    static void copyGroup(MemorySegment from, long rowBytes, int rows, int columns, MemorySegment to, int group) {
        int tile = 64;
        int groupRows = Math.min(GROUP_ROWS, rows - group * GROUP_ROWS);
        float[] rowTile = new float[GROUP_ROWS * tile];
        float[] columnTile = new float[2 * tile * HALF];
        for (int c0 = 0; c0 < columns; c0 += tile) {
            int count = Math.min(tile, columns - c0);
            for (int j = 0; j < groupRows; j++) {
                long row = (long) group * GROUP_ROWS + j;
                MemorySegment.copy(from, LE_FLOAT, row * rowBytes + 4L * c0, rowTile, j * tile, count);
            }
            for (int j = 0; j < groupRows; j++) {
                int half = j / HALF;
                for (int c = 0; c < count; c++) {
                    columnTile[(half * tile + c) * HALF + j % HALF] = rowTile[j * tile + c];
                }
            }
            // Padding rows stay zero: their places in the tile are never written.
            for (int half = 0; half < 2; half++) {
                MemorySegment.copy(columnTile, half * tile * HALF, to, LE_FLOAT, halfAt(group, half, columns) + 4L * c0 * HALF,
                        count * HALF);
            }
        }
    }

    /** Row {@code row} as floats into {@code out} at float index {@code outIndex}. */
    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        int columns = w.columns();
        int inGroup = row % GROUP_ROWS;
        long values = halfAt(row / GROUP_ROWS, inGroup / HALF, columns) + 4L * (inGroup % HALF);
        MemorySegment data = w.data();
        for (int c = 0; c < columns; c++) {
            out.set(ValueLayout.JAVA_FLOAT, 4L * (outIndex + c), data.get(LE_FLOAT, values + 4L * c * HALF));
        }
    }

    /**
     * {@code out[t][r] = W[r] . x[t]} for the rows r in [rowStart, rowEnd), x read from the heap
     * copy {@code input.rows} (token rows {@code input.paddedColumns} apart). A range that starts or
     * ends inside a group computes the whole group and stores its own rows.
     */
    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        int columns = w.columns();
        int firstGroup = rowStart / GROUP_ROWS;
        int endGroup = (rowEnd + GROUP_ROWS - 1) / GROUP_ROWS;
        float[] x = input.rows;
        MemorySegment data = w.data();
        if (tokens == 1) {
            float[] sums = scratch.lanes((endGroup - firstGroup) * GROUP_ROWS);
            for (int g = firstGroup; g < endGroup; g++) {
                oneGroup(data, halfAt(g, 0, columns), halfAt(g, 1, columns), columns, x, sums, (g - firstGroup) * GROUP_ROWS);
            }
            IntegerProducts.storeRows(input, sums, firstGroup * GROUP_ROWS, out, w.rows(), 0, 1, rowStart, rowEnd);
            return;
        }
        // Up to DIRECT_TOKENS: passes of 4 reading the weights in place, chunk by chunk so that the
        // passes after the first find the chunk in L2 (one pass: no chunks, see HalfProducts). More:
        // as HalfProducts, passes of 8 over the chunks copied to the panel while more than 4 tokens
        // are left, then one of up to 4 over each half-group's chunk, which the copy left in L2.
        int passed = tokens <= DIRECT_TOKENS ? 0 : FloatPanels.passedTokens(tokens);
        int parked = (Math.max(passed, tokens) + PASS_TOKENS) * GROUP_ROWS;
        float[] sums = scratch.lanes(parked);
        int row = input.paddedColumns;
        float[] panel = FloatPanels.panel(scratch);
        int chunk = tokens > PASS_TOKENS ? FloatPanels.CHUNK_COLUMNS : columns;
        for (int g = firstGroup; g < endGroup; g++) {
            java.util.Arrays.fill(sums, 0, parked, 0f);
            for (int c0 = 0; c0 < columns; c0 += chunk) {
                int c1 = Math.min(columns, c0 + chunk);
                int count = c1 - c0;
                if (passed > 0) {
                    for (int half = 0; half < 2; half++) {
                        MemorySegment.copy(data, LE_FLOAT, halfAt(g, half, columns) + 4L * c0 * HALF, panel,
                                half * count * HALF, count * HALF);
                    }
                    FloatPanels.passes(panel, count, x, row, c0, tokens, passed, sums);
                }
                for (int t0 = passed; t0 < tokens; t0 += PASS_TOKENS) {
                    int left = tokens - t0;
                    for (int half = 0; half < 2; half++) {
                        fourTokens(data, halfAt(g, half, columns), c0, c1, x, t0 * row,
                                (t0 + Math.min(1, left - 1)) * row, (t0 + Math.min(2, left - 1)) * row,
                                (t0 + Math.min(3, left - 1)) * row, sums, t0 * GROUP_ROWS + half * HALF);
                    }
                }
            }
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            IntegerProducts.storeRows(input, sums, g * GROUP_ROWS, out, w.rows(), 0, tokens, first, end);
        }
    }

    /**
     * One token against one group (its half-groups from bytes {@code first} and {@code second}):
     * the sums of its rows into {@code sums} from index {@code at}. Both halves in one loop, two
     * streams, so that a column's products are 8 independent chains (two half-group passes one after
     * the other streamed at half the rate: KernelBench decode one core 15 against 30 GB/s). The
     * counter starts at 1 so that C2 checks the segment's bounds once per call (see {@link
     * HalfProducts}' one-token kernel).
     */
    private static void oneGroup(MemorySegment w, long first, long second, int columns, float[] x, float[] sums, int at) {
        FloatVector a0 = FloatVector.zero(W), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int k = 1; k <= columns; k++) { // from 1: see above
            int column = k - 1;
            long o = first + 4L * column * HALF;
            long p = second + 4L * column * HALF;
            FloatVector v = FloatVector.broadcast(W, x[column]);
            a0 = FloatVector.fromMemorySegment(W, w, o, LE).fma(v, a0);
            a1 = FloatVector.fromMemorySegment(W, w, o + 4L * WL, LE).fma(v, a1);
            b0 = FloatVector.fromMemorySegment(W, w, p, LE).fma(v, b0);
            b1 = FloatVector.fromMemorySegment(W, w, p + 4L * WL, LE).fma(v, b1);
            if (FOUR) {
                a2 = FloatVector.fromMemorySegment(W, w, o + 8L * WL, LE).fma(v, a2);
                a3 = FloatVector.fromMemorySegment(W, w, o + 12L * WL, LE).fma(v, a3);
                b2 = FloatVector.fromMemorySegment(W, w, p + 8L * WL, LE).fma(v, b2);
                b3 = FloatVector.fromMemorySegment(W, w, p + 12L * WL, LE).fma(v, b3);
            }
        }
        a0.intoArray(sums, at);
        a1.intoArray(sums, at + WL);
        b0.intoArray(sums, at + HALF);
        b1.intoArray(sums, at + HALF + WL);
        if (FOUR) {
            a2.intoArray(sums, at + 2 * WL);
            a3.intoArray(sums, at + 3 * WL);
            b2.intoArray(sums, at + HALF + 2 * WL);
            b3.intoArray(sums, at + HALF + 3 * WL);
        }
    }

    /**
     * Four tokens (rows from indices x0..x3 of {@code x}) against columns [c0, c1) of a half-group
     * (from byte {@code half}): each column's vectors loaded once for the four, the same chains as
     * {@link #oneGroup}, resumed from and parked in {@code sums} at {@code at + token * GROUP_ROWS + row}.
     */
    private static void fourTokens(MemorySegment w, long half, int c0, int c1, float[] x, int x0, int x1, int x2,
                                   int x3, float[] sums, int at) {
        int t1 = at + GROUP_ROWS, t2 = at + 2 * GROUP_ROWS, t3 = at + 3 * GROUP_ROWS;
        FloatVector a00 = FloatVector.fromArray(W, sums, at), a10 = FloatVector.fromArray(W, sums, at + WL);
        FloatVector a01 = FloatVector.fromArray(W, sums, t1), a11 = FloatVector.fromArray(W, sums, t1 + WL);
        FloatVector a02 = FloatVector.fromArray(W, sums, t2), a12 = FloatVector.fromArray(W, sums, t2 + WL);
        FloatVector a03 = FloatVector.fromArray(W, sums, t3), a13 = FloatVector.fromArray(W, sums, t3 + WL);
        FloatVector a20 = a00, a30 = a00, a21 = a00, a31 = a00, a22 = a00, a32 = a00, a23 = a00, a33 = a00;
        if (FOUR) {
            a20 = FloatVector.fromArray(W, sums, at + 2 * WL);
            a30 = FloatVector.fromArray(W, sums, at + 3 * WL);
            a21 = FloatVector.fromArray(W, sums, t1 + 2 * WL);
            a31 = FloatVector.fromArray(W, sums, t1 + 3 * WL);
            a22 = FloatVector.fromArray(W, sums, t2 + 2 * WL);
            a32 = FloatVector.fromArray(W, sums, t2 + 3 * WL);
            a23 = FloatVector.fromArray(W, sums, t3 + 2 * WL);
            a33 = FloatVector.fromArray(W, sums, t3 + 3 * WL);
        }
        long values = half + 4L * c0 * HALF;
        int count = c1 - c0;
        for (int k = 1; k <= count; k++) { // from 1: see oneGroup
            int column = c0 + k - 1;
            long o = values + 4L * (k - 1) * HALF;
            FloatVector v0 = FloatVector.broadcast(W, x[x0 + column]);
            FloatVector v1 = FloatVector.broadcast(W, x[x1 + column]);
            FloatVector v2 = FloatVector.broadcast(W, x[x2 + column]);
            FloatVector v3 = FloatVector.broadcast(W, x[x3 + column]);
            FloatVector q = FloatVector.fromMemorySegment(W, w, o, LE);
            a00 = q.fma(v0, a00);
            a01 = q.fma(v1, a01);
            a02 = q.fma(v2, a02);
            a03 = q.fma(v3, a03);
            q = FloatVector.fromMemorySegment(W, w, o + 4L * WL, LE);
            a10 = q.fma(v0, a10);
            a11 = q.fma(v1, a11);
            a12 = q.fma(v2, a12);
            a13 = q.fma(v3, a13);
            if (FOUR) {
                q = FloatVector.fromMemorySegment(W, w, o + 8L * WL, LE);
                a20 = q.fma(v0, a20);
                a21 = q.fma(v1, a21);
                a22 = q.fma(v2, a22);
                a23 = q.fma(v3, a23);
                q = FloatVector.fromMemorySegment(W, w, o + 12L * WL, LE);
                a30 = q.fma(v0, a30);
                a31 = q.fma(v1, a31);
                a32 = q.fma(v2, a32);
                a33 = q.fma(v3, a33);
            }
        }
        a00.intoArray(sums, at);
        a10.intoArray(sums, at + WL);
        a01.intoArray(sums, t1);
        a11.intoArray(sums, t1 + WL);
        a02.intoArray(sums, t2);
        a12.intoArray(sums, t2 + WL);
        a03.intoArray(sums, t3);
        a13.intoArray(sums, t3 + WL);
        if (FOUR) {
            a20.intoArray(sums, at + 2 * WL);
            a30.intoArray(sums, at + 3 * WL);
            a21.intoArray(sums, t1 + 2 * WL);
            a31.intoArray(sums, t1 + 3 * WL);
            a22.intoArray(sums, t2 + 2 * WL);
            a32.intoArray(sums, t2 + 3 * WL);
            a23.intoArray(sums, t3 + 2 * WL);
            a33.intoArray(sums, t3 + 3 * WL);
        }
    }
}
