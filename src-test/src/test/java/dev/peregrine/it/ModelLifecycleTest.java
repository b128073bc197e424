package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.peregrine.Completion;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.PeregrineException;
import dev.peregrine.RequestRejectedException;
import dev.peregrine.Session;
import dev.peregrine.Speculation;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionException;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.MethodOrderer;
import org.junit.jupiter.api.Order;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestMethodOrder;

/** Loading and closing models frees everything: heap, native memory, file mappings, threads. */
@TestMethodOrder(MethodOrderer.OrderAnnotation.class)
class ModelLifecycleTest {

    /**
     * First in the class: run after this class's tests of closed models and refused calls, its
     * resident memory grew by 560 MB in 2 of 5 runs (under 400 MB in 8 of 8 runs first), though
     * its own loads leaked nothing; it is about leaks of its own loads.
     */
    @Test
    @Order(1)
    void loadingAndClosingAThousandTimesLeaksNothing() throws IOException {
        Path file = SharedModels.stories260K();
        ModelOptions options = ModelOptions.defaults().withThreads(2);
        // Warm up (class loading, JIT), then take the baseline.
        for (int i = 0; i < 20; i++) {
            Model.load(file, options).close();
        }
        long heapBefore = usedHeapAfterGc();
        int threadsBefore = ManagementFactory.getThreadMXBean().getThreadCount();
        long rssBefore = 0;

        for (int i = 0; i < 1000; i++) {
            if (i == 200) {
                // Resident memory is measured over the last 800 loads: by now the JVM's own heap,
                // code cache and malloc arenas have grown to their working size, which depends on
                // what else ran in this JVM and is not what this test is about.
                rssBefore = offHeapResidentBytes();
            }
            try (Model model = Model.load(file, options)) {
                if (i % 100 == 0) {
                    assertThat(model.generator().generate("Once", GenerationConfig.greedy().maxTokens(2)).outputTokens()).hasSize(2);
                }
            }
        }

        assertThat(mappingsOf(file)).as("mappings of the model file still open").isZero();
        assertThat(ManagementFactory.getThreadMXBean().getThreadCount()).isLessThanOrEqualTo(threadsBefore);
        // Each load allocates ~10 MB of KV cache and maps 1.2 MB: leaking either would grow by 1 to
        // 8 GB over 800 loads. The bound leaves room for the JVM's own growth (code cache, malloc
        // arenas of the threads each load starts), which reached ~220 MB in a full CI run.
        assertThat(offHeapResidentBytes() - rssBefore).as("resident memory growth outside the Java heap over 800 loads")
                .isLessThan(400L << 20);
        assertThat(usedHeapAfterGc() - heapBefore).as("heap growth").isLessThan(20L << 20);
    }

    @Test
    void aClosedModelRefusesWork() {
        Model model = Model.load(SharedModels.stories260K());
        var generator = model.generator();
        model.close();
        model.close(); // idempotent
        assertThatThrownBy(() -> generator.generate("Once", GenerationConfig.greedy().maxTokens(2)))
                .isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        assertThatThrownBy(model::newSession).isInstanceOf(IllegalStateException.class);
    }

