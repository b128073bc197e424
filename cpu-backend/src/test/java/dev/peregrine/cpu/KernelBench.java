package dev.peregrine.cpu;

import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.management.ManagementFactory;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.function.Supplier;

/**
 * A quick measurement of the matmul kernels (not a unit test): GB/s of weights streamed by
 * matrix-vector products (decode) and GFLOP/s of matrix-matrix products (prefill), for a 2048 x 8192
 * weight (8192 inputs, 2048 outputs) of each type, with 1 and 2 threads. Several copies of the
 * weight are cycled so that decode reads from memory, not from the caches.
 *
 * <p>With one thread the rates are per CPU-second of the calling thread (robust to other processes
 * taking turns on the cores); with two they are per wall-clock second.
 *
 * <p>Run with {@code java --add-modules jdk.incubator.vector -cp <test classpath>
 * dev.peregrine.cpu.KernelBench [decode|prefill|all] [repetitions] [type]}. Prints best and median of the
 * repetitions; the machine's load average is printed first, since other work skews the numbers.
 * {@code -Dkb.columns=576 -Dkb.rows=1536} measures another shape (small models' short rows behave
 * differently), {@code -Dkb.bytes=N} cycles through about N bytes of weights in decode,
 * {@code -Dkb.tokens=N} sets the prefill token count (up to 16 take the row kernels).
 */
public final class KernelBench {
    private static final int COLUMNS = Integer.getInteger("kb.columns", 8192);
    private static final int OUTPUTS = Integer.getInteger("kb.rows", 2048);
    /** Bytes of weights the decode measurement cycles through, well beyond any cache. */
    private static final long DECODE_BYTES = Long.getLong("kb.bytes", 384L << 20);

    private record Variant(String name, DType type, Supplier<Kernels> kernels) {
    }

    public static void main(String[] args) throws Exception {
        String what = args.length > 0 ? args[0] : "all";
        int repetitions = args.length > 1 ? Integer.parseInt(args[1]) : 15;
        String only = args.length > 2 ? args[2] : ""; // e.g. "Q8_0": only variants whose name starts so
        System.out.println("load average: " + Arrays.toString(loadAverage()) + ", "
                + Runtime.getRuntime().availableProcessors() + " CPUs, vector kernels: " + new VectorKernels().description());
        List<Variant> variants = new ArrayList<>();
        for (DType type : DType.values()) {
            variants.add(new Variant(type.toString(), type, VectorKernels::new));
        }
        variants.add(new Variant("Q8_0 scalar fallback", DType.Q8_0, ScalarKernels::new));
        for (Variant v : variants) {
            if (!v.name().startsWith(only)) {
                continue;
            }
            if (what.equals("all") || what.equals("decode")) {
                decode(v, repetitions);
            }
            if (what.equals("all") || what.equals("prefill")) {
                prefill(v, Math.max(3, repetitions / 3));
            }
        }
        System.out.println("load average: " + Arrays.toString(loadAverage()));
    }

    private static void decode(Variant v, int repetitions) {
        try (Arena arena = Arena.ofShared()) {
            Tensor first = randomTensor(arena, v.type());
            long bytes = first.data().byteSize();
            int copies = (int) Math.max(2, DECODE_BYTES / bytes);
            if (v.name().contains("scalar")) {
                copies = 2;
                repetitions = 3;
            }
            Tensor[] tensors = new Tensor[copies];
            tensors[0] = first;
            for (int c = 1; c < copies; c++) {
                MemorySegment data = arena.allocate(bytes, 64);
                data.copyFrom(first.data());
                tensors[c] = new Tensor("w" + c, v.type(), new long[] {COLUMNS, OUTPUTS}, data);
            }
            StringBuilder line = new StringBuilder(String.format("decode  %-22s", v.name()));
            for (int threads : new int[] {1, 2}) {
                try (CpuBackend backend = new CpuBackend(threads, v.kernels().get())) {
                    Weight[] weights = new Weight[copies];
                    for (int c = 0; c < copies; c++) {
                        weights[c] = backend.upload(tensors[c]);
                    }
                    Buffer x = randomBuffer(backend, COLUMNS, 3);
                    Buffer out = backend.allocate(OUTPUTS);
                    double[] gbs = new double[repetitions];
                    warmUp(() -> {
                        for (Weight w : weights) {
                            backend.matmul(out, x, w, 1);
                        }
                    }, weights.length);
                    long allocated = allocatedBytes();
                    for (int r = 0; r < repetitions; r++) {
                        long t0 = clock(threads);
                        for (Weight w : weights) {
                            backend.matmul(out, x, w, 1);
                        }
                        gbs[r] = (double) bytes * copies / (clock(threads) - t0);
                    }
                    long perCall = (allocatedBytes() - allocated) / ((long) repetitions * copies);
                    Arrays.sort(gbs);
                    line.append(String.format("  %dT best %5.1f GB/s median %5.1f (%d B/call)", threads,
                            gbs[repetitions - 1], gbs[repetitions / 2], perCall));
                }
            }
            System.out.println(line);
        }
    }

