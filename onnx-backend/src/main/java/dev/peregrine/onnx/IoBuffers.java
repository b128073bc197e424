package dev.peregrine.onnx;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.IntBuffer;
import java.nio.LongBuffer;

/**
 * Off-heap input and output buffers reused across runs. ONNX Runtime reads and writes direct
 * buffers in place (no copy), so one set serves every batch up to its size; a larger batch
 * replaces them. Not thread-safe: one run uses a set at a time.
 */
final class IoBuffers implements AutoCloseable {
    private Arena arena = Arena.ofShared();
    private int tokens;
    private long outputFloats;
    private MemorySegment ids;
    private MemorySegment mask;
    private MemorySegment types;
    private MemorySegment output;
    private final int idBytes;

    /** @param idBytes 8 for int64 id inputs, 4 for int32 */
    IoBuffers(int idBytes) {
        this.idBytes = idBytes;
    }

    /** Makes room for {@code tokens} positions and {@code outputFloats} output values. */
    void ensure(int tokens, long outputFloats) {
        if (tokens <= this.tokens && outputFloats <= this.outputFloats) {
            return;
        }
        // Grow by at least half, so a run of slowly growing batches does not reallocate every time.
        int t = Math.max(tokens, this.tokens + this.tokens / 2);
        long o = Math.max(outputFloats, this.outputFloats + this.outputFloats / 2);
        Arena next = Arena.ofShared();
        ids = next.allocate((long) t * idBytes, 64);
        mask = next.allocate((long) t * idBytes, 64);
        types = next.allocate((long) t * idBytes, 64);
        output = next.allocate(o * Float.BYTES, 64);
        arena.close();
        arena = next;
        this.tokens = t;
        this.outputFloats = o;
    }

    LongBuffer longs(Which which, int n) {
        return segment(which).asByteBuffer().order(ByteOrder.nativeOrder()).asLongBuffer().limit(n);
    }

    IntBuffer ints(Which which, int n) {
        return segment(which).asByteBuffer().order(ByteOrder.nativeOrder()).asIntBuffer().limit(n);
    }

    FloatBuffer output(int n) {
        return output.asByteBuffer().order(ByteOrder.nativeOrder()).asFloatBuffer().limit(n);
    }

    enum Which { IDS, MASK, TYPES }

    private MemorySegment segment(Which which) {
        return switch (which) {
            case IDS -> ids;
            case MASK -> mask;
            case TYPES -> types;
        };
    }

    @Override
    public void close() {
        arena.close();
    }
}
