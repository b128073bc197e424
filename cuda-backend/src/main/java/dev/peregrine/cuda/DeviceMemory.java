package dev.peregrine.cuda;

import java.util.ArrayList;
import java.util.List;

/**
 * The backend's device memory. Long-lived allocations (weights, activation buffers, the KV cache)
 * are carved out of large chunks, so a model of hundreds of tensors makes a few driver allocations
 * and nothing is freed before the backend closes. {@link Scratch} areas grow on demand (geometric
 * growth, so they settle after the first steps) and keep their address until they must grow, which
 * keeps a step's device addresses fixed as CUDA graph replay will need.
 */
final class DeviceMemory implements AutoCloseable {
    static final long ALIGNMENT = 256;
    private static final long CHUNK = 64L << 20;

    private final Device device;
    private final List<Long> allocations = new ArrayList<>();
    private long chunk;
    private long chunkUsed;
    private long chunkSize;

    DeviceMemory(Device device) {
        this.device = device;
    }

    /** {@code bytes} of device memory (256-byte aligned) until the backend closes. */
    long allocate(long bytes) {
        long size = align(Math.max(bytes, 1));
        if (size > CHUNK / 4) {
            long pointer = device.allocate(size); // large tensors get their own allocation: no chunk tail wasted
            allocations.add(pointer);
            return pointer;
        }
        if (chunkUsed + size > chunkSize) {
            chunk = device.allocate(CHUNK);
            allocations.add(chunk);
            chunkUsed = 0;
            chunkSize = CHUNK;
        }
        long pointer = chunk + chunkUsed;
        chunkUsed += size;
        return pointer;
    }

    static long align(long bytes) {
        return (bytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
    }

    @Override
    public void close() {
        RuntimeException first = null;
        for (long pointer : allocations) {
            first = CudaDevice.attempt(first, () -> device.free(pointer));
        }
        allocations.clear();
        if (first != null) {
            throw first;
        }
    }

    /** A device work area that grows when a step needs more than it has. */
    static final class Scratch implements AutoCloseable {
        private final Device device;
        private long pointer;
        private long capacity;

        Scratch(Device device) {
            this.device = device;
        }

        /** The area, at least {@code bytes} long. Growing waits for queued work that may still use the old area. */
        long at(long bytes) {
            if (bytes > capacity) {
                long size = align(Math.max(bytes, capacity * 2));
                if (pointer != 0) {
                    device.synchronize();
                    device.free(pointer);
                    pointer = 0;
                    capacity = 0;
                }
                pointer = device.allocate(size);
                capacity = size;
            }
            return pointer;
        }

        @Override
        public void close() {
            if (pointer != 0) {
                device.free(pointer);
                pointer = 0;
                capacity = 0;
            }
        }
    }
}
