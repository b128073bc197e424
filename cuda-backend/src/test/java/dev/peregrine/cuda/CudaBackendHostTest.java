package dev.peregrine.cuda;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.spi.Activation;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Candidates;
import dev.peregrine.spi.Weight;
import dev.peregrine.synth.FileType;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.management.ManagementFactory;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.Random;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The backend's host side on a {@link FakeDevice}, where there is no GPU: whole models run through
 * the real graph, and every launch and GEMM is checked against the kernels' signatures and the
 * device memory it touches (no kernel computes anything here; CudaKernelsTest does that on a GPU).
 */
class CudaBackendHostTest {
    private final FakeDevice device = new FakeDevice();
    private final FakeBlas blas = new FakeBlas(device);

    private CudaBackend backend() {
        return new CudaBackend(device, blas);
    }

    @ParameterizedTest
    @ValueSource(strings = {"stories260K.gguf", "tinyllamas-stories-260k-q8_0.gguf", "TinyLLama-v0-Q4_0.gguf"})
    void realModelsRunPrefillAndBatchedDecodeWithEveryLaunchChecked(String name) {
        try (GraphRun run = new GraphRun(SharedModels.model(name), backend(), 64, 3, 256)) {
            int[][] tokens = new int[3][48];
            Random random = new Random(1);
            for (int i = 0; i < 48; i++) {
                tokens[0][i] = tokens[1][i] = tokens[2][i] = random.nextInt(run.vocabulary());
            }
            run.step(tokens, new int[] {40, 12, 5}, new int[] {0, 0, 0}); // prompts of 40, 12 and 5 tokens
            for (int step = 0; step < 3; step++) {
                run.step(tokens, new int[] {1, 1, 1}, new int[] {40 + step, 12 + step, 5 + step});
            }
            DType matrices = run.file.tensor("blk.0.attn_q.weight").type();
            assertThat(device.launches(Kernel.matvec(matrices, 3))).as("three sequences decode through the batch kernel").isPositive();
            assertThat(device.launches(Kernel.embed(run.file.tensor("token_embd.weight").type()))).isEqualTo(4);
            for (Kernel k : new Kernel[] {Kernel.RMS_NORM, Kernel.ROPE_ANGLES, Kernel.ROPE_STORE_KV,
                    Kernel.ATTENTION, Kernel.GATED_ACTIVATION, Kernel.ADD}) {
                assertThat(device.launches(k)).as("%s launches", k).isPositive();
            }
            if (matrices == DType.F32) {
                assertThat(blas.gemms[Blas.Type.F32.ordinal()]).as("the 40-token prompt goes through cuBLAS").isPositive();
            } else {
                // Quantised weights: 40 rows are past the matrix-vector limit, so they are dequantised to f16.
                assertThat(blas.gemms[Blas.Type.F16.ordinal()]).isPositive();
                assertThat(device.launches(Kernel.TO_F16)).isPositive();
            }
        }
        assertThat(device.liveDeviceAllocations()).as("closing frees all device memory").isZero();
        assertThat(device.closed).isTrue();
        assertThat(blas.closed).isTrue();
    }

