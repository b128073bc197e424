package dev.peregrine.cpu;

import dev.peregrine.spi.Activation;
import dev.peregrine.spi.Backend;
import dev.peregrine.spi.BatchLayout;
import dev.peregrine.spi.Buffer;
import dev.peregrine.spi.Weight;
import dev.peregrine.tensor.DType;
import dev.peregrine.tensor.Dequant;
import dev.peregrine.tensor.Tensor;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The CPU backend: a {@link Kernels} set (Vector API, or plain loops when the JVM runs without
 * {@code jdk.incubator.vector}) whose work is split across a fixed {@link WorkerPool}. Weights are
 * read in place from the memory-mapped model file.
 *
 * <p>Each operation that is split across threads has one reusable task object whose fields are set
 * before dispatch, so a forward step allocates nothing once scratch arrays have grown.
 */
final class CpuBackend implements Backend {
    private static final Logger LOG = LoggerFactory.getLogger(CpuBackend.class);
    private static final ValueLayout.OfFloat F = ValueLayout.JAVA_FLOAT;
    private static final ValueLayout.OfShort HALF = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(java.nio.ByteOrder.LITTLE_ENDIAN);
    private static final String VECTOR_MODULE = "jdk.incubator.vector";
    private static final AtomicBoolean FALLBACK_LOGGED = new AtomicBoolean();
    /**
     * Whether weight matrices are copied out of the memory-mapped file at load: into the kernels'
     * row-group layout, or as they are into huge-page memory (when {@link HostMemory#hugePages()}).
     * {@code -Dperegrine.cpu.copyWeights=false} reads the file in place, slower but without a
     * second copy next to the file's page cache.
     */
    private static final boolean COPY_WEIGHTS =
            Boolean.parseBoolean(System.getProperty("peregrine.cpu.copyWeights", "true"));

    private final Arena arena = Arena.ofShared();
    private final WorkerPool pool;
    private final Kernels kernels;
    private final ThreadScratch[] scratch;

    /** Most slices of its tokens a product is split into (see {@link #tokenSlices}). */
    private static final int MAX_TOKEN_SLICES = 4;
    /** Fewest tokens of a slice: several of every kernel's passes of tokens (4, 6, 8). */
    private static final int SLICE_TOKENS = 24;

    /** The activations of a product, one input per slice of its tokens (see {@link #tokenSlices}). */
    private final MatmulInput[] matmulInputs = new MatmulInput[MAX_TOKEN_SLICES];
    /** Where each slice of the current product's tokens starts; {@code sliceStarts[slices]} is its token count. */
    private final int[] sliceStarts = new int[MAX_TOKEN_SLICES + 1];
    private final MatmulTask matmulTask = new MatmulTask();
    /** {@link #matmul}'s one product as a group of one. */
    private final Buffer[] matmulBuffers = new Buffer[1];
    private final Weight[] matmulWeights = new Weight[1];
    private final CpuWeight[] groupWeights = new CpuWeight[4];
    private final MemorySegment[] groupOuts = new MemorySegment[4];
    /**
     * Where each grouped weight's rows start and end in the combined numbering: each starts at a
     * whole unit of the split (a column-major copy's group of rows).
     */
    private final int[] groupStarts = new int[4];
    private final int[] groupEnds = new int[4];
    private final AttentionArgs attentionArgs = new AttentionArgs();
    private final AttentionTask attentionTask = new AttentionTask();
    private final RmsNormTask rmsNormTask = new RmsNormTask();
    private final RopeTask ropeTask = new RopeTask();
    private final ElementwiseTask gluTask = new ElementwiseTask(true);
    private final ElementwiseTask addTask = new ElementwiseTask(false);

    CpuBackend(int threads, Kernels kernels) {
        this.pool = new WorkerPool(threads);
        this.kernels = kernels;
        this.scratch = new ThreadScratch[threads];
        for (int i = 0; i < threads; i++) {
            scratch[i] = new ThreadScratch();
        }
        for (int s = 0; s < MAX_TOKEN_SLICES; s++) {
            matmulInputs[s] = new MatmulInput();
        }
    }

