package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * The CUDA driver API (libcuda.so.1) bound through FFM, for the whole backend: context, streams,
 * memory, modules and launches. JCuda was measured at ~9 µs per cuLaunchKernel against ~3.2 µs for
 * the same call through FFM, and it hides the raw handles that cuBLAS and CUDA graphs need, so the
 * driver is bound here directly. Functions are named by their exported symbols ({@code _v2} where
 * cuda.h maps the plain name to it), so the binding works with any driver that runs CUDA 12 or 13 PTX.
 *
 * <p>Handles (CUcontext, CUstream, CUmodule, CUfunction) and device pointers are passed as longs:
 * pointer-sized integers on 64-bit Linux, and longs keep the per-token calls free of allocation.
 * Loading never throws: when the library or a symbol is missing, {@link #unavailableReason()} says so.
 */
final class CudaDriver {
    static final String LIBRARY = "libcuda.so.1";
    static final int CUDA_ERROR_NO_DEVICE = 100;
    static final int ATTRIBUTE_MULTIPROCESSOR_COUNT = 16;
    static final int ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75;
    static final int ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76;
    static final int ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97;
    static final int FUNCTION_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8;
    static final int STREAM_NON_BLOCKING = 1;
    /** CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: only this thread's unsafe calls (e.g. cuMemAlloc) fail a capture. */
    static final int STREAM_CAPTURE_MODE_THREAD_LOCAL = 1;
    static final int JIT_ERROR_LOG_BUFFER = 5;
    static final int JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6;

    private static final MemoryLayout H = JAVA_LONG; // a handle or device pointer
    private static final MemoryLayout P = ADDRESS;   // a host pointer
    private static final MemoryLayout I = JAVA_INT;

    private static final List<String> MISSING = new ArrayList<>();
    private static final String LOAD_FAILURE;
    private static final SymbolLookup LIBRARY_SYMBOLS;

    static {
        SymbolLookup symbols = null;
        String failure = null;
        try {
            symbols = NativeLibrary.load(List.of(LIBRARY), NativeLibrary.DRIVER_DIRS, Arena.global()).symbols();
        } catch (CudaUnavailableException e) {
            failure = e.getMessage() + ": no NVIDIA driver";
        } catch (IllegalCallerException e) {
            failure = "native access is disabled for dev.peregrine.cuda (start the JVM with "
                    + "--enable-native-access=dev.peregrine.cuda, or ALL-UNNAMED on the class path)";
        } catch (RuntimeException | LinkageError e) {
            failure = LIBRARY + " could not be loaded: " + e;
        }
        LOAD_FAILURE = failure;
        LIBRARY_SYMBOLS = symbols;
    }

    static final NativeFunction INIT = bind("cuInit", I);
    static final NativeFunction DRIVER_GET_VERSION = bind("cuDriverGetVersion", P);
    static final NativeFunction DEVICE_GET_COUNT = bind("cuDeviceGetCount", P);
    static final NativeFunction DEVICE_GET = bind("cuDeviceGet", P, I);
    static final NativeFunction DEVICE_GET_NAME = bind("cuDeviceGetName", P, I, I);
    static final NativeFunction DEVICE_GET_ATTRIBUTE = bind("cuDeviceGetAttribute", P, I, I);
    static final NativeFunction DEVICE_TOTAL_MEM = bind("cuDeviceTotalMem_v2", P, I);
    static final NativeFunction PRIMARY_CTX_RETAIN = bind("cuDevicePrimaryCtxRetain", P, I);
    static final NativeFunction PRIMARY_CTX_RELEASE = bind("cuDevicePrimaryCtxRelease_v2", I);
    static final NativeFunction CTX_SET_CURRENT = bind("cuCtxSetCurrent", H);
    static final NativeFunction STREAM_CREATE = bind("cuStreamCreate", P, I);
    static final NativeFunction STREAM_DESTROY = bind("cuStreamDestroy_v2", H);
    static final NativeFunction STREAM_SYNCHRONIZE = bind("cuStreamSynchronize", H);
    static final NativeFunction MODULE_LOAD_DATA_EX = bind("cuModuleLoadDataEx", P, P, I, P, P);
    static final NativeFunction MODULE_UNLOAD = bind("cuModuleUnload", H);
    static final NativeFunction MODULE_GET_FUNCTION = bind("cuModuleGetFunction", P, H, P);
    static final NativeFunction FUNC_SET_ATTRIBUTE = bind("cuFuncSetAttribute", H, I, I);
    static final NativeFunction MEM_ALLOC = bind("cuMemAlloc_v2", P, H);
    static final NativeFunction MEM_FREE = bind("cuMemFree_v2", H);
    static final NativeFunction MEM_GET_INFO = bind("cuMemGetInfo_v2", P, P);
    static final NativeFunction MEM_ALLOC_HOST = bind("cuMemAllocHost_v2", P, H);
    static final NativeFunction MEM_FREE_HOST = bind("cuMemFreeHost", P);
    // The host side as a raw address, so that a copy from inside a buffer needs no slice object.
    static final NativeFunction MEMCPY_HTOD_ASYNC = bind("cuMemcpyHtoDAsync_v2", H, H, H, H);
    static final NativeFunction MEMCPY_DTOH_ASYNC = bind("cuMemcpyDtoHAsync_v2", P, H, H, H);
    static final NativeFunction MEMCPY_DTOD_ASYNC = bind("cuMemcpyDtoDAsync_v2", H, H, H, H);
    static final NativeFunction MEMSET_D8_ASYNC = bind("cuMemsetD8Async", H, JAVA_BYTE, H, H);
    static final NativeFunction LAUNCH_KERNEL = bind("cuLaunchKernel", H, I, I, I, I, I, I, I, H, P, P);
    static final NativeFunction STREAM_BEGIN_CAPTURE = bind("cuStreamBeginCapture_v2", H, I);
    static final NativeFunction STREAM_END_CAPTURE = bind("cuStreamEndCapture", H, P);
    static final NativeFunction GRAPH_INSTANTIATE = bind("cuGraphInstantiateWithFlags", P, H, H);
    static final NativeFunction GRAPH_LAUNCH = bind("cuGraphLaunch", H, H);
    static final NativeFunction GRAPH_EXEC_DESTROY = bind("cuGraphExecDestroy", H);
    static final NativeFunction GRAPH_DESTROY = bind("cuGraphDestroy", H);
    private static final NativeFunction GET_ERROR_NAME = bind("cuGetErrorName", I, P);
    private static final NativeFunction GET_ERROR_STRING = bind("cuGetErrorString", I, P);

    private CudaDriver() {
    }

    private static NativeFunction bind(String name, MemoryLayout... args) {
        return NativeFunction.bind(LIBRARY_SYMBOLS, name, CudaDriver::describe, MISSING, args);
    }

    /** Why the driver cannot be used at all, or empty when every function bound. */
    static Optional<String> unavailableReason() {
        if (LOAD_FAILURE != null) {
            return Optional.of(LOAD_FAILURE);
        }
        if (!MISSING.isEmpty()) {
            return Optional.of(LIBRARY + " lacks " + MISSING + ": the NVIDIA driver is too old for CUDA 12");
        }
        return Optional.empty();
    }

    /** cuInit, then the number of devices; 0 when the driver reports none (CUDA_ERROR_NO_DEVICE). */
    static int deviceCount() {
        requireLoaded();
        try {
            INIT.call(0);
        } catch (CudaException e) {
            if (e.status() == CUDA_ERROR_NO_DEVICE) {
                return 0;
            }
            throw e;
        }
        return readInt(DEVICE_GET_COUNT);
    }

    /** The driver's CUDA version, e.g. 13000 for 13.0. */
    static int driverVersion() {
        requireLoaded();
        return readInt(DRIVER_GET_VERSION);
    }

    static void requireLoaded() {
        unavailableReason().ifPresent(reason -> {
            throw new CudaUnavailableException(reason);
        });
    }

    /** Calls {@code f(out, args...)} and returns the int it wrote. */
    static int readInt(NativeFunction f, Object... args) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_INT);
            f.call(prepend(out, args));
            return out.get(JAVA_INT, 0);
        }
    }

    /** Calls {@code f(out, args...)} and returns the pointer-sized value it wrote (a handle, pointer or size). */
    static long readLong(NativeFunction f, Object... args) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(JAVA_LONG);
            f.call(prepend(out, args));
            return out.get(JAVA_LONG, 0);
        }
    }

    private static Object[] prepend(Object first, Object[] rest) {
        Object[] all = new Object[rest.length + 1];
        all[0] = first;
        System.arraycopy(rest, 0, all, 1, rest.length);
        return all;
    }

    /** The status's enum name and description from the driver, or the bare number when it cannot say. */
    private static String[] describe(int status) {
        return new String[] {errorText(GET_ERROR_NAME, status, "CUDA error " + status), errorText(GET_ERROR_STRING, status, "")};
    }

    @SuppressWarnings("restricted") // the driver returns a pointer to a static C string
    private static String errorText(NativeFunction f, int status, String otherwise) {
        if (f.handle() == null) {
            return otherwise;
        }
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment out = arena.allocate(ADDRESS);
            if ((int) f.handle().invokeExact(status, out) != 0) {
                return otherwise;
            }
            return out.get(ADDRESS, 0).reinterpret(1024).getString(0);
        } catch (Throwable t) {
            return otherwise;
        }
    }
}
