package dev.peregrine.cpu;

import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.tensor.DType;

/**
 * A quick measurement of decode attention after a long prompt (not a unit test): one token of one
 * sequence attends to {@code context} cached positions in each of {@code layers} layers' caches,
 * layer after layer as in a decode step, so that the caches are read from memory. Prints GB/s of
 * cache read (keys and values) for F32 and F16 caches with 1 and 2 threads.
 *
 * <p>Run with {@code java --add-modules jdk.incubator.vector -cp <test classpath>
 * dev.peregrine.cpu.AttentionBench [repetitions]}; {@code -Dab.heads=9 -Dab.kvHeads=9 -Dab.headDim=64
 * -Dab.context=1024 -Dab.layers=30} set the shape (the defaults: smollm2-135m's with one KV head per
 * head).
 */
public final class AttentionBench {
    private static final int HEADS = Integer.getInteger("ab.heads", 9);
    private static final int KV_HEADS = Integer.getInteger("ab.kvHeads", 9);
    private static final int HEAD_DIM = Integer.getInteger("ab.headDim", 64);
    private static final int CONTEXT = Integer.getInteger("ab.context", 1024);
    private static final int LAYERS = Integer.getInteger("ab.layers", 30);
    private static final int BLOCK = 16;
    private static final int STEPS = Integer.getInteger("ab.steps", 10);

    public static void main(String[] args) {
        int repetitions = args.length > 0 ? Integer.parseInt(args[0]) : 10;
        String only = args.length > 1 ? args[1] : "";
        for (DType type : new DType[] {DType.F32, DType.F16}) {
            if (!type.toString().startsWith(only)) {
                continue;
            }
            for (int threads = 1; threads <= 2; threads++) {
                run(type, threads, repetitions);
            }
        }
    }

    private static void run(DType type, int threads, int repetitions) {
        try (CpuBackend backend = new CpuBackend(threads, new VectorKernels())) {
            int blocks = (CONTEXT + BLOCK - 1) / BLOCK;
            int[] table = new int[blocks];
            for (int b = 0; b < blocks; b++) {
                table[b] = b;
            }
            long kvValues = (long) blocks * BLOCK * KV_HEADS * HEAD_DIM;
            Buffer[] keys = new Buffer[LAYERS];
            Buffer[] values = new Buffer[LAYERS];
            BatchLayout fill = new BatchLayout(BLOCK);
            fill.addSequence(table, blocks);
            for (int p = 0; p < CONTEXT; p++) {
                fill.addToken(0, 1, p, false);
            }
            Buffer k = KernelBench.randomBuffer(backend, (long) CONTEXT * KV_HEADS * HEAD_DIM, 1);
            Buffer v = KernelBench.randomBuffer(backend, (long) CONTEXT * KV_HEADS * HEAD_DIM, 2);
            for (int l = 0; l < LAYERS; l++) {
                // At least 4 MB each (whole blocks), so that they are mapped as the engine's caches are
                // (HostMemory: huge pages).
                long blockValues = (long) BLOCK * KV_HEADS * HEAD_DIM;
                long allocated = Math.max(kvValues, ((4L << 20) / (type == DType.F16 ? 2 : 4) / blockValues + 1) * blockValues);
                keys[l] = backend.allocate(allocated, type);
                values[l] = backend.allocate(allocated, type);
                backend.storeKv(keys[l], values[l], k, v, KV_HEADS, HEAD_DIM, fill);
            }
            BatchLayout layout = new BatchLayout(BLOCK);
            layout.addToken(layout.addSequence(table, blocks), 1, CONTEXT - 1, true);
            Buffer q = KernelBench.randomBuffer(backend, (long) HEADS * HEAD_DIM, 3);
            Buffer out = backend.allocate((long) HEADS * HEAD_DIM);
            double bytes = 2.0 * LAYERS * CONTEXT * KV_HEADS * HEAD_DIM * (type == DType.F16 ? 2 : 4);
            double[] rates = new double[repetitions];
            for (int r = -3; r < repetitions; r++) {
                long t0 = System.nanoTime();
                for (int step = 0; step < STEPS; step++) {
                    for (int l = 0; l < LAYERS; l++) {
                        backend.attention(out, q, keys[l], values[l], layout, HEADS, KV_HEADS, HEAD_DIM, 0.125f, 0, 0f);
                    }
                }
                long t1 = System.nanoTime();
                if (r >= 0) {
                    rates[r] = STEPS * bytes / (t1 - t0);
                }
            }
            java.util.Arrays.sort(rates);
            System.out.printf("%s cache, %d thread(s): best %.1f GB/s, median %.1f GB/s (%.2f ms a step)%n", type,
                    threads, rates[repetitions - 1], rates[repetitions / 2], bytes / rates[repetitions / 2] / 1e6);
        }
    }

    private AttentionBench() {
    }
}