    /** The Vector API kernels when the module is present and suits this CPU, else the plain loops. */
    static Kernels chooseKernels() {
        return chooseKernels(vectorModule().isPresent());
    }

    /** As {@link #chooseKernels()}, with the module's presence given (tests use {@code false}). */
    static Kernels chooseKernels(boolean vectorModulePresent) {
        if (!vectorModulePresent) {
            if (FALLBACK_LOGGED.compareAndSet(false, true)) {
                LOG.warn("{} is not available, so the CPU backend runs plain Java loops (several times slower); "
                        + "start the JVM with --add-modules {} to use the vector kernels", VECTOR_MODULE, VECTOR_MODULE);
            }
            return new ScalarKernels();
        }
        try {
            // Our module reads the vector module only if it was resolved at startup ("requires static").
            vectorModule().ifPresent(m -> CpuBackend.class.getModule().addReads(m));
            Optional<Kernels> vector = VectorKernels.createIfSupported(); // loads the class only here
            if (vector.isPresent()) {
                return vector.get();
            }
            if (FALLBACK_LOGGED.compareAndSet(false, true)) {
                LOG.warn("this CPU's vector size does not suit the vector kernels; the CPU backend runs plain Java loops");
            }
        } catch (LinkageError | RuntimeException e) {
            if (FALLBACK_LOGGED.compareAndSet(false, true)) {
                LOG.warn("the vector kernels could not start ({}); the CPU backend runs plain Java loops", e.toString());
            }
        }
        return new ScalarKernels();
    }

    private static Optional<Module> vectorModule() {
        return ModuleLayer.boot().findModule(VECTOR_MODULE);
    }

    Kernels kernels() {
        return kernels;
    }

    @Override
    public String description() {
        return "CPU, " + pool.threads() + " thread" + (pool.threads() == 1 ? "" : "s") + ", " + kernels.description();
    }

    @Override
    public Weight upload(Tensor t) {
        long columns = t.rowLength();
        long rows = t.rows();
        if (columns > Integer.MAX_VALUE || rows > Integer.MAX_VALUE) {
            throw new IllegalArgumentException(t + " is too large for the CPU backend");
        }
        MemorySegment data = t.data();
        DType type = t.type();
        if (!t.rowsAreBlockAligned()) {
            // Some old files store quantised blocks that run across row boundaries (ggml cannot read
            // them). Read such a tensor as one flat run of values and keep it as F32 rows.
            LOG.info("{}: rows of {} values are not a whole number of {} blocks; dequantising it flat to F32",
                    t.name(), columns, type);
            float[] all = Dequant.toFloat(t);
            data = arena.allocate((long) all.length * Float.BYTES, 64);
            MemorySegment.copy(all, 0, data, F, 0, all.length);
            type = DType.F32;
        }
        long rowBytes = type.bytesFor(columns);
        float[] vector = null;
        if (rows == 1) {
            vector = new float[(int) columns];
            Dequant.toFloat(type, data, 0, vector, 0, (int) columns);
        }
        DType stored = COPY_WEIGHTS && rows > 1 ? kernels.storedType(type) : type;
        if (stored != type) {
            LOG.debug("{}: {} kept as {}", t.name(), type, stored);
        }
        int group = COPY_WEIGHTS ? kernels.rowGroup(stored, rows, columns) : 1;
        boolean columnMajor = COPY_WEIGHTS && kernels.columnMajor(stored, rows, columns);
        long unitBytes = stored.bytesFor(kernels.groupUnit(stored));
        if (group > 1 && !columnMajor) {
            throw new IllegalStateException(kernels.description() + " groups " + type + " rows by " + group
                    + " without a column-major copy: no kernel reads such a layout");
        }
        if (columnMajor) {
            data = columnMajor(type, stored, t.name(), data, (int) rows, (int) columns, rowBytes);
            type = stored;
            rowBytes = stored.bytesFor(columns);
        } else if (rows > 1 && COPY_WEIGHTS && HostMemory.hugePages() && t.rowsAreBlockAligned()) {
            // The file's mapping has 4 KB pages; streaming the weights from a huge-page copy
            // instead made llama3.2-1b F16 decode 1.7x faster here (6.4 -> 10.8 tok/s). (A
            // tensor converted to F32 above is already a copy.)
            data = copyInParallel(data);
        }
        return new CpuWeight(t.name(), type, (int) rows, (int) columns, data, rowBytes, group, unitBytes, columnMajor,
                vector);
    }