    /** Closing a model with requests running fails each of them and leaves metrics that count none. */
    @Test
    void closingAModelFailsItsRequestsAndItsMetricsCountNone() {
        Model model = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withMaxSequences(2));
        var generator = model.generator();
        GenerationConfig endless = GenerationConfig.greedy().maxTokens(1500).ignoreEos(true);
        List<CompletableFuture<Completion>> futures = new ArrayList<>();
        for (int i = 0; i < 5; i++) {
            futures.add(generator.generateAsync("Once upon a time", endless));
        }
        while (generator.metrics().runningSequences() == 0) {
            Thread.onSpinWait();
        }
        model.close();
        for (var f : futures) {
            assertTimeoutPreemptively(Duration.ofSeconds(20), () -> assertThatThrownBy(f::join)
                    .hasCauseInstanceOf(IllegalStateException.class).hasMessageContaining("the model is closed"));
        }
        assertThat(generator.metrics().runningSequences()).isZero();
        assertThat(generator.metrics().waitingRequests()).isZero();
    }

    /**
     * close() frees the backend after the scheduler's loop ends, so it waits for the loop even when
     * its caller is interrupted (the interrupt stays set); and a drafter blocked in an interruptible
     * wait is interrupted after a few seconds, so that close() returns.
     */
    @Test
    void closeWaitsForTheLoopThroughAnInterruptAndWakesABlockedDrafter() throws Exception {
        java.util.concurrent.CountDownLatch entered = new java.util.concurrent.CountDownLatch(1);
        java.util.concurrent.CountDownLatch never = new java.util.concurrent.CountDownLatch(1);
        Model model = Model.load(SharedModels.stories260K());
        CompletableFuture<Completion> blocked = model.generator().generateAsync("Once upon a time", GenerationConfig.greedy()
                .maxTokens(20).withSpeculation(Speculation.drafter((tokens, length, draft) -> {
                    entered.countDown();
                    try {
                        never.await();
                    } catch (InterruptedException e) {
                        throw new IllegalStateException("drafter interrupted", e);
                    }
                }, 3)));
        entered.await();
        Thread.currentThread().interrupt();
        long start = System.nanoTime();
        model.close(); // an interrupted wait would return before the loop ends, and free what it still uses
        assertThat(Thread.interrupted()).as("the caller's interrupt is kept").isTrue();
        assertThat((System.nanoTime() - start) / 1e9).as("seconds in close()").isGreaterThan(4);
        assertThat(Thread.getAllStackTraces().keySet()).as("a scheduler thread still in the drafter")
                .noneMatch(t -> t.getName().startsWith("peregrine-scheduler-") && Arrays.stream(t.getStackTrace())
                        .anyMatch(e -> e.getClassName().contains("ModelLifecycleTest")));
        assertThatThrownBy(blocked::join).isInstanceOf(CompletionException.class);
    }

    /**
     * Requests submitted from several threads while the model closes each end, one way or the
     * other: none is left waiting in a queue that no loop reads any more.
     */
    @Test
    void requestsSubmittedWhileTheModelClosesAllEnd() throws Exception {
        for (int round = 0; round < 20; round++) {
            Model model = Model.load(SharedModels.stories260K());
            var generator = model.generator();
            GenerationConfig config = GenerationConfig.greedy().maxTokens(2);
            List<CompletableFuture<Completion>> futures = Collections.synchronizedList(new ArrayList<>());
            List<Thread> submitters = new ArrayList<>();
            for (int t = 0; t < 3; t++) {
                submitters.add(Thread.ofPlatform().start(() -> {
                    for (int i = 0; i < 200; i++) {
                        try {
                            futures.add(generator.generateAsync("Once", config));
                        } catch (IllegalStateException | RequestRejectedException e) {
                            return; // closed (or full): refused at once, nothing left waiting
                        }
                    }
                }));
            }
            Thread.sleep(round % 5);
            model.close();
            for (Thread t : submitters) {
                t.join();
            }
            for (CompletableFuture<Completion> f : futures) {
                assertTimeoutPreemptively(Duration.ofSeconds(20), () -> {
                    try {
                        f.join();
                    } catch (CompletionException e) {
                        assertThat(e).hasCauseInstanceOf(IllegalStateException.class);
                    }
                });
            }
        }
    }

    /**
     * A closed session refuses every call at once with a typed exception (a generate on it used to
     * leave the scheduler failing on its closed sequence at every step: the call never returned and
     * the model served no one), and the model goes on serving other requests.
     */
    @Test
    void aClosedSessionRefusesWorkAndTheModelGoesOn() {
        try (Model model = Model.load(SharedModels.stories260K())) {
            Session session = model.newSession();
            session.append("Once upon a time");
            Session fork = session.fork();
            session.close();
            session.close(); // idempotent
            GenerationConfig config = GenerationConfig.greedy().maxTokens(5);
            List<ThrowingCallable> calls = List.of(() -> session.generate(config), () -> session.append(" more"),
                    () -> session.append(5, 6), () -> session.rewind(1), session::fork, session::position, session::tokens);
            for (ThrowingCallable call : calls) {
                assertTimeoutPreemptively(Duration.ofSeconds(20), () -> assertThatThrownBy(call)
                        .isInstanceOf(IllegalStateException.class).hasMessage("the session is closed"));
            }
            // The fork keeps its own reference to the shared blocks; the model serves others.
            String plain = model.generator().generate("Once upon a time", config).text();
            assertThat(fork.generate(config).text()).isEqualTo(plain);
            fork.close();
        }
    }

    /**
     * On the scheduler thread, where a future completes and a Drafter runs, a call that would wait
     * for the scheduler (a blocking generate, closing the model) is refused with a typed exception
     * and fails only that work; such calls used to wait for themselves, and the model served no
     * one again. Chained with the async variants, they run elsewhere and work.
     */
    @Test
    void callsThatWouldWaitForTheSchedulerOnItsOwnThreadAreRefused() {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(4);
        // Long enough that what is chained on its future is in place before it completes (on a
        // completed future, thenApply runs on the caller's thread).
        GenerationConfig first = GenerationConfig.greedy().maxTokens(300).ignoreEos(true);
        Model model = Model.load(SharedModels.stories260K());
        try {
            var generator = model.generator();
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> assertThatThrownBy(() -> generator
                    .generateAsync("Once", first).thenApply(c -> generator.generate(c.text(), config)).get())
                    .hasCauseInstanceOf(IllegalStateException.class).hasMessageContaining("scheduler thread"));
            String chained = assertTimeoutPreemptively(Duration.ofSeconds(60), () -> generator.generateAsync("Once", config)
                    .thenApplyAsync(c -> generator.generate(c.text(), config).text()).get());
            assertThat(chained).isNotEmpty();

            var waiting = GenerationConfig.greedy().maxTokens(8)
                    .withSpeculation(Speculation.drafter((tokens, length, draft) ->
                            generator.generate("Once", GenerationConfig.greedy().maxTokens(1)), 4));
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> assertThatThrownBy(
                    () -> generator.generate("Once upon a time", waiting))
                    .isInstanceOf(PeregrineException.class).hasMessageContaining("scheduler thread"));

            Model closing = model;
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> assertThatThrownBy(() -> generator
                    .generateAsync("Once", first).thenApply(c -> {
                        closing.close();
                        return c;
                    }).get()).hasCauseInstanceOf(IllegalStateException.class));
            assertThat(generator.generate("Once", config).outputTokens()).isNotEmpty(); // still serving
            assertTimeoutPreemptively(Duration.ofSeconds(60), () -> generator.generateAsync("Once", config)
                    .thenApplyAsync(c -> {
                        closing.close();
                        return c;
                    }).get());
            assertThatThrownBy(() -> generator.generate("Once", config)).isInstanceOf(IllegalStateException.class);
        } finally {
            model.close();
        }
    }

    /**
     * A timeout too long for nanoseconds is no limit (a 300-year timeout once overflowed after
     * taking a place in the waiting queue: two of them left a queue of 2 refusing every request for
     * good), and a request refused before submission (a stop token outside the vocabulary) leaves
     * the queue as it was.
     */
    @Test
    void aCenturyLongTimeoutIsNoLimitAndFailedRequestsFreeTheirPlace() {
        try (Model model = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withMaxWaitingRequests(2))) {
            GenerationConfig forever = GenerationConfig.greedy().maxTokens(3).timeout(Duration.ofDays(365L * 300));
            for (int i = 0; i < 5; i++) {
                assertThat(model.generator().generate("Once", forever).outputTokens()).hasSize(3);
            }
            GenerationConfig badStop = GenerationConfig.greedy().maxTokens(3).stopTokens(99_999);
            for (int i = 0; i < 5; i++) {
                assertThatThrownBy(() -> model.generator().generate("Once", badStop))
                        .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("stop token 99999 is outside");
            }
            assertThat(model.generator().metrics().waitingRequests()).isZero();
            assertThat(model.generator().generate("Once", GenerationConfig.greedy().maxTokens(3)).outputTokens()).hasSize(3);
        }
    }

    /**
     * Option values no machine could serve are refused with the option's name and range, before
     * anything is allocated (100,000 threads once left 32,000 of them running after an
     * OutOfMemoryError; Long.MAX_VALUE KV tokens overflowed into a one-block cache).
     */
    @Test
    void impossibleOptionsAreRefusedByName() {
        ModelOptions d = ModelOptions.defaults();
        assertThatThrownBy(() -> d.withThreads(100_000)).isInstanceOf(IllegalArgumentException.class)
                .hasMessage("threads must be 0 (one per core) to 512, got 100000");
        assertThatThrownBy(() -> d.withThreads(-1)).hasMessageContaining("threads must be 0");
        assertThatThrownBy(() -> d.withKvCacheTokens(Long.MAX_VALUE)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("kvCacheTokens must be 0 (the default budget) to 4294967296");
        assertThatThrownBy(() -> d.withMaxBatchTokens(Integer.MAX_VALUE)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("maxBatchTokens must be 1 to 65536");
        assertThatThrownBy(() -> d.withMaxWaitingRequests(0)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("maxWaitingRequests must be >= 1");
        assertThatThrownBy(() -> Speculation.promptLookup(1, 3, Integer.MAX_VALUE))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("maxDraft must be 1 to 64");
        assertThatThrownBy(() -> Model.load(SharedModels.stories260K(), null)).isInstanceOf(NullPointerException.class)
                .hasMessageContaining("options");
        assertThatThrownBy(() -> GenerationConfig.greedy().timeout(null)).isInstanceOf(NullPointerException.class)
                .hasMessageContaining("timeout");
        try (Model model = Model.load(SharedModels.stories260K())) {
            assertThatThrownBy(() -> model.generator().generate("Once", GenerationConfig.greedy(), null))
                    .isInstanceOf(NullPointerException.class).hasMessageContaining("onToken");
            assertThatThrownBy(() -> model.generator().generate("Once", null))
                    .isInstanceOf(NullPointerException.class).hasMessageContaining("config");
            Session session = model.newSession().append("Once");
            assertThatThrownBy(() -> session.generate(null)).isInstanceOf(NullPointerException.class)
                    .hasMessageContaining("config");
            assertThat(model.generator().metrics().waitingRequests()).isZero();
        }
        // A KV cache the machine cannot hold fails the load with a typed exception naming the option.
        assertThatThrownBy(() -> Model.load(SharedModels.stories260K(), d.withKvCacheTokens(ModelOptions.MAX_KV_CACHE_TOKENS)))
                .isInstanceOf(PeregrineException.class).hasMessageContaining("ModelOptions.kvCacheTokens");
    }

    private static long usedHeapAfterGc() {
        for (int i = 0; i < 3; i++) {
            System.gc();
        }
        Runtime rt = Runtime.getRuntime();
        return rt.totalMemory() - rt.freeMemory();
    }

    /**
     * Resident memory less the Java heap's committed size: the garbage collector may grow the heap
     * while this test runs (how much depends on what ran before in this JVM); what a leak of
     * off-heap memory (KV caches, mappings, arenas) would grow is the rest.
     */
    private static long offHeapResidentBytes() throws IOException {
        return residentBytes() - ManagementFactory.getMemoryMXBean().getHeapMemoryUsage().getCommitted();
    }

    private static long residentBytes() throws IOException {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith("VmRSS:")) {
                return Long.parseLong(line.replaceAll("[^0-9]", "")) * 1024;
            }
        }
        throw new IllegalStateException("no VmRSS in /proc/self/status");
    }

    private static long mappingsOf(Path file) throws IOException {
        String name = file.toRealPath().toString();
        return Files.readAllLines(Path.of("/proc/self/maps")).stream().filter(l -> l.endsWith(name)).count();
    }
}
