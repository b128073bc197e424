package dev.peregrine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.peregrine.spi.Activation;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Candidates;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.IntStream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/**
 * Every CUDA kernel against a float64 reference (matmul, embedding lookup) or the CPU backend
 * (everything else), on random data with odd sizes. Runs only where a GPU is usable (tag "gpu":
 * scripts/gpu-check.sh); elsewhere the class is skipped with the reason.
 */
@Tag("gpu")
class CudaKernelsTest {
    private static CudaBackend cuda;
    private static Backend cpu;
    private static Arena arena;
    private final Random random = new Random(42);

    @BeforeAll
    static void open() {
        CudaBackendProvider provider = new CudaBackendProvider();
        assumeTrue(provider.unavailableReason().isEmpty(), () -> "no usable GPU: " + provider.unavailableReason().orElseThrow());
        cuda = (CudaBackend) provider.create(new BackendConfig(0, 0));
        cpu = Backends.cpu();
        arena = Arena.ofShared();
        System.out.println("[CudaKernelsTest] " + cuda.description());
    }

    @AfterAll
    static void close() {
        if (cuda != null) {
            cuda.close();
            cpu.close();
            arena.close();
        }
    }

    // ---- matmul and embedding against float64 ----

    @ParameterizedTest
    @EnumSource(DType.class)
    void matmulMatchesTheFloat64ProductOfTheDequantisedWeights(DType type) {
        int[] columnCounts = columnCounts(type, new int[] {37, 172, 256, 2048});
        for (int columns : columnCounts) {
            for (int outputs : new int[] {19, 520}) {
                Tensor t = tensor(type, columns, outputs);
                double[] w = toDouble(heldValues(t));
                Weight weight = cuda.upload(t);
                for (int rows : new int[] {1, 2, 5, 8, 9, 17, 33, 64}) {
                    float[] x = randoms(rows * columns);
                    Buffer out = cuda.allocate((long) rows * outputs);
                    cuda.matmul(out, buffer(cuda, x), weight, rows);
                    float[] got = read(cuda, out, rows * outputs);
                    double bound = relativeBound(heldType(type), rows);
                    for (int r = 0; r < rows; r++) {
                        for (int o = 0; o < outputs; o++) {
                            double dot = 0;
                            double magnitude = 0;
                            for (int i = 0; i < columns; i++) {
                                dot += w[o * columns + i] * x[r * columns + i];
                                magnitude += Math.abs(w[o * columns + i] * x[r * columns + i]);
                            }
                            double err = Math.abs(got[r * outputs + o] - dot);
                            assertThat(err).as("%s %d columns, %d rows: row %d output %d (%f vs %f)", type, columns, rows, r, o,
                                    got[r * outputs + o], dot).isLessThanOrEqualTo(bound * magnitude + 1e-6);
                        }
                    }
                }
            }
        }
    }

    /** Row lengths to test: whole blocks for quantised types (K-quants: 256 values), else {@code plain}. */
    private static int[] columnCounts(DType type, int[] plain) {
        if (type.hasSuperBlocks()) {
            return new int[] {256, 2048};
        }
        return type.isQuantized() ? new int[] {32, 256, 2048} : plain;
    }

    /** The type the GPU holds a weight as: CudaBackend uploads the types without kernels as F16. */
    private static DType heldType(DType type) {
        return CudaBackend.hasKernels(type) ? type : DType.F16;
    }

    /** The values the GPU holds for {@code t}: the reference dequantisation, rounded to f16 for types held as F16. */
    private static float[] heldValues(Tensor t) {
        float[] v = Dequant.toFloat(t);
        if (!CudaBackend.hasKernels(t.type())) {
            for (int i = 0; i < v.length; i++) {
                v[i] = Float.float16ToFloat(Float.floatToFloat16(v[i]));
            }
        }
        return v;
    }

