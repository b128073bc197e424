package dev.peregrine.cuda;

/** A {@link Blas} for {@link FakeDevice}: computes nothing, checks that every operand lies in device memory. */
final class FakeBlas implements Blas {
    private final FakeDevice device;
    final int[] gemms = new int[Type.values().length];
    boolean closed;
    /** Fails every GEMM issued while a graph is being captured, as a library that cannot be captured would. */
    boolean failWhileCapturing;

    FakeBlas(FakeDevice device) {
        this.device = device;
    }

    @Override
    public void gemm(Type type, int m, int n, int k, long a, int lda, long b, int ldb, long c, int ldc) {
        if (m < 1 || n < 1 || k < 1 || lda < k || ldb < k || ldc < m) {
            throw new AssertionError("cublasGemmEx with m=" + m + " n=" + n + " k=" + k + " lda=" + lda + " ldb=" + ldb + " ldc=" + ldc);
        }
        int size = type == Type.F32 ? 4 : 2;
        device.requireRange(a, ((long) (m - 1) * lda + k) * size, "cublasGemmEx A");
        device.requireRange(b, ((long) (n - 1) * ldb + k) * size, "cublasGemmEx B");
        device.requireRange(c, ((long) (n - 1) * ldc + m) * 4, "cublasGemmEx C");
        if (failWhileCapturing && device.capturing()) {
            throw new CudaException("cublasGemmEx", 14, "CUBLAS_STATUS_INTERNAL_ERROR", "not capturable (test)");
        }
        if (device.capturing() && device.deferred(() -> gemm(type, m, n, k, a, lda, b, ldb, c, ldc))) {
            return;
        }
        gemms[type.ordinal()]++;
        if (device.executed != null) {
            device.ran("gemm " + type + " " + m + " " + n + " " + k + " " + device.describe(a) + " " + lda + " "
                    + device.describe(b) + " " + ldb + " " + device.describe(c) + " " + ldc);
        }
    }

    @Override
    public String description() {
        return "fake BLAS";
    }

    @Override
    public void close() {
        closed = true;
    }
}
