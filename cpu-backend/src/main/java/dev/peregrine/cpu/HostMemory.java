package dev.peregrine.cpu;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.lang.invoke.MethodHandle;
import java.util.Locale;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Large host buffers (KV cache, column-major weight copies). {@code Arena.allocate} zeroes what it
 * returns, touching every 4 KB page once at allocation: on the development VM that costs about 3 s
 * per GB, paid again when the memory is written. On Linux, when this module may call native code
 * ({@code --enable-native-access}), large buffers are instead anonymous {@code mmap}s, which the
 * kernel zero-fills lazily, page by page as they are first used, with transparent huge pages
 * requested ({@code madvise(MADV_HUGEPAGE)}) so that first use faults once per 2 MB. Otherwise, or
 * if a call fails, it is {@code Arena.allocate}.
 */
final class HostMemory {
    private static final Logger LOG = LoggerFactory.getLogger(HostMemory.class);
    /** Below this, Arena.allocate is as good. */
    private static final long MAPPED_FROM_BYTES = 2L << 20;
    // Linux values (x86-64 and aarch64 share them).
    private static final int PROT_READ_WRITE = 0x1 | 0x2;
    private static final int MAP_PRIVATE_ANONYMOUS = 0x02 | 0x20;
    private static final int MADV_HUGEPAGE = 14;
    private static final int MADV_POPULATE_READ = 22;
    private static final int MADV_DONTNEED = 4;
    private static final long PAGE = 4096;

    private static final MethodHandle MMAP;
    private static final MethodHandle MUNMAP;
    private static final MethodHandle MADVISE;

    static {
        MethodHandle mmap = null, munmap = null, madvise = null;
        boolean linux = System.getProperty("os.name", "").toLowerCase(Locale.ROOT).startsWith("linux");
        if (linux && HostMemory.class.getModule().isNativeAccessEnabled()) {
            try {
                Linker linker = Linker.nativeLinker();
                var libc = linker.defaultLookup();
                mmap = linker.downcallHandle(libc.findOrThrow("mmap"), FunctionDescriptor.of(ValueLayout.ADDRESS,
                        ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT, ValueLayout.JAVA_INT,
                        ValueLayout.JAVA_INT, ValueLayout.JAVA_LONG));
                munmap = linker.downcallHandle(libc.findOrThrow("munmap"), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                        ValueLayout.ADDRESS, ValueLayout.JAVA_LONG));
                madvise = linker.downcallHandle(libc.findOrThrow("madvise"), FunctionDescriptor.of(ValueLayout.JAVA_INT,
                        ValueLayout.ADDRESS, ValueLayout.JAVA_LONG, ValueLayout.JAVA_INT));
            } catch (RuntimeException e) {
                LOG.debug("anonymous mmap not available, large buffers come from Arena.allocate", e);
                mmap = null;
            }
        }
        MMAP = mmap;
        MUNMAP = munmap;
        MADVISE = madvise;
    }

    /** Memory and swap of the machine (Linux: /proc/meminfo), or Long.MAX_VALUE where unknown. */
    private static final long MACHINE_BYTES = machineBytes();

    private HostMemory() {
    }

    private static long machineBytes() {
        try {
            long kib = 0;
            for (String line : java.nio.file.Files.readAllLines(java.nio.file.Path.of("/proc/meminfo"))) {
                if (line.startsWith("MemTotal:") || line.startsWith("SwapTotal:")) {
                    kib += Long.parseLong(line.replaceAll("[^0-9]", ""));
                }
            }
            return kib > 0 ? kib * 1024 : Long.MAX_VALUE;
        } catch (java.io.IOException | RuntimeException e) {
            return Long.MAX_VALUE; // not Linux, or not readable: no check
        }
    }

    /** Whether large buffers are anonymous mappings with huge pages requested. */
    static boolean hugePages() {
        return MMAP != null;
    }

    /**
     * Asks the kernel to map all of {@code region} (part of a file mapping) now, in one call,
     * rather than page fault by page fault as it is first read (Linux 5.14+; a hint, else nothing).
     */
    static void prefault(MemorySegment region) {
        if (MMAP == null || !region.isNative() || region.byteSize() < MAPPED_FROM_BYTES) {
            return;
        }
        long start = region.address() / PAGE * PAGE;
        long length = region.address() + region.byteSize() - start;
        try {
            int ignored = (int) MADVISE.invokeExact(MemorySegment.ofAddress(start), length, MADV_POPULATE_READ);
        } catch (Throwable e) {
            LOG.debug("madvise(MADV_POPULATE_READ) failed", e);
        }
    }

    /**
     * Drops this process's pages of {@code region}, part of a file mapping whose contents have been
     * copied, so that the model is not counted twice in the process's resident memory (the file's
     * pages stay in the page cache, and a later read maps them again, so this is safe even for
     * pages a neighbouring tensor shares). Only the whole pages inside the region; only file
     * mappings (on anonymous memory the same call would discard the contents); a hint, else nothing.
     */
    static void release(MemorySegment region) {
        if (MADVISE == null || !region.isMapped() || region.byteSize() < MAPPED_FROM_BYTES) {
            return;
        }
        long start = (region.address() + PAGE - 1) / PAGE * PAGE;
        long end = (region.address() + region.byteSize()) / PAGE * PAGE;
        if (end <= start) {
            return;
        }
        try {
            int ignored = (int) MADVISE.invokeExact(MemorySegment.ofAddress(start), end - start, MADV_DONTNEED);
        } catch (Throwable e) {
            LOG.debug("madvise(MADV_DONTNEED) failed", e);
        }
    }

    /**
     * {@code bytes} of zeroed memory, 64-byte aligned (mappings are page-aligned), freed with {@code arena}.
     *
     * @throws OutOfMemoryError if the machine cannot hold it: more than its memory and swap (Linux),
     *                          whatever the kernel's overcommit policy would let a lazy mapping promise
     */
    static MemorySegment allocate(Arena arena, long bytes) {
        if (bytes > MACHINE_BYTES) {
            throw new OutOfMemoryError(bytes + " bytes requested, more than this machine's " + MACHINE_BYTES
                    + " bytes of memory and swap");
        }
        if (MMAP == null || bytes < MAPPED_FROM_BYTES) {
            return arena.allocate(bytes, 64);
        }
        MemorySegment address;
        try {
            address = (MemorySegment) MMAP.invokeExact(MemorySegment.NULL, bytes, PROT_READ_WRITE,
                    MAP_PRIVATE_ANONYMOUS, -1, 0L);
            if (address.address() != -1L) {
                int ignored = (int) MADVISE.invokeExact(address, bytes, MADV_HUGEPAGE); // a hint; may be refused
            }
        } catch (Throwable e) {
            throw new IllegalStateException("mmap of " + bytes + " bytes failed", e);
        }
        if (address.address() == -1L) { // MAP_FAILED: Arena.allocate reports the shortage (OutOfMemoryError)
            return arena.allocate(bytes, 64);
        }
        return address.reinterpret(bytes, arena, mapping -> unmap(mapping, bytes));
    }

    private static void unmap(MemorySegment mapping, long bytes) {
        try {
            int ignored = (int) MUNMAP.invokeExact(mapping, bytes);
        } catch (Throwable e) {
            LOG.warn("munmap failed", e);
        }
    }
}