    /**
     * Error allowed relative to sum |w x|: float accumulation on the matrix-vector path and for F32
     * GEMMs; the GEMM path rounds activations (and dequantised weights) to f16 or bf16.
     */
    private static double relativeBound(DType type, int rows) {
        int matvecLimit = type.isQuantized() ? CudaBackend.QUANTISED_MATVEC_MAX_TOKENS : CudaBackend.MATVEC_MAX_TOKENS;
        if (rows <= matvecLimit || type == DType.F32) {
            return 1e-5;
        }
        return type == DType.BF16 ? 1e-2 : 2e-3;
    }

    @ParameterizedTest
    @EnumSource(DType.class)
    void embeddingRowsAreTheDequantisedTableRows(DType type) {
        int[] columnCounts = columnCounts(type, new int[] {37, 64, 172});
        for (int columns : columnCounts) {
            Tensor t = tensor(type, columns, 50);
            float[] table = heldValues(t);
            Weight weight = cuda.upload(t);
            int[] tokens = {3, 0, 49, 3, 17};
            BatchLayout layout = layout(tokens.length);
            for (int r = 0; r < tokens.length; r++) {
                layout.tokens[r] = tokens[r];
            }
            cuda.beginStep(layout);
            Buffer out = cuda.allocate((long) tokens.length * columns);
            cuda.embed(out, weight, layout);
            float[] got = read(cuda, out, tokens.length * columns);
            for (int r = 0; r < tokens.length; r++) {
                assertThat(Arrays.copyOfRange(got, r * columns, (r + 1) * columns)).as("%s row %d", type, tokens[r])
                        .containsExactly(Arrays.copyOfRange(table, tokens[r] * columns, (tokens[r] + 1) * columns));
            }
        }
    }

    // ---- per-token kernels against the CPU backend ----

    @Test
    void rmsNormMatchesTheCpu() {
        for (int width : new int[] {64, 576, 2048, 5000}) {
            int rows = 7;
            float[] x = randoms(rows * width);
            float[] w = randoms(width);
            float[][] results = new float[2][];
            int i = 0;
            for (Backend b : new Backend[] {cuda, cpu}) {
                Buffer out = b.allocate((long) rows * width);
                b.rmsNorm(out, buffer(b, x), b.upload(floats("w", w, width, 1)), rows, width, 1e-5f);
                results[i++] = read(b, out, rows * width);
            }
            assertClose(results[0], results[1], 1e-5, "rmsNorm width " + width);
        }
    }

    @Test
    void ropeMatchesTheCpu() {
        int heads = 6;
        int headDim = 64;
        int rows = 9;
        for (int ropeDims : new int[] {64, 32}) {
            float[] frequencies = new float[ropeDims / 2];
            for (int i = 0; i < frequencies.length; i++) {
                frequencies[i] = (float) Math.pow(500000, -2.0 * i / ropeDims);
            }
            BatchLayout layout = layout(rows);
            for (int r = 0; r < rows; r++) {
                layout.positions[r] = r * 997; // late positions: large angles
            }
            float[] x = randoms(rows * heads * headDim);
            float[][] angles = new float[2][];
            float[][] rotated = new float[2][];
            int i = 0;
            for (Backend b : new Backend[] {cuda, cpu}) {
                b.beginStep(layout);
                Buffer cosSin = b.allocate((long) rows * ropeDims);
                b.ropeAngles(cosSin, frequencies, layout);
                Buffer xb = buffer(b, x);
                b.rope(xb, cosSin, rows, heads, headDim, ropeDims);
                angles[i] = read(b, cosSin, rows * ropeDims);
                rotated[i++] = read(b, xb, rows * heads * headDim);
            }
            assertClose(angles[0], angles[1], 1e-6, "rope angles");
            assertClose(rotated[0], rotated[1], 1e-5, "rope");
        }
    }

