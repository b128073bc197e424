package dev.peregrine.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.Queue;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.Test;

/**
 * The pool's contract under stress: every slice of a task runs exactly once, and none runs after
 * {@link WorkerPool#parallelFor} has returned. Many more threads than cores, so that workers are
 * descheduled at any point (stragglers from one task meet the set-up of the next), and tiny tasks,
 * so that the caller races ahead of the workers it has just woken.
 */
class WorkerPoolTest {
    private static final int THREADS = 16;

    /** The state of one call, so that a late or stray slice is attributed to the call it read. */
    private static final class Call {
        final int size;
        final AtomicIntegerArray hits;
        volatile boolean returned;

        Call(int size) {
            this.size = size;
            this.hits = new AtomicIntegerArray(size);
        }
    }

    /** One reusable task whose field is set before each call, as CpuBackend's tasks are. */
    private static final class CheckingTask implements WorkerPool.RangeTask {
        final Queue<String> problems = new ConcurrentLinkedQueue<>();
        Call call; // plain field, as in CpuBackend: published by the pool

        @Override
        public void run(int start, int end, int thread) {
            Call c = call;
            if (c.returned) {
                problems.add("slice [" + start + ", " + end + ") started after parallelFor(" + c.size + ") returned");
            }
            if (start < 0 || end > c.size || start >= end) {
                problems.add("slice [" + start + ", " + end + ") is outside [0, " + c.size + ")");
                return;
            }
            for (int i = start; i < end; i++) {
                c.hits.incrementAndGet(i);
            }
            Thread.onSpinWait();
            if (c.returned) {
                problems.add("slice [" + start + ", " + end + ") still ran after parallelFor(" + c.size + ") returned");
            }
        }

        void call(WorkerPool pool, int size) {
            Call c = new Call(size);
            call = c;
            pool.parallelFor(size, 1, WorkerPool.MIN_PARALLEL_WORK, this);
            c.returned = true;
            for (int i = 0; i < size; i++) {
                int h = c.hits.get(i);
                if (h != 1) {
                    problems.add("index " + i + " of parallelFor(" + size + ") ran " + h + " times before it returned");
                    break;
                }
            }
        }
    }

    /**
     * Fresh pools, each fed slice counts that keep growing to the most it cuts (threads x 4) and
     * then vary: a pool's first calls are where a slice index is used for the first time.
     */
    @Test
    void everySliceRunsExactlyOnceAndBeforeParallelForReturns() {
        CheckingTask task = new CheckingTask();
        Random random = new Random(1);
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(4);
        int pools = 0;
        long calls = 0;
        while (System.nanoTime() < deadline && task.problems.isEmpty()) {
            try (WorkerPool pool = new WorkerPool(THREADS)) {
                for (int size = 2; size <= THREADS * 4; size += 1 + random.nextInt(3)) {
                    task.call(pool, size);
                    calls++;
                }
                for (int i = 0; i < 40; i++) {
                    task.call(pool, 2 + random.nextInt(THREADS * 6));
                    calls++;
                }
            }
            pools++;
        }
        assertThat(task.problems).as("problems in %d calls over %d pools", calls, pools).isEmpty();
    }

    @Test
    void aFailingSliceIsRethrownByTheCallAndThePoolStaysUsable() {
        try (WorkerPool pool = new WorkerPool(4)) {
            WorkerPool.RangeTask failing = (start, end, thread) -> {
                if (start == 0) {
                    throw new IllegalStateException("slice 0 failed");
                }
            };
            assertThatThrownBy(() -> pool.parallelFor(100, 1, WorkerPool.MIN_PARALLEL_WORK, failing))
                    .isInstanceOf(IllegalStateException.class)
                    .hasMessage("slice 0 failed");
            CheckingTask task = new CheckingTask();
            task.call(pool, 100);
            assertThat(task.problems).isEmpty();
        }
    }
}
