package dev.peregrine.cpu;

import static dev.peregrine.cpu.FloatDecoders.IQ4_GRID_BITS;
import static dev.peregrine.cpu.FloatDecoders.q23kScales;
import static dev.peregrine.cpu.FloatDecoders.q4kScales;
import static dev.peregrine.cpu.FloatDecoders.q6kScales;
import static dev.peregrine.cpu.LaneSums.addLaneSums;
import static dev.peregrine.cpu.VectorKernels.BLOCK;
import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;
import static dev.peregrine.cpu.VectorKernels.FLOAT;
import static dev.peregrine.cpu.VectorKernels.I;
import static dev.peregrine.cpu.VectorKernels.K_BLOCK;
import static dev.peregrine.cpu.VectorKernels.LE;
import static dev.peregrine.cpu.VectorKernels.LE_INT;
import static dev.peregrine.cpu.VectorKernels.LE_SHORT;
import static dev.peregrine.cpu.VectorKernels.NATIVE;
import static dev.peregrine.cpu.VectorKernels.QUARTER_BYTES;
import static dev.peregrine.cpu.VectorKernels.TILE_ROWS;
import static dev.peregrine.cpu.VectorKernels.TILE_TOKENS;

import dev.peregrine.cpu.FloatDecoders.NibbleLayout;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Products with weight rows read in place from the file ({@code peregrine.cpu.copyWeights=false},
 * and the K-quant matrices whose rows are not whole super-blocks): one to four tokens a pass, four
 * rows at a time, each weight vector converted to floats in registers and met by one FMA chain per
 * token, the tile kernel's arithmetic value for value ({@link TileProducts}). Copied matrices are
 * column-major and take their own products ({@link FloatProducts}, {@link Q8Products}, {@link IntegerProducts}, ...).
 */
final class RowProducts {
    /**
     * Whether one token's product has its own kernel below: the quantised types' rows in the
     * file's layout have; F32, F16, BF16 and Q8_0 rows kept as in the file take the tile kernel
     * (copied, such matrices are column-major and take {@link FloatProducts}, {@link HalfProducts}
     * or {@link Q8Products}).
     */
    static boolean hasRowKernel(CpuWeight w) {
        return switch (w.type()) {
            case Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K, IQ4_NL, IQ4_XS -> true;
            case F32, Q8_0, F16, BF16 -> false;
        };
    }

    /** Whether products of 2 to 16 tokens have row kernels below, 4 tokens a pass (else they take the tile kernel). */
    static boolean hasTokensRowKernel(CpuWeight w) {
        return w.type() == DType.Q8_0;
    }

