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

    /** The first position a row at {@code position} attends to: 0, or the start of its window. */
    int firstAttended(int position) {
        return window > 0 ? Math.max(0, position + 1 - window) : 0;
    }

    /**
     * The score of {@code dot}: scaled, then soft-capped when a bound is set. StrictMath: the same
     * bits in every JIT tier (Math.tanh may be an intrinsic).
     */
    float score(float dot) {
        float score = dot * scale;
        return softcap > 0 ? softcap * (float) StrictMath.tanh(score / softcap) : score;
    }
}