    private static void prefill(Variant v, int repetitions) {
        int tokens = v.name().contains("scalar") ? 8 : Integer.getInteger("kb.tokens", 128);
        if (v.name().contains("scalar")) {
            repetitions = 1;
        }
        try (Arena arena = Arena.ofShared()) {
            Tensor t = randomTensor(arena, v.type());
            StringBuilder line = new StringBuilder(String.format("prefill %-22s %3d tokens", v.name(), tokens));
            for (int threads : new int[] {1, 2}) {
                try (CpuBackend backend = new CpuBackend(threads, v.kernels().get())) {
                    Weight w = backend.upload(t);
                    Buffer x = randomBuffer(backend, (long) tokens * COLUMNS, 3);
                    Buffer out = backend.allocate((long) tokens * OUTPUTS);
                    warmUp(() -> backend.matmul(out, x, w, tokens), 1);
                    double[] gflops = new double[repetitions];
                    long allocated = allocatedBytes();
                    for (int r = 0; r < repetitions; r++) {
                        long t0 = clock(threads);
                        backend.matmul(out, x, w, tokens);
                        gflops[r] = 2.0 * COLUMNS * OUTPUTS * tokens / (clock(threads) - t0);
                    }
                    long perCall = (allocatedBytes() - allocated) / repetitions;
                    Arrays.sort(gflops);
                    line.append(String.format("  %dT best %6.1f GFLOP/s median %6.1f (%d B/call)", threads,
                            gflops[repetitions - 1], gflops[repetitions / 2], perCall));
                }
            }
            System.out.println(line);
        }
    }

    /**
     * Runs {@code calls} (that many matmuls) until C2 has compiled the kernels, seen as the
     * allocation per matmul dropping under 1 KB (C1 code boxes its vectors), and for at least 2
     * seconds, or for at most a minute: on a busy machine the compiler threads can take many
     * seconds. Without the 2 seconds, small products (a few tokens on a small matrix, ~100 us a
     * call) were measured before the two-thread path was compiled: 9 against 118 GFLOP/s.
     */
    private static void warmUp(Runnable calls, int count) {
        long start = System.nanoTime();
        long deadline = start + 60_000_000_000L;
        int quiet = 0;
        while ((quiet < 3 || System.nanoTime() - start < 2_000_000_000L) && System.nanoTime() < deadline) {
            long before = allocatedBytes();
            calls.run();
            quiet = (allocatedBytes() - before) / count < 1024 ? quiet + 1 : 0;
        }
    }

    private static Tensor randomTensor(Arena arena, DType type) {
        Random random = new Random(7);
        float[] row = new float[COLUMNS];
        MemorySegment data = arena.allocate(type.bytesFor((long) COLUMNS * OUTPUTS), 64);
        long rowBytes = type.bytesFor(COLUMNS);
        for (int r = 0; r < OUTPUTS; r++) {
            for (int i = 0; i < COLUMNS; i++) {
                row[i] = (float) random.nextGaussian() * 0.02f;
            }
            Quantize.fromFloat(type, row, 0, COLUMNS, data, r * rowBytes);
        }
        return new Tensor("w", type, new long[] {COLUMNS, OUTPUTS}, data);
    }

    /** {@code n} Gaussian floats from {@code seed} in a buffer of {@code backend} (also AttentionBench's). */
    static Buffer randomBuffer(CpuBackend backend, long n, long seed) {
        Random random = new Random(seed);
        float[] values = new float[(int) n];
        for (int i = 0; i < n; i++) {
            values[i] = (float) random.nextGaussian();
        }
        Buffer b = backend.allocate(n);
        backend.write(values, 0, b, 0, values.length);
        return b;
    }

    /**
     * Elapsed time of a run: with one thread all work is on this thread, so its CPU time is used,
     * which other processes competing for the cores do not inflate; with more, wall-clock time.
     */
    private static long clock(int threads) {
        return threads == 1 ? ManagementFactory.getThreadMXBean().getCurrentThreadCpuTime() : System.nanoTime();
    }

    private static long allocatedBytes() {
        return ((com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean()).getTotalThreadAllocatedBytes();
    }

    private static double[] loadAverage() {
        return new double[] {ManagementFactory.getOperatingSystemMXBean().getSystemLoadAverage()};
    }
}
