package dev.peregrine.kv;

import java.util.Arrays;

/**
 * The KV-cache state of one sequence: its block table and how many positions are filled.
 * Blocks are taken as the sequence grows and given back when it is truncated or closed. A
 * {@link #fork()} shares every block; a block shared with another sequence is copied before this
 * sequence writes into it (copy-on-write). Not thread-safe (one sequence belongs to one session).
 */
public final class KvSequence implements AutoCloseable {
    private final KvCache cache;
    private int[] blocks = new int[4];
    private int blockCount;
    private int length;
    private int indexedBlocks; // leading blocks already offered to the prefix index
    private boolean closed;

    KvSequence(KvCache cache) {
        this.cache = cache;
    }

    /** Positions held in the cache. */
    public int length() {
        return length;
    }

    public int[] blockTable() {
        return blocks;
    }

    public int blockCount() {
        return blockCount;
    }

    /**
     * Makes room for positions {@code length .. length+count)}: allocates blocks and copies a
     * shared partially-filled last block. Call before a forward step writes those positions; on
     * {@link KvCacheFullException} nothing changes.
     */
    public void reserve(int count) {
        ensureOpen();
        int needed = (length + count + cache.blockSize() - 1) / cache.blockSize();
        int before = blockCount;
        try {
            if (count > 0 && length % cache.blockSize() != 0) {
                unshare(length / cache.blockSize());
            }
            while (blockCount < needed) {
                appendBlock(cache.allocateBlock());
            }
        } catch (RuntimeException e) {
            while (blockCount > before) {
                cache.release(blocks[--blockCount]);
            }
            throw e;
        }
    }

    /** Records that positions up to {@code newLength} now hold keys and values. */
    public void advance(int newLength) {
        if (newLength < length || newLength > blockCount * cache.blockSize()) {
            throw new IllegalStateException("cannot advance from " + length + " to " + newLength
                    + " with " + blockCount + " blocks");
        }
        length = newLength;
    }

    /** Forgets positions from {@code newLength} on, giving back blocks no longer needed. */
    public void truncate(int newLength) {
        ensureOpen();
        if (newLength < 0 || newLength > length) {
            throw new IllegalArgumentException("cannot truncate a sequence of " + length + " positions to " + newLength);
        }
        int keep = (newLength + cache.blockSize() - 1) / cache.blockSize();
        while (blockCount > keep) {
            cache.release(blocks[--blockCount]);
        }
        length = newLength;
        indexedBlocks = Math.min(indexedBlocks, newLength / cache.blockSize());
    }

    /** A new sequence sharing this one's blocks (copy-on-write). */
    public KvSequence fork() {
        ensureOpen();
        KvSequence copy = new KvSequence(cache);
        copy.blocks = Arrays.copyOf(blocks, blocks.length);
        copy.blockCount = blockCount;
        copy.length = length;
        copy.indexedBlocks = indexedBlocks;
        for (int i = 0; i < blockCount; i++) {
            cache.retain(blocks[i]);
        }
        return copy;
    }

    /**
     * Takes cached blocks holding the longest full-block prefix of {@code tokens[0..length)} (at
     * least one token is left to evaluate). Only for an empty sequence; returns positions reused.
     */
    public int reuseCachedPrefix(int[] tokens, int length) {
        ensureOpen();
        if (this.length != 0 || blockCount != 0) {
            throw new IllegalStateException("prefix reuse needs an empty sequence");
        }
        this.length = cache.attachCachedPrefix(this, tokens, length);
        indexedBlocks = blockCount;
        return this.length;
    }

    /** Offers newly filled blocks to the prefix cache; {@code tokens} is the sequence's history. */
    public void indexFullBlocks(int[] tokens) {
        int full = length / cache.blockSize();
        if (full > indexedBlocks) {
            cache.registerFullBlocks(this, indexedBlocks, tokens);
            indexedBlocks = full;
        }
    }

    void appendBlock(int block) {
        if (blockCount == blocks.length) {
            blocks = Arrays.copyOf(blocks, blocks.length * 2);
        }
        blocks[blockCount++] = block;
    }

    private void unshare(int index) {
        int block = blocks[index];
        if (cache.isShared(block)) {
            int fresh = cache.allocateBlock();
            cache.copyBlock(block, fresh);
            blocks[index] = fresh;
            cache.release(block);
        }
    }

    @Override
    public void close() {
        if (!closed) {
            truncate(0);
            closed = true;
        }
    }

    private void ensureOpen() {
        if (closed) {
            throw new IllegalStateException("KV sequence is closed");
        }
    }
}
