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
    /** 0, or the number of latest positions a row attends to. */
    int window;
    /** 0, or the soft-capping bound of the scores. */
    float softcap;
}
