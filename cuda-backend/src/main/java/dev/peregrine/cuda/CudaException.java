package dev.peregrine.cuda;

import dev.peregrine.PeregrineException;

/** A CUDA driver or cuBLAS call that returned an error status; the message names the call and the status. */
public final class CudaException extends PeregrineException {
    private static final long serialVersionUID = 1L;

    private final String call;
    private final int status;

    CudaException(String call, int status, String statusName, String description) {
        super(call + " failed: " + statusName + " (" + status + (description.isEmpty() ? "" : ", " + description) + ")");
        this.call = call;
        this.status = status;
    }

    private CudaException(String call, int status, String message, Throwable cause) {
        super(message, cause);
        this.call = call;
        this.status = status;
    }

    /** The same failure with more to say, e.g. the JIT compiler's log. */
    CudaException withDetail(String detail) {
        return new CudaException(call, status, getMessage() + "; " + detail, this);
    }

    CudaException(String call, Throwable cause) {
        super(call + " could not be called: " + cause, cause);
        this.call = call;
        this.status = -1;
    }

    /** The C function that failed, e.g. {@code cuMemAlloc_v2} or {@code cublasGemmEx}. */
    public String call() {
        return call;
    }

    /** Its status code (CUresult or cublasStatus_t); -1 when the call itself could not be made. */
    public int status() {
        return status;
    }
}
