package dev.peregrine.cuda;

import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.List;
import java.util.function.IntFunction;

/**
 * One C function of the CUDA driver or cuBLAS that returns a status code (0 = success), bound
 * through FFM. Cold-path calls go through {@link #call}; hot paths call {@link #handle()} with
 * {@code invokeExact} (no boxing) and pass the status to {@link #check}. Held in static finals so
 * the JIT treats the handle as a constant.
 *
 * @param name     the C symbol, named in every error
 * @param handle   the downcall handle, or null when the library or the symbol is missing
 * @param describe turns a failed status into "NAME, description" for messages
 */
record NativeFunction(String name, MethodHandle handle, IntFunction<String[]> describe) {
    private static final Linker LINKER = Linker.nativeLinker();

    /** Binds {@code name(args) -> int} in {@code library}; a null handle when it is absent (recorded in {@code missing}). */
    @SuppressWarnings("restricted") // binding C functions is what this class is for
    static NativeFunction bind(SymbolLookup library, String name, IntFunction<String[]> describe, List<String> missing,
                               MemoryLayout... args) {
        MethodHandle handle = null;
        if (library != null) {
            var symbol = library.find(name);
            if (symbol.isPresent()) {
                handle = LINKER.downcallHandle(symbol.get(), FunctionDescriptor.of(ValueLayout.JAVA_INT, args));
            } else {
                missing.add(name);
            }
        }
        return new NativeFunction(name, handle, describe);
    }

    /** Calls the function (boxing its arguments: for calls outside the per-token path). */
    void call(Object... args) {
        int status;
        try {
            status = (int) handle.invokeWithArguments(args);
        } catch (Throwable t) {
            throw failure(t);
        }
        check(status);
    }

    /** Throws a {@link CudaException} naming this function when {@code status} is not success. */
    void check(int status) {
        if (status != 0) {
            String[] nameAndText = describe.apply(status);
            throw new CudaException(name, status, nameAndText[0], nameAndText[1]);
        }
    }

    /**
     * What to throw when invoking the handle threw {@code t}: runtime exceptions (a failed check
     * among them) as they are, errors rethrown, anything else (not expected of a downcall) wrapped.
     */
    RuntimeException failure(Throwable t) {
        if (t instanceof RuntimeException e) {
            return e;
        }
        if (t instanceof Error e) {
            throw e;
        }
        return new CudaException(name, t);
    }
}
