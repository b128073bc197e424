package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import jdk.incubator.vector.FloatVector;

/**
 * The matrix-matrix half of the column-major float products ({@link HalfProducts} for F16 and BF16,
 * {@link Iq4Products}, {@link Q8Products} for Q8_0): a group's columns are converted to floats a
 * chunk at a time into the thread's panel, exactly the values the one-token kernels convert in
 * their loops (weights, or Q8_0's stored values, whose scales come per block), then met by the
 * tokens 8 (6 for Q8_0) at a time over half a group. The panel holds a chunk half-group by half-group:
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
    /** Tokens a pass of {@link #blockPasses}. */
    static final int BLOCK_PASS_TOKENS = 6;
    /** Columns of a block of stored values that share a scale ({@link #blockPasses}). */
    private static final int BLOCK = IntegerProducts.BLOCK;

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
     * The passes of {@link #passes} for a chunk of stored values whose scales come per block of
     * {@link #BLOCK} columns ({@link Q8Products}), 6 tokens a pass over the first {@code passed}
     * tokens ({@link #blockPassedTokens}), a short pass repeating token {@code tokens - 1}. The
     * scales of the group's block b for its row j at {@code scales[b * GROUP_ROWS + j]}.
     */
    static void blockPasses(float[] panel, int count, float[] x, int row, int c0, int tokens, int passed, float[] sums,
                            float[] scales) {
        int last = tokens - 1;
        for (int t0 = 0; t0 < passed; t0 += BLOCK_PASS_TOKENS) {
            for (int half = 0; half < 2; half++) {
                sixTokens(panel, half * count * 2 * FL, count, x, t0 * row + c0, Math.min(t0 + 1, last) * row + c0,
                        Math.min(t0 + 2, last) * row + c0, Math.min(t0 + 3, last) * row + c0,
                        Math.min(t0 + 4, last) * row + c0, Math.min(t0 + 5, last) * row + c0, sums,
                        t0 * GROUP_ROWS + half * 2 * FL, scales, c0 / BLOCK * GROUP_ROWS + half * 2 * FL);
            }
        }
    }

    /**
     * How many of {@code tokens} passes of 6 cover (from the first): passes while more than 4 are
     * left, so the last may repeat its last token; 0 for up to 4 tokens.
     */
    static int blockPassedTokens(int tokens) {
        int passed = 0;
        while (tokens - passed > 4) {
            passed += BLOCK_PASS_TOKENS;
        }
        return passed;
    }

    /**
     * Six tokens (rows from indices x0..x5 of {@code x}, at the chunk's first column) against
     * {@code count} columns of half a group in the panel (from float index {@code p}), the panel
     * holding stored values: per (row, token) a block's products q x summed in b from zero over its
     * columns in order, then {@code a = fma(b, d, a)} with the block's scale d from {@code
     * scales[scaleAt]} on, a resumed from and parked in {@code sums} at {@code r + token *
     * GROUP_ROWS + row}. Six, not eight: 12 chains b and their 12 a stay in registers (adding each
     * block's b into sums in memory instead, 8 tokens a pass, cost 14-18% of Q8_0's prefill of
     * 128 tokens, KernelBench one core).
     */
    private static void sixTokens(float[] panel, int p, int count, float[] x, int x0, int x1, int x2, int x3,
                                  int x4, int x5, float[] sums, int r, float[] scales, int scaleAt) {
        FloatVector a00 = FloatVector.fromArray(F, sums, r), a10 = FloatVector.fromArray(F, sums, r + FL);
        FloatVector a01 = FloatVector.fromArray(F, sums, r + GROUP_ROWS), a11 = FloatVector.fromArray(F, sums, r + GROUP_ROWS + FL);
        FloatVector a02 = FloatVector.fromArray(F, sums, r + 2 * GROUP_ROWS), a12 = FloatVector.fromArray(F, sums, r + 2 * GROUP_ROWS + FL);
        FloatVector a03 = FloatVector.fromArray(F, sums, r + 3 * GROUP_ROWS), a13 = FloatVector.fromArray(F, sums, r + 3 * GROUP_ROWS + FL);
        FloatVector a04 = FloatVector.fromArray(F, sums, r + 4 * GROUP_ROWS), a14 = FloatVector.fromArray(F, sums, r + 4 * GROUP_ROWS + FL);
        FloatVector a05 = FloatVector.fromArray(F, sums, r + 5 * GROUP_ROWS), a15 = FloatVector.fromArray(F, sums, r + 5 * GROUP_ROWS + FL);
        FloatVector b00 = FloatVector.zero(F), b10 = b00, b01 = b00, b11 = b00, b02 = b00, b12 = b00;
        FloatVector b03 = b00, b13 = b00, b04 = b00, b14 = b00, b05 = b00, b15 = b00;
        int at = scaleAt;
        for (int column = 0; column < count; column++) {
            int o = p + column * 2 * FL;
            FloatVector q0 = FloatVector.fromArray(F, panel, o);
            FloatVector q1 = FloatVector.fromArray(F, panel, o + FL);
            FloatVector v = FloatVector.broadcast(F, x[x0 + column]);
            b00 = q0.fma(v, b00);
            b10 = q1.fma(v, b10);
            v = FloatVector.broadcast(F, x[x1 + column]);
            b01 = q0.fma(v, b01);
            b11 = q1.fma(v, b11);
            v = FloatVector.broadcast(F, x[x2 + column]);
            b02 = q0.fma(v, b02);
            b12 = q1.fma(v, b12);
            v = FloatVector.broadcast(F, x[x3 + column]);
            b03 = q0.fma(v, b03);
            b13 = q1.fma(v, b13);
            v = FloatVector.broadcast(F, x[x4 + column]);
            b04 = q0.fma(v, b04);
            b14 = q1.fma(v, b14);
            v = FloatVector.broadcast(F, x[x5 + column]);
            b05 = q0.fma(v, b05);
            b15 = q1.fma(v, b15);
            if ((column & (BLOCK - 1)) == BLOCK - 1) { // a block's last column
                FloatVector d0 = FloatVector.fromArray(F, scales, at);
                FloatVector d1 = FloatVector.fromArray(F, scales, at + FL);
                a00 = b00.fma(d0, a00);
                a10 = b10.fma(d1, a10);
                a01 = b01.fma(d0, a01);
                a11 = b11.fma(d1, a11);
                a02 = b02.fma(d0, a02);
                a12 = b12.fma(d1, a12);
                a03 = b03.fma(d0, a03);
                a13 = b13.fma(d1, a13);
                a04 = b04.fma(d0, a04);
                a14 = b14.fma(d1, a14);
                a05 = b05.fma(d0, a05);
                a15 = b15.fma(d1, a15);
                b00 = FloatVector.zero(F);
                b10 = b00;
                b01 = b00;
                b11 = b00;
                b02 = b00;
                b12 = b00;
                b03 = b00;
                b13 = b00;
                b04 = b00;
                b14 = b00;
                b05 = b00;
                b15 = b00;
                at += GROUP_ROWS;
            }
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