    @ParameterizedTest
    @ValueSource(strings = {"BF16", "F16", "Q8_0", "Q4_0"})
    void syntheticModelsOfEveryWeightTypeTakeTheirKernels(String typeName, @TempDir Path dir) {
        DType type = DType.valueOf(typeName);
        ModelShape tiny = ModelShape.named("tiny");
        Path file = dir.resolve("tiny.gguf");
        SyntheticModel.of(tiny, 5).writeGguf(file, type, TokenizerMetadata.synthetic(tiny.vocab()), 1);
        try (GraphRun run = new GraphRun(file, backend(), 64, 1, 128)) {
            int[] prompt = new Random(2).ints(3, run.vocabulary()).limit(64).toArray();
            Kernel conversion = type == DType.BF16 ? Kernel.TO_BF16_SPLIT : Kernel.TO_F16;
            long conversions = device.launches(conversion);
            run.step(prompt, 64, 0);
            // The prompt goes through cuBLAS; each input is converted once: for q/k/v, wo, gate/up and down.
            assertThat(device.launches(conversion) - conversions).as("%s launches of a prompt step", conversion)
                    .isEqualTo(4L * run.config.layers());
            long before = device.launches(Kernel.matvec(type, 1));
            long adds = device.launches(Kernel.ADD);
            long norms = device.launches(Kernel.RMS_NORM);
            long ropes = device.launches(Kernel.ROPE_STORE_KV);
            run.step(prompt, 1, 64);
            // q/k/v in one launch, wo, gate/up in one launch, down; then the output projection.
            assertThat(device.launches(Kernel.matvec(type, 1)) - before).as("matrix-vector launches of one decode step")
                    .isEqualTo(4L * run.config.layers() + 1);
            // Residual adds run inside the norms that follow them; only the last layer's stands alone.
            assertThat(device.launches(Kernel.ADD) - adds).as("add launches of one decode step").isEqualTo(1);
            assertThat(device.launches(Kernel.RMS_NORM) - norms).as("norm launches of one decode step")
                    .isEqualTo(2L * run.config.layers() + 1);
            assertThat(device.launches(Kernel.ROPE_STORE_KV) - ropes).as("rope of q and k with the KV store, per layer")
                    .isEqualTo(run.config.layers());
        }
        assertThat(device.launches(Kernel.embed(type))).isEqualTo(2);
        switch (type) {
            case BF16 -> assertThat(device.launches(Kernel.TO_BF16_SPLIT)).isPositive();
            case F16 -> assertThat(device.launches(Kernel.TO_F16)).isPositive();
            case Q8_0 -> assertThat(device.launches(Kernel.DEQUANT_F16_Q8_0)).isPositive();
            case Q4_0 -> assertThat(device.launches(Kernel.DEQUANT_F16_Q4_0)).isPositive();
            default -> throw new AssertionError(type);
        }
        assertThat(device.launches(Kernel.SPLIT_BLOCKS) > 0).isEqualTo(type.isQuantized());
    }

    /** Weights of the types without CUDA kernels become F16 rows holding the f16 rounding of the reference dequantisation. */
    @ParameterizedTest
    @ValueSource(strings = {"Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K", "IQ4_NL", "IQ4_XS"})
    void weightsWithoutKernelsAreUploadedAsF16(String typeName) {
        DType type = DType.valueOf(typeName);
        try (CudaBackend b = backend(); Arena arena = Arena.ofConfined()) {
            Random random = new Random(4);
            float[] x = new float[512 * 3];
            for (int i = 0; i < x.length; i++) {
                x[i] = (float) random.nextGaussian();
            }
            MemorySegment data = arena.allocate(type.bytesFor(x.length));
            Quantize.fromFloat(type, x, 0, x.length, data, 0);
            Tensor t = new Tensor("w", type, new long[] {512, 3}, data);
            CudaWeight w = (CudaWeight) b.upload(t);
            assertThat(w.type()).isEqualTo(DType.F16);
            assertThat(w.rowStride()).isEqualTo(1024);
            assertThat(device.launches(Kernel.SPLIT_BLOCKS)).isZero();
            MemorySegment held = arena.allocate(3 * 1024L);
            device.copyToHost(held, w.data(), held.byteSize());
            float[] expected = Dequant.toFloat(t);
            MemorySegment f16 = arena.allocate(held.byteSize());
            Quantize.fromFloat(DType.F16, expected, 0, expected.length, f16, 0);
            assertThat(held.toArray(ValueLayout.JAVA_BYTE)).isEqualTo(f16.toArray(ValueLayout.JAVA_BYTE));
        }
    }

    /** A Q4_K_M model (Q4_K and Q6_K matrices) runs on the F16 kernels and cuBLAS's f16 GEMM. */
    @Test
    void q4_kMModelsTakeTheF16Kernels(@TempDir Path dir) {
        ModelShape shape = new ModelShape("k", 256, 2, 4, 2, 512, 512, 256, 1e4f, 1e-5f, false, false);
        Path file = dir.resolve("k.gguf");
        SyntheticModel.of(shape, 5).writeGguf(file, FileType.Q4_K_M, TokenizerMetadata.synthetic(shape.vocab()), 1);
        try (GraphRun run = new GraphRun(file, backend(), 64, 1, 128)) {
            int[] prompt = new Random(2).ints(3, run.vocabulary()).limit(64).toArray();
            run.step(prompt, 64, 0);
            run.step(prompt, 1, 64);
        }
        assertThat(device.launches(Kernel.matvec(DType.F16, 1))).isPositive();
        assertThat(device.launches(Kernel.embed(DType.F16))).isEqualTo(2);
        assertThat(blas.gemms[Blas.Type.F16.ordinal()]).isPositive();
        assertThat(device.launches(Kernel.SPLIT_BLOCKS)).isZero();
    }

