package dev.peregrine.cpu;

import static dev.peregrine.cpu.LaneSums.addLaneSums;
import static dev.peregrine.cpu.VectorExp.EXP_C2;
import static dev.peregrine.cpu.VectorExp.EXP_C3;
import static dev.peregrine.cpu.VectorExp.EXP_C4;
import static dev.peregrine.cpu.VectorExp.EXP_C5;
import static dev.peregrine.cpu.VectorExp.EXP_C6;
import static dev.peregrine.cpu.VectorExp.EXP_MIN;
import static dev.peregrine.cpu.VectorExp.LN2_HI;
import static dev.peregrine.cpu.VectorExp.LN2_LO;
import static dev.peregrine.cpu.VectorExp.LOG2_E;
import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;
import static dev.peregrine.cpu.VectorKernels.FLOAT;
import static dev.peregrine.cpu.VectorKernels.HALF_SHORTS;
import static dev.peregrine.cpu.VectorKernels.I;
import static dev.peregrine.cpu.VectorKernels.LE;
import static dev.peregrine.cpu.VectorKernels.LE_SHORT;
import static dev.peregrine.cpu.VectorKernels.NATIVE;
import static dev.peregrine.cpu.VectorKernels.ROUNDING;

import dev.peregrine.spi.BatchLayout;
import java.lang.foreign.MemorySegment;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.ShortVector;
import jdk.incubator.vector.VectorOperators;

/**
 * Attention over the paged KV cache (F32 or F16) with the Vector API: scores, softmax and the
 * weighted sum of values for (token, head) items, the same chains whether a head runs alone or
 * with the other heads of its query group.
 */
final class VectorAttention {

    /**
     * Most queries (a token row's head) that attention takes through one KV head's cache together:
     * the heads of a query group, of a few consecutive rows of one sequence when the group is
     * small (a prompt's rows, or speculative drafts being verified).
     */
    static final int MAX_QUERIES = 8;
    /** Positions whose value rows the queries accumulate before the next chunk (32 KB at 128 dims). */
    private static final int VALUE_CHUNK = 64;
    /** Vectors of positions whose scores one pass of {@link #scoreChunk} computes. */
    private static final int SCORE_VECTORS = 4;

    /** For n below FL: the indices 0, n, 2n, ... of FL elements, which gather one value of FL rows of n. */
    private static final int[][] EVERY_NTH = new int[FL][];

    static {
        for (int n = 1; n < FL; n++) {
            EVERY_NTH[n] = new int[FL];
            for (int g = 0; g < FL; g++) {
                EVERY_NTH[n][g] = g * n;
            }
        }
    }

    /**
     * Attention for (token, head) items. The items of this slice are taken as queries that share
     * a KV head and a sequence (a query group's heads, of up to {@code MAX_QUERIES / group}
     * consecutive rows of one sequence), and each chunk of positions' keys, then values, is read
     * from the cache (L2 or memory; for an F16 cache, decoded) once for all of them and from L1
     * for the others: a prompt's rows share their keys as a group's heads do. Every query's
     * scores, softmax and value sums are the same chains, in the same order, as alone.
     */
    static void attention(AttentionArgs a, int itemStart, int itemEnd, ThreadScratch scratch) {
        BatchLayout layout = a.layout;
        int heads = a.heads;
        int group = heads / a.kvHeads;
        int tileRows = Math.max(1, MAX_QUERIES / group);
        long headBytes = (long) a.headDim * Float.BYTES;
        Queries queries = scratch.attentionQueries;
        int rowEnd = (itemEnd - 1) / heads + 1;
        for (int r0 = itemStart / heads; r0 < rowEnd; ) {
            int seq = layout.tokenSequence[r0];
            int r1 = r0 + 1;
            while (r1 < rowEnd && r1 - r0 < tileRows && layout.tokenSequence[r1] == seq) {
                r1++;
            }
            for (int kvHead = 0; kvHead < a.kvHeads; kvHead++) {
                queries.count = 0;
                for (int r = r0; r < r1; r++) {
                    for (int h = kvHead * group; h < (kvHead + 1) * group; h++) {
                        int item = r * heads + h;
                        if (item < itemStart || item >= itemEnd) {
                            continue;
                        }
                        if (queries.count == MAX_QUERIES) {
                            attend(a, seq, kvHead, queries, scratch);
                            queries.count = 0;
                        }
                        int position = layout.positions[r];
                        queries.add(item * headBytes, a.firstAttended(position), position);
                    }
                }
                if (queries.count > 0) {
                    attend(a, seq, kvHead, queries, scratch);
                }
            }
            r0 = r1;
        }
    }

