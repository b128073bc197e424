package dev.peregrine.spi;

/**
 * A backend-owned buffer of floats (activations, KV cache, logits). Opaque to the model code:
 * on the CPU it is off-heap memory, on a GPU device memory. Freed when its backend closes.
 */
public interface Buffer {
    /** Capacity in floats. */
    long size();
}
