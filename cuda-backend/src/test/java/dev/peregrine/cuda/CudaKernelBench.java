package dev.peregrine.cuda;

import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * A quick measurement of the CUDA kernels (not a unit test), run by scripts/gpu-check.sh: the
 * weights of a whole Llama 3.2 1B decode step (16 layers of q, k, v, o, gate, up, down and the
 * tied 128256 x 2048 output matrix) streamed by the matrix-vector kernels for 1, 4 and 8 token
 * rows, in GB/s and the tokens per second that bounds; the same matrices as a 512-token prefill
 * (cuBLAS, TFLOP/s); decode attention at long contexts; and the cost of one kernel launch.
 *
 * <p>Weights hold a constant byte pattern: the time of these kernels does not depend on values.
 * Run with {@code java --enable-native-access=ALL-UNNAMED -cp <test classpath> dev.peregrine.cuda.CudaKernelBench [repetitions|probe]}.
 */
public final class CudaKernelBench {
    private static final int DIM = 2048;
    private static final int LAYERS = 16;
    private static final int HEADS = 32;
    private static final int KV_HEADS = 8;
    private static final int HEAD_DIM = 64;
    private static final int FFN = 8192;
    private static final int VOCAB = 128256;

    /** {@code [repetitions]} runs the benchmark; {@code probe} only says whether CUDA is usable (exit status 0) or why not (1). */
    public static void main(String[] args) {
        CudaBackendProvider provider = new CudaBackendProvider();
        if (provider.unavailableReason().isPresent()) {
            System.out.println("CUDA is not usable here: " + provider.unavailableReason().get());
            System.exit(1);
        }
        if (args.length > 0 && args[0].equals("probe")) {
            try (CudaBackend cuda = (CudaBackend) provider.create(new BackendConfig(0, 0))) {
                System.out.println(cuda.description());
            }
            return;
        }
        int reps = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        try (CudaBackend cuda = (CudaBackend) provider.create(new BackendConfig(0, 0)); Arena arena = Arena.ofShared()) {
            System.out.println(cuda.description());
            launchCost(cuda);
            for (DType type : new DType[] {DType.BF16, DType.Q8_0, DType.Q4_0}) {
                decodeAndPrefill(cuda, arena, type, reps);
            }
            attention(cuda, reps);
        }
    }

    private static void launchCost(CudaBackend cuda) {
        Buffer a = cuda.allocate(256);
        Buffer b = cuda.allocate(256);
        float[] one = new float[1];
        for (int warm = 0; warm < 1000; warm++) {
            cuda.add(a, b, 256);
        }
        cuda.read(a, 0, one, 0, 1);
        int n = 20_000;
        long t0 = System.nanoTime();
        for (int i = 0; i < n; i++) {
            cuda.add(a, b, 256);
        }
        long queued = System.nanoTime();
        cuda.read(a, 0, one, 0, 1);
        long done = System.nanoTime();
        System.out.printf(Locale.ROOT, "launch: %.2f us per kernel on the host, %.2f us per kernel until the GPU is done%n",
                (queued - t0) / 1e3 / n, (done - t0) / 1e3 / n);
    }

    private static void decodeAndPrefill(CudaBackend cuda, Arena arena, DType type, int reps) {
        List<Weight> weights = new ArrayList<>();
        long bytes = 0;
        int[][] shapes = {{DIM, DIM}, {DIM, KV_HEADS * HEAD_DIM}, {DIM, KV_HEADS * HEAD_DIM}, {DIM, DIM},
                {DIM, FFN}, {DIM, FFN}, {FFN, DIM}};
        for (int layer = 0; layer < LAYERS; layer++) {
            for (int[] s : shapes) {
                weights.add(cuda.upload(tensor(arena, type, s[0], s[1])));
                bytes += type.bytesFor((long) s[0] * s[1]);
            }
        }
        weights.add(cuda.upload(tensor(arena, type, DIM, VOCAB)));
        bytes += type.bytesFor((long) DIM * VOCAB);
        int prefill = 512;
        Buffer in = cuda.allocate((long) prefill * FFN);
        Buffer out = cuda.allocate((long) prefill * VOCAB);
        for (int tokens : new int[] {1, 4, 8}) {
            double seconds = time(cuda, out, reps, () -> {
                for (Weight w : weights) {
                    cuda.matmul(out, in, w, tokens);
                }
            });
            System.out.printf(Locale.ROOT, "decode %-5s %d token row(s): %7.1f GB/s of weights, %6.0f steps/s (%.2f GB per step)%n",
                    type, tokens, bytes / seconds / 1e9, 1 / seconds, bytes / 1e9);
        }
        double seconds = time(cuda, out, Math.max(2, reps / 3), () -> {
            for (Weight w : weights) {
                cuda.matmul(out, in, w, prefill);
            }
        });
        double flops = 2.0 * prefill * (bytes / (type.blockBytes() / (double) type.blockSize()));
        System.out.printf(Locale.ROOT, "prefill %-5s %d tokens: %7.1f TFLOP/s, %8.0f tokens/s through the matrices%n",
                type, prefill, flops / seconds / 1e12, prefill / seconds);
    }