    @ParameterizedTest
    @EnumSource(Activation.class)
    void gatedActivationAddAndCopyMatchTheCpu(Activation activation) {
        int n = 100_003;
        float[] gate = randoms(n);
        for (int j = 0; j < n; j += 97) {
            gate[j] *= 30; // far into both tails, where exp overflows
        }
        float[] up = randoms(n);
        float[][] results = new float[2][];
        int i = 0;
        for (Backend b : new Backend[] {cuda, cpu}) {
            Buffer g = buffer(b, gate);
            Buffer u = buffer(b, up);
            b.gatedActivation(g, u, n, activation);
            b.add(g, u, n);
            Buffer copy = b.allocate(n + 10);
            b.copy(copy, 10, g, 0, n);
            results[i++] = read(b, copy, n + 10);
        }
        assertClose(results[0], results[1], 1e-6, activation + " + add + copy");
    }

    @Test
    void biasAndScaleMatchTheCpu() {
        for (int width : new int[] {40, 4000}) {
            int rows = 7;
            float[] x = randoms(rows * width);
            float[] bias = randoms(width);
            for (DType type : new DType[] {DType.F32, DType.F16}) { // an F16 bias is held as F32, as the CPU reads it
                float[][] results = new float[2][];
                int i = 0;
                for (Backend b : new Backend[] {cuda, cpu}) {
                    Buffer xb = buffer(b, x);
                    b.addBias(xb, b.upload(floats("bias", bias, width, 1, type)), rows);
                    b.scale(xb, (long) rows * width, 45.254834f); // Gemma's sqrt(2048)
                    results[i++] = read(b, xb, rows * width);
                }
                assertThat(results[0]).as("%s bias of %d, then scale", type, width).containsExactly(results[1]);
            }
        }
    }

    /**
     * The CUDA caches hold a row per slot (native/elementwise.cu; the CPU backend lays its caches
     * out otherwise, so they are not compared): each row lands whole in its slot, the others stay zero.
     */
    @Test
    void storeKvWritesEachRowToItsSlot() {
        int kvHeads = 3;
        int headDim = 32;
        int width = kvHeads * headDim;
        int rows = 5;
        BatchLayout layout = layout(rows);
        int[] slots = {7, 0, 33, 8, 31};
        System.arraycopy(slots, 0, layout.slots, 0, rows);
        float[] k = randoms(rows * width);
        float[] v = randoms(rows * width);
        float[] expectedKeys = new float[40 * width];
        float[] expectedValues = new float[40 * width];
        for (int r = 0; r < rows; r++) {
            System.arraycopy(k, r * width, expectedKeys, slots[r] * width, width);
            System.arraycopy(v, r * width, expectedValues, slots[r] * width, width);
        }
        cuda.beginStep(layout);
        Buffer keys = cuda.allocate(40L * width);
        Buffer values = cuda.allocate(40L * width);
        cuda.storeKv(keys, values, buffer(cuda, k), buffer(cuda, v), kvHeads, headDim, layout);
        assertThat(read(cuda, keys, 40 * width)).containsExactly(expectedKeys);
        assertThat(read(cuda, values, 40 * width)).containsExactly(expectedValues);
    }

    // ---- attention against the CPU backend ----

    /** Heads, KV heads and head sizes of real models and the kernel's edge cases (tiny, big groups, 256). */
    private static final int[][] ATTENTION_SHAPES = {
            {8, 4, 8}, {32, 8, 64}, {9, 3, 64}, {4, 4, 128}, {16, 1, 256}, {6, 2, 40}, {40, 2, 64}};

    /** Each case: per sequence, the positions it evaluates this step (first, count). */
    private static final int[][][] ATTENTION_CASES = {
            {{0, 1}, {37, 1}, {700, 1}},            // batched decode
            {{0, 45}},                              // one prompt
            {{100, 1}, {50, 20}, {5, 1}, {0, 3}},   // decodes, a prompt continuation, a short prompt
            {{3000, 1}},                            // one long decode: split over positions
            {{2000, 40}}};                          // a late prompt chunk

    @Test
    void attentionMatchesTheCpuForDecodePrefillAndMixedSteps() {
        for (int[] shape : ATTENTION_SHAPES) {
            for (int[][] sequences : ATTENTION_CASES) {
                compareAttention(shape[0], shape[1], shape[2], sequences, 0, 0f, DType.F32);
            }
        }
    }

