package dev.peregrine.cpu;

import static dev.peregrine.cpu.IntegerProducts.BLOCK;
import static dev.peregrine.cpu.IntegerProducts.COLUMN_BYTES;
import static dev.peregrine.cpu.IntegerProducts.FLOAT;
import static dev.peregrine.cpu.IntegerProducts.GROUP_ROWS;
import static dev.peregrine.cpu.IntegerProducts.HALF_BYTES;
import static dev.peregrine.cpu.IntegerProducts.HALF_GROUP;
import static dev.peregrine.cpu.IntegerProducts.I;
import static dev.peregrine.cpu.IntegerProducts.NATIVE;
import static dev.peregrine.cpu.IntegerProducts.SHORT;
import static dev.peregrine.cpu.IntegerProducts.SHORTS;
import static dev.peregrine.cpu.IntegerProducts.SUPER_BLOCK;
import static dev.peregrine.cpu.IntegerProducts.finiteScale;
import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;
import dev.peregrine.tensor.Dequant;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Q4_K products in 16-bit integers on 8-bit activations, as {@link IntegerProducts} computes Q4_0's
 * (its groups of rows, quantised input and 16-bit column sums). Q4_K (value (d * sc) * q - dmin
 * * m, q 0-15, sc and m 6-bit per sub-block of 32, d and dmin per super-block of 256) is stored
 * in two regions: first every group's columns (as Q4_0's, group after group, super-block after
 * super-block), so that a group's columns are one unbroken stream; then every group's super-block
 * headers: the rows' d as halves, their dmin as halves, the 8 sub-blocks' scales sc as a byte per
 * row (sub-block after sub-block), their mins m likewise (148 bytes per row and super-block
 * against the file's 144). With each header in front of its 256 columns, as first written, the
 * one-token kernel streamed 2.3x slower from memory (KernelBench decode, 2,048 x 8,192, one core:
 * 9 against 21 GB/s; in L2 no different), though the loop was the same. Its 16-bit sums are Q4_0's, S = sum of (q - 8) * xq, exact for the same reason;
 * each accumulator then takes {@code fma(S + 8 * sum xq, (d * sc) * dx, acc)} and
 * {@code fma(dmin * m, -(sum xq) * dx, acc)} per sub-block (d * sc and dmin * m are exact in
 * floats).
 */
final class Q4KProducts {
    /** Where the parts of a super-block's header start (see the class comment), and its bytes. */
    private static final int MINS_AT = 2 * GROUP_ROWS;
    private static final int SCALES_AT = 4 * GROUP_ROWS;
    private static final int MIN_SCALES_AT = 12 * GROUP_ROWS;
    private static final int HEADER_BYTES = 20 * GROUP_ROWS;
    /** A super-block's columns in a group. */
    private static final int COLUMNS_BYTES = SUPER_BLOCK * COLUMN_BYTES;
    /** A group's super-block: header and columns. */
    static final int BLOCK_BYTES = HEADER_BYTES + COLUMNS_BYTES;
    /** Q4_K in the file: d, dmin, 12 bytes of packed 6-bit scales and mins, 128 of nibbles. */
    private static final int FILE_BLOCK_BYTES = 144;

    private Q4KProducts() {
    }

    /** Byte offset of super-block {@code s}'s columns in group {@code g}. */
    private static long columnsAt(int g, int s, int supers) {
        return ((long) g * supers + s) * COLUMNS_BYTES;
    }

    /** Byte offset of super-block {@code s}'s header in group {@code g}: after every group's columns. */
    private static long headerAt(int rows, int g, int s, int supers) {
        long groups = (rows + GROUP_ROWS - 1) / GROUP_ROWS;
        return groups * supers * COLUMNS_BYTES + ((long) g * supers + s) * HEADER_BYTES;
    }

    /**
     * Group {@code group} of a Q4_K matrix's copy: per super-block d and dmin as the file's halves,
     * the 8 scales and 8 mins unpacked to a byte per row, then the 256 columns as Q4_0's are.
     * Padding rows keep zeros: d = dmin = 0, the value 0.
     */
    static void copyGroup(String tensor, MemorySegment from, long rowBytes, int rows, int columns, MemorySegment to,
                          int group) {
        int supers = columns / SUPER_BLOCK;
        for (int lane = 0; lane < HALF_GROUP; lane++) {
            int low = group * GROUP_ROWS + lane;
            int high = low + HALF_GROUP;
            for (int s = 0; s < supers; s++) {
                long at = headerAt(rows, group, s, supers);
                long cols = columnsAt(group, s, supers);
                long lowAt = low * rowBytes + (long) s * FILE_BLOCK_BYTES;
                long highAt = high * rowBytes + (long) s * FILE_BLOCK_BYTES;
                if (low < rows) {
                    copyQ4KScales(tensor, from, lowAt, low, s, to, at, lane);
                }
                if (high < rows) {
                    copyQ4KScales(tensor, from, highAt, high, s, to, at, lane + HALF_GROUP);
                }
                for (int j = 0; j < 8; j++) {
                    // Sub-blocks 2r and 2r + 1 are the low and high nibbles of the file's 32 bytes of run r.
                    long run = 16 + 32L * (j / 2);
                    int shift = 4 * (j % 2);
                    for (int l = 0; l < BLOCK; l++) {
                        int lowQ = low < rows ? from.get(ValueLayout.JAVA_BYTE, lowAt + run + l) >>> shift & 0x0F : 0;
                        int highQ = high < rows ? from.get(ValueLayout.JAVA_BYTE, highAt + run + l) >>> shift & 0x0F : 0;
                        long column = cols + (long) (j * BLOCK + l) * COLUMN_BYTES + lane;
                        to.set(ValueLayout.JAVA_BYTE, column, (byte) (lowQ | highQ << 4));
                    }
                }
            }
        }
    }

    /** A Q4_K row's d, dmin, 8 scales and 8 mins of one super-block into lane {@code lane} of its copy. */
    private static void copyQ4KScales(String tensor, MemorySegment from, long fileAt, int row, int superBlock,
                                      MemorySegment to, long at, int lane) {
        to.set(SHORT, at + 2L * lane, finiteScale(tensor, "Q4_K", "scale", from, fileAt, row, superBlock));
        to.set(SHORT, at + MINS_AT + 2L * lane, finiteScale(tensor, "Q4_K", "min scale", from, fileAt + 2, row, superBlock));
        for (int j = 0; j < 8; j++) {
            to.set(ValueLayout.JAVA_BYTE, at + SCALES_AT + (long) j * GROUP_ROWS + lane, (byte) Dequant.q4kScale(from, fileAt + 4, j));
            to.set(ValueLayout.JAVA_BYTE, at + MIN_SCALES_AT + (long) j * GROUP_ROWS + lane, (byte) Dequant.q4kMin(from, fileAt + 4, j));
        }
    }

    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        int supers = w.columns() / SUPER_BLOCK;
        int lane = row % GROUP_ROWS;
        int shift = lane < HALF_GROUP ? 0 : 4;
        MemorySegment data = w.data();
        for (int s = 0; s < supers; s++) {
            long at = headerAt(w.rows(), row / GROUP_ROWS, s, supers);
            long cols = columnsAt(row / GROUP_ROWS, s, supers);
            float d = Float.float16ToFloat(data.get(SHORT, at + 2L * lane));
            float dmin = Float.float16ToFloat(data.get(SHORT, at + MINS_AT + 2L * lane));
            for (int j = 0; j < 8; j++) {
                float scale = d * (data.get(ValueLayout.JAVA_BYTE, at + SCALES_AT + (long) j * GROUP_ROWS + lane) & 0xFF);
                float min = dmin * (data.get(ValueLayout.JAVA_BYTE, at + MIN_SCALES_AT + (long) j * GROUP_ROWS + lane) & 0xFF);
                for (int l = 0; l < BLOCK; l++) {
                    long column = cols + (long) (j * BLOCK + l) * COLUMN_BYTES + lane % HALF_GROUP;
                    int q = data.get(ValueLayout.JAVA_BYTE, column) >>> shift & 0x0F;
                    out.set(FLOAT, 4L * (outIndex + (long) s * SUPER_BLOCK + j * BLOCK + l), scale * q - min);
                }
            }
        }
    }

    /**
     * Q4_K: per sub-block of 32 columns, the 16-bit sums as Q4_0's (S = sum of (q - 8) * xq, exact
     * since |q - 8| <= 8 as there), then per (row, token) two FMAs: P = S + 8 * sum xq (the exact
     * sum of q * xq, as a float) times d * sc * dx, and dmin * m times -(sum xq) * dx. The same
     * operations for a token alone and in passes of four, so batch-invariant as Q4_0's.
     */
    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        int supers = w.columns() / SUPER_BLOCK;
        // Per token its accumulators (one token: 4 tokens' worth, the pass shape).
        float[] acc = scratch.tileSums(Math.max(4, tokens) * GROUP_ROWS);
        float[] rowScales = scratch.blockScales(16 * GROUP_ROWS);
        short[] sums = scratch.shortSums(8 * 8 * HALF_GROUP);
        for (int g = rowStart / GROUP_ROWS; g * GROUP_ROWS < rowEnd; g++) {
            java.util.Arrays.fill(acc, 0, Math.max(4, tokens) * GROUP_ROWS, 0f);
            for (int s = 0; s < supers; s++) {
                long at = headerAt(w.rows(), g, s, supers);
                long cols = columnsAt(g, s, supers);
                // Once per super-block for all passes; its weights stay in L1 from pass to pass.
                q4kRowScales(w.data(), at, rowScales);
                for (int t0 = 0; t0 < tokens; t0 += 4) {
                    int count = Math.min(4, tokens - t0);
                    // A short pass repeats its last token; those results are not stored.
                    int t1 = t0 + Math.min(1, count - 1);
                    int t2 = t0 + Math.min(2, count - 1);
                    int t3 = t0 + Math.min(3, count - 1);
                    if (count == 1) {
                        oneToken(w.data(), cols, 8 * s, input, t0, sums);
                    } else {
                        for (int j = 0; j < 8; j++) {
                            IntegerProducts.fourTokens(w.data(), cols + (long) j * BLOCK * COLUMN_BYTES, 8 * s + j,
                                    input, t0, t1, t2, t3, sums, 8 * j * HALF_GROUP);
                        }
                    }
                    accumulate(rowScales, 8 * s, supers * 8, input, t0, t1, t2, t3, count, sums, acc, t0 * GROUP_ROWS);
                }
            }
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            IntegerProducts.storeRows(acc, g * GROUP_ROWS, out, w.rows(), 0, tokens, first, end);
        }
    }

    /**
     * The rows' d * sc and dmin * m (exact: 11 by 6 significant bits) of the 8 sub-blocks of the
     * Q4_K super-block whose header is at {@code at}, into {@code into}: sub-block j's scales from index
     * {@code j * GROUP_ROWS}, its mins 8 groups of rows later. Once per super-block, through L1:
     * computed per sub-block inside the kernels, their vectors outgrew what C2 keeps in registers
     * and it boxed them (25 KB a 256 x 256 product).
     */
    private static void q4kRowScales(MemorySegment w, long at, float[] into) {
        for (int i = 0; i < 4; i++) {
            FloatVector d = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.HALF_SHORTS, w, at + 2L * FL * i, NATIVE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF)
                    .reinterpretAsFloats().mul(0x1p112f);
            FloatVector dmin = ((IntVector) ShortVector.fromMemorySegment(VectorKernels.HALF_SHORTS, w,
                    at + MINS_AT + 2L * FL * i, NATIVE).convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF).reinterpretAsFloats().mul(0x1p112f);
            for (int j = 0; j < 8; j++) {
                long sc = at + SCALES_AT + (long) j * GROUP_ROWS + (long) i * FL;
                d.mul((FloatVector) ((IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w, sc, NATIVE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).convert(VectorOperators.I2F, 0))
                        .intoArray(into, j * GROUP_ROWS + i * FL);
                dmin.mul((FloatVector) ((IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                        sc + MIN_SCALES_AT - SCALES_AT, NATIVE).convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0))
                        .convert(VectorOperators.I2F, 0)).intoArray(into, (8 + j) * GROUP_ROWS + i * FL);
            }
        }
    }

    /**
     * One token against the 8 sub-blocks of a Q4_K super-block of a group (their columns from byte
     * {@code columns}; input block {@code b0} on): sub-block j's uncorrected 16-bit sums into
     * {@code sums[8 * j * HALF_GROUP ..]} as fourTokens leaves token 0's. The float steps are
     * {@link #accumulate}'s: in this method their FMAs stayed calls to their allocating fallbacks
     * in about 1 JVM in 10 (12 KB a 256 x 256 product).
     */
    private static void oneToken(MemorySegment w, long columns, int b0, MatmulInput input, int token, short[] sums) {
        MemorySegment xq = input.quantised;
        long xAt = 2L * token * input.columns + 2L * BLOCK * b0;
        for (int j = 0; j < 8; j++) {
            long first = columns + (long) j * BLOCK * COLUMN_BYTES;
            long xb = xAt + 2L * BLOCK * j;
            ShortVector low = ShortVector.zero(SHORTS), high = low;
            for (int k = 0; k < BLOCK; k++) {
                ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, first + (long) k * COLUMN_BYTES, NATIVE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
                short v = xq.get(SHORT, xb + 2L * k);
                low = q.and((short) 0x0F).mul(v).add(low);
                high = q.lanewise(VectorOperators.LSHR, 4).mul(v).add(high);
            }
            low.intoArray(sums, 8 * j * HALF_GROUP);
            high.intoArray(sums, (8 * j + 1) * HALF_GROUP);
        }
    }

    /**
     * The first {@code count} tokens' 16-bit sums of a Q4_K super-block's 8 sub-blocks (sub-block
     * j's token t at {@code sums[(8 * j + 2 * t) * HALF_GROUP]}, as fourTokens leaves them; input
     * block {@code b0} on) into their accumulators, sub-block after sub-block, the accumulators in
     * registers across the super-block: the same operations for a token alone or in a pass;
     * {@code rowScales} as q4kRowScales leaves them; token t's accumulators from {@code acc[accAt + t * GROUP_ROWS]}.
     */
    private static void accumulate(float[] rowScales, int b0, int blocks, MatmulInput input, int t0, int t1, int t2,
                                   int t3, int count, short[] sums, float[] acc, int accAt) {
        for (int t = 0; t < count; t++) {
            int token = t == 0 ? t0 : t == 1 ? t1 : t == 2 ? t2 : t3;
            int a = accAt + t * GROUP_ROWS;
            FloatVector a0 = FloatVector.fromArray(F, acc, a);
            FloatVector a1 = FloatVector.fromArray(F, acc, a + FL);
            FloatVector a2 = FloatVector.fromArray(F, acc, a + 2 * FL);
            FloatVector a3 = FloatVector.fromArray(F, acc, a + 3 * FL);
            for (int j = 0; j < 8; j++) {
                int b = token * blocks + b0 + j;
                short correction = input.quantisedCorrections[b];
                float dx = input.quantisedScales[b];
                float eightSum = correction;
                FloatVector minWeight = FloatVector.broadcast(F, -(eightSum * 0.125f) * dx);
                ShortVector low = ShortVector.fromArray(SHORTS, sums, (8 * j + 2 * t) * HALF_GROUP).sub(correction);
                ShortVector high = ShortVector.fromArray(SHORTS, sums, (8 * j + 2 * t + 1) * HALF_GROUP).sub(correction);
                int sc = j * GROUP_ROWS;
                int m = (8 + j) * GROUP_ROWS;
                a0 = ((FloatVector) low.convertShape(VectorOperators.S2F, F, 0)).add(eightSum)
                        .fma(FloatVector.fromArray(F, rowScales, sc).mul(dx), a0);
                a1 = ((FloatVector) low.convertShape(VectorOperators.S2F, F, 1)).add(eightSum)
                        .fma(FloatVector.fromArray(F, rowScales, sc + FL).mul(dx), a1);
                a2 = ((FloatVector) high.convertShape(VectorOperators.S2F, F, 0)).add(eightSum)
                        .fma(FloatVector.fromArray(F, rowScales, sc + 2 * FL).mul(dx), a2);
                a3 = ((FloatVector) high.convertShape(VectorOperators.S2F, F, 1)).add(eightSum)
                        .fma(FloatVector.fromArray(F, rowScales, sc + 3 * FL).mul(dx), a3);
                a0 = FloatVector.fromArray(F, rowScales, m).fma(minWeight, a0);
                a1 = FloatVector.fromArray(F, rowScales, m + FL).fma(minWeight, a1);
                a2 = FloatVector.fromArray(F, rowScales, m + 2 * FL).fma(minWeight, a2);
                a3 = FloatVector.fromArray(F, rowScales, m + 3 * FL).fma(minWeight, a3);
            }
            a0.intoArray(acc, a);
            a1.intoArray(acc, a + FL);
            a2.intoArray(acc, a + 2 * FL);
            a3.intoArray(acc, a + 3 * FL);
        }
    }
}