    /**
     * Tokens {@code t0 .. t0 + count - 1} (at most 4; several only for Q8_0 rows in the file's
     * layout) of the prepared input: four weight rows at
     * a time, each converted to floats in registers and met by one FMA chain per token; the
     * arithmetic is the tile kernel's, value for value. Each weight byte is read from memory once
     * per call, four rows' streams at a time.
     */
    static void matrixVector(MatmulInput input, CpuWeight w, MemorySegment out, int t0, int count, int rowStart,
                             int rowEnd, ThreadScratch scratch) {
        int n = w.columns();
        int kp = input.paddedColumns;
        int outWidth = w.rows();
        MemorySegment data = w.data();
        MemorySegment x = input.floats;
        // Byte offsets of the tokens' rows; a short pass repeats its last token (not stored).
        long x0 = 4L * kp * t0;
        long x1 = 4L * kp * (t0 + Math.min(1, count - 1));
        long x2 = 4L * kp * (t0 + Math.min(2, count - 1));
        long x3 = 4L * kp * (t0 + Math.min(3, count - 1));
        int perRow = count == 1 ? 1 : TILE_TOKENS;
        float[] sums = scratch.tileSums(TILE_ROWS * TILE_TOKENS);
        float[] lanes = scratch.lanes(TILE_ROWS * TILE_TOKENS * FL);
        float[] kScales = scratch.blockScales(TILE_ROWS * 16);
        long stride = w.blockStride();
        // 4 rows a pass, each read at its own offset.
        for (int j0 = rowStart; j0 < rowEnd; j0 += TILE_ROWS) {
            // Rows past the end repeat the last one; their sums are not stored.
            int rows = Math.min(TILE_ROWS, rowEnd - j0);
            long o0 = w.rowOffset(j0);
            long o1 = w.rowOffset(j0 + Math.min(1, rows - 1));
            long o2 = w.rowOffset(j0 + Math.min(2, rows - 1));
            long o3 = w.rowOffset(j0 + Math.min(3, rows - 1));
            java.util.Arrays.fill(sums, 0, TILE_ROWS * perRow, 0f);
            if (count > 1) {
                switch (w.type()) {
                    case Q8_0 -> rowsQ8Tokens(data, o0, o1, o2, o3, stride, x, x0, x1, x2, x3, kp, sums, lanes);
                    default -> throw new IllegalStateException("no row kernel for several tokens of " + w.type());
                }
            } else {
                switch (w.type()) {
                    case Q4_0, Q4_1, Q5_0, Q5_1 -> {
                        rowsNibbles(w.type(), data, o0, o1, stride, x, kp, sums, 0, lanes);
                        rowsNibbles(w.type(), data, o2, o3, stride, x, kp, sums, 2, lanes);
                    }
                    case Q4_K, Q5_K -> rowsQ45K(w.type() == DType.Q5_K, data, o0, o1, o2, o3, stride, x, kp, sums, lanes, kScales);
                    case Q6_K -> rowsQ6K(data, o0, o1, o2, o3, stride, x, kp, sums, lanes, kScales);
                    case Q2_K, Q3_K -> rowsQ23K(w.type(), data, o0, o1, o2, o3, stride, x, kp, sums, lanes, kScales);
                    case IQ4_NL, IQ4_XS -> {
                        rowsIq4(w.type() == DType.IQ4_XS, data, o0, o1, stride, x, kp, sums, 0, lanes);
                        rowsIq4(w.type() == DType.IQ4_XS, data, o2, o3, stride, x, kp, sums, 2, lanes);
                    }
                    default -> throw new IllegalStateException("no row kernel for " + w.type());
                }
            }
            for (int r = Math.max(j0, rowStart); r < Math.min(j0 + TILE_ROWS, rowEnd); r++) {
                for (int t = 0; t < count; t++) {
                    out.set(FLOAT, 4L * ((long) (input.firstToken + t0 + t) * outWidth + r), sums[(r - j0) * perRow + t]);
                }
            }
        }
    }

    /*
     * The row kernels below differ only in how a vector of weights is loaded and converted; each
     * is its own small loop because a helper that returned a vector and was not inlined would box
     * it on every call. Columns from n on (up to the padded length) read as zeros, as in the panel.
     */

