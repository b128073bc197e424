package dev.peregrine.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.ModelFormatException;
import dev.peregrine.spi.Activation;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.EnumSource;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Every kernel of both kernel sets against a plain double-precision computation on random data:
 * matmul against the reference dequantisation (then a float64 product) for every weight type, odd
 * sizes and token counts that leave remainders in every tile.
 */
class CpuKernelsTest {
    private final Arena arena = Arena.ofShared(); // worker threads read the weights
    private final Random random = new Random(42);
    private final List<CpuBackend> backends = new ArrayList<>();

    @AfterEach
    void close() {
        backends.forEach(CpuBackend::close);
        arena.close();
    }

    /** The kernel sets under test: the Vector API set and the scalar fallback. */
    static Stream<Arguments> kernelSets() {
        return Stream.of(
                Arguments.of("vector", (Supplier<Kernels>) VectorKernels::new),
                Arguments.of("scalar", (Supplier<Kernels>) ScalarKernels::new));
    }

    static Stream<Arguments> kernelSetsAndTypes() {
        return kernelSets().flatMap(k -> Stream.of(DType.values()).map(t -> Arguments.of(k.get()[0], k.get()[1], t)));
    }

    private CpuBackend backend(Supplier<Kernels> kernels) {
        CpuBackend b = new CpuBackend(2, kernels.get());
        backends.add(b);
        return b;
    }

    @ParameterizedTest(name = "{0}: {2}")
    @MethodSource("kernelSetsAndTypes")
    void matmulMatchesDequantisedDoubleProduct(String name, Supplier<Kernels> kernels, DType type) {
        CpuBackend backend = backend(kernels);
        // Quantised: odd numbers of blocks (a lone block, the 2-block loops' remainder); plain
        // floats: lengths that are not a multiple of any vector width.
        int b = type.blockSize();
        int[] columnCounts = type.isQuantized() ? new int[] {b, 3 * b, 5 * b, 67 * b} : new int[] {37, 257, 16, 1040};
        for (int columns : columnCounts) {
            // 3 outputs: fewer rows than a group (the column-major types pad it, IQ4_NL keeps the file's layout).
            for (int outputs : new int[] {3, 19, 70}) {
                Tensor t = tensor(type, columns, outputs);
                float[] w = Dequant.toFloat(t); // the reference dequantisation
                Weight weight = backend.upload(t);
                // Column-major Q8_0 (Q5_0 is kept as Q8_0), F16, BF16, IQ4_NL and IQ4_XS keep float
                // activations; the other column-major types quantise them.
                CpuWeight held = (CpuWeight) weight;
                boolean activationsQuantised = held.columnMajor() && !VectorKernels.floatColumns(held);
                for (int rows : new int[] {1, 2, 3, 7, 17}) {
                    float[] x = randoms(rows * columns);
                    Buffer out = backend.allocate((long) rows * outputs);
                    backend.matmul(out, buffer(backend, x), weight, rows);
                    float[] got = read(backend, out, rows * outputs);
                    for (int r = 0; r < rows; r++) {
                        for (int o = 0; o < outputs; o++) {
                            assertThat((double) got[r * outputs + o])
                                    .as("%s %s %d columns, %d rows, row %d out %d", name, type, columns, rows, r, o)
                                    .isCloseTo(dot(w, o * columns, x, r * columns, columns),
                                            within(tolerance(w, o * columns, x, r * columns, columns)
                                                    + (activationsQuantised ? quantisationError(w, o * columns, x, r * columns, columns) : 0)));
                        }
                    }
                }
            }
        }
    }

    /**
     * Column-major Q8_0 products ({@link Q8Products}) against their definition, computed
     * independently one row and token at a time: per block of 32 columns s = fma(q, x, s) over its
     * columns in order from 0, then acc = fma(s, d, acc), block after block, in floats (q the
     * stored value, d the block's scale), so the kernels' results must equal it bit
     * for bit, whatever the token count (passes of 6 over half a group, from 48 tokens on over its
     * chunks converted to floats, a last one of up to 4 over the whole group, short passes), across
     * the column chunks of those passes (2,080 columns: two whole chunks and a part) and however
     * the rows are split (ranges that start or end inside a group of {@link Q8Products#GROUP_ROWS},
     * several groups a call); rows outside a range keep what was there. Row 1's scales at the ends
     * of the halves the kernels convert. Q5_0 matrices, kept as Q8_0, the same way.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q5_0"})
    void q8ColumnProductsEqualTheirDefinitionBitForBit(DType type) {
        VectorKernels kernels = new VectorKernels();
        CpuBackend backend = backend(VectorKernels::new);
        int blockBytes = type.blockBytes();
        int g = Q8Products.GROUP_ROWS;
        for (int columns : new int[] {32, 96, 2080}) {
            int blocks = columns / 32;
            for (int outputs : new int[] {3, g, g + 1, 3 * g - 5}) {
                Tensor t = tensor(type, columns, outputs);
                MemorySegment data = t.data();
                for (int b = 0; b < blocks && outputs > 1; b++) {
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, (long) blockBytes * (blocks + b), HALF_EDGES[b % HALF_EDGES.length]);
                }
                float[] weights = Dequant.toFloat(t);
                // The stored values q: the same blocks dequantised with every scale 1.
                MemorySegment unitScales = arena.allocate(data.byteSize());
                unitScales.copyFrom(data);
                float[] scales = new float[outputs * blocks];
                for (int i = 0; i < scales.length; i++) {
                    scales[i] = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, (long) blockBytes * i));
                    unitScales.set(ValueLayout.JAVA_SHORT_UNALIGNED, (long) blockBytes * i, Float.floatToFloat16(1f));
                }
                float[] values = Dequant.toFloat(new Tensor("q", type, new long[] {columns, outputs}, unitScales));
                CpuWeight w = (CpuWeight) backend.upload(t);
                assertThat(w.type()).isEqualTo(DType.Q8_0);
                assertThat(w.columnMajor()).isTrue();
                assertThat(w.rowGroup()).isEqualTo(g);
                assertColumnProductsEqualTheirDefinition(kernels, backend, w, blockSums(values, scales, columns),
                        new int[] {1, 2, 4, 5, 8, 9, 11, 13, 17, 51, 60});
                MemorySegment row = arena.allocate(4L * columns);
                kernels.embedRow(w, outputs - 1, row, 0, new ThreadScratch());
                assertThat(row.toArray(ValueLayout.JAVA_FLOAT))
                        .isEqualTo(Arrays.copyOfRange(weights, (outputs - 1) * columns, outputs * columns));
            }
        }
    }

    /**
     * The column-major float products of {@code w} (dequantised: {@code weights}) against their
     * definition, bit for bit, for each token count: per (row, token) acc = fma(w, x, acc) over the
     * row's columns in order, in floats; through the kernels for ranges of rows that start and end
     * inside groups (rows outside a range keep what was there), and through the backend (rows split
     * across its two threads).
     */
    private void assertColumnProductsEqualTheirDefinition(VectorKernels kernels, CpuBackend backend, CpuWeight w,
                                                          float[] weights, int[] tokenCounts) {
        int columns = w.columns();
        assertColumnProductsEqualTheirDefinition(kernels, backend, w, (o, x, at) -> {
            float acc = 0;
            for (int c = 0; c < columns; c++) {
                acc = Math.fma(weights[o * columns + c], x[at + c], acc);
            }
            return acc;
        }, tokenCounts);
    }

    /** A column-major product's definition: output row {@code o} for the token whose values start at {@code x[at]}. */
    private interface ColumnDefinition {
        float product(int o, float[] x, int at);
    }

    /**
     * The products of the formats with a scale per block of 32 columns (Q8_0, Q5_0, IQ4_NL,
     * IQ4_XS): per block s = fma(q, x, s) over its columns in order from 0, then acc = fma(s, d,
     * acc), block after block; {@code values} the stored values q (rows of {@code columns}),
     * {@code scales} the blocks' d (rows of columns / 32).
     */
    private static ColumnDefinition blockSums(float[] values, float[] scales, int columns) {
        int blocks = columns / 32;
        return (o, x, at) -> {
            float acc = 0;
            for (int b = 0; b < blocks; b++) {
                float s = 0;
                for (int c = b * 32; c < (b + 1) * 32; c++) {
                    s = Math.fma(values[o * columns + c], x[at + c], s);
                }
                acc = Math.fma(s, scales[o * blocks + b], acc);
            }
            return acc;
        };
    }

