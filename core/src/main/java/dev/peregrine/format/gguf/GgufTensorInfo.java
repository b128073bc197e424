package dev.peregrine.format.gguf;

import dev.peregrine.tensor.DType;
import java.util.Arrays;

/**
 * One entry of a GGUF file's tensor table.
 *
 * @param shape      dimensions in ggml order (shape[0] = row length)
 * @param dataOffset offset of the tensor's bytes from the start of the data section
 * @param byteSize   bytes the tensor occupies
 */
public record GgufTensorInfo(String name, DType type, long[] shape, long dataOffset, long byteSize) {
    public GgufTensorInfo {
        shape = shape.clone();
    }

    @Override
    public long[] shape() {
        return shape.clone();
    }

    public long elementCount() {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        return n;
    }

    @Override
    public String toString() {
        return name + " " + type + " " + Arrays.toString(shape) + " @" + dataOffset;
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GgufTensorInfo t && t.name.equals(name) && t.type == type
                && Arrays.equals(t.shape, shape) && t.dataOffset == dataOffset && t.byteSize == byteSize;
    }

    @Override
    public int hashCode() {
        return name.hashCode();
    }
}
