/** The CPU backend: kernels over off-heap memory and memory-mapped weights, run by a fixed thread pool. */
module dev.peregrine.cpu {
    requires dev.peregrine;
    requires org.slf4j;

    provides dev.peregrine.spi.BackendProvider with dev.peregrine.cpu.CpuBackendProvider;
}