    /** The KV store and attention kernels take a flag that says the caches hold halves. */
    @ParameterizedTest
    @ValueSource(strings = {"F32", "F16"})
    void theKvCacheTypeReachesTheKernels(String kvTypeName) {
        DType kvType = DType.valueOf(kvTypeName);
        try (GraphRun run = new GraphRun(SharedModels.stories260K(), backend(), 32, 1, 64, kvType)) {
            int[] prompt = new Random(4).ints(3, run.vocabulary()).limit(9).toArray();
            run.step(prompt, 8, 0);
            run.step(prompt, 1, 8);
        }
        long expected = kvType == DType.F16 ? 1 : 0;
        assertThat(device.lastArgument(Kernel.ROPE_STORE_KV, Kernel.ROPE_STORE_KV.parameters.length() - 1)).isEqualTo(expected);
        assertThat(device.lastArgument(Kernel.ATTENTION, Kernel.ATTENTION.parameters.length() - 1)).isEqualTo(expected);
    }

    @Test
    void buffersOfTheWrongTypeAreRefused() {
        try (CudaBackend b = backend()) {
            Buffer halves = b.allocate(64, DType.F16);
            Buffer floats = b.allocate(64);
            assertThat(halves.type()).isEqualTo(DType.F16);
            assertThatThrownBy(() -> b.allocate(64, DType.BF16)).hasMessageContaining("F32 or F16 values, not BF16");
            assertThatThrownBy(() -> b.copy(floats, 0, halves, 0, 8)).hasMessageContaining("copy from a buffer of F16 into one of F32");
            assertThatThrownBy(() -> b.add(halves, floats, 8)).hasMessageContaining("a buffer of F16 where F32 values are needed");
            assertThatThrownBy(() -> b.read(halves, 0, new float[8], 0, 8)).hasMessageContaining("a buffer of F16");
            b.copy(halves, 54, b.allocate(10, DType.F16), 0, 10); // values, not bytes: the last 10 halves
            assertThatThrownBy(() -> b.copy(halves, 55, b.allocate(10, DType.F16), 0, 10)).hasMessageContaining("outside a buffer of 64");
            BatchLayout layout = new BatchLayout(16);
            layout.addToken(layout.addSequence(new int[] {0}, 1), 1, 0, true);
            b.beginStep(layout);
            assertThatThrownBy(() -> b.storeKv(halves, floats, floats, floats, 1, 8, layout))
                    .hasMessageContaining("a key cache of F16 with a value cache of F32");
            // The kernel reads keys and values two at a time.
            assertThatThrownBy(() -> b.attention(floats, floats, floats, floats, layout, 1, 1, 7, 1f, 0, 0f))
                    .hasMessageContaining("an even headDim in 2..256");
        }
    }

    @Test
    void decodeStepsAllocateNothingOnceWarm() {
        try (GraphRun run = new GraphRun(SharedModels.stories260K(), backend(), 40, 2, 1024)) {
            int[][] tokens = {new int[32], new int[32]};
            int[] counts = {20, 20};
            int[] starts = {0, 0};
            run.step(tokens, counts, starts);
            counts[0] = counts[1] = 1;
            for (int i = 0; i < 400; i++) { // warm-up: scratch areas reach their size, the JIT compiles the loop
                starts[0] = starts[1] = 20 + i;
                run.step(tokens, counts, starts);
            }
            var threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
            int allocationsBefore = device.deviceAllocations;
            // The fewest bytes over a few windows of 100 steps: a JIT recompilation that happens to
            // fall into one window allocates a little, and is not the steady state being checked.
            long fewest = Long.MAX_VALUE;
            for (int window = 0; window < 5 && fewest >= 1024; window++) {
                long bytesBefore = threads.getCurrentThreadAllocatedBytes();
                for (int i = 0; i < 100; i++) {
                    starts[0] = starts[1] = 420 + 100 * window + i;
                    run.step(tokens, counts, starts);
                }
                fewest = Math.min(fewest, threads.getCurrentThreadAllocatedBytes() - bytesBefore);
            }
            assertThat(device.deviceAllocations).as("device allocations during decode").isEqualTo(allocationsBefore);
            assertThat(device.graphLaunches).as("decode steps replayed as CUDA graphs").isGreaterThan(400);
            assertThat(fewest).as("Java heap bytes allocated by 100 decode steps").isLessThan(1024);
        }
    }

