package dev.peregrine.cpu;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import org.junit.jupiter.api.Test;

class HostMemoryTest {

    @Test
    void largeBuffersAreZeroedAlignedWritableAndFreedWithTheirArena() {
        long bytes = (8L << 20) + 12; // above the mmap threshold, not a whole number of pages
        MemorySegment segment;
        try (Arena arena = Arena.ofShared()) {
            segment = HostMemory.allocate(arena, bytes);
            assertThat(segment.byteSize()).isEqualTo(bytes);
            assertThat(segment.address() % 64).isZero();
            for (long at = 0; at < bytes; at += 4096) {
                assertThat(segment.get(ValueLayout.JAVA_BYTE, at)).isZero();
            }
            assertThat(segment.get(ValueLayout.JAVA_BYTE, bytes - 1)).isZero();
            segment.set(ValueLayout.JAVA_LONG, bytes - 12, 42L);
            assertThat(segment.get(ValueLayout.JAVA_LONG, bytes - 12)).isEqualTo(42L);
        }
        MemorySegment closed = segment;
        assertThatThrownBy(() -> closed.get(ValueLayout.JAVA_BYTE, 0)).isInstanceOf(IllegalStateException.class);
    }

    @Test
    void smallBuffersComeFromTheArena() {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment segment = HostMemory.allocate(arena, 100);
            assertThat(segment.byteSize()).isEqualTo(100);
            assertThat(segment.address() % 64).isZero();
        }
    }
}
