package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assertions.assertTimeoutPreemptively;

import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Session;
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import org.assertj.core.api.ThrowableAssert.ThrowingCallable;
import org.junit.jupiter.api.Test;

/** Loading and closing models frees everything: heap, native memory, file mappings, threads. */
class ModelLifecycleTest {

    @Test
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
