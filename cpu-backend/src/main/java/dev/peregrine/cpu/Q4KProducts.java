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
 * Q4_K and Q5_K products, and Q4_1 and Q5_1 ones, in 16-bit integers on 8-bit activations, as
 * {@link IntegerProducts} computes Q4_0's (its groups of rows, quantised input and 16-bit column
 * sums). Q4_K (value (d * sc) * q - dmin * m, q 0-15, sc and m 6-bit per sub-block of 32, d and
 * dmin per super-block of 256; Q5_K the same with q 0-31) and Q4_1 (q * d + m, d and m per block
 * of 32; Q5_1 the same with q 0-31) are stored in two regions: first every group's columns (as
 * Q4_0's, column after column; Q5_K's and Q5_1's each followed by its rows' fifth bits, row r in
 * bit r), so that a group's columns are one unbroken stream; then every group's headers, one per
 * chunk of 8 blocks of 32 columns (a K-quant's super-block): the rows' d as halves, their dmin
 * as halves, the 8 sub-blocks' scales sc as a byte per row (sub-block after sub-block), their
 * mins m likewise (148 and 180 bytes per row and super-block against the file's 144 and 176);
 * for Q4_1 and Q5_1 each block's d then m as halves (20 and 24 bytes per row and block, as the
 * file's). With each header in front of its columns, as first written, the Q4_K one-token kernel
 * streamed 2.3x slower from memory (KernelBench decode, 2,048 x 8,192, one core: 9 against 21
 * GB/s; in L2 no different), though the loop was the same.
 *
 * <p>Arithmetic: the 16-bit sums are Q4_0's, S = sum of (q - 8) * xq over a sub-block's nibbles,
 * exact for the same reason; Q5_K and Q5_1 add H = sum of xq over the rows whose fifth bit is set
 * (masked adds, |H| <= 32 * 127). Per super-block and row two float sums over its sub-blocks
 * then take {@code fma(P, sc * dx, s)} with P = S + 8 * sum xq (+ 16 H), the exact sum of q * xq
 * as a float, and {@code fma(m, -(sum xq) * dx, n)}; the accumulator takes d * s + dmin * n once
 * per super-block (d and dmin factored out: a multiply fewer per row and sub-block than (d * sc)
 * * dx, 3% on KernelBench decode). Q4_1 and Q5_1 the same with d for sc, -m for m and 1 for d
 * and dmin.
 */
final class Q4KProducts {
    /** Where the parts of a super-block's header start (see the class comment), and its bytes. */
    private static final int MINS_AT = 2 * GROUP_ROWS;
    private static final int SCALES_AT = 4 * GROUP_ROWS;
    private static final int MIN_SCALES_AT = 12 * GROUP_ROWS;
    private static final int HEADER_BYTES = 20 * GROUP_ROWS;
    /** Q5_K: a column's fifth bits after its nibbles, a bit per row (row r: bit r). */
    private static final int FIFTH_BYTES = GROUP_ROWS / 8;
    /** Where the fifth sums of Q5_K start in the kernels' short sums (after the 8 x 8 vectors of the nibbles' sums). */
    private static final int FIFTHS = 8 * 8 * HALF_GROUP;
    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Q4KProducts() {
    }

    /** Q4_1 and Q5_1: a block's header, the rows' d then their m, halves. */
    private static final int BLOCK_HEADER_BYTES = 4 * GROUP_ROWS;

    /** Whether this class computes the products of this type (see IntegerProducts.handles for the K-quants' shapes). */
    static boolean handles(DType type) {
        return type == DType.Q4_K || type == DType.Q5_K || perBlock(type);
    }

    /** Q4_1 and Q5_1 (a scale d and a minimum m per block of 32), rather than the K-quants. */
    private static boolean perBlock(DType type) {
        return type == DType.Q4_1 || type == DType.Q5_1;
    }

    private static boolean fiveBits(DType type) {
        return type == DType.Q5_K || type == DType.Q5_1;
    }

    /** Bytes of a column of a group: Q4_0's nibbles, and for Q5_K and Q5_1 their fifth bits. */
    private static int columnBytes(DType type) {
        return fiveBits(type) ? COLUMN_BYTES + FIFTH_BYTES : COLUMN_BYTES;
    }

    /** Bytes of a chunk's header: a K-quant super-block's, or 8 blocks' d and m (the last chunk's too). */
    private static int headerBytes(DType type) {
        return perBlock(type) ? 8 * BLOCK_HEADER_BYTES : HEADER_BYTES;
    }

    /** Bytes of the copy of a matrix: every group's columns, then a header per chunk of 8 blocks. */
    static long bytes(DType type, int rows, int columns) {
        int blocks = columns / BLOCK;
        return IntegerProducts.groups(rows) * ((long) columns * columnBytes(type) + (long) chunks(blocks) * headerBytes(type));
    }

    /** Chunks of (up to) 8 blocks of 32 columns: a K-quant's super-blocks. */
    private static int chunks(int blocks) {
        return (blocks + 7) / 8;
    }

    /** Byte offset of chunk {@code c}'s columns in group {@code g} ({@code blocks} blocks a row). */
    private static long columnsAt(DType type, int g, int c, int blocks) {
        return ((long) g * blocks + 8L * c) * BLOCK * columnBytes(type);
    }

    /** Byte offset of chunk {@code c}'s header in group {@code g}: after every group's columns. */
    private static long headerAt(DType type, int rows, int g, int c, int blocks) {
        return IntegerProducts.headerAt(rows, (long) blocks * BLOCK * columnBytes(type), g, c, chunks(blocks),
                headerBytes(type));
    }

    /**
     * Group {@code group} of a Q4_K, Q5_K, Q4_1 or Q5_1 matrix's copy: the columns as Q4_0's
     * are, each followed for Q5_K and Q5_1 by its rows' fifth bits; per super-block d and dmin as
     * the file's halves and the 8 scales and 8 mins unpacked to a byte per row, or per block d and
     * m as the file's halves. Padding rows keep zeros: scales and minimums 0, the value 0.
     */
    static void copyGroup(DType type, String tensor, MemorySegment from, long rowBytes, int rows, int columns,
                          MemorySegment to, int group) {
        int blocks = columns / BLOCK;
        int stride = columnBytes(type);
        int groupRows = Math.min(GROUP_ROWS, rows - group * GROUP_ROWS);
        // The group's rows (one run of the file) copied in bulk to the heap; then a chunk (a
        // super-block, or 8 blocks) at a time, its columns and header built in the heap and
        // written in bulk (value by value through the segments, and with each value's place
        // worked out from its index, loading a Q5_K_M llama3.2-1b spent 70% of its time here).
        int chunkBlocks = 8;
        int fileChunkBytes = perBlock(type) ? chunkBlocks * type.blockBytes() : type.blockBytes();
        byte[] groupRowsCopy = IntegerProducts.fileRowsOfGroup(from, rowBytes, rows, group);
        MemorySegment rowsSegment = MemorySegment.ofArray(groupRowsCopy);
        byte[] chunkColumns = new byte[chunkBlocks * BLOCK * stride];
        byte[] chunkHeader = new byte[headerBytes(type)];
        MemorySegment headerSegment = MemorySegment.ofArray(chunkHeader);
        boolean five = fiveBits(type);
        for (int c = 0; c < chunks(blocks); c++) {
            int chunkBlocksHere = Math.min(chunkBlocks, blocks - chunkBlocks * c);
            java.util.Arrays.fill(chunkColumns, (byte) 0);
            java.util.Arrays.fill(chunkHeader, (byte) 0);
            for (int lane = 0; lane < groupRows; lane++) {
                int row = group * GROUP_ROWS + lane;
                int partAt = partAt(lane, rowBytes, c, fileChunkBytes);
                if (perBlock(type)) {
                    for (int k = 0; k < chunkBlocksHere; k++) {
                        int b = chunkBlocks * c + k;
                        int blockAt = partAt + k * type.blockBytes();
                        int at = k * BLOCK_HEADER_BYTES;
                        headerSegment.set(HEAP_SHORT, at + 2L * lane,
                                finiteScale(tensor, type.toString(), "scale", rowsSegment, blockAt, row, b));
                        headerSegment.set(HEAP_SHORT, at + 2L * (GROUP_ROWS + lane),
                                finiteScale(tensor, type.toString(), "minimum", rowsSegment, blockAt + 2, row, b));
                    }
                } else {
                    copyScales(type, tensor, rowsSegment, partAt, row, c, chunkHeader, headerSegment, lane);
                }
                if (five) {
                    // Q5_K: 32 bytes after the scales, bit j of byte l for value 32 j + l; Q5_1: a
                    // 32-bit word after each block's d and m, bit l for value l.
                    int fifthAt = COLUMN_BYTES + lane / 8;
                    int fifthBit = 1 << lane % 8;
                    for (int i = 0; i < chunkBlocksHere * BLOCK; i++) {
                        int bit = perBlock(type)
                                ? groupRowsCopy[partAt + i / BLOCK * type.blockBytes() + 4 + i % BLOCK / 8] >>> i % 8 & 1
                                : groupRowsCopy[partAt + 16 + i % BLOCK] >>> i / BLOCK & 1;
                        chunkColumns[i * stride + fifthAt] |= (byte) (bit * fifthBit);
                    }
                }
            }
            // The nibbles: the file's byte l of a run holds values l (low nibble) and l + span
            // (high) of the run's 2 span values (K-quants: 4 runs of 32 bytes, one after the other,
            // after d, dmin, the scales and Q5_K's fifth bits; Q4_1 and Q5_1: a run of 16 bytes
            // per block, after d, m and Q5_1's fifth bits). A column's byte j holds rows j (low
            // nibble) and j + HALF_GROUP (high), so each is written once, from the two rows' bytes.
            int span = perBlock(type) ? BLOCK / 2 : BLOCK;
            int runBytes = perBlock(type) ? type.blockBytes() : BLOCK;
            int nibblesAt = perBlock(type) ? (five ? 8 : 4) : (five ? 48 : 16);
            int runs = chunkBlocksHere * BLOCK / (2 * span);
            for (int lane = 0; lane < Math.min(HALF_GROUP, groupRows); lane++) {
                int lowAt = partAt(lane, rowBytes, c, fileChunkBytes) + nibblesAt;
                boolean upper = lane + HALF_GROUP < groupRows; // else padding: zeros
                int highAt = upper ? partAt(lane + HALF_GROUP, rowBytes, c, fileChunkBytes) + nibblesAt : 0;
                for (int run = 0; run < runs; run++) {
                    for (int l = 0; l < span; l++) {
                        int low = groupRowsCopy[lowAt + run * runBytes + l];
                        int high = upper ? groupRowsCopy[highAt + run * runBytes + l] : 0;
                        int i = 2 * span * run + l;
                        chunkColumns[i * stride + lane] = (byte) (low & 0x0F | (high & 0x0F) << 4);
                        chunkColumns[(i + span) * stride + lane] = (byte) (low >>> 4 & 0x0F | high & 0xF0);
                    }
                }
            }
            // Padding rows stay zero: their bits and scales in the chunk are never set.
            MemorySegment.copy(chunkHeader, 0, to, ValueLayout.JAVA_BYTE, headerAt(type, rows, group, c, blocks),
                    chunkHeader.length);
            MemorySegment.copy(chunkColumns, 0, to, ValueLayout.JAVA_BYTE, columnsAt(type, group, c, blocks),
                    chunkBlocksHere * BLOCK * stride);
        }
    }

    /** Where lane {@code lane}'s part of chunk {@code c} starts in a group's rows copied from the file. */
    private static int partAt(int lane, long rowBytes, int c, int fileChunkBytes) {
        return Math.toIntExact(lane * rowBytes + (long) c * fileChunkBytes);
    }

    /**
     * A row's d, dmin, 8 scales and 8 mins of one super-block (its bytes in the file, in {@code
     * rows} from {@code at}) into lane {@code lane} of a chunk's header, built in {@code header}
     * (also seen as {@code headerSegment}).
     */
    private static void copyScales(DType type, String tensor, MemorySegment rows, int at, int row, int superBlock,
                                   byte[] header, MemorySegment headerSegment, int lane) {
        String name = type.toString();
        headerSegment.set(HEAP_SHORT, 2L * lane, finiteScale(tensor, name, "scale", rows, at, row, superBlock));
        headerSegment.set(HEAP_SHORT, MINS_AT + 2L * lane, finiteScale(tensor, name, "min scale", rows, at + 2, row, superBlock));
        for (int j = 0; j < 8; j++) {
            header[SCALES_AT + j * GROUP_ROWS + lane] = (byte) Dequant.q4kScale(rows, at + 4, j);
            header[MIN_SCALES_AT + j * GROUP_ROWS + lane] = (byte) Dequant.q4kMin(rows, at + 4, j);
        }
    }

    /**
     * Row {@code row} as floats, as {@code Dequant} makes them: (d * sc) * q - dmin * m for the
     * K-quants, fma(q, d, m) for Q4_1 and Q5_1.
     */
    static void decodeRow(CpuWeight w, int row, MemorySegment out, long outIndex) {
        DType type = w.type();
        int blocks = w.columns() / BLOCK;
        int group = row / GROUP_ROWS;
        int lane = row % GROUP_ROWS;
        int shift = lane < HALF_GROUP ? 0 : 4;
        int stride = columnBytes(type);
        long cols = columnsAt(type, group, 0, blocks);
        MemorySegment data = w.data();
        for (int b = 0; b < blocks; b++) {
            long header = headerAt(type, w.rows(), group, b / 8, blocks);
            float scale;
            float min;
            if (perBlock(type)) {
                long at = header + (long) (b % 8) * BLOCK_HEADER_BYTES;
                scale = Float.float16ToFloat(data.get(SHORT, at + 2L * lane));
                min = Float.float16ToFloat(data.get(SHORT, at + 2L * (GROUP_ROWS + lane)));
            } else {
                int j = b % 8;
                float d = Float.float16ToFloat(data.get(SHORT, header + 2L * lane));
                float dmin = Float.float16ToFloat(data.get(SHORT, header + MINS_AT + 2L * lane));
                scale = d * (data.get(ValueLayout.JAVA_BYTE, header + SCALES_AT + (long) j * GROUP_ROWS + lane) & 0xFF);
                min = dmin * (data.get(ValueLayout.JAVA_BYTE, header + MIN_SCALES_AT + (long) j * GROUP_ROWS + lane) & 0xFF);
            }
            for (int l = 0; l < BLOCK; l++) {
                long column = cols + (long) (b * BLOCK + l) * stride;
                int q = data.get(ValueLayout.JAVA_BYTE, column + lane % HALF_GROUP) >>> shift & 0x0F;
                if (fiveBits(type)) {
                    q |= (data.get(ValueLayout.JAVA_BYTE, column + COLUMN_BYTES + lane / 8) >>> lane % 8 & 1) << 4;
                }
                out.set(FLOAT, 4L * (outIndex + (long) b * BLOCK + l), perBlock(type) ? Math.fma(q, scale, min) : scale * q - min);
            }
        }
    }

    /**
     * Per sub-block of 32 columns, the 16-bit sums as Q4_0's (S = sum of (q - 8) * xq, exact
     * since |q - 8| <= 8 as there; with a fifth bit also H), then per (row, token) the float sums of
     * the class comment. The same operations for a token alone and in passes of four, so
     * batch-invariant as Q4_0's.
     */
    static void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        DType type = w.type();
        boolean fiveBits = fiveBits(type);
        int blocks = w.columns() / BLOCK;
        // Per token its accumulators (one token: 4 tokens' worth, the pass shape).
        float[] acc = scratch.tileSums(Math.max(4, tokens) * GROUP_ROWS);
        float[] rowScales = scratch.blockScales(18 * GROUP_ROWS);
        short[] sums = scratch.shortSums(2 * FIFTHS);
        // Passes of 8 tokens while more than 4 are left (each column unpacked once for 8; Q5_K and
        // Q5_1, whose passes also keep fifth-bit sums, stay at 4), then one of up to 4.
        int passed = fiveBits ? 0 : FloatPanels.passedTokens(tokens);
        if (perBlock(type)) {
            java.util.Arrays.fill(rowScales, 16 * GROUP_ROWS, 18 * GROUP_ROWS, 1f);
        }
        for (int g = rowStart / GROUP_ROWS; g * GROUP_ROWS < rowEnd; g++) {
            java.util.Arrays.fill(acc, 0, Math.max(4, tokens) * GROUP_ROWS, 0f);
            for (int c = 0; c < chunks(blocks); c++) {
                int subBlocks = Math.min(8, blocks - 8 * c);
                long header = headerAt(type, w.rows(), g, c, blocks);
                long cols = columnsAt(type, g, c, blocks);
                // Once per chunk for all passes; its weights stay in L1 from pass to pass.
                if (perBlock(type)) {
                    blockRowScales(w.data(), header, subBlocks, rowScales);
                } else {
                    superBlockScales(w.data(), header, rowScales);
                }
                for (int t0 = 0; t0 < tokens; ) {
                    int pass = t0 < passed ? IntegerProducts.EIGHT : 4;
                    int count = Math.min(pass, tokens - t0);
                    // A short pass repeats its last token; those results are not stored.
                    int t1 = t0 + Math.min(1, count - 1);
                    int t2 = t0 + Math.min(2, count - 1);
                    int t3 = t0 + Math.min(3, count - 1);
                    if (count == 1 && fiveBits) {
                        oneToken5(w.data(), cols, 8 * c, subBlocks, input, t0, sums);
                    } else if (count == 1) {
                        oneToken(w.data(), cols, 8 * c, subBlocks, input, t0, sums);
                    } else {
                        for (int j = 0; j < subBlocks; j++) {
                            if (pass == IntegerProducts.EIGHT) {
                                IntegerProducts.eightTokens(w.data(), cols + (long) j * BLOCK * COLUMN_BYTES, 8 * c + j,
                                        input, t0, tokens - 1, sums, 2 * pass * j * HALF_GROUP);
                            } else if (fiveBits) {
                                fourTokens5(w.data(), cols + (long) j * BLOCK * columnBytes(type), 8 * c + j, input, t0,
                                        t1, t2, t3, sums, 8 * j * HALF_GROUP);
                            } else {
                                IntegerProducts.fourTokens(w.data(), cols + (long) j * BLOCK * COLUMN_BYTES, 8 * c + j,
                                        input, t0, t1, t2, t3, sums, 8 * j * HALF_GROUP);
                            }
                        }
                    }
                    accumulate(fiveBits, rowScales, 8 * c, subBlocks, blocks, input, t0, count, pass, sums, acc,
                            t0 * GROUP_ROWS);
                    t0 += count;
                }
            }
            int first = Math.max(rowStart, g * GROUP_ROWS);
            int end = Math.min(rowEnd, (g + 1) * GROUP_ROWS);
            IntegerProducts.storeRows(input, acc, g * GROUP_ROWS, out, w.rows(), 0, tokens, first, end);
        }
    }

    /**
     * A Q4_K or Q5_K super-block's scales for {@link #accumulate}, from its header at {@code at}:
     * the 8 sub-blocks' sc as floats (sub-block j's from index {@code j * GROUP_ROWS}), their m
     * likewise 8 groups of rows later, then the rows' d and dmin (indices 16 and 17 groups of rows on).
     */
    private static void superBlockScales(MemorySegment w, long at, float[] into) {
        for (int i = 0; i < 4; i++) {
            IntegerProducts.scales(w, at + 2L * FL * i).intoArray(into, 16 * GROUP_ROWS + i * FL);
            IntegerProducts.scales(w, at + MINS_AT + 2L * FL * i).intoArray(into, 17 * GROUP_ROWS + i * FL);
        }
        for (int j = 0; j < 16; j++) {
            for (int i = 0; i < 4; i++) {
                ByteVector bytes = ByteVector.fromMemorySegment(VectorKernels.QUARTER_BYTES, w,
                        at + SCALES_AT + (long) j * GROUP_ROWS + (long) i * FL, NATIVE);
                ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0))
                        .convert(VectorOperators.I2F, 0)).intoArray(into, j * GROUP_ROWS + i * FL);
            }
        }
    }

    /**
     * Q4_1 and Q5_1: the rows' d and -m of the {@code subBlocks} blocks of the chunk whose header
     * is at {@code at}, where superBlockScales puts Q4_K's sc and m: block j's d from index
     * {@code j * GROUP_ROWS}, its -m 8 groups of rows later (matmul sets the d and dmin after them to 1).
     */
    private static void blockRowScales(MemorySegment w, long at, int subBlocks, float[] into) {
        for (int j = 0; j < subBlocks; j++) {
            for (int i = 0; i < 4; i++) {
                long d = at + (long) j * BLOCK_HEADER_BYTES + 2L * FL * i;
                ((IntVector) ShortVector.fromMemorySegment(VectorKernels.HALF_SHORTS, w, d, NATIVE)
                        .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF)
                        .reinterpretAsFloats().mul(0x1p112f).intoArray(into, j * GROUP_ROWS + i * FL);
                ((IntVector) ShortVector.fromMemorySegment(VectorKernels.HALF_SHORTS, w, d + 2L * GROUP_ROWS, NATIVE)
                        .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF)
                        .reinterpretAsFloats().mul(-0x1p112f).intoArray(into, (8 + j) * GROUP_ROWS + i * FL);
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
    private static void oneToken(MemorySegment w, long columns, int b0, int subBlocks, MatmulInput input, int token,
                                 short[] sums) {
        MemorySegment xq = input.quantised;
        long xAt = 2L * token * input.columns + 2L * BLOCK * b0;
        for (int j = 0; j < subBlocks; j++) {
            long first = columns + (long) j * BLOCK * COLUMN_BYTES;
            long xb = xAt + 2L * BLOCK * j;
            ShortVector both = ShortVector.zero(SHORTS), high = both;
            for (int k = 0; k < BLOCK; k++) {
                ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, first + (long) k * COLUMN_BYTES, NATIVE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
                short v = xq.get(SHORT, xb + 2L * k);
                both = q.mul(v).add(both);
                high = q.lanewise(VectorOperators.LSHR, 4).mul(v).add(high);
            }
            IntegerProducts.lowNibbles(both, high).intoArray(sums, 8 * j * HALF_GROUP);
            high.intoArray(sums, (8 * j + 1) * HALF_GROUP);
        }
    }

    /**
     * Q5_K's and Q5_1's {@link #oneToken}: besides the nibbles' sums, per sub-block the 16-bit sums H of xq
     * over the rows whose fifth bit is set (|H| <= 32 * 127), masked adds from each column's
     * bits, into {@code sums[FIFTHS + 8 * j * HALF_GROUP ..]}.
     */
    private static void oneToken5(MemorySegment w, long columns, int b0, int subBlocks, MatmulInput input, int token,
                                  short[] sums) {
        MemorySegment xq = input.quantised;
        long xAt = 2L * token * input.columns + 2L * BLOCK * b0;
        int stride = COLUMN_BYTES + FIFTH_BYTES;
        for (int j = 0; j < subBlocks; j++) {
            long first = columns + (long) j * BLOCK * stride;
            long xb = xAt + 2L * BLOCK * j;
            ShortVector both = ShortVector.zero(SHORTS), high = both, lowFifth = both, highFifth = both;
            for (int k = 0; k < BLOCK; k++) {
                long column = first + (long) k * stride;
                ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, column, NATIVE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
                long bits = fifthBits(w, column + COLUMN_BYTES);
                ShortVector v = ShortVector.broadcast(SHORTS, xq.get(SHORT, xb + 2L * k));
                both = q.mul(v).add(both);
                high = q.lanewise(VectorOperators.LSHR, 4).mul(v).add(high);
                lowFifth = lowFifth.add(v, VectorMask.fromLong(SHORTS, bits));
                highFifth = highFifth.add(v, VectorMask.fromLong(SHORTS, bits >>> HALF_GROUP));
            }
            IntegerProducts.lowNibbles(both, high).intoArray(sums, 8 * j * HALF_GROUP);
            high.intoArray(sums, (8 * j + 1) * HALF_GROUP);
            lowFifth.intoArray(sums, FIFTHS + 8 * j * HALF_GROUP);
            highFifth.intoArray(sums, FIFTHS + (8 * j + 1) * HALF_GROUP);
        }
    }

    /**
     * Q5_K's and Q5_1's {@link IntegerProducts#fourTokens}: sub-block {@code b}'s 32 columns (from byte
     * {@code columns}) against four tokens, each column's nibbles and bits read once for the four;
     * token t's nibble sums into {@code sums[at + 2 t HALF_GROUP ..]}, its fifth sums as
     * {@link #oneToken5} leaves them, {@code FIFTHS} later.
     */
    private static void fourTokens5(MemorySegment w, long columns, int b, MatmulInput input, int t0, int t1, int t2,
                                    int t3, short[] sums, int at) {
        short[] xq = input.quantisedValues;
        int row = input.columns;
        int xb = BLOCK * b;
        int x0 = t0 * row + xb, x1 = t1 * row + xb, x2 = t2 * row + xb, x3 = t3 * row + xb;
        int stride = COLUMN_BYTES + FIFTH_BYTES;
        ShortVector low0 = ShortVector.zero(SHORTS), high0 = low0, low1 = low0, high1 = low0;
        ShortVector low2 = low0, high2 = low0, low3 = low0, high3 = low0;
        ShortVector lowFifth0 = low0, highFifth0 = low0, lowFifth1 = low0, highFifth1 = low0;
        ShortVector lowFifth2 = low0, highFifth2 = low0, lowFifth3 = low0, highFifth3 = low0;
        for (int k = 0; k < BLOCK; k++) {
            long column = columns + (long) k * stride;
            ShortVector q = (ShortVector) ByteVector.fromMemorySegment(HALF_BYTES, w, column, NATIVE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2S, SHORTS, 0);
            long bits = fifthBits(w, column + COLUMN_BYTES);
            VectorMask<Short> lowBits = VectorMask.fromLong(SHORTS, bits);
            VectorMask<Short> highBits = VectorMask.fromLong(SHORTS, bits >>> HALF_GROUP);
            ShortVector low = q.and((short) 0x0F);
            ShortVector high = q.lanewise(VectorOperators.LSHR, 4);
            ShortVector v0 = ShortVector.broadcast(SHORTS, xq[x0 + k]);
            ShortVector v1 = ShortVector.broadcast(SHORTS, xq[x1 + k]);
            ShortVector v2 = ShortVector.broadcast(SHORTS, xq[x2 + k]);
            ShortVector v3 = ShortVector.broadcast(SHORTS, xq[x3 + k]);
            low0 = low.mul(v0).add(low0);
            high0 = high.mul(v0).add(high0);
            low1 = low.mul(v1).add(low1);
            high1 = high.mul(v1).add(high1);
            low2 = low.mul(v2).add(low2);
            high2 = high.mul(v2).add(high2);
            low3 = low.mul(v3).add(low3);
            high3 = high.mul(v3).add(high3);
            lowFifth0 = lowFifth0.add(v0, lowBits);
            highFifth0 = highFifth0.add(v0, highBits);
            lowFifth1 = lowFifth1.add(v1, lowBits);
            highFifth1 = highFifth1.add(v1, highBits);
            lowFifth2 = lowFifth2.add(v2, lowBits);
            highFifth2 = highFifth2.add(v2, highBits);
            lowFifth3 = lowFifth3.add(v3, lowBits);
            highFifth3 = highFifth3.add(v3, highBits);
        }
        low0.intoArray(sums, at);
        high0.intoArray(sums, at + HALF_GROUP);
        low1.intoArray(sums, at + 2 * HALF_GROUP);
        high1.intoArray(sums, at + 3 * HALF_GROUP);
        low2.intoArray(sums, at + 4 * HALF_GROUP);
        high2.intoArray(sums, at + 5 * HALF_GROUP);
        low3.intoArray(sums, at + 6 * HALF_GROUP);
        high3.intoArray(sums, at + 7 * HALF_GROUP);
        lowFifth0.intoArray(sums, FIFTHS + at);
        highFifth0.intoArray(sums, FIFTHS + at + HALF_GROUP);
        lowFifth1.intoArray(sums, FIFTHS + at + 2 * HALF_GROUP);
        highFifth1.intoArray(sums, FIFTHS + at + 3 * HALF_GROUP);
        lowFifth2.intoArray(sums, FIFTHS + at + 4 * HALF_GROUP);
        highFifth2.intoArray(sums, FIFTHS + at + 5 * HALF_GROUP);
        lowFifth3.intoArray(sums, FIFTHS + at + 6 * HALF_GROUP);
        highFifth3.intoArray(sums, FIFTHS + at + 7 * HALF_GROUP);
    }

    /** A Q5_K or Q5_1 column's fifth bits (row r: bit r) from byte {@code at}. */
    private static long fifthBits(MemorySegment w, long at) {
        return FIFTH_BYTES == 8 ? w.get(LE_LONG, at) : w.get(LE_INT, at) & 0xFFFFFFFFL;
    }

    /**
     * The {@code count} tokens' (from {@code t0}) 16-bit sums of a Q4_K super-block's 8 sub-blocks
     * (sub-block j's token t at {@code sums[(2 * pass * j + 2 * t) * HALF_GROUP]}, as fourTokens
     * and eightTokens leave them for passes of {@code pass} tokens; one token: pass 4; input
     * block {@code b0} on) into their accumulators, sub-block after sub-block, the accumulators in
     * registers across the super-block: the same operations for a token alone or in a pass;
     * {@code rowScales} as superBlockScales or blockRowScales leave them; token t's accumulators
     * from {@code acc[accAt + t * GROUP_ROWS]}.
     */
    private static void accumulate(boolean fiveBits, float[] rowScales, int b0, int subBlocks, int blocks,
                                   MatmulInput input, int t0, int count, int pass, short[] sums, float[] acc, int accAt) {
        int d = 16 * GROUP_ROWS;
        int dmin = 17 * GROUP_ROWS;
        for (int t = 0; t < count; t++) {
            int token = t0 + t;
            // Per token the super-block's two sums, sum_j P_j (sc_j dx_j) and sum_j m_j (-X_j dx_j),
            // then times the rows' d and dmin.
            FloatVector s0 = FloatVector.zero(F), s1 = s0, s2 = s0, s3 = s0;
            FloatVector m0 = s0, m1 = s0, m2 = s0, m3 = s0;
            for (int j = 0; j < subBlocks; j++) {
                int b = token * blocks + b0 + j;
                short correction = input.quantisedCorrections[b];
                float dx = input.quantisedScales[b];
                float eightSum = correction;
                FloatVector minWeight = FloatVector.broadcast(F, -(eightSum * 0.125f) * dx);
                ShortVector low = ShortVector.fromArray(SHORTS, sums, (2 * pass * j + 2 * t) * HALF_GROUP).sub(correction);
                ShortVector high = ShortVector.fromArray(SHORTS, sums, (2 * pass * j + 2 * t + 1) * HALF_GROUP)
                        .sub(correction);
                int sc = j * GROUP_ROWS;
                int m = (8 + j) * GROUP_ROWS;
                // P = S + 8 sum xq (+ 16 H for Q5_K): the exact sum of q * xq, within 2^24.
                FloatVector p0 = ((FloatVector) low.convertShape(VectorOperators.S2F, F, 0)).add(eightSum);
                FloatVector p1 = ((FloatVector) low.convertShape(VectorOperators.S2F, F, 1)).add(eightSum);
                FloatVector p2 = ((FloatVector) high.convertShape(VectorOperators.S2F, F, 0)).add(eightSum);
                FloatVector p3 = ((FloatVector) high.convertShape(VectorOperators.S2F, F, 1)).add(eightSum);
                if (fiveBits) {
                    ShortVector lowFifth = ShortVector.fromArray(SHORTS, sums, FIFTHS + (8 * j + 2 * t) * HALF_GROUP);
                    ShortVector highFifth = ShortVector.fromArray(SHORTS, sums, FIFTHS + (8 * j + 2 * t + 1) * HALF_GROUP);
                    p0 = ((FloatVector) lowFifth.convertShape(VectorOperators.S2F, F, 0)).mul(16f).add(p0);
                    p1 = ((FloatVector) lowFifth.convertShape(VectorOperators.S2F, F, 1)).mul(16f).add(p1);
                    p2 = ((FloatVector) highFifth.convertShape(VectorOperators.S2F, F, 0)).mul(16f).add(p2);
                    p3 = ((FloatVector) highFifth.convertShape(VectorOperators.S2F, F, 1)).mul(16f).add(p3);
                }
                s0 = p0.fma(FloatVector.fromArray(F, rowScales, sc).mul(dx), s0);
                s1 = p1.fma(FloatVector.fromArray(F, rowScales, sc + FL).mul(dx), s1);
                s2 = p2.fma(FloatVector.fromArray(F, rowScales, sc + 2 * FL).mul(dx), s2);
                s3 = p3.fma(FloatVector.fromArray(F, rowScales, sc + 3 * FL).mul(dx), s3);
                m0 = FloatVector.fromArray(F, rowScales, m).fma(minWeight, m0);
                m1 = FloatVector.fromArray(F, rowScales, m + FL).fma(minWeight, m1);
                m2 = FloatVector.fromArray(F, rowScales, m + 2 * FL).fma(minWeight, m2);
                m3 = FloatVector.fromArray(F, rowScales, m + 3 * FL).fma(minWeight, m3);
            }
            int a = accAt + t * GROUP_ROWS;
            FloatVector a0 = s0.fma(FloatVector.fromArray(F, rowScales, d), FloatVector.fromArray(F, acc, a));
            FloatVector a1 = s1.fma(FloatVector.fromArray(F, rowScales, d + FL), FloatVector.fromArray(F, acc, a + FL));
            FloatVector a2 = s2.fma(FloatVector.fromArray(F, rowScales, d + 2 * FL), FloatVector.fromArray(F, acc, a + 2 * FL));
            FloatVector a3 = s3.fma(FloatVector.fromArray(F, rowScales, d + 3 * FL), FloatVector.fromArray(F, acc, a + 3 * FL));
            m0.fma(FloatVector.fromArray(F, rowScales, dmin), a0).intoArray(acc, a);
            m1.fma(FloatVector.fromArray(F, rowScales, dmin + FL), a1).intoArray(acc, a + FL);
            m2.fma(FloatVector.fromArray(F, rowScales, dmin + 2 * FL), a2).intoArray(acc, a + 2 * FL);
            m3.fma(FloatVector.fromArray(F, rowScales, dmin + 3 * FL), a3).intoArray(acc, a + 3 * FL);
        }
    }
}
