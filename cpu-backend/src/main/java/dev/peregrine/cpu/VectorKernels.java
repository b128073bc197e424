package dev.peregrine.cpu;

import static dev.peregrine.cpu.LaneSums.addLaneSums;
import static dev.peregrine.cpu.VectorExp.EXP_C2;
import static dev.peregrine.cpu.VectorExp.EXP_C3;
import static dev.peregrine.cpu.VectorExp.EXP_C4;
import static dev.peregrine.cpu.VectorExp.EXP_C5;
import static dev.peregrine.cpu.VectorExp.EXP_C6;
import static dev.peregrine.cpu.VectorExp.EXP_MAX;
import static dev.peregrine.cpu.VectorExp.EXP_MIN;
import static dev.peregrine.cpu.VectorExp.LN2_HI;
import static dev.peregrine.cpu.VectorExp.LN2_LO;
import static dev.peregrine.cpu.VectorExp.LOG2_E;
import static dev.peregrine.cpu.VectorExp.expScalar;

import dev.peregrine.spi.Activation;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Optional;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorShape;
import jdk.incubator.vector.VectorShuffle;
import jdk.incubator.vector.VectorSpecies;

/**
 * Kernels written with the Vector API, at the widest vector size the CPU offers (AVX-512 gives 16
 * float lanes, AVX2 8).
 *
 * <p>Matrices copied at load are column-major groups of rows with products of their own, a lane
 * per weight row: on float activations ({@link Q8Products}, {@link HalfProducts},
 * {@link Iq4Products}) or on activations quantised to 8 bits ({@link IntegerProducts} and the
 * K-quant classes). F32 matrices and rows read in place from the file take {@link RowProducts}
 * (one to four tokens a pass, each weight row streamed once) and {@link TileProducts} (more
 * tokens: a dequantised panel reused for every token, 4 rows x 4 tokens at a time from
 * registers). This class chooses among them, and holds the element-wise kernels; attention is in
 * {@link VectorAttention}. Every product gives one token bit-identical results whether it is
 * decoded alone or processed in a batch (see the Matmul section).
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

    static final ByteOrder LE = ByteOrder.LITTLE_ENDIAN;
    /** Scratch buffers are written and read by this process only. */
    static final ByteOrder NATIVE = ByteOrder.nativeOrder();
    static final ValueLayout.OfShort LE_SHORT = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(LE);
    static final ValueLayout.OfInt LE_INT = ValueLayout.JAVA_INT_UNALIGNED.withOrder(LE);
    static final ValueLayout.OfLong LE_LONG = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(LE);
    static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    static final ValueLayout.OfFloat LE_FLOAT = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(LE);

    /** ggml blocks of 32 values: Q8_0 = f16 scale + 32 bytes, Q4_0 = f16 scale + 16 bytes. */
    static final int BLOCK = 32;
    /** Float rows in the file's layout are decoded a vector's worth of values (a unit) at a time. */
    static final int UNIT = FL;
    /** K-quant super-blocks: 256 values; Q4_K = 144 bytes, Q6_K = 210 bytes (layouts in DType). */
    static final int K_BLOCK = 256;

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
    static final int TILE_ROWS = 4;
    static final int TILE_TOKENS = 4;

    /** Adding then subtracting 1.5 * 2^23 rounds a float of magnitude < 2^22 to the nearest integer. */
    static final float ROUNDING = 12582912f;

    /** Lane i takes lane i ^ 1: swaps the two elements of each rope pair. */
    private static final VectorShuffle<Float> SWAP_PAIRS = VectorShuffle.fromOp(F, i -> i ^ 1);

    /** The kernels, if this CPU's preferred vector size suits them (8 or 16 float lanes). */
    static Optional<Kernels> createIfSupported() {
        return FL == 8 || FL == 16 ? Optional.of(new VectorKernels()) : Optional.empty();
    }

    @Override
    public String description() {
        return "Vector API " + F.vectorBitSize() + "-bit";
    }

    /**
     * Copied matrices (the K-quants: of whole super-blocks; F32: not vectors) are stored in
     * column-major groups ({@link #columnMajor}): a group's rows are one sequential stream, which the
     * hardware prefetchers follow far better than several rows read side by side (F16 decode over
     * 2,048-value rows, one core: 14.5 GB/s in the file's layout, 23 with 4 rows interleaved block
     * by block, 31 column-major; F32 10 -> 30 GB/s, KernelBench).
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
            case F32 -> rows > 1 ? FloatProducts.GROUP_ROWS : 1; // a vector (a norm's weights) stays as it is
        };
    }

    /** Float rows in the file's layout are read {@link #UNIT} values (a vector) at a time. */
    @Override
    public int groupUnit(DType type) {
        return type.isQuantized() ? type.blockSize() : UNIT;
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
        return type == DType.Q8_0 || type == DType.F32 && rows > 1 || type == DType.F16 || type == DType.BF16
                || Iq4Products.handles(type) || IntegerProducts.handles(type, columns);
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
    // (LaneSums). The tile kernel keeps its chains in memory between column chunks. The
    // column-major products (IntegerProducts, Q3KProducts, Q4KProducts, Q6KProducts, Q8Products) have their own
    // fixed arithmetic, the same for every token count.

    @Override
    public void prepareMatmul(MatmulInput input, CpuWeight[] weights, int count, MemorySegment x, int firstToken,
                              int tokens) {
        int n = weights[0].columns();
        input.x = x;
        input.firstToken = firstToken;
        input.columns = n;
        input.paddedColumns = padded(n);
        boolean quantised = false;
        boolean floats = false;
        boolean floatColumns = false;
        boolean tiles = false; // a weight in rows that takes the tile kernel for these tokens
        for (int i = 0; i < count; i++) {
            boolean floatActivations = floatColumns(weights[i]);
            floatColumns |= floatActivations;
            quantised |= weights[i].columnMajor() && !floatActivations;
            floats |= !weights[i].columnMajor();
            tiles |= !weights[i].columnMajor() && tokens > 1
                    && (tokens > ROW_KERNEL_TOKENS || !RowProducts.hasTokensRowKernel(weights[i]));
        }
        if (quantised) {
            IntegerProducts.quantise(input, x, firstToken, tokens, n);
        }
        // Q8Products, HalfProducts and Iq4Products read the heap copy, one token too.
        boolean heapRows = tiles || floatColumns;
        if (floats && tokens <= ROW_KERNEL_TOKENS) {
            // Few tokens: every thread reads the same zero-padded copies (whatever the type: a
            // grouped matmul prepares once for weights of several types).
            input.ensureCapacity(tokens * input.paddedColumns);
            for (int t = 0; t < tokens; t++) {
                FloatDecoders.copyRow(x, (long) (firstToken + t) * n, n, input.floats, (long) t * input.paddedColumns,
                        input.paddedColumns);
            }
        }
        if (heapRows) {
            // For the tile kernel (all products of more than 16 tokens, and of 2-16 for the types
            // without a row kernel for several tokens) and Q8Products: one zero-padded heap copy,
            // made once here rather than per panel by every thread (that copy cost as much as the
            // FMAs on long rows).
            input.ensureRows(Math.multiplyExact(tokens, input.paddedColumns));
            for (int t = 0; t < tokens; t++) {
                FloatDecoders.copyRow(x, (long) (firstToken + t) * n, n, input.rowsView, (long) t * input.paddedColumns,
                        input.paddedColumns);
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
            case Q8_0, F32, F16, BF16, IQ4_NL, IQ4_XS -> true;
            default -> false;
        };
    }

    @Override
    public void matmul(MatmulInput input, CpuWeight w, MemorySegment out, int tokens, int rowStart, int rowEnd,
                       ThreadScratch scratch) {
        if (w.columnMajor() && w.type() == DType.Q8_0) {
            Q8Products.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (w.columnMajor() && w.type() == DType.F32) {
            FloatProducts.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (w.columnMajor() && (w.type() == DType.F16 || w.type() == DType.BF16)) {
            HalfProducts.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (w.columnMajor() && Iq4Products.handles(w.type())) {
            Iq4Products.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (w.columnMajor()) {
            IntegerProducts.matmul(input, w, out, tokens, rowStart, rowEnd, scratch);
        } else if (tokens == 1 && RowProducts.hasRowKernel(w)) {
            RowProducts.matrixVector(input, w, out, 0, 1, rowStart, rowEnd, scratch);
        } else if (tokens > 1 && tokens <= ROW_KERNEL_TOKENS && RowProducts.hasTokensRowKernel(w)) {
            // Passes of nearly equal size: 5 tokens as 3 + 2, not 4 + 1.
            int passes = (tokens + TILE_TOKENS - 1) / TILE_TOKENS;
            for (int p = 0, t0 = 0; p < passes; p++) {
                int count = (tokens - t0) / (passes - p);
                RowProducts.matrixVector(input, w, out, t0, count, rowStart, rowEnd, scratch);
                t0 += count;
            }
        } else {
            TileProducts.matrixMatrix(input, w, out, tokens, rowStart, rowEnd, scratch);
        }
    }

    @Override
    public void embedRow(CpuWeight w, int row, MemorySegment out, long outIndex, ThreadScratch scratch) {
        if (w.columnMajor() && w.type() == DType.Q8_0) {
            Q8Products.decodeRow(w, row, out, outIndex);
            return;
        }
        if (w.columnMajor() && w.type() == DType.F32) {
            FloatProducts.decodeRow(w, row, out, outIndex);
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
        FloatDecoders.decodeRange(w, w.rowOffset(row), w.columns(), out, outIndex * Float.BYTES,
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

    @Override
    public void attention(AttentionArgs a, int itemStart, int itemEnd, ThreadScratch scratch) {
        VectorAttention.attention(a, itemStart, itemEnd, scratch);
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
