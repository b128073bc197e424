package dev.peregrine.cpu;

import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;

/**
 * A weight matrix of {@code rows} rows of {@code columns} values, {@code rowBytes} bytes a row.
 * Vectors (norm weights) are also kept as a float array, since every token reads them.
 *
 * <p>With {@code rowGroup} 1 the rows are laid out as in the file (read in place from the
 * memory-mapped file, or a copy of it): row r starts at byte {@code r * rowBytes}, its units
 * ({@code unitBytes}: a quantised block, or a vector's worth of floats) one after another. With
 * {@code columnMajor} (F32 matrices, Q8_0 and Q5_0 kept as Q8_0, F16, BF16, IQ4_NL, IQ4_XS, Q4_0,
 * Q4_1, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K) each group of {@code rowGroup} rows is stored column
 * by column instead, as {@link FloatProducts}, {@link Q8Products}, {@link HalfProducts},
 * {@link Iq4Products} and {@link IntegerProducts} describe; {@link #rowOffset} and
 * {@link #blockStride} do not apply.
 */
record CpuWeight(String name, DType type, int rows, int columns, MemorySegment data, long rowBytes, int rowGroup,
                 long unitBytes, boolean columnMajor, float[] asVector) implements Weight {

    /** Byte offset of row {@code row} (rows in the file's layout). */
    long rowOffset(int row) {
        return row * rowBytes;
    }

    /** Bytes from one unit of a row to the next (rows in the file's layout: a unit's bytes). */
    long blockStride() {
        return unitBytes;
    }
}
