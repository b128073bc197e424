package dev.peregrine.spi;

import java.util.Optional;

/**
 * Finds and creates one kind of backend. Implementations are registered with
 * {@link java.util.ServiceLoader}; {@code Backend.AUTO} takes the usable provider with the highest
 * priority.
 */
public interface BackendProvider {
    /** Short name users pass to pin a backend, e.g. "cpu" or "cuda". */
    String name();

    /** Higher wins when the backend is chosen automatically. */
    int priority();

    /** Why this backend cannot run here, or empty when it can. Must be cheap and never throw. */
    Optional<String> unavailableReason();

    Backend create(BackendConfig config);
}
