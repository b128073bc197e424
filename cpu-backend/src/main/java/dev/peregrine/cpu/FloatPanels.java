package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import jdk.incubator.vector.FloatVector;

/**
 * The matrix-matrix half of the column-major float products ({@link HalfProducts} for F16 and BF16,
 * {@link Q8Products} for Q8_0): a group's columns are converted to floats a chunk at a time into
 * the thread's panel, exactly the weights the one-token kernels convert in their loops, then met
 * by the tokens 8 at a time over half a group. The panel holds a chunk half-group by half-group:
 * half h's column c at {@code (h * count + c) * 2 * FL}, so that a pass reads one unbroken stream.
 */
final class FloatPanels {
    /** Rows per group: the column-major products' group. */
    static final int GROUP_ROWS = IntegerProducts.GROUP_ROWS;
    /**
     * Columns of a chunk: converted to floats, 256 KB of a group (at 64 rows), which stays in the 1
     * MB L2 for the passes after the first.
     * KernelBench prefill F16 of 128 tokens, one core: 2,048 columns 193-197 GFLOP/s, 1,024 203-207,
     * 512 191-196. Only the order of memory traffic depends on it.
     */
    static final int CHUNK_COLUMNS = 1024;
    /** Tokens a pass. */
    private static final int PASS_TOKENS = 8;

    private FloatPanels() {
    }

    /** The thread's panel, with room for a chunk of a group. */
    static float[] panel(ThreadScratch scratch) {
        scratch.ensurePanel(GROUP_ROWS * CHUNK_COLUMNS);
        return scratch.panelFloats;
    }

    /**
     * How many of {@code tokens} the passes of 8 cover (from the first): passes while more than 4
     * are left, so the last may repeat its last token (then the result exceeds {@code tokens}); 0
     * for up to 4 tokens, which the types' own kernels take without a panel.
     */
    static int passedTokens(int tokens) {
        int passed = 0;
        while (tokens - passed > PASS_TOKENS / 2) {
            passed += PASS_TOKENS;
        }
        return passed;
    }

    /**
     * Passes of 8 tokens (from token 0 to {@code passed}, token rows {@code row} floats apart in
     * {@code x}) over a chunk of {@code count} columns from column {@code c0}, both half-groups;
     * a short pass repeats token {@code tokens - 1}. Sums parked at {@code token * GROUP_ROWS + row}.
     */
    static void passes(float[] panel, int count, float[] x, int row, int c0, int tokens, int passed, float[] sums) {
        int last = tokens - 1;
        for (int t0 = 0; t0 < passed; t0 += PASS_TOKENS) {
            for (int half = 0; half < 2; half++) {
                eightTokens(panel, half, count, x, t0 * row + c0, Math.min(t0 + 1, last) * row + c0,
                        Math.min(t0 + 2, last) * row + c0, Math.min(t0 + 3, last) * row + c0,
                        Math.min(t0 + 4, last) * row + c0, Math.min(t0 + 5, last) * row + c0,
                        Math.min(t0 + 6, last) * row + c0, Math.min(t0 + 7, last) * row + c0, sums,
                        t0 * GROUP_ROWS);
            }
        }
    }

