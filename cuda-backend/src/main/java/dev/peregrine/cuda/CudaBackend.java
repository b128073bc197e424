package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

import dev.peregrine.spi.Activation;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Candidates;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Quantize;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import java.util.Locale;
import java.util.Map;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CUDA backend: weights, activations and the KV cache in device memory, every {@link Backend}
 * operation a kernel launch (native/*.cu) or a cuBLAS GEMM on one stream. Only {@link #read} and
 * {@link #selectCandidates} (which copies back a few candidates per logits row instead of the row)
 * wait for the GPU, so a step's launches queue up while the GPU works.
 *
 * <p>Decode-sized products (up to {@value #MATVEC_MAX_TOKENS} token rows) run the matrix-vector
 * kernels, which stream each weight once at close to the memory bandwidth; larger batches and
 * prompts go to cuBLAS with half-precision operands (quantised weights dequantised to f16 first).
 * The other quantised types (Q4_1, Q5_0, Q5_1, the K-quants, IQ4_NL and IQ4_XS) have no kernels of
 * their own yet: they are dequantised to F16 at upload and run as F16 weights.
 *
 * <p>No allocation per step once the first steps have sized the scratch areas: device memory is
 * allocated at upload and by {@link #allocate}, launch arguments are staged in one reused native
 * buffer. Device addresses stay fixed from step to step, as replaying a captured CUDA graph of the
 * decode step will need (not done yet: every step launches its kernels, ~3 µs each through FFM).
 */
final class CudaBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(CudaBackend.class);

    /** Token rows up to which matmul uses the matrix-vector kernels (MAX_TOKENS in native/matvec.cu). */
    static final int MATVEC_MAX_TOKENS = 8;
    /**
     * Token rows up to which quantised weights still take the matrix-vector kernels, 8 rows per
     * pass: cheaper than dequantising the whole matrix to f16 for cuBLAS (about 5 bytes moved per
     * weight against ~1 per pass), and no f16 copy of the (large) output matrix is ever needed.
     */
    static final int QUANTISED_MATVEC_MAX_TOKENS = 32;
    private static final int BLOCK = 256;
    private static final int MATVEC_BLOCK = 256;
    private static final int MATVEC_MAX_WARPS_PER_ROW = MATVEC_BLOCK / 32;
    /** Matrices one matrix-vector launch takes (MAX_PRODUCTS in native/matvec.cu). */
    static final int MATVEC_MAX_PRODUCTS = 3;
    private static final int EMBED_BLOCK = 128;
    private static final int SAMPLE_BLOCK = 1024;
    /** Largest k of pg_top_k: one candidate per thread of its block (SAMPLE_THREADS in native/sampling.cu). */
    static final int MAX_TOP_K = SAMPLE_BLOCK;
    // native/attention.cu
    private static final int ATTENTION_BLOCK = 128;
    private static final int ATTENTION_VECTORS = 16;
    private static final int ATTENTION_KV = 32;
    static final int MAX_HEAD_DIM = 256;
    private static final int MAX_SPLITS = 64;
    private static final int ATTENTION_COMBINE_BLOCK = 128; // at least MAX_SPLITS: a thread per split
    private static final int ATTENTION_BLOCKS_PER_SM = 8;
    private static final int DEFAULT_SHARED_MEMORY = 48 * 1024;
    /** Quantised weights go up in pieces of this many bytes, through a device staging area. */
    private static final long UPLOAD_CHUNK = 64L << 20;

    /** System property: "false" turns CUDA graphs off (every launch goes to the driver), e.g. to compare. */
    static final String GRAPHS_PROPERTY = "peregrine.cuda.graphs";
    /** Steps of more tokens run without CUDA graphs. */
    static final int GRAPH_MAX_TOKENS = 64;

    /** The device and cuBLAS behind {@link #graphs}: every operation of a step passes through it. */
    private final Device device;
    private final Blas blas;
    private final StepGraphs graphs;
    private final long[] functions;
    private final DeviceMemory memory;
    private final Arena arena = Arena.ofShared();
    private final LaunchArgs args;
    private final StepLayout step;
    private final DeviceMemory.Scratch uploadStaging;
    private final DeviceMemory.Scratch gemmInput;
    private final DeviceMemory.Scratch gemmWeight;
    /** Both halves of a split bf16 GEMM's result (see gemm). */
    private final DeviceMemory.Scratch gemmOutput;
    private final DeviceMemory.Scratch attentionPartials;
    private final DeviceMemory.Scratch samples;
    private MemorySegment transfer = MemorySegment.NULL;
    private float[] ropeFrequencies = new float[0];
    private long ropeFrequencyBuffer;
    private int attentionSharedLimit = DEFAULT_SHARED_MEMORY;
    private boolean heldAsF16Logged;
    /** The products of the matrix-vector launch being set up (reused: no allocation per step). */
    private final CudaWeight[] productWeights = new CudaWeight[MATVEC_MAX_PRODUCTS];
    private final long[] productOuts = new long[MATVEC_MAX_PRODUCTS];
    private boolean closed;

    CudaBackend(Device device, Blas blas) {
        this(device, blas, !"false".equalsIgnoreCase(System.getProperty(GRAPHS_PROPERTY)));
    }

    /** @param useGraphs capture repeated steps as CUDA graphs and replay them (see {@link StepGraphs}) */
    CudaBackend(Device gpu, Blas cublas, boolean useGraphs) {
        this.graphs = new StepGraphs(gpu, cublas, useGraphs);
        this.device = graphs;
        this.blas = graphs.blas();
        device.makeCurrent();
        this.functions = loadKernels(device);
        this.memory = new DeviceMemory(device);
        this.args = new LaunchArgs(arena);
        this.step = new StepLayout(device);
        this.uploadStaging = new DeviceMemory.Scratch(device);
        this.gemmInput = new DeviceMemory.Scratch(device);
        this.gemmWeight = new DeviceMemory.Scratch(device);
        this.gemmOutput = new DeviceMemory.Scratch(device);
        this.attentionPartials = new DeviceMemory.Scratch(device);
        this.samples = new DeviceMemory.Scratch(device);
    }

    /** Loads every module's PTX for the device's architecture, after checking each kernel's parameters against it. */
    static long[] loadKernels(Device device) {
        int architecture = Ptx.architectureFor(device.computeCapability());
        if (architecture < 0) {
            throw new CudaUnavailableException(device.name() + " has compute capability " + device.computeCapability() / 10
                    + "." + device.computeCapability() % 10 + "; the CUDA backend needs 8.0 or newer");
        }
        long[] functions = new long[Kernel.values().length];
        for (String module : Kernel.MODULES) {
            String ptx = Ptx.read(module, architecture);
            Map<String, String> entries = Ptx.entries(ptx);
            for (Kernel k : Kernel.values()) {
                if (k.module.equals(module) && !k.ptxSignature().equals(entries.get(k.entry))) {
                    throw new IllegalStateException(k.entry + " in " + Ptx.resource(module, architecture) + " takes ("
                            + entries.get(k.entry) + ") but Kernel declares (" + k.ptxSignature() + ")");
                }
            }
            long handle = device.loadModule(module, ptx);
            for (Kernel k : Kernel.values()) {
                if (k.module.equals(module)) {
                    functions[k.ordinal()] = device.function(handle, k.entry);
                }
            }
        }
        return functions;
    }

    @Override
    public String description() {
        int cc = device.computeCapability();
        return String.format(Locale.ROOT, "CUDA, %s (compute %d.%d, %d SMs, %.1f GiB), %s", device.name(),
                cc / 10, cc % 10, device.multiprocessors(), device.totalMemory() / (double) (1L << 30), blas.description());
    }

    // ---- memory ----

    @Override
    public Weight upload(Tensor t) {
        device.makeCurrent();
        if (t.rowLength() > Integer.MAX_VALUE || t.rows() > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(t + " is too large for the CUDA backend");
        }
        int rows = (int) t.rows();
        int columns = (int) t.rowLength();
        DType type = t.type();
        MemorySegment data = t.data();
        try (Arena host = Arena.ofConfined()) {
            // Vectors (norm weights) are read as floats; quantised rows that run across row
            // boundaries (old files) are dequantised flat, as the CPU backend does.
            if (!t.rowsAreBlockAligned() || (rows == 1 && type != DType.F32)) {
                if (!t.rowsAreBlockAligned()) {
                    LOG.info("{}: rows of {} values are not a whole number of {} blocks; dequantising it flat to F32",
                            t.name(), columns, type);
                }
                float[] all = Dequant.toFloat(t);
                data = host.allocate((long) all.length * Float.BYTES, 16);
                MemorySegment.copy(all, 0, data, JAVA_FLOAT, 0, all.length);
                type = DType.F32;
            }
            CudaWeight w = !hasKernels(type) ? uploadAsF16(t.name(), type, rows, columns, data)
                    : type.isQuantized() ? uploadQuantized(t.name(), type, rows, columns, data)
                    : uploadPlain(t.name(), type, rows, columns, data);
            device.synchronize(); // the copies read host memory that is gone after this
            return w;
        }
    }

    /** F32, F16, BF16: ggml's rows, each padded with zeros to a multiple of 16 bytes. */
    private CudaWeight uploadPlain(String name, DType type, int rows, int columns, MemorySegment data) {
        long rowBytes = type.bytesFor(columns);
        int stride = (int) ((rowBytes + 15) / 16 * 16);
        long dst = memory.allocate((long) rows * stride);
        if (stride == rowBytes) {
            device.copyToDevice(dst, data, 0, rows * rowBytes);
        } else {
            device.zero(dst, (long) rows * stride);
            for (int r = 0; r < rows; r++) {
                device.copyToDevice(dst + (long) r * stride, data, r * rowBytes, rowBytes);
            }
        }
        return new CudaWeight(name, type, rows, columns, dst, 0, stride);
    }

    /**
     * The types without kernels of their own: dequantised on the host a piece at a time and kept
     * as F16 rows, which the F16 kernels and cuBLAS take as they are. Rows are whole blocks of at
     * least 32 values (checked above), so 2 * columns bytes is already a multiple of 16 and needs no
     * padding.
     */
    private CudaWeight uploadAsF16(String name, DType type, int rows, int columns, MemorySegment data) {
        if (!heldAsF16Logged) {
            LOG.info("{} weights have no CUDA kernels yet: dequantising them (and any weights but F32, F16, BF16, Q8_0 and"
                    + " Q4_0) to F16 at upload (16 bits a weight)", type);
            heldAsF16Logged = true;
        }
        long rowBytes = 2L * columns;
        long dst = memory.allocate(rows * rowBytes);
        int rowsPerPiece = (int) Math.max(1, Math.min(rows, UPLOAD_CHUNK / rowBytes));
        float[] row = new float[columns];
        try (Arena host = Arena.ofConfined()) {
            MemorySegment piece = host.allocate(rowsPerPiece * rowBytes, 16);
            for (int first = 0; first < rows; first += rowsPerPiece) {
                int n = Math.min(rowsPerPiece, rows - first);
                for (int r = 0; r < n; r++) {
                    Dequant.toFloat(type, data, (long) (first + r) * columns, row, 0, columns);
                    Quantize.fromFloat(DType.F16, row, 0, columns, piece, r * rowBytes);
                }
                device.copyToDevice(dst + first * rowBytes, piece, 0, n * rowBytes);
                device.synchronize(); // the next piece reuses the host buffer
            }
        }
        return new CudaWeight(name, DType.F16, rows, columns, dst, 0, (int) rowBytes);
    }

    /** The error for code that meets a weight type that upload turns into F16. */
    static IllegalStateException heldAsF16(DType type) {
        return new IllegalStateException("no CUDA kernels for " + type + ": its weights are uploaded as F16");
    }

    /** Whether weights of {@code type} have CUDA kernels of their own (the others are uploaded as F16). */
    static boolean hasKernels(DType type) {
        return switch (type) {
            case F32, F16, BF16, Q8_0, Q4_0 -> true;
            default -> false;
        };
    }

    /** Q8_0, Q4_0: blocks split into contiguous quants and f16 scales (native/weights.cuh) by pg_split_blocks. */
    private CudaWeight uploadQuantized(String name, DType type, int rows, int columns, MemorySegment data) {
        int blockBytes = type.blockBytes();
        int quantBytes = blockBytes - 2;
        long blocks = (long) rows * (columns / type.blockSize());
        long quants = memory.allocate(blocks * quantBytes);
        long scales = memory.allocate(blocks * 2);
        long perPiece = UPLOAD_CHUNK / blockBytes;
        long staging = uploadStaging.at(Math.min(blocks, perPiece) * blockBytes);
        for (long b = 0; b < blocks; b += perPiece) {
            long n = Math.min(perPiece, blocks - b);
            device.copyToDevice(staging, data, b * blockBytes, n * blockBytes);
            args.reset().ptr(staging).ptr(quants + b * quantBytes).ptr(scales + b * 2).i64(n).i32(blockBytes);
            launch(Kernel.SPLIT_BLOCKS, gridStride(n), BLOCK);
        }
        return new CudaWeight(name, type, rows, columns, quants, scales, columns / type.blockSize() * quantBytes);
    }

    @Override
    public Buffer allocate(long floats) {
        return allocate(floats, DType.F32);
    }

    /** F32 buffers, and F16 ones for a KV cache kept in half precision (storeKv, attention and copy take them). */
    @Override
    public Buffer allocate(long count, DType type) {
        if (type != DType.F32 && type != DType.F16) {
            throw new IllegalArgumentException("the CUDA backend keeps buffers of F32 or F16 values, not " + type);
        }
        device.makeCurrent();
        long bytes = count * (type == DType.F16 ? 2 : Float.BYTES);
        long address = memory.allocate(bytes);
        device.zero(address, bytes);
        return new CudaBuffer(address, count, type);
    }

    @Override
    public void beginStep(BatchLayout layout) {
        device.makeCurrent();
        uploadStaging.close(); // weights are all uploaded before the first step
        // The previous step ended with read(), so this returns at once; it guarantees that the
        // layout's page-locked staging buffer is no longer being copied from.
        device.synchronize();
        step.upload(layout);
        // Graphs pay where launches outweigh the GPU work: decode and small batches. A long prompt
        // step is all GEMMs, and capturing it would cost more than replaying it saves.
        graphs.beginStep(shapeKey(layout), layout.tokenCount <= GRAPH_MAX_TOKENS);
    }

    /** Steps it may record as graphs must run whole: only longer ones may pause between layers. */
    @Override
    public boolean stepMayPause(BatchLayout layout) {
        return layout.tokenCount > GRAPH_MAX_TOKENS;
    }

    /** Steps with the same key usually issue the same operations (StepGraphs checks that they do). */
    private static long shapeKey(BatchLayout layout) {
        long key = layout.tokenCount;
        key = key * 1_000_003 + layout.sequenceCount;
        key = key * 1_000_003 + layout.logitCount;
        for (int i = 0; i < layout.logitCount; i++) {
            key = key * 31 + layout.logitRows[i];
        }
        return key;
    }

    // ---- kernels ----

    @Override
    public void embed(Buffer out, Weight table, BatchLayout layout) {
        CudaWeight w = (CudaWeight) table;
        int n = layout.tokenCount;
        for (int r = 0; r < n; r++) {
            int token = layout.tokens[r];
            if (token < 0 || token >= w.rows()) {
                throw new IllegalArgumentException("token id " + token + " outside the vocabulary of " + w.rows());
            }
        }
        args.reset().ptr(address(out, 0, (long) n * w.columns())).ptr(step.tokens()).ptr(w.data()).ptr(w.scales())
                .i32(w.rowStride()).i32(w.columns());
        launch(Kernel.embed(w.type()), n, EMBED_BLOCK);
    }

    @Override
    public void rmsNorm(Buffer out, Buffer in, Weight weight, int rows, int width, float eps) {
        long count = (long) rows * width;
        rmsNorm(address(out, 0, count), address(in, 0, count), 0, weight, rows, width, eps);
    }

    @Override
    public void addRmsNorm(Buffer x, Buffer residual, Buffer out, Weight weight, int rows, int width, float eps) {
        long count = (long) rows * width;
        rmsNorm(address(out, 0, count), address(x, 0, count), address(residual, 0, count), weight, rows, width, eps);
    }

    /** pg_rms_norm: out = norm(in) * weight per row; with a residual (not 0), in += residual first. */
    private void rmsNorm(long out, long in, long residual, Weight weight, int rows, int width, float eps) {
        CudaWeight w = vector(weight, width);
        args.reset().ptr(out).ptr(in).ptr(residual).ptr(w.data()).i32(width).f32(eps);
        launch(Kernel.RMS_NORM, rows, BLOCK);
    }

    @Override
    public void matmul(Buffer out, Buffer in, Weight weight, int rows) {
        CudaWeight w = (CudaWeight) weight;
        long y = address(out, 0, (long) rows * w.rows());
        long x = address(in, 0, (long) rows * w.columns());
        if (rows > matvecLimit(w.type())) {
            gemm(y, gemmInput(w.type(), x, (long) rows * w.columns()), w, rows);
            return;
        }
        productOuts[0] = y;
        productWeights[0] = w;
        matvec(x, 1, rows);
    }

    /**
     * Products of one input with up to three matrices of the same type and width (a layer's q/k/v,
     * or gate/up) take one matrix-vector launch between them: alone, the small ones leave the GPU
     * half idle for a launch each. Larger batches go to cuBLAS one by one, the input converted once.
     */
    @Override
    public void matmuls(Buffer[] outs, Buffer in, Weight[] weights, int rows) {
        CudaWeight first = (CudaWeight) weights[0];
        boolean sameKind = true;
        for (int i = 0; sameKind && i < weights.length; i++) {
            CudaWeight w = (CudaWeight) weights[i];
            sameKind = w.type() == first.type() && w.columns() == first.columns() && w.rowStride() == first.rowStride();
        }
        int matvecLimit = matvecLimit(first.type());
        if (!sameKind || (rows <= matvecLimit && weights.length > MATVEC_MAX_PRODUCTS)) {
            for (int i = 0; i < weights.length; i++) {
                matmul(outs[i], in, weights[i], rows);
            }
            return;
        }
        if (rows > matvecLimit) {
            long input = gemmInput(first.type(), address(in, 0, (long) rows * first.columns()), (long) rows * first.columns());
            for (int i = 0; i < weights.length; i++) {
                CudaWeight w = (CudaWeight) weights[i];
                gemm(address(outs[i], 0, (long) rows * w.rows()), input, w, rows);
            }
            return;
        }
        long x = address(in, 0, (long) rows * first.columns());
        for (int i = 0; i < weights.length; i++) {
            productWeights[i] = (CudaWeight) weights[i];
            productOuts[i] = address(outs[i], 0, (long) rows * productWeights[i].rows());
        }
        matvec(x, weights.length, rows);
    }

    /** The products in productWeights/productOuts[0 .. count) of {@code rows} token rows of x, 8 token rows per launch. */
    private void matvec(long x, int count, int rows) {
        CudaWeight w = productWeights[0];
        for (int first = 0; first < rows; first += MATVEC_MAX_TOKENS) {
            int tokens = Math.min(MATVEC_MAX_TOKENS, rows - first);
            int rowsPerWarp = matvecRowsPerWarp(tokens);
            int groups = 0;
            for (int i = 0; i < count; i++) {
                groups += ceilDiv(productWeights[i].rows(), rowsPerWarp);
            }
            int warpsPerRow = warpsPerRow(w.type(), w.columns(), groups);
            int groupsPerBlock = MATVEC_MAX_WARPS_PER_ROW / warpsPerRow;
            args.reset();
            for (int i = 0; i < MATVEC_MAX_PRODUCTS; i++) {
                args.ptr(i < count ? productOuts[i] + (long) first * productWeights[i].rows() * Float.BYTES : 0);
            }
            args.ptr(x + (long) first * w.columns() * Float.BYTES);
            for (int i = 0; i < MATVEC_MAX_PRODUCTS; i++) {
                args.ptr(i < count ? productWeights[i].data() : 0);
            }
            for (int i = 0; i < MATVEC_MAX_PRODUCTS; i++) {
                args.ptr(i < count ? productWeights[i].scales() : 0);
            }
            args.i32(w.rowStride()).i32(w.columns());
            for (int i = 0; i < MATVEC_MAX_PRODUCTS; i++) {
                args.i32(i < count ? productWeights[i].rows() : 0);
            }
            args.i32(tokens).i32(warpsPerRow);
            launch(Kernel.matvec(w.type(), tokens), ceilDiv(groups, groupsPerBlock), MATVEC_BLOCK);
        }
    }

    /** The most token rows a product of {@code type} weights takes through the matrix-vector kernels before cuBLAS. */
    private static int matvecLimit(DType type) {
        return type.isQuantized() ? QUANTISED_MATVEC_MAX_TOKENS : MATVEC_MAX_TOKENS;
    }

    /** Weight rows one warp of the matrix-vector kernels takes for {@code tokens} token rows (matvec_rows_per_warp in native/matvec.cu). */
    private static int matvecRowsPerWarp(int tokens) {
        return tokens <= 1 ? 1 : tokens <= 2 ? 2 : 4;
    }

    /**
     * Warps sharing one group of weight rows: more while the grid would leave SMs idle (short
     * matrices such as the K and V projections) and every lane still gets a whole chunk of the row.
     */
    private int warpsPerRow(DType type, int columns, int groups) {
        int chunks = ceilDiv(columns, valuesPerChunk(type));
        int warps = 1;
        while (warps < MATVEC_MAX_WARPS_PER_ROW
                && ceilDiv(groups, MATVEC_MAX_WARPS_PER_ROW / warps) < 2 * device.multiprocessors()
                && chunks >= 64 * warps) {
            warps *= 2;
        }
        return warps;
    }

    /** Values in one 16-byte chunk of a weight row (the VALUES of each type in native/weights.cuh). */
    private static int valuesPerChunk(DType type) {
        return switch (type) {
            case F32 -> 4;
            case F16, BF16 -> 8;
            case Q8_0 -> 16;
            case Q4_0 -> 32;
            default -> throw heldAsF16(type);
        };
    }

    /**
     * The activations as a GEMM with {@code type} weights reads them: F32 as they are, f16 for F16
     * and the dequantised Q8_0/Q4_0, two bf16 halves for BF16 (pg_to_bf16_split: x = hi + lo keeps
     * ~16 mantissa bits where one bf16 keeps 8). Converted once for all the products of one input.
     */
    private long gemmInput(DType type, long x, long count) {
        Kernel conversion = switch (type) {
            case F32 -> null;
            case F16, Q8_0, Q4_0 -> Kernel.TO_F16;
            case BF16 -> Kernel.TO_BF16_SPLIT;
            default -> throw heldAsF16(type);
        };
        if (conversion == null) {
            return x;
        }
        long converted = gemmInput.at((conversion == Kernel.TO_BF16_SPLIT ? 2 : 1) * count * 2);
        args.reset().ptr(converted).ptr(x).i64(count);
        launch(conversion, gridStride(count), BLOCK);
        return converted;
    }

    /** {@code rows} token rows through cuBLAS, from {@code input} prepared by {@link #gemmInput}. */
    private void gemm(long y, long input, CudaWeight w, int rows) {
        int m = w.rows();
        int k = w.columns();
        switch (w.type()) {
            case F32 -> blas.gemm(Blas.Type.F32, m, rows, k, w.data(), w.rowStride() / 4, input, k, y, m);
            case F16 -> blas.gemm(Blas.Type.F16, m, rows, k, w.data(), w.rowStride() / 2, input, k, y, m);
            case BF16 -> {
                // One GEMM over both halves (twice the columns), then the halves of the result added.
                long outputs = (long) rows * m;
                long products = gemmOutput.at(2 * outputs * Float.BYTES);
                blas.gemm(Blas.Type.BF16, m, 2 * rows, k, w.data(), w.rowStride() / 2, input, k, products, m);
                add(y, products, products + outputs * Float.BYTES, outputs);
            }
            case Q8_0, Q4_0 -> {
                long a = gemmWeight.at((long) m * k * 2);
                args.reset().ptr(a).ptr(w.data()).ptr(w.scales()).i32(w.rowStride()).i32(k);
                launch(w.type() == DType.Q8_0 ? Kernel.DEQUANT_F16_Q8_0 : Kernel.DEQUANT_F16_Q4_0, m, BLOCK);
                blas.gemm(Blas.Type.F16, m, rows, k, a, k, input, k, y, m);
            }
            default -> throw heldAsF16(w.type());
        }
    }

    @Override
    public void ropeAngles(Buffer cosSin, float[] frequencies, BatchLayout layout) {
        int pairs = frequencies.length;
        if (!Arrays.equals(frequencies, ropeFrequencies)) {
            // The graph passes the same frequencies every step: uploaded once per model.
            if (frequencies.length > ropeFrequencies.length) {
                ropeFrequencyBuffer = memory.allocate((long) pairs * Float.BYTES);
            }
            toDevice(frequencies, 0, ropeFrequencyBuffer, pairs);
            ropeFrequencies = frequencies.clone();
        }
        int n = layout.tokenCount;
        args.reset().ptr(address(cosSin, 0, 2L * n * pairs)).ptr(step.positions()).ptr(ropeFrequencyBuffer).i32(pairs);
        launch(Kernel.ROPE_ANGLES, ceilDiv(pairs, 64), n, 1, 64, 0);
    }

    @Override
    public void rope(Buffer x, Buffer cosSin, int rows, int heads, int headDim, int ropeDimensions) {
        int pairs = ropeDimensions / 2;
        ropeAndStore(address(x, 0, (long) rows * heads * headDim), 0, 0, address(cosSin, 0, 2L * rows * pairs), null, null,
                rows, heads, 0, headDim, pairs);
    }

    @Override
    public void storeKv(Buffer keyCache, Buffer valueCache, Buffer k, Buffer v, int kvHeads, int headDim,
                        BatchLayout layout) {
        int width = kvHeads * headDim;
        long count = (long) layout.tokenCount * width;
        checkSlots(keyCache, valueCache, width, layout);
        ropeAndStore(0, address(k, 0, count), address(v, 0, count), 0, keyCache, valueCache, layout.tokenCount, 0, 1, width, 0);
    }

    @Override
    public void ropeAndStoreKv(Buffer q, Buffer k, Buffer v, Buffer cosSin, int rows, int heads, int kvHeads, int headDim,
                               int ropeDimensions, Buffer keyCache, Buffer valueCache, BatchLayout layout) {
        int pairs = ropeDimensions / 2;
        long kvCount = (long) rows * kvHeads * headDim;
        checkSlots(keyCache, valueCache, kvHeads * headDim, layout);
        ropeAndStore(address(q, 0, (long) rows * heads * headDim), address(k, 0, kvCount), address(v, 0, kvCount),
                address(cosSin, 0, 2L * rows * pairs), keyCache, valueCache, rows, heads, kvHeads, headDim, pairs);
    }

    /** Every row's KV slot must lie in both caches (a wrong slot would write outside them). */
    private static void checkSlots(Buffer keyCache, Buffer valueCache, int width, BatchLayout layout) {
        halfCache(keyCache, valueCache);
        long slots = Math.min(keyCache.size(), valueCache.size()) / width;
        for (int r = 0; r < layout.tokenCount; r++) {
            if (layout.slots[r] < 0 || layout.slots[r] >= slots) {
                throw new IllegalArgumentException("KV slot " + layout.slots[r] + " outside the cache of " + slots + " slots");
            }
        }
    }

    /** Whether a key and value cache hold halves (else both floats); they must agree. */
    private static boolean halfCache(Buffer keyCache, Buffer valueCache) {
        if (keyCache.type() != valueCache.type()) {
            throw new IllegalArgumentException("a key cache of " + keyCache.type() + " with a value cache of "
                    + valueCache.type() + "; both must be F32 or both F16");
        }
        return keyCache.type() == DType.F16;
    }

    /**
     * pg_rope_store_kv over {@code rows} token rows: rope of q's and k's heads (pairs 0: none), then,
     * with caches (not null), k and v stored in the rows' slots of this step's layout.
     */
    private void ropeAndStore(long q, long k, long v, long cosSin, Buffer keyCache, Buffer valueCache, int rows, int qHeads,
                              int kHeads, int headDim, int pairs) {
        boolean store = keyCache != null;
        args.reset().ptr(q).ptr(k).ptr(v).ptr(cosSin).ptr(store ? cacheAddress(keyCache) : 0)
                .ptr(store ? cacheAddress(valueCache) : 0).ptr(store ? step.slots() : 0)
                .i32(qHeads).i32(kHeads).i32(headDim).i32(pairs).i32(store && halfCache(keyCache, valueCache) ? 1 : 0);
        launch(Kernel.ROPE_STORE_KV, rows, threadsFor(Math.max((qHeads + kHeads) * pairs, store ? kHeads * headDim : 1)));
    }

    @Override
    public void attention(Buffer out, Buffer q, Buffer keyCache, Buffer valueCache, BatchLayout layout,
                          int heads, int kvHeads, int headDim, float scale, int window, float softcap) {
        if (window < 0 || !(softcap >= 0 && softcap < Float.POSITIVE_INFINITY)) {
            throw new IllegalArgumentException("attention needs a window >= 0 and a finite softcap >= 0 (0: none); got window "
                    + window + ", softcap " + softcap);
        }
        // An even head size lets the kernel read keys and values two at a time (every real model's is).
        if (kvHeads <= 0 || heads % kvHeads != 0 || headDim <= 0 || headDim > MAX_HEAD_DIM || headDim % 2 != 0) {
            throw new IllegalArgumentException("attention needs heads a multiple of kvHeads and an even headDim in 2.." + MAX_HEAD_DIM
                    + "; got " + heads + " heads, " + kvHeads + " KV heads, headDim " + headDim);
        }
        int n = layout.tokenCount;
        long count = (long) n * heads * headDim;
        // A tile holds up to ATTENTION_VECTORS queries: all heads of a group (or a share of a big
        // group) times as many consecutive rows of one sequence as fit.
        int group = heads / kvHeads;
        int headsPerTile = Math.min(group, ATTENTION_VECTORS);
        int headChunks = ceilDiv(group, headsPerTile);
        int rowsPerTile = ATTENTION_VECTORS / headsPerTile;
        int tiles = step.tiles(rowsPerTile);
        int blocks = tiles * kvHeads * headChunks;
        // Splits of the positions until there are about ATTENTION_BLOCKS_PER_SM blocks per SM: one
        // block streams its positions one shared tile after another, so a few long blocks per SM
        // leave memory idle (measured on an H100: 32 sequences of 1024 positions took 390 µs a
        // layer with one block per tile and KV head, ~9x the bandwidth time). About one tile of
        // positions per split, rounded up to a power of two. The partials area is sized for the
        // most splits this batch shape can take, so it does not grow with the context. A tile
        // reads only its rows' windows (the kernel divides that range): at most window + the
        // spread of its rows' positions, so a window caps the splits.
        int maxSplits = Math.max(1, Math.min(ceilDiv(ATTENTION_BLOCKS_PER_SM * device.multiprocessors(), blocks), MAX_SPLITS));
        int attended = step.maxPosition() + 1;
        if (window > 0) {
            attended = (int) Math.min(attended, (long) window + step.tileSpread());
        }
        // A power of two (later splits may be empty: the kernel handles that), so that the launch
        // changes, and a decode graph is captured again, only when the positions double.
        int wanted = ceilDiv(attended, ATTENTION_KV);
        int splits = Math.min(maxSplits, wanted <= 1 ? 1 : Integer.highestOneBit(wanted - 1) << 1);
        int shared = ((ATTENTION_VECTORS + 2 * ATTENTION_KV) * headDim + ATTENTION_KV) * Float.BYTES + ATTENTION_KV * Integer.BYTES;
        if (shared > attentionSharedLimit) {
            if (shared > device.maxSharedMemoryPerBlock()) {
                throw new IllegalArgumentException("headDim " + headDim + " needs " + shared + " bytes of shared memory; "
                        + device.name() + " allows " + device.maxSharedMemoryPerBlock());
            }
            device.setMaxDynamicSharedMemory(functions[Kernel.ATTENTION.ordinal()], shared);
            attentionSharedLimit = shared;
        }
        long partials = splits == 1 ? 0 : attentionPartials.at((long) n * heads * maxSplits * (headDim + 2) * Float.BYTES);
        long o = address(out, 0, count);
        args.reset().ptr(o).ptr(partials).ptr(address(q, 0, count)).ptr(cacheAddress(keyCache))
                .ptr(cacheAddress(valueCache)).ptr(step.positions()).ptr(step.blockTables()).ptr(step.blockTableStart())
                .ptr(step.tiles()).i32(layout.blockSize).i32(heads).i32(kvHeads).i32(headDim).f32(scale)
                .i32(window).f32(softcap).i32(headsPerTile).i32(splits).i32(halfCache(keyCache, valueCache) ? 1 : 0);
        launch(Kernel.ATTENTION, tiles, kvHeads * headChunks, splits, ATTENTION_BLOCK, shared);
        if (splits > 1) {
            args.reset().ptr(o).ptr(partials).i32(headDim).i32(splits);
            launch(Kernel.ATTENTION_COMBINE, n * heads, ATTENTION_COMBINE_BLOCK);
        }
    }

    @Override
    public void gatedActivation(Buffer gate, Buffer up, long count, Activation activation) {
        int code = switch (activation) { // ACT_* in native/elementwise.cu
            case SILU -> 0;
            case GELU_TANH -> 1;
        };
        args.reset().ptr(address(gate, 0, count)).ptr(address(up, 0, count)).i64(count).i32(code);
        launch(Kernel.GATED_ACTIVATION, gridStride(count), BLOCK);
    }

    @Override
    public void addBias(Buffer x, Weight bias, int rows) {
        CudaWeight b = vector(bias, 1);
        int width = b.columns();
        args.reset().ptr(address(x, 0, (long) rows * width)).ptr(b.data()).i32(width);
        launch(Kernel.ADD_BIAS, rows, threadsFor(width));
    }

    @Override
    public void scale(Buffer x, long count, float factor) {
        args.reset().ptr(address(x, 0, count)).i64(count).f32(factor);
        launch(Kernel.SCALE, gridStride(count), BLOCK);
    }

    @Override
    public void add(Buffer acc, Buffer x, long count) {
        long a = address(acc, 0, count);
        add(a, a, address(x, 0, count), count);
    }

    /** {@code out = a + b}, {@code count} floats at device addresses (out may be a). */
    private void add(long out, long a, long b, long count) {
        args.reset().ptr(out).ptr(a).ptr(b).i64(count);
        launch(Kernel.ADD, gridStride(count), BLOCK);
    }

    @Override
    public void copy(Buffer dst, long dstOffset, Buffer src, long srcOffset, long count) {
        if (dst.type() != src.type()) {
            throw new IllegalArgumentException("copy from a buffer of " + src.type() + " into one of " + dst.type());
        }
        device.makeCurrent();
        device.copy(address(dst, dstOffset, count, dst.type()), address(src, srcOffset, count, src.type()),
                count * ((CudaBuffer) dst).valueBytes());
    }

    @Override
    public void write(float[] src, int srcOffset, Buffer dst, long dstOffset, int count) {
        device.makeCurrent();
        toDevice(src, srcOffset, address(dst, dstOffset, count), count);
    }

    @Override
    public void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int count) {
        device.makeCurrent();
        MemorySegment staging = transfer((long) count * Float.BYTES);
        device.copyToHost(staging, address(src, srcOffset, count), (long) count * Float.BYTES);
        device.synchronize();
        MemorySegment.copy(staging, JAVA_FLOAT, 0, dst, dstOffset, count);
    }

    // ---- sampling on the device ----

    /**
     * Selects each row's best {@code out.k()} tokens on the GPU, {@code pg_argmax} for k = 1 (one
     * pass over the row) and {@code pg_top_k} otherwise, and copies back only the {@code rows x k}
     * values and ids (instead of {@code rows x vocab} logits), with one wait.
     */
    @Override
    public void selectCandidates(Buffer logits, int rows, int rowLength, int vocab, Candidates out, int firstRow) {
        Backend.checkCandidateSelection(rows, rowLength, vocab, out, firstRow);
        int k = out.k();
        if (k > MAX_TOP_K) {
            throw new IllegalArgumentException("top-k needs k <= " + MAX_TOP_K + ", got " + k);
        }
        if (rows == 0) {
            return;
        }
        device.makeCurrent();
        long source = address(logits, 0, (long) (rows - 1) * rowLength + vocab);
        long bytes = (long) rows * k * 4;
        long values = samples.at(2 * bytes);
        long ids = values + bytes;
        if (k == 1) {
            args.reset().ptr(values).ptr(ids).ptr(source).i32(rowLength).i32(vocab);
            launch(Kernel.ARGMAX, rows, SAMPLE_BLOCK);
        } else {
            args.reset().ptr(values).ptr(ids).ptr(source).i32(rowLength).i32(vocab).i32(k);
            launch(Kernel.TOP_K, rows, SAMPLE_BLOCK);
        }
        MemorySegment staging = transfer(2 * bytes);
        device.copyToHost(staging, values, 2 * bytes);
        device.synchronize();
        MemorySegment.copy(staging, JAVA_FLOAT, 0, out.values(), out.offset(firstRow), rows * k);
        MemorySegment.copy(staging, JAVA_INT, bytes, out.ids(), out.offset(firstRow), rows * k);
    }

    // ---- helpers ----

    private void launch(Kernel kernel, int grid, int block) {
        launch(kernel, grid, 1, 1, block, 0);
    }

    private void launch(Kernel kernel, int gridX, int gridY, int gridZ, int block, int sharedBytes) {
        args.check(kernel);
        device.launch(functions[kernel.ordinal()], gridX, gridY, gridZ, block, sharedBytes, args.pointers());
    }

    /** Copies host floats to the device through the page-locked staging buffer, and waits. */
    private void toDevice(float[] src, int srcOffset, long dst, int count) {
        MemorySegment staging = transfer((long) count * Float.BYTES);
        MemorySegment.copy(src, srcOffset, staging, JAVA_FLOAT, 0, count);
        device.copyToDevice(dst, staging, 0, (long) count * Float.BYTES);
        device.synchronize();
    }

    /** The page-locked staging buffer for reads and writes, grown to at least {@code bytes}. */
    private MemorySegment transfer(long bytes) {
        if (transfer.byteSize() < bytes) {
            long size = Math.max(bytes, 2 * transfer.byteSize());
            if (transfer.address() != 0) {
                device.synchronize();
                device.freeHost(transfer);
            }
            transfer = MemorySegment.NULL;
            transfer = device.allocateHost(size);
        }
        return transfer;
    }

    /** The device address of floats {@code [offset, offset + count)} of an F32 buffer, after checking that they fit. */
    private static long address(Buffer buffer, long offset, long count) {
        return address(buffer, offset, count, DType.F32);
    }

    /** The device address of values {@code [offset, offset + count)} of a buffer, which must hold {@code type}. */
    private static long address(Buffer buffer, long offset, long count, DType type) {
        CudaBuffer b = (CudaBuffer) buffer;
        if (b.type() != type) {
            throw new IllegalArgumentException("a buffer of " + b.type() + " where " + type + " values are needed");
        }
        if (offset < 0 || count < 0 || offset + count > b.size()) {
            throw new IllegalArgumentException("values [" + offset + ", " + (offset + count) + ") outside a buffer of " + b.size());
        }
        return b.address() + offset * b.valueBytes();
    }

    /** A KV cache's device address: F32 or F16 (the kernels take a flag for which). */
    private static long cacheAddress(Buffer cache) {
        return address(cache, 0, 0, cache.type());
    }

    /** A norm weight or bias: uploaded as one F32 row (of at least {@code width} values). */
    private static CudaWeight vector(Weight weight, int width) {
        CudaWeight w = (CudaWeight) weight;
        if (w.type() != DType.F32 || w.rows() != 1 || w.columns() < width) {
            throw new IllegalArgumentException(w.name() + " is not a vector of " + width + " values");
        }
        return w;
    }

    private int gridStride(long count) {
        return (int) Math.max(1, Math.min((count + BLOCK - 1) / BLOCK, 16L * device.multiprocessors()));
    }

    /** Threads for a block looping over {@code work} items: a whole number of warps, at most {@value #BLOCK}. */
    private static int threadsFor(int work) {
        return Math.min(BLOCK, Math.max(32, (work + 31) / 32 * 32));
    }

    private static int ceilDiv(int a, int b) {
        return (a + b - 1) / b;
    }

    @Override
    public void close() {
        if (closed) {
            return;
        }
        closed = true;
        device.makeCurrent();
        RuntimeException first = CudaDevice.attempt(null, device::synchronize);
        first = CudaDevice.attempt(first, blas::close);
        for (Runnable c : new Runnable[] {step::close, uploadStaging::close, gemmInput::close, gemmWeight::close, gemmOutput::close,
                attentionPartials::close, samples::close, memory::close}) {
            first = CudaDevice.attempt(first, c);
        }
        if (transfer.address() != 0) {
            MemorySegment t = transfer;
            transfer = MemorySegment.NULL;
            first = CudaDevice.attempt(first, () -> device.freeHost(t));
        }
        first = CudaDevice.attempt(first, device::close);
        arena.close();
        if (first != null) {
            throw first;
        }
    }
}