    private static void attention(CudaBackend cuda, int reps) {
        for (DType kvType : new DType[] {DType.F32, DType.F16}) {
            attention(cuda, reps, kvType);
        }
    }

    /** Decode attention over caches of {@code kvType} values (F32, or F16: half the bytes to read). */
    private static void attention(CudaBackend cuda, int reps, DType kvType) {
        int blockSize = 16;
        for (int[] batch : new int[][] {{1, 1024}, {1, 8192}, {32, 1024}}) {
            int sequences = batch[0];
            int length = batch[1];
            int blocksPerSequence = (length + blockSize) / blockSize;
            BatchLayout layout = new BatchLayout(blockSize);
            int[] table = new int[blocksPerSequence];
            for (int s = 0; s < sequences; s++) {
                for (int b = 0; b < blocksPerSequence; b++) {
                    table[b] = s * blocksPerSequence + b;
                }
                layout.addSequence(table, blocksPerSequence);
                layout.addToken(s, 1, length, true);
            }
            long cacheValues = (long) sequences * blocksPerSequence * blockSize * KV_HEADS * HEAD_DIM;
            Buffer keys = cuda.allocate(cacheValues, kvType);
            Buffer values = cuda.allocate(cacheValues, kvType);
            Buffer q = cuda.allocate((long) sequences * HEADS * HEAD_DIM);
            Buffer out = cuda.allocate((long) sequences * HEADS * HEAD_DIM);
            cuda.beginStep(layout);
            double seconds = time(cuda, out, reps, () -> {
                for (int layer = 0; layer < LAYERS; layer++) {
                    cuda.attention(out, q, keys, values, layout, HEADS, KV_HEADS, HEAD_DIM, 0.125f, 0, 0f);
                }
            }) / LAYERS;
            double kvBytes = 2.0 * sequences * (length + 1) * KV_HEADS * HEAD_DIM * (kvType == DType.F16 ? 2 : Float.BYTES);
            System.out.printf(Locale.ROOT, "attention decode, %s cache, %d sequence(s) at %d positions: %7.1f us per layer, %6.1f GB/s of keys and values%n",
                    kvType, sequences, length, seconds * 1e6, kvBytes / seconds / 1e9);
        }
    }

    /** Seconds per run of {@code work}: one warm-up, then the median of {@code reps} runs. */
    private static double time(CudaBackend cuda, Buffer sync, int reps, Runnable work) {
        float[] one = new float[1];
        work.run();
        cuda.read(sync, 0, one, 0, 1);
        double[] t = new double[reps];
        for (int r = 0; r < reps; r++) {
            long t0 = System.nanoTime();
            work.run();
            cuda.read(sync, 0, one, 0, 1);
            t[r] = (System.nanoTime() - t0) / 1e9;
        }
        java.util.Arrays.sort(t);
        return t[reps / 2];
    }

    private static Tensor tensor(Arena arena, DType type, int columns, int rows) {
        MemorySegment data = arena.allocate(type.bytesFor((long) columns * rows), 64);
        data.fill((byte) 0x11); // small finite values in every type (0x1111 as f16 and bf16; scale and quants for Q)
        return new Tensor("bench", type, new long[] {columns, rows}, data);
    }
}