    /**
     * The queries of one sequence and KV head (see {@link #attention}): byte offset of each one's
     * query and output row, and the first and last position it attends to.
     */
    static final class Queries {
        final long[] base = new long[MAX_QUERIES];
        final int[] first = new int[MAX_QUERIES];
        final int[] last = new int[MAX_QUERIES];
        /** Per query: its maximum score, then 1 / its sum of weights. */
        final float[] maxes = new float[MAX_QUERIES];
        int count;

        void add(long queryBase, int firstPosition, int lastPosition) {
            base[count] = queryBase;
            first[count] = firstPosition;
            last[count] = lastPosition;
            count++;
        }
    }

    /**
     * Scores, softmax and values of {@code queries} against KV head {@code kvHead} of sequence
     * {@code seq}, over the positions any of them attends to (their union): query i's scores at
     * {@code scores[i * stride + p - first[i]]}.
     */
    private static void attend(AttentionArgs a, int seq, int kvHead, Queries queries, ThreadScratch scratch) {
        int headDim = a.headDim;
        int n = queries.count;
        int first = Integer.MAX_VALUE;
        int last = 0;
        for (int i = 0; i < n; i++) {
            first = Math.min(first, queries.first[i]);
            last = Math.max(last, queries.last[i]);
        }
        int length = last + 1 - first;
        // Score chunks (2 queries x SCORE_VECTORS vectors), softmax sums (FL chains of FL lanes), or
        // for heads narrower than a vector a chain per value of each query.
        float[] lanes = scratch.lanes(Math.max(2 * SCORE_VECTORS * FL, headDim < FL ? MAX_QUERIES * headDim * FL : FL * FL));
        float[] total = scratch.tileSums(1);
        int stride = (length + FL - 1) / FL * FL;
        float[] scores = scratch.scores(n * stride + FL);
        float[] maxes = queries.maxes;
        java.util.Arrays.fill(maxes, 0, n, Float.NEGATIVE_INFINITY);
        attentionScores(a, seq, kvHead, queries, first, last, scores, stride, lanes, scratch);
        // Softmax weights, each query's scores in place; maxes[i] becomes 1 / query i's sum.
        for (int i = 0; i < n; i++) {
            int own = queries.last[i] + 1 - queries.first[i];
            maxes[i] = 1 / softmaxWeights(scores, i * stride, own, (own + FL - 1) / FL * FL, maxes[i], lanes, total);
        }
        // The sequence's slots of positions first .. last, at slots[p - first].
        int[] slots = scratch.slots(length);
        a.layout.slotsOf(seq, first, length, slots);
        if (headDim < FL) {
            // Queries that start at the same position (a chain's lanes start at its first: a
            // prompt's rows, unless a window moves them) share one transposition of each chunk.
            for (int i = 0; i < n; ) {
                int j = i + 1;
                while (j < n && queries.first[j] == queries.first[i]) {
                    j++;
                }
                smallHeadValues(a, queries, i, j, kvHead, slots, queries.first[i] - first, scores, stride, lanes,
                        scratch);
                i = j;
            }
            return;
        }
        for (int i = 0; i < n; i++) {
            zeroRow(a.out, queries.base[i], headDim);
        }
        // Position p's value at values[rows[p - rowsFrom] * kvRowBytes + kvOffset]: the cache
        // itself (rows = slots, rowsFrom = first), or for an F16 cache L1-sized float rows into
        // which a chunk is decoded once for all the queries (rows = 0, 1, 2, ..., rowsFrom = c0).
        boolean half = a.halfCache;
        long headBytes = (long) headDim * Float.BYTES;
        long cacheRowBytes = (long) headDim * (half ? 2 : Float.BYTES);
        long cacheOffset = a.valueIndex(0, kvHead) * (half ? 2 : Float.BYTES);
        MemorySegment values = half ? scratch.decodedKv(VALUE_CHUNK * headDim) : a.valueCache;
        int[] rows = half ? scratch.positions(VALUE_CHUNK) : slots;
        long kvRowBytes = half ? headBytes : cacheRowBytes;
        long kvOffset = half ? 0 : cacheOffset;
        ValueSums sums = scratch.valueSums;
        sums.set(a, values, rows, kvRowBytes, kvOffset, scores, stride, queries);
        // out = sum_p weight_p * v_p, VALUE_CHUNK positions at a time for every query.
        for (int c0 = first; c0 <= last; c0 += VALUE_CHUNK) {
            int count = Math.min(VALUE_CHUNK, last + 1 - c0);
            if (half) {
                // Runs of consecutive slots (a block's positions) are one run of the head's plane: one call each.
                for (int g = 0; g < count; ) {
                    int run = consecutiveSlots(slots, c0 - first + g, count - g);
                    decodeHalves(a.valueCache, slots[c0 - first + g] * cacheRowBytes + cacheOffset, run * headDim, values,
                            (long) g * headBytes);
                    g += run;
                }
            }
            sums.rowsFrom = half ? c0 : first;
            for (int i = 0; i < n; i += 2) {
                sums.addPair(i, Math.min(i + 1, n - 1), c0, c0 + count); // an odd count's last query goes alone
            }
        }
    }

