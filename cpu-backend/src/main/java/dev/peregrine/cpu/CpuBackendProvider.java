package dev.peregrine.cpu;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BackendProvider;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashSet;
import java.util.Optional;
import java.util.Set;

/** Registers the CPU backend, which runs everywhere. */
public final class CpuBackendProvider implements BackendProvider {
    @Override
    public String name() {
        return "cpu";
    }

    @Override
    public int priority() {
        return 0;
    }

    @Override
    public Optional<String> unavailableReason() {
        return Optional.empty();
    }

    @Override
    public Backend create(BackendConfig config) {
        int threads = config.threads() > 0 ? config.threads() : defaultThreads();
        return new CpuBackend(threads, CpuBackend.chooseKernels());
    }

    /**
     * One thread per physical core: decode is memory-bound and a second hardware thread on the same
     * core only competes for its vector units. Counted from Linux's CPU topology where readable,
     * never more than the CPUs this process may use.
     */
    static int defaultThreads() {
        int available = Runtime.getRuntime().availableProcessors();
        Set<String> cores = new HashSet<>();
        try {
            for (int cpu = 0; cpu < available; cpu++) {
                Path topology = Path.of("/sys/devices/system/cpu/cpu" + cpu + "/topology");
                cores.add(Files.readString(topology.resolve("physical_package_id")).strip() + "/"
                        + Files.readString(topology.resolve("core_id")).strip());
            }
        } catch (IOException | RuntimeException e) {
            return available; // not Linux, or no topology: assume one thread per core
        }
        return Math.max(1, Math.min(available, cores.size()));
    }
}