    /**
     * Four Q8_0 rows kept as in the file (from o0..o3, blocks {@code stride} apart) against 4
     * tokens at once (token rows at byte offsets x0..x3 of {@code x}): value = (float) q * d, as
     * {@link FloatDecoders#decodeQ8} makes it (exact: 8 by 11 significant bits); each weight vector is converted
     * once and met by 4 chains; chain (row r, token t) ends in {@code sums[r * 4 + t]}, value for
     * value what the tile kernel gives that token.
     */
    private static void rowsQ8Tokens(MemorySegment w, long o0, long o1, long o2, long o3, long stride, MemorySegment x,
                                     long x0, long x1, long x2, long x3, int to, float[] sums, float[] lanes) {
        FloatVector c00 = FloatVector.zero(F), c01 = c00, c02 = c00, c03 = c00;
        FloatVector c10 = c00, c11 = c00, c12 = c00, c13 = c00;
        FloatVector c20 = c00, c21 = c00, c22 = c00, c23 = c00;
        FloatVector c30 = c00, c31 = c00, c32 = c00, c33 = c00;
        int blocks = to / BLOCK;
        for (int blk = 0; blk < blocks; blk++) {
            long at = blk * stride;
            long xAt = (long) blk * (4 * BLOCK);
            float d0 = Float.float16ToFloat(w.get(LE_SHORT, o0 + at));
            float d1 = Float.float16ToFloat(w.get(LE_SHORT, o1 + at));
            float d2 = Float.float16ToFloat(w.get(LE_SHORT, o2 + at));
            float d3 = Float.float16ToFloat(w.get(LE_SHORT, o3 + at));
            for (int c = 0; c < BLOCK; c += FL) {
                FloatVector w0 = ((FloatVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, o0 + at + 2 + c, LE)
                        .convertShape(VectorOperators.B2F, F, 0)).mul(d0);
                FloatVector w1 = ((FloatVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, o1 + at + 2 + c, LE)
                        .convertShape(VectorOperators.B2F, F, 0)).mul(d1);
                FloatVector w2 = ((FloatVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, o2 + at + 2 + c, LE)
                        .convertShape(VectorOperators.B2F, F, 0)).mul(d2);
                FloatVector w3 = ((FloatVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, o3 + at + 2 + c, LE)
                        .convertShape(VectorOperators.B2F, F, 0)).mul(d3);
                long xc = xAt + 4L * c;
                FloatVector v = FloatVector.fromMemorySegment(F, x, x0 + xc, NATIVE);
                c00 = w0.fma(v, c00);
                c10 = w1.fma(v, c10);
                c20 = w2.fma(v, c20);
                c30 = w3.fma(v, c30);
                v = FloatVector.fromMemorySegment(F, x, x1 + xc, NATIVE);
                c01 = w0.fma(v, c01);
                c11 = w1.fma(v, c11);
                c21 = w2.fma(v, c21);
                c31 = w3.fma(v, c31);
                v = FloatVector.fromMemorySegment(F, x, x2 + xc, NATIVE);
                c02 = w0.fma(v, c02);
                c12 = w1.fma(v, c12);
                c22 = w2.fma(v, c22);
                c32 = w3.fma(v, c32);
                v = FloatVector.fromMemorySegment(F, x, x3 + xc, NATIVE);
                c03 = w0.fma(v, c03);
                c13 = w1.fma(v, c13);
                c23 = w2.fma(v, c23);
                c33 = w3.fma(v, c33);
            }
        }
        // Chain (r, t) at lanes[(r * 4 + t) * FL] (a helper taking the vectors would box them).
        c00.intoArray(lanes, 0);
        c01.intoArray(lanes, FL);
        c02.intoArray(lanes, 2 * FL);
        c03.intoArray(lanes, 3 * FL);
        c10.intoArray(lanes, 4 * FL);
        c11.intoArray(lanes, 5 * FL);
        c12.intoArray(lanes, 6 * FL);
        c13.intoArray(lanes, 7 * FL);
        c20.intoArray(lanes, 8 * FL);
        c21.intoArray(lanes, 9 * FL);
        c22.intoArray(lanes, 10 * FL);
        c23.intoArray(lanes, 11 * FL);
        c30.intoArray(lanes, 12 * FL);
        c31.intoArray(lanes, 13 * FL);
        c32.intoArray(lanes, 14 * FL);
        c33.intoArray(lanes, 15 * FL);
        addLaneSums(lanes, sums, 0, 16);
    }

