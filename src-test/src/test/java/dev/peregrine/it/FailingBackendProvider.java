package dev.peregrine.it;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BackendProvider;
import java.util.Optional;

/**
 * A backend that says it is usable and ranks above every real one, then fails to start, as a GPU
 * backend does when the device is out of memory or its driver fails at init. Unavailable unless a
 * test sets {@link #failure}, so other tests never see it.
 */
public final class FailingBackendProvider implements BackendProvider {
    static volatile String failure;
    static volatile int lastDeviceIndex = -1;

    @Override
    public String name() {
        return "failing-test";
    }

    @Override
    public int priority() {
        return 1000;
    }

    @Override
    public Optional<String> unavailableReason() {
        return failure == null ? Optional.of("only for BackendFallbackTest") : Optional.empty();
    }

    @Override
    public Backend create(BackendConfig config) {
        lastDeviceIndex = config.deviceIndex();
        throw new IllegalStateException(failure);
    }
}
