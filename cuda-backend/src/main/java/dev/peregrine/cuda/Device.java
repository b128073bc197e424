package dev.peregrine.cuda;

import java.lang.foreign.MemorySegment;

/**
 * What {@link CudaBackend} needs from a GPU: memory, copies and launches on one stream, modules.
 * {@link CudaDevice} implements it over the driver; tests implement it over host memory to check
 * the backend's host logic (launch arguments against the PTX signatures, buffer bounds, no
 * allocation per step) where there is no GPU.
 *
 * <p>Everything asynchronous runs in order on the device's one stream; {@link #synchronize()} waits
 * for it. Device pointers are longs.
 */
interface Device extends AutoCloseable {

    /** E.g. "NVIDIA H100 80GB HBM3". */
    String name();

    /** Major * 10 + minor, e.g. 90. */
    int computeCapability();

    int multiprocessors();

    /** The most dynamic shared memory one block may opt in to, in bytes. */
    int maxSharedMemoryPerBlock();

    long totalMemory();

    /** Makes the device's context current on the calling thread (cheap when it already is). */
    void makeCurrent();

    long allocate(long bytes);

    void free(long pointer);

    /** Page-locked host memory, for copies that overlap with the host. */
    MemorySegment allocateHost(long bytes);

    void freeHost(MemorySegment segment);

    /**
     * Copies {@code bytes} from native host memory at {@code src + srcOffset} (page-locked, or
     * pageable like a mapped model file) to the device, in stream order.
     */
    void copyToDevice(long dst, MemorySegment src, long srcOffset, long bytes);

    /** Copies device memory to page-locked host memory, in stream order; complete after {@link #synchronize()}. */
    void copyToHost(MemorySegment dst, long src, long bytes);

    void copy(long dst, long src, long bytes);

    void zero(long dst, long bytes);

    /** Waits until everything queued on the stream has run. */
    void synchronize();

    /** The stream, for libraries (cuBLAS) that queue work on it. */
    long stream();

    /** Loads a PTX module (JIT-compiled for this device); {@code name} is for error messages. */
    long loadModule(String name, String ptx);

    long function(long module, String name);

    void setMaxDynamicSharedMemory(long function, int bytes);

    /**
     * Queues {@code function} on the stream: grid (x, y, z) of one-dimensional blocks of
     * {@code blockSize} threads. {@code params} is a {@code void*[]} pointing at each argument.
     */
    void launch(long function, int gridX, int gridY, int gridZ, int blockSize, int sharedBytes, MemorySegment params);

    /** Starts capturing the stream into a CUDA graph: work queued from now on is recorded, not run. */
    void beginCapture();

    /**
     * Ends the capture and returns the graph, instantiated and ready to launch. If the capture
     * failed (something not capturable was queued), it is ended all the same and the exception
     * says why; nothing recorded has run.
     */
    long endCapture();

    /** Queues the whole graph on the stream, as if its work were queued again. */
    void launchGraph(long graph);

    /** Frees a graph; one that is still running finishes first. */
    void destroyGraph(long graph);

    /** Frees the stream, the modules and the context's hold; memory must be freed first. */
    @Override
    void close();
}
