package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import dev.peregrine.ModelFormatException;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorSpecies;

/**
 * Q4_0 products (and the input, groups and sums that {@link Q4KProducts} and {@link Q6KProducts}
 * share) in 16-bit integers, against activations quantised to 8 bits per block of 32 (as llama.cpp
 * multiplies them by Q8_0 activations): a vector lane is a weight row, so a column of a group of
 * rows is one load, its 4-bit values need no conversion to floats, and no
 * lane sums are left at the end. Converting every weight to a float (the other kernels' way) cost
 * about 7 vector instructions per 16 weights; this costs about 9 per 64 (KernelBench decode,
 * 2,048 x 8,192: 9.6 -> 22 GB/s on one thread). The same scheme for Q8_0 (two columns' 16-bit
 * products added, then widened to 32 bits) was measured slower than its float kernels on two
 * threads and is not used (docs/PERFORMANCE.md).
 *
 * <p>Layout ("column-major groups", copied from the file's at load): rows in groups of
 * {@link #GROUP_ROWS} (4 float vectors: 64 with AVX-512, 32 with AVX2), the last group padded with
 * rows of zeros. First every group's columns, group after group, column after column, each
 * {@code GROUP_ROWS / 2} bytes: byte j of a column holds row j's stored value q (0-15; the weight
 * is (q - 8) d) in its low nibble and row {@code j + GROUP_ROWS / 2}'s in its high nibble; then
 * every group's scales, group after group, block of 32 columns after block, a block's being its
 * rows' d as {@code GROUP_ROWS} halves (as in the file). So a group's columns are one unbroken
 * stream, which from memory streams faster than columns interleaved with their scales (Q4_0 one
 * core 25-26 -> 27-28 GB/s; Q4_K, whose headers are 10 times larger, 9 -> 21: see Q4KProducts).
 *
 * <p>Arithmetic: per block and token, S = sum over the block's columns of q * xq, in wrapping
 * 16-bit lanes, minus 8 * sum of xq. Since |q - 8| <= 8 and |xq| <= 127, the true sum of
 * (q - 8) * xq lies within +-32,512, so the wrapped difference is exact. Each (row, token) float
 * accumulator then takes {@code fma(S, d * dx, acc)}, block after block in column order: the same
 * operations whether the token is alone or in a batch, so the results are batch-invariant like
 * every other product's. The error against the float product is that of quantising x to 8 bits
 * (at most dx / 2 per value), as in llama.cpp.
 *
 * <p>Q3_K ({@link Q3KProducts}), Q4_K, Q5_K, Q4_1 and Q5_1 ({@link Q4KProducts}) and Q6_K
 * ({@link Q6KProducts}) take the same scheme with their own layouts and scale steps, in classes of
 * their own.
 */
final class IntegerProducts {
    /** Rows per group: four float vectors' worth (two vectors of 16-bit lanes). */
    static final int GROUP_ROWS = 4 * FL;
    static final int BLOCK = 32;
    private static final int SCALE_BYTES = 2 * GROUP_ROWS;
    static final int COLUMN_BYTES = GROUP_ROWS / 2;
    private static final int BLOCK_BYTES = SCALE_BYTES + BLOCK * COLUMN_BYTES;
    /** A block's 32 columns in a group. */
    private static final int COLUMNS_BYTES = BLOCK * COLUMN_BYTES;
    /** Q4_0 in the file: an f16 scale and 16 bytes of nibbles per block of 32. */
    private static final int FILE_BLOCK_BYTES = 18;
    /** K-quants: values per super-block. */
    static final int SUPER_BLOCK = 256;
    /** Lanes of a vector of 16-bit values (half a group's rows). */
    static final int HALF_GROUP = GROUP_ROWS / 2;

    static final VectorSpecies<Short> SHORTS = VectorSpecies.of(short.class, F.vectorShape());
    /** A column: half a group's bytes. */
    static final VectorSpecies<Byte> HALF_BYTES = VectorSpecies.of(byte.class,
            VectorShape.forBitSize(F.vectorBitSize() / 2));
    static final VectorSpecies<Integer> I = VectorKernels.I;
    static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    static final ValueLayout.OfShort SHORT = ValueLayout.JAVA_SHORT;
    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    /** {@link #SHORT} in a heap array (whose segments are only byte-aligned). */
    static final ValueLayout.OfShort HEAP_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED;
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    /** Adding then subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to the nearest integer. */
    private static final float ROUNDING = 12582912f;