    /** Sets a query's output row (headDim floats from byte {@code at}) to zeros, which its value sums continue from. */
    private static void zeroRow(MemorySegment out, long at, int headDim) {
        // Stored directly, not through a slice's fill: the slice was allocated on every call
        // whenever C2 did not inline fill (11-16 KB per token in some 256-bit decode runs).
        int z = 0;
        for (; z + FL <= headDim; z += FL) {
            FloatVector.zero(F).intoMemorySegment(out, at + 4L * z, NATIVE);
        }
        for (; z < headDim; z++) {
            out.set(FLOAT, at + 4L * z, 0f);
        }
    }

    /**
     * The value sums of one {@link #attend} call: which positions of a chunk each query takes,
     * paired so that two queries share each value row's loads where their positions overlap.
     * Reused per thread (no allocation per call).
     */
    static final class ValueSums {
        private AttentionArgs a;
        private MemorySegment values;
        private int[] rows;
        private long kvRowBytes;
        private long kvOffset;
        private float[] weights;
        private int stride;
        private Queries queries;
        /** Position p's value row is rows[p - rowsFrom]. */
        int rowsFrom;

        void set(AttentionArgs a, MemorySegment values, int[] rows, long kvRowBytes, long kvOffset, float[] weights,
                 int stride, Queries queries) {
            this.a = a;
            this.values = values;
            this.rows = rows;
            this.kvRowBytes = kvRowBytes;
            this.kvOffset = kvOffset;
            this.weights = weights;
            this.stride = stride;
            this.queries = queries;
        }

        /**
         * Queries x and y's (x == y: one query) value sums over the positions of chunk [c0, c1)
         * each attends to, in position order for each: positions only one of them takes alone,
         * the ones both take as a pair.
         */
        void addPair(int x, int y, int c0, int c1) {
            int xFrom = Math.max(queries.first[x], c0), xTo = Math.min(queries.last[x] + 1, c1);
            if (x == y) {
                add(x, x, xFrom, xTo);
                return;
            }
            int yFrom = Math.max(queries.first[y], c0), yTo = Math.min(queries.last[y] + 1, c1);
            int from = Math.max(xFrom, yFrom), to = Math.min(xTo, yTo);
            if (from >= to) {
                add(x, x, xFrom, xTo);
                add(y, y, yFrom, yTo);
                return;
            }
            add(x, x, xFrom, from);
            add(y, y, yFrom, from);
            add(x, y, from, to);
            add(x, x, to, xTo);
            add(y, y, to, yTo);
        }

        /** Positions [from, to) into queries x and y (x == y: one query); 1 / the sum of weights applied after a query's last. */
        private void add(int x, int y, int from, int to) {
            if (from >= to) {
                return;
            }
            Queries q = queries;
            accumulateValues(values, rows, from - rowsFrom, kvRowBytes, kvOffset, weights,
                    x * stride + from - q.first[x], y * stride + from - q.first[y], to - from, a.headDim, a.out,
                    q.base[x], q.base[y], to == q.last[x] + 1 ? q.maxes[x] : 1f, to == q.last[y] + 1 ? q.maxes[y] : 1f);
        }
    }

