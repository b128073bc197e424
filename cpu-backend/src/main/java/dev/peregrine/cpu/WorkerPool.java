package dev.peregrine.cpu;

import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicIntegerArray;
import java.util.concurrent.locks.LockSupport;

/**
 * A fixed set of threads that run one range task at a time. The range is cut into contiguous
 * slices, a few per thread; each thread (the caller included) first claims its own slices, so that
 * it streams its own part of the weights, then claims any slice nobody has started. A worker that
 * the operating system has not scheduled yet (a busy machine, more threads than cores) therefore
 * delays nothing: the others take its slices. Workers spin briefly after a task, then park until
 * the next one. No allocation per task: callers pass a reusable task object whose fields they set
 * before each call.
 */
final class WorkerPool implements AutoCloseable {
    /** Work on the index range [start, end), run by thread {@code thread} (0 = the caller). */
    interface RangeTask {
        void run(int start, int end, int thread);
    }

    private static final int SPIN_ITERATIONS = 20_000;
    /** Below this many multiply-adds a task runs on the caller: waking threads would cost more. */
    static final long MIN_PARALLEL_WORK = 1 << 16;
    /** Slices per thread: enough to rebalance when one thread is slow, few enough to keep long runs. */
    private static final int SLICES_PER_THREAD = 4;

    private final int threads;
    private final Thread[] workers;
    /**
     * 0 while a slice of the current task is open to claim, else 1. Only {@link #parallelFor}
     * opens a flag, after it has written the task's fields, so a successful claim always reads the
     * fields of the task that opened it. Flags therefore start at 1: a worker can read the next
     * task's {@code slices} while that task is being set up (a straggler of the task before), and
     * a flag no task had used yet would otherwise be claimable before it is opened, then opened
     * and claimed again, so that the slice runs twice and {@code remaining} reaches 0 while a
     * slice is still running.
     */
    private final AtomicIntegerArray claimed;
    /** Slices of the current task not finished yet. */
    private final AtomicInteger remaining = new AtomicInteger();
    /** 1 while a worker is (about to be) parked; volatile semantics pair with {@code generation}. */
    private final AtomicIntegerArray parked;
    private volatile long generation;
    private volatile boolean closed;
    // The current task; written before the claim flags are reset, read after a claim succeeds.
    private RangeTask task;
    private int size;
    private int grain;
    private int slices;
    private volatile Throwable failure;

    WorkerPool(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("threads must be >= 1");
        }
        this.threads = threads;
        this.workers = new Thread[threads - 1];
        this.claimed = new AtomicIntegerArray(threads * SLICES_PER_THREAD);
        for (int s = 0; s < claimed.length(); s++) {
            claimed.set(s, 1);
        }
        this.parked = new AtomicIntegerArray(threads);
        for (int i = 0; i < workers.length; i++) {
            int index = i + 1;
            workers[i] = Thread.ofPlatform().daemon().name("peregrine-cpu-" + index).unstarted(() -> workLoop(index));
            try {
                workers[i].start();
            } catch (OutOfMemoryError e) { // the system's thread limit: stop the ones started, or they idle for ever
                workers[i] = null;
                close();
                throw new IllegalStateException("cannot start " + threads + " CPU threads (" + index
                        + " started): " + e.getMessage(), e);
            }
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
        this.slices = Math.min(threads * SLICES_PER_THREAD, (size + grain - 1) / grain);
        this.failure = null;
        remaining.set(slices);
        for (int s = 0; s < slices; s++) {
            claimed.set(s, 0);
        }
        generation++;
        for (int i = 0; i < workers.length; i++) {
            if (parked.get(i + 1) == 1) {
                LockSupport.unpark(workers[i]);
            }
        }
        runSlices(0);
        // Wait for slices other threads are running, yielding once it takes long: when the machine
        // has more busy threads than cores, such a thread may be waiting for this very core.
        for (int spins = 0; remaining.get() > 0; spins++) {
            if (spins < SPIN_ITERATIONS) {
                Thread.onSpinWait();
            } else {
                Thread.yield();
            }
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

    /** Claims and runs slices, this thread's own first, then any left, until none is unclaimed. */
    private void runSlices(int thread) {
        int count = slices;
        int first = thread * SLICES_PER_THREAD;
        for (int k = 0; k < count; k++) {
            int slice = (first + k) % count;
            if (claimed.get(slice) == 0 && claimed.compareAndSet(slice, 0, 1)) {
                try {
                    runSlice(slice, thread);
                } catch (Throwable t) {
                    failure = t;
                } finally {
                    remaining.decrementAndGet();
                }
            }
        }
    }

    private void runSlice(int slice, int thread) {
        int units = (size + grain - 1) / grain;
        int start = (int) Math.min(size, (long) units * slice / slices * grain);
        int end = (int) Math.min(size, (long) units * (slice + 1) / slices * grain);
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
            // If this task is already over (its slices all taken), nothing is claimed here; if a
            // newer one has started meanwhile, a successful claim reads that task's fields (every
            // flag not opened by the task in progress is 1, see claimed).
            runSlices(index);
        }
    }

    @Override
    public void close() {
        closed = true;
        for (Thread w : workers) {
            LockSupport.unpark(w); // (null: a worker that never started, when starting them failed)
        }
        for (Thread w : workers) {
            if (w == null) {
                continue;
            }
            try {
                w.join(1000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
