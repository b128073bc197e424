package dev.peregrine.cpu;

import dev.peregrine.spi.BatchLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/** The arguments of one attention call, set by the backend before it splits the work (reused, never reallocated). */
final class AttentionArgs {
    private static final ValueLayout.OfFloat FLOAT = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    MemorySegment out;
    MemorySegment q;
    MemorySegment keyCache;
    MemorySegment valueCache;
    /** Whether the caches hold little-endian halves (an F16 KV cache) rather than floats. */
    boolean halfCache;
    BatchLayout layout;
    int heads;
    int kvHeads;
    int headDim;
    float scale;
    /** 0, or the number of latest positions a row attends to. */
    int window;
    /** 0, or the soft-capping bound of the scores. */
    float softcap;

    /** Values in one KV head's plane of the caches (see {@link #keyIndex}). */
    long planeValues;

    /**
     * Values in each KV head's plane of a cache of {@code cacheValues} values: the CPU backend
     * keeps a plane per KV head, every slot's values of that head, block after block, so that
     * attention, which reads one KV head at a time, reads one run of memory per head (with the
     * heads side by side in each slot, a head's part of a block was a 4 KB run 12 KB from the
     * next, which one core read at 40% of its streaming rate).
     */
    static long planeValues(long cacheValues, int kvHeads) {
        if (kvHeads <= 0 || cacheValues % kvHeads != 0) {
            throw new IllegalArgumentException("a KV cache of " + cacheValues + " values does not hold " + kvHeads
                    + " equal planes of KV heads");
        }
        return cacheValues / kvHeads;
    }

    /**
     * Index (in values, not bytes) of element {@code i} of KV head {@code kvHead}'s key at
     * {@code slot}. Keys are block-transposed in their plane: a KV block of {@code blockSize}
     * slots holds, element after element, that element of its slots side by side, so that one
     * vector load takes one element of consecutive positions (see VectorAttention.attention).
     */
    static long keyIndex(int slot, int kvHead, int i, int blockSize, int headDim, long planeValues) {
        return kvHead * planeValues + (long) (slot / blockSize) * blockSize * headDim + (long) i * blockSize
                + slot % blockSize;
    }

    /** Index of element 0 of KV head {@code kvHead}'s value at {@code slot}: a row per slot in the head's plane. */
    static long valueIndex(int slot, int kvHead, int headDim, long planeValues) {
        return kvHead * planeValues + (long) slot * headDim;
    }

    /** {@link #keyIndex} in this call's key cache. */
    long keyIndex(int slot, int kvHead, int i) {
        return keyIndex(slot, kvHead, i, layout.blockSize, headDim, planeValues);
    }

    /** {@link #valueIndex} in this call's value cache. */
    long valueIndex(int slot, int kvHead) {
        return valueIndex(slot, kvHead, headDim, planeValues);
    }

    /** Element {@code i} of KV head {@code kvHead}'s key at {@code slot}, as a float. */
    float key(int slot, int kvHead, int i) {
        long index = keyIndex(slot, kvHead, i);
        return halfCache ? Float.float16ToFloat(keyCache.get(HALF, 2 * index)) : keyCache.get(FLOAT, 4 * index);
    }

    /**
     * The raw score q . k of the query at byte {@code qBase} and the key of {@code kvHead} at
     * {@code slot}: one fused multiply-add per head value, in order from 0 (the chain each lane of
     * VectorKernels' score kernel computes, so both give the same bits).
     */
    float dot(long qBase, int slot, int kvHead) {
        float dot = 0;
        for (int i = 0; i < headDim; i++) {
            dot = Math.fma(q.get(FLOAT, qBase + 4L * i), key(slot, kvHead, i), dot);
        }
        return dot;
    }

    /** Value {@code index} of the value cache, as a float. */
    float value(long index) {
        return halfCache ? Float.float16ToFloat(valueCache.get(HALF, 2 * index)) : valueCache.get(FLOAT, 4 * index);
    }

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
