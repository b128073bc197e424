package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.cpu.CpuBackendProvider;
import dev.peregrine.kv.BlockAllocator;
import dev.peregrine.kv.KvCache;
import dev.peregrine.kv.KvCacheFullException;
import dev.peregrine.kv.KvSequence;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.tensor.DType;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Block allocation, truncation, and copy-on-write forks of the paged KV cache. */
class KvCacheTest {
    private static final int BLOCK = 4;
    /** Several KV heads, so that a block copy that skips a head's values shows. */
    private static final int KV_HEADS = 3;
    private static final int HEAD_DIM = 2;
    private static final int KV_DIM = KV_HEADS * HEAD_DIM;
    private final Backend backend = new CpuBackendProvider().create(new BackendConfig(1, 0));
    private final KvCache cache = new KvCache(backend, 2, KV_HEADS, HEAD_DIM, 8, BLOCK);

    @AfterEach
    void close() {
        backend.close();
    }

    @Test
    void allocatorHandsOutEachBlockOnceAndTakesItBackAtRefCountZero() {
        BlockAllocator a = new BlockAllocator(3);
        int b0 = a.allocate();
        int b1 = a.allocate();
        int b2 = a.allocate();
        assertThat(new int[] {b0, b1, b2}).containsExactlyInAnyOrder(0, 1, 2);
        assertThat(a.allocate()).isEqualTo(-1);
        a.retain(b1);
        a.release(b1);
        assertThat(a.freeBlocks()).isZero();
        a.release(b1);
        assertThat(a.freeBlocks()).isEqualTo(1);
        assertThat(a.allocate()).isEqualTo(b1);
        a.release(b0);
        assertThatThrownBy(() -> a.retain(b0)).isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> a.release(b0)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void sequencesTakeBlocksAsTheyGrowAndGiveThemBackWhenTruncated() {
        KvSequence s = cache.newSequence();
        s.reserve(9);
        s.advance(9);
        assertThat(s.blockCount()).isEqualTo(3);
        assertThat(cache.usedBlocks()).isEqualTo(3);
        s.truncate(4);
        assertThat(s.blockCount()).isEqualTo(1);
        assertThat(cache.usedBlocks()).isEqualTo(1);
        s.close();
        assertThat(cache.usedBlocks()).isZero();
    }

    @Test
    void fullCacheGivesTypedExceptionAndLeavesTheSequenceUnchanged() {
        KvSequence s = cache.newSequence();
        s.reserve(30);
        s.advance(30);
        assertThatThrownBy(() -> s.reserve(3)).isInstanceOf(KvCacheFullException.class).hasMessageContaining("full");
        assertThat(s.blockCount()).isEqualTo(8);
        assertThat(s.length()).isEqualTo(30);
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16"})
    void forkSharesBlocksAndCopiesAPartlyFilledBlockBeforeWritingIntoIt(DType type) {
        KvCache cache = new KvCache(backend, 2, KV_HEADS, HEAD_DIM, 8, BLOCK, type);
        assertThat(cache.keys(1).type()).isEqualTo(type);
        assertThat(cache.keys(1).size()).isEqualTo(8L * BLOCK * KV_DIM);
        KvSequence a = cache.newSequence();
        a.reserve(6);
        write(cache, a, 0, 6, 100);
        a.advance(6);
        KvSequence b = a.fork();
        assertThat(cache.usedBlocks()).isEqualTo(2);

        // b appends position 6, inside the shared second block: that block must be copied first.
        b.reserve(1);
        assertThat(b.blockTable()[1]).isNotEqualTo(a.blockTable()[1]);
        assertThat(b.blockTable()[0]).isEqualTo(a.blockTable()[0]);
        write(cache, b, 6, 1, 900);
        b.advance(7);
        for (int p = 0; p < 6; p++) {
            assertThat(read(cache, b, p)).containsExactly(stored(100f + p));
            assertThat(read(cache, a, p)).containsExactly(stored(100f + p));
        }
        assertThat(read(cache, b, 6)).containsExactly(stored(906f));
        a.close();
        b.close();
        assertThat(cache.usedBlocks()).isZero();
    }

    /** The key and value row {@link #write} stores for {@code value} (base + p): element e is value + 16 e, exact in F16. */
    private static float[] stored(float value) {
        float[] row = new float[KV_DIM];
        for (int e = 0; e < KV_DIM; e++) {
            row[e] = value + 16 * e;
        }
        return row;
    }

    /** Stores {@code stored(base + p)} as the key and value of positions from .. from + count - 1, in every layer. */
    private void write(KvCache cache, KvSequence s, int from, int count, float base) {
        BatchLayout layout = new BatchLayout(BLOCK);
        layout.addSequence(s.blockTable(), s.blockCount());
        float[] rows = new float[count * KV_DIM];
        for (int p = from; p < from + count; p++) {
            layout.addToken(0, 0, p, false);
            System.arraycopy(stored(base + p), 0, rows, (p - from) * KV_DIM, KV_DIM);
        }
        Buffer k = backend.allocate(rows.length);
        backend.write(rows, 0, k, 0, rows.length);
        for (int layer = 0; layer < cache.layers(); layer++) {
            backend.storeKv(cache.keys(layer), cache.values(layer), k, k, KV_HEADS, HEAD_DIM, layout);
        }
    }

    /**
     * The value row stored at position p of layer 1, read back through attention over that one
     * position, a query head per KV head (each softmax weight is exactly 1, so the output is the
     * value row; F16 caches have no host read).
     */
    private float[] read(KvCache cache, KvSequence s, int p) {
        BatchLayout layout = new BatchLayout(BLOCK);
        layout.addSequence(s.blockTable(), s.blockCount());
        layout.addToken(0, 0, p, false);
        Buffer q = backend.allocate(KV_DIM);
        Buffer out = backend.allocate(KV_DIM);
        backend.attention(out, q, cache.keys(1), cache.values(1), layout, KV_HEADS, KV_HEADS, HEAD_DIM, 1f, 1, 0f);
        float[] row = new float[KV_DIM];
        backend.read(out, 0, row, 0, KV_DIM);
        return row;
    }
}
