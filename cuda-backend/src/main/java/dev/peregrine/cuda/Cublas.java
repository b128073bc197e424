package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;

/**
 * cuBLAS bound through FFM against whichever major version the machine has (libcublas.so.13, else
 * .12), found at run time: JCublas links libcublas.so.12 and the GPU machines have only CUDA 13.
 * One handle per backend, on the backend's stream, with its own workspace (so that it never
 * allocates during a step, which a CUDA graph capture would also forbid).
 *
 * <p>GEMMs use CUBLAS_COMPUTE_32F (float accumulation; with the default math mode F32 inputs are
 * not rounded to TF32), so results stay close to the CPU backend's.
 */
final class Cublas implements Blas {
    private static final List<String> MAJOR_VERSIONS = List.of("13", "12");
    private static final long WORKSPACE_BYTES = 32L << 20; // what cuBLAS recommends for Hopper
    private static final int OP_N = 0;
    private static final int OP_T = 1;
    private static final int COMPUTE_32F = 68;
    private static final int GEMM_DEFAULT = -1;

    private static final MemoryLayout H = JAVA_LONG;
    private static final MemoryLayout P = ADDRESS;
    private static final MemoryLayout I = JAVA_INT;

    private static final List<String> MISSING = new ArrayList<>();
    private static final String LOAD_FAILURE;
    private static final SymbolLookup LIBRARY_SYMBOLS;
    private static final String LIBRARY_PATH;

    static {
        SymbolLookup symbols = null;
        String path = null;
        String failure = null;
        List<String> notFound = new ArrayList<>();
        try {
            List<Path> dirs = NativeLibrary.toolkitDirs();
            for (String major : MAJOR_VERSIONS) {
                try {
                    // libcublas needs libcublasLt of its version; loaded first it is found even
                    // when it sits in a directory the dynamic linker does not search.
                    NativeLibrary.load(List.of("libcublasLt.so." + major), dirs, Arena.global());
                } catch (CudaUnavailableException e) {
                    // loading libcublas below says what is missing
                }
                try {
                    NativeLibrary.Loaded loaded = NativeLibrary.load(List.of("libcublas.so." + major), dirs, Arena.global());
                    symbols = loaded.symbols();
                    path = loaded.path();
                    break;
                } catch (CudaUnavailableException e) {
                    notFound.add(e.getMessage());
                }
            }
            if (symbols == null) {
                failure = "cuBLAS is not installed: " + String.join("; ", notFound);
            }
        } catch (IllegalCallerException e) {
            failure = "native access is disabled for dev.peregrine.cuda (start the JVM with "
                    + "--enable-native-access=dev.peregrine.cuda, or ALL-UNNAMED on the class path)";
        } catch (RuntimeException | LinkageError e) {
            failure = "cuBLAS could not be loaded: " + e;
        }
        LOAD_FAILURE = failure;
        LIBRARY_SYMBOLS = symbols;
        LIBRARY_PATH = path;
    }

    private static final NativeFunction CREATE = bind("cublasCreate_v2", P);
    private static final NativeFunction DESTROY = bind("cublasDestroy_v2", H);
    private static final NativeFunction SET_STREAM = bind("cublasSetStream_v2", H, H);
    private static final NativeFunction SET_WORKSPACE = bind("cublasSetWorkspace_v2", H, H, H);
    private static final NativeFunction GEMM_EX = bind("cublasGemmEx",
            H, I, I, I, I, I, P, H, I, I, H, I, I, P, H, I, I, I, I);

    /** alpha = 1 and beta = 0, read by cuBLAS from host memory at every GEMM. */
    private static final MemorySegment ONE = Arena.global().allocateFrom(JAVA_FLOAT, 1f);
    private static final MemorySegment ZERO = Arena.global().allocateFrom(JAVA_FLOAT, 0f);

    private final Device device;
    private final long handle;
    private final long workspace;

    private Cublas(Device device, long handle, long workspace) {
        this.device = device;
        this.handle = handle;
        this.workspace = workspace;
    }

    private static NativeFunction bind(String name, MemoryLayout... args) {
        return NativeFunction.bind(LIBRARY_SYMBOLS, name, Cublas::describe, MISSING, args);
    }

    /** Why cuBLAS cannot be used here, or empty when it loaded with every function. */
    static Optional<String> unavailableReason() {
        if (LOAD_FAILURE != null) {
            return Optional.of(LOAD_FAILURE);
        }
        if (!MISSING.isEmpty()) {
            return Optional.of(LIBRARY_PATH + " lacks " + MISSING);
        }
        return Optional.empty();
    }

    /** A handle queuing its work on {@code device}'s stream; the device's context must be current. */
    static Cublas create(Device device) {
        unavailableReason().ifPresent(reason -> {
            throw new CudaUnavailableException(reason);
        });
        long handle = CudaDriver.readLong(CREATE);
        long workspace = 0;
        try {
            SET_STREAM.call(handle, device.stream());
            workspace = device.allocate(WORKSPACE_BYTES);
            SET_WORKSPACE.call(handle, workspace, WORKSPACE_BYTES);
            return new Cublas(device, handle, workspace);
        } catch (RuntimeException e) {
            if (workspace != 0) {
                device.free(workspace);
            }
            DESTROY.call(handle);
            throw e;
        }
    }

    @Override
    public void gemm(Type type, int m, int n, int k, long a, int lda, long b, int ldb, long c, int ldc) {
        NativeFunction f = GEMM_EX;
        try {
            f.check((int) f.handle().invokeExact(handle, OP_T, OP_N, m, n, k, ONE, a, type.cudaDataType, lda,
                    b, type.cudaDataType, ldb, ZERO, c, Type.F32.cudaDataType, ldc, COMPUTE_32F, GEMM_DEFAULT));
        } catch (Throwable t) {
            throw f.failure(t);
        }
    }

    @Override
    public String description() {
        return "cuBLAS " + LIBRARY_PATH;
    }

    @Override
    public void close() {
        RuntimeException first = CudaDevice.attempt(null, () -> DESTROY.call(handle));
        first = CudaDevice.attempt(first, () -> device.free(workspace));
        if (first != null) {
            throw first;
        }
    }

    /** cublasStatus_t names (cublas_api.h). */
    private static String[] describe(int status) {
        String name = switch (status) {
            case 1 -> "CUBLAS_STATUS_NOT_INITIALIZED";
            case 3 -> "CUBLAS_STATUS_ALLOC_FAILED";
            case 7 -> "CUBLAS_STATUS_INVALID_VALUE";
            case 8 -> "CUBLAS_STATUS_ARCH_MISMATCH";
            case 11 -> "CUBLAS_STATUS_MAPPING_ERROR";
            case 13 -> "CUBLAS_STATUS_EXECUTION_FAILED";
            case 14 -> "CUBLAS_STATUS_INTERNAL_ERROR";
            case 15 -> "CUBLAS_STATUS_NOT_SUPPORTED";
            case 16 -> "CUBLAS_STATUS_LICENSE_ERROR";
            default -> "cuBLAS status " + status;
        };
        return new String[] {name, ""};
    }
}
