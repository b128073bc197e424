package dev.peregrine.cpu;

import dev.peregrine.spi.BatchLayout;
import java.lang.foreign.MemorySegment;

/** The arguments of one attention call, set by the backend before it splits the work (reused, never reallocated). */
final class AttentionArgs {
    MemorySegment out;
    MemorySegment q;
    MemorySegment keyCache;
    MemorySegment valueCache;
    BatchLayout layout;
    int heads;
    int kvHeads;
    int headDim;
    float scale;
}
