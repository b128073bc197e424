package dev.peregrine.kv;

import dev.peregrine.PeregrineException;

/** The paged KV cache has no free block left for a sequence that needs one. */
public final class KvCacheFullException extends PeregrineException {
    public KvCacheFullException(String message) {
        super(message);
    }
}
