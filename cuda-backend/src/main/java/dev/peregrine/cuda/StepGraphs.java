package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * CUDA graphs for repeated steps. A decode step is hundreds of small launches, each costing ~3.5 µs
 * on the host through the driver, more than the GPU work of a small model; a captured graph is one
 * launch for the whole step.
 *
 * <p>This {@link Device} sits between {@link CudaBackend} and the real device, so every operation
 * of a step passes through it. Steps are grouped by a shape key (token, sequence and logit counts).
 * The first steps of a shape run as they are; the next one is captured into a graph (its operations
 * are recorded: kernel, grid, argument bytes, GEMM operands, copies), which runs when the step ends
 * (its first read back). Later steps of that shape issue nothing: each operation is only compared
 * with the recording, and the graph is launched at the end. Any difference (an argument, a grid, an
 * extra or a missing operation) issues the operations so far for real, runs the rest of the step
 * normally and drops the graph, so a replay can never do other than what the step asked for. A
 * shape whose graphs keep being dropped is not captured again. Freeing device or page-locked memory
 * drops every graph (graphs hold raw addresses); scratch areas settle after the first steps.
 */
final class StepGraphs implements Device {
    private static final Logger LOG = LoggerFactory.getLogger(StepGraphs.class);
    /** Eager steps of a shape before it is captured: they settle the scratch sizes and let cuBLAS load its kernels. */
    static final int STEPS_BEFORE_CAPTURE = 2;
    /** Graphs of a shape dropped in a row before the shape stops being captured. */
    static final int FAILURES_BEFORE_GIVING_UP = 3;
    /** Shapes remembered; steps of further shapes run without graphs. */
    static final int MAX_SHAPES = 64;

