package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * A {@link Device} over host memory, for testing the backend's host side where there is no GPU.
 * Memory is real (host) memory and copies happen, but no kernel runs. Every launch is checked: a
 * loaded kernel, a legal grid and block, dynamic shared memory within what was opted in to, and
 * every pointer argument inside live device memory. Checks allocate nothing, so a test can measure
 * the backend's own allocation; a failed check throws an {@link AssertionError}.
 *
 * <p>CUDA graphs: between {@link #beginCapture} and {@link #endCapture} operations are recorded,
 * not run (and waiting or allocating then fails, as it would fail a real capture); launching the
 * graph runs them, checks included. {@link #executed}, when set, lists every operation that ran, in
 * order, whether directly or inside a graph: what a GPU would have done.
 */
@SuppressWarnings("restricted") // reads launch arguments at raw addresses, as the driver would
final class FakeDevice implements Device {
    private static final MemorySegment ALL = MemorySegment.NULL.reinterpret(Long.MAX_VALUE);
    private static final int MODULE_IDS = 1000;
    private static final int DEFAULT_SHARED_MEMORY = 48 * 1024;
    private static final Kernel[] KERNELS = Kernel.values(); // values() copies the array at every call

    private final Map<Long, Arena> device = new HashMap<>();
    private final Map<Long, Arena> host = new HashMap<>();
    /** Allocation number of each live allocation's start: the same in two runs that allocate alike. */
    private final Map<Long, Integer> ordinals = new HashMap<>();
    private long[] starts = {};
    private long[] ends = {};
    private final int[] sharedOptIn = new int[Kernel.values().length];
    final long[] launches = new long[Kernel.values().length];
    private final long[][] lastArguments = new long[Kernel.values().length][];
    final int[][] lastGrid = new int[Kernel.values().length][];
    int deviceAllocations;
    /** Bytes copied from the device to the host so far. */
    long bytesToHost;
    int modulesLoaded;
    boolean closed;
    /** Operations being captured into a graph, or null. */
    private List<Runnable> capture;
    private final List<List<Runnable>> graphs = new ArrayList<>();
    int capturesBegun;
    long graphLaunches;
    /** When not null, a line per operation run (directly or in a graph). */
    List<String> executed;

    @Override
    public String name() {
        return "fake GPU";
    }

    @Override
    public int computeCapability() {
        return 90;
    }

    @Override
    public int multiprocessors() {
        return 132;
    }

    @Override
    public int maxSharedMemoryPerBlock() {
        return 227 * 1024;
    }

    @Override
    public long totalMemory() {
        return 80L << 30;
    }

    @Override
    public void makeCurrent() {
    }

    private void notCapturing(String what) {
        if (capture != null) {
            throw new AssertionError(what + " while a graph is being captured");
        }
    }

    boolean capturing() {
        return capture != null;
    }

    /** Records {@code op} when capturing (returns true), else lets the caller run it. */
    boolean deferred(Runnable op) {
        if (capture == null) {
            return false;
        }
        capture.add(op);
        return true;
    }

    void ran(String what) {
        if (executed != null) {
            executed.add(what);
        }
    }

    @Override
    public void beginCapture() {
        notCapturing("cuStreamBeginCapture");
        capture = new ArrayList<>();
        capturesBegun++;
    }

    @Override
    public long endCapture() {
        if (capture == null) {
            throw new AssertionError("cuStreamEndCapture without a capture");
        }
        graphs.add(capture);
        capture = null;
        return graphs.size(); // ids from 1
    }

    @Override
    public void launchGraph(long graph) {
        notCapturing("cuGraphLaunch");
        List<Runnable> ops = graphs.get((int) graph - 1);
        if (ops == null) {
            throw new AssertionError("cuGraphLaunch of a destroyed graph");
        }
        for (int i = 0; i < ops.size(); i++) {
            ops.get(i).run();
        }
        graphLaunches++;
    }

    @Override
    public void destroyGraph(long graph) {
        if (graphs.get((int) graph - 1) == null) {
            throw new AssertionError("cuGraphExecDestroy of a graph destroyed before");
        }
        graphs.set((int) graph - 1, null);
    }

    int liveGraphs() {
        return (int) graphs.stream().filter(g -> g != null).count();
    }

    @Override
    public long allocate(long bytes) {
        notCapturing("cuMemAlloc");
        Arena arena = Arena.ofShared();
        long address = arena.allocate(bytes, 256).address();
        device.put(address, arena);
        ordinals.put(address, deviceAllocations);
        deviceAllocations++;
        reindex(address, address + bytes, true);
        return address;
    }

    @Override
    public void free(long pointer) {
        notCapturing("cuMemFree");
        Arena arena = device.remove(pointer);
        if (arena == null) {
            throw new AssertionError("cuMemFree of 0x" + Long.toHexString(pointer) + ", which was not allocated");
        }
        reindex(pointer, 0, false);
        ordinals.remove(pointer);
        arena.close();
    }

    /** Keeps sorted arrays of live ranges, so that pointer checks are binary searches without allocation. */
    private void reindex(long start, long end, boolean add) {
        int at = Arrays.binarySearch(starts, start);
        if (add) {
            int insert = -at - 1;
            starts = insertAt(starts, insert, start);
            ends = insertAt(ends, insert, end);
        } else {
            starts = removeAt(starts, at);
            ends = removeAt(ends, at);
        }
    }

    private static long[] insertAt(long[] a, int i, long v) {
        long[] b = new long[a.length + 1];
        System.arraycopy(a, 0, b, 0, i);
        b[i] = v;
        System.arraycopy(a, i, b, i + 1, a.length - i);
        return b;
    }

    private static long[] removeAt(long[] a, int i) {
        long[] b = new long[a.length - 1];
        System.arraycopy(a, 0, b, 0, i);
        System.arraycopy(a, i + 1, b, i, a.length - i - 1);
        return b;
    }

    /** Throws unless [pointer, pointer + bytes) lies in one live device allocation. */
    void requireRange(long pointer, long bytes, String what) {
        if (!inside(pointer, bytes)) {
            throw new AssertionError(what + ": [0x" + Long.toHexString(pointer) + ", +" + bytes + ") is outside device memory");
        }
    }

    /** A device pointer as "allocation number + offset", comparable between two devices; anything else in hex. */
    String describe(long pointer) {
        int at = Arrays.binarySearch(starts, pointer);
        int i = at >= 0 ? at : -at - 2;
        if (i >= 0 && pointer < ends[i]) {
            return "m" + ordinals.get(starts[i]) + "+" + (pointer - starts[i]);
        }
        return Long.toHexString(pointer);
    }

    private boolean inside(long pointer, long bytes) {
        int at = Arrays.binarySearch(starts, pointer);
        int i = at >= 0 ? at : -at - 2;
        return i >= 0 && pointer + bytes <= ends[i];
    }

    int liveDeviceAllocations() {
        return device.size();
    }

    @Override
    public MemorySegment allocateHost(long bytes) {
        notCapturing("cuMemAllocHost");
        Arena arena = Arena.ofShared();
        MemorySegment s = arena.allocate(bytes, 256);
        host.put(s.address(), arena);
        return s;
    }

    @Override
    public void freeHost(MemorySegment segment) {
        notCapturing("cuMemFreeHost");
        Arena arena = host.remove(segment.address());
        if (arena == null) {
            throw new AssertionError("cuMemFreeHost of memory that was not allocated");
        }
        arena.close();
    }

    @Override
    public void copyToDevice(long dst, MemorySegment src, long srcOffset, long bytes) {
        requireRange(dst, bytes, "cuMemcpyHtoDAsync destination");
        if (capture == null || !deferred(() -> copyToDevice(dst, src, srcOffset, bytes))) { // no lambda unless capturing
            MemorySegment.copy(src, srcOffset, ALL, dst, bytes);
            if (executed != null) {
                ran("upload " + describe(dst) + " " + bytes);
            }
        }
    }

    @Override
    public void copyToHost(MemorySegment dst, long src, long bytes) {
        notCapturing("cuMemcpyDtoHAsync");
        requireRange(src, bytes, "cuMemcpyDtoHAsync source");
        MemorySegment.copy(ALL, src, dst, 0, bytes);
        bytesToHost += bytes;
    }

    @Override
    public void copy(long dst, long src, long bytes) {
        requireRange(src, bytes, "cuMemcpyDtoDAsync source");
        requireRange(dst, bytes, "cuMemcpyDtoDAsync destination");
        if (capture == null || !deferred(() -> copy(dst, src, bytes))) {
            MemorySegment.copy(ALL, src, ALL, dst, bytes);
            if (executed != null) {
                ran("copy " + describe(dst) + " " + describe(src) + " " + bytes);
            }
        }
    }

    @Override
    public void zero(long dst, long bytes) {
        requireRange(dst, bytes, "cuMemsetD8Async");
        if (capture == null || !deferred(() -> zero(dst, bytes))) {
            ALL.asSlice(dst, bytes).fill((byte) 0);
            if (executed != null) {
                ran("zero " + describe(dst) + " " + bytes);
            }
        }
    }

    @Override
    public void synchronize() {
        notCapturing("cuStreamSynchronize");
    }

    @Override
    public long stream() {
        return 7;
    }

    @Override
    public long loadModule(String name, String ptx) {
        int index = Arrays.asList(Kernel.MODULES).indexOf(name);
        if (index < 0 || !ptx.contains(".entry")) {
            throw new AssertionError("module " + name + " is not one of " + Arrays.toString(Kernel.MODULES));
        }
        modulesLoaded++;
        return MODULE_IDS + index;
    }

    @Override
    public long function(long module, String name) {
        for (Kernel k : Kernel.values()) {
            if (k.entry.equals(name) && k.module.equals(Kernel.MODULES[(int) module - MODULE_IDS])) {
                return k.ordinal() + 1;
            }
        }
        throw new AssertionError("no kernel " + name + " in module " + module);
    }

    @Override
    public void setMaxDynamicSharedMemory(long function, int bytes) {
        sharedOptIn[(int) function - 1] = bytes;
    }

    @Override
    public void launch(long function, int gridX, int gridY, int gridZ, int blockSize, int sharedBytes, MemorySegment params) {
        if (capture != null) {
            // The arguments as they are now, in memory of their own (the caller reuses its buffer).
            // One automatic arena: the slots, reached only through raw addresses, live as long as the pointers.
            Arena memory = Arena.ofAuto();
            MemorySegment slots = memory.allocate(8L * LaunchArgs.MAX, 16);
            MemorySegment pointers = memory.allocate(8L * LaunchArgs.MAX, 8);
            for (int i = 0; i < LaunchArgs.MAX; i++) {
                MemorySegment.copy(ALL, params.getAtIndex(JAVA_LONG, i), slots, 8L * i, 8);
                pointers.setAtIndex(JAVA_LONG, i, slots.address() + 8L * i);
            }
            capture.add(() -> launch(function, gridX, gridY, gridZ, blockSize, sharedBytes, pointers));
            return;
        }
        Kernel k = KERNELS[(int) function - 1];
        if (gridX < 1 || gridY < 1 || gridZ < 1 || gridY > 65535 || gridZ > 65535) {
            throw new AssertionError(k.entry + ": illegal grid " + gridX + " x " + gridY + " x " + gridZ);
        }
        if (blockSize < 32 || blockSize > 1024 || blockSize % 32 != 0) {
            throw new AssertionError(k.entry + ": illegal block of " + blockSize + " threads");
        }
        if (sharedBytes > DEFAULT_SHARED_MEMORY && sharedBytes > sharedOptIn[k.ordinal()]) {
            throw new AssertionError(k.entry + ": " + sharedBytes + " bytes of dynamic shared memory without opting in");
        }
        for (int i = 0; i < k.parameters.length(); i++) {
            if (k.parameters.charAt(i) == 'P') {
                long pointer = ALL.get(JAVA_LONG, params.getAtIndex(JAVA_LONG, i));
                if (pointer != 0 && !inside(pointer, 1)) {
                    throw new AssertionError(k.entry + " argument " + i + " (0x" + Long.toHexString(pointer)
                            + ") points outside device memory");
                }
            }
        }
        launches[k.ordinal()]++;
        long[] arguments = lastArguments[k.ordinal()];
        if (arguments == null) {
            arguments = lastArguments[k.ordinal()] = new long[LaunchArgs.MAX];
        }
        for (int i = 0; i < k.parameters.length(); i++) {
            arguments[i] = ALL.get(JAVA_LONG, params.getAtIndex(JAVA_LONG, i));
        }
        if (executed != null) {
            StringBuilder line = new StringBuilder(k.entry + " " + gridX + "x" + gridY + "x" + gridZ + "/" + blockSize + "+" + sharedBytes);
            for (int i = 0; i < k.parameters.length(); i++) {
                long value = ALL.get(JAVA_LONG, params.getAtIndex(JAVA_LONG, i));
                line.append(' ').append(k.parameters.charAt(i) == 'P' ? describe(value) : Long.toHexString(value));
            }
            ran(line.toString());
        }
        int[] grid = lastGrid[k.ordinal()];
        if (grid == null) {
            grid = lastGrid[k.ordinal()] = new int[4];
        }
        grid[0] = gridX;
        grid[1] = gridY;
        grid[2] = gridZ;
        grid[3] = blockSize;
    }

    /** Argument {@code index} of the last launch of {@code k} (32-bit values zero-extended). */
    long lastArgument(Kernel k, int index) {
        return lastArguments[k.ordinal()][index];
    }

    long launches(Kernel k) {
        return launches[k.ordinal()];
    }

    long totalLaunches() {
        return Arrays.stream(launches).sum();
    }

    @Override
    public void close() {
        if (!device.isEmpty() || !host.isEmpty()) {
            throw new AssertionError("device closed with " + device.size() + " device and " + host.size()
                    + " host allocations still live");
        }
        closed = true;
    }
}