    /**
     * The column-major copy {@link Q8Products}, {@link FloatProducts}, {@link HalfProducts}, {@link Iq4Products} or
     * {@link IntegerProducts} reads of the {@code type}
     * rows {@code data}, kept as {@code stored}; a group of rows per task.
     */
    private MemorySegment columnMajor(DType type, DType stored, String name, MemorySegment data, int rows, int columns,
                                      long rowBytes) {
        boolean q8 = stored == DType.Q8_0;
        boolean floats = stored == DType.F32;
        boolean halves = stored == DType.F16 || stored == DType.BF16;
        boolean iq4 = Iq4Products.handles(stored);
        MemorySegment copy = HostMemory.allocate(arena, q8 ? Q8Products.bytes(rows, columns)
                : floats ? FloatProducts.bytes(rows, columns)
                : halves ? HalfProducts.bytes(rows, columns)
                : iq4 ? Iq4Products.bytes(rows, columns) : IntegerProducts.bytes(type, rows, columns));
        HostMemory.prefault(data);
        int groups = IntegerProducts.groups(rows);
        pool.parallelFor(groups, 1, (long) rows * rowBytes, (start, end, thread) -> {
            for (int g = start; g < end; g++) {
                if (q8) {
                    Q8Products.copyGroup(type, name, data, rowBytes, rows, columns, copy, g);
                } else if (floats) {
                    FloatProducts.copyGroup(data, rowBytes, rows, columns, copy, g);
                } else if (halves) {
                    HalfProducts.copyGroup(type, name, data, rowBytes, rows, columns, copy, g);
                } else if (iq4) {
                    Iq4Products.copyGroup(type, name, data, rowBytes, rows, columns, copy, g);
                } else {
                    IntegerProducts.copyGroup(type, name, data, rowBytes, rows, columns, copy, g);
                }
            }
        });
        HostMemory.release(data);
        return copy;
    }

    /** A copy of {@code data} in {@link HostMemory}, 2 MB pieces split across the pool's threads. */
    private MemorySegment copyInParallel(MemorySegment data) {
        MemorySegment copy = HostMemory.allocate(arena, data.byteSize());
        HostMemory.prefault(data);
        long piece = 2L << 20;
        int pieces = (int) ((data.byteSize() + piece - 1) / piece);
        pool.parallelFor(pieces, 1, data.byteSize(), (start, end, thread) -> {
            long from = start * piece;
            long to = Math.min(data.byteSize(), end * piece);
            MemorySegment.copy(data, from, copy, from, to - from);
        });
        HostMemory.release(data);
        return copy;
    }

    @Override
    public Buffer allocate(long floats) {
        return allocate(floats, DType.F32);
    }

    @Override
    public Buffer allocate(long count, DType type) {
        if (type != DType.F32 && type != DType.F16) {
            throw new IllegalArgumentException("the CPU backend keeps buffers of F32 or F16 values, not " + type);
        }
        return new CpuBuffer(HostMemory.allocate(arena, count * type.blockBytes()), type);
    }

    @Override
    public void beginStep(BatchLayout layout) {
        // Host memory: kernels read the layout directly.
    }

    @Override
    public void embed(Buffer out, Weight table, BatchLayout layout) {
        CpuWeight w = (CpuWeight) table;
        MemorySegment o = seg(out);
        for (int r = 0; r < layout.tokenCount; r++) {
            int token = layout.tokens[r];
            if (token < 0 || token >= w.rows()) {
                throw new IllegalArgumentException("token id " + token + " outside the vocabulary of " + w.rows());
            }
            kernels.embedRow(w, token, o, (long) r * w.columns(), scratch[0]);
        }
    }