    /**
     * Two rows (at o0, o1; sums added at {@code at}, {@code at + 1}) of the 32-value nibble types,
     * Q4_0, Q4_1, Q5_0 and Q5_1 (layouts in {@code DType}): a block's first 16 values sit in the
     * low nibbles of its 16 bytes, the second 16 in the high nibbles, with a fifth bit each from
     * the word qh for Q5_0 and Q5_1. Every value is fma(q, d, m), as {@link FloatDecoders#decodeNibbleBlocks}
     * and {@code Dequant} make it: m is the stored minimum for Q4_1 and Q5_1, and -8d (Q4_0) or
     * -16d (Q5_0) otherwise, for which the FMA is exact (5 by 11 significant bits) and equals
     * (q - 8) * d or (q - 16) * d.
     *
     * <p>Two rows, not four: with four, C2 ran out of its node budget for late inlining in about
     * half of the JVM runs that compiled it for several of these types, left the final stores of
     * the chains as calls and boxed the chains (0.3-3 MB a decode step).
     */
    private static void rowsNibbles(DType type, MemorySegment w, long o0, long o1, long stride, MemorySegment x, int to,
                                    float[] sums, int at, float[] lanes) {
        NibbleLayout layout = NibbleLayout.of(type);
        boolean withMin = layout.withMin();
        boolean fiveBits = layout.fiveBits();
        long qs = layout.quants();
        float bias = layout.bias();
        IntVector bitOfLane = IntVector.zero(I).addIndex(1);
        FloatVector c0 = FloatVector.zero(F), c1 = c0;
        // Offsets linear in an int block counter, as in HalfProducts.oneGroup.
        int blocks = to / BLOCK;
        for (int blk = 0; blk < blocks; blk++) {
            long b0 = o0 + blk * stride, b1 = o1 + blk * stride;
            long xAt = (long) blk * (4 * BLOCK);
            float d0 = Float.float16ToFloat(w.get(LE_SHORT, b0));
            float d1 = Float.float16ToFloat(w.get(LE_SHORT, b1));
            float m0 = withMin ? Float.float16ToFloat(w.get(LE_SHORT, b0 + 2)) : bias * d0;
            float m1 = withMin ? Float.float16ToFloat(w.get(LE_SHORT, b1 + 2)) : bias * d1;
            int h0 = fiveBits ? w.get(LE_INT, b0 + qs - 4) : 0;
            int h1 = fiveBits ? w.get(LE_INT, b1 + qs - 4) : 0;
            // The low nibbles (values 0-15) in column order, then the high ones (16-31).
            for (int half = 0; half < 2; half++) {
                int shift = 4 * half;
                for (int c = 0; c < BLOCK / 2; c += FL) {
                    FloatVector v = FloatVector.fromMemorySegment(F, x, xAt + 4L * (16 * half + c), NATIVE);
                    int bit = 16 * half + c;
                    IntVector q0 = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, b0 + qs + c, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, shift).and(0x0F);
                    IntVector q1 = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, b1 + qs + c, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, shift).and(0x0F);
                    if (fiveBits) {
                        // Value j's fifth bit is bit j of qh: the lane's bit moved to 16 (4 places up).
                        q0 = q0.or(IntVector.broadcast(I, (h0 >>> bit & 0xFFFF) << 4).lanewise(VectorOperators.LSHR, bitOfLane).and(16));
                        q1 = q1.or(IntVector.broadcast(I, (h1 >>> bit & 0xFFFF) << 4).lanewise(VectorOperators.LSHR, bitOfLane).and(16));
                    }
                    c0 = ((FloatVector) q0.convert(VectorOperators.I2F, 0)).fma(d0, m0).fma(v, c0);
                    c1 = ((FloatVector) q1.convert(VectorOperators.I2F, 0)).fma(d1, m1).fma(v, c1);
                }
            }
        }
        c0.intoArray(lanes, 0);
        c1.intoArray(lanes, FL);
        addLaneSums(lanes, sums, at, 2);
    }

    /**
     * Q4_K and Q5_K rows, per 256-value super-block: sub-block j (32 values) has scale d * sc[j]
     * and offset dmin * m[j]; value = scale * q - offset, as {@code Dequant} computes it (two
     * roundings, no FMA). Sub-blocks 2r and 2r + 1 are the low and high nibbles of the run of 32
     * bytes r; a Q5_K value at position l of sub-block j takes its fifth bit from bit j of qh[l].
     *
     * <p>One row at a time per super-block, its chain parked in {@code lanes} in between, columns in
     * order (so each lane's chain is the same at every vector width's grouping of columns). Small
     * on purpose: the earlier 256-bit kernel (4 rows written out, with value helpers) sat at C2's
     * inlining budget, and in most JVM runs of a llama3.2-1b Q4_K_M decode its vectors were boxed
     * (20 GB per token, 1 tok/s); this shape is the one that never did at 512 bits.
     */
    private static void rowsQ45K(boolean fiveBits, MemorySegment w, long o0, long o1, long o2, long o3, long stride,
                                 MemorySegment x, int to, float[] sums, float[] lanes, float[] scales) {
        java.util.Arrays.fill(lanes, 0, 4 * FL, 0f);
        IntVector nibble = IntVector.broadcast(I, 0x0F);
        long quants = fiveBits ? 48 : 16;
        for (int blk = 0; blk < to / K_BLOCK; blk++) {
            int b = blk * K_BLOCK;
            for (int row = 0; row < 4; row++) {
                long at = (row == 0 ? o0 : row == 1 ? o1 : row == 2 ? o2 : o3) + blk * stride;
                q4kScales(w, at, scales, 0);
                FloatVector c = FloatVector.fromArray(F, lanes, row * FL);
                for (int r = 0; r < 4; r++) {
                    long run = at + quants + 32L * r;
                    long xAt = 4L * (b + 64 * r);
                    float scaleLow = scales[2 * r];
                    float offsetLow = scales[8 + 2 * r];
                    float scaleHigh = scales[2 * r + 1];
                    float offsetHigh = scales[9 + 2 * r];
                    for (int g = 0; g < 32; g += FL) {
                        IntVector q = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, run + g, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).and(nibble);
                        if (fiveBits) {
                            q = q.or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 16 + g, LE)
                                    .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHL, 4)
                                    .lanewise(VectorOperators.LSHR, 2 * r).and(16));
                        }
                        c = ((FloatVector) q.convertShape(VectorOperators.I2F, F, 0)).mul(scaleLow)
                                .sub(offsetLow).fma(FloatVector.fromMemorySegment(F, x, xAt + 4L * g, NATIVE), c);
                    }
                    for (int g = 0; g < 32; g += FL) {
                        IntVector q = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, run + g, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4);
                        if (fiveBits) {
                            q = q.or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 16 + g, LE)
                                    .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHL, 4)
                                    .lanewise(VectorOperators.LSHR, 2 * r + 1).and(16));
                        }
                        c = ((FloatVector) q.convertShape(VectorOperators.I2F, F, 0))
                                .mul(scaleHigh).sub(offsetHigh)
                                .fma(FloatVector.fromMemorySegment(F, x, xAt + 128 + 4L * g, NATIVE), c);
                    }
                }
                c.intoArray(lanes, row * FL);
            }
        }
        addLaneSums(lanes, sums, 0, 4);
    }

    /**
     * Q6_K rows, per 256-value super-block: value i = (d * sc[i / 16]) * (q - 32), as {@code Dequant}
     * computes it, with q's low 4 bits from ql and high 2 bits from qh (layout in {@code DType}):
     * in half h (128 values), run k (32 values) takes its low bits from ql bytes 64h + 0-31 (k
     * even) or 32-63 (k odd), their low nibbles for k < 2 and high ones after, and its high bits
     * from qh bytes 128 + 32h + 0-31 at bit 2k. One row at a time, chain parked in {@code lanes},
     * columns in order, as rowsQ45K (and small for the same reason; a written-out 512-bit version
     * was boxed in some JVM runs too).
     */
    private static void rowsQ6K(MemorySegment w, long o0, long o1, long o2, long o3, long stride, MemorySegment x, int to,
                                float[] sums, float[] lanes, float[] scales) {
        java.util.Arrays.fill(lanes, 0, 4 * FL, 0f);
        IntVector nibble = IntVector.broadcast(I, 0x0F);
        IntVector twoBits = IntVector.broadcast(I, 3);
        for (int blk = 0; blk < to / K_BLOCK; blk++) {
            int b = blk * K_BLOCK;
            for (int row = 0; row < 4; row++) {
                long at = (row == 0 ? o0 : row == 1 ? o1 : row == 2 ? o2 : o3) + blk * stride;
                q6kScales(w, at, scales, 0);
                FloatVector c = FloatVector.fromArray(F, lanes, row * FL);
                for (int h = 0; h < 2; h++) {
                    for (int k = 0; k < 4; k++) {
                        long ql = at + 64L * h + 32 * (k % 2);
                        long qh = at + 128 + 32L * h;
                        int lowShift = k < 2 ? 0 : 4;
                        int highShift = 2 * k;
                        long xk = 4L * (b + 128 * h + 32 * k);
                        for (int g = 0; g < 32; g += FL) {
                            IntVector low = (IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, ql + g, LE)
                                    .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
                            IntVector high = (IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, qh + g, LE)
                                    .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
                            c = ((FloatVector) low.lanewise(VectorOperators.LSHR, lowShift).and(nibble)
                                    .or(high.lanewise(VectorOperators.LSHR, highShift).and(twoBits).lanewise(VectorOperators.LSHL, 4))
                                    .sub(32).convertShape(VectorOperators.I2F, F, 0)).mul(scales[8 * h + 2 * k + g / 16])
                                    .fma(FloatVector.fromMemorySegment(F, x, xk + 4L * g, NATIVE), c);
                        }
                    }
                }
                c.intoArray(lanes, row * FL);
            }
        }
        addLaneSums(lanes, sums, 0, 4);
    }

    /**
     * Two rows (at o0, o1; sums added at {@code at}, {@code at + 1}) of IQ4_NL (32-value blocks) or
     * IQ4_XS (256-value super-blocks of 8 runs of 32, each with its 6-bit scale), each value
     * scale * grid[nibble] as {@link FloatDecoders#decodeIq4} makes it (the grid looked up in registers), then
     * one FMA per token. Two rows for the reason given at {@link #rowsNibbles} (with four, C2
     * boxed the chains in some 256-bit JVM runs).
     */
    private static void rowsIq4(boolean superBlock, MemorySegment w, long o0, long o1, long stride, MemorySegment x,
                                int to, float[] sums, int at, float[] lanes) {
        int runs = superBlock ? 8 : 1;
        long quants = superBlock ? 8 : 2;
        IntVector gridLow = IntVector.fromArray(I, IQ4_GRID_BITS, 0);
        IntVector gridHigh = IntVector.fromArray(I, IQ4_GRID_BITS, 16 - FL);
        FloatVector c0 = FloatVector.zero(F), c1 = c0;
        int blocks = to / (BLOCK * runs);
        for (int blk = 0; blk < blocks; blk++) {
            long b0 = o0 + blk * stride, b1 = o1 + blk * stride;
            float d0 = Float.float16ToFloat(w.get(LE_SHORT, b0));
            float d1 = Float.float16ToFloat(w.get(LE_SHORT, b1));
            for (int j = 0; j < runs; j++) {
                float s0 = superBlock ? d0 * (iq4xsScale(w, b0, j) - 32) : d0;
                float s1 = superBlock ? d1 * (iq4xsScale(w, b1, j) - 32) : d1;
                long q = quants + 16L * j;
                long xAt = 4L * BLOCK * ((long) blk * runs + j);
                for (int half = 0; half < 2; half++) {
                    for (int c = 0; c < BLOCK / 2; c += FL) {
                        FloatVector v = FloatVector.fromMemorySegment(F, x, xAt + 4L * (16 * half + c), NATIVE);
                        IntVector n0 = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, b0 + q + c, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * half).and(0x0F);
                        IntVector n1 = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, b1 + q + c, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * half).and(0x0F);
                        // 16 lanes: one table; 8 lanes: the grid in two (index n picks from both).
                        c0 = (FL == 16 ? n0.selectFrom(gridLow) : n0.selectFrom(gridLow, gridHigh)).reinterpretAsFloats().mul(s0).fma(v, c0);
                        c1 = (FL == 16 ? n1.selectFrom(gridLow) : n1.selectFrom(gridLow, gridHigh)).reinterpretAsFloats().mul(s1).fma(v, c1);
                    }
                }
            }
        }
        c0.intoArray(lanes, 0);
        c1.intoArray(lanes, FL);
        addLaneSums(lanes, sums, at, 2);
    }

    /** IQ4_XS: the 6-bit scale of run {@code j} (0..7) of the super-block at {@code at}. */
    private static int iq4xsScale(MemorySegment w, long at, int j) {
        return (w.get(ValueLayout.JAVA_BYTE, at + 4 + j / 2) >>> 4 * (j % 2) & 0x0F) | (w.get(LE_SHORT, at + 2) >>> 2 * j & 3) << 4;
    }

    /**
     * Q2_K and Q3_K rows: one row at a time per super-block, its chain parked in {@code lanes} in
     * between (as rowsQ45K), each value made as {@link FloatDecoders#decodeQ23K} makes it, scales first.
     */
    private static void rowsQ23K(DType type, MemorySegment w, long o0, long o1, long o2, long o3, long stride,
                                 MemorySegment x, int to, float[] sums, float[] lanes, float[] scales) {
        boolean threeBits = type == DType.Q3_K;
        long quants = threeBits ? 32 : 16;
        java.util.Arrays.fill(lanes, 0, 4 * FL, 0f);
        for (int blk = 0; blk < to / K_BLOCK; blk++) {
            // Two rows at a time: two independent chains keep the FMA unit busy.
            for (int pair = 0; pair < 2; pair++) {
                long a = (pair == 0 ? o0 : o2) + blk * stride;
                long b = (pair == 0 ? o1 : o3) + blk * stride;
                q23kScales(threeBits, w, a, scales);
                q23kScales(threeBits, w, b, scales, 32);
                FloatVector ca = FloatVector.fromArray(F, lanes, 2 * pair * FL);
                FloatVector cb = FloatVector.fromArray(F, lanes, (2 * pair + 1) * FL);
                for (int i = 0; i < K_BLOCK; i += FL) {
                    int h = i / 128;
                    int k = i % 128 / 32;
                    int l = i % 32;
                    IntVector qa = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, a + quants + 32L * h + l, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 2 * k).and(3);
                    IntVector qb = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, b + quants + 32L * h + l, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 2 * k).and(3);
                    if (threeBits) {
                        qa = qa.or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, a + l, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * h + k)
                                .and(1).lanewise(VectorOperators.LSHL, 2)).sub(4);
                        qb = qb.or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, b + l, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * h + k)
                                .and(1).lanewise(VectorOperators.LSHL, 2)).sub(4);
                    }
                    FloatVector va = ((FloatVector) qa.convert(VectorOperators.I2F, 0)).mul(scales[i / 16]);
                    FloatVector vb = ((FloatVector) qb.convert(VectorOperators.I2F, 0)).mul(scales[32 + i / 16]);
                    if (!threeBits) {
                        va = va.sub(scales[16 + i / 16]); // Q3_K's offsets are zeros: x - 0 is x
                        vb = vb.sub(scales[48 + i / 16]);
                    }
                    FloatVector v = FloatVector.fromMemorySegment(F, x, 4L * (blk * K_BLOCK + i), NATIVE);
                    ca = va.fma(v, ca);
                    cb = vb.fma(v, cb);
                }
                ca.intoArray(lanes, 2 * pair * FL);
                cb.intoArray(lanes, (2 * pair + 1) * FL);
            }
        }
        addLaneSums(lanes, sums, 0, 4);
    }

    private RowProducts() {
    }
}