    /**
     * Each query's scores of the positions it attends to (q . k, scaled and soft-capped) into
     * {@code scores[i * stride + p - first[i]]} and their maximum into {@code maxes[i]}, computed
     * chunk by chunk over positions {@code first .. last} (the union) against key head
     * {@code kvHead}. The keys are block-transposed ({@link AttentionArgs#keyIndex}), so one
     * vector holds one element of FL consecutive positions, and a score is a single chain of FMAs
     * over the head's elements in order (AttentionArgs.dot's), lane by lane: no sums across
     * lanes, and per element one load of each vector of positions for two queries and one
     * broadcast of each query's value for {@link #SCORE_VECTORS} vectors. Row-major keys took a
     * chain per position across the lanes, then a tree of lane sums, which cost as much as the
     * multiply-adds.
     */
    private static void attentionScores(AttentionArgs a, int seq, int kvHead, Queries queries, int first, int last,
                                        float[] scores, int stride, float[] lanes, ThreadScratch scratch) {
        BatchLayout layout = a.layout;
        int blockSize = layout.blockSize;
        int n = queries.count;
        float[] maxes = queries.maxes;
        if (blockSize % FL != 0) {
            // Blocks narrower than a vector (tests' small blocks): a position at a time, the same chains.
            for (int i = 0; i < n; i++) {
                float max = maxes[i];
                for (int p = queries.first[i]; p <= queries.last[i]; p++) {
                    float score = a.score(a.dot(queries.base[i], layout.slotOf(seq, p), kvHead));
                    scores[i * stride + p - queries.first[i]] = score;
                    max = Math.max(max, score);
                }
                maxes[i] = max;
            }
            return;
        }
        boolean half = a.halfCache;
        int headDim = a.headDim;
        long headValues = (long) headDim * blockSize; // a key head's values in a block
        // An F16 cache: the blocks of a chunk decoded to floats, one block's key head after another.
        int chunkBlocks = (SCORE_VECTORS * FL + blockSize - 1) / blockSize + 1;
        MemorySegment keys = half ? scratch.decodedKv((int) (chunkBlocks * headValues)) : a.keyCache;
        int lastVector = last / FL * FL;
        for (int c0 = first / FL * FL; c0 <= last; c0 += SCORE_VECTORS * FL) {
            int firstBlock = c0 / blockSize;
            if (half) {
                for (int b = firstBlock; b <= Math.min(c0 + SCORE_VECTORS * FL - 1, last) / blockSize; b++) {
                    long from = a.keyIndex(layout.slotOf(seq, b * blockSize), kvHead, 0);
                    decodeHalves(a.keyCache, 2 * from, (int) headValues, keys, 4 * (b - firstBlock) * headValues);
                }
            }
            // Byte offsets of the chunk's vectors of positions; past the last position the last repeats (unused).
            long k0 = vectorAt(a, seq, kvHead, half, firstBlock, c0);
            long k1 = vectorAt(a, seq, kvHead, half, firstBlock, Math.min(c0 + FL, lastVector));
            long k2 = vectorAt(a, seq, kvHead, half, firstBlock, Math.min(c0 + 2 * FL, lastVector));
            long k3 = vectorAt(a, seq, kvHead, half, firstBlock, Math.min(c0 + 3 * FL, lastVector));
            for (int j = 0; j < n; j += 2) {
                // Two queries a pass; an odd count repeats its last query (unused).
                int b = Math.min(j + 1, n - 1);
                scoreChunk(a.q, queries.base[j], queries.base[b], keys, k0, k1, k2, k3, 4L * blockSize, headDim, lanes);
                for (int i = j; i <= b; i++) {
                    maxes[i] = storeScores(a, lanes, (i - j) * SCORE_VECTORS * FL, c0, queries.first[i], queries.last[i],
                            scores, i * stride, maxes[i]);
                }
            }
        }
    }

    /**
     * Byte offset of element 0 of the FL positions from {@code position} (a multiple of FL) of the
     * key head: in the cache, or in the decoded chunk whose first block is {@code firstBlock}.
     */
    private static long vectorAt(AttentionArgs a, int seq, int kvHead, boolean decoded, int firstBlock, int position) {
        int blockSize = a.layout.blockSize;
        long at = decoded ? (long) (position / blockSize - firstBlock) * a.headDim * blockSize + position % blockSize
                : a.keyIndex(a.layout.slotOf(seq, position), kvHead, 0);
        return 4 * at;
    }

