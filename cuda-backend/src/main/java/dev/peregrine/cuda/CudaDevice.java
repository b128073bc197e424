package dev.peregrine.cuda;

import static dev.peregrine.cuda.CudaDriver.readInt;
import static dev.peregrine.cuda.CudaDriver.readLong;
import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * One GPU as the backend uses it: the device's primary context (the one cuBLAS uses too), one
 * non-blocking stream, and the modules loaded into it. The hot calls (launch, async copies,
 * synchronize) go through {@code invokeExact} with preallocated arguments and allocate nothing.
 */
final class CudaDevice implements Device {
    private final int device;
    private final long context;
    private final long stream;
    private final String name;
    private final int computeCapability;
    private final int multiprocessors;
    private final int maxSharedMemoryPerBlock;
    private final long totalMemory;
    private final List<Long> modules = new ArrayList<>();
    private Thread current;

    private CudaDevice(int device, long context, long stream) {
        this.device = device;
        this.context = context;
        this.stream = stream;
        this.current = Thread.currentThread();
        this.name = deviceName(device);
        this.computeCapability = 10 * attribute(CudaDriver.ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)
                + attribute(CudaDriver.ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.multiprocessors = attribute(CudaDriver.ATTRIBUTE_MULTIPROCESSOR_COUNT);
        this.maxSharedMemoryPerBlock = attribute(CudaDriver.ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
        this.totalMemory = readLong(CudaDriver.DEVICE_TOTAL_MEM, device);
    }

    /** Opens device {@code ordinal}: retains its primary context and creates a stream. */
    static CudaDevice open(int ordinal) {
        int count = CudaDriver.deviceCount();
        if (ordinal >= count) {
            throw new CudaUnavailableException("CUDA device " + ordinal + " requested, but " + count + " device(s) are visible");
        }
        int device = readInt(CudaDriver.DEVICE_GET, ordinal);
        long context = readLong(CudaDriver.PRIMARY_CTX_RETAIN, device);
        try {
            CudaDriver.CTX_SET_CURRENT.call(context);
            long stream = readLong(CudaDriver.STREAM_CREATE, CudaDriver.STREAM_NON_BLOCKING);
            return new CudaDevice(device, context, stream);
        } catch (RuntimeException e) {
            CudaDriver.PRIMARY_CTX_RELEASE.call(device);
            throw e;
        }
    }

    /** The name of device {@code ordinal}, without creating a context (for the availability probe). */
    static String nameOf(int ordinal) {
        int device = readInt(CudaDriver.DEVICE_GET, ordinal);
        return deviceName(device);
    }

    /** The compute capability of device {@code ordinal} (major * 10 + minor), without creating a context. */
    static int computeCapabilityOf(int ordinal) {
        int device = readInt(CudaDriver.DEVICE_GET, ordinal);
        return 10 * readInt(CudaDriver.DEVICE_GET_ATTRIBUTE, CudaDriver.ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, device)
                + readInt(CudaDriver.DEVICE_GET_ATTRIBUTE, CudaDriver.ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, device);
    }

    private static String deviceName(int device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment text = arena.allocate(256);
            CudaDriver.DEVICE_GET_NAME.call(text, 256, device);
            return text.getString(0, StandardCharsets.UTF_8);
        }
    }

    private int attribute(int attribute) {
        return readInt(CudaDriver.DEVICE_GET_ATTRIBUTE, attribute, device);
    }

    @Override
    public String name() {
        return name;
    }

    @Override
    public int computeCapability() {
        return computeCapability;
    }

    @Override
    public int multiprocessors() {
        return multiprocessors;
    }

    @Override
    public int maxSharedMemoryPerBlock() {
        return maxSharedMemoryPerBlock;
    }

    @Override
    public long totalMemory() {
        return totalMemory;
    }

    @Override
    public void makeCurrent() {
        Thread thread = Thread.currentThread();
        if (thread != current) {
            CudaDriver.CTX_SET_CURRENT.call(context);
            current = thread;
        }
    }

    @Override
    public long allocate(long bytes) {
        return readLong(CudaDriver.MEM_ALLOC, bytes);
    }

    @Override
    public void free(long pointer) {
        CudaDriver.MEM_FREE.call(pointer);
    }

    @Override
    @SuppressWarnings("restricted") // the driver returns a pointer to the bytes it allocated
    public MemorySegment allocateHost(long bytes) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            CudaDriver.MEM_ALLOC_HOST.call(out, bytes);
            return out.get(ADDRESS, 0).reinterpret(bytes);
        }
    }

    @Override
    public void freeHost(MemorySegment segment) {
        CudaDriver.MEM_FREE_HOST.call(segment);
    }

    @Override
    public void copyToDevice(long dst, MemorySegment src, long srcOffset, long bytes) {
        if (!src.isNative() || srcOffset < 0 || srcOffset + bytes > src.byteSize()) {
            throw new IllegalArgumentException("copy of " + bytes + " bytes at " + srcOffset + " from " + src);
        }
        NativeFunction f = CudaDriver.MEMCPY_HTOD_ASYNC;
        try {
            f.check((int) f.handle().invokeExact(dst, src.address() + srcOffset, bytes, stream));
        } catch (Throwable t) {
            throw f.failure(t);
        }
    }

    @Override
    public void copyToHost(MemorySegment dst, long src, long bytes) {
        NativeFunction f = CudaDriver.MEMCPY_DTOH_ASYNC;
        try {
            f.check((int) f.handle().invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw f.failure(t);
        }
    }

    @Override
    public void copy(long dst, long src, long bytes) {
        NativeFunction f = CudaDriver.MEMCPY_DTOD_ASYNC;
        try {
            f.check((int) f.handle().invokeExact(dst, src, bytes, stream));
        } catch (Throwable t) {
            throw f.failure(t);
        }
    }

    @Override
    public void zero(long dst, long bytes) {
        NativeFunction f = CudaDriver.MEMSET_D8_ASYNC;
        try {
            f.check((int) f.handle().invokeExact(dst, (byte) 0, bytes, stream));
        } catch (Throwable t) {
            throw f.failure(t);
        }
    }

    @Override
    public void beginCapture() {
        CudaDriver.STREAM_BEGIN_CAPTURE.call(stream, CudaDriver.STREAM_CAPTURE_MODE_THREAD_LOCAL);
    }

    @Override
    public long endCapture() {
        long graph;
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            // cuStreamEndCapture(stream, &graph): the out pointer comes second. It ends the capture
            // even when the capture failed (then it reports why and gives no graph).
            CudaDriver.STREAM_END_CAPTURE.call(stream, out);
            graph = out.get(JAVA_LONG, 0);
        }
        try {
            return readLong(CudaDriver.GRAPH_INSTANTIATE, graph, 0L);
        } finally {
            CudaDriver.GRAPH_DESTROY.call(graph); // the instantiated graph no longer needs it
        }
    }

    @Override
    public void launchGraph(long graph) {
        NativeFunction f = CudaDriver.GRAPH_LAUNCH;
        try {
            f.check((int) f.handle().invokeExact(graph, stream));
        } catch (Throwable t) {
            throw f.failure(t);
        }
    }

    @Override
    public void destroyGraph(long graph) {
        CudaDriver.GRAPH_EXEC_DESTROY.call(graph);
    }

    @Override
    public void synchronize() {
        NativeFunction f = CudaDriver.STREAM_SYNCHRONIZE;
        try {
            f.check((int) f.handle().invokeExact(stream));
        } catch (Throwable t) {
            throw f.failure(t);
        }
    }

    @Override
    public long stream() {
        return stream;
    }

    @Override
    public long loadModule(String moduleName, String ptx) {
        try (Arena arena = Arena.ofConfined()) {
            int logBytes = 16 * 1024;
            MemorySegment log = arena.allocate(logBytes);
            MemorySegment options = arena.allocate(JAVA_INT, 2);
            options.setAtIndex(JAVA_INT, 0, CudaDriver.JIT_ERROR_LOG_BUFFER);
            options.setAtIndex(JAVA_INT, 1, CudaDriver.JIT_ERROR_LOG_BUFFER_SIZE_BYTES);
            MemorySegment values = arena.allocate(ADDRESS, 2);
            values.setAtIndex(ADDRESS, 0, log);
            values.setAtIndex(ADDRESS, 1, MemorySegment.ofAddress(logBytes)); // a size passed as the pointer value
            MemorySegment module = arena.allocate(JAVA_LONG);
            try {
                CudaDriver.MODULE_LOAD_DATA_EX.call(module, arena.allocateFrom(ptx), 2, options, values);
            } catch (CudaException e) {
                String jitLog = log.getString(0).strip();
                throw e.withDetail("module " + moduleName + (jitLog.isEmpty() ? "" : ", JIT log: " + jitLog));
            }
            long handle = module.get(JAVA_LONG, 0);
            modules.add(handle);
            return handle;
        }
    }

    @Override
    public long function(long module, String functionName) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            CudaDriver.MODULE_GET_FUNCTION.call(out, module, arena.allocateFrom(functionName));
            return out.get(JAVA_LONG, 0);
        }
    }

    @Override
    public void setMaxDynamicSharedMemory(long function, int bytes) {
        CudaDriver.FUNC_SET_ATTRIBUTE.call(function, CudaDriver.FUNCTION_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
    }

    @Override
    public void launch(long function, int gridX, int gridY, int gridZ, int blockSize, int sharedBytes, MemorySegment params) {
        NativeFunction f = CudaDriver.LAUNCH_KERNEL;
        try {
            f.check((int) f.handle().invokeExact(function, gridX, gridY, gridZ, blockSize, 1, 1, sharedBytes, stream,
                    params, MemorySegment.NULL));
        } catch (Throwable t) {
            throw f.failure(t);
        }
    }

    @Override
    public void close() {
        makeCurrent();
        RuntimeException first = null;
        for (long module : modules) {
            first = attempt(first, () -> CudaDriver.MODULE_UNLOAD.call(module));
        }
        modules.clear();
        first = attempt(first, () -> CudaDriver.STREAM_DESTROY.call(stream));
        first = attempt(first, () -> CudaDriver.PRIMARY_CTX_RELEASE.call(device));
        if (first != null) {
            throw first;
        }
    }

    /** Runs {@code step}, keeping the first failure and going on, so that close frees what it can. */
    static RuntimeException attempt(RuntimeException first, Runnable step) {
        try {
            step.run();
        } catch (RuntimeException e) {
            if (first == null) {
                return e;
            }
            first.addSuppressed(e);
        }
        return first;
    }
}
