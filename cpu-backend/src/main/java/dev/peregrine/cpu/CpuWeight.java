package dev.peregrine.cpu;

import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;

/**
 * A weight matrix of {@code rows} rows of {@code columns} values, {@code rowBytes} bytes a row.
 * Vectors (norm weights) are also kept as a float array, since every token reads them.
 *
 * <p>With {@code rowGroup} 1 the rows are laid out as in the file (read in place from the
 * memory-mapped file, or a copy of it): row r starts at byte {@code r * rowBytes}. With
 * {@code rowGroup} g > 1 (a copy made at upload) each run of g rows is stored unit by unit, a unit
 * being {@code unitBytes} bytes of a row (a quantised block, or a run of float values): unit u of
 * row r sits at {@code (r / g) * g * rowBytes + (u * g + r % g) * unitBytes}, so the g rows a
 * decode kernel reads together are one sequential stream; the last group is padded with zero rows,
 * and a row whose values do not fill its last unit with zero values ({@code rowBytes} counts them).
 * With {@code columnMajor} (Q8_0 and Q5_0 kept as Q8_0, F16, BF16, IQ4_NL, IQ4_XS, Q4_0, Q4_1,
 * Q5_1, Q2_K, Q3_K, Q4_K, Q5_K and Q6_K) each group of g rows is stored column by column instead,
 * as {@link Q8Products}, {@link HalfProducts}, {@link Iq4Products} and {@link IntegerProducts}
 * describe; {@link #rowOffset} and {@link #blockStride} do not apply.
 */
record CpuWeight(String name, DType type, int rows, int columns, MemorySegment data, long rowBytes, int rowGroup,
                 long unitBytes, boolean columnMajor, float[] asVector) implements Weight {

    /** Byte offset of the first unit of row {@code row}. */
    long rowOffset(int row) {
        if (rowGroup == 1) {
            return row * rowBytes;
        }
        return (long) (row / rowGroup) * rowGroup * rowBytes + (long) (row % rowGroup) * unitBytes;
    }

    /** Bytes from one unit of a row to the next. */
    long blockStride() {
        return rowGroup * unitBytes;
    }
}