    @Override
    public void rmsNorm(Buffer out, Buffer in, Weight weight, int rows, int width, float eps) {
        RmsNormTask t = rmsNormTask;
        t.out = seg(out);
        t.in = seg(in);
        t.weight = ((CpuWeight) weight).asVector();
        t.width = width;
        t.eps = eps;
        pool.parallelFor(rows, 1, (long) rows * width, t);
    }

    @Override
    public void matmul(Buffer out, Buffer in, Weight weight, int rows) {
        matmulBuffers[0] = out;
        matmulWeights[0] = weight;
        matmuls(matmulBuffers, in, matmulWeights, 1, rows);
    }

    /**
     * One dispatch for all the products: the weights' rows are numbered one after another and the
     * threads split that range, so a layer's small q/k/v (or gate/up) projections cost one
     * hand-off to the workers instead of three.
     */
    @Override
    public void matmuls(Buffer[] outs, Buffer in, Weight[] weights, int rows) {
        matmuls(outs, in, weights, weights.length, rows);
    }

    private void matmuls(Buffer[] outs, Buffer in, Weight[] weights, int count, int rows) {
        if (count > groupEnds.length) {
            throw new IllegalArgumentException("at most " + groupEnds.length + " products per call");
        }
        long work = 0;
        int grain = 16;
        for (int i = 0; i < count; i++) {
            CpuWeight w = (CpuWeight) weights[i];
            if (w.columns() != ((CpuWeight) weights[0]).columns()) {
                throw new IllegalArgumentException("grouped products must share their input width");
            }
            groupWeights[i] = w;
            groupOuts[i] = seg(outs[i]);
            work += (long) w.rows() * w.columns() * rows;
            grain = Math.max(grain, grain(w));
        }
        int total = 0;
        for (int i = 0; i < count; i++) {
            groupStarts[i] = total;
            groupEnds[i] = total + groupWeights[i].rows();
            total = (groupEnds[i] + grain - 1) / grain * grain;
        }
        MatmulTask t = matmulTask;
        t.count = count;
        t.span = total;
        t.slices = tokenSlices(total / grain, rows);
        for (int s = 0; s <= t.slices; s++) {
            // Equal slices (within a token): the threads take equal shares of units only if the units are equal.
            sliceStarts[s] = (int) ((long) rows * s / t.slices);
        }
        for (int s = 0; s < t.slices; s++) {
            kernels.prepareMatmul(matmulInputs[s], groupWeights, count, seg(in), sliceStarts[s],
                    sliceStarts[s + 1] - sliceStarts[s]);
        }
        pool.parallelFor(t.span * t.slices, grain, work, t);
    }

    /**
     * Slices of its tokens a product of {@code tokens} tokens whose rows make {@code units} units
     * (whole groups) is split into as well: 1 when the units keep every thread equally busy (a
     * multiple of the thread count, or many of them), else enough that they do, of at least
     * SLICE_TOKENS tokens each. Row groups alone left threads idle on narrow models: smollm2's
     * 576-wide O and FFN-down products are 9 groups, which two threads split 5:4 (sixteen threads:
     * 9 busy); a prompt's tokens split in two make 18. Each token's products are the same
     * arithmetic in any slice.
     */
    private int tokenSlices(int units, int tokens) {
        int threads = pool.threads();
        if (units % threads == 0 || units >= 8 * threads) {
            return 1;
        }
        int balanced = threads / gcd(units, threads);
        return Math.max(1, Math.min(Math.min(balanced, MAX_TOKEN_SLICES), tokens / SLICE_TOKENS));
    }

    private static int gcd(int a, int b) {
        return b == 0 ? a : gcd(b, a % b);
    }

    /**
     * Rows per unit of a product's split across threads: whole column-major groups (a thread given
     * part of one would compute all of it), else 16.
     */
    private static int grain(CpuWeight w) {
        return w.columnMajor() ? w.rowGroup() : 16;
    }

    @Override
    public void ropeAngles(Buffer cosSin, float[] frequencies, BatchLayout layout) {
        MemorySegment cs = seg(cosSin);
        int pairs = frequencies.length;
        for (int r = 0; r < layout.tokenCount; r++) {
            long base = (long) r * 2 * pairs * Float.BYTES;
            int pos = layout.positions[r];
            for (int i = 0; i < pairs; i++) {
                double angle = (double) pos * frequencies[i];
                cs.set(F, base + i * 4L, (float) Math.cos(angle));
                cs.set(F, base + (pairs + i) * 4L, (float) Math.sin(angle));
            }
        }
    }

