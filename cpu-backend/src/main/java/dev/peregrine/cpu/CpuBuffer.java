package dev.peregrine.cpu;

import dev.peregrine.spi.Buffer;
import java.lang.foreign.MemorySegment;

/** Off-heap floats owned by the CPU backend's arena. */
record CpuBuffer(MemorySegment segment) implements Buffer {
    @Override
    public long size() {
        return segment.byteSize() / Float.BYTES;
    }
}
