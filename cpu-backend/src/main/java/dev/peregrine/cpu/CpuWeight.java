package dev.peregrine.cpu;

import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;

/**
 * A weight matrix read in place from the memory-mapped file: {@code rows} rows of {@code columns}
 * values, row r starting at byte {@code r * rowBytes}. Vectors (norm weights) are also kept as a
 * float array, since every token reads them.
 */
record CpuWeight(String name, DType type, int rows, int columns, MemorySegment data, long rowBytes, float[] asVector)
        implements Weight {
}