    /** Caches of halves (ModelOptions.kvCacheType F16), filled by storeKv on each backend, and one windowed case. */
    @Test
    void attentionOverHalfPrecisionCachesMatchesTheCpu() {
        for (int[] shape : ATTENTION_SHAPES) {
            for (int[][] sequences : ATTENTION_CASES) {
                compareAttention(shape[0], shape[1], shape[2], sequences, 0, 0f, DType.F16);
            }
        }
        compareAttention(32, 8, 64, ATTENTION_CASES[3], 512, 0f, DType.F16);
    }

    /**
     * A block of an F16 cache copied elsewhere (what copy-on-write of a shared block does): a
     * sequence whose table names the copy attends exactly as one naming the original.
     */
    @Test
    void copiedHalfPrecisionBlocksAttendAsTheOriginals() {
        int heads = 8;
        int kvHeads = 2;
        int headDim = 64;
        int kvDim = kvHeads * headDim;
        int blockSize = 16;
        int blocks = 6;
        Buffer keys = cuda.allocate((long) blocks * blockSize * kvDim, DType.F16);
        Buffer values = cuda.allocate((long) blocks * blockSize * kvDim, DType.F16);
        int slots = blocks * blockSize;
        fill(cuda, keys, values, randoms(slots * kvDim), randoms(slots * kvDim), kvHeads, headDim, blockSize);
        cuda.copyKvBlock(keys, 1, 5, blockSize, kvHeads, headDim);
        cuda.copyKvBlock(values, 1, 5, blockSize, kvHeads, headDim);
        float[][] results = new float[2][];
        int[][] tables = {{0, 1, 2}, {0, 5, 2}};
        float[] q = randoms(heads * headDim);
        for (int t = 0; t < 2; t++) {
            BatchLayout layout = new BatchLayout(blockSize);
            layout.addToken(layout.addSequence(tables[t], 3), 1, 40, true);
            cuda.beginStep(layout);
            Buffer out = cuda.allocate((long) heads * headDim);
            cuda.attention(out, buffer(cuda, q), keys, values, layout, heads, kvHeads, headDim, 0.125f, 0, 0f);
            results[t] = read(cuda, out, heads * headDim);
        }
        assertThat(results[1]).containsExactly(results[0]);
    }

    /** Stores {@code k} and {@code v}, rows of {@code kvHeads x headDim} floats, into the caches' slots 0, 1, 2, ... */
    private static void fill(Backend b, Buffer keys, Buffer values, float[] k, float[] v, int kvHeads, int headDim,
                             int blockSize) {
        int slots = k.length / (kvHeads * headDim);
        int[] table = IntStream.range(0, slots / blockSize).toArray();
        BatchLayout all = new BatchLayout(blockSize);
        int seq = all.addSequence(table, table.length);
        for (int p = 0; p < slots; p++) {
            all.addToken(seq, 1, p, false);
        }
        b.beginStep(all);
        b.storeKv(keys, values, buffer(b, k), buffer(b, v), kvHeads, headDim, all);
    }

    /**
     * Sliding windows of one position, shorter than a prompt tile, equal to the history of the row
     * at 37, long enough to be split over positions (512 of the 3000-long decode) and longer than
     * every history; soft-capped scores alone and with a window.
     */
    @Test
    void windowedAndSoftCappedAttentionMatchesTheCpu() {
        int[][] windowAndCap = {{1, 0}, {16, 0}, {38, 0}, {512, 0}, {4096, 0}, {0, 2}, {512, 3}};
        for (int[] shape : ATTENTION_SHAPES) {
            for (int[][] sequences : ATTENTION_CASES) {
                for (int[] variant : windowAndCap) {
                    compareAttention(shape[0], shape[1], shape[2], sequences, variant[0], variant[1], DType.F32);
                }
            }
        }
    }