    /**
     * The scale of each block of 32 values of an IQ4_NL or IQ4_XS matrix, read from the file's
     * blocks: IQ4_NL's d; IQ4_XS's d * (s - 32), s the sub-block's 6 bits (4 in scales_l, 2 in
     * scales_h).
     */
    private static float[] iq4Scales(MemorySegment data, DType type, int columns, int rows) {
        float[] scales = new float[rows * columns / 32];
        for (int i = 0; i < scales.length; i++) {
            if (type == DType.IQ4_NL) {
                scales[i] = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, 18L * i));
            } else {
                long superBlock = 136L * (i / 8);
                int sub = i % 8;
                float d = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, superBlock));
                int high = data.get(ValueLayout.JAVA_SHORT_UNALIGNED, superBlock + 2) >> 2 * sub & 3;
                int low = data.get(ValueLayout.JAVA_BYTE, superBlock + 4 + sub / 2) >> 4 * (sub % 2) & 0xF;
                scales[i] = d * ((low | high << 4) - 32);
            }
        }
        return scales;
    }

    private void assertColumnProductsEqualTheirDefinition(VectorKernels kernels, CpuBackend backend, CpuWeight w,
                                                          ColumnDefinition definition, int[] tokenCounts) {
        int columns = w.columns();
        int outputs = w.rows();
        int g = w.rowGroup();
        for (int tokens : tokenCounts) {
            float[] x = randoms(tokens * columns);
            float[] expected = new float[tokens * outputs];
            for (int r = 0; r < tokens; r++) {
                for (int o = 0; o < outputs; o++) {
                    expected[r * outputs + o] = definition.product(o, x, r * columns);
                }
            }
            MemorySegment xs = arena.allocate(4L * x.length);
            MemorySegment.copy(x, 0, xs, ValueLayout.JAVA_FLOAT, 0, x.length);
            int[][] ranges = {{0, outputs}, {1, outputs - 1}, {Math.min(g + 3, outputs - 1), outputs}, {0, 1}};
            for (int[] range : ranges) {
                MemorySegment out = arena.allocate(4L * tokens * outputs);
                out.fill((byte) 0x7F); // a NaN pattern: rows outside the range must keep it
                try (MatmulInput input = new MatmulInput()) {
                    kernels.prepareMatmul(input, new CpuWeight[] {w}, 1, xs, tokens);
                    kernels.matmul(input, w, out, tokens, range[0], range[1], new ThreadScratch());
                }
                for (int r = 0; r < tokens; r++) {
                    for (int o = 0; o < outputs; o++) {
                        int bits = Float.floatToRawIntBits(out.getAtIndex(ValueLayout.JAVA_FLOAT, (long) r * outputs + o));
                        boolean inside = o >= range[0] && o < range[1];
                        assertThat(bits).as("%s %d columns, %d rows, %d tokens, rows %s: token %d row %d", w.type(), columns,
                                        outputs, tokens, java.util.Arrays.toString(range), r, o)
                                .isEqualTo(inside ? Float.floatToRawIntBits(expected[r * outputs + o]) : 0x7F7F7F7F);
                    }
                }
            }
            Buffer out = backend.allocate((long) tokens * outputs);
            backend.matmul(out, buffer(backend, x), w, tokens);
            assertThat(read(backend, out, tokens * outputs)).isEqualTo(expected);
        }
    }


    /**
     * Column-major F32 products ({@link FloatProducts}), F16 and BF16 products ({@link HalfProducts})
     * and IQ4_NL and IQ4_XS products ({@link Iq4Products}) against their definition, computed
     * independently one row and token at a time: F32, F16 and BF16 acc = fma(w, x, acc) over the
     * row's columns in order, in floats, w the dequantised weight; IQ4 a block's sums before its scale, as Q8_0's ({@link #blockSums}), with
     * the grid values and scales read from the file's blocks; so the kernels' results must equal
     * it bit for bit, whatever the token count (F32, F16 and BF16: passes of 8 over half a group,
     * IQ4 passes of 6, a last pass of up to 4; short passes),
     * however the rows are split (ranges that start or end inside a group, several groups a call)
     * and across the column chunks the passes stream in turn (2,051 columns); rows outside a range
     * keep what was there. F16 and BF16: row 1 holds halves at the ends of the conversion.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16", "BF16", "IQ4_NL", "IQ4_XS"})
    void floatColumnProductsEqualTheirDefinitionBitForBit(DType type) {
        VectorKernels kernels = new VectorKernels();
        CpuBackend backend = backend(VectorKernels::new);
        int g = HalfProducts.GROUP_ROWS;
        int[] columnCounts = switch (type) {
            case IQ4_NL -> new int[] {32, 96, 2080};
            case IQ4_XS -> new int[] {256, 2304};
            default -> new int[] {37, 96, 2051};
        };
        for (int columns : columnCounts) {
            for (int outputs : new int[] {3, g, g + 1, 3 * g - 5}) {
                Tensor t = tensor(type, columns, outputs);
                for (int c = 0; c < columns && (type == DType.F16 || type == DType.BF16); c++) {
                    t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * (columns + c), HALF_EDGES[c % HALF_EDGES.length]);
                }
                float[] weights = Dequant.toFloat(t);
                CpuWeight w = (CpuWeight) backend.upload(t);
                assertThat(w.type()).isEqualTo(type);
                assertThat(w.columnMajor()).isTrue();
                assertThat(w.rowGroup()).isEqualTo(g);
                int[] tokenCounts = {1, 2, 3, 4, 5, 8, 9, 12, 13, 17};
                if (type.isQuantized()) {
                    float[] scales = iq4Scales(t.data(), type, columns, outputs);
                    float[] values = new float[weights.length];
                    for (int i = 0; i < values.length; i++) {
                        float d = scales[i / 32];
                        values[i] = d == 0 ? 0 : weights[i] / d; // exact: the weight is d times a grid value
                    }
                    assertColumnProductsEqualTheirDefinition(kernels, backend, w, blockSums(values, scales, columns),
                            tokenCounts);
                } else {
                    assertColumnProductsEqualTheirDefinition(kernels, backend, w, weights, tokenCounts);
                }
                MemorySegment row = arena.allocate(4L * columns);
                kernels.embedRow(w, 1, row, 0, new ThreadScratch());
                assertThat(row.toArray(ValueLayout.JAVA_FLOAT)).isEqualTo(Arrays.copyOfRange(weights, columns, 2 * columns));
            }
        }
    }

    /**
     * Every finite half converts exactly in the column-major products: a 64 x 1,024 matrix holding
     * each of the 65,536 bit patterns once, multiplied by the 1,024 one-hot rows, gives back each
     * weight (a zero's sign aside: the chains start from +0). Infinities and NaNs are replaced by
     * zeros: F16's are refused at load, and a BF16 one would make its row's every product NaN
     * (times the one-hot rows' zeros).
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F16", "BF16"})
    void everyHalfConvertsExactlyInTheColumnProducts(DType type) {
        int rows = 64;
        int columns = 1024;
        MemorySegment data = arena.allocate(2L * rows * columns);
        for (int h = 0; h < 65536; h++) {
            int exponent = type == DType.F16 ? 0x7C00 : 0x7F80;
            data.setAtIndex(ValueLayout.JAVA_SHORT_UNALIGNED, h, (h & exponent) == exponent ? 0 : (short) h);
        }
        Tensor t = new Tensor("all", type, new long[] {columns, rows}, data);
        float[] weights = Dequant.toFloat(t);
        CpuBackend backend = backend(VectorKernels::new);
        Weight w = backend.upload(t);
        float[] x = new float[columns * columns];
        for (int c = 0; c < columns; c++) {
            x[c * columns + c] = 1;
        }
        Buffer out = backend.allocate((long) columns * rows);
        backend.matmul(out, buffer(backend, x), w, columns);
        float[] got = read(backend, out, columns * rows);
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < columns; c++) {
                assertThat(Float.floatToRawIntBits(got[c * rows + r])).as("%s 0x%04x", type, r * columns + c)
                        .isEqualTo(Float.floatToRawIntBits(weights[r * columns + c] + 0f));
            }
        }
    }

    /**
     * Quantised, F32, F16 and BF16 rows kept as in the file ({@code peregrine.cpu.copyWeights=false})
     * take the row kernels on float activations (Q8_0: the tile kernel for one token, the 4-token
     * row kernel for 2-16; F32, F16 and BF16 the tile kernel), which copied matrices no longer reach:
     * against the dequantised float64 product, and each token's outputs the same bits alone as in
     * a batch.
     */
    @ParameterizedTest
    @EnumSource(DType.class)
    void rowsInTheFilesLayoutMatchTheReferenceAndAreBatchInvariant(DType type) {
        VectorKernels kernels = new VectorKernels();
        int columns = type.isQuantized() ? 3 * type.blockSize() + (type.blockSize() == 32 ? 4 * 32 : 0) : 172;
        int outputs = 13;
        Tensor t = tensor(type, columns, outputs);
        float[] w = Dequant.toFloat(t);
        CpuWeight inPlace = new CpuWeight("w", type, outputs, columns, t.data(), type.bytesFor(columns), 1,
                type.bytesFor(kernels.groupUnit(type)), false, null);
        ThreadScratch scratch = new ThreadScratch();
        for (int tokens : new int[] {1, 2, 3, 5, 17}) {
            float[] x = randoms(tokens * columns);
            MemorySegment xs = arena.allocate(4L * x.length);
            MemorySegment.copy(x, 0, xs, ValueLayout.JAVA_FLOAT, 0, x.length);
            MemorySegment out = arena.allocate(4L * tokens * outputs);
            try (MatmulInput input = new MatmulInput()) {
                kernels.prepareMatmul(input, new CpuWeight[] {inPlace}, 1, xs, tokens);
                kernels.matmul(input, inPlace, out, tokens, 0, outputs, scratch);
            }
            for (int r = 0; r < tokens; r++) {
                MemorySegment alone = arena.allocate(4L * outputs);
                try (MatmulInput input = new MatmulInput()) {
                    kernels.prepareMatmul(input, new CpuWeight[] {inPlace}, 1, xs.asSlice(4L * r * columns, 4L * columns), 1);
                    kernels.matmul(input, inPlace, alone, 1, 0, outputs, scratch);
                }
                for (int o = 0; o < outputs; o++) {
                    float got = out.getAtIndex(ValueLayout.JAVA_FLOAT, (long) r * outputs + o);
                    assertThat((double) got).as("%s %d tokens: token %d row %d", type, tokens, r, o)
                            .isCloseTo(dot(w, o * columns, x, r * columns, columns),
                                    within(tolerance(w, o * columns, x, r * columns, columns)));
                    assertThat(Float.floatToRawIntBits(alone.getAtIndex(ValueLayout.JAVA_FLOAT, o)))
                            .as("%s %d tokens: token %d row %d alone", type, tokens, r, o).isEqualTo(Float.floatToRawIntBits(got));
                }
            }
        }
    }

    /**
     * An infinite or NaN scale of a matrix kept as Q8_0, or of an IQ4_NL or IQ4_XS matrix (its
     * super-block's d), is refused at load, naming the tensor, row and block.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q8_0", "Q5_0", "IQ4_NL", "IQ4_XS"})
    void q8NonFiniteScalesAreRefusedAtLoad(DType type) {
        CpuBackend backend = backend(VectorKernels::new);
        Tensor t = tensor(type, 2 * type.blockSize(), 3);
        t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, (long) type.blockBytes() * 3, (short) 0x7C00);
        assertThatThrownBy(() -> backend.upload(t)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("w: " + type).hasMessageContaining("block 1 of row 1").hasMessageContaining("infinite");
    }

    /**
     * The integer Q4_0 kernels against their definition, computed independently: x quantised per
     * block of 32 (d = max|x| / 127 in floats, xq = x * (1 / d) rounded to the nearest integer),
     * the exact integer sums of (q - 8) * xq, and their sum times d_w * d_x in doubles. Only float
     * rounding may differ, which a wrongly placed nibble, scale or token would exceed by far.
     * Rows from less than a group to more than two (45: a group whose upper half is partly there),
     * every token count the kernels split.
     */
    @Test
    void q4IntegerProductsEqualTheirDefinition() {
        CpuBackend backend = backend(VectorKernels::new);
        int blockBytes = DType.Q4_0.blockBytes();
        for (int columns : new int[] {32, 96, 4096}) {
            for (int outputs : new int[] {3, 45, 64, 65, 130}) {
                Tensor t = tensor(DType.Q4_0, columns, outputs);
                // Row 0 at the extreme of the 16-bit sums: every q - 8 = -8, against activations
                // that quantise to 127 (below): -32,512.
                for (int b = 0; b < columns / 32; b++) {
                    for (int i = 2; i < blockBytes; i++) {
                        t.data().set(ValueLayout.JAVA_BYTE, (long) blockBytes * b + i, (byte) 0);
                    }
                }
                // Row 1's scales at the ends of the halves the kernels convert: subnormal, the
                // largest finite, the smallest normal, negative (the copy keeps them as halves).
                for (int b = 0; b < columns / 32; b++) {
                    long blockAt = (long) (columns / 32) * blockBytes + (long) blockBytes * b;
                    t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt, HALF_EDGES[b % HALF_EDGES.length]);
                }
                assertIntegerProducts(backend, t, columns, outputs, (x, r, o, terms) -> {
                    for (int b = 0; b < columns / 32; b++) {
                        int first = r * columns + 32 * b;
                        long blockAt = (long) o * (columns / 32) * blockBytes + (long) blockBytes * b;
                        float dw = Float.float16ToFloat(t.data().get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt));
                        long sum = 0;
                        for (int i = 0; i < 32; i++) {
                            int packed = t.data().get(ValueLayout.JAVA_BYTE, blockAt + 2 + (i & 15)) & 0xFF;
                            int q = (i < 16 ? packed & 15 : packed >>> 4) - 8;
                            sum += q * quantised(x, first, i);
                        }
                        terms.accept((double) sum * dw * blockScale(x, first));
                    }
                });
            }
        }
    }

    /**
     * The integer Q4_K and Q5_K kernels against their definition, computed independently: x
     * quantised as for Q4_0, then per sub-block of 32 the exact integer sums of q * xq and of xq,
     * and dx * (d * sc * sum(q * xq) - dmin * m * sum(xq)) in doubles. Row 0's 16-bit sums at their
     * lower extreme (every q = 0 against xq = 127: sum of (q - 8) * xq = -32,512), row 1's at the
     * upper (q = 15, Q5_K's q = 31: every fifth bit set), row 2's d and dmin at the ends of the
     * halves the kernels convert.
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q4_K", "Q5_K"})
    void q4kIntegerProductsEqualTheirDefinition(DType type) {
        CpuBackend backend = backend(VectorKernels::new);
        int blockBytes = type.blockBytes();
        boolean fiveBits = type == DType.Q5_K;
        for (int columns : new int[] {256, 768, 4096}) {
            int supers = columns / 256;
            for (int outputs : new int[] {3, 45, 64, 65, 130}) {
                Tensor t = tensor(type, columns, outputs);
                MemorySegment data = t.data();
                for (int s = 0; s < supers; s++) {
                    for (int i = 16; i < blockBytes; i++) {
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * s + i, (byte) 0);
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (supers + s) + i, (byte) 0xFF);
                    }
                    long blockAt = (long) blockBytes * (2 * supers + s);
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt, HALF_EDGES[s % HALF_EDGES.length]);
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 2, HALF_EDGES[(s + 2) % HALF_EDGES.length]);
                }
                assertIntegerProducts(backend, t, columns, outputs, (x, r, o, terms) -> {
                    for (int s = 0; s < supers; s++) {
                        long blockAt = (long) blockBytes * (o * supers + s);
                        double d = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt));
                        double dmin = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 2));
                        for (int j = 0; j < 8; j++) {
                            int first = r * columns + 256 * s + 32 * j;
                            long products = 0;
                            long sum = 0;
                            for (int i = 0; i < 32; i++) {
                                int packed = data.get(ValueLayout.JAVA_BYTE, blockAt + (fiveBits ? 48 : 16) + 32 * (j / 2) + i) & 0xFF;
                                int q = j % 2 == 0 ? packed & 15 : packed >>> 4;
                                if (fiveBits) {
                                    q += (data.get(ValueLayout.JAVA_BYTE, blockAt + 16 + i) >>> j & 1) * 16;
                                }
                                products += q * quantised(x, first, i);
                                sum += quantised(x, first, i);
                            }
                            double dx = blockScale(x, first);
                            terms.accept(d * Dequant.q4kScale(data, blockAt + 4, j) * products * dx);
                            terms.accept(-dmin * Dequant.q4kMin(data, blockAt + 4, j) * sum * dx);
                        }
                    }
                });
            }
        }
    }

    /**
     * The integer Q4_1 and Q5_1 kernels against their definition, computed independently: x
     * quantised as for Q4_0, then per block of 32 the exact integer sums of q * xq and of xq, and
     * dx * (d * sum(q * xq) + m * sum(xq)) in doubles. Row 0's stored values all 0, row 1's all at
     * their maximum (15, 31), row 2's d and m at the ends of the halves the kernels convert; rows of
     * 18 blocks end in a chunk of 2 (the kernels take 8 blocks at a time).
     */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q4_1", "Q5_1"})
    void q41IntegerProductsEqualTheirDefinition(DType type) {
        CpuBackend backend = backend(VectorKernels::new);
        int blockBytes = type.blockBytes();
        boolean fiveBits = type == DType.Q5_1;
        int nibblesAt = fiveBits ? 8 : 4;
        for (int columns : new int[] {32, 96, 576, 4096}) {
            int blocks = columns / 32;
            for (int outputs : new int[] {3, 45, 64, 65, 130}) {
                Tensor t = tensor(type, columns, outputs);
                MemorySegment data = t.data();
                for (int b = 0; b < blocks; b++) {
                    for (int i = 4; i < blockBytes; i++) {
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * b + i, (byte) 0);
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (blocks + b) + i, (byte) 0xFF);
                    }
                    long blockAt = (long) blockBytes * (2 * blocks + b);
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt, HALF_EDGES[b % HALF_EDGES.length]);
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 2, HALF_EDGES[(b + 3) % HALF_EDGES.length]);
                }
                assertIntegerProducts(backend, t, columns, outputs, (x, r, o, terms) -> {
                    for (int b = 0; b < blocks; b++) {
                        long blockAt = (long) blockBytes * (o * blocks + b);
                        double d = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt));
                        double m = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 2));
                        int qh = fiveBits ? data.get(ValueLayout.JAVA_INT_UNALIGNED, blockAt + 4) : 0;
                        int first = r * columns + 32 * b;
                        long products = 0;
                        long sum = 0;
                        for (int i = 0; i < 32; i++) {
                            int packed = data.get(ValueLayout.JAVA_BYTE, blockAt + nibblesAt + i % 16) & 0xFF;
                            int q = (i < 16 ? packed & 15 : packed >>> 4) + (qh >>> i & 1) * 16;
                            products += q * quantised(x, first, i);
                            sum += quantised(x, first, i);
                        }
                        double dx = blockScale(x, first);
                        terms.accept(d * products * dx);
                        terms.accept(m * sum * dx);
                    }
                });
            }
        }
    }

    /**
     * The integer Q3_K kernels against their definition, computed independently: x quantised as
     * for Q4_0, then per sub-block of 16 the exact integer sum of q * xq (q = the 2 low bits - 4
     * where the high bit is clear), and dx * d * (sc - 32) * that sum in doubles. Row 0's sums at
     * their lower extreme (every q = -4 against xq = 127), row 1's at the upper (q = 3), row 2's d
     * at the ends of the halves the kernels convert, row 3's scales at -32 and row 4's at 31.
     */
    @Test
    void q3kIntegerProductsEqualTheirDefinition() {
        CpuBackend backend = backend(VectorKernels::new);
        int blockBytes = DType.Q3_K.blockBytes();
        for (int columns : new int[] {256, 768, 4096}) {
            int supers = columns / 256;
            for (int outputs : new int[] {5, 64, 65, 130}) {
                Tensor t = tensor(DType.Q3_K, columns, outputs);
                MemorySegment data = t.data();
                for (int s = 0; s < supers; s++) {
                    for (int i = 0; i < 96; i++) {
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * s + i, (byte) 0);
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (supers + s) + i, (byte) 0xFF);
                    }
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, (long) blockBytes * (2 * supers + s) + 108,
                            HALF_EDGES[s % HALF_EDGES.length]);
                    for (int i = 96; i < 108; i++) {
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (3 * supers + s) + i, (byte) 0);
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (4 * supers + s) + i, (byte) 0xFF);
                    }
                }
                assertIntegerProducts(backend, t, columns, outputs, (x, r, o, terms) -> {
                    for (int s = 0; s < supers; s++) {
                        long blockAt = (long) blockBytes * (o * supers + s);
                        double d = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 108));
                        for (int j = 0; j < 16; j++) {
                            int first = r * columns + 256 * s + 32 * (j / 2);
                            long products = 0;
                            for (int i = 0; i < 16; i++) {
                                int v = 16 * j + i; // within the super-block
                                int low = data.get(ValueLayout.JAVA_BYTE, blockAt + 32 + 32 * (v / 128) + v % 32) >>> 2 * (v % 128 / 32) & 3;
                                boolean high = (data.get(ValueLayout.JAVA_BYTE, blockAt + v % 32) >>> (4 * (v / 128) + v % 128 / 32) & 1) != 0;
                                products += (low - (high ? 0 : 4)) * quantised(x, first, 16 * (j % 2) + i);
                            }
                            terms.accept(d * (Dequant.q3kScale(data, blockAt + 96, j) - 32) * products * blockScale(x, first));
                        }
                    }
                });
            }
        }
    }

    /**
     * The integer Q2_K kernels against their definition, computed independently: x quantised as
     * for Q4_0, then per sub-block of 16 the exact integer sums of l * xq and of xq, and dx * (d *
     * sc * sum(l * xq) - dmin * m * sum(xq)) in doubles. Row 0's values all 0, row 1's all 3, row
     * 2's d and dmin at the ends of the halves the kernels convert, row 3's scales and mins 0, row
     * 4's 15.
     */
    @Test
    void q2kIntegerProductsEqualTheirDefinition() {
        CpuBackend backend = backend(VectorKernels::new);
        int blockBytes = DType.Q2_K.blockBytes();
        for (int columns : new int[] {256, 768, 4096}) {
            int supers = columns / 256;
            for (int outputs : new int[] {5, 64, 65, 130}) {
                Tensor t = tensor(DType.Q2_K, columns, outputs);
                MemorySegment data = t.data();
                for (int s = 0; s < supers; s++) {
                    for (int i = 16; i < 80; i++) {
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * s + i, (byte) 0);
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (supers + s) + i, (byte) 0xFF);
                    }
                    long blockAt = (long) blockBytes * (2 * supers + s);
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 80, HALF_EDGES[s % HALF_EDGES.length]);
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 82, HALF_EDGES[(s + 2) % HALF_EDGES.length]);
                    for (int i = 0; i < 16; i++) {
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (3 * supers + s) + i, (byte) 0);
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (4 * supers + s) + i, (byte) 0xFF);
                    }
                }
                assertIntegerProducts(backend, t, columns, outputs, (x, r, o, terms) -> {
                    for (int s = 0; s < supers; s++) {
                        long blockAt = (long) blockBytes * (o * supers + s);
                        double d = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 80));
                        double dmin = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 82));
                        for (int j = 0; j < 16; j++) {
                            int first = r * columns + 256 * s + 32 * (j / 2);
                            long products = 0;
                            long sum = 0;
                            for (int i = 0; i < 16; i++) {
                                int v = 16 * j + i; // within the super-block
                                int low = data.get(ValueLayout.JAVA_BYTE, blockAt + 16 + 32 * (v / 128) + v % 32) >>> 2 * (v % 128 / 32) & 3;
                                long xq = quantised(x, first, 16 * (j % 2) + i);
                                products += low * xq;
                                sum += xq;
                            }
                            int packed = data.get(ValueLayout.JAVA_BYTE, blockAt + j) & 0xFF;
                            double dx = blockScale(x, first);
                            terms.accept(d * (packed & 15) * products * dx);
                            terms.accept(-dmin * (packed >>> 4) * sum * dx);
                        }
                    }
                });
            }
        }
    }

    /** An infinite or NaN Q3_K scale d is refused at load, naming the tensor, row and super-block. */
    @Test
    void q3kNonFiniteScalesAreRefusedAtLoad() {
        CpuBackend backend = backend(VectorKernels::new);
        Tensor t = tensor(DType.Q3_K, 512, 70);
        t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, (long) (67 * 2 + 1) * DType.Q3_K.blockBytes() + 108, (short) 0x7E00);
        assertThatThrownBy(() -> backend.upload(t)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining(t.name()).hasMessageContaining("Q3_K block 1 of row 67").hasMessageEndingWith("NaN scale");
    }

    /**
     * The integer Q6_K kernels against their definition, computed independently: x quantised as
     * for Q4_0, then per sub-block of 16 the exact integer sum of (q - 32) * xq, and dx * d * sc *
     * that sum in doubles. Row 0's sums at their lower extreme (every q = 0, against xq = 127:
     * -65,024 per sub-block, past 16 bits), row 1's at the upper (q = 63), row 2's d at the ends of
     * the halves the kernels convert, row 3's scales at -128 and 127.
     */
    @Test
    void q6kIntegerProductsEqualTheirDefinition() {
        CpuBackend backend = backend(VectorKernels::new);
        int blockBytes = DType.Q6_K.blockBytes();
        for (int columns : new int[] {256, 768, 4096}) {
            int supers = columns / 256;
            for (int outputs : new int[] {4, 45, 64, 65, 130}) {
                Tensor t = tensor(DType.Q6_K, columns, outputs);
                MemorySegment data = t.data();
                for (int s = 0; s < supers; s++) {
                    for (int i = 0; i < 192; i++) {
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * s + i, (byte) 0);
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (supers + s) + i, (byte) 0xFF);
                    }
                    data.set(ValueLayout.JAVA_SHORT_UNALIGNED, (long) blockBytes * (2 * supers + s) + 208, HALF_EDGES[s % HALF_EDGES.length]);
                    for (int j = 0; j < 16; j++) {
                        data.set(ValueLayout.JAVA_BYTE, (long) blockBytes * (3 * supers + s) + 192 + j, (byte) (j % 2 == 0 ? -128 : 127));
                    }
                }
                assertIntegerProducts(backend, t, columns, outputs, (x, r, o, terms) -> {
                    for (int s = 0; s < supers; s++) {
                        long blockAt = (long) blockBytes * (o * supers + s);
                        double d = Float.float16ToFloat(data.get(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 208));
                        for (int j = 0; j < 16; j++) {
                            int first = r * columns + 256 * s + 16 * j;
                            int block = r * columns + 256 * s + 32 * (j / 2);
                            long sum = 0;
                            for (int i = 0; i < 16; i++) {
                                int v = 16 * j + i; // the value's index in the super-block (Dequant's bit layout)
                                int h = v / 128;
                                int k = v % 128 / 32;
                                int l = v % 32;
                                int low = data.get(ValueLayout.JAVA_BYTE, blockAt + 64 * h + l + 32 * (k % 2)) & 0xFF;
                                int high = data.get(ValueLayout.JAVA_BYTE, blockAt + 128 + 32 * h + l) & 0xFF;
                                int q = ((k < 2 ? low : low >>> 4) & 0x0F) | ((high >>> (2 * k)) & 3) << 4;
                                sum += (q - 32) * quantised(x, block, 16 * (j % 2) + i);
                            }
                            terms.accept(d * data.get(ValueLayout.JAVA_BYTE, blockAt + 192 + j) * sum * blockScale(x, block));
                        }
                    }
                });
            }
        }
    }

    /** Halves at the ends of what the kernels convert: subnormal, the largest finite, the smallest normal, negative. */
    private static final short[] HALF_EDGES = {0x0001, (short) 0x83FF, 0x7BFF, 0x0400, (short) 0xFBFF};

    /** An integer product's definition for token r and output row o: passes each of its terms, in doubles, to {@code terms}. */
    private interface IntegerDefinition {
        void terms(float[] x, int r, int o, java.util.function.DoubleConsumer terms);
    }

    /**
     * Uploads {@code t} (column-major integer products expected), multiplies it by 1, 2, 5 and 20
     * tokens of random activations (the first block all 127 once quantised, one value 0, the last
     * block zeros) and checks every output against the sum of its definition's terms, within float
     * rounding of the sum of their magnitudes.
     */
    private void assertIntegerProducts(CpuBackend backend, Tensor t, int columns, int outputs, IntegerDefinition definition) {
        Weight weight = backend.upload(t);
        assertThat(((CpuWeight) weight).columnMajor()).isTrue();
        for (int tokens : new int[] {1, 2, 5, 20}) {
            float[] x = randoms(tokens * columns);
            java.util.Arrays.fill(x, 0, 32, 1.5f); // all 127 once quantised
            x[32 % columns] = 0; // a block with a zero among its values, and one of zeros only
            java.util.Arrays.fill(x, x.length - 32, x.length, 0f);
            Buffer out = backend.allocate((long) tokens * outputs);
            backend.matmul(out, buffer(backend, x), weight, tokens);
            float[] got = read(backend, out, tokens * outputs);
            for (int r = 0; r < tokens; r++) {
                for (int o = 0; o < outputs; o++) {
                    double[] sums = new double[2];
                    definition.terms(x, r, o, term -> {
                        sums[0] += term;
                        sums[1] += Math.abs(term);
                    });
                    assertThat((double) got[r * outputs + o])
                            .as("%s %d columns, %d rows, %d tokens: token %d row %d", t.type(), columns, outputs, tokens, r, o)
                            .isCloseTo(sums[0], within(1e-5 * sums[1] + 1e-6));
                }
            }
        }
    }

    /** The step d of the block of 32 activations from {@code x[first]} quantised to 8 bits: max |x| / 127, in floats. */
    private static float blockScale(float[] x, int first) {
        float max = 0;
        for (int i = 0; i < 32; i++) {
            max = Math.max(max, Math.abs(x[first + i]));
        }
        return max / 127f;
    }

    /** Value i of the block of 32 from {@code x[first]} quantised to 8 bits: x * (1 / d) rounded to the nearest integer. */
    private static long quantised(float[] x, int first, int i) {
        float d = blockScale(x, first);
        float inverse = d != 0 ? 1f / d : 0f;
        return (long) Math.rint(x[first + i] * inverse);
    }

    /** An infinite or NaN Q6_K scale d is refused at load, naming the tensor, row and super-block. */
    @Test
    void q6kNonFiniteScalesAreRefusedAtLoad() {
        CpuBackend backend = backend(VectorKernels::new);
        int columns = 512;
        for (short scale : new short[] {0x7C00, (short) 0xFC00, 0x7E00}) {
            Tensor t = tensor(DType.Q6_K, columns, 70);
            long blockAt = (long) 67 * (columns / 256) * DType.Q6_K.blockBytes() + DType.Q6_K.blockBytes();
            t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + 208, scale);
            assertThatThrownBy(() -> backend.upload(t)).isInstanceOf(ModelFormatException.class)
                    .hasMessageContaining(t.name()).hasMessageContaining("Q6_K block 1 of row 67")
                    .hasMessageEndingWith(scale == 0x7E00 ? "NaN scale" : "infinite scale");
        }
    }

    /**
     * An F16 matrix holding an infinity or a NaN is refused at load (the row kernels convert only
     * finite halves), naming the tensor, row and column; one at any of the 4 places of a 64-bit
     * word, and in the columns past the last whole word.
     */
    @Test
    void f16NonFiniteValuesAreRefusedAtLoad() {
        CpuBackend backend = backend(VectorKernels::new);
        int columns = 38;
        for (int column : new int[] {0, 5, 6, 7, 36, 37}) {
            for (short half : new short[] {0x7C00, (short) 0xFC00, 0x7E01}) {
                Tensor t = tensor(DType.F16, columns, 9);
                t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * (6 * columns + column), half);
                assertThatThrownBy(() -> backend.upload(t)).isInstanceOf(ModelFormatException.class)
                        .hasMessageContaining(t.name()).hasMessageContaining("row 6, column " + column)
                        .hasMessageContaining(half == 0x7E01 ? "NaN" : "infinite");
            }
        }
        // The largest finite halves load.
        Tensor t = tensor(DType.F16, columns, 9);
        t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * 7, (short) 0x7BFF);
        t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, 2L * 8, (short) 0xFBFF);
        assertThat(((CpuWeight) backend.upload(t)).columnMajor()).isTrue();
    }

    /** An infinite or NaN Q4_K or Q5_K scale or min scale is refused at load, naming the tensor, row and super-block. */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"Q4_K", "Q5_K"})
    void q4kNonFiniteScalesAreRefusedAtLoad(DType type) {
        CpuBackend backend = backend(VectorKernels::new);
        int columns = 512;
        for (int field : new int[] {0, 2}) {
            for (short scale : new short[] {0x7C00, (short) 0xFC00, 0x7E00}) {
                Tensor t = tensor(type, columns, 70);
                long blockAt = (long) 67 * (columns / 256) * type.blockBytes() + type.blockBytes();
                t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt + field, scale);
                assertThatThrownBy(() -> backend.upload(t)).isInstanceOf(ModelFormatException.class)
                        .hasMessageContaining(t.name()).hasMessageContaining(type + " block 1 of row 67")
                        .hasMessageEndingWith((scale == 0x7E00 ? "NaN " : "infinite ") + (field == 0 ? "scale" : "min scale"));
            }
        }
    }

    /** An infinite or NaN Q4_0 scale is refused at load, naming the tensor, row and block. */
    @Test
    void q4NonFiniteScalesAreRefusedAtLoad() {
        CpuBackend backend = backend(VectorKernels::new);
        int columns = 64;
        for (short scale : new short[] {0x7C00, (short) 0xFC00, 0x7E00}) {
            Tensor t = tensor(DType.Q4_0, columns, 70);
            long blockAt = (long) 67 * (columns / 32) * DType.Q4_0.blockBytes() + DType.Q4_0.blockBytes();
            t.data().set(ValueLayout.JAVA_SHORT_UNALIGNED, blockAt, scale);
            assertThatThrownBy(() -> backend.upload(t)).isInstanceOf(ModelFormatException.class)
                    .hasMessageContaining(t.name()).hasMessageContaining("block 1 of row 67")
                    .hasMessageContaining(scale == 0x7E00 ? "NaN" : "infinite");
        }
    }

    /**
     * Activations so small (subnormal) that 1 / (max|x| / 127) overflows a float: the product stays
     * finite and within the 8-bit rounding's bound of the float64 one, as for any other block, and
     * the block's quantised values are 0 (not the -1 an infinite inverse would give).
     */
    @Test
    void q4IntegerProductsOfSubnormalActivationsStayFinite() {
        CpuBackend backend = backend(VectorKernels::new);
        int columns = 96;
        int outputs = 70;
        Tensor t = tensor(DType.Q4_0, columns, outputs);
        float[] w = Dequant.toFloat(t);
        Weight weight = backend.upload(t);
        float[] x = randoms(columns);
        for (int i = 32; i < 64; i++) {
            x[i] *= 1e-40f; // the middle block subnormal
        }
        Buffer out = backend.allocate(outputs);
        backend.matmul(out, buffer(backend, x), weight, 1);
        float[] got = read(backend, out, outputs);
        try (MatmulInput input = new MatmulInput()) {
            MemorySegment xs = arena.allocate(4L * columns);
            MemorySegment.copy(x, 0, xs, ValueLayout.JAVA_FLOAT, 0, columns);
            new VectorKernels().prepareMatmul(input, new CpuWeight[] {(CpuWeight) weight}, 1, xs, 1);
            for (int i = 32; i < 64; i++) {
                assertThat(input.quantised.get(ValueLayout.JAVA_SHORT, 2L * i)).as("xq[%d]", i).isZero();
            }
        }
        for (int o = 0; o < outputs; o++) {
            assertThat(Float.isFinite(got[o])).as("row %d", o).isTrue();
            assertThat((double) got[o]).as("row %d", o).isCloseTo(dot(w, o * columns, x, 0, columns),
                    within(tolerance(w, o * columns, x, 0, columns) + quantisationError(w, o * columns, x, 0, columns)));
        }
    }

    /** The float64 product of a weight row and an activation row. */
    private static double dot(float[] w, int wAt, float[] x, int xAt, int n) {
        double sum = 0;
        for (int i = 0; i < n; i++) {
            sum += (double) w[wAt + i] * x[xAt + i];
        }
        return sum;
    }

    /** Float rounding, relative to the sum of the products' magnitudes. */
    private static double tolerance(float[] w, int wAt, float[] x, int xAt, int n) {
        double magnitudes = 0;
        for (int i = 0; i < n; i++) {
            magnitudes += Math.abs((double) w[wAt + i] * x[xAt + i]);
        }
        return 1e-5 * magnitudes + 1e-6;
    }

    /**
     * The most that quantising x to 8 bits per block of 32 (as the integer Q4_0 kernels do) can
     * move the product: each x moves by at most half its block's step max|x| / 127.
     */
    private static double quantisationError(float[] w, int wAt, float[] x, int xAt, int n) {
        double error = 0;
        for (int b = 0; b < n; b += 32) {
            double max = 0;
            double weights = 0;
            for (int i = b; i < b + 32; i++) {
                max = Math.max(max, Math.abs(x[xAt + i]));
                weights += Math.abs(w[wAt + i]);
            }
            error += weights * max / 127 / 2;
        }
        return error * (1 + 1e-5);
    }

    /**
     * Continuous batching, preemption and speculative verification need a token's outputs to be
     * the same bits whatever else shares its batch: one token alone (the decode path) must equal the
     * same token at any position of a batch (the tile path), for every weight type.
     */
    @ParameterizedTest(name = "{0}: {2}")
    @MethodSource("kernelSetsAndTypes")
    void aTokensProductDoesNotDependOnItsBatch(String name, Supplier<Kernels> kernels, DType type) {
        CpuBackend backend = backend(kernels);
        int b = type.blockSize();
        int[] columnCounts = type.isQuantized() ? new int[] {2 * b, 17 * b, 65 * b} : new int[] {37, 172, 1040, 2051};
        for (int columns : columnCounts) {
          // 2-16 tokens take the row kernels (where the type has them) in passes of up to 4
          // tokens, 17 the tile kernel.
          for (int batch : new int[] {2, 5, 11, 17}) {
            int outputs = 67;
            Weight weight = backend.upload(tensor(type, columns, outputs));
            float[] x = randoms(batch * columns);
            Buffer out = backend.allocate((long) batch * outputs);
            backend.matmul(out, buffer(backend, x), weight, batch);
            float[] together = read(backend, out, batch * outputs);
            for (int t = 0; t < batch; t++) {
                float[] one = java.util.Arrays.copyOfRange(x, t * columns, (t + 1) * columns);
                Buffer single = backend.allocate(outputs);
                backend.matmul(single, buffer(backend, one), weight, 1);
                float[] alone = read(backend, single, outputs);
                for (int o = 0; o < outputs; o++) {
                    assertThat(Float.floatToRawIntBits(alone[o]))
                            .as("%s %s %d columns, token %d of %d, output %d", name, type, columns, t, batch, o)
                            .isEqualTo(Float.floatToRawIntBits(together[t * outputs + o]));
                }
            }
          }
        }
    }

    /**
     * A product whose whole row groups would leave threads unevenly busy is split by tokens as well
     * (CpuBackend.tokenSlices: 9 groups on 2 or 4 threads, 10 on 3): every token's outputs are still
     * the bits it gets alone, at every slice boundary, for single and grouped products.
     */
    @ParameterizedTest(name = "{0}: {2}")
    @MethodSource("kernelSetsAndTypes")
    void aProductSplitByTokensGivesEachTokenItsOwnOutputs(String name, Supplier<Kernels> kernels, DType type) {
        int columns = type.isQuantized() ? 2 * Math.max(type.blockSize(), 32) : 72;
        for (int threads : new int[] {2, 3, 4}) {
            CpuBackend backend = new CpuBackend(threads, kernels.get());
            backends.add(backend);
            Weight probe = backend.upload(tensor(type, columns, 1));
            int unit = ((CpuWeight) probe).columnMajor() ? ((CpuWeight) probe).rowGroup() : 16;
            // 9 units (2 and 4 threads: 2 and 4 slices of 97 tokens) or 10 (3 threads: 3 slices),
            // the last one partly filled: a weight alone, and a grouped product of a 5-row weight
            // (its own unit) and one a unit shorter.
            int units = threads == 3 ? 10 : 9;
            Weight[] weights = {backend.upload(tensor(type, columns, units * unit - 10)),
                    backend.upload(tensor(type, columns, 5)), backend.upload(tensor(type, columns, (units - 1) * unit - 10))};
            for (int tokens : new int[] {60, 97}) {
                float[] x = randoms(tokens * columns);
                Buffer in = buffer(backend, x);
                float[][] got = new float[weights.length][];
                Buffer out = backend.allocate((long) tokens * weights[0].rows());
                backend.matmul(out, in, weights[0], tokens);
                got[0] = read(backend, out, tokens * weights[0].rows());
                Buffer[] grouped = {backend.allocate((long) tokens * 5), backend.allocate((long) tokens * weights[2].rows())};
                backend.matmuls(grouped, in, new Weight[] {weights[1], weights[2]}, tokens);
                got[1] = read(backend, grouped[0], tokens * 5);
                got[2] = read(backend, grouped[1], tokens * weights[2].rows());
                for (int t = 0; t < tokens; t++) {
                    Buffer one = buffer(backend, java.util.Arrays.copyOfRange(x, t * columns, (t + 1) * columns));
                    for (int k = 0; k < weights.length; k++) {
                        int outputs = weights[k].rows();
                        Buffer single = backend.allocate(outputs);
                        backend.matmul(single, one, weights[k], 1);
                        float[] alone = read(backend, single, outputs);
                        for (int o = 0; o < outputs; o++) {
                            assertThat(Float.floatToRawIntBits(got[k][t * outputs + o]))
                                    .as("%s %s, %d threads, weight %d (%s), token %d of %d, output %d", name, type,
                                            threads, k, k == 0 ? "alone" : "grouped", t, tokens, o)
                                    .isEqualTo(Float.floatToRawIntBits(alone[o]));
                        }
                    }
                }
            }
        }
    }

    /** A grouped product (one dispatch) gives each weight's outputs exactly as its own matmul does. */
    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void groupedMatmulsEqualSeparateOnes(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        int columns = 512;
        // Q4_0 reads activations quantised to 8 bits, the others floats: the input is prepared for both.
        DType[] types = {DType.Q4_K, DType.F16, DType.Q4_0, DType.Q8_0};
        int[] outputs = {37, 130, 70, 9};
        Weight[] weights = new Weight[types.length];
        for (int i = 0; i < types.length; i++) {
            weights[i] = backend.upload(tensor(types[i], columns, outputs[i]));
        }
        for (int tokens : new int[] {1, 6}) {
            Buffer x = buffer(backend, randoms(tokens * columns));
            Buffer[] grouped = new Buffer[types.length];
            for (int i = 0; i < types.length; i++) {
                grouped[i] = backend.allocate((long) tokens * outputs[i]);
            }
            backend.matmuls(grouped, x, weights, tokens);
            for (int i = 0; i < types.length; i++) {
                Buffer alone = backend.allocate((long) tokens * outputs[i]);
                backend.matmul(alone, x, weights[i], tokens);
                float[] want = read(backend, alone, tokens * outputs[i]);
                float[] got = read(backend, grouped[i], tokens * outputs[i]);
                for (int j = 0; j < want.length; j++) {
                    assertThat(Float.floatToRawIntBits(got[j])).as("%s %s tokens %d value %d", name, types[i], tokens, j)
                            .isEqualTo(Float.floatToRawIntBits(want[j]));
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void gatedActivationOfARowDoesNotDependOnItsBatch(String name, Supplier<Kernels> kernels) {
        for (Activation activation : Activation.values()) {
            CpuBackend backend = backend(kernels);
            int width = 172; // stories260K's hidden size: rows start at every offset modulo the vector width
            int batch = 200;
            float[] g = randoms(batch * width);
            float[] u = randoms(batch * width);
            Buffer gb = buffer(backend, g);
            backend.gatedActivation(gb, buffer(backend, u), (long) batch * width, activation);
            float[] together = read(backend, gb, batch * width);
            for (int t = 0; t < batch; t += 7) {
                Buffer one = buffer(backend, java.util.Arrays.copyOfRange(g, t * width, (t + 1) * width));
                backend.gatedActivation(one, buffer(backend, java.util.Arrays.copyOfRange(u, t * width, (t + 1) * width)), width,
                        activation);
                float[] alone = read(backend, one, width);
                for (int i = 0; i < width; i++) {
                    assertThat(Float.floatToRawIntBits(alone[i])).as("%s row %d value %d", activation, t, i)
                            .isEqualTo(Float.floatToRawIntBits(together[t * width + i]));
                }
            }
        }
    }

    @org.junit.jupiter.api.Test
    void vectorExpIsWithinTwoUlpOfMathExp() {
        float[] xs = new float[VectorKernels.FL];
        float[] got = new float[VectorKernels.FL];
        Random r = new Random(7);
        for (int trial = 0; trial < 20_000; trial++) {
            for (int i = 0; i < xs.length; i++) {
                xs[i] = trial == 0 ? i - 8f : (float) (r.nextDouble() * 174 - 87);
            }
            VectorExp.vectorExpForTest(xs, got);
            for (int i = 0; i < xs.length; i++) {
                float want = (float) Math.exp(xs[i]);
                assertThat(Math.abs(got[i] - want)).as("exp(%s)", xs[i]).isLessThanOrEqualTo(2 * Math.ulp(want));
                // The scalar tail's exp must give the vector lanes' bits exactly.
                assertThat(Float.floatToRawIntBits(VectorExp.expScalar(xs[i])))
                        .as("scalar exp(%s)", xs[i]).isEqualTo(Float.floatToRawIntBits(got[i]));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void quantisedRowsThatCrossBlockBoundariesAreReadFlat(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        // 4 rows of 40 values = 160 values = 5 Q8_0 blocks; rows 1..3 start inside a block.
        int columns = 40;
        int outputs = 4;
        float[] values = randoms(columns * outputs);
        MemorySegment data = arena.allocate(DType.Q8_0.bytesFor(values.length));
        Quantize.fromFloat(DType.Q8_0, values, 0, values.length, data, 0);
        Tensor t = new Tensor("flat", DType.Q8_0, new long[] {columns, outputs}, data);
        float[] flat = Dequant.toFloat(t);
        Weight weight = backend.upload(t);
        for (int rows : new int[] {1, 3}) {
            float[] x = randoms(rows * columns);
            Buffer out = backend.allocate((long) rows * outputs);
            backend.matmul(out, buffer(backend, x), weight, rows);
            float[] got = read(backend, out, rows * outputs);
            for (int r = 0; r < rows; r++) {
                for (int o = 0; o < outputs; o++) {
                    assertThat((double) got[r * outputs + o]).isCloseTo(dot(flat, o * columns, x, r * columns, columns),
                            within(1e-4));
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void rmsNormMatchesDefinition(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        for (int width : new int[] {29, 64, 200}) {
            int rows = 3;
            float[] x = randoms(rows * width);
            float[] g = randoms(width);
            Buffer out = backend.allocate((long) rows * width);
            backend.rmsNorm(out, buffer(backend, x), backend.upload(f32Tensor("g", g, width, 1)), rows, width, 1e-5f);
            float[] got = read(backend, out, rows * width);
            for (int r = 0; r < rows; r++) {
                double ss = 0;
                for (int i = 0; i < width; i++) {
                    ss += (double) x[r * width + i] * x[r * width + i];
                }
                double inv = 1 / Math.sqrt(ss / width + 1e-5);
                for (int i = 0; i < width; i++) {
                    assertThat((double) got[r * width + i]).isCloseTo(x[r * width + i] * inv * g[i], within(1e-5));
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void ropeRotatesAdjacentPairsByPositionTimesFrequency(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        // Partial rotation shorter than a vector, and a full one longer than a vector with a remainder.
        int[][] shapes = {{2, 8, 6}, {3, 72, 72}, {2, 64, 40}};
        for (int[] shape : shapes) {
            int heads = shape[0];
            int headDim = shape[1];
            int ropeDims = shape[2];
            float[] freqs = new float[ropeDims / 2];
            for (int i = 0; i < freqs.length; i++) {
                freqs[i] = (float) Math.pow(10000, -2.0 * i / ropeDims);
            }
            BatchLayout layout = new BatchLayout(16);
            int s = layout.addSequence(new int[] {0}, 1);
            layout.addToken(s, 0, 3, false);
            layout.addToken(s, 0, 7, false);
            float[] x = randoms(2 * heads * headDim);
            Buffer cs = backend.allocate(2L * ropeDims);
            backend.ropeAngles(cs, freqs, layout);
            Buffer xb = buffer(backend, x);
            backend.rope(xb, cs, 2, heads, headDim, ropeDims);
            float[] got = read(backend, xb, x.length);
            for (int r = 0; r < 2; r++) {
                for (int h = 0; h < heads; h++) {
                    int base = (r * heads + h) * headDim;
                    for (int i = 0; i < headDim / 2; i++) {
                        double a = i < ropeDims / 2 ? layout.positions[r] * (double) freqs[i] : 0;
                        double x0 = x[base + 2 * i];
                        double x1 = x[base + 2 * i + 1];
                        assertThat((double) got[base + 2 * i]).as("%s %s", name, java.util.Arrays.toString(shape))
                                .isCloseTo(x0 * Math.cos(a) - x1 * Math.sin(a), within(1e-5));
                        assertThat((double) got[base + 2 * i + 1]).isCloseTo(x0 * Math.sin(a) + x1 * Math.cos(a),
                                within(1e-5));
                    }
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void pagedAttentionMatchesContiguousSoftmaxAttention(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        // Full attention; a sliding window shorter than some rows' history (and one of a single
        // position); soft-capped scores (Gemma 2), alone and with a window. F32 and F16 caches.
        // Blocks of 16 (the models' size: whole vectors of positions), and of 4 (narrower than a vector).
        int[][] windowAndCap = {{0, 0}, {7, 0}, {1, 0}, {0, 2}, {20, 3}};
        for (int blockSize : new int[] {16, 4})
        for (DType cacheType : new DType[] {DType.F32, DType.F16})
        for (int[] variant : windowAndCap) {
            int window = variant[0];
            float softcap = variant[1];
            // Heads shorter than a vector (4 and 8: the tiny real models), and one of several vectors plus a remainder.
            // 32, 64, 128: exactly 4 or 8 vectors at 256 or 512 bits (written-out score chains).
            for (int headDim : new int[] {4, 5, 8, 32, 64, 72, 128})
            // Groups of 2 heads; and one group of 10, which runs of at most 4 heads split, and which
            // single heads' slices cut anywhere (one query row: too few groups to slice by group).
            for (int[] headCounts : new int[][] {{4, 2}, {10, 1}}) {
                int heads = headCounts[0];
                int kvHeads = headCounts[1];
                int length = 41;
                int kvWidth = kvHeads * headDim;
                // The sequence's blocks are scattered over the cache.
                int[] table = {5, 1, 3, 0, 7, 2, 9, 4, 6, 8, 11};
                BatchLayout layout = new BatchLayout(blockSize);
                int s = layout.addSequence(table, table.length);
                float[][] keys = new float[length][];
                float[][] values = new float[length][];
                Buffer kc = backend.allocate(12L * blockSize * kvWidth, cacheType);
                Buffer vc = backend.allocate(12L * blockSize * kvWidth, cacheType);
                // Stored as the model stores them, one step of every position.
                BatchLayout fill = new BatchLayout(blockSize);
                fill.addSequence(table, table.length);
                float[] kRows = new float[length * kvWidth];
                float[] vRows = new float[length * kvWidth];
                for (int p = 0; p < length; p++) {
                    keys[p] = randoms(kvWidth);
                    values[p] = randoms(kvWidth);
                    System.arraycopy(keys[p], 0, kRows, p * kvWidth, kvWidth);
                    System.arraycopy(values[p], 0, vRows, p * kvWidth, kvWidth);
                    fill.addToken(0, 0, p, false);
                    if (cacheType == DType.F16) { // what the reference attends to: the nearest halves
                        keys[p] = nearestHalves(keys[p]);
                        values[p] = nearestHalves(values[p]);
                    }
                }
                backend.storeKv(kc, vc, buffer(backend, kRows), buffer(backend, vRows), kvHeads, headDim, fill);
                // Query rows at positions 4, 10 and 40 (short, and longer than a vector of scores).
                int[] positions = kvHeads == 1 ? new int[] {40} : new int[] {4, 10, 40};
                for (int pos : positions) {
                    layout.addToken(s, 0, pos, false);
                }
                int rows = positions.length;
                float[] q = randoms(rows * heads * headDim);
                Buffer out = backend.allocate((long) rows * heads * headDim);
                float scale = (float) (1 / Math.sqrt(headDim));
                backend.attention(out, buffer(backend, q), kc, vc, layout, heads, kvHeads, headDim, scale, window, softcap);
                float[] got = read(backend, out, q.length);
                for (int r = 0; r < rows; r++) {
                    int pos = layout.positions[r];
                    int first = window > 0 ? Math.max(0, pos - window + 1) : 0;
                    for (int h = 0; h < heads; h++) {
                        int kvh = h / (heads / kvHeads);
                        double[] w = new double[pos + 1];
                        double max = Double.NEGATIVE_INFINITY;
                        for (int p = first; p <= pos; p++) {
                            double dot = 0;
                            for (int i = 0; i < headDim; i++) {
                                dot += (double) q[(r * heads + h) * headDim + i] * keys[p][kvh * headDim + i];
                            }
                            w[p] = softcap > 0 ? softcap * Math.tanh(dot * scale / softcap) : dot * scale;
                            max = Math.max(max, w[p]);
                        }
                        double sum = 0;
                        for (int p = first; p <= pos; p++) {
                            w[p] = Math.exp(w[p] - max);
                            sum += w[p];
                        }
                        for (int i = 0; i < headDim; i++) {
                            double expected = 0;
                            for (int p = first; p <= pos; p++) {
                                expected += w[p] / sum * values[p][kvh * headDim + i];
                            }
                            assertThat((double) got[(r * heads + h) * headDim + i])
                                    .as("%s %s cache, blocks of %d, headDim %d heads %d/%d window %d softcap %s", name,
                                            cacheType, blockSize, headDim, heads, kvHeads, window, softcap)
                                    .isCloseTo(expected, within(1e-5));
                        }
                    }
                }
            }
        }
    }

    /**
     * The caches hold a plane per KV head: a slot whose block is not wholly inside the cache is
     * refused (its keys would otherwise land in the next head's plane), as are caches of unlike
     * sizes, rather than written.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void storeKvRefusesSlotsOutsideTheCache(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        int kvHeads = 2;
        int headDim = 4;
        Buffer kc = backend.allocate(2L * 16 * kvHeads * headDim); // 2 blocks of 16 slots
        Buffer vc = backend.allocate(2L * 16 * kvHeads * headDim);
        Buffer row = buffer(backend, randoms(kvHeads * headDim));
        BatchLayout inside = new BatchLayout(16);
        inside.addToken(inside.addSequence(new int[] {1}, 1), 0, 15, false); // slot 31, the last
        backend.storeKv(kc, vc, row, row, kvHeads, headDim, inside);
        BatchLayout outside = new BatchLayout(16);
        outside.addToken(outside.addSequence(new int[] {2}, 1), 0, 0, false); // slot 32
        assertThatThrownBy(() -> backend.storeKv(kc, vc, row, row, kvHeads, headDim, outside))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("outside a cache of 32 slots");
        Buffer shorter = backend.allocate(16L * kvHeads * headDim);
        assertThatThrownBy(() -> backend.storeKv(kc, shorter, row, row, kvHeads, headDim, inside))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("must be alike");
    }

    /**
     * A prompt chunk's rows (consecutive positions of one sequence) attending in one call, split
     * over the threads' slices: each row's output must be bit for bit what it is alone
     * (speculative verification and recomputation after preemption rely on it). F32 and F16
     * caches; groups of 3 heads (several rows' heads taken together), of 8 (one row's at a time), of
     * 10 (a row's heads in two calls) and of 2 with a remainder head size; one KV head per head (8
     * rows together), with heads of 32 values and narrower than a vector; with and without a
     * window; chunks starting at 0 and later; a huge value at the chunk's last position.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void promptRowsAttendTogetherExactlyAsAlone(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        int blockSize = 16;
        int length = 70;
        int[] table = {3, 0, 4, 2, 1};
        for (DType cacheType : new DType[] {DType.F32, DType.F16})
        for (int[] shape : new int[][] {{9, 3, 64}, {16, 2, 128}, {20, 2, 32}, {4, 2, 72}, {6, 6, 32}, {8, 8, 8}})
        for (int window : new int[] {0, 30})
        for (int[] chunk : new int[][] {{0, 13}, {40, 30}}) {
            int heads = shape[0];
            int kvHeads = shape[1];
            int headDim = shape[2];
            int kvWidth = kvHeads * headDim;
            Buffer kc = backend.allocate((long) table.length * blockSize * kvWidth, cacheType);
            Buffer vc = backend.allocate((long) table.length * blockSize * kvWidth, cacheType);
            BatchLayout fill = new BatchLayout(blockSize);
            fill.addSequence(table, table.length);
            for (int p = 0; p < length; p++) {
                fill.addToken(0, 0, p, false);
            }
            int rows = chunk[1];
            float[] values = randoms(length * kvWidth);
            if (cacheType == DType.F32 && window == 0) {
                // A huge value at the chunk's last position: a row before it that let it in with its
                // padding weight (e^-87, not 0) would no longer equal itself alone.
                java.util.Arrays.fill(values, (chunk[0] + rows - 1) * kvWidth, (chunk[0] + rows) * kvWidth, 1e36f);
            }
            backend.storeKv(kc, vc, buffer(backend, randoms(length * kvWidth)), buffer(backend, values), kvHeads, headDim,
                    fill);
            int width = heads * headDim;
            float[] q = randoms(rows * width);
            float scale = (float) (1 / Math.sqrt(headDim));
            BatchLayout together = new BatchLayout(blockSize);
            together.addSequence(table, table.length);
            for (int r = 0; r < rows; r++) {
                together.addToken(0, 0, chunk[0] + r, false);
            }
            Buffer out = backend.allocate((long) rows * width);
            backend.attention(out, buffer(backend, q), kc, vc, together, heads, kvHeads, headDim, scale, window, 0f);
            float[] got = read(backend, out, rows * width);
            for (int r = 0; r < rows; r++) {
                BatchLayout alone = new BatchLayout(blockSize);
                alone.addSequence(table, table.length);
                alone.addToken(0, 0, chunk[0] + r, false);
                Buffer one = backend.allocate(width);
                backend.attention(one, buffer(backend, java.util.Arrays.copyOfRange(q, r * width, (r + 1) * width)), kc, vc,
                        alone, heads, kvHeads, headDim, scale, window, 0f);
                assertThat(java.util.Arrays.copyOfRange(got, r * width, (r + 1) * width))
                        .as("%s %s cache, %d/%d heads of %d, window %d, row at %d", name, cacheType, heads, kvHeads, headDim,
                                window, chunk[0] + r)
                        .containsExactly(read(backend, one, width));
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void gatedActivationsAndAdd(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        for (Activation activation : Activation.values()) {
            for (int n : new int[] {33, 1000, 70_001}) {
                float[] g = randoms(n);
                for (int i = 0; i < n; i += 97) {
                    g[i] *= 30; // far into both tails
                }
                float[] u = randoms(n);
                Buffer gb = buffer(backend, g);
                Buffer ub = buffer(backend, u);
                backend.gatedActivation(gb, ub, n, activation);
                backend.add(gb, ub, n);
                float[] got = read(backend, gb, n);
                for (int i = 0; i < n; i++) {
                    double x = g[i];
                    double act = switch (activation) {
                        case SILU -> x / (1 + Math.exp(-x));
                        // PyTorch's gelu(approximate="tanh"), as written there.
                        case GELU_TANH -> 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
                    };
                    assertThat((double) got[i]).as("%s %s of %s", name, activation, x)
                            .isCloseTo(act * u[i] + u[i], within(1e-5 * (1 + Math.abs(act * u[i]))));
                }
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void attentionRefusesANegativeWindowOrSoftcap(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        Buffer b = backend.allocate(64);
        BatchLayout layout = new BatchLayout(4);
        for (float[] bad : new float[][] {{-1, 0}, {0, -1}, {0, Float.NaN}, {0, Float.POSITIVE_INFINITY}}) {
            org.assertj.core.api.Assertions.assertThatThrownBy(
                    () -> backend.attention(b, b, b, b, layout, 2, 2, 4, 1f, (int) bad[0], bad[1]))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("window");
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void biasAndScale(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        int rows = 3;
        int width = 37;
        float[] x = randoms(rows * width);
        float[] bias = randoms(width);
        MemorySegment data = arena.allocate(4L * width);
        Quantize.fromFloat(DType.F32, bias, 0, width, data, 0);
        Buffer xb = buffer(backend, x);
        backend.addBias(xb, backend.upload(new Tensor("b", DType.F32, new long[] {width}, data)), rows);
        backend.scale(xb, (long) rows * width, 1.5f);
        float[] got = read(backend, xb, rows * width);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < width; i++) {
                assertThat(got[r * width + i]).isEqualTo((x[r * width + i] + bias[i]) * 1.5f);
            }
        }
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("kernelSets")
    void embedDequantisesTableRows(String name, Supplier<Kernels> kernels) {
        CpuBackend backend = backend(kernels);
        for (DType type : DType.values()) {
            int columns = type.isQuantized() ? 3 * type.blockSize() : 37;
            // 70 rows: rows in both halves of a 64-row group and in a second group (the integer
            // kernels' Q4_0 layout keeps two rows per byte and pads the last group).
            Tensor t = tensor(type, columns, 70);
            float[] w = Dequant.toFloat(t);
            int[] rows = {8, 3, 40, 69};
            BatchLayout layout = new BatchLayout(16);
            int s = layout.addSequence(new int[] {0}, 1);
            for (int i = 0; i < rows.length; i++) {
                layout.addToken(s, rows[i], i, false);
            }
            Buffer out = backend.allocate((long) rows.length * columns);
            backend.embed(out, backend.upload(t), layout);
            float[] got = read(backend, out, rows.length * columns);
            for (int r = 0; r < rows.length; r++) {
                for (int i = 0; i < columns; i++) {
                    assertThat(got[r * columns + i]).as("%s row %d value %d", type, rows[r], i)
                            .isEqualTo(w[rows[r] * columns + i]);
                }
            }
        }
    }

    private Tensor tensor(DType type, int columns, int rows) {
        float[] values = randoms(columns * rows);
        MemorySegment data = arena.allocate(type.bytesFor(values.length));
        Quantize.fromFloat(type, values, 0, values.length, data, 0);
        return new Tensor("w", type, new long[] {columns, rows}, data);
    }

    private Tensor f32Tensor(String name, float[] values, int columns, int rows) {
        MemorySegment data = arena.allocate(4L * values.length);
        Quantize.fromFloat(DType.F32, values, 0, values.length, data, 0);
        return new Tensor(name, DType.F32, new long[] {columns, rows}, data);
    }

    private float[] randoms(int n) {
        float[] a = new float[n];
        for (int i = 0; i < n; i++) {
            a[i] = (float) random.nextGaussian();
        }
        return a;
    }

    private static float[] nearestHalves(float[] values) {
        float[] halves = new float[values.length];
        for (int i = 0; i < values.length; i++) {
            halves[i] = Float.float16ToFloat(Float.floatToFloat16(values[i]));
        }
        return halves;
    }

    private static Buffer buffer(CpuBackend backend, float[] values) {
        Buffer b = backend.allocate(values.length);
        backend.write(values, 0, b, 0, values.length);
        return b;
    }

    private static float[] read(CpuBackend backend, Buffer b, int n) {
        float[] out = new float[n];
        backend.read(b, 0, out, 0, n);
        return out;
    }
}