    private IntegerProducts() {
    }

    /**
     * Whether products with weights of this type and row length are computed here (or in
     * Q3KProducts, Q4KProducts, Q6KProducts): Q4_0, Q4_1 and Q5_1, and Q3_K, Q4_K, Q5_K and Q6_K
     * rows of whole super-blocks (all that llama.cpp writes).
     */
    static boolean handles(DType type, long columns) {
        return type == DType.Q4_0 || type == DType.Q4_1 || type == DType.Q5_1 || (type == DType.Q2_K || type == DType.Q3_K
                || type == DType.Q4_K || type == DType.Q5_K || type == DType.Q6_K) && columns % SUPER_BLOCK == 0;
    }

    /** Bytes of the column-major copy of a matrix. */
    static long bytes(DType type, int rows, int columns) {
        return switch (type) {
            case Q2_K, Q3_K -> (long) groups(rows) * (columns / SUPER_BLOCK) * Q3KProducts.blockBytes(type);
            case Q4_K, Q5_K, Q4_1, Q5_1 -> Q4KProducts.bytes(type, rows, columns);
            case Q6_K -> (long) groups(rows) * (columns / SUPER_BLOCK) * Q6KProducts.BLOCK_BYTES;
            default -> (long) groups(rows) * (columns / BLOCK) * BLOCK_BYTES;
        };
    }

    /** Groups of {@link #GROUP_ROWS} rows (the last padded) of a column-major copy. */
    static int groups(int rows) {
        return (rows + GROUP_ROWS - 1) / GROUP_ROWS;
    }

    /** Byte offset of block {@code b}'s columns in group {@code g} of a Q4_0 copy. */
    private static long columnsAt(int g, int b, int blocks) {
        return ((long) g * blocks + b) * COLUMNS_BYTES;
    }

    /** Byte offset of block {@code b}'s scales in group {@code g} of a Q4_0 copy. */
    private static long scalesAt(int rows, int g, int b, int blocks) {
        return headerAt(rows, (long) blocks * COLUMNS_BYTES, g, b, blocks, SCALE_BYTES);
    }

    /**
     * Byte offset of header {@code h} of group {@code g} in a column-major copy of {@code rows}
     * rows laid out as every one here is: first every group's columns ({@code groupColumnBytes} a
     * group), so that a group's columns are one unbroken stream, then every group's
     * {@code headers} headers (scales, super-block headers) of {@code headerBytes} each, group after
     * group.
     */
    static long headerAt(int rows, long groupColumnBytes, int g, int h, int headers, int headerBytes) {
        return groups(rows) * groupColumnBytes + ((long) g * headers + h) * headerBytes;
    }