    private void compareAttention(int heads, int kvHeads, int headDim, int[][] sequences, int window, float softcap,
                                  DType kvType) {
        int blockSize = 16;
        int kvDim = kvHeads * headDim;
        int longest = Arrays.stream(sequences).mapToInt(s -> s[0] + s[1]).max().orElseThrow();
        int blocksPerSequence = (longest + blockSize - 1) / blockSize;
        int blocks = blocksPerSequence * sequences.length;
        // Sequences own shuffled blocks, so the block tables really page.
        List<Integer> order = new ArrayList<>(IntStream.range(0, blocks).boxed().toList());
        java.util.Collections.shuffle(order, random);
        BatchLayout layout = new BatchLayout(blockSize);
        for (int s = 0; s < sequences.length; s++) {
            int[] table = order.subList(s * blocksPerSequence, (s + 1) * blocksPerSequence).stream().mapToInt(Integer::intValue).toArray();
            int seq = layout.addSequence(table, table.length);
            for (int p = sequences[s][0]; p < sequences[s][0] + sequences[s][1]; p++) {
                layout.addToken(seq, 1, p, true);
            }
        }
        int n = layout.tokenCount;
        float[] q = randoms(n * heads * headDim);
        float[] cache = randoms(blocks * blockSize * kvDim);
        float[] values = randoms(blocks * blockSize * kvDim);
        // Positions before every window of a sequence must not even be read (a cache may drop
        // them): NaN there would spread through the zero weights of masked positions.
        for (int s = 0; window > 0 && s < sequences.length; s++) {
            for (int p = 0; p < sequences[s][0] - window + 1; p++) {
                int slot = layout.slotOf(s, p);
                Arrays.fill(cache, slot * kvDim, (slot + 1) * kvDim, Float.NaN);
                Arrays.fill(values, slot * kvDim, (slot + 1) * kvDim, Float.NaN);
            }
        }
        float scale = (float) (1 / Math.sqrt(headDim));
        float[][] results = new float[2][];
        int i = 0;
        for (Backend b : new Backend[] {cuda, cpu}) {
            // Through storeKv: each backend lays out its caches as it likes.
            Buffer keyCache = b.allocate(cache.length, kvType);
            Buffer valueCache = b.allocate(values.length, kvType);
            fill(b, keyCache, valueCache, cache, values, kvHeads, headDim, blockSize);
            b.beginStep(layout);
            Buffer out = b.allocate((long) n * heads * headDim);
            b.attention(out, buffer(b, q), keyCache, valueCache, layout, heads, kvHeads, headDim, scale, window, softcap);
            results[i++] = read(b, out, n * heads * headDim);
        }
        assertClose(results[0], results[1], 1e-4, "attention " + heads + "/" + kvHeads + "/" + headDim + " "
                + Arrays.deepToString(sequences) + " window " + window + " softcap " + softcap + " " + kvType + " cache");
    }

    // ---- sampling ----

