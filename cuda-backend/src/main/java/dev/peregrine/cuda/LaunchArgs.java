package dev.peregrine.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;

/**
 * The arguments of one kernel launch, staged in native memory as cuLaunchKernel's
 * {@code void** kernelParams}: one 8-byte slot per argument and a fixed array of pointers to the
 * slots. Reused for every launch, so launching allocates nothing. Not thread-safe.
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
        slots.set(JAVA_INT, 8L * next('I'), value);
        return this;
    }

    LaunchArgs f32(float value) {
        slots.set(JAVA_FLOAT, 8L * next('F'), value);
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
