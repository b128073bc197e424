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
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

/** Block allocation, truncation, and copy-on-write forks of the paged KV cache. */
class KvCacheTest {
    private static final int BLOCK = 4;
    private static final int KV_DIM = 3;
    private final Backend backend = new CpuBackendProvider().create(new BackendConfig(1, 0));
    private final KvCache cache = new KvCache(backend, 2, KV_DIM, 8, BLOCK);

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

    @Test
    void forkSharesBlocksAndCopiesAPartlyFilledBlockBeforeWritingIntoIt() {
        KvSequence a = cache.newSequence();
        a.reserve(6);
        write(a, 0, 6, 100);
        a.advance(6);
        KvSequence b = a.fork();
        assertThat(cache.usedBlocks()).isEqualTo(2);

        // b appends position 6, inside the shared second block: that block must be copied first.
        b.reserve(1);
        assertThat(b.blockTable()[1]).isNotEqualTo(a.blockTable()[1]);
        assertThat(b.blockTable()[0]).isEqualTo(a.blockTable()[0]);
        write(b, 6, 1, 900);
        b.advance(7);
        for (int p = 0; p < 6; p++) {
            assertThat(read(b, p)).isEqualTo(100f + p);
            assertThat(read(a, p)).isEqualTo(100f + p);
        }
        assertThat(read(b, 6)).isEqualTo(906f);
        a.close();
        b.close();
        assertThat(cache.usedBlocks()).isZero();
    }

    private void write(KvSequence s, int from, int count, float base) {
        for (int layer = 0; layer < cache.layers(); layer++) {
            for (int p = from; p < from + count; p++) {
                float[] v = {base + p, base + p, base + p};
                backend.write(v, 0, cache.keys(layer), (long) slot(s, p) * KV_DIM, KV_DIM);
            }
        }
    }

    private float read(KvSequence s, int p) {
        float[] out = new float[KV_DIM];
        backend.read(cache.keys(1), (long) slot(s, p) * KV_DIM, out, 0, KV_DIM);
        return out[0];
    }

    private static int slot(KvSequence s, int p) {
        BatchLayout l = new BatchLayout(BLOCK);
        l.addSequence(s.blockTable(), s.blockCount());
        return l.slotOf(0, p);
    }
}
