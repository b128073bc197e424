package dev.peregrine.cuda;

/** Matrix-matrix products for prefill and large batches ({@link Cublas} on a GPU). */
interface Blas extends AutoCloseable {

    /** Element type of the A and B operands; C is always float. Values are cudaDataType_t. */
    enum Type {
        F32(0), F16(2), BF16(14);

        final int cudaDataType;

        Type(int cudaDataType) {
            this.cudaDataType = cudaDataType;
        }
    }

    /**
     * {@code C[j][i] = A[i] . B[j]}: A holds {@code m} rows of {@code k} values (row i at element
     * {@code i * lda}), B holds {@code n} rows of {@code k} values ({@code ldb}), C receives {@code n}
     * rows of {@code m} floats ({@code ldc}). With A a weight matrix and B the token rows of a batch,
     * C is the batch's output rows. Queued on the device's stream.
     */
    void gemm(Type type, int m, int n, int k, long a, int lda, long b, int ldb, long c, int ldc);

    /** E.g. "cuBLAS libcublas.so.13". */
    String description();

    @Override
    void close();
}