    /**
     * Candidate selection (pg_argmax for k = 1, pg_top_k above) against a sort and against the SPI's
     * host default on the CPU backend: rows of a padded stride (the padding holds larger values,
     * never chosen), ties for the maximum and at the cut, and NaN (as -Infinity), -Infinity and
     * both zeros at the top of a row.
     */
    @Test
    void candidateSelectionMatchesASortAndTheHostDefault() {
        int vocab = 50_021;
        int stride = 50_024;
        int rows = 4;
        float[] logits = randoms(rows * stride);
        for (int r = 0; r < rows; r++) {
            Arrays.fill(logits, r * stride + vocab, (r + 1) * stride, 100f);
        }
        logits[stride + 10] = logits[stride + 20] = 9f;          // row 1: a tie for the maximum
        for (int j = 0; j < 60; j++) {
            logits[2 * stride + 100 + 7 * j] = 5f;               // row 2: many equal candidates at the cut
        }
        for (int i = 0; i < vocab; i++) {                      // row 3: everything negative but ...
            logits[3 * stride + i] = -1 - Math.abs(logits[3 * stride + i]);
        }
        for (int j = 0; j < 1200; j++) {                       // ... zeros of both signs, NaN and -Infinity
            logits[3 * stride + 4 * j] = j % 3 == 0 ? Float.NaN : j % 3 == 1 ? Float.NEGATIVE_INFINITY : j % 2 == 0 ? 0f : -0f;
        }
        Buffer onCuda = buffer(cuda, logits);
        Buffer onCpu = buffer(cpu, logits);
        for (int k : new int[] {1, 40, 1024}) {
            Candidates fromCuda = new Candidates();
            Candidates fromCpu = new Candidates();
            fromCuda.reset(rows + 1, k);
            fromCpu.reset(rows + 1, k);
            cuda.selectCandidates(onCuda, rows, stride, vocab, fromCuda, 1);
            cpu.selectCandidates(onCpu, rows, stride, vocab, fromCpu, 1);
            for (int r = 0; r < rows; r++) {
                int row = r;
                float[] rank = new float[vocab];
                for (int i = 0; i < vocab; i++) {
                    float x = logits[row * stride + i];
                    rank[i] = Float.isNaN(x) ? Float.NEGATIVE_INFINITY : x == 0 ? 0f : x; // -0 ties with +0
                }
                int[] ranked = IntStream.range(0, vocab).boxed()
                        .sorted(Comparator.<Integer>comparingDouble(j -> -rank[j]).thenComparingInt(j -> j))
                        .limit(k).mapToInt(Integer::intValue).toArray();
                for (Candidates c : List.of(fromCuda, fromCpu)) {
                    int at = c.offset(1 + r);
                    assertThat(Arrays.copyOfRange(c.ids(), at, at + k)).as("top-%d of row %d", k, r).containsExactly(ranked);
                    for (int j = 0; j < k; j++) {
                        assertThat(c.values()[at + j] == rank[ranked[j]]).as("value %d of row %d", j, r).isTrue();
                    }
                }
            }
        }
    }

    // ---- helpers ----

    private BatchLayout layout(int tokens) {
        BatchLayout layout = new BatchLayout(16);
        layout.addSequence(new int[] {0, 1, 2, 3}, 4);
        for (int r = 0; r < tokens; r++) {
            layout.addToken(0, 0, r, true);
        }
        return layout;
    }

    private Tensor tensor(DType type, int columns, int rows) {
        return floats("t", randoms(columns * rows), columns, rows, type);
    }

    private static Tensor floats(String name, float[] values, int columns, int rows) {
        return floats(name, values, columns, rows, DType.F32);
    }

    private static Tensor floats(String name, float[] values, int columns, int rows, DType type) {
        MemorySegment data = arena.allocate(type.bytesFor((long) columns * rows), 64);
        Quantize.fromFloat(type, values, 0, values.length, data, 0);
        return new Tensor(name, type, new long[] {columns, rows}, data);
    }

    private float[] randoms(int n) {
        float[] v = new float[n];
        for (int i = 0; i < n; i++) {
            v[i] = (float) random.nextGaussian();
        }
        return v;
    }

    private static double[] toDouble(float[] f) {
        double[] d = new double[f.length];
        for (int i = 0; i < f.length; i++) {
            d[i] = f[i];
        }
        return d;
    }

    private static Buffer buffer(Backend b, float[] values) {
        Buffer buffer = b.allocate(values.length);
        b.write(values, 0, buffer, 0, values.length);
        return buffer;
    }

    private static float[] read(Backend b, Buffer buffer, int n) {
        float[] out = new float[n];
        b.read(buffer, 0, out, 0, n);
        return out;
    }

    /** |a - b| <= tolerance * max(1, |b|) everywhere. */
    private static void assertClose(float[] a, float[] b, double tolerance, String what) {
        assertThat(a).hasSameSizeAs(b);
        for (int i = 0; i < a.length; i++) {
            double allowed = tolerance * Math.max(1, Math.abs(b[i]));
            if (!(Math.abs(a[i] - b[i]) <= allowed)) {
                throw new AssertionError(what + ": element " + i + " is " + a[i] + " on CUDA, " + b[i] + " on the CPU");
            }
        }
    }
}