    /**
     * Writes group {@code group} of the column-major copy {@code to} of the Q4_0 rows {@code from}
     * (the file's layout, {@code rowBytes} a row); {@code to} starts zeroed, so padding rows get a
     * zero scale (and q = 8, the value 0).
     *
     * @throws ModelFormatException if a block's scale is infinite or NaN (the kernels' conversion
     *     of halves covers finite ones only; llama.cpp's optional tensor check rejects such blocks too)
     */
    static void copyGroup(DType type, String tensor, MemorySegment from, long rowBytes, int rows, int columns,
                          MemorySegment to, int group) {
        if (type == DType.Q2_K || type == DType.Q3_K) {
            Q3KProducts.copyGroup(type, tensor, from, rowBytes, rows, columns, to, group);
            return;
        }
        if (Q4KProducts.handles(type)) {
            Q4KProducts.copyGroup(type, tensor, from, rowBytes, rows, columns, to, group);
            return;
        }
        if (type == DType.Q6_K) {
            Q6KProducts.copyGroup(tensor, from, rowBytes, rows, columns, to, group);
            return;
        }
        int blocks = columns / BLOCK;
        int groupRows = Math.min(GROUP_ROWS, rows - group * GROUP_ROWS);
        // The group's rows (one run of the file) copied in bulk to the heap, its columns and scales
        // built there and written in bulk (value by value through the segments, loading a Q4_0
        // llama3.2-1b took 1.3-1.7 s instead of 0.8-1.0 once the JIT had compiled the copy).
        byte[] groupRowsCopy = fileRowsOfGroup(from, rowBytes, rows, group);
        MemorySegment rowsSegment = MemorySegment.ofArray(groupRowsCopy);
        byte[] groupColumns = new byte[blocks * COLUMNS_BYTES];
        java.util.Arrays.fill(groupColumns, (byte) 0x88); // padding rows: q = 8, the value 0
        MemorySegment scales = MemorySegment.ofArray(new byte[blocks * SCALE_BYTES]); // padding rows: scale 0
        // Lane j of a column's byte holds rows j (low nibble) and j + HALF_GROUP (high); a block's
        // byte k holds values k (low nibble) and k + 16 (high).
        for (int j = 0; j < Math.min(HALF_GROUP, groupRows); j++) {
            boolean upper = j + HALF_GROUP < groupRows;
            for (int b = 0; b < blocks; b++) {
                int lowAt = Math.toIntExact(j * rowBytes + (long) b * FILE_BLOCK_BYTES);
                int highAt = Math.toIntExact((j + HALF_GROUP) * rowBytes + (long) b * FILE_BLOCK_BYTES);
                int row = group * GROUP_ROWS + j;
                scales.set(HEAP_SHORT, (long) b * SCALE_BYTES + 2L * j,
                        finiteScale(tensor, "Q4_0", "scale", rowsSegment, lowAt, row, b));
                if (upper) {
                    scales.set(HEAP_SHORT, (long) b * SCALE_BYTES + 2L * (j + HALF_GROUP),
                            finiteScale(tensor, "Q4_0", "scale", rowsSegment, highAt, row + HALF_GROUP, b));
                }
                for (int k = 0; k < BLOCK / 2; k++) {
                    int low = groupRowsCopy[lowAt + 2 + k];
                    int high = upper ? groupRowsCopy[highAt + 2 + k] : 0x88;
                    int column = b * COLUMNS_BYTES + k * COLUMN_BYTES + j;
                    groupColumns[column] = (byte) (low & 0x0F | (high & 0x0F) << 4);
                    groupColumns[column + BLOCK / 2 * COLUMN_BYTES] = (byte) (low >>> 4 & 0x0F | high & 0xF0);
                }
            }
        }
        MemorySegment.copy(groupColumns, 0, to, ValueLayout.JAVA_BYTE, columnsAt(group, 0, blocks), groupColumns.length);
        MemorySegment.copy(scales, 0, to, scalesAt(rows, group, 0, blocks), scales.byteSize());
    }

    /**
     * The rows of group {@code group} of a matrix in the file's layout ({@code rowBytes} a row; the
     * last group may have fewer than GROUP_ROWS), one run of the file, copied to the heap in one
     * piece: the column-major copies are built from there.
     */
    static byte[] fileRowsOfGroup(MemorySegment from, long rowBytes, int rows, int group) {
        int groupRows = Math.min(GROUP_ROWS, rows - group * GROUP_ROWS);
        byte[] copy = new byte[Math.toIntExact(groupRows * rowBytes)];
        MemorySegment.copy(from, (long) group * GROUP_ROWS * rowBytes, MemorySegment.ofArray(copy), 0, copy.length);
        return copy;
    }

    static short finiteScale(String tensor, String type, String what, MemorySegment from, long at, int row, int block) {
        short half = from.get(LE_SHORT, at);
        if ((half & 0x7C00) == 0x7C00) {
            throw new ModelFormatException(tensor + ": " + type + " block " + block + " of row " + row + " has a "
                    + ((half & 0x3FF) == 0 ? "infinite" : "NaN") + " " + what);
        }
        return half;
    }

    /**
     * Value k (0-31) of a block's 16 bytes of nibbles at {@code at} (the low bits of Q5_0's;
     * IQ4_NL's and IQ4_XS's indices): low nibbles first, then high ones.
     */
    static int nibble(MemorySegment from, long at, int k) {
        int b = from.get(ValueLayout.JAVA_BYTE, at + (k & 15)) & 0xFF;
        return k < 16 ? b & 0x0F : b >>> 4;
    }

