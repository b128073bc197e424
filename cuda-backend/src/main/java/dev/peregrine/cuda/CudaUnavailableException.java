package dev.peregrine.cuda;

import dev.peregrine.PeregrineException;

/** CUDA cannot be used in this process (no driver library, no device, no cuBLAS, ...); the message says why. */
public final class CudaUnavailableException extends PeregrineException {
    private static final long serialVersionUID = 1L;

    CudaUnavailableException(String reason) {
        super(reason);
    }
}
