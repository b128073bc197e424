package dev.peregrine.cuda;

import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BackendConfig;
import dev.peregrine.spi.BackendProvider;
import java.util.Optional;

/**
 * Registers the CUDA backend. Its priority is above the CPU backend's, so {@code "auto"} takes the
 * GPU when one is usable. Whether it is usable is found out once per JVM, cheaply and without ever
 * throwing: the driver library loads, a device exists, device 0 is compute capability 8.0 or newer,
 * and cuBLAS loads. Anything else leaves a reason and the CPU backend runs.
 */
public final class CudaBackendProvider implements BackendProvider {
    static final int PRIORITY = 100;
    static final int MIN_COMPUTE_CAPABILITY = 80;

    @Override
    public String name() {
        return "cuda";
    }

    @Override
    public int priority() {
        return PRIORITY;
    }

    @Override
    public Optional<String> unavailableReason() {
        return Probe.REASON;
    }

    @Override
    public Backend create(BackendConfig config) {
        Probe.REASON.ifPresent(reason -> {
            throw new CudaUnavailableException(reason);
        });
        CudaDevice device = CudaDevice.open(config.deviceIndex()); // the kernels check its compute capability
        Cublas blas = null;
        try {
            blas = Cublas.create(device);
            return new CudaBackend(device, blas);
        } catch (RuntimeException | Error e) {
            if (blas != null) {
                CudaDevice.attempt(null, blas::close);
            }
            CudaDevice.attempt(null, device::close);
            throw e;
        }
    }

    private static String tooOld(int ordinal, int capability) {
        return "GPU " + ordinal + " (" + CudaDevice.nameOf(ordinal) + ") has compute capability " + capability / 10 + "."
                + capability % 10 + "; Peregrine's CUDA kernels need " + MIN_COMPUTE_CAPABILITY / 10 + ".0 or newer";
    }

    /** The availability check, run once on first use (class initialisation is lazy and thread-safe). */
    private static final class Probe {
        static final Optional<String> REASON = probe();

        private static Optional<String> probe() {
            try {
                Optional<String> driver = CudaDriver.unavailableReason();
                if (driver.isPresent()) {
                    return driver;
                }
                int devices = CudaDriver.deviceCount();
                if (devices == 0) {
                    return Optional.of("the NVIDIA driver reports no CUDA device (check CUDA_VISIBLE_DEVICES)");
                }
                int capability = CudaDevice.computeCapabilityOf(0);
                if (capability < MIN_COMPUTE_CAPABILITY) {
                    return Optional.of(tooOld(0, capability));
                }
                return Cublas.unavailableReason();
            } catch (Throwable t) { // whatever goes wrong here must leave the CPU backend working
                return Optional.of("CUDA could not be initialised: " + t);
            }
        }
    }
}
