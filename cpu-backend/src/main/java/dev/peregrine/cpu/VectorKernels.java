package dev.peregrine.cpu;

import dev.peregrine.spi.Activation;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Optional;
import jdk.incubator.vector.ByteVector;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.LongVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Kernels written with the Vector API, at the widest vector size the CPU offers (AVX-512 gives 16
 * float lanes, AVX2 8).
 *
 * <p>Matrices copied at load are column-major groups of rows with products of their own, a lane
 * per weight row: on float activations ({@link Q8Products}, {@link HalfProducts},
 * {@link Iq4Products}) or on activations quantised to 8 bits ({@link IntegerProducts} and the
 * K-quant classes). F32 matrices and rows read in place from the file take the kernels here:
 * decode (one token) streams each weight row once, four rows per pass; matrix-matrix products
 * (prefill, batches) reuse a dequantised panel for every token, 4 rows x 4 tokens at a time from
 * registers. Every product gives one token bit-identical results whether it is decoded alone or
 * processed in a batch (see the Matmul section).
 *
 * <p>To stay fully intrinsified by C2, vectors live inside one method's loops or in tiny helpers
 * that C2 always inlines (the tests check that the steady state allocates nothing). Scratch is
 * off-heap and 64-byte aligned: a vector load from a heap array usually straddles two cache lines.
 */
final class VectorKernels implements Kernels {
    static final VectorSpecies<Float> F = FloatVector.SPECIES_PREFERRED;
    static final int FL = F.length();
    static final VectorSpecies<Integer> I = VectorSpecies.of(int.class, F.vectorShape());
    /** FL shorts: F16/BF16 values widened to one int lane each. */
    static final VectorSpecies<Short> HALF_SHORTS = VectorSpecies.of(short.class, VectorShape.forBitSize(F.vectorBitSize() / 2));
    /** FL bytes: quantised values widened to one int or float lane each. */
    static final VectorSpecies<Byte> QUARTER_BYTES = VectorSpecies.of(byte.class, VectorShape.forBitSize(F.vectorBitSize() / 4));

    private static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** Scratch buffers are written and read by this process only. */
    private static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    private static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

    /** ggml blocks of 32 values: Q8_0 = f16 scale + 32 bytes, Q4_0 = f16 scale + 16 bytes. */
    private static final int BLOCK = 32;
    /**
     * F32 rows are interleaved too, in groups of 4, a vector's worth of values at a time, so
     * that their decode reads one stream too;
     * the kernels step through a group's units with these constant strides, for the reason above.
     */
    static final int UNIT = FL;
    private static final int F32_GROUP_UNIT_BYTES = 4 * 4 * UNIT;
    /** K-quant super-blocks: 256 values; Q4_K = 144 bytes, Q6_K = 210 bytes (layouts in DType). */
    private static final int K_BLOCK = 256;

    /** A dequantised weight panel holds about this many floats (512 KB: half of a 1 MB L2). */
    private static final int PANEL_FLOATS = 128 * 1024;
    /**
     * Columns per pass of the register tile: 4 panel rows and 4 token rows of this length take 16 KB
     * of L1. Only the order of memory traffic depends on it, not the arithmetic.
     */
    private static final int K_CHUNK = 1024;
    /**
     * Up to this many tokens, a product of Q8_0 rows read in place streams the weights through
     * the row kernel, up to 4 tokens per pass, each weight vector converted once per pass and met
     * by every token's chain: a pass costs about one decode step, where the tile kernel first
     * dequantises every row into a panel. Speculative verification and small batches are mostly
     * 2-8 tokens; at 16 the two were even on smollm2-135m Q8_0 and the passes 14% faster on
     * llama3.2-1b Q8_0 (measured when copied Q8_0 matrices took these kernels too).
     */
    private static final int ROW_KERNEL_TOKENS = 16;
    /** Register tile of the matrix-matrix kernel. */
    private static final int TILE_ROWS = 4;
    private static final int TILE_TOKENS = 4;

    /** Adding then subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to the nearest integer. */
    private static final float ROUNDING = 12582912f;

    /** Lane i takes lane i ^ 1: swaps the two elements of each rope pair. */
    private static final VectorShuffle<Float> SWAP_PAIRS = VectorShuffle.fromOp(F, i -> i ^ 1);
    /** Lanes 8-15 of a 16-lane vector (the Q4_K offsets after the 8 scales, see q4kScales). */
    private static final VectorMask<Float> UPPER_HALF = VectorMask.fromLong(F, 0xFF00L);

    /** The kernels, if this CPU's preferred vector size suits them (8 or 16 float lanes). */
    static Optional<Kernels> createIfSupported() {
        return FL == 8 || FL == 16 ? Optional.of(new VectorKernels()) : Optional.empty();
    }

    @Override
    public String description() {
        return "Vector API " + F.vectorBitSize() + "-bit";
    }

    /**
     * Quantised rows are read 4 at a time (see matrixVector); interleaving them block by block
     * makes those 4 rows one sequential stream, which the hardware prefetchers follow much better
     * than 4 short streams a row apart (Q8_0 decode over 576-value rows: 6.0 -> 10.6 GB/s on one
     * core; Q4_K over 2,048-value rows: 7.1 -> 12.3 GB/s on two, KernelBench). That holds for
     * F32 rows now, a vector at a time, padded to the kernels' row length; every other type's
     * matrices (the K-quants: of whole super-blocks) are stored in column-major groups instead
     * ({@link #columnMajor}), which stream faster still (F16 decode over 2,048-value rows, one
     * core: 14.5 GB/s in the file's layout, 23 interleaved, 31 column-major).
     */
    @Override
    public int rowGroup(DType type, long rows, long columns) {
        return switch (type) {
            case Q8_0 -> Q8Products.GROUP_ROWS;
            case Q4_0, Q4_1, Q5_1 -> IntegerProducts.GROUP_ROWS;
            // Copied Q5_0 matrices are kept as Q8_0 (storedType); K-quant rows are whole super-blocks
            // unless read flat (then converted to F32 at upload).
            case Q5_0 -> 1;
            case Q2_K, Q3_K, Q4_K, Q5_K, Q6_K -> IntegerProducts.handles(type, columns) ? IntegerProducts.GROUP_ROWS : 1;
            case IQ4_NL, IQ4_XS -> Iq4Products.GROUP_ROWS;
            case F16, BF16 -> HalfProducts.GROUP_ROWS;
            case F32 -> rows >= TILE_ROWS ? TILE_ROWS : 1;
        };
    }

    /** Float rows are interleaved {@link #UNIT} values (a vector) at a time. */
    @Override
    public int groupUnit(DType type) {
        return type.isQuantized() ? type.blockSize() : UNIT;
    }

    /** Interleaved float rows are padded with zeros to the length the row kernels read. */
    @Override
    public int copiedColumns(DType type, int columns) {
        return type.isQuantized() ? columns : padded(columns);
    }

    /**
     * Q4_0, Q4_1, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K matrices take the integer kernels ({@link IntegerProducts}): the 8-bit
     * activations they need cost a few times less than converting every weight to a float. All of
     * them (the K-quants: of whole super-blocks), however few their rows (padded to a group), so that
     * whether a product's input is quantised depends on the weight's type and shape alone. Q8_0
     * matrices take {@link Q8Products} (float activations, a lane per row), all of them as well.
     */
    @Override
    public boolean columnMajor(DType type, long rows, long columns) {
        return type == DType.Q8_0 || type == DType.F16 || type == DType.BF16 || Iq4Products.handles(type)
                || IntegerProducts.handles(type, columns);
    }

    /**
     * Q5_0 matrices are kept as Q8_0 (their values q - 16 are signed bytes, with the same scale
     * per block of 32: exact) and take {@link Q8Products}: 34 bytes per 32 weights instead of 22,
     * but streamed at Q8_0's speed, where the nibble row kernel converts every value to a float.
     * llama.cpp's Q4_K_M files of models whose rows are not whole super-blocks (smollm2-135m's 576,
     * qwen2.5-0.5b's 896) hold most of their weights as Q5_0: smollm2-135m Q4_K_M decode 1.27x.
     * (IQ4_NL could be kept so too, but at 1.9 times its bytes: llama3.2-1b decode only 1.08x.)
     */
    @Override
    public DType storedType(DType type) {
        return type == DType.Q5_0 ? DType.Q8_0 : type;
    }

    /** Row length of the padded copies: a whole number of vector pairs (the tile kernel's step). */
    static int padded(int columns) {
        return (columns + 2 * FL - 1) / (2 * FL) * (2 * FL);
    }

    // ---------------------------------------------------------------------------------------------
    // Matmul
    //
    // Batch invariance: a token's outputs must not depend on what else shares its batch (continuous
    // batching, preemption and speculative verification all rely on it), nor on whether the JIT has
    // compiled the loop yet. So every product, one token or many, is computed the same way:
    // weight rows dequantised to floats, then per (row, token) one FMA chain of vectors over the
    // whole row, in column order, whose lanes are summed once at the end in a fixed order
    // (addLaneSums). The tile kernel keeps its chains in memory between column chunks. The
    // column-major products (IntegerProducts, Q3KProducts, Q4KProducts, Q6KProducts, Q8Products) have their own
    // fixed arithmetic, the same for every token count.

    @Override
    public void prepareMatmul(MatmulInput input, CpuWeight[] weights, int count, MemorySegment x, int tokens) {
        int n = weights[0].columns();
        input.x = x;
        input.columns = n;
        input.paddedColumns = padded(n);
        boolean quantised = false;
        boolean floats = false;
        boolean floatColumns = false;
        for (int i = 0; i < count; i++) {
            boolean floatActivations = floatColumns(weights[i]);
            floatColumns |= floatActivations;
            quantised |= weights[i].columnMajor() && !floatActivations;
            floats |= !weights[i].columnMajor();
        }
        if (quantised) {
            IntegerProducts.quantise(input, x, tokens, n);
        }
        // Q8Products, HalfProducts and Iq4Products read the heap copy, one token too.
        boolean heapRows = floats && tokens > 1 || floatColumns;
        if (floats && tokens <= ROW_KERNEL_TOKENS) {
            // Few tokens: every thread reads the same zero-padded copies (whatever the type: a
            // grouped matmul prepares once for weights of several types).
            input.ensureCapacity(tokens * input.paddedColumns);
            for (int t = 0; t < tokens; t++) {
                copyRow(x, (long) t * n, n, input.floats, (long) t * input.paddedColumns, input.paddedColumns);
            }
        }
        if (heapRows) {
            // For the tile kernel (all products of more than 16 tokens, and of 2-16 for the types
            // without a row kernel for several tokens) and Q8Products: one zero-padded heap copy,
            // made once here rather than per panel by every thread (that copy cost as much as the
            // FMAs on long rows).
            input.ensureRows(Math.multiplyExact(tokens, input.paddedColumns));
            for (int t = 0; t < tokens; t++) {
                copyRow(x, (long) t * n, n, input.rowsView, (long) t * input.paddedColumns, input.paddedColumns);
            }
        }
    }

    /**
     * Whether {@code w} is a column-major copy whose products take the activations as floats
     * ({@link Q8Products}, {@link HalfProducts}, {@link Iq4Products}); the other column-major
     * copies take them quantised to 8 bits ({@link IntegerProducts}).
     */
    static boolean floatColumns(CpuWeight w) {
        return w.columnMajor() && switch (w.type()) {
            case Q8_0, F16, BF16, IQ4_NL, IQ4_XS -> true;
            default -> false;
        };
    }

