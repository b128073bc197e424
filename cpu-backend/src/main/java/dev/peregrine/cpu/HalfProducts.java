package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * F16 and BF16 products with a vector lane per weight row ("column-major groups", copied from the
 * file's layout at load), against the activations as floats: {@link Q8Products}' scheme without
 * scales.
 *
 * <p>Why: with rows in their own lanes, a product of several tokens converts each weight to a
 * float once and meets it with every token's chain, while the tokens' values are broadcast one
 * column at a time (row kernels over interleaved rows read each token's whole row per pass, and
 * from 2,048 columns on four tokens' rows no longer stay in L1: 4 tokens streamed weights at a
 * third of one token's speed). No lane sums are left at the end either. Products of more than 4
 * tokens convert a chunk of a group to floats once (into the thread's panel, L2-sized) and pass
 * over it 8 tokens at a time (see {@link FloatPanels}).
 *
 * <p>Layout: rows in groups of {@link #GROUP_ROWS} (the last padded with zero rows); every
 * group's columns, group after group, column after column, a column being its rows' halves (row
 * order, little-endian, as in the file).
 *
 * <p>Arithmetic: each (row, token) output is one chain of FMAs over the row's columns in order,
 * {@code acc = fma(w, x, acc)}, w converted exactly; the one-token kernel and the kernel for
 * several tokens do exactly that (the latter parking its chains between column chunks), so results
 * do not depend on the batch. F16 halves are converted for finite values only (the copy refuses an
 * infinity or a NaN, see {@link #copyGroup}): the bits shifted into a float's place and the
 * exponent rebased by a multiply by 2^112, exact for normal and subnormal halves. BF16 is a
 * float's upper half: the same steps with a shift of 16, a mask of all ones and a multiply by 1.
 */
final class HalfProducts {
    /** Rows per group: four float vectors' worth (a column is 128 bytes with AVX-512). */
    static final int GROUP_ROWS = IntegerProducts.GROUP_ROWS;
    /** Tokens a pass over a whole group ({@link #fourTokens}). */
    private static final int PASS_TOKENS = 4;
    private static final VectorSpecies<Short> ROW_HALVES = VectorKernels.HALF_SHORTS;
    private static final VectorSpecies<Integer> I = VectorKernels.I;
    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;

    private HalfProducts() {
    }

    /** Bytes of the column-major copy: two per value, rows padded to a group. */
    static long bytes(int rows, int columns) {
        return 2L * IntegerProducts.groups(rows) * GROUP_ROWS * columns;
    }

    /**
     * Writes group {@code group} of the column-major copy {@code to} of the F16 or BF16 rows
     * {@code from} (the file's layout, {@code rowBytes} a row); {@code to} starts zeroed, so padding
     * rows are zeros. A tile of 64 columns at a time: each row's part copied in bulk into a heap
     * array, transposed there, and the tile's columns (contiguous in the copy) written in bulk
     * (value by value through the segments, this held 45% of the samples of loading llama3.2-1b
     * F16 and generating a token; that command now takes 2.9-3.3 s instead of 4.3-5.8).
     *
     * @throws ModelFormatException if an F16 value is infinite or NaN: the kernels convert finite
     *     halves only (such a weight would make every product it enters infinite or NaN anyway, and
     *     llama.cpp's optional tensor check refuses it too)
     */
    static void copyGroup(DType type, String tensor, MemorySegment from, long rowBytes, int rows, int columns,
                          MemorySegment to, int group) {
        boolean f16 = type == DType.F16;
        long values = 2L * group * columns * GROUP_ROWS;
        int tile = 64;
        int groupRows = Math.min(GROUP_ROWS, rows - group * GROUP_ROWS);
        short[] rowTile = new short[GROUP_ROWS * tile];
        short[] columnTile = new short[tile * GROUP_ROWS];
        for (int c0 = 0; c0 < columns; c0 += tile) {
            int count = Math.min(tile, columns - c0);
            for (int j = 0; j < groupRows; j++) {
                long row = (long) group * GROUP_ROWS + j;
                MemorySegment.copy(from, LE_SHORT, row * rowBytes + 2L * c0, rowTile, j * tile, count);
            }
            for (int j = 0; j < groupRows; j++) {
                for (int c = 0; c < count; c++) {
                    short half = rowTile[j * tile + c];
                    if (f16 && (half & 0x7C00) == 0x7C00) {
                        throw new ModelFormatException(tensor + ": the F16 value at row " + (group * GROUP_ROWS + j)
                                + ", column " + (c0 + c) + " is " + ((half & 0x3FF) == 0 ? "infinite" : "NaN"));
                    }
                    columnTile[c * GROUP_ROWS + j] = half;
                }
            }
            // Padding rows stay zero: their places in the tile are never written.
            MemorySegment.copy(columnTile, 0, to, LE_SHORT, values + 2L * c0 * GROUP_ROWS, count * GROUP_ROWS);
        }
    }

    /** Row {@code row} as floats into {@code out} at float index {@code outIndex}. */
    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        int columns = w.columns();
        boolean bf16 = w.type() == DType.BF16;
        long values = 2L * (row / GROUP_ROWS) * columns * GROUP_ROWS + 2L * (row % GROUP_ROWS);
        MemorySegment data = w.data();
        for (int c = 0; c < columns; c++) {
            short half = data.get(LE_SHORT, values + 2L * c * GROUP_ROWS);
            out.set(FLOAT, 4L * (outIndex + c), bf16 ? Float.intBitsToFloat(half << 16) : Float.float16ToFloat(half));
        }
    }

    /**
     * {@code out[t][r] = W[r] . x[t]} for the rows r in [rowStart, rowEnd), x read from the heap
     * copy {@code input.rows} (token rows {@code input.paddedColumns} apart; see Q8Products.matmul
     * for why the heap). A range that starts or ends inside a group computes the whole group and
     * stores its own rows.
     */
    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        int columns = w.columns();
        boolean bf16 = w.type() == DType.BF16;
        int shift = bf16 ? 16 : 13;
        int mask = bf16 ? -1 : 0x8FFFFFFF;
        float rebase = bf16 ? 1f : 0x1p112f;
        int firstGroup = rowStart / GROUP_ROWS;
        int endGroup = (rowEnd + GROUP_ROWS - 1) / GROUP_ROWS;
        float[] x = input.rows;
        MemorySegment data = w.data();
        if (tokens == 1) {
            float[] sums = scratch.lanes((endGroup - firstGroup) * GROUP_ROWS);
            for (int g = firstGroup; g < endGroup; g++) {
                oneGroup(data, 2L * g * columns * GROUP_ROWS, columns, shift, mask, rebase, x, sums,
                        (g - firstGroup) * GROUP_ROWS);
            }
            IntegerProducts.storeRows(input, sums, firstGroup * GROUP_ROWS, out, w.rows(), 0, 1, rowStart, rowEnd);
            return;
        }
        // Passes of 8 over the chunks converted to floats while more than 4 tokens are left, then
        // one of up to 4 converting in the loop; room for a last pass that repeats its last token.
        int passed = FloatPanels.passedTokens(tokens);
        int parked = (passed + PASS_TOKENS) * GROUP_ROWS;
        float[] sums = scratch.lanes(parked);
        int row = input.paddedColumns;
        float[] panel = FloatPanels.panel(scratch);
        // Up to 4 tokens make one pass over a group: nothing to keep in L2 for another, so no
        // chunks (parking the chains at every 1,024 columns cost 5-10% at 2-4 tokens).
        int chunk = passed > 0 ? FloatPanels.CHUNK_COLUMNS : columns;
        for (int g = firstGroup; g < endGroup; g++) {
            java.util.Arrays.fill(sums, 0, parked, 0f);
            long group = 2L * g * columns * GROUP_ROWS;
            for (int c0 = 0; c0 < columns; c0 += chunk) {
                int c1 = Math.min(columns, c0 + chunk);
                if (passed > 0) {
                    toFloats(data, group + 2L * c0 * GROUP_ROWS, c1 - c0, shift, mask, rebase, panel);
                    FloatPanels.passes(panel, c1 - c0, x, row, c0, tokens, passed, sums);
                }
                int t0 = passed;
                if (t0 < tokens) {
                    int count = tokens - t0;
                    fourTokens(data, group, c0, c1, shift, mask, rebase, x, t0 * row,
                            (t0 + Math.min(1, count - 1)) * row, (t0 + Math.min(2, count - 1)) * row,
                            (t0 + Math.min(3, count - 1)) * row, sums, t0 * GROUP_ROWS);
                }
            }
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            IntegerProducts.storeRows(input, sums, g * GROUP_ROWS, out, w.rows(), 0, tokens, first, end);
        }
    }

    /**
     * One token against one group (columns from byte {@code values}): the sums of its rows into
     * {@code sums} from index {@code at}.
     *
     * <p>How the column-major kernels keep C2's code tight: offsets linear in an int counter with a
     * constant stride let C2 check the segment's bounds once per call (a b / BLOCK index or a
     * variable stride defeats that; it doubled the time), and the counter starts at 1 because a
     * load at exactly the counter's offset also kept every check in the loop (C2 in JDK 25; with
     * k - 1 the checks go). The conversion is written out per vector: a helper taking or returning
     * a vector, even a small one, pushes the Vector API's own calls past C2's inlining depth, and
     * its vectors are then boxed on the heap.
     */
    private static void oneGroup(MemorySegment w, long values, int columns, int shift, int mask, float rebase,
                                 float[] x, float[] sums, int at) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int k = 1; k <= columns; k++) { // from 1: see above
            int column = k - 1;
            long o = values + 2L * column * GROUP_ROWS;
            FloatVector v = FloatVector.broadcast(F, x[column]);
            a0 = ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase).fma(v, a0);
            a1 = ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 2 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase).fma(v, a1);
            a2 = ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 4 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase).fma(v, a2);
            a3 = ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 6 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase).fma(v, a3);
        }
        a0.intoArray(sums, at);
        a1.intoArray(sums, at + FL);
        a2.intoArray(sums, at + 2 * FL);
        a3.intoArray(sums, at + 3 * FL);
    }

    /**
     * Four tokens (rows from indices x0..x3 of {@code x}) against columns [c0, c1) of one group
     * (from byte {@code group}): each column's values converted once for the four, the same
     * chains as {@link #oneGroup}, resumed from and parked in {@code sums} at {@code at + token *
     * GROUP_ROWS + row}.
     */
    private static void fourTokens(MemorySegment w, long group, int c0, int c1, int shift, int mask, float rebase,
                                   float[] x, int x0, int x1, int x2, int x3, float[] sums, int at) {
        FloatVector a00 = FloatVector.fromArray(F, sums, at), a10 = FloatVector.fromArray(F, sums, at + FL);
        FloatVector a20 = FloatVector.fromArray(F, sums, at + 2 * FL), a30 = FloatVector.fromArray(F, sums, at + 3 * FL);
        int t1 = at + GROUP_ROWS, t2 = at + 2 * GROUP_ROWS, t3 = at + 3 * GROUP_ROWS;
        FloatVector a01 = FloatVector.fromArray(F, sums, t1), a11 = FloatVector.fromArray(F, sums, t1 + FL);
        FloatVector a21 = FloatVector.fromArray(F, sums, t1 + 2 * FL), a31 = FloatVector.fromArray(F, sums, t1 + 3 * FL);
        FloatVector a02 = FloatVector.fromArray(F, sums, t2), a12 = FloatVector.fromArray(F, sums, t2 + FL);
        FloatVector a22 = FloatVector.fromArray(F, sums, t2 + 2 * FL), a32 = FloatVector.fromArray(F, sums, t2 + 3 * FL);
        FloatVector a03 = FloatVector.fromArray(F, sums, t3), a13 = FloatVector.fromArray(F, sums, t3 + FL);
        FloatVector a23 = FloatVector.fromArray(F, sums, t3 + 2 * FL), a33 = FloatVector.fromArray(F, sums, t3 + 3 * FL);
        long values = group + 2L * c0 * GROUP_ROWS;
        int count = c1 - c0;
        for (int k = 1; k <= count; k++) {
            int column = c0 + k - 1;
            long o = values + 2L * (k - 1) * GROUP_ROWS;
            FloatVector v0 = FloatVector.broadcast(F, x[x0 + column]);
            FloatVector v1 = FloatVector.broadcast(F, x[x1 + column]);
            FloatVector v2 = FloatVector.broadcast(F, x[x2 + column]);
            FloatVector v3 = FloatVector.broadcast(F, x[x3 + column]);
            FloatVector q = ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase);
            a00 = q.fma(v0, a00);
            a01 = q.fma(v1, a01);
            a02 = q.fma(v2, a02);
            a03 = q.fma(v3, a03);
            q = ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 2 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase);
            a10 = q.fma(v0, a10);
            a11 = q.fma(v1, a11);
            a12 = q.fma(v2, a12);
            a13 = q.fma(v3, a13);
            q = ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 4 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase);
            a20 = q.fma(v0, a20);
            a21 = q.fma(v1, a21);
            a22 = q.fma(v2, a22);
            a23 = q.fma(v3, a23);
            q = ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 6 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase);
            a30 = q.fma(v0, a30);
            a31 = q.fma(v1, a31);
            a32 = q.fma(v2, a32);
            a33 = q.fma(v3, a33);
        }
        a00.intoArray(sums, at);
        a10.intoArray(sums, at + FL);
        a20.intoArray(sums, at + 2 * FL);
        a30.intoArray(sums, at + 3 * FL);
        a01.intoArray(sums, t1);
        a11.intoArray(sums, t1 + FL);
        a21.intoArray(sums, t1 + 2 * FL);
        a31.intoArray(sums, t1 + 3 * FL);
        a02.intoArray(sums, t2);
        a12.intoArray(sums, t2 + FL);
        a22.intoArray(sums, t2 + 2 * FL);
        a32.intoArray(sums, t2 + 3 * FL);
        a03.intoArray(sums, t3);
        a13.intoArray(sums, t3 + FL);
        a23.intoArray(sums, t3 + 2 * FL);
        a33.intoArray(sums, t3 + 3 * FL);
    }

    /**
     * Columns [0, count) of a group's chunk (from byte {@code from} of {@code w}), converted
     * exactly as in {@link #oneGroup}, into {@code panel} in {@link FloatPanels}' layout.
     */
    private static void toFloats(MemorySegment w, long from, int count, int shift, int mask, float rebase,
                                 float[] panel) {
        int second = count * 2 * FL;
        for (int k = 1; k <= count; k++) { // from 1: see oneGroup
            int column = k - 1;
            long o = from + 2L * column * GROUP_ROWS;
            int p = column * 2 * FL;
            ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase)
                    .intoArray(panel, p);
            ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 2 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase)
                    .intoArray(panel, p + FL);
            ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 4 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase)
                    .intoArray(panel, second + p);
            ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, o + 6 * FL, LE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, shift).and(mask).reinterpretAsFloats().mul(rebase)
                    .intoArray(panel, second + p + FL);
        }
    }
}
