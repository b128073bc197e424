package dev.peregrine.cpu;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BackendProvider;
import java.util.Optional;

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
        int threads = config.threads() > 0 ? config.threads() : Runtime.getRuntime().availableProcessors();
        return new CpuBackend(threads);
    }
}
