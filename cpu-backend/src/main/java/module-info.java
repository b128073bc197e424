/** The CPU backend: kernels over off-heap memory and memory-mapped weights, run by a fixed thread pool. */
module dev.peregrine.cpu {
    requires dev.peregrine;
    requires org.slf4j;
    // Optional: without it (no --add-modules jdk.incubator.vector) the backend runs its scalar kernels.
    requires static jdk.incubator.vector;

    provides dev.peregrine.spi.BackendProvider with dev.peregrine.cpu.CpuBackendProvider;
}
