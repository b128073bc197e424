package dev.peregrine.spi;

import dev.peregrine.tensor.DType;

/**
 * A backend-owned buffer of values (activations, KV cache, logits): floats, or halves for a KV
 * cache kept in F16. Opaque to the model code: on the CPU it is off-heap memory, on a GPU device
 * memory. Freed when its backend closes.
 */
public interface Buffer {
    /** Capacity in values of its {@link #type()}. */
    long size();

    /** The type of its values: F32, or F16 for a half-precision KV cache. */
    default DType type() {
        return DType.F32;
    }
}
