package dev.peregrine.cuda;

import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;

/**
 * A weight matrix in device memory, laid out as native/weights.cuh describes: row r at
 * {@code data + r * rowStride} (a multiple of 16 bytes); for Q8_0 and Q4_0 the quants only, with the
 * f16 block scales at {@code scales} (0 for plain types).
 */
record CudaWeight(String name, DType type, int rows, int columns, long data, long scales, int rowStride)
        implements Weight {
}
