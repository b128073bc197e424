package dev.peregrine.cpu;

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

import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * Q3_K and Q2_K products in 16-bit integers on 8-bit activations, as {@link IntegerProducts}
 * computes Q4_0's (its groups of rows and quantised input). Q3_K (value (d * (sc - 32)) * q, q = l
 * - 4 h' with l the 2 low bits and h' = 1 where the stored high bit is 0, sc 6-bit per sub-block
 * of 16, d per super-block of 256) and Q2_K (value (d * sc) * l - dmin * m, sc and m 4-bit per
 * sub-block of 16) are stored in two regions, as Q4_K's: first every group's columns, in pairs,
 * each pair {@code GROUP_ROWS / 2} bytes of 2-bit values l (byte j: column 2p's rows j and
 * j + GROUP_ROWS / 2 in bits 0-1 and 2-3, column 2p + 1's in bits 4-5 and 6-7), then for Q3_K each
 * column's h' as a bit per row (row r: bit r); then every group's super-block headers: for Q3_K
 * the rows' d as halves and sc - 32 as a signed byte per row and sub-block, Q6_K's header (114
 * bytes per row and super-block against the file's 110); for Q2_K d and dmin as halves and the
 * file's byte of sc and m per row and sub-block (84, as the file).
 *
 * <p>Arithmetic: per sub-block of 16 columns and token, L = sum of l * xq (|L| <= 3 * 127 * 16)
 * and N = sum of xq over the rows whose h' is set (masked adds, |N| <= 127 * 16; Q2_K: over every
 * row), both exact in 16-bit lanes; then per (row, token) {@code fma(L - 4 N, (d * (sc - 32)) *
 * dx, acc)}, sub-block after sub-block, L - 4 N being the exact sum of q * xq and d * (sc - 32)
 * exact in a float; for Q2_K {@code fma(L, (d * sc) * dx, acc)} and {@code fma(dmin * m, -N * dx,
 * acc)}. Passes of four tokens read a super-block unpacked once into q (Q2_K: l) as shorts and
 * leave the same 16-bit values (Q3_K: L = the exact sum of q * xq, N = 0), then the same float
 * operations as for a token alone, so batch-invariant as Q4_0's.
 */
final class Q3KProducts {
    /** A super-block's header: the rows' d, then 16 sub-blocks' sc - 32 (a signed byte a row); Q6_K's. */
    private static final int SCALES_AT = 2 * GROUP_ROWS;
    private static final int HEADER_BYTES = 18 * GROUP_ROWS;
    /** A column's h' bits, a bit per row. */
    private static final int BITS_BYTES = GROUP_ROWS / 8;
    /** A pair of columns: their 2-bit values, then (Q3_K) each one's h' bits. */
    private static final int PAIR_BYTES = HALF_GROUP + 2 * BITS_BYTES;
    /** Q2_K's header: the rows' d, dmin, then 16 sub-blocks' scale and min (a byte a row: the file's, min in the high nibble). */
    private static final int Q2_MINS_AT = 2 * GROUP_ROWS;
    private static final int Q2_SCALES_AT = 4 * GROUP_ROWS;
    private static final int Q2_HEADER_BYTES = 20 * GROUP_ROWS;
    /** Sums a token leaves per sub-block: L and N of the low and the high half of the rows. */
    private static final int SUB_BLOCK_SUMS = 4 * HALF_GROUP;
    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Q3KProducts() {
    }

    private static int pairBytes(DType type) {
        return type == DType.Q2_K ? HALF_GROUP : PAIR_BYTES;
    }

    private static int headerBytes(DType type) {
        return type == DType.Q2_K ? Q2_HEADER_BYTES : HEADER_BYTES;
    }

    /** Bytes of a group's super-block in the copy: its header and 128 pairs of columns. */
    static long blockBytes(DType type) {
        return headerBytes(type) + (long) SUPER_BLOCK / 2 * pairBytes(type);
    }

    private static long pairsAt(DType type, int g, int s, int supers) {
        return ((long) g * supers + s) * SUPER_BLOCK / 2 * pairBytes(type);
    }

    private static long headerAt(DType type, int rows, int g, int s, int supers) {
        return IntegerProducts.headerAt(rows, (long) supers * SUPER_BLOCK / 2 * pairBytes(type), g, s, supers,
                headerBytes(type));
    }

    /**
     * Group {@code group} of a Q3_K or Q2_K matrix's copy (see the class comment). Padding rows keep
     * zeros: d = dmin = 0, the value 0.
     */
    static void copyGroup(DType type, String tensor, MemorySegment from, long rowBytes, int rows, int columns,
                          MemorySegment to, int group) {
        int supers = columns / SUPER_BLOCK;
        boolean q2 = type == DType.Q2_K;
        int pairBytes = pairBytes(type);
        for (int lane = 0; lane < GROUP_ROWS; lane++) {
            int row = group * GROUP_ROWS + lane;
            if (row >= rows) {
                break;
            }
            int upper = lane < HALF_GROUP ? 0 : 2;
            for (int s = 0; s < supers; s++) {
                long at = headerAt(type, rows, group, s, supers);
                long pairs = pairsAt(type, group, s, supers);
                long fileAt = row * rowBytes + (long) s * type.blockBytes();
                if (q2) {
                    // The file's Q2_K: 16 bytes of scales (low nibble) and mins (high), 64 of 2-bit values, d, dmin.
                    to.set(SHORT, at + 2L * lane, finiteScale(tensor, "Q2_K", "scale", from, fileAt + 80, row, s));
                    to.set(SHORT, at + Q2_MINS_AT + 2L * lane, finiteScale(tensor, "Q2_K", "min scale", from, fileAt + 82, row, s));
                    for (int j = 0; j < 16; j++) {
                        to.set(ValueLayout.JAVA_BYTE, at + Q2_SCALES_AT + (long) j * GROUP_ROWS + lane,
                                from.get(ValueLayout.JAVA_BYTE, fileAt + j));
                    }
                } else {
                    // The file's Q3_K: 32 bytes of high bits, 64 of 2-bit values, 12 of scales, d.
                    to.set(SHORT, at + 2L * lane, finiteScale(tensor, "Q3_K", "scale", from, fileAt + 108, row, s));
                    for (int j = 0; j < 16; j++) {
                        to.set(ValueLayout.JAVA_BYTE, at + SCALES_AT + (long) j * GROUP_ROWS + lane,
                                (byte) (Dequant.q3kScale(from, fileAt + 96, j) - 32));
                    }
                }
                for (int i = 0; i < SUPER_BLOCK; i++) {
                    int h = i / 128;
                    int k = i % 128 / 32;
                    int low = from.get(ValueLayout.JAVA_BYTE, fileAt + (q2 ? 16 : 32) + 32L * h + i % 32) >>> 2 * k & 3;
                    boolean high = q2 || (from.get(ValueLayout.JAVA_BYTE, fileAt + i % 32) >>> (4 * h + k) & 1) != 0;
                    long pair = pairs + (long) (i / 2) * pairBytes;
                    long packed = pair + lane % HALF_GROUP;
                    int shift = 4 * (i % 2) + upper;
                    to.set(ValueLayout.JAVA_BYTE, packed, (byte) (to.get(ValueLayout.JAVA_BYTE, packed) | low << shift));
                    if (!high) {
                        long bits = pair + HALF_GROUP + (long) (i % 2) * BITS_BYTES + lane / 8;
                        to.set(ValueLayout.JAVA_BYTE, bits, (byte) (to.get(ValueLayout.JAVA_BYTE, bits) | 1 << lane % 8));
                    }
                }
            }
        }
    }

    /**
     * Row {@code row} as floats, as {@code Dequant} makes them: (d * (sc - 32)) * q for Q3_K, (d *
     * sc) * l - dmin * m for Q2_K.
     */
    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        DType type = w.type();
        int pairBytes = pairBytes(type);
        int supers = w.columns() / SUPER_BLOCK;
        int group = row / GROUP_ROWS;
        int lane = row % GROUP_ROWS;
        int upper = lane < HALF_GROUP ? 0 : 2;
        MemorySegment data = w.data();
        for (int s = 0; s < supers; s++) {
            long at = headerAt(type, w.rows(), group, s, supers);
            long pairs = pairsAt(type, group, s, supers);
            float d = Float.float16ToFloat(data.get(SHORT, at + 2L * lane));
            for (int i = 0; i < SUPER_BLOCK; i++) {
                long pair = pairs + (long) (i / 2) * pairBytes;
                int low = data.get(ValueLayout.JAVA_BYTE, pair + lane % HALF_GROUP) >>> 4 * (i % 2) + upper & 3;
                float value;
                if (type == DType.Q2_K) {
                    float dmin = Float.float16ToFloat(data.get(SHORT, at + Q2_MINS_AT + 2L * lane));
                    int packed = data.get(ValueLayout.JAVA_BYTE, at + Q2_SCALES_AT + (long) (i / 16) * GROUP_ROWS + lane) & 0xFF;
                    float scale = d * (packed & 0x0F);
                    value = scale * low - dmin * (packed >>> 4);
                } else {
                    int minus = data.get(ValueLayout.JAVA_BYTE, pair + HALF_GROUP + (long) (i % 2) * BITS_BYTES + lane / 8)
                            >>> lane % 8 & 1;
                    int scale = data.get(ValueLayout.JAVA_BYTE, at + SCALES_AT + (long) (i / 16) * GROUP_ROWS + lane);
                    value = d * scale * (low - 4 * minus);
                }
                out.set(FLOAT, 4L * (outIndex + (long) s * SUPER_BLOCK + i), value);
            }
        }
    }

    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        DType type = w.type();
        boolean q2 = type == DType.Q2_K;
        int supers = w.columns() / SUPER_BLOCK;
        int blocks = supers * 8;
        // Per token its accumulators (one token: 4 tokens' worth, the pass shape).
        float[] acc = scratch.tileSums(Math.max(4, tokens) * GROUP_ROWS);
        short[] sums = scratch.shortSums(4 * 16 * SUB_BLOCK_SUMS);
        float[] rowScales = scratch.blockScales(34 * GROUP_ROWS);
        short[] values = tokens > 1 ? scratch.unpacked(SUPER_BLOCK * GROUP_ROWS) : null;
        for (int g = rowStart / GROUP_ROWS; g * GROUP_ROWS < rowEnd; g++) {
            java.util.Arrays.fill(acc, 0, Math.max(4, tokens) * GROUP_ROWS, 0f);
            for (int s = 0; s < supers; s++) {
                long pairs = pairsAt(type, g, s, supers);
                long header = headerAt(type, w.rows(), g, s, supers);
                // Once per super-block for all passes; its weights stay in L1 from pass to pass.
                if (q2) {
                    q2kRowScales(w.data(), header, rowScales);
                } else {
                    // d * (sc - 32) of the 16 sub-blocks (exact: 11 by 8 significant bits).
                    IntegerProducts.rowScales(w.data(), header, header + SCALES_AT, 16, rowScales);
                }
                if (tokens > 1) {
                    // Several tokens: the super-block's values unpacked once (L1/L2), then passes of
                    // 4 tokens over them.
                    unpack(q2, w.data(), pairs, values);
                }
                for (int t0 = 0; t0 < tokens; t0 += 4) {
                    int count = Math.min(4, tokens - t0);
                    // A short pass repeats its last token; those results are not stored.
                    int t1 = t0 + Math.min(1, count - 1);
                    int t2 = t0 + Math.min(2, count - 1);
                    int t3 = t0 + Math.min(3, count - 1);
                    long column = (long) s * SUPER_BLOCK;
                    if (count == 1 && q2) {
                        oneToken2(w.data(), pairs, column, input, t0, sums);
                    } else if (count == 1) {
                        oneToken(w.data(), pairs, column, input, t0, sums);
                    } else {
                        for (int j = 0; j < 16; j++) {
                            fourTokens(q2, values, j, column + 16L * j, input, t0, t1, t2, t3, sums, j * SUB_BLOCK_SUMS);
                        }
                    }
                    accumulate(q2, rowScales, 8 * s, blocks, input, t0, t1, t2, t3, count, sums, acc, t0 * GROUP_ROWS);
                }
            }
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            IntegerProducts.storeRows(input, acc, g * GROUP_ROWS, out, w.rows(), 0, tokens, first, end);
        }
    }

    /**
     * The 256 columns of a Q3_K super-block (its 128 pairs from byte {@code pairs}; input column
     * {@code column} on) against one token: sub-block j's L and N of the low and high rows into
     * {@code sums[j * SUB_BLOCK_SUMS ..]}, as fourTokens leaves token 0's. The float steps are
     * accumulate's (a method of their own, as Q4_K's and Q6_K's, which boxed inside their kernels).
     */
    private static void oneToken(MemorySegment w, long pairs, long column, MatmulInput input, int token, short[] sums) {
        MemorySegment xq = input.quantised;
        long xAt = 2L * token * input.columns + 2 * column;
        for (int j = 0; j < 16; j++) {
            ShortVector low = ShortVector.zero(SHORTS), high = low, lowMinus = low, highMinus = low;
            long first = pairs + 8L * j * PAIR_BYTES;
            long xb = xAt + 32L * j;
            for (int p = 0; p < 8; p++) {
                long pair = first + (long) p * PAIR_BYTES;
                ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, pair, NATIVE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
                long bits0 = bits(w, pair + HALF_GROUP);
                long bits1 = bits(w, pair + HALF_GROUP + BITS_BYTES);
                ShortVector v0 = ShortVector.broadcast(SHORTS, xq.get(SHORT, xb + 4L * p));
                ShortVector v1 = ShortVector.broadcast(SHORTS, xq.get(SHORT, xb + 4L * p + 2));
                low = q.and((short) 3).mul(v0).add(low);
                high = q.lanewise(VectorOperators.LSHR, 2).and((short) 3).mul(v0).add(high);
                low = q.lanewise(VectorOperators.LSHR, 4).and((short) 3).mul(v1).add(low);
                high = q.lanewise(VectorOperators.LSHR, 6).mul(v1).add(high);
                lowMinus = lowMinus.add(v0, VectorMask.fromLong(SHORTS, bits0));
                highMinus = highMinus.add(v0, VectorMask.fromLong(SHORTS, bits0 >>> HALF_GROUP));
                lowMinus = lowMinus.add(v1, VectorMask.fromLong(SHORTS, bits1));
                highMinus = highMinus.add(v1, VectorMask.fromLong(SHORTS, bits1 >>> HALF_GROUP));
            }
            int at = j * SUB_BLOCK_SUMS;
            low.intoArray(sums, at);
            high.intoArray(sums, at + HALF_GROUP);
            lowMinus.intoArray(sums, at + 2 * HALF_GROUP);
            highMinus.intoArray(sums, at + 3 * HALF_GROUP);
        }
    }

    /**
     * Q2_K's oneToken: per sub-block j, L of the low and high rows as oneToken's, and the sum of
     * xq over its 16 columns (every lane) where oneToken leaves N.
     */
    private static void oneToken2(MemorySegment w, long pairs, long column, MatmulInput input, int token, short[] sums) {
        MemorySegment xq = input.quantised;
        long xAt = 2L * token * input.columns + 2 * column;
        for (int j = 0; j < 16; j++) {
            ShortVector low = ShortVector.zero(SHORTS), high = low, sum = low;
            long first = pairs + 8L * j * HALF_GROUP;
            long xb = xAt + 32L * j;
            for (int p = 0; p < 8; p++) {
                ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, first + (long) p * HALF_GROUP, NATIVE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
                ShortVector v0 = ShortVector.broadcast(SHORTS, xq.get(SHORT, xb + 4L * p));
                ShortVector v1 = ShortVector.broadcast(SHORTS, xq.get(SHORT, xb + 4L * p + 2));
                low = q.and((short) 3).mul(v0).add(low);
                high = q.lanewise(VectorOperators.LSHR, 2).and((short) 3).mul(v0).add(high);
                low = q.lanewise(VectorOperators.LSHR, 4).and((short) 3).mul(v1).add(low);
                high = q.lanewise(VectorOperators.LSHR, 6).mul(v1).add(high);
                sum = v0.add(v1).add(sum);
            }
            int at = j * SUB_BLOCK_SUMS;
            low.intoArray(sums, at);
            high.intoArray(sums, at + HALF_GROUP);
            sum.intoArray(sums, at + 2 * HALF_GROUP);
            sum.intoArray(sums, at + 3 * HALF_GROUP);
        }
    }

    /**
     * The rows' d * sc and dmin * m (exact: 11 by 4 significant bits) of the 16 sub-blocks of the
     * Q2_K super-block whose header is at {@code at}: sub-block j's scales from index
     * {@code j * GROUP_ROWS}, its mins 16 groups of rows later.
     */
    private static void q2kRowScales(MemorySegment w, long at, float[] into) {
        // d and dmin through the floats after the 32 runs' (as IntegerProducts.rowScales; read in
        // address order, as there).
        int d = 32 * GROUP_ROWS;
        int dmin = d + GROUP_ROWS;
        for (int i = 0; i < 4; i++) {
            IntegerProducts.scales(w, at + 2L * FL * i).intoArray(into, d + i * FL);
        }
        for (int i = 0; i < 4; i++) {
            IntegerProducts.scales(w, at + Q2_MINS_AT + 2L * FL * i).intoArray(into, dmin + i * FL);
        }
        for (int j = 0; j < 16; j++) {
            for (int i = 0; i < 4; i++) {
                IntVector packed = (IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                        at + Q2_SCALES_AT + (long) j * GROUP_ROWS + (long) i * FL, NATIVE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
                FloatVector.fromArray(F, into, d + i * FL).mul((FloatVector) packed.and(0x0F).convert(VectorOperators.I2F, 0))
                        .intoArray(into, j * GROUP_ROWS + i * FL);
                FloatVector.fromArray(F, into, dmin + i * FL)
                        .mul((FloatVector) packed.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0))
                        .intoArray(into, (16 + j) * GROUP_ROWS + i * FL);
            }
        }
    }

    /**
     * A Q3_K super-block's 256 columns of a group (128 pairs from byte {@code pairs}) unpacked to
     * q = l - 4 h' as shorts (Q2_K's to l), column c's rows from {@code values[c * GROUP_ROWS]}.
     */
    private static void unpack(boolean q2, MemorySegment w, long pairs, short[] values) {
        int pairBytes = q2 ? HALF_GROUP : PAIR_BYTES;
        for (int p = 0; p < SUPER_BLOCK / 2; p++) {
            long pair = pairs + (long) p * pairBytes;
            ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, pair, NATIVE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
            // Q2_K's values are l, no bits to subtract 4 by.
            long bits0 = q2 ? 0 : bits(w, pair + HALF_GROUP);
            long bits1 = q2 ? 0 : bits(w, pair + HALF_GROUP + BITS_BYTES);
            int c = 2 * p * GROUP_ROWS;
            q.and((short) 3).sub((short) 4, VectorMask.fromLong(SHORTS, bits0)).intoArray(values, c);
            q.lanewise(VectorOperators.LSHR, 2).and((short) 3).sub((short) 4, VectorMask.fromLong(SHORTS, bits0 >>> HALF_GROUP))
                    .intoArray(values, c + HALF_GROUP);
            q.lanewise(VectorOperators.LSHR, 4).and((short) 3).sub((short) 4, VectorMask.fromLong(SHORTS, bits1))
                    .intoArray(values, c + GROUP_ROWS);
            q.lanewise(VectorOperators.LSHR, 6).sub((short) 4, VectorMask.fromLong(SHORTS, bits1 >>> HALF_GROUP))
                    .intoArray(values, c + GROUP_ROWS + HALF_GROUP);
        }
    }

    /**
     * Sub-block {@code j} (16 columns, unpacked into {@code values} by unpack; input column
     * {@code column} on) against four tokens: token t's sums of q * xq (|sum| <= 4 * 127 * 16, exact)
     * into {@code sums[at + t * 16 * SUB_BLOCK_SUMS ..]} where oneToken leaves L, and zeros where it
     * leaves N, so that accumulate's L - 4 N is the same exact sum; for Q2_K, where oneToken2
     * leaves them, its sums of l * xq and its sum of xq.
     */
    private static void fourTokens(boolean q2, short[] values, int j, long column, MatmulInput input, int t0, int t1,
                                   int t2, int t3, short[] sums, int at) {
        short[] xq = input.quantisedValues;
        int row = input.columns;
        int xc = (int) column;
        int x0 = t0 * row + xc, x1 = t1 * row + xc, x2 = t2 * row + xc, x3 = t3 * row + xc;
        ShortVector low0 = ShortVector.zero(SHORTS), high0 = low0, low1 = low0, high1 = low0;
        ShortVector low2 = low0, high2 = low0, low3 = low0, high3 = low0;
        int first = 16 * j * GROUP_ROWS;
        int sum0 = 0, sum1 = 0, sum2 = 0, sum3 = 0;
        for (int c = 0; c < 16; c++) {
            ShortVector low = ShortVector.fromArray(SHORTS, values, first + c * GROUP_ROWS);
            ShortVector high = ShortVector.fromArray(SHORTS, values, first + c * GROUP_ROWS + HALF_GROUP);
            short v0 = xq[x0 + c];
            short v1 = xq[x1 + c];
            short v2 = xq[x2 + c];
            short v3 = xq[x3 + c];
            sum0 += v0;
            sum1 += v1;
            sum2 += v2;
            sum3 += v3;
            low0 = low.mul(v0).add(low0);
            high0 = high.mul(v0).add(high0);
            low1 = low.mul(v1).add(low1);
            high1 = high.mul(v1).add(high1);
            low2 = low.mul(v2).add(low2);
            high2 = high.mul(v2).add(high2);
            low3 = low.mul(v3).add(low3);
            high3 = high.mul(v3).add(high3);
        }
        int token = 16 * SUB_BLOCK_SUMS;
        low0.intoArray(sums, at);
        high0.intoArray(sums, at + HALF_GROUP);
        low1.intoArray(sums, at + token);
        high1.intoArray(sums, at + token + HALF_GROUP);
        low2.intoArray(sums, at + 2 * token);
        high2.intoArray(sums, at + 2 * token + HALF_GROUP);
        low3.intoArray(sums, at + 3 * token);
        high3.intoArray(sums, at + 3 * token + HALF_GROUP);
        for (int t = 0; t < 4; t++) {
            int sum = !q2 ? 0 : t == 0 ? sum0 : t == 1 ? sum1 : t == 2 ? sum2 : sum3;
            java.util.Arrays.fill(sums, at + t * token + 2 * HALF_GROUP, at + t * token + 4 * HALF_GROUP, (short) sum);
        }
    }

    /** A column's h' bits (row r: bit r) from byte {@code at}. */
    private static long bits(MemorySegment w, long at) {
        return BITS_BYTES == 8 ? w.get(LE_LONG, at) : w.get(LE_INT, at) & 0xFFFFFFFFL;
    }

    /**
     * The first {@code count} tokens' sums of a Q3_K super-block's 16 sub-blocks (token t's
     * sub-block j at {@code sums[(16 t + j) * SUB_BLOCK_SUMS]}; its first input block {@code b0})
     * into their accumulators (token t's from {@code acc[accAt + t * GROUP_ROWS]}), sub-block after
     * sub-block: the same operations for a token alone or in a pass.
     */
    private static void accumulate(boolean q2, float[] rowScales, int b0, int blocks, MatmulInput input, int t0, int t1,
                                   int t2, int t3, int count, short[] sums, float[] acc, int accAt) {
        for (int t = 0; t < count; t++) {
            int token = t == 0 ? t0 : t == 1 ? t1 : t == 2 ? t2 : t3;
            int a = accAt + t * GROUP_ROWS;
            FloatVector a0 = FloatVector.fromArray(F, acc, a);
            FloatVector a1 = FloatVector.fromArray(F, acc, a + FL);
            FloatVector a2 = FloatVector.fromArray(F, acc, a + 2 * FL);
            FloatVector a3 = FloatVector.fromArray(F, acc, a + 3 * FL);
            for (int j = 0; j < 16; j++) {
                float dx = input.quantisedScales[token * blocks + b0 + j / 2];
                int at = (16 * t + j) * SUB_BLOCK_SUMS;
                ShortVector low = ShortVector.fromArray(SHORTS, sums, at);
                ShortVector high = ShortVector.fromArray(SHORTS, sums, at + HALF_GROUP);
                if (!q2) {
                    // L - 4 N in 16-bit lanes: |L - 4 N| <= 3 * 127 * 16 + 4 * 127 * 16 = 14,224, exact.
                    low = low.sub(ShortVector.fromArray(SHORTS, sums, at + 2 * HALF_GROUP).lanewise(VectorOperators.LSHL, 2));
                    high = high.sub(ShortVector.fromArray(SHORTS, sums, at + 3 * HALF_GROUP).lanewise(VectorOperators.LSHL, 2));
                }
                int sc = j * GROUP_ROWS;
                a0 = ((FloatVector) low.convertShape(VectorOperators.S2F, F, 0))
                        .fma(FloatVector.fromArray(F, rowScales, sc).mul(dx), a0);
                a1 = ((FloatVector) low.convertShape(VectorOperators.S2F, F, 1))
                        .fma(FloatVector.fromArray(F, rowScales, sc + FL).mul(dx), a1);
                a2 = ((FloatVector) high.convertShape(VectorOperators.S2F, F, 0))
                        .fma(FloatVector.fromArray(F, rowScales, sc + 2 * FL).mul(dx), a2);
                a3 = ((FloatVector) high.convertShape(VectorOperators.S2F, F, 1))
                        .fma(FloatVector.fromArray(F, rowScales, sc + 3 * FL).mul(dx), a3);
                if (q2) {
                    // Q2_K's minimum: dmin * m times -(sum xq) * dx.
                    FloatVector minWeight = FloatVector.broadcast(F, -(float) sums[at + 2 * HALF_GROUP] * dx);
                    int m = (16 + j) * GROUP_ROWS;
                    a0 = FloatVector.fromArray(F, rowScales, m).fma(minWeight, a0);
                    a1 = FloatVector.fromArray(F, rowScales, m + FL).fma(minWeight, a1);
                    a2 = FloatVector.fromArray(F, rowScales, m + 2 * FL).fma(minWeight, a2);
                    a3 = FloatVector.fromArray(F, rowScales, m + 3 * FL).fma(minWeight, a3);
                }
            }
            a0.intoArray(acc, a);
            a1.intoArray(acc, a + FL);
            a2.intoArray(acc, a + 2 * FL);
            a3.intoArray(acc, a + 3 * FL);
        }
    }
}