    /**
     * The raw scores of two query heads (bytes {@code qa}, {@code qb}) against four vectors of
     * positions (element 0 at bytes {@code k0 .. k3}, element i {@code i * elementBytes} further):
     * head a's four vectors into {@code lanes[0 .. 4 FL)}, head b's after them. Each lane is one
     * chain, acc = fma(q_i, k_i, acc) for i from 0 (8 independent chains: enough to keep both
     * FMA pipes busy through their latency).
     */
    private static void scoreChunk(MemorySegment q, long qa, long qb, MemorySegment keys, long k0, long k1, long k2,
                                   long k3, long elementBytes, int headDim, float[] lanes) {
        FloatVector a0 = FloatVector.zero(F), a1 = a0, a2 = a0, a3 = a0;
        FloatVector b0 = a0, b1 = a0, b2 = a0, b3 = a0;
        for (int i = 0; i < headDim; i++) {
            long e = i * elementBytes;
            FloatVector x0 = FloatVector.fromMemorySegment(F, keys, k0 + e, NATIVE);
            FloatVector x1 = FloatVector.fromMemorySegment(F, keys, k1 + e, NATIVE);
            FloatVector x2 = FloatVector.fromMemorySegment(F, keys, k2 + e, NATIVE);
            FloatVector x3 = FloatVector.fromMemorySegment(F, keys, k3 + e, NATIVE);
            FloatVector va = FloatVector.broadcast(F, q.get(FLOAT, qa + 4L * i));
            FloatVector vb = FloatVector.broadcast(F, q.get(FLOAT, qb + 4L * i));
            a0 = va.fma(x0, a0);
            a1 = va.fma(x1, a1);
            a2 = va.fma(x2, a2);
            a3 = va.fma(x3, a3);
            b0 = vb.fma(x0, b0);
            b1 = vb.fma(x1, b1);
            b2 = vb.fma(x2, b2);
            b3 = vb.fma(x3, b3);
        }
        a0.intoArray(lanes, 0);
        a1.intoArray(lanes, FL);
        a2.intoArray(lanes, 2 * FL);
        a3.intoArray(lanes, 3 * FL);
        b0.intoArray(lanes, 4 * FL);
        b1.intoArray(lanes, 5 * FL);
        b2.intoArray(lanes, 6 * FL);
        b3.intoArray(lanes, 7 * FL);
    }

    /**
     * One head's raw scores of the chunk from position {@code c0} ({@link #SCORE_VECTORS} vectors at
     * {@code lanes[from ..]}) that lie in {@code first .. last}, as scores into
     * {@code scores[at + p - first]}; returns {@code max} raised to their maximum. Whole vectors
     * are scaled as vectors (the same multiply as AttentionArgs.score), the rest one at a time.
     */
    private static float storeScores(AttentionArgs a, float[] lanes, int from, int c0, int first, int last,
                                     float[] scores, int at, float max) {
        for (int v = 0; v < SCORE_VECTORS; v++) {
            int p0 = c0 + v * FL;
            if (p0 > last) {
                break;
            }
            int l = from + v * FL;
            if (p0 >= first && p0 + FL - 1 <= last && a.softcap == 0) {
                FloatVector s = FloatVector.fromArray(F, lanes, l).mul(a.scale);
                s.intoArray(scores, at + p0 - first);
                max = Math.max(max, s.reduceLanes(VectorOperators.MAX));
            } else {
                for (int p = Math.max(p0, first); p <= Math.min(p0 + FL - 1, last); p++) {
                    float score = a.score(lanes[l + p - p0]);
                    scores[at + p - first] = score;
                    max = Math.max(max, score);
                }
            }
        }
        return max;
    }