    /**
     * Eight tokens (rows from indices x0..x7 of {@code x}, at the chunk's first column) against half
     * a group's chunk of {@code count} columns in the panel (its rows {@code half * 2 * FL} on): one
     * FMA chain per (row, token) over the columns in order, resumed from and parked in {@code sums}
     * at {@code at + token * GROUP_ROWS + row}.
     *
     * <p>Why floats converted once per chunk: with the conversion in this loop (2 conversions per
     * 16 FMAs, the F16 rebasing multiply or Q8_0's scale multiply sharing the FMA unit) KernelBench
     * prefill of 128 tokens, 2,048 x 8,192, one core, ran at 155-160 GFLOP/s (F16) and 188-190
     * (Q8_0); from the float chunk 198-207 and 215-220 (this loop alone, in a stand-alone test over
     * a 32-row float panel: 240-253, the core's FMA peak), and F16 does not lose at 8 tokens either
     * (48 -> 50). With AVX2's 16 vector registers (-XX:UseAVX=2) the 16 chains spill, yet F16 still
     * went 45-50 -> 72.
     */
    private static void eightTokens(float[] panel, int half, int count, float[] x, int x0, int x1, int x2, int x3,
                                    int x4, int x5, int x6, int x7, float[] sums, int at) {
        int r = at + half * 2 * FL;
        FloatVector a00 = FloatVector.fromArray(F, sums, r), a10 = FloatVector.fromArray(F, sums, r + FL);
        FloatVector a01 = FloatVector.fromArray(F, sums, r + GROUP_ROWS), a11 = FloatVector.fromArray(F, sums, r + GROUP_ROWS + FL);
        FloatVector a02 = FloatVector.fromArray(F, sums, r + 2 * GROUP_ROWS), a12 = FloatVector.fromArray(F, sums, r + 2 * GROUP_ROWS + FL);
        FloatVector a03 = FloatVector.fromArray(F, sums, r + 3 * GROUP_ROWS), a13 = FloatVector.fromArray(F, sums, r + 3 * GROUP_ROWS + FL);
        FloatVector a04 = FloatVector.fromArray(F, sums, r + 4 * GROUP_ROWS), a14 = FloatVector.fromArray(F, sums, r + 4 * GROUP_ROWS + FL);
        FloatVector a05 = FloatVector.fromArray(F, sums, r + 5 * GROUP_ROWS), a15 = FloatVector.fromArray(F, sums, r + 5 * GROUP_ROWS + FL);
        FloatVector a06 = FloatVector.fromArray(F, sums, r + 6 * GROUP_ROWS), a16 = FloatVector.fromArray(F, sums, r + 6 * GROUP_ROWS + FL);
        FloatVector a07 = FloatVector.fromArray(F, sums, r + 7 * GROUP_ROWS), a17 = FloatVector.fromArray(F, sums, r + 7 * GROUP_ROWS + FL);
        int p = half * count * 2 * FL;
        for (int column = 0; column < count; column++) {
            int o = p + column * 2 * FL;
            FloatVector q0 = FloatVector.fromArray(F, panel, o);
            FloatVector q1 = FloatVector.fromArray(F, panel, o + FL);
            FloatVector v = FloatVector.broadcast(F, x[x0 + column]);
            a00 = q0.fma(v, a00);
            a10 = q1.fma(v, a10);
            v = FloatVector.broadcast(F, x[x1 + column]);
            a01 = q0.fma(v, a01);
            a11 = q1.fma(v, a11);
            v = FloatVector.broadcast(F, x[x2 + column]);
            a02 = q0.fma(v, a02);
            a12 = q1.fma(v, a12);
            v = FloatVector.broadcast(F, x[x3 + column]);
            a03 = q0.fma(v, a03);
            a13 = q1.fma(v, a13);
            v = FloatVector.broadcast(F, x[x4 + column]);
            a04 = q0.fma(v, a04);
            a14 = q1.fma(v, a14);
            v = FloatVector.broadcast(F, x[x5 + column]);
            a05 = q0.fma(v, a05);
            a15 = q1.fma(v, a15);
            v = FloatVector.broadcast(F, x[x6 + column]);
            a06 = q0.fma(v, a06);
            a16 = q1.fma(v, a16);
            v = FloatVector.broadcast(F, x[x7 + column]);
            a07 = q0.fma(v, a07);
            a17 = q1.fma(v, a17);
        }
        a00.intoArray(sums, r);
        a10.intoArray(sums, r + FL);
        a01.intoArray(sums, r + GROUP_ROWS);
        a11.intoArray(sums, r + GROUP_ROWS + FL);
        a02.intoArray(sums, r + 2 * GROUP_ROWS);
        a12.intoArray(sums, r + 2 * GROUP_ROWS + FL);
        a03.intoArray(sums, r + 3 * GROUP_ROWS);
        a13.intoArray(sums, r + 3 * GROUP_ROWS + FL);
        a04.intoArray(sums, r + 4 * GROUP_ROWS);
        a14.intoArray(sums, r + 4 * GROUP_ROWS + FL);
        a05.intoArray(sums, r + 5 * GROUP_ROWS);
        a15.intoArray(sums, r + 5 * GROUP_ROWS + FL);
        a06.intoArray(sums, r + 6 * GROUP_ROWS);
        a16.intoArray(sums, r + 6 * GROUP_ROWS + FL);
        a07.intoArray(sums, r + 7 * GROUP_ROWS);
        a17.intoArray(sums, r + 7 * GROUP_ROWS + FL);
    }
}
