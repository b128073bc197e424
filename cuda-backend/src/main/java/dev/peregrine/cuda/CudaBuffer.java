package dev.peregrine.cuda;

import dev.peregrine.spi.Buffer;

/** {@code size} floats of device memory at {@code address}. */
record CudaBuffer(long address, long size) implements Buffer {
}
