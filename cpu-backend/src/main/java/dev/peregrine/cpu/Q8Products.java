package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Q8_0 products with a vector lane per weight row ("column-major groups", copied from the file's
 * layout at load), against the activations as floats.
 *
 * <p>Why: streaming weights from memory, one core keeps only as many cache-line misses in flight as
 * its out-of-order window reaches, so a kernel's speed from DRAM falls with the instructions it
 * spends per byte and with every break in the stream. Row-major Q8_0 (a block's scale, then its 32
 * values, rows interleaved in groups) costs a scalar scale conversion and broadcast per row and
 * block and a lane reduction per row; here a column of {@link #GROUP_ROWS} rows is one
 * {@code GROUP_ROWS}-byte load, a block's scales a few vector loads, and the loop reads one
 * unbroken stream of columns (KernelBench decode, 2,048 x 8,192, one core, from DRAM: 17.5 -> 25.6
 * GB/s; llama3.2-1b Q8_0 decode 1.27x; see docs/PERFORMANCE.md).
 *
 * <p>Layout: rows in groups of {@code GROUP_ROWS} (the last padded with zero rows); first every
 * group's columns, group after group, column after column, a column being its rows' stored values
 * q (one signed byte each, row order); then every group's scales, group after group, block of 32
 * columns after block, a block being its rows' scales d (halves, as in the file).
 *
 * <p>Arithmetic, per (row, token), in floats, with no lane sum at the end: per block of 32
 * columns {@code s = fma(q, x, s)} over its columns in order from zero, then {@code acc = fma(s,
 * d, acc)}, block after block (q the stored value, d the block's scale: llama.cpp's order for
 * Q8_0 by Q8_0, with x unquantised). Multiplying each value by its scale instead, as the weight q
 * d, cost a fifth of the one-token loop's instructions. Every kernel, for one token or many, does
 * exactly this, so results do not depend on the batch.
 */
final class Q8Products {
    /**
     * Rows per group: four float vectors' worth, so a column is one 64-byte line with AVX-512 (the
     * integer products' group, whose {@link IntegerProducts#storeRows} stores these sums too).
     */
    static final int GROUP_ROWS = IntegerProducts.GROUP_ROWS;
    private static final int BLOCK = 32;
    /** Q8_0: an f16 scale and 32 signed bytes per block. */
    private static final int Q8_BLOCK_BYTES = 34;
    /** Tokens a pass of the several-token kernel. */
    private static final int PASS_TOKENS = 4;
    /**
     * From this many tokens on, passes read the group's chunks converted to floats ({@link
     * FloatPanels#blockPasses}, 6 tokens a pass); below, passes of 6 convert each column in the
     * loop. Measured when passes of 8 multiplied each value by its scale: KernelBench prefill Q8_0, 2,048
     * x 8,192, one core, converting in the loop / from floats: 16 tokens 153 / 126 GFLOP/s, 32 175 /
     * 163, 48 178 / 179, 64 178 / 191, 128 188 / 217-224 (the panel's write and its reads from L2
     * cost more than its saved conversions when few passes share it).
     */
    private static final int PANEL_TOKENS = 48;

    private static final VectorSpecies<Byte> ROW_BYTES = VectorKernels.QUARTER_BYTES;
    private static final VectorSpecies<Short> ROW_HALVES = VectorKernels.HALF_SHORTS;
    private static final VectorSpecies<Integer> I = VectorKernels.I;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT;
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Q8Products() {
    }

    /** Bytes of the column-major copy: a byte per value and a half per block of 32, rows padded to a group. */
    static long bytes(int rows, int columns) {
        return (long) IntegerProducts.groups(rows) * GROUP_ROWS * columns / BLOCK * Q8_BLOCK_BYTES;
    }

    /** Byte offset of group {@code g}'s scales in the copy (after every group's columns). */
    private static long scalesAt(int rows, int columns, int g) {
        return IntegerProducts.headerAt(rows, (long) GROUP_ROWS * columns, g, 0, 1, columns / BLOCK * GROUP_ROWS * 2);
    }

    /**
     * Writes group {@code group} of the column-major copy {@code to} of the {@code type} rows
     * {@code from} (the file's layout, {@code rowBytes} a row): Q8_0, or Q5_0, whose values are
     * signed bytes too (see {@link #storedValue}); {@code to} starts zeroed, so padding
     * rows have zero scales and values.
     *
     * @throws dev.peregrine.ModelFormatException if a block's scale is infinite or NaN (the
     *     kernels convert finite halves only)
     */
    static void copyGroup(DType type, String tensor, MemorySegment from, long rowBytes, int rows, int columns,
                          MemorySegment to, int group) {
        int blocks = columns / BLOCK;
        int blockBytes = type.blockBytes();
        long scales = scalesAt(rows, columns, group);
        long values = (long) group * columns * GROUP_ROWS;
        for (int j = 0; j < GROUP_ROWS; j++) {
            int row = group * GROUP_ROWS + j;
            if (row >= rows) {
                break;
            }
            for (int b = 0; b < blocks; b++) {
                long at = row * rowBytes + (long) b * blockBytes;
                to.set(SHORT, scales + 2L * ((long) b * GROUP_ROWS + j),
                        IntegerProducts.finiteScale(tensor, type.toString(), "scale", from, at, row, b));
                for (int k = 0; k < BLOCK; k++) {
                    to.set(ValueLayout.JAVA_BYTE, values + (long) (b * BLOCK + k) * GROUP_ROWS + j,
                            (byte) storedValue(type, from, at, k));
                }
            }
        }
    }

    /**
     * Value k (0-31) of the file's block at {@code at}, of which the weight is this times the
     * block's scale (as {@code Dequant} makes it): Q8_0's byte, Q5_0's 5 bits q - 16.
     */
    private static int storedValue(DType type, MemorySegment from, long at, int k) {
        return switch (type) {
            case Q8_0 -> from.get(ValueLayout.JAVA_BYTE, at + 2 + k);
            case Q5_0 -> {
                int fifth = from.get(LE_INT, at + 2) >>> k & 1;
                yield (IntegerProducts.nibble(from, at + 6, k) | fifth << 4) - 16;
            }
            default -> throw new IllegalArgumentException(type + " is not kept as Q8_0");
        };
    }

    /** Row {@code row} as floats (q * d, as {@code Dequant} makes them) into {@code out} at float index {@code outIndex}. */
    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        int columns = w.columns();
        int group = row / GROUP_ROWS;
        int lane = row % GROUP_ROWS;
        long scales = scalesAt(w.rows(), columns, group);
        long values = (long) group * columns * GROUP_ROWS;
        MemorySegment data = w.data();
        for (int c = 0; c < columns; c++) {
            float d = Float.float16ToFloat(data.get(SHORT, scales + 2L * ((long) (c / BLOCK) * GROUP_ROWS + lane)));
            byte q = data.get(ValueLayout.JAVA_BYTE, values + (long) c * GROUP_ROWS + lane);
            out.set(FLOAT, 4L * (outIndex + c), q * d);
        }
    }

    /**
     * {@code out[t][r] = W[r] . x[t]} for the rows r in [rowStart, rowEnd), x read from the heap
     * copy {@code input.rows} (token rows {@code input.paddedColumns} apart): a float array's
     * index check is one compare, where a segment's access in this loop also checked its class and
     * session each time, and C2 then sometimes spilled the sums to the stack (decode 3x slower in
     * some JVM runs). A range that starts or ends inside a group computes the whole group and
     * stores its own rows.
     */
    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        int columns = w.columns();
        int firstGroup = rowStart / GROUP_ROWS;
        int endGroup = (rowEnd + GROUP_ROWS - 1) / GROUP_ROWS;
        int blocks = columns / BLOCK;
        float[] x = input.rows;
        if (tokens == 1) {
            float[] sums = scratch.lanes((endGroup - firstGroup) * GROUP_ROWS);
            float[] d = scratch.blockScales(blocks * GROUP_ROWS);
            for (int g = firstGroup; g < endGroup; g++) {
                groupScales(w.data(), scalesAt(w.rows(), columns, g), blocks, d);
                oneGroup(w.data(), (long) g * columns * GROUP_ROWS, d, columns, x, sums, (g - firstGroup) * GROUP_ROWS);
            }
            IntegerProducts.storeRows(input, sums, firstGroup * GROUP_ROWS, out, w.rows(), 0, 1, rowStart, rowEnd);
            return;
        }
        // Passes of 6 while more than 4 tokens are left (over half the group converting in the
        // loop, or from PANEL_TOKENS on over the group's chunks converted to floats), then one of
        // up to 4 over the whole group converting in the loop.
        int passed = FloatPanels.blockPassedTokens(tokens);
        float[] sums = scratch.lanes(Math.max(passed, PASS_TOKENS) * GROUP_ROWS);
        float[] d = scratch.blockScales(blocks * GROUP_ROWS);
        float[] panel = FloatPanels.panel(scratch);
        int row = input.paddedColumns;
        int last = tokens - 1;
        for (int g = firstGroup; g < endGroup; g++) {
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            groupScales(w.data(), scalesAt(w.rows(), columns, g), blocks, d);
            long values = (long) g * columns * GROUP_ROWS;
            if (passed > 0 && tokens < PANEL_TOKENS) {
                // The group's weights from memory in the first pass, from L2 in the others.
                for (int t0 = 0; t0 < passed; t0 += FloatPanels.BLOCK_PASS_TOKENS) {
                    for (int half = 0; half < 2; half++) {
                        sixTokens(w.data(), values, half, d, columns, x, t0 * row, Math.min(t0 + 1, last) * row,
                                Math.min(t0 + 2, last) * row, Math.min(t0 + 3, last) * row,
                                Math.min(t0 + 4, last) * row, Math.min(t0 + 5, last) * row, sums, t0 * GROUP_ROWS);
                    }
                }
                IntegerProducts.storeRows(input, sums, g * GROUP_ROWS, out, w.rows(), 0, Math.min(passed, tokens), first, end);
            } else if (passed > 0) {
                java.util.Arrays.fill(sums, 0, passed * GROUP_ROWS, 0f);
                for (int c0 = 0; c0 < columns; c0 += FloatPanels.CHUNK_COLUMNS) {
                    int c1 = Math.min(columns, c0 + FloatPanels.CHUNK_COLUMNS);
                    toFloats(w.data(), values, c0, c1, panel);
                    FloatPanels.blockPasses(panel, c1 - c0, x, row, c0, tokens, passed, sums, d);
                }
                IntegerProducts.storeRows(input, sums, g * GROUP_ROWS, out, w.rows(), 0, Math.min(passed, tokens), first, end);
            }
            int t0 = passed;
            if (t0 < tokens) {
                int count = tokens - t0;
                java.util.Arrays.fill(sums, 0, PASS_TOKENS * GROUP_ROWS, 0f);
                fourTokens(w.data(), values, d, columns, x, t0 * row,
                        (t0 + Math.min(1, count - 1)) * row, (t0 + Math.min(2, count - 1)) * row,
                        (t0 + Math.min(3, count - 1)) * row, sums);
                IntegerProducts.storeRows(input, sums, g * GROUP_ROWS, out, w.rows(), t0, count, first, end);
            }
        }
    }

    /**
     * Columns [c0, c1) of a group (columns from byte {@code values}) as floats q into {@code
     * panel} in {@link FloatPanels}' layout (the scales are applied per block by the passes).
     */
    private static void toFloats(MemorySegment w, long values, int c0, int c1, float[] panel) {
        int count = c1 - c0;
        int second = count * 2 * FL;
        long from = values + (long) c0 * GROUP_ROWS;
        for (int k = 1; k <= count; k++) { // from 1: see HalfProducts.oneGroup
            int c = k - 1;
            long o = from + (long) c * GROUP_ROWS;
            int p = c * 2 * FL;
            ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0))
                    .intoArray(panel, p);
            ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0))
                    .intoArray(panel, p + FL);
            ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + 2 * FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0))
                    .intoArray(panel, second + p);
            ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + 3 * FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0))
                    .intoArray(panel, second + p + FL);
        }
    }

    /**
     * The scales of one group's blocks (from byte {@code scales}) as floats into {@code d}, block
     * after block, {@code GROUP_ROWS} each (the finite-only conversion of HalfProducts).
     */
    private static void groupScales(MemorySegment w, long scales, int blocks, float[] d) {
        for (int i = 0; i < blocks * GROUP_ROWS; i += FL) {
            ((IntVector) ShortVector.fromMemorySegment(ROW_HALVES, w, scales + 2L * i, NATIVE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF)
                    .reinterpretAsFloats().mul(0x1p112f).intoArray(d, i);
        }
    }

    /**
     * One token against one group (columns from byte {@code values}, its scales as floats in
     * {@code d}): the sums of its rows into {@code sums} from index {@code at}. One loop over the
     * columns with offsets linear in the counter (from 1, as in HalfProducts.oneGroup): a block's
     * products q x build up in b, which after the block's last column goes into a times the
     * block's scales. (Multiplying each converted column by its scale, as the weights q d, cost
     * a fifth of the loop's instructions: KernelBench decode one core 16-18 -> 18-21 GB/s. Earlier
     * forms: converting the scales from halves in the loop, or one loop over several groups parking
     * each group's sums at its end, were compiled by C2 with the sums spilled to the stack in about
     * one JVM run of four, decode 2x slower.)
     */
    private static void oneGroup(MemorySegment w, long values, float[] d, int columns, float[] x, float[] sums,
                                 int at) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int s = 0;
        for (int k = 1; k <= columns; k++) {
            int column = k - 1;
            long o = values + column * (long) GROUP_ROWS;
            FloatVector v = FloatVector.broadcast(F, x[column]);
            b0 = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0)).fma(v, b0);
            b1 = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0)).fma(v, b1);
            b2 = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + 2 * FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0)).fma(v, b2);
            b3 = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + 3 * FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0)).fma(v, b3);
            if ((k & (BLOCK - 1)) == 0) { // the block's last column
                a0 = b0.fma(FloatVector.fromArray(F, d, s), a0);
                a1 = b1.fma(FloatVector.fromArray(F, d, s + FL), a1);
                a2 = b2.fma(FloatVector.fromArray(F, d, s + 2 * FL), a2);
                a3 = b3.fma(FloatVector.fromArray(F, d, s + 3 * FL), a3);
                b0 = FloatVector.zero(F);
                b1 = b0;
                b2 = b0;
                b3 = b0;
                s += GROUP_ROWS;
            }
        }
        a0.intoArray(sums, at);
        a1.intoArray(sums, at + FL);
        a2.intoArray(sums, at + 2 * FL);
        a3.intoArray(sums, at + 3 * FL);
    }

    /**
     * Four tokens (rows from indices x0..x3 of {@code x}) against one group (its scales as floats
     * in {@code d}): each column's values converted once for the four, the same chains as {@link
     * #oneGroup}, a block's products in registers and added times the block's scales into the
     * zeroed {@code sums} (at {@code token * GROUP_ROWS + row}) after its last column. (Half a
     * group a call, 8 sums instead of 16, was slower with AVX-512 and no faster at 256 bits: 130
     * and 70 against 147 and 75 GFLOP/s on one core, KernelBench prefill.)
     */
    private static void fourTokens(MemorySegment w, long values, float[] d, int columns, float[] x, int x0, int x1,
                                   int x2, int x3, float[] sums) {
        FloatVector b00 = FloatVector.zero(F), b01 = b00, b02 = b00, b03 = b00;
        FloatVector b10 = b00, b11 = b00, b12 = b00, b13 = b00;
        FloatVector b20 = b00, b21 = b00, b22 = b00, b23 = b00;
        FloatVector b30 = b00, b31 = b00, b32 = b00, b33 = b00;
        int s = 0;
        for (int k = 1; k <= columns; k++) {
            int column = k - 1;
            long o = values + column * (long) GROUP_ROWS;
            FloatVector v0 = FloatVector.broadcast(F, x[x0 + column]);
            FloatVector v1 = FloatVector.broadcast(F, x[x1 + column]);
            FloatVector v2 = FloatVector.broadcast(F, x[x2 + column]);
            FloatVector v3 = FloatVector.broadcast(F, x[x3 + column]);
            FloatVector q = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0));
            b00 = q.fma(v0, b00);
            b01 = q.fma(v1, b01);
            b02 = q.fma(v2, b02);
            b03 = q.fma(v3, b03);
            q = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0));
            b10 = q.fma(v0, b10);
            b11 = q.fma(v1, b11);
            b12 = q.fma(v2, b12);
            b13 = q.fma(v3, b13);
            q = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + 2 * FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0));
            b20 = q.fma(v0, b20);
            b21 = q.fma(v1, b21);
            b22 = q.fma(v2, b22);
            b23 = q.fma(v3, b23);
            q = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + 3 * FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0));
            b30 = q.fma(v0, b30);
            b31 = q.fma(v1, b31);
            b32 = q.fma(v2, b32);
            b33 = q.fma(v3, b33);
            if ((k & (BLOCK - 1)) == 0) { // the block's last column: b times its scales into sums
                FloatVector d0 = FloatVector.fromArray(F, d, s);
                FloatVector d1 = FloatVector.fromArray(F, d, s + FL);
                FloatVector d2 = FloatVector.fromArray(F, d, s + 2 * FL);
                FloatVector d3 = FloatVector.fromArray(F, d, s + 3 * FL);
                b00.fma(d0, FloatVector.fromArray(F, sums, 0)).intoArray(sums, 0);
                b10.fma(d1, FloatVector.fromArray(F, sums, FL)).intoArray(sums, FL);
                b20.fma(d2, FloatVector.fromArray(F, sums, 2 * FL)).intoArray(sums, 2 * FL);
                b30.fma(d3, FloatVector.fromArray(F, sums, 3 * FL)).intoArray(sums, 3 * FL);
                b01.fma(d0, FloatVector.fromArray(F, sums, GROUP_ROWS)).intoArray(sums, GROUP_ROWS);
                b11.fma(d1, FloatVector.fromArray(F, sums, GROUP_ROWS + FL)).intoArray(sums, GROUP_ROWS + FL);
                b21.fma(d2, FloatVector.fromArray(F, sums, GROUP_ROWS + 2 * FL)).intoArray(sums, GROUP_ROWS + 2 * FL);
                b31.fma(d3, FloatVector.fromArray(F, sums, GROUP_ROWS + 3 * FL)).intoArray(sums, GROUP_ROWS + 3 * FL);
                b02.fma(d0, FloatVector.fromArray(F, sums, 2 * GROUP_ROWS)).intoArray(sums, 2 * GROUP_ROWS);
                b12.fma(d1, FloatVector.fromArray(F, sums, 2 * GROUP_ROWS + FL)).intoArray(sums, 2 * GROUP_ROWS + FL);
                b22.fma(d2, FloatVector.fromArray(F, sums, 2 * GROUP_ROWS + 2 * FL)).intoArray(sums, 2 * GROUP_ROWS + 2 * FL);
                b32.fma(d3, FloatVector.fromArray(F, sums, 2 * GROUP_ROWS + 3 * FL)).intoArray(sums, 2 * GROUP_ROWS + 3 * FL);
                b03.fma(d0, FloatVector.fromArray(F, sums, 3 * GROUP_ROWS)).intoArray(sums, 3 * GROUP_ROWS);
                b13.fma(d1, FloatVector.fromArray(F, sums, 3 * GROUP_ROWS + FL)).intoArray(sums, 3 * GROUP_ROWS + FL);
                b23.fma(d2, FloatVector.fromArray(F, sums, 3 * GROUP_ROWS + 2 * FL)).intoArray(sums, 3 * GROUP_ROWS + 2 * FL);
                b33.fma(d3, FloatVector.fromArray(F, sums, 3 * GROUP_ROWS + 3 * FL)).intoArray(sums, 3 * GROUP_ROWS + 3 * FL);
                b00 = FloatVector.zero(F);
                b01 = b00;
                b02 = b00;
                b03 = b00;
                b10 = b00;
                b11 = b00;
                b12 = b00;
                b13 = b00;
                b20 = b00;
                b21 = b00;
                b22 = b00;
                b23 = b00;
                b30 = b00;
                b31 = b00;
                b32 = b00;
                b33 = b00;
                s += GROUP_ROWS;
            }
        }
    }

    /**
     * Six tokens (rows from indices x0..x5 of {@code x}) against half of one group (its rows
     * {@code half * 2 * FL} on; the group's scales as floats in {@code d}): the chains of {@link
     * #oneGroup}, each converted vector met by 6 tokens; the 12 block sums and the 12 sums stay in
     * registers (8 tokens a pass, adding each block's sums into memory, cost 19% at 16 tokens); the
     * sums into {@code sums} at {@code at + token * GROUP_ROWS + row}.
     */
    private static void sixTokens(MemorySegment w, long values, int half, float[] d, int columns, float[] x, int x0,
                                  int x1, int x2, int x3, int x4, int x5, float[] sums, int at) {
        FloatVector a00 = FloatVector.zero(F), a10 = a00, a01 = a00, a11 = a00, a02 = a00, a12 = a00;
        FloatVector a03 = a00, a13 = a00, a04 = a00, a14 = a00, a05 = a00, a15 = a00;
        FloatVector b00 = a00, b10 = a00, b01 = a00, b11 = a00, b02 = a00, b12 = a00;
        FloatVector b03 = a00, b13 = a00, b04 = a00, b14 = a00, b05 = a00, b15 = a00;
        int rows = half * 2 * FL;
        long first = values + rows;
        int s = rows;
        for (int k = 1; k <= columns; k++) {
            int column = k - 1;
            long o = first + column * (long) GROUP_ROWS;
            FloatVector q0 = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0));
            FloatVector q1 = ((FloatVector) ByteVector.fromMemorySegment(ROW_BYTES, w, o + FL, NATIVE)
                    .convertShape(VectorOperators.B2F, F, 0));
            FloatVector v = FloatVector.broadcast(F, x[x0 + column]);
            b00 = q0.fma(v, b00);
            b10 = q1.fma(v, b10);
            v = FloatVector.broadcast(F, x[x1 + column]);
            b01 = q0.fma(v, b01);
            b11 = q1.fma(v, b11);
            v = FloatVector.broadcast(F, x[x2 + column]);
            b02 = q0.fma(v, b02);
            b12 = q1.fma(v, b12);
            v = FloatVector.broadcast(F, x[x3 + column]);
            b03 = q0.fma(v, b03);
            b13 = q1.fma(v, b13);
            v = FloatVector.broadcast(F, x[x4 + column]);
            b04 = q0.fma(v, b04);
            b14 = q1.fma(v, b14);
            v = FloatVector.broadcast(F, x[x5 + column]);
            b05 = q0.fma(v, b05);
            b15 = q1.fma(v, b15);
            if ((k & (BLOCK - 1)) == 0) { // the block's last column
                FloatVector d0 = FloatVector.fromArray(F, d, s);
                FloatVector d1 = FloatVector.fromArray(F, d, s + FL);
                a00 = b00.fma(d0, a00);
                a10 = b10.fma(d1, a10);
                a01 = b01.fma(d0, a01);
                a11 = b11.fma(d1, a11);
                a02 = b02.fma(d0, a02);
                a12 = b12.fma(d1, a12);
                a03 = b03.fma(d0, a03);
                a13 = b13.fma(d1, a13);
                a04 = b04.fma(d0, a04);
                a14 = b14.fma(d1, a14);
                a05 = b05.fma(d0, a05);
                a15 = b15.fma(d1, a15);
                b00 = FloatVector.zero(F);
                b10 = b00;
                b01 = b00;
                b11 = b00;
                b02 = b00;
                b12 = b00;
                b03 = b00;
                b13 = b00;
                b04 = b00;
                b14 = b00;
                b05 = b00;
                b15 = b00;
                s += GROUP_ROWS;
            }
        }
        int r = at + rows;
        a00.intoArray(sums, r);
        a10.intoArray(sums, r + FL);
        a01.intoArray(sums, r + GROUP_ROWS);
        a11.intoArray(sums, r + GROUP_ROWS + FL);
        a02.intoArray(sums, r + 2 * GROUP_ROWS);
        a12.intoArray(sums, r + 2 * GROUP_ROWS + FL);
        a03.intoArray(sums, r + 3 * GROUP_ROWS);
        a13.intoArray(sums, r + 3 * GROUP_ROWS + FL);
        a04.intoArray(sums, r + 4 * GROUP_ROWS);
        a14.intoArray(sums, r + 4 * GROUP_ROWS + FL);
        a05.intoArray(sums, r + 5 * GROUP_ROWS);
        a15.intoArray(sums, r + 5 * GROUP_ROWS + FL);
    }
}