    /**
     * CUDA graphs change nothing the GPU is asked to do: the same steps with and without graphs
     * run the same operations in the same order (kernels with their grids and argument values,
     * GEMMs, copies; device pointers compared as allocation + offset). The steps change shape now
     * and then (sequences finishing and joining, a prompt mixed into decode steps, attention splits
     * growing with the positions), which must drop or bypass graphs, never replay a stale one.
     */
    @Test
    void graphsReplayExactlyWhatEachStepAsksFor() {
        FakeDevice plainDevice = new FakeDevice();
        plainDevice.executed = new java.util.ArrayList<>();
        device.executed = new java.util.ArrayList<>();
        try (GraphRun withGraphs = new GraphRun(SharedModels.stories260K(), new CudaBackend(device, blas, true), 40, 3, 1024);
             GraphRun without = new GraphRun(SharedModels.stories260K(), new CudaBackend(plainDevice, new FakeBlas(plainDevice), false),
                     40, 3, 1024)) {
            Random random = new Random(3);
            int[][] tokens = new int[3][32];
            int[] counts = {20, 12, 0};
            int[] starts = {0, 0, 0};
            for (int step = 0; step < 300; step++) {
                for (int[] row : tokens) {
                    for (int i = 0; i < row.length; i++) {
                        row[i] = random.nextInt(withGraphs.vocabulary());
                    }
                }
                withGraphs.step(tokens, counts, starts);
                without.step(tokens, counts, starts);
                for (int s = 0; s < 3; s++) {
                    starts[s] += counts[s];
                }
                // Two sequences decode; the third joins with a prompt at step 100 and leaves at 200.
                counts[0] = counts[1] = 1;
                counts[2] = step == 99 ? 8 : step >= 100 && step < 200 ? 1 : 0;
                if (step == 200) {
                    starts[2] = 0;
                }
            }
            assertThat(device.graphLaunches).as("graphs replayed").isGreaterThan(250);
            assertThat(plainDevice.graphLaunches).isZero();
            assertThat(device.executed).as("operations run with graphs, against without").isEqualTo(plainDevice.executed);
        }
    }

    /** Long prompt steps are all GEMMs: they repeat their shape without being captured. */
    @Test
    void longStepsAreNotCaptured() {
        try (GraphRun run = new GraphRun(SharedModels.stories260K(), backend(), 128, 1, 1024)) {
            int[] tokens = new int[CudaBackend.GRAPH_MAX_TOKENS + 1];
            for (int p = 0; p < 5 * tokens.length; p += tokens.length) {
                run.step(tokens, tokens.length, p);
            }
            assertThat(device.capturesBegun).isZero();
        }
    }

    /** An operation that fails inside a capture leaves the steps correct: they run without graphs. */
    @Test
    void aStepThatCannotBeCapturedRunsWithoutAGraph() {
        FakeDevice plainDevice = new FakeDevice();
        plainDevice.executed = new java.util.ArrayList<>();
        device.executed = new java.util.ArrayList<>();
        blas.failWhileCapturing = true;
        try (GraphRun withGraphs = new GraphRun(SharedModels.stories260K(), new CudaBackend(device, blas, true), 16, 1, 1024);
             GraphRun without = new GraphRun(SharedModels.stories260K(), new CudaBackend(plainDevice, new FakeBlas(plainDevice), false),
                     16, 1, 1024)) {
            int[] tokens = new int[16];
            for (int p = 0; p < 160; p += 16) { // 16-token steps go through cuBLAS
                withGraphs.step(tokens, 16, p);
                without.step(tokens, 16, p);
            }
            assertThat(device.capturesBegun).as("one capture tried").isEqualTo(1);
            assertThat(device.graphLaunches).isZero();
            assertThat(device.executed).isEqualTo(plainDevice.executed);
        }
    }

