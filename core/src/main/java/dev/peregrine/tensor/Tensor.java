package dev.peregrine.tensor;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;

/**
 * A read-only view of a weight tensor: its element type, its shape in ggml order
 * ({@code shape[0]} is the length of a row, the number of contiguous elements; {@code shape[1]} the
 * number of rows; higher dimensions repeat that) and the bytes holding it.
 *
 * <p>A matrix used by a linear layer {@code y = W x} has {@code shape = [in, out]}: each of the
 * {@code out} rows holds the {@code in} weights of one output.
 */
public record Tensor(String name, DType type, long[] shape, MemorySegment data) {

    public Tensor {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public int dims() {
        return shape.length;
    }

    public long dim(int i) {
        return i < shape.length ? shape[i] : 1;
    }

    public long elementCount() {
        long n = 1;
        for (long d : shape) {
            n = Math.multiplyExact(n, d);
        }
        return n;
    }

    /** Length of one row (ggml's ne0). */
    public long rowLength() {
        return shape[0];
    }

    /** Number of rows: the product of every dimension after the first. */
    public long rows() {
        return elementCount() / shape[0];
    }

    /**
     * Whether each row starts at a block boundary, so that a row can be read on its own. ggml
     * requires it; some old files store quantised blocks that run across rows.
     */
    public boolean rowsAreBlockAligned() {
        return shape[0] % type.blockSize() == 0;
    }

    /** Bytes of one row; only meaningful when {@link #rowsAreBlockAligned()}. */
    public long rowBytes() {
        return type.bytesFor(shape[0]);
    }

    @Override
    public String toString() {
        return name + " " + type + " " + Arrays.toString(shape);
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof Tensor t && t.name.equals(name) && t.type == type && Arrays.equals(t.shape, shape)
                && t.data.equals(data);
    }

    @Override
    public int hashCode() {
        return name.hashCode() * 31 + Arrays.hashCode(shape);
    }
}
