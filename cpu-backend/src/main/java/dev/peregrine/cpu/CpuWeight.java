package dev.peregrine.cpu;

import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;

/**
 * A weight matrix of {@code rows} rows of {@code columns} values, {@code rowBytes} bytes a row.
 * Vectors (norm weights) are also kept as a float array, since every token reads them.
 *
 * <p>With {@code rowGroup} 1 the rows are laid out as in the file (read in place from the
 * memory-mapped file, or a copy of it): row r starts at byte {@code r * rowBytes}. With {@code rowGroup} g > 1 (quantised blocks, copied
 * at upload) each run of g rows is stored block by block: block b of row r sits at
 * {@code (r / g) * g * rowBytes + (b * g + r % g) * blockBytes}, so the g rows a decode kernel reads
 * together are one sequential stream; the last group is padded with zero rows. With
 * {@code columnMajor} (Q4_0, for the integer kernels) each group of g rows is stored column by column
 * instead, as {@link IntegerProducts} describes; {@link #rowOffset} and {@link #blockStride} do not apply.
 */
record CpuWeight(String name, DType type, int rows, int columns, MemorySegment data, long rowBytes, int rowGroup,
                 boolean columnMajor, float[] asVector) implements Weight {

    /** Byte offset of the first block of row {@code row}. */
    long rowOffset(int row) {
        if (rowGroup == 1) {
            return row * rowBytes;
        }
        return (long) (row / rowGroup) * rowGroup * rowBytes + (long) (row % rowGroup) * type.blockBytes();
    }

    /** Bytes from one block of a row to the next. */
    long blockStride() {
        return (long) rowGroup * type.blockBytes();
    }
}
