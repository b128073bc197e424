package dev.peregrine.kv;

/**
 * Hands out the fixed-size blocks of the paged KV cache. Blocks are reference-counted so that
 * forked sequences can share them; a block returns to the free list when its count drops to 0.
 * Not thread-safe: the KV cache serialises access.
 */
public final class BlockAllocator {
    private final int[] refCounts;
    private final int[] freeList;
    private int freeCount;

    public BlockAllocator(int blocks) {
        if (blocks <= 0) {
            throw new IllegalArgumentException("block count must be > 0, got " + blocks);
        }
        refCounts = new int[blocks];
        freeList = new int[blocks];
        // Hand out low block ids first, which keeps a lone sequence's memory contiguous.
        for (int i = 0; i < blocks; i++) {
            freeList[i] = blocks - 1 - i;
        }
        freeCount = blocks;
    }

    public int capacity() {
        return refCounts.length;
    }

    public int freeBlocks() {
        return freeCount;
    }

    public int usedBlocks() {
        return refCounts.length - freeCount;
    }

    /** A block with reference count 1, or -1 when none is free. */
    public int allocate() {
        if (freeCount == 0) {
            return -1;
        }
        int block = freeList[--freeCount];
        refCounts[block] = 1;
        return block;
    }

    public void retain(int block) {
        if (refCounts[block] <= 0) {
            throw new IllegalStateException("block " + block + " is not allocated");
        }
        refCounts[block]++;
    }

    public void release(int block) {
        if (refCounts[block] <= 0) {
            throw new IllegalStateException("block " + block + " released more often than retained");
        }
        if (--refCounts[block] == 0) {
            freeList[freeCount++] = block;
        }
    }

    public int refCount(int block) {
        return refCounts[block];
    }
}
