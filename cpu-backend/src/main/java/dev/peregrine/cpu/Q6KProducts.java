package dev.peregrine.cpu;

import static dev.peregrine.cpu.IntegerProducts.BLOCK;
import static dev.peregrine.cpu.IntegerProducts.COLUMN_BYTES;
import static dev.peregrine.cpu.IntegerProducts.FLOAT;
import static dev.peregrine.cpu.IntegerProducts.GROUP_ROWS;
import static dev.peregrine.cpu.IntegerProducts.HALF_BYTES;
import static dev.peregrine.cpu.IntegerProducts.HALF_GROUP;
import static dev.peregrine.cpu.IntegerProducts.HEAP_SHORT;
import static dev.peregrine.cpu.IntegerProducts.I;
import static dev.peregrine.cpu.IntegerProducts.NATIVE;
import static dev.peregrine.cpu.IntegerProducts.SHORT;
import static dev.peregrine.cpu.IntegerProducts.SHORTS;
import static dev.peregrine.cpu.IntegerProducts.SUPER_BLOCK;
import static dev.peregrine.cpu.IntegerProducts.finiteScale;
import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Q6_K products in integers on 8-bit activations, as {@link IntegerProducts} computes Q4_0's (its
 * groups of rows and quantised input). Q6_K (value (d * sc) * (q - 32), q 0-63, sc a signed byte
 * per sub-block of 16, d per super-block) keeps the file's 210 bytes per row and super-block, in
 * two regions as Q4_K's: first every group's columns, in pairs, each pair a lane's two rows (j and
 * j + GROUP_ROWS / 2) of each column as one 12-bit value B = q(j) + 64 q(j + GROUP_ROWS / 2) (see
 * copyGroup); then every group's super-block headers, the rows' d as halves and the 16 scales as a
 * byte per row. A lane sums B * xq and q(j + GROUP_ROWS / 2) * xq, wrapping in 16 bits; the first
 * minus 64 times the second is row j's sum of q * xq, and each minus 32 * sum xq the sum of
 * (q - 32) * xq, which over 8 columns lies within +-32 * 127 * 8 = +-32,512: exact, though every
 * step before wrapped. Then they are added in 32-bit lanes per sub-block of 16 and each
 * accumulator takes {@code fma(S, (d * sc) * dx, acc)}. For several tokens a super-block's values
 * are unpacked once into shorts and read by every pass of 4 tokens. KernelBench, 2,048 x 8,192, 1 /
 * 2 threads: decode 8.5 / 11.7 -> 15 / 28 GB/s; 4 tokens 23 / 43 -> 63 / 88 GFLOP/s; 128 tokens
 * 118 / 244 -> 98 / 192 (the float tile kernel was faster there: the price of batch invariance
 * with the decode kernel). The 12-bit pairs (before: two runs of low nibbles and one of the top
 * bits, each value assembled before its multiply) took the one-token loop from 32 to 20 vector
 * instructions a pair: KernelBench decode in L3 15.3 -> 19.3 GB/s on one core (20.8 with the loop
 * per sub-block of {@link #oneToken}).
 */
final class Q6KProducts {
    /** A super-block's header in Q6_K's copy: the rows' d, then 16 sub-blocks' scales (a signed byte a row). */
    private static final int SCALES_AT = 2 * GROUP_ROWS;
    private static final int HEADER_BYTES = 18 * GROUP_ROWS;
    private static final int PAIR_BYTES = 3 * COLUMN_BYTES;
    /** A super-block's 128 column pairs in a group. */
    private static final int PAIRS_BYTES = SUPER_BLOCK / 2 * PAIR_BYTES;
    /** A group's super-block: header and columns. */
    static final int BLOCK_BYTES = HEADER_BYTES + PAIRS_BYTES;
    /** Q6_K in the file: 128 bytes of low nibbles, 64 of high bit pairs, 16 scales, d. */
    private static final int FILE_BLOCK_BYTES = 210;
    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Q6KProducts() {
    }

    /** Byte offset of super-block {@code s}'s column pairs in group {@code g}. */
    private static long pairsAt(int g, int s, int supers) {
        return ((long) g * supers + s) * PAIRS_BYTES;
    }

    /**
     * Byte offset of super-block {@code s}'s header in group {@code g}: after every group's
     * columns, so that a group's columns are one unbroken stream (see Q4KProducts).
     */
    private static long headerAt(int rows, int g, int s, int supers) {
        return IntegerProducts.headerAt(rows, (long) supers * PAIRS_BYTES, g, s, supers, HEADER_BYTES);
    }

    /**
     * Group {@code group} of a Q6_K matrix's copy: per super-block a header (the rows' d as the
     * file's halves, the 16 scales as a byte per row) and the columns in pairs (2p, 2p + 1). With
     * B0 and B1 lane j's 12-bit values of the two columns (B = q(row j) + 64 q(row j + GROUP_ROWS /
     * 2)), a pair is {@code GROUP_ROWS / 2} little-endian shorts, B0 + 4,096 (B1 >> 8), then
     * {@code GROUP_ROWS / 2} bytes, B1's low 8 bits: one 16-bit load and one zero-extending load,
     * and 4 operations, give both columns' B. 210 bytes per row and super-block, as in the file.
     * Padding rows are zeros (d = 0).
     */
    static void copyGroup(String tensor, MemorySegment from, long rowBytes, int rows, int columns, MemorySegment to,
                          int group) {
        int supers = columns / SUPER_BLOCK;
        // The group's rows (one run of the file) copied in bulk to the heap; then a super-block
        // at a time, each row's block unpacked to its 256 q, from which the pairs and the header
        // are built in the heap and written in bulk (value by value through the segments, a sixth
        // of loading a Q4_K_M llama3.2-1b; with each q picked out of the file's block by its
        // index, still the largest part).
        byte[] groupRowsCopy = IntegerProducts.fileRowsOfGroup(from, rowBytes, rows, group);
        MemorySegment rowsSegment = MemorySegment.ofArray(groupRowsCopy);
        byte[] lowQ = new byte[SUPER_BLOCK];
        byte[] highQ = new byte[SUPER_BLOCK];
        byte[] pairs = new byte[PAIRS_BYTES];
        byte[] header = new byte[HEADER_BYTES];
        MemorySegment headerSegment = MemorySegment.ofArray(header);
        for (int s = 0; s < supers; s++) {
            java.util.Arrays.fill(pairs, (byte) 0);
            java.util.Arrays.fill(header, (byte) 0);
            for (int lane = 0; lane < HALF_GROUP; lane++) {
                int low = group * GROUP_ROWS + lane;
                int high = low + HALF_GROUP;
                if (low >= rows) {
                    break; // padding rows stay zero
                }
                for (int half = 0; half < 2; half++) {
                    int row = half == 0 ? low : high;
                    byte[] q = half == 0 ? lowQ : highQ;
                    if (row >= rows) {
                        java.util.Arrays.fill(q, (byte) 0); // a padding row's values then read as 0
                        continue;
                    }
                    int laneOfRow = lane + half * HALF_GROUP;
                    int blockAt = Math.toIntExact(laneOfRow * rowBytes + (long) s * FILE_BLOCK_BYTES);
                    headerSegment.set(HEAP_SHORT, 2L * laneOfRow,
                            finiteScale(tensor, "Q6_K", "scale", rowsSegment, blockAt + 208, row, s));
                    for (int j = 0; j < 16; j++) {
                        header[SCALES_AT + j * GROUP_ROWS + laneOfRow] = groupRowsCopy[blockAt + 192 + j];
                    }
                    unpack(groupRowsCopy, blockAt, q);
                }
                for (int p = 0; p < SUPER_BLOCK / 2; p++) {
                    int both0 = lowQ[2 * p] | highQ[2 * p] << 6;
                    int both1 = lowQ[2 * p + 1] | highQ[2 * p + 1] << 6;
                    int packed = both0 | (both1 >>> 8) << 12;
                    int pair = p * PAIR_BYTES;
                    pairs[pair + 2 * lane] = (byte) packed; // little-endian
                    pairs[pair + 2 * lane + 1] = (byte) (packed >>> 8);
                    pairs[pair + 2 * COLUMN_BYTES + lane] = (byte) both1;
                }
            }
            MemorySegment.copy(header, 0, to, ValueLayout.JAVA_BYTE, headerAt(rows, group, s, supers), HEADER_BYTES);
            MemorySegment.copy(pairs, 0, to, ValueLayout.JAVA_BYTE, pairsAt(group, s, supers), PAIRS_BYTES);
        }
    }

    /**
     * The 256 stored q (0-63; the weight is d * sc * (q - 32)) of a file's Q6_K super-block, from
     * byte {@code at} of {@code rows}, into {@code q}, as Dequant reads them: value 128 h + 32 k + l
     * has its low 4 bits in byte 64 h + l + 32 (k & 1) (low nibble for k < 2, else high) and its
     * top 2 in bits 2k of byte 128 + 32 h + l.
     */
    private static void unpack(byte[] rows, int at, byte[] q) {
        for (int h = 0; h < 2; h++) {
            for (int l = 0; l < 32; l++) {
                int first = rows[at + 64 * h + l];
                int second = rows[at + 64 * h + l + 32];
                int top = rows[at + 128 + 32 * h + l];
                int i = 128 * h + l;
                q[i] = (byte) (first & 0x0F | (top & 3) << 4);
                q[i + 32] = (byte) (second & 0x0F | (top >>> 2 & 3) << 4);
                q[i + 64] = (byte) (first >>> 4 & 0x0F | (top >>> 4 & 3) << 4);
                q[i + 96] = (byte) (second >>> 4 & 0x0F | (top >>> 6 & 3) << 4);
            }
        }
    }

    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        int supers = w.columns() / SUPER_BLOCK;
        int lane = row % GROUP_ROWS;
        int j = lane % HALF_GROUP;
        boolean upper = lane >= HALF_GROUP;
        MemorySegment data = w.data();
        for (int s = 0; s < supers; s++) {
            long at = headerAt(w.rows(), row / GROUP_ROWS, s, supers);
            long pairs = pairsAt(row / GROUP_ROWS, s, supers);
            float d = Float.float16ToFloat(data.get(SHORT, at + 2L * lane));
            for (int c = 0; c < SUPER_BLOCK; c++) {
                long pair = pairs + (long) (c / 2) * PAIR_BYTES;
                int packed = data.get(LE_SHORT, pair + 2L * j) & 0xFFFF;
                int both = c % 2 == 0 ? packed & 0x0FFF
                        : (packed >>> 12) << 8 | data.get(ValueLayout.JAVA_BYTE, pair + 2 * COLUMN_BYTES + j) & 0xFF;
                int q = upper ? both >>> 6 : both & 0x3F;
                int scale = data.get(ValueLayout.JAVA_BYTE, at + SCALES_AT + (long) (c / 16) * GROUP_ROWS + lane);
                out.set(FLOAT, 4L * (outIndex + (long) s * SUPER_BLOCK + c), d * scale * (q - 32));
            }
        }
    }

    /**
     * Q6_K: per half of a 16-value sub-block (8 columns), 16-bit sums of (q - 32) * xq (within
     * +-32 * 127 * 8 = +-32,512, so exact), the two halves added in 32-bit lanes (exact), then per
     * (row, token) {@code fma(S, (d * sc) * dx, acc)}, sub-block after sub-block: the same
     * operations for a token alone and in passes of four (their 32-bit sums through L1).
     */
    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        int supers = w.columns() / SUPER_BLOCK;
        int blocks = supers * 8;
        // Per token its accumulators (one token: 4 tokens' worth, the pass shape).
        float[] acc = scratch.tileSums(Math.max(4, tokens) * GROUP_ROWS);
        int[] sums = scratch.intSums(16 * 4 * GROUP_ROWS);
        short[] shorts = scratch.shortSums(8 * GROUP_ROWS);
        short[] values = tokens > 1 ? scratch.unpacked(SUPER_BLOCK * GROUP_ROWS) : null;
        float[] rowD = scratch.blockScales(GROUP_ROWS); // one token: the rows' d of a super-block
        for (int g = rowStart / GROUP_ROWS; g * GROUP_ROWS < rowEnd; g++) {
            java.util.Arrays.fill(acc, 0, Math.max(4, tokens) * GROUP_ROWS, 0f);
            for (int s = 0; s < supers; s++) {
                long pairs = pairsAt(g, s, supers);
                long header = headerAt(w.rows(), g, s, supers);
                if (tokens == 1) {
                    // Sub-block by sub-block, each followed by its float step. Run after the whole
                    // super-block, the 16 float steps (no weights loaded) left the memory idle: the
                    // product read from memory at 16 GB/s on one core against 21 from L3, and
                    // without the steps at 21-22 (KernelBench decode 2,048 x 2,048); interleaved,
                    // two threads went from 20-23 to 25-28 GB/s (docs/PERFORMANCE.md).
                    for (int i = 0; i < 4; i++) {
                        IntegerProducts.scales(w.data(), header + 2L * FL * i).intoArray(rowD, FL * i);
                    }
                    for (int j = 0; j < 16; j++) {
                        oneToken(w.data(), pairs, s, j, input, sums);
                        oneTokenStep(w.data(), header, j, input.quantisedScales[8 * s + j / 2], rowD, sums, acc);
                    }
                    continue;
                }
                // Several tokens: the super-block's values unpacked once (L1/L2), then passes of 4
                // tokens over them; a short pass repeats its last token, not stored.
                unpackQ6K(w.data(), pairs, values);
                for (int t0 = 0; t0 < tokens; t0 += 4) {
                    int count = Math.min(4, tokens - t0);
                    int t1 = t0 + Math.min(1, count - 1);
                    int t2 = t0 + Math.min(2, count - 1);
                    int t3 = t0 + Math.min(3, count - 1);
                    for (int j = 0; j < 16; j++) {
                        fourTokens(values, j, (long) s * SUPER_BLOCK + 16L * j, input, t0, t1, t2, t3, shorts, sums,
                                4 * j * GROUP_ROWS);
                    }
                    accumulate(w.data(), header, 8 * s, blocks, input, t0, t1, t2, t3, count, sums, acc, t0 * GROUP_ROWS);
                }
            }
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            IntegerProducts.storeRows(input, acc, g * GROUP_ROWS, out, w.rows(), 0, tokens, first, end);
        }
    }

    /**
     * A Q6_K super-block's 256 columns of a group (128 pairs from byte {@code pairs}) unpacked to
     * q - 32 as shorts, column c's rows from {@code values[c * GROUP_ROWS]}.
     */
    private static void unpackQ6K(MemorySegment w, long pairs, short[] values) {
        for (int p = 0; p < SUPER_BLOCK / 2; p++) { // offsets linear in p (see HalfProducts.oneGroup)
            long pair = pairs + (long) p * PAIR_BYTES;
            ShortVector packed = FloatVector.fromMemorySegment(F, w, pair, NATIVE).reinterpretAsShorts(); // see oneToken
            ShortVector low1 = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, pair + 2 * COLUMN_BYTES, NATIVE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
            ShortVector both0 = packed.and((short) 0x0FFF);
            ShortVector both1 = packed.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F00).or(low1);
            int c = 2 * p * GROUP_ROWS;
            both0.and((short) 0x3F).sub((short) 32).intoArray(values, c);
            both0.lanewise(VectorOperators.LSHR, 6).sub((short) 32).intoArray(values, c + HALF_GROUP);
            both1.and((short) 0x3F).sub((short) 32).intoArray(values, c + GROUP_ROWS);
            both1.lanewise(VectorOperators.LSHR, 6).sub((short) 32).intoArray(values, c + GROUP_ROWS + HALF_GROUP);
        }
    }

    /**
     * Sub-block {@code j} of a Q6_K super-block {@code s} of a group (its 128 pairs from byte
     * {@code pairs}) against token 0: the exact 32-bit sums that fourTokens makes, into {@code
     * sums[0 .. GROUP_ROWS)}. Called per sub-block, each followed by its float step (oneTokenStep),
     * rather than once per super-block followed by 16 steps: a few hundred instructions without a
     * load after each super-block left the memory idle (see matmul).
     */
    private static void oneToken(MemorySegment w, long pairs, int s, int j, MatmulInput input, int[] sums) {
        // The activations from the heap array: read from the native segment, each read kept that
        // segment's liveness checks in the loop (KernelBench decode in L3, one core, 13.3 -> 15.3
        // GB/s with the earlier layout).
        short[] xq = input.quantisedValues;
        int x = s * SUPER_BLOCK;
        // A sub-block's 8 pairs (offsets linear in the counter, see HalfProducts.oneGroup) in a
        // loop without stores: one loop over all 128 pairs, storing each sub-block's sums, kept the
        // weight segment's liveness checks in every pass (19.3 against 20.8 GB/s). The 16-bit sums
        // are widened every 4 pairs (8 columns).
        ShortVector both = ShortVector.zero(SHORTS), high = both;
        IntVector i0 = IntVector.zero(I), i1 = i0, i2 = i0, i3 = i0;
        int xSum = 0;
        for (int k = 0; k < 8; k++) {
            int p = 8 * j + k;
            long pair = pairs + (long) p * PAIR_BYTES;
            // Loaded as floats, not as a vector of shorts: this was the only full-width
            // ShortVector load, and adding that type to the profile of the shared
            // ShortVector.fromMemorySegment made C2 box the vectors of Q4_K's one-token float
            // step in about one JVM in four (150-500 MB a token on a Q4_K_M model).
            ShortVector packed = FloatVector.fromMemorySegment(F, w, pair, NATIVE).reinterpretAsShorts();
            ShortVector low1 = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, pair + 2 * COLUMN_BYTES, NATIVE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
            ShortVector both0 = packed.and((short) 0x0FFF);
            ShortVector both1 = packed.lanewise(VectorOperators.LSHR, 4).and((short) 0x0F00).or(low1);
            short v0 = xq[x + 2 * p];
            short v1 = xq[x + 2 * p + 1];
            // The loop-carried vectors as arguments, not receivers (see ARCHITECTURE.md).
            both = both0.mul(v0).add(both);
            both = both1.mul(v1).add(both);
            high = both0.lanewise(VectorOperators.LSHR, 6).mul(v0).add(high);
            high = both1.lanewise(VectorOperators.LSHR, 6).mul(v1).add(high);
            xSum += v0 + v1;
            if ((k & 3) == 3) {
                // Modulo 2^16: high rows' sum of q * xq is high, low rows' both - 64 high; minus
                // 32 * the sum of xq gives the sums of (q - 32) * xq, exact (see the class).
                short bias = (short) (32 * xSum);
                ShortVector highSums = high.sub(bias);
                ShortVector lowSums = both.sub(high.lanewise(VectorOperators.LSHL, 6)).sub(bias);
                i0 = ((IntVector) lowSums.convertShape(VectorOperators.S2I, I, 0)).add(i0);
                i1 = ((IntVector) lowSums.convertShape(VectorOperators.S2I, I, 1)).add(i1);
                i2 = ((IntVector) highSums.convertShape(VectorOperators.S2I, I, 0)).add(i2);
                i3 = ((IntVector) highSums.convertShape(VectorOperators.S2I, I, 1)).add(i3);
                both = ShortVector.zero(SHORTS);
                high = both;
                xSum = 0;
            }
        }
        i0.intoArray(sums, 0);
        i1.intoArray(sums, FL);
        i2.intoArray(sums, 2 * FL);
        i3.intoArray(sums, 3 * FL);
    }

    /**
     * accumulate's step for one token and sub-block {@code j} of the super-block whose header is at
     * {@code header}, its rows' d in {@code rowD} and its input scale {@code dx}: the same operations,
     * on oneToken's sums, into {@code acc[0 .. GROUP_ROWS)}, so a token alone gets the bits it gets
     * in a pass.
     */
    private static void oneTokenStep(MemorySegment w, long header, int j, float dx, float[] rowD, int[] sums,
                                     float[] acc) {
        long sc = header + SCALES_AT + (long) j * GROUP_ROWS;
        for (int i = 0; i < 4; i++) {
            FloatVector d = FloatVector.fromArray(F, rowD, FL * i);
            FloatVector scale = (FloatVector) ((IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                    sc + (long) FL * i, NATIVE).convertShape(VectorOperators.B2I, I, 0)).convert(VectorOperators.I2F, 0);
            ((FloatVector) IntVector.fromArray(I, sums, FL * i).convert(VectorOperators.I2F, 0))
                    .fma(d.mul(scale).mul(dx), FloatVector.fromArray(F, acc, FL * i)).intoArray(acc, FL * i);
        }
    }

    /**
     * Sub-block {@code j} (16 columns, unpacked into {@code values} by unpackQ6K; input column
     * {@code column} on) against four tokens: the exact 32-bit sums into {@code sums}, token t's
     * rows from {@code at + t * GROUP_ROWS}, as oneToken makes them; the 16-bit sums of both
     * halves pass through {@code shorts} and are widened together (widening and adding each half
     * into {@code sums} in turn was 5-15% slower: docs/PERFORMANCE.md).
     */
    private static void fourTokens(short[] values, int j, long column, MatmulInput input, int t0, int t1, int t2,
                                      int t3, short[] shorts, int[] sums, int at) {
        short[] xq = input.quantisedValues;
        int row = input.columns;
        for (int half = 0; half < 2; half++) {
            int first = (16 * j + 8 * half) * GROUP_ROWS;
            int xc = (int) column + 8 * half;
            int x0 = t0 * row + xc, x1 = t1 * row + xc, x2 = t2 * row + xc, x3 = t3 * row + xc;
            ShortVector low0 = ShortVector.zero(SHORTS), high0 = low0, low1 = low0, high1 = low0;
            ShortVector low2 = low0, high2 = low0, low3 = low0, high3 = low0;
            for (int c = 0; c < 8; c++) {
                ShortVector low = ShortVector.fromArray(SHORTS, values, first + c * GROUP_ROWS);
                ShortVector high = ShortVector.fromArray(SHORTS, values, first + c * GROUP_ROWS + HALF_GROUP);
                short v0 = xq[x0 + c];
                short v1 = xq[x1 + c];
                short v2 = xq[x2 + c];
                short v3 = xq[x3 + c];
                low0 = low.mul(v0).add(low0);
                high0 = high.mul(v0).add(high0);
                low1 = low.mul(v1).add(low1);
                high1 = high.mul(v1).add(high1);
                low2 = low.mul(v2).add(low2);
                high2 = high.mul(v2).add(high2);
                low3 = low.mul(v3).add(low3);
                high3 = high.mul(v3).add(high3);
            }
            // Through L1 to be widened (a loop over the 8 vectors; written out here, with the
            // loop above, the method grew past what C2 compiles without boxing).
            int h = 8 * HALF_GROUP * half;
            low0.intoArray(shorts, h);
            high0.intoArray(shorts, h + HALF_GROUP);
            low1.intoArray(shorts, h + 2 * HALF_GROUP);
            high1.intoArray(shorts, h + 3 * HALF_GROUP);
            low2.intoArray(shorts, h + 4 * HALF_GROUP);
            high2.intoArray(shorts, h + 5 * HALF_GROUP);
            low3.intoArray(shorts, h + 6 * HALF_GROUP);
            high3.intoArray(shorts, h + 7 * HALF_GROUP);
        }
        addWidened(shorts, sums, at);
    }

    /**
     * The 32-bit sums from {@code sums[at]}: each of the 4 x 2 vectors of 16-bit sums of the
     * first half in {@code shorts} (as fourTokens stores them) plus its match of the second half
     * (8 vectors later), widened.
     */
    private static void addWidened(short[] shorts, int[] sums, int at) {
        for (int k = 0; k < 8; k++) {
            ShortVector first = ShortVector.fromArray(SHORTS, shorts, k * HALF_GROUP);
            ShortVector second = ShortVector.fromArray(SHORTS, shorts, (8 + k) * HALF_GROUP);
            int to = at + k * HALF_GROUP;
            ((IntVector) first.convertShape(VectorOperators.S2I, I, 0)).add((IntVector) second.convertShape(VectorOperators.S2I, I, 0))
                    .intoArray(sums, to);
            ((IntVector) first.convertShape(VectorOperators.S2I, I, 1)).add((IntVector) second.convertShape(VectorOperators.S2I, I, 1))
                    .intoArray(sums, to + FL);
        }
    }

    /**
     * The first {@code count} tokens' 32-bit sums of a Q6_K super-block's 16 sub-blocks (sub-block
     * j's token t at {@code sums[(4 * j + t) * GROUP_ROWS]}; its first input block {@code b0}) into
     * their accumulators (token t's from {@code acc[accAt + t * GROUP_ROWS]}), sub-block after sub-block: the same operations for a token alone or in a
     * pass, the accumulators in registers across the super-block. The factors (d * sc) * dx come
     * straight from the header at {@code header} (d * sc exact: 11 by 8 significant bits), its
     * lines in address order: converted once per super-block into an array first, as Q4_K's
     * are, one-token products streamed 12-15% slower (KernelBench, docs/PERFORMANCE.md). (The
     * one-token path, oneTokenStep, keeps only the rows' d in an array, and the scales as here.)
     */
    private static void accumulate(MemorySegment w, long header, int b0, int blocks, MatmulInput input, int t0, int t1,
                                   int t2, int t3, int count, int[] sums, float[] acc, int accAt) {
        FloatVector d0 = IntegerProducts.scales(w, header);
        FloatVector d1 = IntegerProducts.scales(w, header + 2L * FL);
        FloatVector d2 = IntegerProducts.scales(w, header + 4L * FL);
        FloatVector d3 = IntegerProducts.scales(w, header + 6L * FL);
        for (int t = 0; t < count; t++) {
            int token = t == 0 ? t0 : t == 1 ? t1 : t == 2 ? t2 : t3;
            int a = accAt + t * GROUP_ROWS;
            FloatVector a0 = FloatVector.fromArray(F, acc, a);
            FloatVector a1 = FloatVector.fromArray(F, acc, a + FL);
            FloatVector a2 = FloatVector.fromArray(F, acc, a + 2 * FL);
            FloatVector a3 = FloatVector.fromArray(F, acc, a + 3 * FL);
            for (int j = 0; j < 16; j++) {
                float dx = input.quantisedScales[token * blocks + b0 + j / 2];
                long sc = header + SCALES_AT + (long) j * GROUP_ROWS;
                int at = (4 * j + t) * GROUP_ROWS;
                a0 = ((FloatVector) IntVector.fromArray(I, sums, at).convert(VectorOperators.I2F, 0))
                        .fma(d0.mul((FloatVector) ((IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                                sc, NATIVE).convertShape(VectorOperators.B2I, I, 0)).convert(VectorOperators.I2F, 0)).mul(dx), a0);
                a1 = ((FloatVector) IntVector.fromArray(I, sums, at + FL).convert(VectorOperators.I2F, 0))
                        .fma(d1.mul((FloatVector) ((IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                                sc + FL, NATIVE).convertShape(VectorOperators.B2I, I, 0)).convert(VectorOperators.I2F, 0)).mul(dx), a1);
                a2 = ((FloatVector) IntVector.fromArray(I, sums, at + 2 * FL).convert(VectorOperators.I2F, 0))
                        .fma(d2.mul((FloatVector) ((IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                                sc + 2 * FL, NATIVE).convertShape(VectorOperators.B2I, I, 0)).convert(VectorOperators.I2F, 0)).mul(dx), a2);
                a3 = ((FloatVector) IntVector.fromArray(I, sums, at + 3 * FL).convert(VectorOperators.I2F, 0))
                        .fma(d3.mul((FloatVector) ((IntVector) ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                                sc + 3 * FL, NATIVE).convertShape(VectorOperators.B2I, I, 0)).convert(VectorOperators.I2F, 0)).mul(dx), a3);
            }
            a0.intoArray(acc, a);
            a1.intoArray(acc, a + FL);
            a2.intoArray(acc, a + 2 * FL);
            a3.intoArray(acc, a + 3 * FL);
        }
    }
}