    /**
     * The candidate forward keeps the logits on the device: per chunk of up to 16 rows one
     * pg_argmax (k = 1) or pg_top_k launch, one block per row, and only rows x k values and ids
     * copied back.
     */
    @Test
    void candidateForwardSelectsOnTheDeviceAndCopiesBackOnlyTheCandidates() {
        try (GraphRun run = new GraphRun(SharedModels.stories260K(), backend(), 64, 20, 64)) {
            assertThat(CudaBackend.MAX_TOP_K).isEqualTo(dev.peregrine.spi.Backend.MAX_CANDIDATES);
            int[][] tokens = new int[20][8];
            int[] counts = new int[20];
            int[] starts = new int[20];
            Candidates candidates = new Candidates();
            int step = 0;
            for (int[] sequencesAndK : new int[][] {{3, 1}, {3, 40}, {20, 1}, {20, 512}}) {
                int sequences = sequencesAndK[0];
                int k = sequencesAndK[1];
                Arrays.fill(counts, 0);
                Arrays.fill(counts, 0, sequences, 1);
                Arrays.fill(starts, step++);
                candidates.reset(sequences, k);
                Kernel kernel = k == 1 ? Kernel.ARGMAX : Kernel.TOP_K;
                long launches = device.launches(kernel);
                long otherLaunches = device.launches(k == 1 ? Kernel.TOP_K : Kernel.ARGMAX);
                long copied = device.bytesToHost;
                run.stepCandidates(tokens, counts, starts, candidates);
                int chunks = (sequences + 15) / 16;
                assertThat(device.launches(kernel) - launches).as("%s launches for %d rows", kernel, sequences).isEqualTo(chunks);
                assertThat(device.launches(k == 1 ? Kernel.TOP_K : Kernel.ARGMAX)).isEqualTo(otherLaunches);
                assertThat(device.lastGrid[kernel.ordinal()][0]).as("one block per row of the last chunk")
                        .isEqualTo(sequences - 16 * (chunks - 1));
                assertThat(device.bytesToHost - copied).as("bytes copied back for %d rows of %d", sequences, k)
                        .isEqualTo((long) sequences * k * (Float.BYTES + Integer.BYTES));
            }
        }
    }

    @Test
    void candidateSelectionChecksItsArguments() {
        try (CudaBackend b = backend()) {
            Buffer logits = b.allocate(2 * 100);
            Candidates candidates = new Candidates();
            candidates.reset(2, 40);
            assertThatThrownBy(() -> b.selectCandidates(logits, 2, 100, 30, candidates, 0)).hasMessageContaining("k <= vocab");
            assertThatThrownBy(() -> b.selectCandidates(logits, 2, 100, 101, candidates, 0)).hasMessageContaining("vocab <= rowLength");
            assertThatThrownBy(() -> b.selectCandidates(logits, 2, 100, 100, candidates, 1)).hasMessageContaining("outside the 2 rows");
            assertThatThrownBy(() -> b.selectCandidates(logits, 2, 101, 100, candidates, 0)).hasMessageContaining("outside a buffer of 200");
            assertThat(device.launches(Kernel.TOP_K)).isZero();
        }
    }

    @Test
    void longDecodesSplitAttentionOverPositions() {
        try (GraphRun run = new GraphRun(SharedModels.stories260K(), backend(), 16, 1, 1024)) {
            int[] tokens = new int[16];
            for (int p = 0; p < 1000; p += 16) {
                run.step(tokens, 16, p);
            }
            long combines = device.launches(Kernel.ATTENTION_COMBINE);
            run.step(tokens, 1, 1000);
            int[] grid = device.lastGrid[Kernel.ATTENTION.ordinal()];
            // stories260K: 8 heads over 4 KV heads, so a decode step has 4 tiles; 1001 positions: one
            // split per 32 (up to 64: 8 blocks per SM of the fake's 132).
            assertThat(grid[0]).isEqualTo(1);
            assertThat(grid[1]).isEqualTo(4);
            assertThat(grid[2]).isEqualTo(32);
            assertThat(device.launches(Kernel.ATTENTION_COMBINE) - combines).isEqualTo(run.config.layers());
        }
    }