    @Override
    public void rope(Buffer x, Buffer cosSin, int rows, int heads, int headDim, int ropeDimensions) {
        RopeTask t = ropeTask;
        t.x = seg(x);
        t.cosSin = seg(cosSin);
        t.heads = heads;
        t.headDim = headDim;
        t.ropeDimensions = ropeDimensions;
        pool.parallelFor(rows, 1, (long) rows * heads * ropeDimensions, t);
    }

    /**
     * A plane per KV head ({@link AttentionArgs#planeValues}); in it values as a row per slot and
     * keys block-transposed ({@link AttentionArgs#keyIndex}): element i of the slots of a KV block
     * side by side, which attention's score kernel reads a vector of positions at a time.
     */
    @Override
    public void storeKv(Buffer keyCache, Buffer valueCache, Buffer k, Buffer v, int kvHeads, int headDim,
                        BatchLayout layout) {
        boolean half = halfCache(keyCache, valueCache);
        long plane = kvPlane(keyCache, valueCache, kvHeads, headDim);
        long rowBytes = (long) kvHeads * headDim * Float.BYTES;
        int blockSize = layout.blockSize;
        MemorySegment keys = seg(keyCache);
        MemorySegment values = seg(valueCache);
        MemorySegment keyRows = seg(k);
        MemorySegment valueRows = seg(v);
        for (int r = 0; r < layout.tokenCount; r++) {
            int slot = layout.slots[r];
            // The slot's whole block must lie in the plane (keys fill a block element by element),
            // or a write would land in the next head's plane.
            if (slot < 0 || (long) (slot / blockSize + 1) * blockSize * headDim > plane) {
                throw new IllegalArgumentException("KV slot " + slot + " of row " + r + " is outside a cache of "
                        + plane / headDim + " slots (whole blocks of " + blockSize + ")");
            }
            for (int h = 0; h < kvHeads; h++) {
                long headAt = r * rowBytes + 4L * h * headDim;
                long first = AttentionArgs.keyIndex(slot, h, 0, blockSize, headDim, plane);
                for (int i = 0; i < headDim; i++) {
                    float key = keyRows.get(F, headAt + 4L * i);
                    long at = first + (long) i * blockSize;
                    if (half) {
                        keys.set(HALF, 2 * at, Float.floatToFloat16(key));
                    } else {
                        keys.set(F, 4 * at, key);
                    }
                }
                long valueAt = AttentionArgs.valueIndex(slot, h, headDim, plane);
                if (half) {
                    storeHalves(valueRows, headAt, values, 2 * valueAt, headDim);
                } else {
                    MemorySegment.copy(valueRows, headAt, values, 4 * valueAt, 4L * headDim);
                }
            }
        }
    }

    /** Each KV head's values and keys of a block are a range of its plane: one copy per head. */
    @Override
    public void copyKvBlock(Buffer cache, int from, int to, int blockSize, int kvHeads, int headDim) {
        long plane = AttentionArgs.planeValues(cache.size(), kvHeads);
        long count = (long) blockSize * headDim;
        for (int h = 0; h < kvHeads; h++) {
            copy(cache, h * plane + to * count, cache, h * plane + from * count, count);
        }
    }

    /** Values in each KV head's plane of a key and value cache, which must be alike. */
    private static long kvPlane(Buffer keyCache, Buffer valueCache, int kvHeads, int headDim) {
        if (keyCache.size() != valueCache.size() || headDim <= 0) {
            throw new IllegalArgumentException("a key cache of " + keyCache.size() + " values with a value cache of "
                    + valueCache.size() + " and heads of " + headDim + "; the caches must be alike");
        }
        return AttentionArgs.planeValues(keyCache.size(), kvHeads);
    }

