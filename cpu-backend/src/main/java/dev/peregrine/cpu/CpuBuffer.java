package dev.peregrine.cpu;

import dev.peregrine.spi.Buffer;
import dev.peregrine.tensor.DType;
import java.lang.foreign.MemorySegment;

/**
 * Off-heap values owned by the CPU backend's arena: floats, or little-endian halves (an F16 KV cache);
 * {@link CpuBackend#allocate(long, DType)} checks the type before it allocates.
 */
record CpuBuffer(MemorySegment segment, DType type) implements Buffer {
    @Override
    public long size() {
        return segment.byteSize() / type.blockBytes();
    }
}
