package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The arguments of one kernel launch, staged in native memory as cuLaunchKernel's
 * {@code void** kernelParams}: one 8-byte slot per argument and a fixed array of pointers to the
 * slots. Reused for every launch, so launching allocates nothing. Not thread-safe.
 *
 * <p>The slots are contiguous ({@link #MAX} of them from the first pointer's target) and a launch's
 * slots are fully defined (32-bit values zero-extended, unused slots zero), so {@link StepGraphs}
 * can compare two launches' arguments as bytes.
 */
final class LaunchArgs {
    static final int MAX = 24;

    private final MemorySegment slots;
    private final MemorySegment pointers;
    private final char[] kinds = new char[MAX];
    private int count;

    LaunchArgs(Arena arena) {
        slots = arena.allocate(8L * MAX, 16);
        pointers = arena.allocate(ADDRESS, MAX);
        for (int i = 0; i < MAX; i++) {
            pointers.setAtIndex(ADDRESS, i, slots.asSlice(8L * i, 8));
        }
    }

    LaunchArgs reset() {
        slots.fill((byte) 0);
        count = 0;
        return this;
    }

    /** A device pointer. */
    LaunchArgs ptr(long address) {
        slots.set(JAVA_LONG, 8L * next('P'), address);
        return this;
    }

    /** A 64-bit integer (long long). */
    LaunchArgs i64(long value) {
        slots.set(JAVA_LONG, 8L * next('L'), value);
        return this;
    }

    LaunchArgs i32(int value) {
        slots.set(JAVA_LONG, 8L * next('I'), value & 0xffffffffL); // little-endian: the int is the low half
        return this;
    }

    LaunchArgs f32(float value) {
        slots.set(JAVA_LONG, 8L * next('F'), Float.floatToRawIntBits(value) & 0xffffffffL);
        return this;
    }

    private int next(char kind) {
        if (count == MAX) {
            throw new IllegalStateException("more than " + MAX + " kernel arguments");
        }
        kinds[count] = kind;
        return count++;
    }

    /** The {@code void*[]} to pass to cuLaunchKernel. */
    MemorySegment pointers() {
        return pointers;
    }

    /** Throws unless the staged arguments are exactly {@code kernel}'s parameters. */
    void check(Kernel kernel) {
        String expected = kernel.parameters;
        boolean same = expected.length() == count;
        for (int i = 0; same && i < count; i++) {
            same = expected.charAt(i) == kinds[i];
        }
        if (!same) {
            throw new IllegalStateException(kernel.entry + " takes (" + expected + ") but was given ("
                    + new String(kinds, 0, count) + ")");
        }
    }
}
