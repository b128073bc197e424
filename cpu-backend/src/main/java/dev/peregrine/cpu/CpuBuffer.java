package dev.peregrine.cpu;

import dev.peregrine.spi.Buffer;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;

/** Off-heap values owned by the CPU backend's arena: floats, or little-endian halves (an F16 KV cache). */
record CpuBuffer(MemorySegment segment, DType type) implements Buffer {
    CpuBuffer {
        if (type != DType.F32 && type != DType.F16) {
            throw new IllegalArgumentException("the CPU backend keeps buffers of F32 or F16 values, not " + type);
        }
    }

    @Override
    public long size() {
        return segment.byteSize() / type.blockBytes();
    }
}
