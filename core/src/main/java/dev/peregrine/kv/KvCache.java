package dev.peregrine.kv;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.Buffer;
import dev.peregrine.tensor.DType;

/**
 * The paged KV cache of one model: for every layer a key buffer and a value buffer of
 * {@code blocks x blockSize} slots of {@code kvHeads x headDim} values (floats, or halves for an
 * F16 cache), laid out as the backend chooses, and the allocator of those blocks.
 * Sequences ({@link KvSequence}) own lists of blocks. Thread-safe: block bookkeeping is
 * synchronised on this object.
 */
public final class KvCache {
    private final Backend backend;
    private final int blockSize;
    private final int kvHeads;
    private final int headDim;
    private final DType type;
    private final Buffer[] keys;
    private final Buffer[] values;
    private final BlockAllocator allocator;
    private final PrefixIndex prefixes;
    private long prefixHitTokens;

    /** An F32 cache. */
    public KvCache(Backend backend, int layers, int kvHeads, int headDim, int blocks, int blockSize) {
        this(backend, layers, kvHeads, headDim, blocks, blockSize, DType.F32);
    }

    /** A cache of keys and values of {@code type}: F32, or F16 where the backend supports it. */
    public KvCache(Backend backend, int layers, int kvHeads, int headDim, int blocks, int blockSize, DType type) {
        if (type != DType.F32 && type != DType.F16) {
            throw new IllegalArgumentException("a KV cache holds F32 or F16 values, not " + type);
        }
        this.backend = backend;
        this.blockSize = blockSize;
        this.kvHeads = kvHeads;
        this.headDim = headDim;
        this.type = type;
        // The caches first: a size the backend cannot hold fails there, before the per-block tables.
        this.keys = new Buffer[layers];
        this.values = new Buffer[layers];
        long count = (long) blocks * blockSize * kvHeads * headDim;
        for (int l = 0; l < layers; l++) {
            keys[l] = backend.allocate(count, type);
            values[l] = backend.allocate(count, type);
        }
        this.prefixes = new PrefixIndex(blocks, blockSize);
        this.allocator = new BlockAllocator(blocks, prefixes::remove);
    }

    /** How keys and values are stored: F32 or F16. */
    public DType type() {
        return type;
    }

    /** Bytes of keys and values one token takes over all layers. */
    public static long bytesPerToken(int layers, int kvDim, DType type) {
        return 2L * layers * kvDim * type.blockBytes();
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

    /** Blocks that can be handed out: free ones plus idle blocks kept for their cached prefix. */
    public synchronized int freeBlocks() {
        return allocator.freeBlocks();
    }

    /** Idle blocks kept only because they hold a cached prompt prefix. */
    public synchronized int cachedIdleBlocks() {
        return allocator.cachedIdleBlocks();
    }

    /** Prompt tokens whose keys and values were reused from the prefix cache instead of computed. */
    public synchronized long prefixHitTokens() {
        return prefixHitTokens;
    }

    /**
     * Gives an empty sequence the cached blocks that hold the longest prefix of
     * {@code tokens[0..length)} made of full blocks, leaving at least one token to evaluate (its
     * logits are needed). Returns the number of positions now in the sequence.
     */
    synchronized int attachCachedPrefix(KvSequence seq, int[] tokens, int length) {
        int usable = (length - 1) / blockSize;
        long key = PrefixIndex.rootKey();
        int parent = -1;
        int matched = 0;
        while (matched < usable) {
            int from = matched * blockSize;
            long next = prefixes.key(key, tokens, from);
            int block = prefixes.find(next, parent, tokens, from);
            if (block < 0) {
                break;
            }
            allocator.retain(block);
            seq.appendBlock(block);
            key = next;
            parent = block;
            matched++;
        }
        prefixHitTokens += (long) matched * blockSize;
        return matched * blockSize;
    }

    /** Indexes the sequence's full blocks from {@code firstBlock} on, so later prompts can reuse them. */
    synchronized void registerFullBlocks(KvSequence seq, int firstBlock, int[] tokens) {
        int full = seq.length() / blockSize;
        int[] table = seq.blockTable();
        for (int i = firstBlock; i < full; i++) {
            int parent = i == 0 ? -1 : table[i - 1];
            long parentKey = i == 0 ? PrefixIndex.rootKey() : prefixes.keyOf(parent);
            if (i > 0 && parentKey == 0) {
                return; // the chain is broken (the parent block holds no indexed prefix)
            }
            int block = table[i];
            if (!prefixes.isRegistered(block)
                    && prefixes.register(prefixes.key(parentKey, tokens, i * blockSize), block, parent, tokens, i * blockSize)) {
                allocator.markCached(block);
            }
        }
    }

    /** Whether a block must be copied before a sequence writes into it: shared, or holding a cached prefix. */
    synchronized boolean isShared(int block) {
        return allocator.refCount(block) > 1 || allocator.isCached(block);
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

    /**
     * Copies block {@code from} into block {@code to}, in every layer, through the backend, which
     * knows where a block's slots lie; the slots past the ones in use are overwritten before they
     * are read.
     */
    void copyBlock(int from, int to) {
        for (int l = 0; l < keys.length; l++) {
            backend.copyKvBlock(keys[l], from, to, blockSize, kvHeads, headDim);
            backend.copyKvBlock(values[l], from, to, blockSize, kvHeads, headDim);
        }
    }
}