    /**
     * The values of queries {@code from .. to - 1} (the same first position; rows' heads)
     * narrower than a vector (tiny models: 8 values a head in stories260K, 4 in TinyLLama-v0),
     * weighted by their softmax weights (scores, with 1 / their sum in maxes), vectorised across
     * positions instead of along the head: FL positions' values are copied, transposed, into a
     * small array, and each output value is a chain over positions, its lanes summed in a fixed
     * order at the end. Along the head, such heads would run element by element: at 640 positions
     * that was 60% of a stories260K decode step. The queries' slots start at {@code slots[slotsAt]}.
     * Each chunk is transposed once for all of them (speculative verification's rows each
     * transposed every chunk: 35% of its attention on stories260K); a query whose last position
     * falls inside the chunk takes a copy with the positions after it zeroed, the values it reads
     * alone.
     */
    private static void smallHeadValues(AttentionArgs a, Queries queries, int from, int to, int kvHead, int[] slots,
                                        int slotsAt, float[] scores, int stride, float[] chains, ThreadScratch scratch) {
        int headDim = a.headDim;
        boolean half = a.halfCache;
        int run = to - from;
        int longest = 0;
        for (int j = from; j < to; j++) {
            longest = Math.max(longest, queries.last[j] + 1 - queries.first[j]);
        }
        long rowBytes = (long) headDim * (half ? 2 : Float.BYTES);
        long offset = a.valueIndex(0, kvHead) * (half ? 2 : Float.BYTES);
        // The transposed rows: value i of position g at t[i * FL + g].
        float[] t = scratch.transposed(headDim * FL);
        float[] rows = scratch.valueRows(headDim * FL);
        // Chain (j, i) at chains[(j * headDim + i) * FL]: query from + j's value i, FL positions a lane.
        java.util.Arrays.fill(chains, 0, run * headDim * FL, 0f);
        for (int p0 = 0; p0 < longest; p0 += FL) {
            // Positions past the end read as zeros (their weights, e^-87 at most, are not quite 0).
            int count = Math.min(FL, longest - p0);
            transposeRows(a.valueCache, half, slots, slotsAt + p0, count, rowBytes, offset, headDim, rows, t);
            for (int j = 0; j < run; j++) {
                int own = Math.min(FL, queries.last[from + j] + 1 - queries.first[from + j] - p0);
                if (own <= 0) {
                    continue; // past this query's last position
                }
                float[] values = t;
                if (own < count) {
                    // The rows as read are no longer needed: they take this query's copy.
                    values = rows;
                    for (int i = 0; i < headDim; i++) {
                        System.arraycopy(t, i * FL, values, i * FL, own);
                        java.util.Arrays.fill(values, i * FL + own, (i + 1) * FL, 0f);
                    }
                }
                FloatVector weights = FloatVector.fromArray(F, scores, (from + j) * stride + p0);
                for (int i = 0; i < headDim; i++) {
                    int c = (j * headDim + i) * FL;
                    FloatVector.fromArray(F, values, i * FL).fma(weights, FloatVector.fromArray(F, chains, c)).intoArray(chains, c);
                }
            }
        }
        float[] sums = scratch.tileSums(run * headDim);
        java.util.Arrays.fill(sums, 0, run * headDim, 0f);
        addLaneSums(chains, sums, 0, run * headDim);
        for (int j = 0; j < run; j++) {
            for (int i = 0; i < headDim; i++) {
                a.out.set(FLOAT, queries.base[from + j] + 4L * i, sums[j * headDim + i] * queries.maxes[from + j]);
            }
        }
    }

    /**
     * One KV head's values at the positions {@code slots[from .. from + count)}, transposed into
     * {@code t} (value i of position g at {@code t[i * FL + g]}, zeros for g from count to FL)
     * through {@code rows} (the rows as read, FL * headDim floats); halves decode exactly.
     * Consecutive slots (a block's positions) are one run of the head's plane, read at once: read
     * value by value from the cache, these transpositions were 39% of a stories260K decode step
     * after 1,536 tokens.
     */
    private static void transposeRows(MemorySegment cache, boolean half, int[] slots, int from, int count, long rowBytes,
                                      long offset, int headDim, float[] rows, float[] t) {
        for (int g = 0; g < count; ) {
            int n = consecutiveSlots(slots, from + g, count - g);
            readValues(cache, half, slots[from + g] * rowBytes + offset, n * headDim, rows, g * headDim);
            g += n;
        }
        java.util.Arrays.fill(rows, count * headDim, FL * headDim, 0f);
        // Value i of the FL positions: a gather of every headDim-th float from i (copied element
        // by element, the transposition was 89% of this method).
        for (int i = 0; i < headDim; i++) {
            FloatVector.fromArray(F, rows, i, EVERY_NTH[headDim], 0).intoArray(t, i * FL);
        }
    }

    /**
     * How many of the {@code most} slots from {@code slots[from]} on follow one another (at least
     * 1): their values are one run of a KV head's plane.
     */
    private static int consecutiveSlots(int[] slots, int from, int most) {
        int n = 1;
        while (n < most && slots[from + n] == slots[from] + n) {
            n++;
        }
        return n;
    }

    /** {@code n} values of a cache from byte {@code at} (halves decoded exactly) into {@code into[to ..]}. */
    private static void readValues(MemorySegment cache, boolean half, long at, int n, float[] into, int to) {
        if (half) {
            for (int i = 0; i < n; i++) {
                into[to + i] = Float.float16ToFloat(cache.get(LE_SHORT, at + 2L * i));
            }
        } else {
            MemorySegment.copy(cache, FLOAT, at, into, to, n);
        }
    }