    private static final int SLOT_BYTES = 8 * LaunchArgs.MAX;
    private static final int PARAMS = 10;
    private static final int LAUNCH = 0, GEMM = 1, COPY = 2, UPLOAD = 3, ZERO = 4;
    @SuppressWarnings("restricted") // launch arguments and upload sources are read at raw addresses
    private static final MemorySegment ALL = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);

    private enum Mode { DIRECT, CAPTURE, REPLAY }

    private final Device device;
    private final Blas blas;
    private final boolean enabled;
    /** The shapes seen, by key (a list: looking a key up must not box it, and there are few). */
    private final long[] keys = new long[MAX_SHAPES];
    private final Shape[] shapes = new Shape[MAX_SHAPES];
    private int shapeCount;
    private final Arena arena = Arena.ofShared();
    /** Launch arguments of a recorded operation issued for real after a divergence. */
    private final MemorySegment reissueSlots = arena.allocate(SLOT_BYTES, 16);
    private final MemorySegment reissuePointers = arena.allocate(ADDRESS, LaunchArgs.MAX);
    private final long[] op = new long[PARAMS];

    private Mode mode = Mode.DIRECT;
    private Shape shape;
    private int cursor;

    /** Operations of one step shape, in order, and its graph once captured. */
    private static final class Shape {
        int steps;
        int failures;
        boolean givenUp;
        long graph;
        int count;
        int[] kinds = new int[256];
        long[] params = new long[256 * PARAMS];
        MemorySegment slots;
    }

    /** @param enabled false: every operation goes straight to the device (graphs off) */
    StepGraphs(Device device, Blas blas, boolean enabled) {
        this.device = device;
        this.blas = blas;
        this.enabled = enabled;
        for (int i = 0; i < LaunchArgs.MAX; i++) {
            reissuePointers.setAtIndex(JAVA_LONG, i, reissueSlots.address() + 8L * i);
        }
    }

    /** The GEMMs, through this object so that they are recorded and replayed with the kernels. */
    Blas blas() {
        return graphedBlas;
    }

    /** A step of shape {@code key} begins (its layout is already on the device); {@code capturable}: worth a graph. */
    void beginStep(long key, boolean capturable) {
        finish(false);
        if (!enabled || !capturable) {
            return;
        }
        shape = null;
        for (int i = 0; i < shapeCount && shape == null; i++) {
            if (keys[i] == key) {
                shape = shapes[i];
            }
        }
        if (shape == null) {
            if (shapeCount == MAX_SHAPES) {
                return;
            }
            shape = new Shape();
            keys[shapeCount] = key;
            shapes[shapeCount++] = shape;
        }
        shape.steps++;
        if (shape.givenUp) {
            shape = null;
        } else if (shape.graph != 0) {
            mode = Mode.REPLAY;
            cursor = 0;
        } else if (shape.steps > STEPS_BEFORE_CAPTURE) {
            shape.count = 0;
            try {
                device.beginCapture();
                mode = Mode.CAPTURE;
            } catch (RuntimeException e) {
                LOG.debug("CUDA graph capture is not available ({}); steps run without graphs", e.toString());
                shape.givenUp = true;
            }
        }
    }

    /**
     * Ends the graph part of the step: at its end (a read back) the captured or replayed graph is
     * launched; in the middle (a wait, an allocation) the operations so far are issued and the rest
     * of the step runs directly.
     */
    private void finish(boolean endOfStep) {
        Mode m = mode;
        mode = Mode.DIRECT;
        if (m == Mode.CAPTURE) {
            long graph;
            try {
                graph = device.endCapture();
            } catch (RuntimeException e) {
                LOG.debug("a step could not be captured as a CUDA graph ({}); it runs without one", e.toString());
                reissue(0, shape.count);
                shape.givenUp = true;
                return;
            }
            device.launchGraph(graph);
            if (endOfStep) {
                shape.graph = graph;
            } else {
                device.destroyGraph(graph); // freed once it has run
                fail();
            }
        } else if (m == Mode.REPLAY) {
            if (endOfStep && cursor == shape.count) {
                device.launchGraph(shape.graph);
                shape.failures = 0;
            } else {
                diverge();
            }
        }
    }

    /** A replayed step differs from its recording at operation {@code cursor}: issue what it skipped and drop the graph. */
    private void diverge() {
        mode = Mode.DIRECT;
        reissue(0, cursor);
        device.destroyGraph(shape.graph);
        shape.graph = 0;
        fail();
    }

    private void fail() {
        if (++shape.failures >= FAILURES_BEFORE_GIVING_UP) {
            shape.givenUp = true;
            LOG.debug("steps of one shape keep changing between replays: they run without CUDA graphs");
        }
    }

    /**
     * An operation failed while the step was being captured (the capture is then broken): ends
     * the capture, issues the operations recorded before this one for real and stops capturing
     * this shape. The caller then issues the failed operation directly. Outside a capture, rethrows.
     */
    private void captureFailed(RuntimeException e) {
        if (mode != Mode.CAPTURE) {
            throw e;
        }
        mode = Mode.DIRECT;
        LOG.debug("an operation failed inside a CUDA graph capture ({}); these steps run without graphs", e.toString());
        try {
            device.destroyGraph(device.endCapture());
        } catch (RuntimeException ignored) {
            // The capture was invalidated: ending it is all that was needed.
        }
        reissue(0, shape.count - 1); // the last recorded operation is the one that failed
        shape.givenUp = true;
    }

    /** Drops every graph (device addresses they hold are about to be freed). */
    private void dropAll() {
        for (int i = 0; i < shapeCount; i++) {
            Shape s = shapes[i];
            if (s.graph != 0) {
                device.destroyGraph(s.graph);
                s.graph = 0;
            }
        }
    }

    // ---- operations: recorded while capturing, compared while replaying, else issued ----

    /** Handles the operation in {@link #op}; returns true when the caller must issue it to the device. */
    private boolean record(int kind, long slotsAddress) {
        if (mode == Mode.CAPTURE) {
            Shape s = shape;
            if (s.count == s.kinds.length) {
                s.kinds = Arrays.copyOf(s.kinds, 2 * s.count);
                s.params = Arrays.copyOf(s.params, 2 * s.count * PARAMS);
            }
            if (kind == LAUNCH) {
                if (s.slots == null || s.slots.byteSize() < (s.count + 1L) * SLOT_BYTES) {
                    MemorySegment grown = arena.allocate((long) s.kinds.length * SLOT_BYTES, 16);
                    if (s.slots != null) {
                        MemorySegment.copy(s.slots, 0, grown, 0, s.slots.byteSize());
                    }
                    s.slots = grown;
                }
                MemorySegment.copy(ALL, slotsAddress, s.slots, (long) s.count * SLOT_BYTES, SLOT_BYTES);
            }
            s.kinds[s.count] = kind;
            System.arraycopy(op, 0, s.params, s.count * PARAMS, PARAMS);
            s.count++;
            return true;
        }
        if (mode == Mode.REPLAY) {
            Shape s = shape;
            int i = cursor;
            boolean same = i < s.count && s.kinds[i] == kind
                    && Arrays.equals(op, 0, PARAMS, s.params, i * PARAMS, (i + 1) * PARAMS)
                    && (kind != LAUNCH || MemorySegment.mismatch(ALL, slotsAddress, slotsAddress + SLOT_BYTES,
                            s.slots, (long) i * SLOT_BYTES, (long) (i + 1) * SLOT_BYTES) == -1);
            if (same) {
                cursor++;
                return false;
            }
            diverge();
        }
        return true;
    }

    private void set(long a, long b, long c, long d, long e, long f, long g, long h, long i, long j) {
        op[0] = a;
        op[1] = b;
        op[2] = c;
        op[3] = d;
        op[4] = e;
        op[5] = f;
        op[6] = g;
        op[7] = h;
        op[8] = i;
        op[9] = j;
    }

    /** Issues recorded operations [from, to) to the device. */
    private void reissue(int from, int to) {
        Shape s = shape;
        for (int i = from; i < to; i++) {
            int p = i * PARAMS;
            long[] a = s.params;
            switch (s.kinds[i]) {
                case LAUNCH -> {
                    MemorySegment.copy(s.slots, (long) i * SLOT_BYTES, reissueSlots, 0, SLOT_BYTES);
                    device.launch(a[p], (int) a[p + 1], (int) a[p + 2], (int) a[p + 3], (int) a[p + 4], (int) a[p + 5],
                            reissuePointers);
                }
                case GEMM -> blas.gemm(Blas.Type.values()[(int) a[p]], (int) a[p + 1], (int) a[p + 2], (int) a[p + 3], a[p + 4],
                        (int) a[p + 5], a[p + 6], (int) a[p + 7], a[p + 8], (int) a[p + 9]);
                case COPY -> device.copy(a[p], a[p + 1], a[p + 2]);
                case UPLOAD -> device.copyToDevice(a[p], ALL, a[p + 1], a[p + 2]);
                case ZERO -> device.zero(a[p], a[p + 1]);
                default -> throw new IllegalStateException("unknown operation " + s.kinds[i]);
            }
        }
    }

    @Override
    public void launch(long function, int gridX, int gridY, int gridZ, int blockSize, int sharedBytes, MemorySegment params) {
        long slots = params.get(JAVA_LONG, 0); // LaunchArgs: the slots are contiguous from the first
        set(function, gridX, gridY, gridZ, blockSize, sharedBytes, 0, 0, 0, 0);
        if (record(LAUNCH, slots)) {
            try {
                device.launch(function, gridX, gridY, gridZ, blockSize, sharedBytes, params);
            } catch (RuntimeException e) {
                captureFailed(e);
                device.launch(function, gridX, gridY, gridZ, blockSize, sharedBytes, params);
            }
        }
    }

    private final Blas graphedBlas = new Blas() {
        @Override
        public void gemm(Type type, int m, int n, int k, long a, int lda, long b, int ldb, long c, int ldc) {
            set(type.ordinal(), m, n, k, a, lda, b, ldb, c, ldc);
            if (record(GEMM, 0)) {
                try {
                    blas.gemm(type, m, n, k, a, lda, b, ldb, c, ldc);
                } catch (RuntimeException e) {
                    captureFailed(e);
                    blas.gemm(type, m, n, k, a, lda, b, ldb, c, ldc);
                }
            }
        }

        @Override
        public String description() {
            return blas.description();
        }

        @Override
        public void close() {
            blas.close();
        }
    };

    @Override
    public void copy(long dst, long src, long bytes) {
        set(dst, src, bytes, 0, 0, 0, 0, 0, 0, 0);
        if (record(COPY, 0)) {
            try {
                device.copy(dst, src, bytes);
            } catch (RuntimeException e) {
                captureFailed(e);
                device.copy(dst, src, bytes);
            }
        }
    }

    /**
     * Inside a graph the copy reads its (page-locked) source when the graph runs: the step's host
     * side fills it before the step ends, and a different source address is a different operation.
     */
    @Override
    public void copyToDevice(long dst, MemorySegment src, long srcOffset, long bytes) {
        set(dst, src.address() + srcOffset, bytes, 0, 0, 0, 0, 0, 0, 0);
        if (record(UPLOAD, 0)) {
            try {
                device.copyToDevice(dst, src, srcOffset, bytes);
            } catch (RuntimeException e) {
                captureFailed(e);
                device.copyToDevice(dst, src, srcOffset, bytes);
            }
        }
    }

    @Override
    public void zero(long dst, long bytes) {
        set(dst, bytes, 0, 0, 0, 0, 0, 0, 0, 0);
        if (record(ZERO, 0)) {
            try {
                device.zero(dst, bytes);
            } catch (RuntimeException e) {
                captureFailed(e);
                device.zero(dst, bytes);
            }
        }
    }

    // ---- waits and memory management end the graph part of a step ----

    @Override
    public void copyToHost(MemorySegment dst, long src, long bytes) {
        finish(true);
        device.copyToHost(dst, src, bytes);
    }

    @Override
    public void synchronize() {
        finish(false);
        device.synchronize();
    }

    @Override
    public long allocate(long bytes) {
        finish(false);
        return device.allocate(bytes);
    }

    @Override
    public void free(long pointer) {
        finish(false);
        dropAll();
        device.free(pointer);
    }

    @Override
    public MemorySegment allocateHost(long bytes) {
        finish(false);
        return device.allocateHost(bytes);
    }

    @Override
    public void freeHost(MemorySegment segment) {
        finish(false);
        dropAll();
        device.freeHost(segment);
    }

    // ---- the rest goes straight to the device ----

    @Override
    public String name() {
        return device.name();
    }

    @Override
    public int computeCapability() {
        return device.computeCapability();
    }

    @Override
    public int multiprocessors() {
        return device.multiprocessors();
    }

    @Override
    public int maxSharedMemoryPerBlock() {
        return device.maxSharedMemoryPerBlock();
    }

    @Override
    public long totalMemory() {
        return device.totalMemory();
    }

    @Override
    public void makeCurrent() {
        device.makeCurrent();
    }

    @Override
    public long stream() {
        return device.stream();
    }

    @Override
    public long loadModule(String name, String ptx) {
        return device.loadModule(name, ptx);
    }

    @Override
    public long function(long module, String name) {
        return device.function(module, name);
    }

    @Override
    public void setMaxDynamicSharedMemory(long function, int bytes) {
        device.setMaxDynamicSharedMemory(function, bytes);
    }

    @Override
    public void beginCapture() {
        throw new UnsupportedOperationException("StepGraphs captures steps itself");
    }

    @Override
    public long endCapture() {
        throw new UnsupportedOperationException("StepGraphs captures steps itself");
    }

    @Override
    public void launchGraph(long graph) {
        throw new UnsupportedOperationException("StepGraphs captures steps itself");
    }

    @Override
    public void destroyGraph(long graph) {
        throw new UnsupportedOperationException("StepGraphs captures steps itself");
    }

    /** Drops the graphs and closes the device. */
    @Override
    public void close() {
        RuntimeException first = CudaDevice.attempt(null, () -> finish(false));
        first = CudaDevice.attempt(first, this::dropAll);
        first = CudaDevice.attempt(first, device::close);
        arena.close();
        if (first != null) {
            throw first;
        }
    }
}
