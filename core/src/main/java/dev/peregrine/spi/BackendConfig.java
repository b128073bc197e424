package dev.peregrine.spi;

/**
 * What a backend is created with.
 *
 * @param threads     CPU worker threads (0 = the backend's default)
 * @param deviceIndex accelerator index for device backends
 */
public record BackendConfig(int threads, int deviceIndex) {
    public BackendConfig {
        if (threads < 0) {
            throw new IllegalArgumentException("threads must be >= 0, got " + threads);
        }
        if (deviceIndex < 0) {
            throw new IllegalArgumentException("deviceIndex must be >= 0, got " + deviceIndex);
        }
    }
}