    /** Whether a key and value cache are F16 (else both F32). */
    private static boolean halfCache(Buffer keyCache, Buffer valueCache) {
        if (keyCache.type() != valueCache.type()) {
            throw new IllegalArgumentException("a key cache of " + keyCache.type() + " with a value cache of "
                    + valueCache.type() + "; both must be F32 or both F16");
        }
        return keyCache.type() == DType.F16;
    }

    /**
     * {@code count} floats rounded to the nearest half (ties to even; beyond 65504 in magnitude to
     * infinity). A few kilobytes per token and layer, next to the products that made them: a plain
     * loop, which C2 compiles to the hardware conversion.
     */
    private static void storeHalves(MemorySegment from, long fromOffset, MemorySegment to, long toOffset, int count) {
        for (int i = 0; i < count; i++) {
            to.set(HALF, toOffset + 2L * i, Float.floatToFloat16(from.get(F, fromOffset + 4L * i)));
        }
    }

    @Override
    public void attention(Buffer out, Buffer q, Buffer keyCache, Buffer valueCache, BatchLayout layout,
                          int heads, int kvHeads, int headDim, float scale, int window, float softcap) {
        if (window < 0 || !(softcap >= 0) || Float.isInfinite(softcap)) {
            throw new IllegalArgumentException("attention needs window >= 0 and a finite softcap >= 0; got window "
                    + window + ", softcap " + softcap);
        }
        AttentionArgs a = attentionArgs;
        a.out = seg(out);
        a.q = seg(q);
        a.keyCache = seg(keyCache);
        a.valueCache = seg(valueCache);
        a.halfCache = halfCache(keyCache, valueCache);
        a.planeValues = kvPlane(keyCache, valueCache, kvHeads, headDim);
        a.layout = layout;
        a.heads = heads;
        a.kvHeads = kvHeads;
        a.headDim = headDim;
        a.scale = scale;
        a.window = window;
        a.softcap = softcap;
        long work = 0;
        for (int r = 0; r < layout.tokenCount; r++) {
            int attended = layout.positions[r] + 1 - a.firstAttended(layout.positions[r]);
            work += (long) attended * heads * headDim * 2;
        }
        // Slices of whole query groups when there are enough of them to keep every thread busy,
        // so that a group's heads run together (VectorAttention.attention reads each chunk of keys
        // and values once for a group's heads, of several rows when the group is small); else one
        // contiguous range of heads per thread, which cuts fewest groups (smollm2 decoding one
        // sequence: 9 heads in 3 groups for 2 threads, 5 and 4 heads; as single heads, each thread
        // read the keys and values of 4 runs instead of 2).
        int group = heads / kvHeads;
        int items = layout.tokenCount * heads;
        int grain = layout.tokenCount * kvHeads >= 2 * pool.threads() ? group
                : (items + pool.threads() - 1) / pool.threads();
        pool.parallelFor(items, grain, work, attentionTask);
    }

    @Override
    public void gatedActivation(Buffer gate, Buffer up, long count, Activation activation) {
        gluTask.activation = activation;
        elementwise(gluTask, gate, up, count);
    }

    @Override
    public void addBias(Buffer x, Weight bias, int rows) {
        // Small (rows x q/k/v width) next to the products before it: on the calling thread.
        float[] b = ((CpuWeight) bias).asVector();
        MemorySegment s = seg(x);
        long at = 0;
        for (int r = 0; r < rows; r++) {
            for (float value : b) {
                s.set(F, at, s.get(F, at) + value);
                at += Float.BYTES;
            }
        }
    }

    @Override
    public void scale(Buffer x, long count, float factor) {
        MemorySegment s = seg(x);
        for (long i = 0; i < count; i++) {
            s.set(F, i * Float.BYTES, s.get(F, i * Float.BYTES) * factor);
        }
    }

    @Override
    public void add(Buffer acc, Buffer x, long count) {
        elementwise(addTask, acc, x, count);
    }

    private void elementwise(ElementwiseTask t, Buffer target, Buffer other, long count) {
        if (count > Integer.MAX_VALUE) {
            throw new IllegalArgumentException("too many values for one call: " + count);
        }
        t.target = seg(target);
        t.other = seg(other);
        // Slices of whole cache lines, and a cost estimate that keeps decode-sized calls on the caller.
        pool.parallelFor((int) count, 64, count * 4, t);
    }