    /** A sliding window caps the positions a decode reads, so it takes fewer splits (none for a short window). */
    @Test
    void slidingWindowsSplitOnlyTheAttendedPositions() {
        int heads = 8;
        int kvHeads = 4;
        int headDim = 8;
        int[][] windowAndSplits = {{0, 32}, {5000, 32}, {1001, 32}, {256, 8}, {129, 8}, {128, 4}, {33, 2}, {32, 1}, {1, 1}};
        try (CudaBackend b = backend()) {
            BatchLayout layout = new BatchLayout(16);
            layout.addSequence(java.util.stream.IntStream.range(0, 63).toArray(), 63);
            layout.addToken(0, 0, 1000, true);
            b.beginStep(layout);
            Buffer q = b.allocate(heads * headDim);
            Buffer out = b.allocate(heads * headDim);
            Buffer cache = b.allocate(63L * 16 * kvHeads * headDim);
            for (int[] variant : windowAndSplits) {
                long combines = device.launches(Kernel.ATTENTION_COMBINE);
                b.attention(out, q, cache, cache, layout, heads, kvHeads, headDim, 0.35f, variant[0], 50f);
                assertThat(device.lastGrid[Kernel.ATTENTION.ordinal()][2]).as("splits for window %d", variant[0])
                        .isEqualTo(variant[1]);
                assertThat(device.launches(Kernel.ATTENTION_COMBINE) - combines).isEqualTo(variant[1] > 1 ? 1 : 0);
            }
            assertThatThrownBy(() -> b.attention(out, q, cache, cache, layout, heads, kvHeads, headDim, 0.35f, -1, 0f))
                    .hasMessageContaining("window >= 0");
            for (float softcap : new float[] {-1f, Float.NaN, Float.POSITIVE_INFINITY}) {
                assertThatThrownBy(() -> b.attention(out, q, cache, cache, layout, heads, kvHeads, headDim, 0.35f, 0, softcap))
                        .hasMessageContaining("finite softcap >= 0");
            }
        }
    }

    @Test
    void gatedActivationsBiasesAndScalingLaunchTheirKernels() {
        try (CudaBackend b = backend(); Arena arena = Arena.ofConfined()) {
            Buffer x = b.allocate(3 * 24);
            Buffer y = b.allocate(3 * 24);
            for (Activation activation : Activation.values()) {
                b.gatedActivation(x, y, 3 * 24, activation);
            }
            assertThat(device.launches(Kernel.GATED_ACTIVATION)).isEqualTo(Activation.values().length);
            // A bias as GGUF files hold it (one F16 row), uploaded as F32 like the norm weights.
            MemorySegment f16 = arena.allocate(2L * 24);
            Weight bias = b.upload(new Tensor("bias", DType.F16, new long[] {24}, f16));
            b.addBias(x, bias, 3);
            assertThat(device.lastGrid[Kernel.ADD_BIAS.ordinal()][0]).as("one block per row").isEqualTo(3);
            assertThatThrownBy(() -> b.addBias(x, bias, 4)).hasMessageContaining("outside a buffer of 72");
            Weight matrix = b.upload(new Tensor("m", DType.F32, new long[] {24, 2}, arena.allocate(4L * 48)));
            assertThatThrownBy(() -> b.addBias(x, matrix, 1)).hasMessageContaining("m is not a vector");
            b.scale(x, 3 * 24, 45.25f);
            assertThat(device.launches(Kernel.SCALE)).isEqualTo(1);
            assertThatThrownBy(() -> b.scale(x, 3 * 24 + 1, 2f)).hasMessageContaining("outside a buffer of 72");
        }
    }

    @Test
    void invalidCallsAreRejectedOnTheHost() {
        try (CudaBackend b = backend(); Arena arena = Arena.ofConfined()) {
            MemorySegment data = arena.allocate(4L * 8 * 16);
            Weight w = b.upload(new Tensor("w", DType.F32, new long[] {16, 8}, data));
            Buffer small = b.allocate(8);
            Buffer in = b.allocate(16);
            assertThatThrownBy(() -> b.matmul(small, in, w, 2)).isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("outside a buffer of 8");
            BatchLayout layout = new BatchLayout(16);
            layout.addSequence(new int[] {0}, 1);
            layout.addToken(0, 8, 0, true);
            b.beginStep(layout);
            assertThatThrownBy(() -> b.embed(b.allocate(16), w, layout)).hasMessageContaining("token id 8 outside the vocabulary of 8");
            Buffer cache = b.allocate(16);
            assertThatThrownBy(() -> b.attention(in, in, cache, cache, layout, 3, 2, 8, 1f, 0, 0f))
                    .hasMessageContaining("heads a multiple of kvHeads");
        }
    }

    @Test
    void readAndWriteGoThroughTheDeviceMemory() {
        try (CudaBackend b = backend()) {
            Buffer buffer = b.allocate(10);
            b.write(new float[] {1, 2, 3, 4}, 1, buffer, 5, 3);
            float[] back = new float[10];
            b.read(buffer, 0, back, 0, 10);
            assertThat(back).containsExactly(0, 0, 0, 0, 0, 2, 3, 4, 0, 0);
            Buffer other = b.allocate(4);
            b.copy(other, 1, buffer, 5, 3);
            float[] copied = new float[4];
            b.read(other, 0, copied, 0, 4);
            assertThat(copied).containsExactly(0, 2, 3, 4);
        }
    }
}
