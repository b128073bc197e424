package dev.peregrine.spi;

import dev.peregrine.tensor.DType;

/**
 * A weight matrix as a backend holds it: {@code rows} rows (outputs) of {@code columns} values
 * (inputs), in the backend's chosen layout. Made by {@link Backend#upload}.
 */
public interface Weight {
    String name();

    DType type();

    int rows();

    int columns();
}
