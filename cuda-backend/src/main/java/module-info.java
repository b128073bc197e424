/**
 * The CUDA backend: kernels from native/*.cu (shipped as PTX), the driver and cuBLAS bound through
 * FFM. Needs native access: {@code --enable-native-access=dev.peregrine.cuda} (or ALL-UNNAMED on
 * the class path). Without a usable GPU it reports why and {@code "auto"} picks the CPU backend.
 */
module dev.peregrine.cuda {
    requires dev.peregrine;
    requires org.slf4j;

    provides dev.peregrine.spi.BackendProvider with dev.peregrine.cuda.CudaBackendProvider;
}
