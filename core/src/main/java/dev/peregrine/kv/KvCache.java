package dev.peregrine.kv;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.Buffer;

/**
 * The paged KV cache of one model: for every layer a key buffer and a value buffer of
 * {@code blocks x blockSize} slots of {@code kvDim} floats, and the allocator of those blocks.
 * Sequences ({@link KvSequence}) own lists of blocks. Thread-safe: block bookkeeping is
 * synchronised on this object.
 */
public final class KvCache {
    private final Backend backend;
    private final int blockSize;
    private final int kvDim;
    private final Buffer[] keys;
    private final Buffer[] values;
    private final BlockAllocator allocator;

    public KvCache(Backend backend, int layers, int kvDim, int blocks, int blockSize) {
        this.backend = backend;
        this.blockSize = blockSize;
        this.kvDim = kvDim;
        this.allocator = new BlockAllocator(blocks);
        this.keys = new Buffer[layers];
        this.values = new Buffer[layers];
        long floats = (long) blocks * blockSize * kvDim;
        for (int l = 0; l < layers; l++) {
            keys[l] = backend.allocate(floats);
            values[l] = backend.allocate(floats);
        }
    }

    public int blockSize() {
        return blockSize;
    }

    public Buffer keys(int layer) {
        return keys[layer];
    }

    public Buffer values(int layer) {
        return values[layer];
    }

    public int layers() {
        return keys.length;
    }

    /** Total capacity in tokens. */
    public long capacityTokens() {
        return (long) allocator.capacity() * blockSize;
    }

    public int totalBlocks() {
        return allocator.capacity();
    }

    public synchronized int usedBlocks() {
        return allocator.usedBlocks();
    }

    public synchronized int freeBlocks() {
        return allocator.freeBlocks();
    }

    public KvSequence newSequence() {
        return new KvSequence(this);
    }

    synchronized int allocateBlock() {
        int b = allocator.allocate();
        if (b < 0) {
            throw new KvCacheFullException("the KV cache is full (" + allocator.capacity() + " blocks of "
                    + blockSize + " tokens in use); raise ModelOptions.kvCacheTokens or close idle sessions");
        }
        return b;
    }

    synchronized void retain(int block) {
        allocator.retain(block);
    }

    synchronized void release(int block) {
        allocator.release(block);
    }

    synchronized int refCount(int block) {
        return allocator.refCount(block);
    }

    /** Copies the first {@code tokens} slots of block {@code from} into block {@code to}, in every layer. */
    void copyBlock(int from, int to, int tokens) {
        long src = (long) from * blockSize * kvDim;
        long dst = (long) to * blockSize * kvDim;
        long count = (long) tokens * kvDim;
        for (int l = 0; l < keys.length; l++) {
            backend.copy(keys[l], dst, keys[l], src, count);
            backend.copy(values[l], dst, values[l], src, count);
        }
    }
}