    @Override
    public void copy(Buffer dst, long dstOffset, Buffer src, long srcOffset, long count) {
        if (dst.type() != src.type()) {
            throw new IllegalArgumentException("copy from a buffer of " + src.type() + " into one of " + dst.type());
        }
        long size = dst.type().blockBytes();
        MemorySegment.copy(seg(src), srcOffset * size, seg(dst), dstOffset * size, count * size);
    }

    @Override
    public void write(float[] src, int srcOffset, Buffer dst, long dstOffset, int count) {
        MemorySegment.copy(src, srcOffset, floats(dst), F, dstOffset * Float.BYTES, count);
    }

    @Override
    public void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int count) {
        MemorySegment.copy(floats(src), F, srcOffset * Float.BYTES, dst, dstOffset, count);
    }

    /** The memory of an F32 buffer (reads and writes of host floats take no other). */
    private static MemorySegment floats(Buffer b) {
        if (b.type() != DType.F32) {
            throw new IllegalArgumentException("host floats read from or written to a buffer of " + b.type());
        }
        return seg(b);
    }

    @Override
    public void close() {
        pool.close();
        for (ThreadScratch s : scratch) {
            s.close();
        }
        for (MatmulInput input : matmulInputs) {
            input.close();
        }
        arena.close();
    }

    private static MemorySegment seg(Buffer b) {
        return ((CpuBuffer) b).segment();
    }

    /**
     * Rows [start, end) of a product: slice s of the tokens takes [s * span, (s + 1) * span), in
     * which the weights' rows are numbered one after another (grouped products; see
     * {@link #groupStarts}); each range is cut at the slices' and the weights' boundaries.
     */
    private final class MatmulTask implements WorkerPool.RangeTask {
        int count;
        /** One slice's share of the numbering: the weights' rows, each padded to whole units. */
        int span;
        int slices;

        @Override
        public void run(int start, int end, int thread) {
            for (int s = start / span; s < slices && s * span < end; s++) {
                int from = Math.max(start, s * span) - s * span;
                int to = Math.min(end, (s + 1) * span) - s * span;
                int tokens = sliceStarts[s + 1] - sliceStarts[s];
                for (int i = 0; i < count; i++) {
                    int first = Math.max(from, groupStarts[i]);
                    int last = Math.min(to, groupEnds[i]);
                    if (first < last) {
                        kernels.matmul(matmulInputs[s], groupWeights[i], groupOuts[i], tokens, first - groupStarts[i],
                                last - groupStarts[i], scratch[thread]);
                    }
                }
            }
        }
    }

    private final class AttentionTask implements WorkerPool.RangeTask {
        @Override
        public void run(int start, int end, int thread) {
            kernels.attention(attentionArgs, start, end, scratch[thread]);
        }
    }

    private final class RmsNormTask implements WorkerPool.RangeTask {
        MemorySegment out;
        MemorySegment in;
        float[] weight;
        int width;
        float eps;

        @Override
        public void run(int start, int end, int thread) {
            kernels.rmsNorm(out, in, weight, width, eps, start, end, scratch[thread]);
        }
    }

    private final class RopeTask implements WorkerPool.RangeTask {
        MemorySegment x;
        MemorySegment cosSin;
        int heads;
        int headDim;
        int ropeDimensions;

        @Override
        public void run(int start, int end, int thread) {
            kernels.rope(x, cosSin, heads, headDim, ropeDimensions, start, end, scratch[thread]);
        }
    }

    /** A gated activation (gate, up) or add (acc, x) over a range of values. */
    private final class ElementwiseTask implements WorkerPool.RangeTask {
        private final boolean gated;
        Activation activation;
        MemorySegment target;
        MemorySegment other;

        ElementwiseTask(boolean gated) {
            this.gated = gated;
        }

        @Override
        public void run(int start, int end, int thread) {
            if (gated) {
                kernels.gatedActivation(target, other, start, end, activation);
            } else {
                kernels.add(target, other, start, end);
            }
        }
    }
}
