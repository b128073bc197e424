package dev.peregrine.kv;

import java.util.function.IntConsumer;

/**
 * Hands out the fixed-size blocks of the paged KV cache. Blocks are reference-counted so that
 * forked sequences and identical prompt prefixes can share them. A block whose count drops to 0
 * goes back to the free list, unless it holds a cached prompt prefix: then it waits in a
 * least-recently-used list, still reusable by a later request, and is evicted (handed out again)
 * only when no free block is left. Not thread-safe: the KV cache serialises access.
 */
public final class BlockAllocator {
    private final int[] refCounts;
    private final int[] freeList;
    private int freeCount;
    private final boolean[] cached;
    // An intrusive doubly-linked LRU list of unreferenced cached blocks (no allocation per use).
    private final int[] lruPrev;
    private final int[] lruNext;
    private int lruHead = -1;
    private int lruTail = -1;
    private int lruCount;
    private final IntConsumer onEvict;

    public BlockAllocator(int blocks) {
        this(blocks, b -> { });
    }

    /** @param onEvict told when a cached block is evicted, so its index entry can be dropped */
    public BlockAllocator(int blocks, IntConsumer onEvict) {
        if (blocks <= 0) {
            throw new IllegalArgumentException("block count must be > 0, got " + blocks);
        }
        refCounts = new int[blocks];
        freeList = new int[blocks];
        cached = new boolean[blocks];
        lruPrev = new int[blocks];
        lruNext = new int[blocks];
        this.onEvict = onEvict;
        // Hand out low block ids first, which keeps a lone sequence's memory contiguous.
        for (int i = 0; i < blocks; i++) {
            freeList[i] = blocks - 1 - i;
        }
        freeCount = blocks;
    }

    public int capacity() {
        return refCounts.length;
    }

    /** Blocks that can be handed out: free ones and unreferenced cached ones. */
    public int freeBlocks() {
        return freeCount + lruCount;
    }

    /** Blocks referenced by at least one sequence. */
    public int usedBlocks() {
        return refCounts.length - freeCount - lruCount;
    }

    /** Unreferenced blocks kept for their cached prefix. */
    public int cachedIdleBlocks() {
        return lruCount;
    }

    /** A block with reference count 1, or -1 when none is left. Evicts the least recently used cached block if needed. */
    public int allocate() {
        int block;
        if (freeCount > 0) {
            block = freeList[--freeCount];
        } else if (lruHead >= 0) {
            block = lruHead;
            unlink(block);
            cached[block] = false;
            onEvict.accept(block);
        } else {
            return -1;
        }
        refCounts[block] = 1;
        return block;
    }

    public void retain(int block) {
        if (refCounts[block] == 0) {
            if (!cached[block]) {
                throw new IllegalStateException("block " + block + " is not allocated");
            }
            unlink(block); // a cached block comes back into use
        }
        refCounts[block]++;
    }

    public void release(int block) {
        if (refCounts[block] <= 0) {
            throw new IllegalStateException("block " + block + " released more often than retained");
        }
        if (--refCounts[block] == 0) {
            if (cached[block]) {
                append(block);
            } else {
                freeList[freeCount++] = block;
            }
        }
    }

    public int refCount(int block) {
        return refCounts[block];
    }

    /** Marks an allocated block as holding a cached prefix (kept when unreferenced). */
    public void markCached(int block) {
        if (refCounts[block] <= 0) {
            throw new IllegalStateException("block " + block + " is not allocated");
        }
        cached[block] = true;
    }

    public boolean isCached(int block) {
        return cached[block];
    }

    private void append(int block) {
        lruPrev[block] = lruTail;
        lruNext[block] = -1;
        if (lruTail >= 0) {
            lruNext[lruTail] = block;
        } else {
            lruHead = block;
        }
        lruTail = block;
        lruCount++;
    }

    private void unlink(int block) {
        int p = lruPrev[block];
        int n = lruNext[block];
        if (p >= 0) {
            lruNext[p] = n;
        } else {
            lruHead = n;
        }
        if (n >= 0) {
            lruPrev[n] = p;
        } else {
            lruTail = p;
        }
        lruCount--;
    }
}