    @Override
    public void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        if (w.columnMajor() && w.type() == DType.Q8_0) {
            Q8Products.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (w.columnMajor() && (w.type() == DType.F16 || w.type() == DType.BF16)) {
            HalfProducts.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (w.columnMajor() && Iq4Products.handles(w.type())) {
            Iq4Products.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (w.columnMajor()) {
            IntegerProducts.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (tokens == 1 && hasRowKernel(w)) {
            matrixVector(input, w, out, 0, 1, rowStart, rowEnd, scratch);
        } else if (tokens > 1 && tokens <= ROW_KERNEL_TOKENS && hasTokensRowKernel(w)) {
            // Passes of nearly equal size: 5 tokens as 3 + 2, not 4 + 1.
            int passes = (tokens + TILE_TOKENS - 1) / TILE_TOKENS;
            for (int p = 0, t0 = 0; p < passes; p++) {
                int count = (tokens - t0) / (passes - p);
                matrixVector(input, w, out, t0, count, rowStart, rowEnd, scratch);
                t0 += count;
            }
        } else {
            matrixMatrix(input, w, out, tokens, rowStart, rowEnd, scratch);
        }
    }

    /**
     * Whether one token's product has its own kernel below: the quantised types' rows in the
     * file's layout have; F32's one-token kernel reads rows interleaved in groups of 4, so F32
     * rows kept as in the file ({@code peregrine.cpu.copyWeights=false}, or fewer than 4 rows)
     * take the tile kernel, whose values are the same; so do Q8_0, F16 and BF16 rows kept as in
     * the file (copied, such matrices are column-major and take {@link Q8Products} or
     * {@link HalfProducts}).
     */
    private static boolean hasRowKernel(CpuWeight w) {
        return switch (w.type()) {
            case Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K, Q2_K, Q3_K, IQ4_NL, IQ4_XS -> true;
            case F32 -> w.rowGroup() == TILE_ROWS;
            case Q8_0, F16, BF16 -> false;
        };
    }

    /** Whether products of 2 to 16 tokens have row kernels below, 4 tokens a pass (else they take the tile kernel). */
    private static boolean hasTokensRowKernel(CpuWeight w) {
        return w.type() == DType.Q8_0;
    }

    /**
     * Tokens {@code t0 .. t0 + count - 1} (at most 4; several only for Q8_0 rows in the file's
     * layout) of the prepared input: four weight rows at
     * a time, each converted to floats in registers and met by one FMA chain per token; the
     * arithmetic is the tile kernel's, value for value. Each weight byte is read from memory once
     * per call: four streams at a time, or one for rows interleaved in groups (then a range that
     * starts or ends inside a group computes the whole group and stores only its own rows).
     */
    private static void matrixVector(MatmulInput input, CpuWeight w, MemorySegment out, int t0, int count, int rowStart,
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
        boolean grouped = w.rowGroup() > 1;
        long stride = w.blockStride();
        // 4 rows a pass, each read at its own offset (a pass over Q8_0's groups of 6 may end in
        // the next group).
        for (int j0 = grouped ? rowStart / w.rowGroup() * w.rowGroup() : rowStart; j0 < rowEnd; j0 += TILE_ROWS) {
            // Rows past the end repeat the last one; their sums are not stored. (The F32 and
            // F16/BF16 kernels read their whole group of 4 from o0.)
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
                    case F32 -> rowsF32(data, o0, x, kp, sums, lanes);
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
                    out.set(FLOAT, 4L * ((long) (t0 + t) * outWidth + r), sums[(r - j0) * perRow + t]);
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
     * F32 rows, a group of 4 interleaved in units (see {@link #UNIT}) from byte {@code group}. One
     * group a call: the grouped loop below made this short loop body 35% slower (KernelBench F32,
     * 2,048 x 8,192, one thread).
     */
    private static void rowsF32(MemorySegment w, long group, MemorySegment x, int to, float[] sums, float[] lanes) {
        FloatVector c0 = FloatVector.zero(F), c1 = c0, c2 = c0, c3 = c0;
        int units = to / UNIT;
        for (int u = 1; u <= units; u++) { // from 1: see HalfProducts.oneGroup
            long o0 = group + (u - 1) * (long) F32_GROUP_UNIT_BYTES, o1 = o0 + 4L * UNIT, o2 = o1 + 4L * UNIT, o3 = o2 + 4L * UNIT;
            FloatVector v = FloatVector.fromMemorySegment(F, x, (u - 1) * (4L * UNIT), NATIVE);
            c0 = FloatVector.fromMemorySegment(F, w, o0, LE).fma(v, c0);
            c1 = FloatVector.fromMemorySegment(F, w, o1, LE).fma(v, c1);
            c2 = FloatVector.fromMemorySegment(F, w, o2, LE).fma(v, c2);
            c3 = FloatVector.fromMemorySegment(F, w, o3, LE).fma(v, c3);
        }
        c0.intoArray(lanes, 0);
        c1.intoArray(lanes, FL);
        c2.intoArray(lanes, 2 * FL);
        c3.intoArray(lanes, 3 * FL);
        addLaneSums(lanes, sums, 0, 4);
    }

    /**
     * Four Q8_0 rows kept as in the file (from o0..o3, blocks {@code stride} apart) against 4
     * tokens at once (token rows at byte offsets x0..x3 of {@code x}): value = (float) q * d, as
     * {@link #decodeQ8} makes it (exact: 8 by 11 significant bits); each weight vector is converted
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
     * the word qh for Q5_0 and Q5_1. Every value is fma(q, d, m), as {@link #decodeNibbleBlocks}
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
        boolean withMin = layout.withMin;
        boolean fiveBits = layout.fiveBits;
        long qs = layout.quants;
        float bias = layout.bias;
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
     * Where a 32-value nibble type keeps its parts: a stored minimum after d (else m = bias * d),
     * a word of fifth bits just before the nibbles, and the nibbles' byte offset in the block.
     */
    private record NibbleLayout(boolean withMin, boolean fiveBits, long quants, float bias) {
        private static final NibbleLayout Q4_0 = new NibbleLayout(false, false, 2, -8);
        private static final NibbleLayout Q4_1 = new NibbleLayout(true, false, 4, 0);
        private static final NibbleLayout Q5_0 = new NibbleLayout(false, true, 6, -16);
        private static final NibbleLayout Q5_1 = new NibbleLayout(true, true, 8, 0);

        static NibbleLayout of(DType type) {
            return switch (type) {
                case Q4_0 -> Q4_0;
                case Q4_1 -> Q4_1;
                case Q5_0 -> Q5_0;
                case Q5_1 -> Q5_1;
                default -> throw new IllegalArgumentException(type + " is not a 32-value nibble type");
            };
        }
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
     * Q4_K or Q5_K values of sub-block {@code j} of the super-block at {@code at}, FL of them from
     * position {@code l}, as floats into {@code into[to ..]}. Stored, not returned: a helper
     * returning a vector boxes it wherever C2 does not inline the helper (with 256-bit vectors a
     * Q4_K_M decode step allocated 512 KB).
     */
    private static void q45kValues(boolean fiveBits, MemorySegment w, long at, int j, int l, float[] into, int to) {
        IntVector q = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + (fiveBits ? 48 : 16) + 32L * (j / 2) + l, LE)
                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * (j % 2)).and(0x0F);
        if (fiveBits) {
            q = q.or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 16 + l, LE)
                    .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHL, 4)
                    .lanewise(VectorOperators.LSHR, j).and(16));
        }
        ((FloatVector) q.convert(VectorOperators.I2F, 0)).intoArray(into, to);
    }

    /**
     * Q6_K values q - 32 of the super-block at {@code at}, FL of them from value {@code i}, as
     * floats into {@code into[to ..]} (stored, as q45kValues explains): q's low 4 bits from ql, high
     * 2 bits from qh (the rowsQ6K comment has the layout).
     */
    private static void q6kValues(MemorySegment w, long at, int i, float[] into, int to) {
        int h = i / 128;
        int k = i % 128 / 32;
        int l = i % 32;
        ((FloatVector) ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 64L * h + l + 32 * (k % 2), LE)
                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, k < 2 ? 0 : 4).and(0x0F)
                .or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 128 + 32L * h + l, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 2 * k)
                        .and(3).lanewise(VectorOperators.LSHL, 4))
                .sub(32).convert(VectorOperators.I2F, 0)).intoArray(into, to);
    }

    /** The 8 scales (d * sc[j]) then the 8 offsets (dmin * m[j]) of the Q4_K super-block at {@code at}, from {@code into[base]}. */
    private static void q4kScales(MemorySegment w, long at, float[] into, int base) {
        float d = Float.float16ToFloat(w.get(LE_SHORT, at));
        float dmin = Float.float16ToFloat(w.get(LE_SHORT, at + 2));
        // The 12 packed bytes in two loads, unpacked 8 at a time (Dequant.q4kScale / q4kMin byte by byte):
        // sc and m 0-3 are bytes 0-3 and 4-7 less their top 2 bits; sc and m 4-7 take bytes 8-11's low and
        // high nibbles, with those top bits of bytes 0-3 and 4-7 above.
        long first8 = w.get(LE_LONG, at + 4);
        long last4 = w.get(LE_INT, at + 12) & 0xFFFFFFFFL;
        long low = first8 & 0x3F3F3F3F3F3F3F3FL;
        long tops = first8 >>> 6 & 0x0303030303030303L;
        long scales = (low & 0xFFFFFFFFL) | ((last4 & 0x0F0F0F0FL) | (tops & 0x03030303L) << 4) << 32;
        long mins = (low >>> 32) | ((last4 >>> 4 & 0x0F0F0F0FL) | (tops >>> 32) << 4) << 32;
        ByteVector bytes = LongVector.zero(LongVector.SPECIES_128).withLane(0, scales).withLane(1, mins).reinterpretAsBytes();
        if (FL == 16) {
            ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).convert(VectorOperators.I2F, 0))
                    .mul(FloatVector.broadcast(F, d).blend(dmin, UPPER_HALF)).intoArray(into, base);
        } else {
            ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).convert(VectorOperators.I2F, 0))
                    .mul(d).intoArray(into, base);
            ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 1)).convert(VectorOperators.I2F, 0))
                    .mul(dmin).intoArray(into, base + FL);
        }
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

    /** The 16 products d * sc[s] of the Q6_K super-block at {@code at}, from {@code into[base]}. */
    private static void q6kScales(MemorySegment w, long at, float[] into, int base) {
        float d = Float.float16ToFloat(w.get(LE_SHORT, at + 208));
        if (FL == 16) {
            // The 16 signed bytes as one vector: the same products as below.
            ((FloatVector) ByteVector.fromMemorySegment(QUARTER_BYTES, w, at + 192, LE).convertShape(VectorOperators.B2F, F, 0))
                    .mul(d).intoArray(into, base);
            return;
        }
        for (int s = 0; s < 16; s++) {
            into[base + s] = d * w.get(ValueLayout.JAVA_BYTE, at + 192 + s);
        }
    }

    /**
     * Adds to {@code sums[at + r]} the sum of lanes {@code r * FL ..} of {@code lanes}, for r below
     * {@code count}, in one fixed order: a tree that adds lane i to lane i + FL/2, then i to
     * i + FL/4, and so on (overwriting {@code lanes}, which is scratch, and reading lanes only
     * up to {@code count * FL}). Not reduceLanes: its order
     * is unspecified, and the JIT's intrinsic and the interpreter's fallback differ, which would
     * make results depend on how warm the JVM is. (A helper that took the vector would box it: see
     * {@link HalfProducts#oneGroup}.)
     *
     * <p>The tree runs on vectors: each stage halves the vectors, every new one made of the halved
     * segments of two (exact lane selections, then one add), so up to FL sums come out in order
     * in one vector: 2 selections and an add per vector instead of FL scalar adds per sum. A sum's
     * bits do not depend on which others share its vector (an odd vector out pairs with itself).
     */
    static void addLaneSums(float[] lanes, float[] sums, int at, int count) {
        for (int r = 0; r < count; r += FL) {
            int base = r * FL;
            int inGroup = Math.min(FL, count - r);
            if (FL == 16 && inGroup == 16) {
                addLaneSums16(lanes, base, sums, at + r);
                continue;
            }
            if (inGroup == 4) {
                addLaneSums4(lanes, base, sums, at + r);
                continue;
            }
            int vectors = inGroup;
            for (int stage = 0; FL >> stage > 1; stage++) {
                FloatVector low = FloatVector.fromArray(F, TREE_LOW, stage * FL);
                FloatVector high = FloatVector.fromArray(F, TREE_HIGH, stage * FL);
                int pairs = (vectors + 1) / 2;
                for (int v = 0; v < pairs; v++) {
                    FloatVector a = FloatVector.fromArray(F, lanes, base + 2 * v * FL);
                    FloatVector b = 2 * v + 1 < vectors ? FloatVector.fromArray(F, lanes, base + (2 * v + 1) * FL) : a;
                    low.selectFrom(a, b).add(high.selectFrom(a, b)).intoArray(lanes, base + v * FL);
                }
                vectors = pairs;
            }
            if (inGroup == FL) {
                FloatVector.fromArray(F, sums, at + r).add(FloatVector.fromArray(F, lanes, base)).intoArray(sums, at + r);
            } else {
                for (int i = 0; i < inGroup; i++) {
                    sums[at + r + i] += lanes[base + i];
                }
            }
        }
    }

    /**
     * addLaneSums for one whole group of 16 sums of 16 lanes, the tree kept in registers: the
     * stages through memory are a chain of store-load-permute-add latencies that the tile kernel's
     * and attention's sums wait on. Written out: its first stage was a helper taking and returning
     * vectors, the pattern whose vectors C2 boxes when it does not inline the helper.
     */
    private static void addLaneSums16(float[] lanes, int base, float[] sums, int at) {
        FloatVector low = FloatVector.fromArray(F, TREE_LOW, 0);
        FloatVector high = FloatVector.fromArray(F, TREE_HIGH, 0);
        FloatVector l0 = FloatVector.fromArray(F, lanes, base);
        FloatVector h0 = FloatVector.fromArray(F, lanes, base + FL);
        FloatVector a0 = low.selectFrom(l0, h0).add(high.selectFrom(l0, h0));
        FloatVector l1 = FloatVector.fromArray(F, lanes, base + 2 * FL);
        FloatVector h1 = FloatVector.fromArray(F, lanes, base + 3 * FL);
        FloatVector a1 = low.selectFrom(l1, h1).add(high.selectFrom(l1, h1));
        FloatVector l2 = FloatVector.fromArray(F, lanes, base + 4 * FL);
        FloatVector h2 = FloatVector.fromArray(F, lanes, base + 5 * FL);
        FloatVector a2 = low.selectFrom(l2, h2).add(high.selectFrom(l2, h2));
        FloatVector l3 = FloatVector.fromArray(F, lanes, base + 6 * FL);
        FloatVector h3 = FloatVector.fromArray(F, lanes, base + 7 * FL);
        FloatVector a3 = low.selectFrom(l3, h3).add(high.selectFrom(l3, h3));
        FloatVector l4 = FloatVector.fromArray(F, lanes, base + 8 * FL);
        FloatVector h4 = FloatVector.fromArray(F, lanes, base + 9 * FL);
        FloatVector a4 = low.selectFrom(l4, h4).add(high.selectFrom(l4, h4));
        FloatVector l5 = FloatVector.fromArray(F, lanes, base + 10 * FL);
        FloatVector h5 = FloatVector.fromArray(F, lanes, base + 11 * FL);
        FloatVector a5 = low.selectFrom(l5, h5).add(high.selectFrom(l5, h5));
        FloatVector l6 = FloatVector.fromArray(F, lanes, base + 12 * FL);
        FloatVector h6 = FloatVector.fromArray(F, lanes, base + 13 * FL);
        FloatVector a6 = low.selectFrom(l6, h6).add(high.selectFrom(l6, h6));
        FloatVector l7 = FloatVector.fromArray(F, lanes, base + 14 * FL);
        FloatVector h7 = FloatVector.fromArray(F, lanes, base + 15 * FL);
        FloatVector a7 = low.selectFrom(l7, h7).add(high.selectFrom(l7, h7));
        low = FloatVector.fromArray(F, TREE_LOW, FL);
        high = FloatVector.fromArray(F, TREE_HIGH, FL);
        FloatVector b0 = low.selectFrom(a0, a1).add(high.selectFrom(a0, a1));
        FloatVector b1 = low.selectFrom(a2, a3).add(high.selectFrom(a2, a3));
        FloatVector b2 = low.selectFrom(a4, a5).add(high.selectFrom(a4, a5));
        FloatVector b3 = low.selectFrom(a6, a7).add(high.selectFrom(a6, a7));
        low = FloatVector.fromArray(F, TREE_LOW, 2 * FL);
        high = FloatVector.fromArray(F, TREE_HIGH, 2 * FL);
        FloatVector c0 = low.selectFrom(b0, b1).add(high.selectFrom(b0, b1));
        FloatVector c1 = low.selectFrom(b2, b3).add(high.selectFrom(b2, b3));
        low = FloatVector.fromArray(F, TREE_LOW, 3 * FL);
        high = FloatVector.fromArray(F, TREE_HIGH, 3 * FL);
        FloatVector d = low.selectFrom(c0, c1).add(high.selectFrom(c0, c1));
        FloatVector.fromArray(F, sums, at).add(d).intoArray(sums, at);
    }

    /**
     * addLaneSums for a group of 4 sums (the row kernels' 4 rows of one token), the tree kept in
     * registers: through memory, its 3-4 stages were a chain of store-load-permute-add latencies
     * that every group of 4 rows waited on, a large share of a decode step on short rows. The
     * same stages as addLaneSums's loop, in which a lone vector pairs with itself.
     */
    private static void addLaneSums4(float[] lanes, int base, float[] sums, int at) {
        FloatVector low = FloatVector.fromArray(F, TREE_LOW, 0);
        FloatVector high = FloatVector.fromArray(F, TREE_HIGH, 0);
        FloatVector l0 = FloatVector.fromArray(F, lanes, base);
        FloatVector h0 = FloatVector.fromArray(F, lanes, base + FL);
        FloatVector a0 = low.selectFrom(l0, h0).add(high.selectFrom(l0, h0));
        FloatVector l1 = FloatVector.fromArray(F, lanes, base + 2 * FL);
        FloatVector h1 = FloatVector.fromArray(F, lanes, base + 3 * FL);
        FloatVector a1 = low.selectFrom(l1, h1).add(high.selectFrom(l1, h1));
        low = FloatVector.fromArray(F, TREE_LOW, FL);
        high = FloatVector.fromArray(F, TREE_HIGH, FL);
        FloatVector b = low.selectFrom(a0, a1).add(high.selectFrom(a0, a1));
        // The remaining stages (one at 8 lanes, two at 16): FL is a constant, so these fold.
        low = FloatVector.fromArray(F, TREE_LOW, 2 * FL);
        high = FloatVector.fromArray(F, TREE_HIGH, 2 * FL);
        FloatVector c = low.selectFrom(b, b).add(high.selectFrom(b, b));
        if (FL == 16) {
            low = FloatVector.fromArray(F, TREE_LOW, 3 * FL);
            high = FloatVector.fromArray(F, TREE_HIGH, 3 * FL);
            c = low.selectFrom(c, c).add(high.selectFrom(c, c));
        }
        c.intoArray(lanes, base);
        for (int i = 0; i < 4; i++) {
            sums[at + i] += lanes[base + i];
        }
    }

    /**
     * Lane selections of addLaneSums's stages, FL per stage, as indices into the two vectors a
     * and b (b's lanes from FL on). Stage s takes segments of w = FL >> s lanes, one per sum (a
     * holds FL / w sums, b the next as many), to segments of w / 2: new lane L is sum q = L / (w/2),
     * element p = L % (w/2), and adds the old element p of that sum (TREE_LOW) to element
     * p + w/2 (TREE_HIGH).
     */
    private static final float[] TREE_LOW = treeSelections(0);
    private static final float[] TREE_HIGH = treeSelections(1);

    private static float[] treeSelections(int upperHalf) {
        int stages = Integer.numberOfTrailingZeros(FL);
        float[] indices = new float[stages * FL];
        for (int stage = 0; stage < stages; stage++) {
            int width = FL >> stage;
            int half = width / 2;
            int sumsPerVector = FL / width;
            for (int lane = 0; lane < FL; lane++) {
                int q = lane / half;
                int p = lane % half;
                int fromB = q / sumsPerVector;
                indices[stage * FL + lane] = fromB * FL + (q % sumsPerVector) * width + p + upperHalf * half;
            }
        }
        return indices;
    }

    /**
     * Dequantises panels of weight rows once and multiplies each with all tokens, a register tile
     * of 4 rows x 4 tokens at a time, in column chunks small enough that the panel rows and token
     * rows of a tile stay in L1. Rows and tokens past the end are padded and not stored.
     */
    private static void matrixMatrix(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart,
                                     int rowEnd, ThreadScratch scratch) {
        int n = w.columns();
        int kp = input.paddedColumns;
        int outWidth = w.rows();
        int panelRows = Math.clamp(PANEL_FLOATS / kp / TILE_ROWS * TILE_ROWS, TILE_ROWS, 128);
        scratch.ensurePanel(panelRows * kp);
        // Heap arrays with int indices: C2 hoists their bounds checks out of the tile loop, which
        // it does not do for the same loads from memory segments at long offsets.
        float[] panel = scratch.panelFloats;
        // One token (Q8_0 rows read in place from the file): each thread copies the prepared row,
        // since a grouped product prepares the heap copy only for several tokens.
        float[] xs = input.rows;
        if (tokens == 1) {
            xs = scratch.token(kp);
            MemorySegment.copy(input.floats, FLOAT, 0, xs, 0, kp);
        }
        float[] sums = scratch.tileSums(panelRows * TILE_TOKENS);
        // The FMA chain of each (panel row, tile token), carried from one column chunk to the next.
        float[] chains = scratch.lanes(panelRows * TILE_TOKENS * FL);
        for (int chunk = rowStart; chunk < rowEnd; chunk += panelRows) {
            int count = Math.min(panelRows, rowEnd - chunk);
            int paddedCount = (count + TILE_ROWS - 1) / TILE_ROWS * TILE_ROWS;
            boolean f32Groups = w.type() == DType.F32 && w.rowGroup() == TILE_ROWS;
            for (int i = 0; i < paddedCount; i++) {
                if (f32Groups) {
                    // Interleaved F32 rows: a group's 4 rows in one pass over its bytes (row by
                    // row, each pass would read every line of the group for a quarter of it).
                    if (i % TILE_ROWS == 0) {
                        decodeF32Group(w, w.rowOffset(chunk + i), kp, panel, i * kp);
                    }
                } else if (i < count) {
                    decodeRange(w, w.rowOffset(chunk + i), n, scratch.panelView,
                            4L * i * kp, kp, scratch);
                } else {
                    java.util.Arrays.fill(panel, i * kp, (i + 1) * kp, 0f);
                }
            }
            for (int t0 = 0; t0 < tokens; t0 += TILE_TOKENS) {
                int tileTokens = Math.min(TILE_TOKENS, tokens - t0);
                // A short last tile repeats its last token; those results are not stored.
                int x0 = t0 * kp;
                int x1 = (t0 + Math.min(1, tileTokens - 1)) * kp;
                int x2 = (t0 + Math.min(2, tileTokens - 1)) * kp;
                int x3 = (t0 + Math.min(3, tileTokens - 1)) * kp;
                java.util.Arrays.fill(chains, 0, paddedCount * TILE_TOKENS * FL, 0f);
                for (int k = 0; k < kp; k += K_CHUNK) {
                    int length = Math.min(K_CHUNK, kp - k);
                    for (int r0 = 0; r0 < paddedCount; r0 += TILE_ROWS) {
                        tile4x4(panel, r0 * kp + k, xs, x0 + k, x1 + k, x2 + k, x3 + k, kp, length, chains,
                                r0 * TILE_TOKENS * FL);
                    }
                }
                java.util.Arrays.fill(sums, 0, paddedCount * TILE_TOKENS, 0f);
                addLaneSums(chains, sums, 0, paddedCount * TILE_TOKENS);
                for (int r = 0; r < count; r++) {
                    for (int t = 0; t < tileTokens; t++) {
                        out.set(FLOAT, ((long) (t0 + t) * outWidth + chunk + r) * Float.BYTES, sums[r * TILE_TOKENS + t]);
                    }
                }
            }
        }
    }

    /**
     * Continues, over {@code length} columns (a whole number of vectors), the FMA chains of 4 panel
     * rows (row r from index {@code a + r * stride} of {@code panel}) with 4 token rows (token t
     * from index {@code xt} of {@code xs}): chain (r, t) is the vector at
     * {@code chains[at + (r * 4 + t) * FL]}.
     */
    private static void tile4x4(float[] panel, int a, float[] xs, int x0, int x1, int x2, int x3, int stride,
                                int length, float[] chains, int at) {
        FloatVector c00 = FloatVector.fromArray(F, chains, at);
        FloatVector c01 = FloatVector.fromArray(F, chains, at + FL);
        FloatVector c02 = FloatVector.fromArray(F, chains, at + 2 * FL);
        FloatVector c03 = FloatVector.fromArray(F, chains, at + 3 * FL);
        FloatVector c10 = FloatVector.fromArray(F, chains, at + 4 * FL);
        FloatVector c11 = FloatVector.fromArray(F, chains, at + 5 * FL);
        FloatVector c12 = FloatVector.fromArray(F, chains, at + 6 * FL);
        FloatVector c13 = FloatVector.fromArray(F, chains, at + 7 * FL);
        FloatVector c20 = FloatVector.fromArray(F, chains, at + 8 * FL);
        FloatVector c21 = FloatVector.fromArray(F, chains, at + 9 * FL);
        FloatVector c22 = FloatVector.fromArray(F, chains, at + 10 * FL);
        FloatVector c23 = FloatVector.fromArray(F, chains, at + 11 * FL);
        FloatVector c30 = FloatVector.fromArray(F, chains, at + 12 * FL);
        FloatVector c31 = FloatVector.fromArray(F, chains, at + 13 * FL);
        FloatVector c32 = FloatVector.fromArray(F, chains, at + 14 * FL);
        FloatVector c33 = FloatVector.fromArray(F, chains, at + 15 * FL);
        int w1 = a + stride;
        int w2 = a + 2 * stride;
        int w3 = a + 3 * stride;
        for (int j = 0; j < length; j += FL) {
            FloatVector r0 = FloatVector.fromArray(F, panel, a + j);
            FloatVector r1 = FloatVector.fromArray(F, panel, w1 + j);
            FloatVector r2 = FloatVector.fromArray(F, panel, w2 + j);
            FloatVector r3 = FloatVector.fromArray(F, panel, w3 + j);
            FloatVector v0 = FloatVector.fromArray(F, xs, x0 + j);
            c00 = r0.fma(v0, c00);
            c10 = r1.fma(v0, c10);
            c20 = r2.fma(v0, c20);
            c30 = r3.fma(v0, c30);
            FloatVector v1 = FloatVector.fromArray(F, xs, x1 + j);
            c01 = r0.fma(v1, c01);
            c11 = r1.fma(v1, c11);
            c21 = r2.fma(v1, c21);
            c31 = r3.fma(v1, c31);
            FloatVector v2 = FloatVector.fromArray(F, xs, x2 + j);
            c02 = r0.fma(v2, c02);
            c12 = r1.fma(v2, c12);
            c22 = r2.fma(v2, c22);
            c32 = r3.fma(v2, c32);
            FloatVector v3 = FloatVector.fromArray(F, xs, x3 + j);
            c03 = r0.fma(v3, c03);
            c13 = r1.fma(v3, c13);
            c23 = r2.fma(v3, c23);
            c33 = r3.fma(v3, c33);
        }
        c00.intoArray(chains, at);
        c01.intoArray(chains, at + FL);
        c02.intoArray(chains, at + 2 * FL);
        c03.intoArray(chains, at + 3 * FL);
        c10.intoArray(chains, at + 4 * FL);
        c11.intoArray(chains, at + 5 * FL);
        c12.intoArray(chains, at + 6 * FL);
        c13.intoArray(chains, at + 7 * FL);
        c20.intoArray(chains, at + 8 * FL);
        c21.intoArray(chains, at + 9 * FL);
        c22.intoArray(chains, at + 10 * FL);
        c23.intoArray(chains, at + 11 * FL);
        c30.intoArray(chains, at + 12 * FL);
        c31.intoArray(chains, at + 13 * FL);
        c32.intoArray(chains, at + 14 * FL);
        c33.intoArray(chains, at + 15 * FL);
    }

    // ---------------------------------------------------------------------------------------------
    // Dequantisation

    /**
     * Dequantises the first {@code count} values of the row of {@code w} at byte {@code rowOffset},
     * its units (blocks, or runs of {@link #UNIT} float values) {@code w.blockStride()} bytes apart,
     * into floats at byte {@code dstOffset} of {@code dst}, zero-filled up to {@code paddedCount}
     * values.
     */
    static void decodeRange(CpuWeight w, long rowOffset, int count, MemorySegment dst, long dstOffset, int paddedCount,
                            ThreadScratch scratch) {
        DType type = w.type();
        MemorySegment data = w.data();
        long blockStride = w.blockStride();
        switch (type) {
            case F32 -> decodeF32(data, rowOffset, blockStride, count, dst, dstOffset);
            case F16 -> decodeF16(data, rowOffset, blockStride, count, dst, dstOffset);
            case BF16 -> decodeBf16(data, rowOffset, blockStride, count, dst, dstOffset);
            case Q8_0 -> decodeQ8(data, rowOffset, blockStride, count / BLOCK, dst, dstOffset);
            case Q4_0, Q4_1, Q5_0, Q5_1 -> decodeNibbleBlocks(type, data, rowOffset, blockStride, count / BLOCK, dst, dstOffset);
            case IQ4_NL -> decodeIq4(false, data, rowOffset, blockStride, count / BLOCK, dst, dstOffset);
            case Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, IQ4_XS -> {
                if (rowOffset % type.blockBytes() == 0 && count % K_BLOCK == 0) {
                    long at = rowOffset;
                    // Up to 32 scales (and offsets), then FL values (see q45kValues).
                    float[] scales = scratch.blockScales(32 + FL);
                    int blocks = count / K_BLOCK;
                    switch (type) {
                        case Q4_K, Q5_K -> decodeQ45K(type == DType.Q5_K, data, at, blockStride, blocks, dst, dstOffset, scales);
                        case Q6_K -> decodeQ6K(data, at, blockStride, blocks, dst, dstOffset, scales);
                        case Q2_K, Q3_K -> decodeQ23K(type == DType.Q3_K, data, at, blockStride, blocks, dst, dstOffset, scales);
                        default -> decodeIq4(true, data, at, blockStride, blocks, dst, dstOffset);
                    }
                } else {
                    // Rows that do not start on a super-block (read flat): the reference, through
                    // a float row of the thread's.
                    float[] row = scratch.row(count);
                    long firstValue = rowOffset / type.blockBytes() * type.blockSize();
                    Dequant.toFloat(type, data, firstValue, row, 0, count);
                    MemorySegment.copy(row, 0, dst, FLOAT, dstOffset, count);
                }
            }
            default -> {
                // The reference dequantisation, through a float row of the thread's.
                float[] row = scratch.row(count);
                long firstValue = rowOffset / type.blockBytes() * type.blockSize();
                Dequant.toFloat(type, data, firstValue, row, 0, count);
                MemorySegment.copy(row, 0, dst, FLOAT, dstOffset, count);
            }
        }
        zero(dst, dstOffset + 4L * count, paddedCount - count);
    }

    /**
     * The 4 rows of an interleaved F32 group from byte {@code group}, {@code kp} values each (their
     * copies' padded length: zeros past the row), into 4 rows of floats {@code kp} apart from index
     * {@code at} of {@code panel}.
     */
    private static void decodeF32Group(CpuWeight w, long group, int kp, float[] panel, int at) {
        // The 4 rows written out, into the heap array: with a row loop inside and stores through a
        // memory segment view, the decoder took 12% of an (interleaved) F16 prefill (llama3.2-1b,
        // 128-token chunks).
        MemorySegment data = w.data();
        int a0 = at, a1 = at + kp, a2 = at + 2 * kp, a3 = at + 3 * kp;
        int units = kp / UNIT;
        for (int u = 1; u <= units; u++) { // from 1: see HalfProducts.oneGroup
            long o0 = group + (u - 1) * (long) F32_GROUP_UNIT_BYTES, o1 = o0 + 4L * UNIT, o2 = o1 + 4L * UNIT, o3 = o2 + 4L * UNIT;
            int c = (u - 1) * UNIT;
            FloatVector.fromMemorySegment(F, data, o0, LE).intoArray(panel, a0 + c);
            FloatVector.fromMemorySegment(F, data, o1, LE).intoArray(panel, a1 + c);
            FloatVector.fromMemorySegment(F, data, o2, LE).intoArray(panel, a2 + c);
            FloatVector.fromMemorySegment(F, data, o3, LE).intoArray(panel, a3 + c);
        }
    }

    /*
     * Float rows: {@code n} values from byte {@code offset}, in units of UNIT values
     * {@code unitStride} bytes apart (a unit's bytes for a row kept as in the file, so that the
     * row is one run; more for rows interleaved in groups, see CpuWeight).
     */

    static void decodeF32(MemorySegment data, long offset, long unitStride, int n, MemorySegment dst, long dstOffset) {
        int i = 0;
        int vectorEnd = n / FL * FL;
        for (; i < vectorEnd; i += FL) {
            FloatVector.fromMemorySegment(F, data, offset + (long) (i / UNIT) * unitStride + 4L * (i % UNIT), LE)
                    .intoMemorySegment(dst, dstOffset + 4L * i, NATIVE);
        }
        for (; i < n; i++) {
            dst.set(FLOAT, dstOffset + 4L * i, data.get(LE_FLOAT, offset + (long) (i / UNIT) * unitStride + 4L * (i % UNIT)));
        }
    }

    /**
     * IEEE half to float in int lanes: shifting the half's exponent and mantissa into place and
     * multiplying by 2^112 (the difference of the exponent biases) is exact for normal and subnormal
     * halves alike; infinities and NaNs (exponent 31) get the float's all-ones exponent instead.
     */
    static void decodeF16(MemorySegment data, long offset, long unitStride, int n, MemorySegment dst, long dstOffset) {
        int i = 0;
        int vectorEnd = n / FL * FL;
        for (; i < vectorEnd; i += FL) {
            IntVector h = (IntVector) ShortVector.fromMemorySegment(HALF_SHORTS, data,
                    offset + (long) (i / UNIT) * unitStride + 2L * (i % UNIT), LE).convertShape(VectorOperators.S2I, I, 0);
            IntVector bits = h.lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF);
            FloatVector f = bits.reinterpretAsFloats().mul(0x1p112f);
            FloatVector magnitude = f.abs();
            // Exponent 31 scales to exactly 2^16 for an infinity and above it for a NaN, which is
            // made quiet as Float.float16ToFloat (and the hardware's conversion) makes it.
            IntVector special = bits.or(0x7F800000).lanewise(VectorOperators.OR, 0x00400000,
                    magnitude.compare(VectorOperators.GT, 65536f).cast(I));
            f.blend(special.reinterpretAsFloats(), magnitude.compare(VectorOperators.GE, 65536f))
                    .intoMemorySegment(dst, dstOffset + 4L * i, NATIVE);
        }
        for (; i < n; i++) {
            dst.set(FLOAT, dstOffset + 4L * i,
                    Float.float16ToFloat(data.get(LE_SHORT, offset + (long) (i / UNIT) * unitStride + 2L * (i % UNIT))));
        }
    }

    static void decodeBf16(MemorySegment data, long offset, long unitStride, int n, MemorySegment dst, long dstOffset) {
        int i = 0;
        int vectorEnd = n / FL * FL;
        for (; i < vectorEnd; i += FL) {
            ((IntVector) ShortVector.fromMemorySegment(HALF_SHORTS, data, offset + (long) (i / UNIT) * unitStride + 2L * (i % UNIT), LE)
                    .convertShape(VectorOperators.S2I, I, 0))
                    .lanewise(VectorOperators.LSHL, 16).reinterpretAsFloats()
                    .intoMemorySegment(dst, dstOffset + 4L * i, NATIVE);
        }
        for (; i < n; i++) {
            short bits = data.get(LE_SHORT, offset + (long) (i / UNIT) * unitStride + 2L * (i % UNIT));
            dst.set(FLOAT, dstOffset + 4L * i, Float.intBitsToFloat((bits & 0xFFFF) << 16));
        }
    }

    static void decodeQ8(MemorySegment data, long offset, long stride, int blocks, MemorySegment dst, long dstOffset) {
        for (int b = 0; b < blocks; b++) {
            long o = offset + b * stride;
            float d = Float.float16ToFloat(data.get(LE_SHORT, o));
            for (int c = 0; c < BLOCK; c += FL) {
                ((FloatVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, o + 2 + c, LE)
                        .convertShape(VectorOperators.B2F, F, 0))
                        .mul(d).intoMemorySegment(dst, dstOffset + 4L * (b * BLOCK + c), NATIVE);
            }
        }
    }

    /**
     * Q4_K or Q5_K super-blocks to floats, the values of {@link Dequant} and of rowsQ45K: scale * q -
     * offset. {@code scales} holds at least 16 + FL floats: a super-block's scales and offsets, then
     * the values being converted.
     */
    static void decodeQ45K(boolean fiveBits, MemorySegment data, long offset, long stride, int blocks, MemorySegment dst,
                           long dstOffset, float[] scales) {
        for (int blk = 0; blk < blocks; blk++) {
            long at = offset + blk * stride;
            long to = dstOffset + 4L * K_BLOCK * blk;
            q4kScales(data, at, scales, 0);
            for (int j = 0; j < 8; j++) {
                for (int c = 0; c < 32; c += FL) {
                    q45kValues(fiveBits, data, at, j, c, scales, 16);
                    FloatVector.fromArray(F, scales, 16).mul(scales[j]).sub(scales[8 + j])
                            .intoMemorySegment(dst, to + 4L * (32 * j + c), NATIVE);
                }
            }
        }
    }

    /** Q6_K super-blocks to floats, the values of {@link Dequant} and of rowsQ6K: (d * sc) * (q - 32); {@code scales} as for decodeQ45K. */
    static void decodeQ6K(MemorySegment data, long offset, long stride, int blocks, MemorySegment dst, long dstOffset,
                          float[] scales) {
        for (int blk = 0; blk < blocks; blk++) {
            long at = offset + blk * stride;
            long to = dstOffset + 4L * K_BLOCK * blk;
            q6kScales(data, at, scales, 0);
            for (int i = 0; i < K_BLOCK; i += FL) {
                q6kValues(data, at, i, scales, 16);
                FloatVector.fromArray(F, scales, 16).mul(scales[i / 16]).intoMemorySegment(dst, to + 4L * i, NATIVE);
            }
        }
    }

    /**
     * Q2_K (3 bits false) or Q3_K super-blocks to floats, the values of {@link Dequant}: value i
     * takes 2 bits from qs[32h + l] at bit 2k (h = i / 128, k = i % 128 / 32, l = i % 32), Q3_K a
     * third from hmask[l] at bit 4h + k; Q2_K's value is (d * scale) * q - dmin * min, Q3_K's (d *
     * (scale - 32)) * (q - 4). {@code scales} holds at least 32 + FL floats.
     */
    static void decodeQ23K(boolean threeBits, MemorySegment data, long offset, long stride, int blocks, MemorySegment dst,
                           long dstOffset, float[] scales) {
        long quants = threeBits ? 32 : 16;
        for (int blk = 0; blk < blocks; blk++) {
            long at = offset + blk * stride;
            long to = dstOffset + 4L * K_BLOCK * blk;
            q23kScales(threeBits, data, at, scales);
            for (int i = 0; i < K_BLOCK; i += FL) {
                int h = i / 128;
                int k = i % 128 / 32;
                int l = i % 32;
                IntVector q = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, at + quants + 32L * h + l, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 2 * k).and(3);
                if (threeBits) {
                    // q - 4, plus 4 where the hmask bit is set.
                    q = q.or(((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, at + l, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * h + k)
                            .and(1).lanewise(VectorOperators.LSHL, 2)).sub(4);
                }
                ((FloatVector) q.convert(VectorOperators.I2F, 0)).mul(scales[i / 16]).sub(scales[16 + i / 16])
                        .intoMemorySegment(dst, to + 4L * i, NATIVE);
            }
        }
    }

    /**
     * The 16 sub-block scales of the Q2_K or Q3_K super-block at {@code at} into {@code into[0..15]} and
     * the 16 offsets into {@code into[16..31]} (from {@code into[base]} in the second form): Q2_K's d * scale and dmin * min; Q3_K's d * (s - 32)
     * and zeros, its 6-bit scales unpacked 8 at a time in two longs (as {@link Dequant#q3kScale} reads
     * them one by one).
     */
    private static void q23kScales(boolean threeBits, MemorySegment data, long at, float[] into) {
        q23kScales(threeBits, data, at, into, 0);
    }

    private static void q23kScales(boolean threeBits, MemorySegment data, long at, float[] into, int base) {
        if (!threeBits) {
            float d = Float.float16ToFloat(data.get(LE_SHORT, at + 80));
            float dmin = Float.float16ToFloat(data.get(LE_SHORT, at + 82));
            for (int p = 0; p < 16; p += FL) {
                IntVector sc = (IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, at + p, LE)
                        .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0);
                ((FloatVector) sc.and(0x0F).convert(VectorOperators.I2F, 0)).mul(d).intoArray(into, base + p);
                ((FloatVector) sc.lanewise(VectorOperators.LSHR, 4).convert(VectorOperators.I2F, 0)).mul(dmin)
                        .intoArray(into, base + 16 + p);
            }
            return;
        }
        float d = Float.float16ToFloat(data.get(LE_SHORT, at + 108));
        long low = data.get(LE_LONG, at + 96);
        long high = data.get(LE_INT, at + 104) & 0xFFFFFFFFL;
        // Scales 0-7: low nibbles of bytes 0-7, top bits 2 (j / 4) of byte 8 + j % 4; 8-15: high nibbles.
        long first = (low & 0x0F0F0F0F0F0F0F0FL) | ((high & 0x03030303L) | (high >>> 2 & 0x03030303L) << 32) << 4;
        long second = (low >>> 4 & 0x0F0F0F0F0F0F0F0FL) | ((high >>> 4 & 0x03030303L) | (high >>> 6 & 0x03030303L) << 32) << 4;
        ByteVector bytes = LongVector.zero(LongVector.SPECIES_128).withLane(0, first).withLane(1, second).reinterpretAsBytes();
        for (int p = 0; p < 16; p += FL) {
            ((FloatVector) ((IntVector) bytes.convertShape(VectorOperators.ZERO_EXTEND_B2I, I, p / FL)).sub(32)
                    .convert(VectorOperators.I2F, 0)).mul(d).intoArray(into, base + p);
        }
        java.util.Arrays.fill(into, base + 16, base + 32, 0f);
    }

    /** The IQ4 grid as float bits, for lookups 16 lanes (or twice 8) at a time. */
    private static final int[] IQ4_GRID_BITS = new int[16];

    static {
        for (int n = 0; n < 16; n++) {
            IQ4_GRID_BITS[n] = Float.floatToIntBits(DType.iq4Value(n));
        }
    }

    /**
     * IQ4_NL blocks (32 values) or IQ4_XS super-blocks (8 runs of 32 with 6-bit scales) to floats,
     * the values of {@link Dequant}: scale * grid[nibble], the grid looked up in registers.
     */
    static void decodeIq4(boolean superBlock, MemorySegment data, long offset, long stride, int blocks, MemorySegment dst,
                          long dstOffset) {
        int runs = superBlock ? 8 : 1;
        long quants = superBlock ? 8 : 2;
        IntVector gridLow = IntVector.fromArray(I, IQ4_GRID_BITS, 0);
        IntVector gridHigh = IntVector.fromArray(I, IQ4_GRID_BITS, 16 - FL);
        for (int blk = 0; blk < blocks; blk++) {
            long at = offset + blk * stride;
            float d = Float.float16ToFloat(data.get(LE_SHORT, at));
            int scalesHigh = superBlock ? data.get(LE_SHORT, at + 2) & 0xFFFF : 0;
            for (int j = 0; j < runs; j++) {
                float scale = d;
                if (superBlock) {
                    int s = (data.get(ValueLayout.JAVA_BYTE, at + 4 + j / 2) >>> 4 * (j % 2) & 0x0F) | (scalesHigh >>> 2 * j & 3) << 4;
                    scale = d * (s - 32);
                }
                long to = dstOffset + 4L * ((long) runs * BLOCK * blk + BLOCK * j);
                for (int half = 0; half < 2; half++) {
                    for (int c = 0; c < BLOCK / 2; c += FL) {
                        IntVector n = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, at + quants + 16L * j + c, LE)
                                .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * half).and(0x0F);
                        // 16 lanes: one table; 8 lanes: the grid in two (index n picks from both).
                        IntVector grid = FL == 16 ? n.selectFrom(gridLow) : n.selectFrom(gridLow, gridHigh);
                        grid.reinterpretAsFloats().mul(scale).intoMemorySegment(dst, to + 4L * (16 * half + c), NATIVE);
                    }
                }
            }
        }
    }

    /**
     * Two rows (at o0, o1; sums added at {@code at}, {@code at + 1}) of IQ4_NL (32-value blocks) or
     * IQ4_XS (256-value super-blocks of 8 runs of 32, each with its 6-bit scale), each value
     * scale * grid[nibble] as {@link #decodeIq4} makes it (the grid looked up in registers), then
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
     * between (as rowsQ45K), each value made as {@link #decodeQ23K} makes it, scales first.
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

    /** Blocks of a 32-value nibble type to floats, the values of rowsNibbles (and {@code Dequant}): fma(q, d, m). */
    static void decodeNibbleBlocks(DType type, MemorySegment data, long offset, long stride, int blocks, MemorySegment dst,
                                   long dstOffset) {
        NibbleLayout layout = NibbleLayout.of(type);
        IntVector bitOfLane = IntVector.zero(I).addIndex(1);
        for (int b = 0; b < blocks; b++) {
            long o = offset + b * stride;
            float d = Float.float16ToFloat(data.get(LE_SHORT, o));
            float m = layout.withMin ? Float.float16ToFloat(data.get(LE_SHORT, o + 2)) : layout.bias * d;
            int qh = layout.fiveBits ? data.get(LE_INT, o + layout.quants - 4) : 0;
            for (int half = 0; half < 2; half++) {
                for (int c = 0; c < BLOCK / 2; c += FL) {
                    IntVector q = ((IntVector) ByteVector.fromMemorySegment(QUARTER_BYTES, data, o + layout.quants + c, LE)
                            .convertShape(VectorOperators.ZERO_EXTEND_B2I, I, 0)).lanewise(VectorOperators.LSHR, 4 * half).and(0x0F);
                    int bit = 16 * half + c;
                    if (layout.fiveBits) {
                        q = q.or(IntVector.broadcast(I, (qh >>> bit & 0xFFFF) << 4).lanewise(VectorOperators.LSHR, bitOfLane).and(16));
                    }
                    ((FloatVector) q.convert(VectorOperators.I2F, 0)).fma(d, m)
                            .intoMemorySegment(dst, dstOffset + 4L * (b * BLOCK + bit), NATIVE);
                }
            }
        }
    }

    /** Copies {@code n} floats from float index {@code srcIndex} of {@code src}, zero-padded to {@code paddedN}. */
    private static void copyRow(MemorySegment src, long srcIndex, int n, MemorySegment dst, long dstIndex, int paddedN) {
        MemorySegment.copy(src, 4 * srcIndex, dst, 4 * dstIndex, 4L * n);
        zero(dst, 4 * (dstIndex + n), paddedN - n);
    }

    /** Zeroes {@code count} floats from byte {@code offset} (one at a time: a slice would allocate). */
    private static void zero(MemorySegment dst, long offset, int count) {
        for (int i = 0; i < count; i++) {
            dst.set(FLOAT, offset + 4L * i, 0f);
        }
    }

    @Override
    public void embedRow(CpuWeight w, int row, MemorySegment out, long outIndex, ThreadScratch scratch) {
        if (w.columnMajor() && w.type() == DType.Q8_0) {
            Q8Products.decodeRow(w, row, out, outIndex);
            return;
        }
        if (w.columnMajor() && (w.type() == DType.F16 || w.type() == DType.BF16)) {
            HalfProducts.decodeRow(w, row, out, outIndex);
            return;
        }
        if (w.columnMajor() && Iq4Products.handles(w.type())) {
            Iq4Products.decodeRow(w, row, out, outIndex);
            return;
        }
        if (w.columnMajor()) {
            IntegerProducts.decodeRow(w, row, out, outIndex);
            return;
        }
        decodeRange(w, w.rowOffset(row), w.columns(), out, outIndex * Float.BYTES,
                w.columns(), scratch);
    }

    // ---------------------------------------------------------------------------------------------
    // Element-wise kernels and attention

    @Override
    public void rmsNorm(MemorySegment out, MemorySegment in, float[] weight, int width, float eps, int rowStart, int rowEnd,
                        ThreadScratch scratch) {
        float[] lanes = scratch.lanes(FL);
        float[] total = scratch.tileSums(1);
        int vectorEnd = width / FL * FL;
        for (int r = rowStart; r < rowEnd; r++) {
            long base = (long) r * width * Float.BYTES;
            FloatVector squares = FloatVector.zero(F);
            int i = 0;
            for (; i < vectorEnd; i += FL) {
                FloatVector v = FloatVector.fromMemorySegment(F, in, base + i * 4L, NATIVE);
                squares = v.fma(v, squares);
            }
            squares.intoArray(lanes, 0);
            total[0] = 0;
            addLaneSums(lanes, total, 0, 1);
            float ss = total[0];
            for (; i < width; i++) {
                float v = in.get(FLOAT, base + i * 4L);
                ss += v * v;
            }
            float scale = (float) (1.0 / Math.sqrt(ss / width + eps));
            for (i = 0; i < vectorEnd; i += FL) {
                FloatVector.fromMemorySegment(F, in, base + i * 4L, NATIVE).mul(scale)
                        .mul(FloatVector.fromArray(F, weight, i))
                        .intoMemorySegment(out, base + i * 4L, NATIVE);
            }
            for (; i < width; i++) {
                out.set(FLOAT, base + i * 4L, in.get(FLOAT, base + i * 4L) * scale * weight[i]);
            }
        }
    }

    /**
     * Rope with whole vectors: x' = x * cos + swapPairs(x) * sin', where per element cos repeats
     * each pair's cosine and sin' is (-sin, +sin) for the pair's (first, second) element.
     */
    @Override
    public void rope(MemorySegment x, MemorySegment cosSin, int heads, int headDim, int ropeDimensions, int rowStart,
                     int rowEnd, ThreadScratch scratch) {
        int pairs = ropeDimensions / 2;
        int vectorEnd = ropeDimensions / FL * FL;
        scratch.ensureRope(ropeDimensions);
        float[] cos = scratch.ropeCos;
        float[] sin = scratch.ropeSin;
        for (int r = rowStart; r < rowEnd; r++) {
            long csBase = (long) r * 2 * pairs * Float.BYTES;
            for (int i = 0; i < pairs; i++) {
                float c = cosSin.get(FLOAT, csBase + i * 4L);
                float s = cosSin.get(FLOAT, csBase + (pairs + i) * 4L);
                cos[2 * i] = c;
                cos[2 * i + 1] = c;
                sin[2 * i] = -s;
                sin[2 * i + 1] = s;
            }
            for (int h = 0; h < heads; h++) {
                long base = ((long) r * heads + h) * headDim * Float.BYTES;
                int i = 0;
                for (; i < vectorEnd; i += FL) {
                    FloatVector v = FloatVector.fromMemorySegment(F, x, base + i * 4L, NATIVE);
                    v.mul(FloatVector.fromArray(F, cos, i))
                            .add(v.rearrange(SWAP_PAIRS).mul(FloatVector.fromArray(F, sin, i)))
                            .intoMemorySegment(x, base + i * 4L, NATIVE);
                }
                for (; i < ropeDimensions; i += 2) {
                    long a = base + i * 4L;
                    float x0 = x.get(FLOAT, a);
                    float x1 = x.get(FLOAT, a + 4);
                    x.set(FLOAT, a, x0 * cos[i] + x1 * sin[i]);
                    x.set(FLOAT, a + 4, x1 * cos[i] + x0 * sin[i + 1]);
                }
            }
        }
    }

    /** Most query heads of one KV head that attention takes through the cache together. */
    private static final int ATTENTION_RUN = 4;
    /** Positions whose value rows a run of heads accumulates before the next chunk (32 KB at 128 dims). */
    private static final int VALUE_CHUNK = 64;
    /** Vectors of positions whose scores one pass of {@link #scoreChunk} computes. */
    private static final int SCORE_VECTORS = 4;

    /**
     * Attention for (token, head) items. Consecutive items of one token row and KV head (up to
     * {@link #ATTENTION_RUN} of a query group, as far as this slice goes) run together: each chunk of
     * positions' keys, then values, is read from the cache (L2 or memory) once and from L1 for the
     * other heads of the run. Every head's sums are the same chains, in the same order, as alone.
     */
    @Override
    public void attention(AttentionArgs a, int itemStart, int itemEnd, ThreadScratch scratch) {
        BatchLayout layout = a.layout;
        int headDim = a.headDim;
        int group = a.heads / a.kvHeads;
        // Score chunks (2 heads x SCORE_VECTORS vectors), softmax sums (FL chains of FL lanes), or
        // for heads narrower than a vector a chain per value of each head of a run.
        float[] lanes = scratch.lanes(Math.max(2 * SCORE_VECTORS * FL, headDim < FL ? ATTENTION_RUN * headDim * FL : FL * FL));
        float[] total = scratch.tileSums(1);
        float[] maxes = scratch.runMaxes(ATTENTION_RUN);
        for (int item = itemStart; item < itemEnd; ) {
            int r = item / a.heads;
            int h = item % a.heads;
            int kvHead = h / group;
            int run = Math.min(ATTENTION_RUN, Math.min(itemEnd - item, (kvHead + 1) * group - h));
            item += run;
            int seq = layout.tokenSequence[r];
            // Positions first .. position: all of them, or the last `window`.
            int first = a.firstAttended(layout.positions[r]);
            int length = layout.positions[r] + 1 - first;
            // Head j's scores at scores[j * stride ..], padded to whole vectors.
            int stride = (length + FL - 1) / FL * FL;
            float[] scores = scratch.scores(run * stride + FL);
            long qBase = ((long) r * a.heads + h) * headDim * Float.BYTES;
            long headBytes = (long) headDim * Float.BYTES;

            java.util.Arrays.fill(maxes, 0, run, Float.NEGATIVE_INFINITY);
            attentionScores(a, seq, qBase, run, kvHead, first, length, scores, stride, maxes, lanes, scratch);
            // Softmax weights, each head's scores in place; maxes[j] becomes 1 / head j's sum.
            for (int j = 0; j < run; j++) {
                maxes[j] = 1 / softmaxWeights(scores, j * stride, length, stride, maxes[j], lanes, total);
            }

            int[] slots = scratch.slots(length);
            layout.slotsOf(seq, first, length, slots);
            if (headDim < FL) {
                smallHeadValues(a, qBase, run, kvHead, slots, length, scores, stride, maxes, lanes, scratch);
                continue;
            }
            // A chunk's position c0 + g has its value at values[rows[row0 + g] * kvRowBytes + kvOffset]:
            // the cache itself (rows = slots, row0 = c0), or for an F16 cache L1-sized float rows into
            // which the chunk is decoded once for the whole run (rows = 0, 1, 2, ..., row0 = 0).
            boolean half = a.halfCache;
            long cacheRowBytes = (long) a.kvHeads * headDim * (half ? 2 : Float.BYTES);
            long cacheOffset = (long) kvHead * headDim * (half ? 2 : Float.BYTES);
            MemorySegment values = half ? scratch.decodedKv(VALUE_CHUNK * headDim) : a.valueCache;
            int[] rows = half ? scratch.positions(VALUE_CHUNK) : slots;
            long kvRowBytes = half ? headBytes : cacheRowBytes;
            long kvOffset = half ? 0 : cacheOffset;
            // out = sum_p weight_p * v_p, VALUE_CHUNK positions at a time for every head of the run.
            for (int c0 = 0; c0 < length; c0 += VALUE_CHUNK) {
                int count = Math.min(VALUE_CHUNK, length - c0);
                int row0 = c0;
                if (half) {
                    for (int g = 0; g < count; g++) {
                        decodeHalves(a.valueCache, slots[c0 + g] * cacheRowBytes + cacheOffset, headDim, values,
                                (long) g * headBytes);
                    }
                    row0 = 0;
                }
                boolean last = c0 + count == length;
                for (int j = 0; j < run; j += 2) {
                    int b = Math.min(j + 1, run - 1); // an odd run's last head goes alone
                    accumulateValues(values, rows, row0, kvRowBytes, kvOffset, scores, j * stride + c0, b * stride + c0,
                            count, c0 == 0, headDim, a.out, qBase + j * headBytes, qBase + b * headBytes,
                            last ? maxes[j] : 1f, last ? maxes[b] : 1f);
                }
            }
        }
    }

    /**
     * Head j's scores of positions {@code first .. first + length - 1} (q . k, scaled and
     * soft-capped) into {@code scores[j * stride ..]} and their maximum into {@code maxes[j]}, for
     * the {@code run} query heads from byte {@code qBase} against key head {@code kvHead}. The keys
     * are block-transposed ({@link AttentionArgs#keyIndex}), so one vector holds one element of FL
     * consecutive positions, and a score is a single chain of FMAs over the head's elements in
     * order (AttentionArgs.dot's), lane by lane: no sums across lanes, and per element one load of
     * each vector of positions for two heads and one broadcast of each head's query value for
     * {@link #SCORE_VECTORS} vectors. Row-major keys took a chain per position across the lanes,
     * then a tree of lane sums, which cost as much as the multiply-adds.
     */
    private static void attentionScores(AttentionArgs a, int seq, long qBase, int run, int kvHead, int first, int length,
                                        float[] scores, int stride, float[] maxes, float[] lanes, ThreadScratch scratch) {
        BatchLayout layout = a.layout;
        int blockSize = layout.blockSize;
        int headDim = a.headDim;
        long headBytes = (long) headDim * Float.BYTES;
        int last = first + length - 1;
        if (blockSize % FL != 0) {
            // Blocks narrower than a vector (tests' small blocks): a position at a time, the same chains.
            for (int j = 0; j < run; j++) {
                float max = maxes[j];
                for (int p = 0; p < length; p++) {
                    float score = a.score(a.dot(qBase + j * headBytes, layout.slotOf(seq, first + p), kvHead));
                    scores[j * stride + p] = score;
                    max = Math.max(max, score);
                }
                maxes[j] = max;
            }
            return;
        }
        boolean half = a.halfCache;
        long headValues = (long) headDim * blockSize; // a key head's values in a block
        // An F16 cache: the blocks of a chunk decoded to floats, one block's key head after another.
        int chunkBlocks = (SCORE_VECTORS * FL + blockSize - 1) / blockSize + 1;
        MemorySegment keys = half ? scratch.decodedKv((int) (chunkBlocks * headValues)) : a.keyCache;
        int lastVector = last / FL * FL;
        for (int c0 = first / FL * FL; c0 <= last; c0 += SCORE_VECTORS * FL) {
            int firstBlock = c0 / blockSize;
            if (half) {
                for (int b = firstBlock; b <= Math.min(c0 + SCORE_VECTORS * FL - 1, last) / blockSize; b++) {
                    long from = a.keyIndex(layout.slotOf(seq, b * blockSize), kvHead * headDim);
                    decodeHalves(a.keyCache, 2 * from, (int) headValues, keys, 4 * (b - firstBlock) * headValues);
                }
            }
            // Byte offsets of the chunk's vectors of positions; past the query's position the last repeats (unused).
            long k0 = vectorAt(a, seq, kvHead, half, firstBlock, c0);
            long k1 = vectorAt(a, seq, kvHead, half, firstBlock, Math.min(c0 + FL, lastVector));
            long k2 = vectorAt(a, seq, kvHead, half, firstBlock, Math.min(c0 + 2 * FL, lastVector));
            long k3 = vectorAt(a, seq, kvHead, half, firstBlock, Math.min(c0 + 3 * FL, lastVector));
            for (int j = 0; j < run; j += 2) {
                // Two heads a pass; a run of odd length repeats its last head (unused).
                scoreChunk(a.q, qBase + j * headBytes, qBase + Math.min(j + 1, run - 1) * headBytes, keys, k0, k1, k2, k3,
                        4L * blockSize, headDim, lanes);
                for (int i = j; i < Math.min(j + 2, run); i++) {
                    maxes[i] = storeScores(a, lanes, (i - j) * SCORE_VECTORS * FL, c0, first, last, scores, i * stride,
                            maxes[i]);
                }
            }
        }
    }

    /**
     * Byte offset of element 0 of the FL positions from {@code position} (a multiple of FL) of the
     * key head: in the cache, or in the decoded chunk whose first block is {@code firstBlock}.
     */
    private static long vectorAt(AttentionArgs a, int seq, int kvHead, boolean decoded, int firstBlock, int position) {
        int blockSize = a.layout.blockSize;
        long at = decoded ? (long) (position / blockSize - firstBlock) * a.headDim * blockSize + position % blockSize
                : a.keyIndex(a.layout.slotOf(seq, position), kvHead * a.headDim);
        return 4 * at;
    }

    /**
     * The raw scores of two query heads (bytes {@code qa}, {@code qb}) against four vectors of
     * positions (element 0 at bytes {@code k0 .. k3}, element i {@code i * elementBytes} further):
     * head a's four vectors into {@code lanes[0 .. 4 FL)}, head b's after them. Each lane is one
     * chain, acc = fma(q_i, k_i, acc) for i from 0 (8 independent chains: enough to keep both
     * FMA pipes busy through their latency).
     */
    private static void scoreChunk(MemorySegment q, long qa, long qb, MemorySegment keys, long k0, long k1, long k2,
                                   long k3, long elementBytes, int headDim, float[] lanes) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int i = 0; i < headDim; i++) {
            long e = i * elementBytes;
            FloatVector x0 = FloatVector.fromMemorySegment(F, keys, k0 + e, NATIVE);
            FloatVector x1 = FloatVector.fromMemorySegment(F, keys, k1 + e, NATIVE);
            FloatVector x2 = FloatVector.fromMemorySegment(F, keys, k2 + e, NATIVE);
            FloatVector x3 = FloatVector.fromMemorySegment(F, keys, k3 + e, NATIVE);
            FloatVector va = FloatVector.broadcast(F, q.get(FLOAT, qa + 4L * i));
            FloatVector vb = FloatVector.broadcast(F, q.get(FLOAT, qb + 4L * i));
            a0 = va.fma(x0, a0);
            a1 = va.fma(x1, a1);
            a2 = va.fma(x2, a2);
            a3 = va.fma(x3, a3);
            b0 = vb.fma(x0, b0);
            b1 = vb.fma(x1, b1);
            b2 = vb.fma(x2, b2);
            b3 = vb.fma(x3, b3);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, FL);
        a2.intoArray(lanes, 2 * FL);
        a3.intoArray(lanes, 3 * FL);
        b0.intoArray(lanes, 4 * FL);
        b1.intoArray(lanes, 5 * FL);
        b2.intoArray(lanes, 6 * FL);
        b3.intoArray(lanes, 7 * FL);
    }

    /**
     * One head's raw scores of the chunk from position {@code c0} ({@link #SCORE_VECTORS} vectors at
     * {@code lanes[from ..]}) that lie in {@code first .. last}, as scores into
     * {@code scores[at + p - first]}; returns {@code max} raised to their maximum. Whole vectors
     * are scaled as vectors (the same multiply as AttentionArgs.score), the rest one at a time.
     */
    private static float storeScores(AttentionArgs a, float[] lanes, int from, int c0, int first, int last,
                                     float[] scores, int at, float max) {
        for (int v = 0; v < SCORE_VECTORS; v++) {
            int p0 = c0 + v * FL;
            if (p0 > last) {
                break;
            }
            int l = from + v * FL;
            if (p0 >= first && p0 + FL - 1 <= last && a.softcap == 0) {
                FloatVector s = FloatVector.fromArray(F, lanes, l).mul(a.scale);
                s.intoArray(scores, at + p0 - first);
                max = Math.max(max, s.reduceLanes(VectorOperators.MAX));
            } else {
                for (int p = Math.max(p0, first); p <= Math.min(p0 + FL - 1, last); p++) {
                    float score = a.score(lanes[l + p - p0]);
                    scores[at + p - first] = score;
                    max = Math.max(max, score);
                }
            }
        }
        return max;
    }

    /**
     * The values of a run of heads narrower than a vector (tiny models: 8 values a head in
     * stories260K, 4 in TinyLLama-v0), weighted by their softmax weights (scores, with 1 / their
     * sum in maxes), vectorised across positions instead of along the head: FL positions' values
     * are copied, transposed, into a small array, and each output value is a chain over positions,
     * its lanes summed in a fixed order at the end. Along the head, such heads would run element by
     * element: at 640 positions that was 60% of a stories260K decode step.
     */
    private static void smallHeadValues(AttentionArgs a, long qBase, int run, int kvHead, int[] slots, int length,
                                        float[] scores, int stride, float[] maxes, float[] chains, ThreadScratch scratch) {
        int headDim = a.headDim;
        boolean half = a.halfCache;
        long rowBytes = (long) a.kvHeads * headDim * (half ? 2 : Float.BYTES);
        long offset = (long) kvHead * headDim * (half ? 2 : Float.BYTES);
        // The transposed rows: value i of position g at t[i * FL + g].
        float[] t = scratch.transposed(headDim * FL);
        // Chain (j, i) at chains[(j * headDim + i) * FL]: head j's value i, FL positions a lane.
        java.util.Arrays.fill(chains, 0, run * headDim * FL, 0f);
        for (int p0 = 0; p0 < length; p0 += FL) {
            // Positions past the end read as zeros (their weights, e^-87 at most, are not quite 0).
            transposeRows(a.valueCache, half, slots, p0, Math.min(FL, length - p0), rowBytes, offset, headDim, t);
            for (int j = 0; j < run; j++) {
                FloatVector weights = FloatVector.fromArray(F, scores, j * stride + p0);
                for (int i = 0; i < headDim; i++) {
                    int c = (j * headDim + i) * FL;
                    FloatVector.fromArray(F, t, i * FL).fma(weights, FloatVector.fromArray(F, chains, c)).intoArray(chains, c);
                }
            }
        }
        float[] sums = scratch.tileSums(run * headDim);
        java.util.Arrays.fill(sums, 0, run * headDim, 0f);
        addLaneSums(chains, sums, 0, run * headDim);
        for (int j = 0; j < run; j++) {
            for (int i = 0; i < headDim; i++) {
                a.out.set(FLOAT, qBase + 4L * (j * headDim + i), sums[j * headDim + i] * maxes[j]);
            }
        }
    }

    /**
     * One KV head's values at the positions {@code slots[from .. from + count)}, transposed into
     * {@code t} (value i of position g at {@code t[i * FL + g]}, zeros for g from count to FL);
     * halves decode exactly.
     */
    private static void transposeRows(MemorySegment cache, boolean half, int[] slots, int from, int count, long rowBytes,
                                      long offset, int headDim, float[] t) {
        for (int g = 0; g < count; g++) {
            long at = slots[from + g] * rowBytes + offset;
            for (int i = 0; i < headDim; i++) {
                t[i * FL + g] = half ? Float.float16ToFloat(cache.get(LE_SHORT, at + 2L * i)) : cache.get(FLOAT, at + 4L * i);
            }
        }
        for (int i = 0; i < headDim; i++) {
            java.util.Arrays.fill(t, i * FL + count, (i + 1) * FL, 0f);
        }
    }

    /**
     * {@code count} little-endian halves from byte {@code from} of {@code cache} as floats into
     * {@code dst} from byte {@code to}, exactly: every half is a float (an F16 KV cache's keys of a
     * block, or one position's values).
     */
    private static void decodeHalves(MemorySegment cache, long from, int count, MemorySegment dst, long to) {
        int vectorEnd = count / FL * FL;
        int i = 0;
        for (; i < vectorEnd; i += FL) {
            // As decodeF16, written out; a NaN keeps its payload here.
            IntVector bits = ((IntVector) ShortVector.fromMemorySegment(HALF_SHORTS, cache, from + 2L * i, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF);
            FloatVector f = bits.reinterpretAsFloats().mul(0x1p112f);
            f.blend(bits.or(0x7F800000).reinterpretAsFloats(), f.abs().compare(VectorOperators.GE, 65536f))
                    .intoMemorySegment(dst, to + 4L * i, NATIVE);
        }
        for (; i < count; i++) {
            dst.set(FLOAT, to + 4L * i, Float.float16ToFloat(cache.get(LE_SHORT, from + 2L * i)));
        }
    }

    /**
     * Turns {@code length} scores at {@code scores[at]} into e^(score - max), padding them to
     * {@code padded} with -infinity (whose weight is e^-87, nothing next to the maximum's 1) so
     * that every score goes through the same vector exp and no masked operation is needed; returns
     * their sum.
     */
    private static float softmaxWeights(float[] scores, int at, int length, int padded, float max, float[] lanes,
                                        float[] total) {
        for (int p = length; p < padded; p++) {
            scores[at + p] = Float.NEGATIVE_INFINITY;
        }
        FloatVector sums = FloatVector.zero(F);
        for (int p = 0; p < padded; p += FL) {
            // e^(score - max), as in swiglu (written out there and here: see HalfProducts.oneGroup).
            FloatVector e = FloatVector.fromArray(F, scores, at + p).sub(max).max(EXP_MIN);
            FloatVector n = e.mul(LOG2_E).add(ROUNDING).sub(ROUNDING);
            FloatVector f = e.sub(n.mul(LN2_HI)).sub(n.mul(LN2_LO));
            FloatVector poly = f.fma(EXP_C6, EXP_C5).mul(f).add(EXP_C4).mul(f).add(EXP_C3).mul(f).add(EXP_C2).mul(f).add(0.5f);
            e = poly.mul(f.mul(f)).add(f).add(1f).mul(((IntVector) n.convert(VectorOperators.F2I, 0)).add(127)
                    .lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            e.intoArray(scores, at + p);
            // The loop-carried sums as the argument: as the receiver they were boxed whenever C2 had
            // no type profile for them (every run with -XX:-UseTypeSpeculation at 256 bits).
            sums = e.add(sums);
        }
        sums.intoArray(lanes, 0);
        total[0] = 0;
        addLaneSums(lanes, total, 0, 1);
        return total[0];
    }

    /**
     * For two heads a and b (b may be a, then computed twice): adds weights[w + p] * (the value row
     * at rows[row0 + p]) for p in [0, count) to the head's output (floats at {@code outA},
     * {@code outB}), four vectors of head elements of both heads per pass over the values (8
     * independent chains, enough to cover the FMA latency, and each value vector loaded once for
     * both); the sums start at zero when {@code fresh} and otherwise continue from what an earlier
     * chunk left in {@code out} (the same chain per element as in one pass: 0 + w v is w v). The
     * last chunk scales by {@code scaleA}, {@code scaleB} (1 / the sum of the weights) on the way out.
     */
    private static void accumulateValues(MemorySegment values, int[] rows, int row0, long kvRowBytes, long kvOffset,
                                         float[] weights, int wA, int wB, int count, boolean fresh, int headDim,
                                         MemorySegment out, long outA, long outB, float scaleA, float scaleB) {
        int vectorEnd = headDim / FL * FL;
        int heads = outA == outB ? 1 : 2;
        if (fresh) {
            // Zeros to continue from, rather than a vector that is zero on one branch and loaded
            // on the other (the pattern C2 boxes); stored directly, not through a slice's fill:
            // the slice was allocated on every call whenever C2 did not inline fill (11-16 KB per
            // token in some 256-bit decode runs).
            for (int h = 0; h < heads; h++) {
                long outBase = h == 0 ? outA : outB;
                int z = 0;
                for (; z < vectorEnd; z += FL) {
                    FloatVector.zero(F).intoMemorySegment(out, outBase + 4L * z, NATIVE);
                }
                for (; z < headDim; z++) {
                    out.set(FLOAT, outBase + 4L * z, 0f);
                }
            }
        }
        int i = 0;
        for (; i + 4 * FL <= vectorEnd; i += 4 * FL) {
            long oa = outA + i * 4L;
            long ob = outB + i * 4L;
            FloatVector a0 = FloatVector.fromMemorySegment(F, out, oa, NATIVE);
            FloatVector a1 = FloatVector.fromMemorySegment(F, out, oa + 4L * FL, NATIVE);
            FloatVector a2 = FloatVector.fromMemorySegment(F, out, oa + 8L * FL, NATIVE);
            FloatVector a3 = FloatVector.fromMemorySegment(F, out, oa + 12L * FL, NATIVE);
            FloatVector b0 = FloatVector.fromMemorySegment(F, out, ob, NATIVE);
            FloatVector b1 = FloatVector.fromMemorySegment(F, out, ob + 4L * FL, NATIVE);
            FloatVector b2 = FloatVector.fromMemorySegment(F, out, ob + 8L * FL, NATIVE);
            FloatVector b3 = FloatVector.fromMemorySegment(F, out, ob + 12L * FL, NATIVE);
            for (int p = 0; p < count; p++) {
                long vBase = rows[row0 + p] * kvRowBytes + kvOffset + i * 4L;
                FloatVector wa = FloatVector.broadcast(F, weights[wA + p]);
                FloatVector wb = FloatVector.broadcast(F, weights[wB + p]);
                FloatVector v0 = FloatVector.fromMemorySegment(F, values, vBase, NATIVE);
                FloatVector v1 = FloatVector.fromMemorySegment(F, values, vBase + 4L * FL, NATIVE);
                FloatVector v2 = FloatVector.fromMemorySegment(F, values, vBase + 8L * FL, NATIVE);
                FloatVector v3 = FloatVector.fromMemorySegment(F, values, vBase + 12L * FL, NATIVE);
                a0 = v0.fma(wa, a0);
                a1 = v1.fma(wa, a1);
                a2 = v2.fma(wa, a2);
                a3 = v3.fma(wa, a3);
                b0 = v0.fma(wb, b0);
                b1 = v1.fma(wb, b1);
                b2 = v2.fma(wb, b2);
                b3 = v3.fma(wb, b3);
            }
            a0.mul(scaleA).intoMemorySegment(out, oa, NATIVE);
            a1.mul(scaleA).intoMemorySegment(out, oa + 4L * FL, NATIVE);
            a2.mul(scaleA).intoMemorySegment(out, oa + 8L * FL, NATIVE);
            a3.mul(scaleA).intoMemorySegment(out, oa + 12L * FL, NATIVE);
            b0.mul(scaleB).intoMemorySegment(out, ob, NATIVE);
            b1.mul(scaleB).intoMemorySegment(out, ob + 4L * FL, NATIVE);
            b2.mul(scaleB).intoMemorySegment(out, ob + 8L * FL, NATIVE);
            b3.mul(scaleB).intoMemorySegment(out, ob + 12L * FL, NATIVE);
        }
        // What is left of the head: fewer than 4 vectors, a vector of both heads a pass, then single values.
        for (; i < vectorEnd; i += FL) {
            long oa = outA + i * 4L;
            long ob = outB + i * 4L;
            FloatVector a0 = FloatVector.fromMemorySegment(F, out, oa, NATIVE);
            FloatVector b0 = FloatVector.fromMemorySegment(F, out, ob, NATIVE);
            for (int p = 0; p < count; p++) {
                FloatVector v = FloatVector.fromMemorySegment(F, values, rows[row0 + p] * kvRowBytes + kvOffset + i * 4L,
                        NATIVE);
                a0 = v.fma(FloatVector.broadcast(F, weights[wA + p]), a0);
                b0 = v.fma(FloatVector.broadcast(F, weights[wB + p]), b0);
            }
            a0.mul(scaleA).intoMemorySegment(out, oa, NATIVE);
            b0.mul(scaleB).intoMemorySegment(out, ob, NATIVE);
        }
        for (int h = 0; h < heads; h++) {
            long outBase = h == 0 ? outA : outB;
            int wBase = h == 0 ? wA : wB;
            float scale = h == 0 ? scaleA : scaleB;
            for (int k = i; k < headDim; k++) {
                long o = outBase + k * 4L;
                float acc = out.get(FLOAT, o);
                for (int p = 0; p < count; p++) {
                    acc += weights[wBase + p] * values.get(FLOAT, rows[row0 + p] * kvRowBytes + kvOffset + k * 4L);
                }
                out.set(FLOAT, o, acc * scale);
            }
        }
    }

    /**
     * activation(gate) * up, both activations as {@code x * sigmoid(u)}: SiLU with {@code u = x},
     * tanh-GELU with {@code u = 2 sqrt(2/pi) (x + 0.044715 x^3)} (since {@code 0.5 (1 + tanh(z))}
     * is {@code sigmoid(2z)}), so one exp serves both. The last values (fewer than a vector) go
     * through {@link #expScalar}, the same operations one value at a time, so a value's result does
     * not depend on where a slice starts. (Masked vector operations would do too, but C2 does not
     * always intrinsify them and then boxes every vector.)
     */
    @Override
    public void gatedActivation(MemorySegment gate, MemorySegment up, long from, long to, Activation activation) {
        ByteOrder order = NATIVE;
        boolean gelu = activation == Activation.GELU_TANH;
        long i = from;
        for (; i + FL <= to; i += FL) {
            FloatVector g = FloatVector.fromMemorySegment(F, gate, i * 4, order);
            FloatVector u = gelu ? g.mul(g).mul(g).fma(FloatVector.broadcast(F, GELU_CUBIC), g).mul(GELU_SCALE) : g;
            // e^-u, clamped to the normal range (see the constants).
            FloatVector e = u.neg().max(EXP_MIN).min(EXP_MAX);
            FloatVector n = e.mul(LOG2_E).add(ROUNDING).sub(ROUNDING);
            FloatVector f = e.sub(n.mul(LN2_HI)).sub(n.mul(LN2_LO));
            FloatVector poly = f.fma(EXP_C6, EXP_C5).mul(f).add(EXP_C4).mul(f).add(EXP_C3).mul(f).add(EXP_C2).mul(f).add(0.5f);
            e = poly.mul(f.mul(f)).add(f).add(1f).mul(((IntVector) n.convert(VectorOperators.F2I, 0)).add(127)
                    .lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            FloatVector activated = g.div(e.add(1f));
            activated.mul(FloatVector.fromMemorySegment(F, up, i * 4, order)).intoMemorySegment(gate, i * 4, order);
        }
        for (; i < to; i++) {
            float g = gate.get(FLOAT, i * 4);
            float u = gelu ? Math.fma(g * g * g, GELU_CUBIC, g) * GELU_SCALE : g;
            gate.set(FLOAT, i * 4, g / (expScalar(-u) + 1f) * up.get(FLOAT, i * 4));
        }
    }

    private static final float GELU_SCALE = ScalarKernels.GELU_SCALE;
    private static final float GELU_CUBIC = ScalarKernels.GELU_CUBIC;

    /** The vector exp's steps on one value, operation for operation, so both give the same bits. */
    static float expScalar(float x) {
        float e = Math.min(Math.max(x, EXP_MIN), EXP_MAX);
        float n = e * LOG2_E + ROUNDING - ROUNDING;
        float f = e - n * LN2_HI - n * LN2_LO;
        float poly = (((Math.fma(f, EXP_C6, EXP_C5) * f + EXP_C4) * f + EXP_C3) * f + EXP_C2) * f + 0.5f;
        return (poly * (f * f) + f + 1f) * Float.intBitsToFloat(((int) n + 127) << 23);
    }

    /*
     * e^x from lane-wise IEEE operations only (within 2 ulp): the JIT's EXP intrinsic and the
     * interpreter's fallback round differently, and a result must not depend on how warm the JVM
     * is. Cody-Waite reduction x = n ln2 + f, |f| <= ln2/2, a degree-6 polynomial for e^f, and 2^n
     * built in the exponent bits. Inputs are clamped to the normal range (e^x underflows to about
     * 1e-38 rather than to 0, harmless in softmax and silu). Written out where it is used; the test
     * checks the same steps through vectorExpForTest.
     */
    private static final float EXP_MIN = -87.3f;
    private static final float EXP_MAX = 88.7f;
    private static final float LOG2_E = 1.44269504088896341f;
    /** ln 2 split so that n * LN2_HI is exact for |n| < 2^8. */
    private static final float LN2_HI = 0.693359375f;
    private static final float LN2_LO = -2.12194440e-4f;
    /** Taylor-like minimax coefficients of e^r - 1 - r - r^2/2 (Cephes expf). */
    private static final float EXP_C2 = 1.6666665459e-1f;
    private static final float EXP_C3 = 4.1665795894e-2f;
    private static final float EXP_C4 = 8.3334519073e-3f;
    private static final float EXP_C5 = 1.3981999507e-3f;
    private static final float EXP_C6 = 1.9875691500e-4f;

    /** e^x of each value of {@code x}, by the steps the kernels use (for the tests). */
    static void vectorExpForTest(float[] x, float[] out) {
        for (int i = 0; i < x.length; i += FL) {
            VectorMask<Float> inRange = F.indexInRange(i, x.length);
            FloatVector e = FloatVector.fromArray(F, x, i, inRange).max(EXP_MIN).min(EXP_MAX);
            FloatVector n = e.mul(LOG2_E).add(ROUNDING).sub(ROUNDING);
            FloatVector f = e.sub(n.mul(LN2_HI)).sub(n.mul(LN2_LO));
            FloatVector poly = f.fma(EXP_C6, EXP_C5).mul(f).add(EXP_C4).mul(f).add(EXP_C3).mul(f).add(EXP_C2).mul(f).add(0.5f);
            e = poly.mul(f.mul(f)).add(f).add(1f).mul(((IntVector) n.convert(VectorOperators.F2I, 0)).add(127)
                    .lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            e.intoArray(out, i, inRange);
        }
    }

    @Override
    public void add(MemorySegment acc, MemorySegment x, long from, long to) {
        ByteOrder order = NATIVE;
        long i = from;
        for (; i + FL <= to; i += FL) {
            FloatVector.fromMemorySegment(F, acc, i * 4, order).add(FloatVector.fromMemorySegment(F, x, i * 4, order))
                    .intoMemorySegment(acc, i * 4, order);
        }
        for (; i < to; i++) {
            acc.set(FLOAT, i * 4, acc.get(FLOAT, i * 4) + x.get(FLOAT, i * 4));
        }
    }
}
