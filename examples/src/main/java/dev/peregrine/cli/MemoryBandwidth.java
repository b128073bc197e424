package dev.peregrine.cli;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Measures the machine's memory read bandwidth the way decoding reads weights: each thread sums
 * its own contiguous slice of a buffer much larger than the caches, with the widest vector loads.
 */
final class MemoryBandwidth {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private MemoryBandwidth() {
    }

    /** Best of {@code repetitions} passes over {@code bytes} bytes with {@code threads} threads, in bytes per second. */
    static double measure(long bytes, int threads, int repetitions) {
        try (Arena arena = Arena.ofShared()) {
            MemorySegment buffer = arena.allocate(bytes, 64);
            buffer.fill((byte) 1); // touch every page, so the measurement does not include page faults
            // Let the JIT compile the summing loop first: a measured pass must not run it interpreted
            // (or on-stack-replaced), where the vectors are not intrinsified and it reads far slower.
            for (int i = 0; i < 20_000; i++) {
                sumChunk(buffer, 0, CHUNK);
            }
            double best = 0;
            for (int r = 0; r < repetitions; r++) {
                best = Math.max(best, onePass(buffer, threads));
            }
            return best;
        }
    }

    private static double onePass(MemorySegment buffer, int threads) {
        long slice = buffer.byteSize() / threads / CHUNK * CHUNK;
        float[] sums = new float[threads];
        CountDownLatch ready = new CountDownLatch(threads);
        CountDownLatch go = new CountDownLatch(1);
        List<Thread> workers = new ArrayList<>();
        for (int t = 0; t < threads; t++) {
            int index = t;
            workers.add(Thread.ofPlatform().start(() -> {
                ready.countDown();
                await(go);
                sums[index] = sum(buffer, index * slice, slice);
            }));
        }
        await(ready);
        long t0 = System.nanoTime();
        go.countDown();
        for (Thread w : workers) {
            try {
                w.join();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                throw new IllegalStateException("interrupted while measuring bandwidth", e);
            }
        }
        long nanos = System.nanoTime() - t0;
        float total = 0;
        for (float s : sums) {
            total += s;
        }
        if (total < 0) {
            throw new AssertionError(); // keeps the sums alive, so the reads cannot be optimised away
        }
        return slice * threads * 1e9 / nanos;
    }

    /** Bytes summed per call of {@link #sumChunk}: calls of a compiled method, never one long loop. */
    private static final long CHUNK = 64 * 1024;

    private static float sum(MemorySegment m, long from, long length) {
        float total = 0;
        long end = from + length / CHUNK * CHUNK;
        for (long at = from; at < end; at += CHUNK) {
            total += sumChunk(m, at, CHUNK);
        }
        return total;
    }

    private static float sumChunk(MemorySegment m, long from, long length) {
        int step = SPECIES.vectorByteSize();
        FloatVector a = FloatVector.zero(SPECIES);
        FloatVector b = FloatVector.zero(SPECIES);
        FloatVector c = FloatVector.zero(SPECIES);
        FloatVector d = FloatVector.zero(SPECIES);
        long end = from + length - 4L * step;
        long i = from;
        for (; i <= end; i += 4L * step) {
            a = a.add(FloatVector.fromMemorySegment(SPECIES, m, i, ByteOrder.LITTLE_ENDIAN));
            b = b.add(FloatVector.fromMemorySegment(SPECIES, m, i + step, ByteOrder.LITTLE_ENDIAN));
            c = c.add(FloatVector.fromMemorySegment(SPECIES, m, i + 2L * step, ByteOrder.LITTLE_ENDIAN));
            d = d.add(FloatVector.fromMemorySegment(SPECIES, m, i + 3L * step, ByteOrder.LITTLE_ENDIAN));
        }
        return a.add(b).add(c).add(d).reduceLanes(jdk.incubator.vector.VectorOperators.ADD);
    }

    private static void await(CountDownLatch latch) {
        try {
            latch.await();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted while measuring bandwidth", e);
        }
    }
}
