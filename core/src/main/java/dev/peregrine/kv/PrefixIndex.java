package dev.peregrine.kv;

import java.util.Arrays;
import java.util.HashMap;

/**
 * Finds KV blocks that already hold a given prompt prefix. A full block is keyed by a hash of its
 * tokens chained with its predecessor's key, so a key stands for the whole prefix up to the end of
 * that block. A hit is verified exactly (the block's tokens and its predecessor block), so a hash
 * collision can never hand out wrong keys and values.
 */
final class PrefixIndex {
    private record Entry(long key, int block, int parentBlock, int[] tokens) {
    }

    private static final long ROOT = 0x9E3779B97F4A7C15L;

    private final int blockSize;
    private final HashMap<Long, Entry> byKey = new HashMap<>();
    private final Entry[] byBlock;

    PrefixIndex(int blocks, int blockSize) {
        this.blockSize = blockSize;
        this.byBlock = new Entry[blocks];
    }

    /** The key of the block holding {@code tokens[from .. from+blockSize)} after the block keyed {@code parentKey}. */
    long key(long parentKey, int[] tokens, int from) {
        long h = parentKey;
        for (int i = 0; i < blockSize; i++) {
            h = mix(h ^ tokens[from + i]);
        }
        return h;
    }

    static long rootKey() {
        return ROOT;
    }

    /** The cached block for this prefix block, or -1. {@code parentBlock} is -1 for the first block. */
    int find(long key, int parentBlock, int[] tokens, int from) {
        Entry e = byKey.get(key);
        if (e == null || e.parentBlock != parentBlock
                || !Arrays.equals(e.tokens, 0, blockSize, tokens, from, from + blockSize)) {
            return -1;
        }
        return e.block;
    }

    /** Records that {@code block} holds this prefix block; false if another block holds it already. */
    boolean register(long key, int block, int parentBlock, int[] tokens, int from) {
        if (byKey.containsKey(key) || byBlock[block] != null) {
            return false;
        }
        Entry e = new Entry(key, block, parentBlock, Arrays.copyOfRange(tokens, from, from + blockSize));
        byKey.put(key, e);
        byBlock[block] = e;
        return true;
    }

    /** The key a registered block is known by (for chaining), or 0 if it is not registered. */
    long keyOf(int block) {
        Entry e = byBlock[block];
        return e == null ? 0 : e.key;
    }

    boolean isRegistered(int block) {
        return byBlock[block] != null;
    }

    /** Forgets an evicted block. */
    void remove(int block) {
        Entry e = byBlock[block];
        if (e != null) {
            byKey.remove(e.key);
            byBlock[block] = null;
        }
    }

    /** SplitMix64's finaliser: a fast, well-mixed 64-bit hash step. */
    private static long mix(long z) {
        z = (z ^ (z >>> 30)) * 0xBF58476D1CE4E5B9L;
        z = (z ^ (z >>> 27)) * 0x94D049BB133111EBL;
        return z ^ (z >>> 31);
    }
}