    /**
     * {@code count} little-endian halves from byte {@code from} of {@code cache} as floats into
     * {@code dst} from byte {@code to}, exactly: every half is a float (an F16 KV cache's keys of a
     * block, or one position's values).
     */
    private static void decodeHalves(MemorySegment cache, long from, int count, MemorySegment dst, long to) {
        int vectorEnd = count / FL * FL;
        int i = 0;
        for (; i < vectorEnd; i += FL) {
            // As decodeF16, written out; a NaN keeps its payload here.
            IntVector bits = ((IntVector) ShortVector.fromMemorySegment(HALF_SHORTS, cache, from + 2L * i, LE)
                    .convertShape(VectorOperators.S2I, I, 0)).lanewise(VectorOperators.LSHL, 13).and(0x8FFFFFFF);
            FloatVector f = bits.reinterpretAsFloats().mul(0x1p112f);
            f.blend(bits.or(0x7F800000).reinterpretAsFloats(), f.abs().compare(VectorOperators.GE, 65536f))
                    .intoMemorySegment(dst, to + 4L * i, NATIVE);
        }
        for (; i < count; i++) {
            dst.set(FLOAT, to + 4L * i, Float.float16ToFloat(cache.get(LE_SHORT, from + 2L * i)));
        }
    }

    /**
     * Turns {@code length} scores at {@code scores[at]} into e^(score - max), padding them to
     * {@code padded} with -infinity (whose weight is e^-87, nothing next to the maximum's 1) so
     * that every score goes through the same vector exp and no masked operation is needed; returns
     * their sum.
     */
    private static float softmaxWeights(float[] scores, int at, int length, int padded, float max, float[] lanes,
                                        float[] total) {
        for (int p = length; p < padded; p++) {
            scores[at + p] = Float.NEGATIVE_INFINITY;
        }
        FloatVector sums = FloatVector.zero(F);
        for (int p = 0; p < padded; p += FL) {
            // e^(score - max), as in swiglu (written out there and here: see HalfProducts.oneGroup).
            FloatVector e = FloatVector.fromArray(F, scores, at + p).sub(max).max(EXP_MIN);
            FloatVector n = e.mul(LOG2_E).add(ROUNDING).sub(ROUNDING);
            FloatVector f = e.sub(n.mul(LN2_HI)).sub(n.mul(LN2_LO));
            FloatVector poly = f.fma(EXP_C6, EXP_C5).mul(f).add(EXP_C4).mul(f).add(EXP_C3).mul(f).add(EXP_C2).mul(f).add(0.5f);
            e = poly.mul(f.mul(f)).add(f).add(1f).mul(((IntVector) n.convert(VectorOperators.F2I, 0)).add(127)
                    .lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            e.intoArray(scores, at + p);
            // The loop-carried sums as the argument: as the receiver they were boxed whenever C2 had
            // no type profile for them (every run with -XX:-UseTypeSpeculation at 256 bits).
            sums = e.add(sums);
        }
        sums.intoArray(lanes, 0);
        total[0] = 0;
        addLaneSums(lanes, total, 0, 1);
        return total[0];
    }

    /**
     * For two queries a and b (b may be a, then computed twice): adds weights[w + p] * (the value
     * row at rows[row0 + p]) for p in [0, count) to the query's output (floats at {@code outA},
     * {@code outB}), four vectors of head elements of both per pass over the values (8
     * independent chains, enough to cover the FMA latency, and each value vector loaded once for
     * both); the sums continue from what an earlier call left in {@code out}, zeros at first (the
     * same chain per element as in one pass: 0 + w v is w v). The call with a query's last
     * position scales by {@code scaleA}, {@code scaleB} (1 / the sum of the weights) on the way
     * out, the others by 1.
     */
    private static void accumulateValues(MemorySegment values, int[] rows, int row0, long kvRowBytes, long kvOffset,
                                         float[] weights, int wA, int wB, int count, int headDim,
                                         MemorySegment out, long outA, long outB, float scaleA, float scaleB) {
        int vectorEnd = headDim / FL * FL;
        int heads = outA == outB ? 1 : 2;
        int i = 0;
        for (; i + 4 * FL <= vectorEnd; i += 4 * FL) {
            long oa = outA + i * 4L;
            long ob = outB + i * 4L;
            FloatVector a0 = FloatVector.fromMemorySegment(F, out, oa, NATIVE);
            FloatVector a1 = FloatVector.fromMemorySegment(F, out, oa + 4L * FL, NATIVE);
            FloatVector a2 = FloatVector.fromMemorySegment(F, out, oa + 8L * FL, NATIVE);
            FloatVector a3 = FloatVector.fromMemorySegment(F, out, oa + 12L * FL, NATIVE);
            FloatVector b0 = FloatVector.fromMemorySegment(F, out, ob, NATIVE);
            FloatVector b1 = FloatVector.fromMemorySegment(F, out, ob + 4L * FL, NATIVE);
            FloatVector b2 = FloatVector.fromMemorySegment(F, out, ob + 8L * FL, NATIVE);
            FloatVector b3 = FloatVector.fromMemorySegment(F, out, ob + 12L * FL, NATIVE);
            for (int p = 0; p < count; p++) {
                long vBase = rows[row0 + p] * kvRowBytes + kvOffset + i * 4L;
                FloatVector wa = FloatVector.broadcast(F, weights[wA + p]);
                FloatVector wb = FloatVector.broadcast(F, weights[wB + p]);
                FloatVector v0 = FloatVector.fromMemorySegment(F, values, vBase, NATIVE);
                FloatVector v1 = FloatVector.fromMemorySegment(F, values, vBase + 4L * FL, NATIVE);
                FloatVector v2 = FloatVector.fromMemorySegment(F, values, vBase + 8L * FL, NATIVE);
                FloatVector v3 = FloatVector.fromMemorySegment(F, values, vBase + 12L * FL, NATIVE);
                a0 = v0.fma(wa, a0);
                a1 = v1.fma(wa, a1);
                a2 = v2.fma(wa, a2);
                a3 = v3.fma(wa, a3);
                b0 = v0.fma(wb, b0);
                b1 = v1.fma(wb, b1);
                b2 = v2.fma(wb, b2);
                b3 = v3.fma(wb, b3);
            }
            a0.mul(scaleA).intoMemorySegment(out, oa, NATIVE);
            a1.mul(scaleA).intoMemorySegment(out, oa + 4L * FL, NATIVE);
            a2.mul(scaleA).intoMemorySegment(out, oa + 8L * FL, NATIVE);
            a3.mul(scaleA).intoMemorySegment(out, oa + 12L * FL, NATIVE);
            b0.mul(scaleB).intoMemorySegment(out, ob, NATIVE);
            b1.mul(scaleB).intoMemorySegment(out, ob + 4L * FL, NATIVE);
            b2.mul(scaleB).intoMemorySegment(out, ob + 8L * FL, NATIVE);
            b3.mul(scaleB).intoMemorySegment(out, ob + 12L * FL, NATIVE);
        }
        // What is left of the head: fewer than 4 vectors, a vector of both heads a pass, then single values.
        for (; i < vectorEnd; i += FL) {
            long oa = outA + i * 4L;
            long ob = outB + i * 4L;
            FloatVector a0 = FloatVector.fromMemorySegment(F, out, oa, NATIVE);
            FloatVector b0 = FloatVector.fromMemorySegment(F, out, ob, NATIVE);
            for (int p = 0; p < count; p++) {
                FloatVector v = FloatVector.fromMemorySegment(F, values, rows[row0 + p] * kvRowBytes + kvOffset + i * 4L,
                        NATIVE);
                a0 = v.fma(FloatVector.broadcast(F, weights[wA + p]), a0);
                b0 = v.fma(FloatVector.broadcast(F, weights[wB + p]), b0);
            }
            a0.mul(scaleA).intoMemorySegment(out, oa, NATIVE);
            b0.mul(scaleB).intoMemorySegment(out, ob, NATIVE);
        }
        for (int h = 0; h < heads; h++) {
            long outBase = h == 0 ? outA : outB;
            int wBase = h == 0 ? wA : wB;
            float scale = h == 0 ? scaleA : scaleB;
            for (int k = i; k < headDim; k++) {
                long o = outBase + k * 4L;
                float acc = out.get(FLOAT, o);
                for (int p = 0; p < count; p++) {
                    acc += weights[wBase + p] * values.get(FLOAT, rows[row0 + p] * kvRowBytes + kvOffset + k * 4L);
                }
                out.set(FLOAT, o, acc * scale);
            }
        }
    }

    private VectorAttention() {
    }
}