    /**
     * Row {@code row} as floats, as {@code Dequant} makes them: (q - 8) * d for Q4_0, the other
     * types' in their classes.
     */
    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        if (w.type() == DType.Q2_K || w.type() == DType.Q3_K) {
            Q3KProducts.decodeRow(w, row, out, outIndex);
            return;
        }
        if (Q4KProducts.handles(w.type())) {
            Q4KProducts.decodeRow(w, row, out, outIndex);
            return;
        }
        if (w.type() == DType.Q6_K) {
            Q6KProducts.decodeRow(w, row, out, outIndex);
            return;
        }
        int blocks = w.columns() / BLOCK;
        int lane = row % GROUP_ROWS;
        int j = lane % HALF_GROUP;
        int shift = lane < HALF_GROUP ? 0 : 4;
        MemorySegment data = w.data();
        for (int b = 0; b < blocks; b++) {
            long at = scalesAt(w.rows(), row / GROUP_ROWS, b, blocks);
            float d = Float.float16ToFloat(data.get(SHORT, at + 2L * lane));
            for (int k = 0; k < BLOCK; k++) {
                long column = columnsAt(row / GROUP_ROWS, b, blocks) + (long) k * COLUMN_BYTES;
                int q = (data.get(ValueLayout.JAVA_BYTE, column + j) >>> shift) & 0x0F;
                out.set(FLOAT, 4L * (outIndex + b * BLOCK + k), d * (q - 8));
            }
        }
    }

    /**
     * Quantises {@code tokens} rows of {@code columns} floats of {@code x}, from row
     * {@code firstToken}, into {@code input} (from its token 0): per
     * block of 32, dx = max |x| / 127 and xq = x / dx rounded to the nearest integer (ties to even),
     * kept as shorts for the kernels' broadcasts, with 8 * sum of xq (wrapped to 16 bits).
     */
    static void quantise(MatmulInput input, MemorySegment x, int firstToken, int tokens, int columns) {
        int blocks = columns / BLOCK;
        input.ensureQuantised(tokens, columns);
        MemorySegment xq = input.quantised;
        short[] values = input.quantisedValues;
        float[] scales = input.quantisedScales;
        short[] corrections = input.quantisedCorrections;
        for (int t = 0; t < tokens; t++) {
            for (int b = 0; b < blocks; b++) {
                long at = (long) t * columns + (long) b * BLOCK;
                long xAt = at + (long) firstToken * columns;
                FloatVector max = FloatVector.zero(F);
                for (int c = 0; c < BLOCK; c += FL) {
                    // Loop-carried vectors are the operations' arguments (see docs/ARCHITECTURE.md):
                    // as their receivers, C2 boxed them once another model had run in the process
                    // (3.4 MB a token decoding a Q4_K_M model; DecodeAllocationTest).
                    max = FloatVector.fromMemorySegment(F, x, 4L * (xAt + c), NATIVE).abs().max(max);
                }
                // (A maximum and, below, an integer sum: reduceLanes is exact for both, whatever its order.)
                float d = max.reduceLanes(VectorOperators.MAX) / 127f;
                // Capped: for a block of values below ~1e-37, 1 / d would overflow to infinity and
                // xq become -1 or 0 at random; capped, it is 0 (the block adds ~1e-40 either way).
                float inverse = d != 0 ? Math.min(1f / d, Float.MAX_VALUE) : 0f;
                IntVector sum = IntVector.zero(I);
                for (int c = 0; c < BLOCK; c += FL) {
                    FloatVector v = FloatVector.fromMemorySegment(F, x, 4L * (xAt + c), NATIVE).mul(inverse);
                    IntVector q = (IntVector) v.add(ROUNDING).sub(ROUNDING).convert(VectorOperators.F2I, 0);
                    sum = q.add(sum);
                    ShortVector s = (ShortVector) q.convertShape(VectorOperators.I2S, VectorKernels.HALF_SHORTS, 0);
                    s.intoMemorySegment(xq, 2L * (at + c), NATIVE);
                    s.intoArray(values, (int) (at + c));
                }
                scales[t * blocks + b] = d;
                corrections[t * blocks + b] = (short) (8 * sum.reduceLanes(VectorOperators.ADD));
            }
        }
    }

    /**
     * {@code out[t][r] = W[r] . x[t]} for the rows r in [rowStart, rowEnd), from the quantised input.
     * A range that starts or ends inside a group computes the whole group and stores its own rows.
     */
    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        if (w.type() == DType.Q2_K || w.type() == DType.Q3_K) {
            Q3KProducts.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
            return;
        }
        if (Q4KProducts.handles(w.type())) {
            Q4KProducts.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
            return;
        }
        if (w.type() == DType.Q6_K) {
            Q6KProducts.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
            return;
        }
        int blocks = w.columns() / BLOCK;
        float[] acc = scratch.tileSums(EIGHT * GROUP_ROWS);
        short[] sums = scratch.shortSums(EIGHT * GROUP_ROWS);
        // Passes of 8 tokens while more than 4 are left (each column unpacked once for 8), then
        // one of up to 4.
        int passed = FloatPanels.passedTokens(tokens);
        for (int g = rowStart / GROUP_ROWS; g * GROUP_ROWS < rowEnd; g++) {
            long groupColumns = columnsAt(g, 0, blocks);
            long groupScales = scalesAt(w.rows(), g, 0, blocks);
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            // Weights stay in L2 from one pass over the tokens to the next (a group of 8,192
            // columns: 320 KB at 64 rows).
            for (int t0 = 0; t0 < tokens; ) {
                int count = Math.min(t0 < passed ? EIGHT : 4, tokens - t0);
                if (count == 1) {
                    oneToken(w.data(), groupColumns, groupScales, blocks, input, t0, acc);
                } else {
                    // A short pass repeats its last token; those results are not stored.
                    java.util.Arrays.fill(acc, 0, count * GROUP_ROWS, 0f);
                    for (int b = 0; b < blocks; b++) {
                        long columns = groupColumns + (long) b * COLUMNS_BYTES;
                        if (t0 < passed) {
                            eightTokens(w.data(), columns, b, input, t0, tokens - 1, sums, 0);
                        } else {
                            fourTokens(w.data(), columns, b, input, t0, t0 + 1, t0 + Math.min(2, count - 1),
                                    t0 + Math.min(3, count - 1), sums, 0);
                        }
                        accumulate(w.data(), groupScales + (long) b * SCALE_BYTES, b, blocks, input, t0, count, sums, acc);
                    }
                }
                storeRows(input, acc, g * GROUP_ROWS, out, w.rows(), t0, count, first, end);
                t0 += count;
            }
        }
    }

    /** Tokens of a long pass of the 4-bit products (Q4_0, Q4_K, Q4_1). */
    static final int EIGHT = 8;

    /**
     * Rows [first, end) of the input's tokens t0 .. t0 + count - 1 from {@code sums} (token t0 + t's
     * row r at {@code t * GROUP_ROWS + r - groupRow}) into {@code out} (tokens x {@code rows} floats,
     * the input's first token at {@link MatmulInput#firstToken}): what every column-major product
     * stores of a group it computed whole.
     */
    static void storeRows(MatmulInput input, float[] sums, int groupRow, MemorySegment out, int rows, int t0, int count,
                          int first, int end) {
        for (int t = 0; t < count; t++) {
            long outAt = (long) (input.firstToken + t0 + t) * rows;
            for (int r = first; r < end; r++) {
                out.set(FLOAT, 4L * (outAt + r), sums[t * GROUP_ROWS + r - groupRow]);
            }
        }
    }

    /** One token against one group: the accumulators stay in registers. */
    private static void oneToken(MemorySegment w, long groupColumns, long groupScales, int blocks, MatmulInput input,
                                 int token, float[] acc) {
        MemorySegment xq = input.quantised;
        long xAt = 2L * token * input.columns;
        int scaleAt = token * blocks;
        float[] scales = input.quantisedScales;
        short[] corrections = input.quantisedCorrections;
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        for (int b = 0; b < blocks; b++) {
            long at = groupScales + (long) b * SCALE_BYTES;
            long first = groupColumns + (long) b * COLUMNS_BYTES;
            long xb = xAt + 2L * BLOCK * b;
            ShortVector both = ShortVector.zero(SHORTS), high = both;
            for (int k = 0; k < BLOCK; k++) {
                long column = first + (long) k * COLUMN_BYTES;
                ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, column, NATIVE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
                short v = xq.get(SHORT, xb + 2L * k);
                both = q.mul(v).add(both);
                high = q.lanewise(VectorOperators.LSHR, 4).mul(v).add(high);
            }
            short correction = corrections[scaleAt + b];
            ShortVector low = lowNibbles(both, high).sub(correction);
            high = high.sub(correction);
            float dx = scales[scaleAt + b];
            FloatVector d0 = scales(w, at);
            FloatVector d1 = scales(w, at + 2L * FL);
            FloatVector d2 = scales(w, at + 4L * FL);
            FloatVector d3 = scales(w, at + 6L * FL);
            a0 = ((FloatVector) low.convertShape(VectorOperators.S2F, F, 0)).fma(d0.mul(dx), a0);
            a1 = ((FloatVector) low.convertShape(VectorOperators.S2F, F, 1)).fma(d1.mul(dx), a1);
            a2 = ((FloatVector) high.convertShape(VectorOperators.S2F, F, 0)).fma(d2.mul(dx), a2);
            a3 = ((FloatVector) high.convertShape(VectorOperators.S2F, F, 1)).fma(d3.mul(dx), a3);
        }
        a0.intoArray(acc, 0);
        a1.intoArray(acc, FL);
        a2.intoArray(acc, 2 * FL);
        a3.intoArray(acc, 3 * FL);
    }

    /**
     * Block {@code b} of a group (its 32 columns from byte {@code columns}) against four tokens,
     * each column converted once for all four: the 16-bit sums into {@code sums} from index
     * {@code at}, token after token, low nibbles' rows then high ones' (Q4_K's sub-blocks too).
     */
    static void fourTokens(MemorySegment w, long columns, int b, MatmulInput input, int t0, int t1, int t2,
                           int t3, short[] sums, int at) {
        short[] xq = input.quantisedValues;
        int row = input.columns;
        int xb = BLOCK * b;
        int x0 = t0 * row + xb, x1 = t1 * row + xb, x2 = t2 * row + xb, x3 = t3 * row + xb;
        ShortVector low0 = ShortVector.zero(SHORTS), high0 = low0, low1 = low0, high1 = low0;
        ShortVector low2 = low0, high2 = low0, low3 = low0, high3 = low0;
        for (int k = 0; k < BLOCK; k++) {
            long column = columns + (long) k * COLUMN_BYTES;
            ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, column, NATIVE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
            ShortVector low = q.and((short) 0x0F);
            ShortVector high = q.lanewise(VectorOperators.LSHR, 4);
            short v0 = xq[x0 + k];
            short v1 = xq[x1 + k];
            short v2 = xq[x2 + k];
            short v3 = xq[x3 + k];
            low0 = low.mul(v0).add(low0);
            high0 = high.mul(v0).add(high0);
            low1 = low.mul(v1).add(low1);
            high1 = high.mul(v1).add(high1);
            low2 = low.mul(v2).add(low2);
            high2 = high.mul(v2).add(high2);
            low3 = low.mul(v3).add(low3);
            high3 = high.mul(v3).add(high3);
        }
        // Through L1 to accumulate, which does every token's float step in one loop (a helper
        // taking vectors, called once per token, was not inlined and boxed them).
        low0.intoArray(sums, at);
        high0.intoArray(sums, at + HALF_GROUP);
        low1.intoArray(sums, at + 2 * HALF_GROUP);
        high1.intoArray(sums, at + 3 * HALF_GROUP);
        low2.intoArray(sums, at + 4 * HALF_GROUP);
        high2.intoArray(sums, at + 5 * HALF_GROUP);
        low3.intoArray(sums, at + 6 * HALF_GROUP);
        high3.intoArray(sums, at + 7 * HALF_GROUP);
    }

    /**
     * Block {@code b} of a group (its 32 columns from byte {@code columns}) against the eight tokens
     * from {@code t0} (those past {@code last} repeat it), each column unpacked once for all eight:
     * the 16-bit sums into {@code sums} from index {@code at} as {@link #fourTokens} lays them out,
     * token after token (Q4_K's sub-blocks too).
     */
    static void eightTokens(MemorySegment w, long columns, int b, MatmulInput input, int t0, int last, short[] sums,
                            int at) {
        short[] xq = input.quantisedValues;
        int row = input.columns;
        int xb = BLOCK * b;
        int x0 = t0 * row + xb, x1 = Math.min(t0 + 1, last) * row + xb, x2 = Math.min(t0 + 2, last) * row + xb;
        int x3 = Math.min(t0 + 3, last) * row + xb, x4 = Math.min(t0 + 4, last) * row + xb;
        int x5 = Math.min(t0 + 5, last) * row + xb, x6 = Math.min(t0 + 6, last) * row + xb;
        int x7 = Math.min(t0 + 7, last) * row + xb;
        ShortVector low0 = ShortVector.zero(SHORTS), high0 = low0, low1 = low0, high1 = low0;
        ShortVector low2 = low0, high2 = low0, low3 = low0, high3 = low0;
        ShortVector low4 = low0, high4 = low0, low5 = low0, high5 = low0;
        ShortVector low6 = low0, high6 = low0, low7 = low0, high7 = low0;
        for (int k = 0; k < BLOCK; k++) {
            long column = columns + (long) k * COLUMN_BYTES;
            ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, column, NATIVE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
            ShortVector low = q.and((short) 0x0F);
            ShortVector high = q.lanewise(VectorOperators.LSHR, 4);
            short v0 = xq[x0 + k];
            short v1 = xq[x1 + k];
            short v2 = xq[x2 + k];
            short v3 = xq[x3 + k];
            short v4 = xq[x4 + k];
            short v5 = xq[x5 + k];
            short v6 = xq[x6 + k];
            short v7 = xq[x7 + k];
            low0 = low.mul(v0).add(low0);
            high0 = high.mul(v0).add(high0);
            low1 = low.mul(v1).add(low1);
            high1 = high.mul(v1).add(high1);
            low2 = low.mul(v2).add(low2);
            high2 = high.mul(v2).add(high2);
            low3 = low.mul(v3).add(low3);
            high3 = high.mul(v3).add(high3);
            low4 = low.mul(v4).add(low4);
            high4 = high.mul(v4).add(high4);
            low5 = low.mul(v5).add(low5);
            high5 = high.mul(v5).add(high5);
            low6 = low.mul(v6).add(low6);
            high6 = high.mul(v6).add(high6);
            low7 = low.mul(v7).add(low7);
            high7 = high.mul(v7).add(high7);
        }
        low0.intoArray(sums, at);
        high0.intoArray(sums, at + HALF_GROUP);
        low1.intoArray(sums, at + 2 * HALF_GROUP);
        high1.intoArray(sums, at + 3 * HALF_GROUP);
        low2.intoArray(sums, at + 4 * HALF_GROUP);
        high2.intoArray(sums, at + 5 * HALF_GROUP);
        low3.intoArray(sums, at + 6 * HALF_GROUP);
        high3.intoArray(sums, at + 7 * HALF_GROUP);
        low4.intoArray(sums, at + 8 * HALF_GROUP);
        high4.intoArray(sums, at + 9 * HALF_GROUP);
        low5.intoArray(sums, at + 10 * HALF_GROUP);
        high5.intoArray(sums, at + 11 * HALF_GROUP);
        low6.intoArray(sums, at + 12 * HALF_GROUP);
        high6.intoArray(sums, at + 13 * HALF_GROUP);
        low7.intoArray(sums, at + 14 * HALF_GROUP);
        high7.intoArray(sums, at + 15 * HALF_GROUP);
    }

    /**
     * The sums of block {@code b} (uncorrected, as {@link #fourTokens} and {@link #eightTokens}
     * leave them) of the {@code count} tokens from {@code t0} into their float accumulators: the
     * one-token kernel's step.
     */
    private static void accumulate(MemorySegment w, long at, int b, int blocks, MatmulInput input, int t0, int count,
                                   short[] sums, float[] acc) {
        FloatVector d0 = scales(w, at);
        FloatVector d1 = scales(w, at + 2L * FL);
        FloatVector d2 = scales(w, at + 4L * FL);
        FloatVector d3 = scales(w, at + 6L * FL);
        for (int t = 0; t < count; t++) {
            int token = t0 + t;
            short correction = input.quantisedCorrections[token * blocks + b];
            float dx = input.quantisedScales[token * blocks + b];
            ShortVector low = ShortVector.fromArray(SHORTS, sums, 2 * t * HALF_GROUP).sub(correction);
            ShortVector high = ShortVector.fromArray(SHORTS, sums, (2 * t + 1) * HALF_GROUP).sub(correction);
            int a = t * GROUP_ROWS;
            FloatVector a0 = FloatVector.fromArray(F, acc, a);
            FloatVector a1 = FloatVector.fromArray(F, acc, a + FL);
            FloatVector a2 = FloatVector.fromArray(F, acc, a + 2 * FL);
            FloatVector a3 = FloatVector.fromArray(F, acc, a + 3 * FL);
            ((FloatVector) low.convertShape(VectorOperators.S2F, F, 0)).fma(d0.mul(dx), a0).intoArray(acc, a);
            ((FloatVector) low.convertShape(VectorOperators.S2F, F, 1)).fma(d1.mul(dx), a1).intoArray(acc, a + FL);
            ((FloatVector) high.convertShape(VectorOperators.S2F, F, 0)).fma(d2.mul(dx), a2).intoArray(acc, a + 2 * FL);
            ((FloatVector) high.convertShape(VectorOperators.S2F, F, 1)).fma(d3.mul(dx), a3).intoArray(acc, a + 3 * FL);
        }
    }

    /**
     * A Q3_K header's per-row factors for a group: d * s for {@code runs} runs of a signed byte s
     * per row ({@link #GROUP_ROWS} bytes a run, one after another from {@code runsAt}), d being the
     * rows' halves at {@code dAt}. Run j's into {@code into[j * GROUP_ROWS ..]}; d passes through
     * the {@code GROUP_ROWS} floats after the runs'. Every byte is read in address order, run after
     * run: visited column by column (a vector of each run, then the next) the header streamed from
     * memory so much slower that Q4_K's decode lost a fifth (KernelBench, docs/PERFORMANCE.md).
     */
    static void rowScales(MemorySegment w, long dAt, long runsAt, int runs, float[] into) {
        int d = runs * GROUP_ROWS;
        for (int i = 0; i < 4; i++) {
            scales(w, dAt + 2L * FL * i).intoArray(into, d + i * FL);
        }
        for (int j = 0; j < runs; j++) {
            for (int i = 0; i < 4; i++) {
                IntVector s = (IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                        runsAt + (long) j * GROUP_ROWS + (long) i * FL, NATIVE).convertShape(VectorOperators.B2I, I, 0);
                FloatVector.fromArray(F, into, d + i * FL).mul((FloatVector) s.convert(VectorOperators.I2F, 0))
                        .intoArray(into, j * GROUP_ROWS + i * FL);
            }
        }
    }

    /**
     * The low nibbles' 16-bit sums from the sums of whole bytes ({@code both}: sum of (16 h + l) *
     * xq) and of the high nibbles ({@code high}: sum of h * xq): both - 16 high = sum of l * xq,
     * modulo 2^16 as every 16-bit sum here is, so exactly what masking each column's low nibbles
     * gives, for two instructions per 32 columns instead of one a column.
     */
    static ShortVector lowNibbles(ShortVector both, ShortVector high) {
        return both.sub(high.lanewise(VectorOperators.LSHL, 4));
    }

    /**
     * FL of the rows' scales d (finite halves) from byte {@code at}, exactly as
     * {@code Float.float16ToFloat} makes them: the half's sign, exponent and fraction moved into a
     * float's places, then scaled by 2^112 (the difference of the exponent biases, 127 - 15), which
     * is exact for normal and subnormal halves alike. Half as many bytes as float scales: decode
     * reads 18 bytes per 32 weights, as the file does, instead of 20 (+7-11% measured).
     */
    static FloatVector scales(MemorySegment w, long at) {
        IntVector bits = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.HALF_SHORTS, w, at, NATIVE)
                .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF);
        return bits.reinterpretAsFloats().mul(0x1p112f);
    }
}
