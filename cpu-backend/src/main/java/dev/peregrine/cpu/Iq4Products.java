package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * IQ4_NL and IQ4_XS products with a vector lane per weight row ("column-major groups", copied
 * from the file's layout at load), against the activations as floats: {@link Q8Products}' scheme
 * with each column's 4-bit indices looked up in the non-uniform grid by one byte shuffle per half
 * column ({@code selectFrom}: {@code vpermb} with AVX-512 VBMI). The row kernels this replaces
 * looked up and converted every value with scalar steps per block (KernelBench decode, 2,048 x
 * 8,192, one core: IQ4_NL 8.2 -> 10.1, IQ4_XS 4.7 -> 9.7 GB/s).
 *
 * <p>Layout: rows in groups of {@link #GROUP_ROWS} (the last padded with zero rows); first every
 * group's columns, group after group, column after column, a column being {@code GROUP_ROWS / 2}
 * bytes whose byte j holds row j's index in its low nibble and row {@code j + GROUP_ROWS / 2}'s in
 * its high nibble (as {@link IntegerProducts}' Q4_0 columns); then every group's scales, group
 * after group, block of 32 columns after block, a block being its rows' scales as floats: IQ4_NL's
 * d, IQ4_XS's d * (s - 32) (not a half: 11 by 6 significant bits), as {@code Dequant} computes
 * them. Floats cost half a bit per weight more than the file's halves (IQ4_NL 4.5 -> 5 bits a
 * weight, IQ4_XS 4.25 -> 5) and save every conversion in the kernels.
 *
 * <p>Arithmetic, as Q8_0's ({@link Q8Products}): per (row, token) and block of 32 columns {@code s
 * = fma(grid[index], x, s)} over its columns in order from zero, then {@code acc = fma(s, scale,
 * acc)}, block after block (KernelBench decode, one core: 6.1 -> 7.1 GB/s against multiplying each
 * value by its scale). Every kernel does exactly that, so results do not depend on the batch.
 */
final class Iq4Products {
    static final int GROUP_ROWS = IntegerProducts.GROUP_ROWS;
    private static final int BLOCK = 32;
    private static final int COLUMN_BYTES = GROUP_ROWS / 2;
    /** Tokens a pass of the several-token kernel. */
    private static final int PASS_TOKENS = 4;

    /** A column's bytes, a lane each: masked (or shifted), the indices of half the column's rows. */
    private static final VectorSpecies<Byte> HALF_COLUMN = IntegerProducts.HALF_BYTES;
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    /** The grid in the first 16 lanes (the lanes an index reaches). */
    private static final ByteVector GRID = grid();

    private Iq4Products() {
    }

    private static ByteVector grid() {
        byte[] lanes = new byte[HALF_COLUMN.length()];
        for (int i = 0; i < 16; i++) {
            lanes[i] = (byte) DType.iq4Value(i);
        }
        return ByteVector.fromArray(HALF_COLUMN, lanes, 0);
    }

    static boolean handles(DType type) {
        return type == DType.IQ4_NL || type == DType.IQ4_XS;
    }

    /** Bytes of the column-major copy: half a byte per value and a float per block of 32, rows padded to a group. */
    static long bytes(int rows, int columns) {
        return (long) IntegerProducts.groups(rows) * GROUP_ROWS * columns / BLOCK * (BLOCK / 2 + Float.BYTES);
    }

    /** Byte offset of group {@code g}'s scales in the copy (after every group's columns). */
    private static long scalesAt(int rows, int columns, int g) {
        return IntegerProducts.headerAt(rows, (long) COLUMN_BYTES * columns, g, 0, 1,
                columns / BLOCK * GROUP_ROWS * Float.BYTES);
    }

    /**
     * Writes group {@code group} of the column-major copy {@code to} of the IQ4_NL or IQ4_XS rows
     * {@code from} (the file's layout, {@code rowBytes} a row); {@code to} starts zeroed, so padding
     * rows have zero scales.
     *
     * @throws dev.peregrine.ModelFormatException if a block's (IQ4_XS: super-block's) d is
     *     infinite or NaN
     */
    static void copyGroup(DType type, String tensor, MemorySegment from, long rowBytes, int rows, int columns,
                          MemorySegment to, int group) {
        int blocks = columns / BLOCK;
        long scales = scalesAt(rows, columns, group);
        long values = (long) group * columns * COLUMN_BYTES;
        boolean xs = type == DType.IQ4_XS;
        for (int j = 0; j < GROUP_ROWS && group * GROUP_ROWS + j < rows; j++) {
            int row = group * GROUP_ROWS + j;
            for (int b = 0; b < blocks; b++) {
                long blockAt = blockAt(type, from, rowBytes, row, b);
                float d = Float.float16ToFloat(IntegerProducts.finiteScale(tensor, type.toString(), "scale", from, blockAt, row,
                        xs ? b / 8 : b));
                float scale = d;
                if (xs) {
                    int sub = b % 8;
                    int scalesHigh = from.get(LE_SHORT, blockAt + 2) & 0xFFFF;
                    int s = (from.get(ValueLayout.JAVA_BYTE, blockAt + 4 + sub / 2) >>> 4 * (sub % 2) & 0x0F)
                            | (scalesHigh >>> 2 * sub & 3) << 4;
                    scale = d * (s - 32);
                }
                to.set(FLOAT, scales + 4L * ((long) b * GROUP_ROWS + j), scale);
            }
        }
        // Each column byte once: row j's index, and row j + COLUMN_BYTES's above it (0 past the last row).
        for (int j = 0; j < COLUMN_BYTES && group * GROUP_ROWS + j < rows; j++) {
            int low = group * GROUP_ROWS + j;
            int high = low + COLUMN_BYTES;
            for (int b = 0; b < blocks; b++) {
                long lowNibbles = nibblesAt(type, from, rowBytes, low, b);
                long highNibbles = high < rows ? nibblesAt(type, from, rowBytes, high, b) : -1;
                for (int k = 0; k < BLOCK; k++) {
                    int index = IntegerProducts.nibble(from, lowNibbles, k);
                    if (highNibbles >= 0) {
                        index |= IntegerProducts.nibble(from, highNibbles, k) << 4;
                    }
                    to.set(ValueLayout.JAVA_BYTE, values + (long) (b * BLOCK + k) * COLUMN_BYTES + j, (byte) index);
                }
            }
        }
    }

    /** Byte offset of the file's block holding block {@code b} (of 32 values) of row {@code row}: IQ4_XS's super-block. */
    private static long blockAt(DType type, MemorySegment from, long rowBytes, int row, int b) {
        return row * rowBytes + (long) (type == DType.IQ4_XS ? b / 8 : b) * type.blockBytes();
    }

    /** Byte offset of the 16 bytes of nibbles of block {@code b} of row {@code row} (laid out as Q4_0's). */
    private static long nibblesAt(DType type, MemorySegment from, long rowBytes, int row, int b) {
        return blockAt(type, from, rowBytes, row, b) + (type == DType.IQ4_XS ? 8 + 16L * (b % 8) : 2);
    }

    /** Row {@code row} as floats (scale * grid value, as {@code Dequant} makes them) into {@code out} at float index {@code outIndex}. */
    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        int columns = w.columns();
        int group = row / GROUP_ROWS;
        int lane = row % GROUP_ROWS;
        long scales = scalesAt(w.rows(), columns, group);
        long values = (long) group * columns * COLUMN_BYTES + lane % COLUMN_BYTES;
        MemorySegment data = w.data();
        for (int c = 0; c < columns; c++) {
            float scale = data.get(FLOAT, scales + 4L * ((long) (c / BLOCK) * GROUP_ROWS + lane));
            int packed = data.get(ValueLayout.JAVA_BYTE, values + (long) c * COLUMN_BYTES) & 0xFF;
            out.set(FLOAT, 4L * (outIndex + c), scale * DType.iq4Value(lane < COLUMN_BYTES ? packed & 0x0F : packed >>> 4));
        }
    }

    /**
     * {@code out[t][r] = W[r] . x[t]} for the rows r in [rowStart, rowEnd), x read from the heap
     * copy {@code input.rows} (see Q8Products.matmul); a range that starts or ends inside a group
     * computes the whole group and stores its own rows.
     */
    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        int columns = w.columns();
        int firstGroup = rowStart / GROUP_ROWS;
        int endGroup = (rowEnd + GROUP_ROWS - 1) / GROUP_ROWS;
        int blocks = columns / BLOCK;
        float[] x = input.rows;
        float[] d = scratch.blockScales(blocks * GROUP_ROWS);
        MemorySegment data = w.data();
        if (tokens == 1) {
            float[] sums = scratch.lanes((endGroup - firstGroup) * GROUP_ROWS);
            for (int g = firstGroup; g < endGroup; g++) {
                MemorySegment.copy(data, FLOAT, scalesAt(w.rows(), columns, g), d, 0, blocks * GROUP_ROWS);
                oneGroup(data, (long) g * columns * COLUMN_BYTES, d, columns, x, sums, (g - firstGroup) * GROUP_ROWS);
            }
            IntegerProducts.storeRows(input, sums, firstGroup * GROUP_ROWS, out, w.rows(), 0, 1, rowStart, rowEnd);
            return;
        }
        // Passes of 6 over the group's chunks converted to floats while more than 4 tokens are
        // left (measured with passes of 8 and the scales in the panel, KernelBench prefill IQ4_NL,
        // one core, 4-token passes converting in the loop / panel: 8 tokens 82 / 87 GFLOP/s, 16
        // 108 / 148, 32 111 / 185, 128 112 / 225), then one of up to 4 over the whole group
        // converting in the loop.
        int passed = FloatPanels.blockPassedTokens(tokens);
        float[] sums = scratch.lanes(Math.max(passed, PASS_TOKENS) * GROUP_ROWS);
        float[] panel = FloatPanels.panel(scratch);
        int row = input.paddedColumns;
        for (int g = firstGroup; g < endGroup; g++) {
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            MemorySegment.copy(data, FLOAT, scalesAt(w.rows(), columns, g), d, 0, blocks * GROUP_ROWS);
            if (passed > 0) {
                java.util.Arrays.fill(sums, 0, passed * GROUP_ROWS, 0f);
                for (int c0 = 0; c0 < columns; c0 += FloatPanels.CHUNK_COLUMNS) {
                    int c1 = Math.min(columns, c0 + FloatPanels.CHUNK_COLUMNS);
                    toFloats(data, (long) g * columns * COLUMN_BYTES, c0, c1, panel);
                    FloatPanels.blockPasses(panel, c1 - c0, x, row, c0, tokens, passed, sums, d);
                }
                IntegerProducts.storeRows(input, sums, g * GROUP_ROWS, out, w.rows(), 0, Math.min(passed, tokens), first, end);
            }
            int t0 = passed;
            if (t0 < tokens) {
                int count = tokens - t0;
                // A short pass repeats its last token; those sums are not stored.
                java.util.Arrays.fill(sums, 0, PASS_TOKENS * GROUP_ROWS, 0f);
                fourTokens(data, (long) g * columns * COLUMN_BYTES, d, columns, x, t0 * row,
                        (t0 + Math.min(1, count - 1)) * row, (t0 + Math.min(2, count - 1)) * row,
                        (t0 + Math.min(3, count - 1)) * row, sums);
                IntegerProducts.storeRows(input, sums, g * GROUP_ROWS, out, w.rows(), t0, count, first, end);
            }
        }
    }

    /**
     * Columns [c0, c1) of a group (columns from byte {@code values}) as grid values into {@code
     * panel} in {@link FloatPanels}' layout (the low nibbles' rows are the first half of the
     * group, the high nibbles' the second; the scales are applied per block by the passes).
     */
    private static void toFloats(MemorySegment w, long values, int c0, int c1, float[] panel) {
        int count = c1 - c0;
        int second = count * 2 * FL;
        long from = values + (long) c0 * COLUMN_BYTES;
        for (int k = 1; k <= count; k++) { // from 1: see HalfProducts.oneGroup
            int c = k - 1;
            int p = c * 2 * FL;
            ByteVector packed = ByteVector.fromMemorySegment(HALF_COLUMN, w, from + (long) c * COLUMN_BYTES, NATIVE);
            ByteVector low = packed.and((byte) 0x0F).selectFrom(GRID);
            ByteVector high = packed.lanewise(VectorOperators.LSHR, 4).selectFrom(GRID);
            ((FloatVector) low.convertShape(VectorOperators.B2F, F, 0)).intoArray(panel, p);
            ((FloatVector) low.convertShape(VectorOperators.B2F, F, 1)).intoArray(panel, p + FL);
            ((FloatVector) high.convertShape(VectorOperators.B2F, F, 0)).intoArray(panel, second + p);
            ((FloatVector) high.convertShape(VectorOperators.B2F, F, 1)).intoArray(panel, second + p + FL);
        }
    }

    /**
     * One token against one group (columns from byte {@code values}, its scales in {@code d}): the
     * sums of its rows into {@code sums} from index {@code at}; a block's products in registers,
     * added times its scales after its last column (as Q8Products.oneGroup).
     */
    private static void oneGroup(MemorySegment w, long values, float[] d, int columns, float[] x, float[] sums,
                                 int at) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        int s = 0;
        for (int k = 1; k <= columns; k++) { // from 1: see HalfProducts.oneGroup
            int column = k - 1;
            long o = values + column * (long) COLUMN_BYTES;
            FloatVector v = FloatVector.broadcast(F, x[column]);
            ByteVector packed = ByteVector.fromMemorySegment(HALF_COLUMN, w, o, NATIVE);
            ByteVector low = packed.and((byte) 0x0F).selectFrom(GRID);
            ByteVector high = packed.lanewise(VectorOperators.LSHR, 4).selectFrom(GRID);
            b0 = ((FloatVector) low.convertShape(VectorOperators.B2F, F, 0)).fma(v, b0);
            b1 = ((FloatVector) low.convertShape(VectorOperators.B2F, F, 1)).fma(v, b1);
            b2 = ((FloatVector) high.convertShape(VectorOperators.B2F, F, 0)).fma(v, b2);
            b3 = ((FloatVector) high.convertShape(VectorOperators.B2F, F, 1)).fma(v, b3);
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
     * Four tokens (rows from indices x0..x3 of {@code x}) against one group: each column's values
     * looked up and converted once for the four, the chains of {@link #oneGroup}, a block's
     * products added times its scales into the zeroed {@code sums} (at {@code token * GROUP_ROWS
     * + row}) after its last column.
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
            long o = values + column * (long) COLUMN_BYTES;
            FloatVector v0 = FloatVector.broadcast(F, x[x0 + column]);
            FloatVector v1 = FloatVector.broadcast(F, x[x1 + column]);
            FloatVector v2 = FloatVector.broadcast(F, x[x2 + column]);
            FloatVector v3 = FloatVector.broadcast(F, x[x3 + column]);
            ByteVector packed = ByteVector.fromMemorySegment(HALF_COLUMN, w, o, NATIVE);
            ByteVector low = packed.and((byte) 0x0F).selectFrom(GRID);
            ByteVector high = packed.lanewise(VectorOperators.LSHR, 4).selectFrom(GRID);
            FloatVector q = (FloatVector) low.convertShape(VectorOperators.B2F, F, 0);
            b00 = q.fma(v0, b00);
            b01 = q.fma(v1, b01);
            b02 = q.fma(v2, b02);
            b03 = q.fma(v3, b03);
            q = (FloatVector) low.convertShape(VectorOperators.B2F, F, 1);
            b10 = q.fma(v0, b10);
            b11 = q.fma(v1, b11);
            b12 = q.fma(v2, b12);
            b13 = q.fma(v3, b13);
            q = (FloatVector) high.convertShape(VectorOperators.B2F, F, 0);
            b20 = q.fma(v0, b20);
            b21 = q.fma(v1, b21);
            b22 = q.fma(v2, b22);
            b23 = q.fma(v3, b23);
            q = (FloatVector) high.convertShape(VectorOperators.B2F, F, 1);
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
}
