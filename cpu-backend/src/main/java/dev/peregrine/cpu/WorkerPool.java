package dev.peregrine.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed set of threads that run one range task at a time, split into contiguous slices (one per
 * thread, the caller included) so that each thread streams its own part of the weights. Workers
 * spin briefly after a task, then park until the next one. No allocation per task.
 */
final class WorkerPool implements AutoCloseable {
    /** Work on the index range [start, end), run by thread {@code thread} (0 = the caller). */
    interface RangeTask {
        void run(int start, int end, int thread);
    }

    private static final int SPIN_ITERATIONS = 20_000;
    /** Below this many multiply-adds a task runs on the caller: waking threads would cost more. */
    static final long MIN_PARALLEL_WORK = 1 << 16;

    private final int threads;
    private final Thread[] workers;
    private final AtomicInteger remaining = new AtomicInteger();
    /** 1 while a worker is (about to be) parked; volatile semantics pair with {@code generation}. */
    private final AtomicIntegerArray parked;
    private volatile long generation;
    private volatile boolean closed;
    private RangeTask task;
    private int size;
    private int grain;
    private volatile Throwable failure;

    WorkerPool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1");
        }
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        this.parked = new AtomicIntegerArray(threads);
        for (int i = 0; i < workers.length; i++) {
            int index = i + 1;
            workers[i] = Thread.ofPlatform().daemon().name("peregrine-cpu-" + index).unstarted(() -> workLoop(index));
            workers[i].start();
        }
    }

    int threads() {
        return threads;
    }

    /**
     * Runs {@code task} over [0, size) on all threads and returns when every slice is done. Slices
     * are rounded to multiples of {@code grain} (e.g. so that threads split on block boundaries).
     * {@code work} estimates the whole task's cost in multiply-adds; small tasks run on the caller.
     */
    synchronized void parallelFor(int size, int grain, long work, RangeTask task) {
        if (size <= 0) {
            return;
        }
        if (workers.length == 0 || size <= grain || work < MIN_PARALLEL_WORK) {
            task.run(0, size, 0);
            return;
        }
        this.task = task;
        this.size = size;
        this.grain = grain;
        this.failure = null;
        remaining.set(workers.length);
        generation++;
        for (int i = 0; i < workers.length; i++) {
            if (parked.get(i + 1) == 1) {
                LockSupport.unpark(workers[i]);
            }
        }
        runSlice(0);
        while (remaining.get() > 0) {
            Thread.onSpinWait();
        }
        this.task = null;
        Throwable f = failure;
        if (f != null) {
            if (f instanceof RuntimeException r) {
                throw r;
            }
            if (f instanceof Error e) {
                throw e;
            }
            throw new IllegalStateException(f);
        }
    }

    private void runSlice(int thread) {
        int units = (size + grain - 1) / grain;
        int start = (int) Math.min(size, (long) units * thread / threads * grain);
        int end = (int) Math.min(size, (long) units * (thread + 1) / threads * grain);
        if (start < end) {
            task.run(start, end, thread);
        }
    }

    private void workLoop(int index) {
        long seen = 0;
        while (true) {
            int spins = 0;
            while (generation == seen && !closed) {
                if (spins++ < SPIN_ITERATIONS) {
                    Thread.onSpinWait();
                } else {
                    parked.set(index, 1);
                    if (generation == seen && !closed) {
                        LockSupport.park(this);
                    }
                    parked.set(index, 0);
                }
            }
            if (closed) {
                return;
            }
            seen = generation;
            try {
                runSlice(index);
            } catch (Throwable t) {
                failure = t;
            } finally {
                remaining.decrementAndGet();
            }
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w);
        }
        for (Thread w : workers) {
            try {
                w.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
