package dev.peregrine.cuda;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BackendProvider;
import java.util.ServiceLoader;

/** Backend providers as Model.load finds them (the CPU backend is a test dependency on the class path). */
final class Backends {
    private Backends() {
    }

    static BackendProvider provider(String name) {
        return ServiceLoader.load(BackendProvider.class).stream().map(ServiceLoader.Provider::get)
                .filter(p -> p.name().equals(name)).findFirst()
                .orElseThrow(() -> new IllegalStateException("no backend provider named " + name + " on the class path"));
    }

    /** The CPU backend, the reference the CUDA kernels are compared with. */
    static Backend cpu() {
        return provider("cpu").create(new BackendConfig(0, 0));
    }
}
