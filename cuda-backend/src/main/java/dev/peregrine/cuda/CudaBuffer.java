package dev.peregrine.cuda;

import dev.peregrine.spi.Buffer;
import dev.peregrine.tensor.DType;

/** {@code size} values of {@code type} (F32, or F16 for a KV cache) in device memory at {@code address}. */
record CudaBuffer(long address, long size, DType type) implements Buffer {
    /** Bytes per value. */
    int valueBytes() {
        return type == DType.F16 ? 2 : Float.BYTES;
    }
}
