package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;

import jdk.incubator.vector.FloatVector;

/**
 * The lane sums that end every float product's FMA chains, in one fixed order whatever the
 * token count or JIT state, so that a token's results do not depend on its batch.
 */
final class LaneSums {

    /**
     * Adds to {@code sums[at + r]} the sum of lanes {@code r * FL ..} of {@code lanes}, for r below
     * {@code count}, in one fixed order: a tree that adds lane i to lane i + FL/2, then i to
     * i + FL/4, and so on (overwriting {@code lanes}, which is scratch, and reading lanes only
     * up to {@code count * FL}). Not reduceLanes: its order
     * is unspecified, and the JIT's intrinsic and the interpreter's fallback differ, which would
     * make results depend on how warm the JVM is. (A helper that took the vector would box it: see
     * {@link HalfProducts#oneGroup}.)
     *
     * <p>The tree runs on vectors: each stage halves the vectors, every new one made of the halved
     * segments of two (exact lane selections, then one add), so up to FL sums come out in order
     * in one vector: 2 selections and an add per vector instead of FL scalar adds per sum. A sum's
     * bits do not depend on which others share its vector (an odd vector out pairs with itself).
     */
    static void addLaneSums(float[] lanes, float[] sums, int at, int count) {
        for (int r = 0; r < count; r += FL) {
            int base = r * FL;
            int inGroup = Math.min(FL, count - r);
            if (FL == 16 && inGroup == 16) {
                addLaneSums16(lanes, base, sums, at + r);
                continue;
            }
            if (inGroup == 4) {
                addLaneSums4(lanes, base, sums, at + r);
                continue;
            }
            int vectors = inGroup;
            for (int stage = 0; FL >> stage > 1; stage++) {
                FloatVector low = FloatVector.fromArray(F, TREE_LOW, stage * FL);
                FloatVector high = FloatVector.fromArray(F, TREE_HIGH, stage * FL);
                int pairs = (vectors + 1) / 2;
                for (int v = 0; v < pairs; v++) {
                    FloatVector a = FloatVector.fromArray(F, lanes, base + 2 * v * FL);
                    FloatVector b = 2 * v + 1 < vectors ? FloatVector.fromArray(F, lanes, base + (2 * v + 1) * FL) : a;
                    low.selectFrom(a, b).add(high.selectFrom(a, b)).intoArray(lanes, base + v * FL);
                }
                vectors = pairs;
            }
            if (inGroup == FL) {
                FloatVector.fromArray(F, sums, at + r).add(FloatVector.fromArray(F, lanes, base)).intoArray(sums, at + r);
            } else {
                for (int i = 0; i < inGroup; i++) {
                    sums[at + r + i] += lanes[base + i];
                }
            }
        }
    }

    /**
     * addLaneSums for one whole group of 16 sums of 16 lanes, the tree kept in registers: the
     * stages through memory are a chain of store-load-permute-add latencies that the tile kernel's
     * and attention's sums wait on. Written out: its first stage was a helper taking and returning
     * vectors, the pattern whose vectors C2 boxes when it does not inline the helper.
     */
    private static void addLaneSums16(float[] lanes, int base, float[] sums, int at) {
        FloatVector low = FloatVector.fromArray(F, TREE_LOW, 0);
        FloatVector high = FloatVector.fromArray(F, TREE_HIGH, 0);
        FloatVector l0 = FloatVector.fromArray(F, lanes, base);
        FloatVector h0 = FloatVector.fromArray(F, lanes, base + FL);
        FloatVector a0 = low.selectFrom(l0, h0).add(high.selectFrom(l0, h0));
        FloatVector l1 = FloatVector.fromArray(F, lanes, base + 2 * FL);
        FloatVector h1 = FloatVector.fromArray(F, lanes, base + 3 * FL);
        FloatVector a1 = low.selectFrom(l1, h1).add(high.selectFrom(l1, h1));
        FloatVector l2 = FloatVector.fromArray(F, lanes, base + 4 * FL);
        FloatVector h2 = FloatVector.fromArray(F, lanes, base + 5 * FL);
        FloatVector a2 = low.selectFrom(l2, h2).add(high.selectFrom(l2, h2));
        FloatVector l3 = FloatVector.fromArray(F, lanes, base + 6 * FL);
        FloatVector h3 = FloatVector.fromArray(F, lanes, base + 7 * FL);
        FloatVector a3 = low.selectFrom(l3, h3).add(high.selectFrom(l3, h3));
        FloatVector l4 = FloatVector.fromArray(F, lanes, base + 8 * FL);
        FloatVector h4 = FloatVector.fromArray(F, lanes, base + 9 * FL);
        FloatVector a4 = low.selectFrom(l4, h4).add(high.selectFrom(l4, h4));
        FloatVector l5 = FloatVector.fromArray(F, lanes, base + 10 * FL);
        FloatVector h5 = FloatVector.fromArray(F, lanes, base + 11 * FL);
        FloatVector a5 = low.selectFrom(l5, h5).add(high.selectFrom(l5, h5));
        FloatVector l6 = FloatVector.fromArray(F, lanes, base + 12 * FL);
        FloatVector h6 = FloatVector.fromArray(F, lanes, base + 13 * FL);
        FloatVector a6 = low.selectFrom(l6, h6).add(high.selectFrom(l6, h6));
        FloatVector l7 = FloatVector.fromArray(F, lanes, base + 14 * FL);
        FloatVector h7 = FloatVector.fromArray(F, lanes, base + 15 * FL);
        FloatVector a7 = low.selectFrom(l7, h7).add(high.selectFrom(l7, h7));
        low = FloatVector.fromArray(F, TREE_LOW, FL);
        high = FloatVector.fromArray(F, TREE_HIGH, FL);
        FloatVector b0 = low.selectFrom(a0, a1).add(high.selectFrom(a0, a1));
        FloatVector b1 = low.selectFrom(a2, a3).add(high.selectFrom(a2, a3));
        FloatVector b2 = low.selectFrom(a4, a5).add(high.selectFrom(a4, a5));
        FloatVector b3 = low.selectFrom(a6, a7).add(high.selectFrom(a6, a7));
        low = FloatVector.fromArray(F, TREE_LOW, 2 * FL);
        high = FloatVector.fromArray(F, TREE_HIGH, 2 * FL);
        FloatVector c0 = low.selectFrom(b0, b1).add(high.selectFrom(b0, b1));
        FloatVector c1 = low.selectFrom(b2, b3).add(high.selectFrom(b2, b3));
        low = FloatVector.fromArray(F, TREE_LOW, 3 * FL);
        high = FloatVector.fromArray(F, TREE_HIGH, 3 * FL);
        FloatVector d = low.selectFrom(c0, c1).add(high.selectFrom(c0, c1));
        FloatVector.fromArray(F, sums, at).add(d).intoArray(sums, at);
    }

    /**
     * addLaneSums for a group of 4 sums (the row kernels' 4 rows of one token), the tree kept in
     * registers: through memory, its 3-4 stages were a chain of store-load-permute-add latencies
     * that every group of 4 rows waited on, a large share of a decode step on short rows. The
     * same stages as addLaneSums's loop, in which a lone vector pairs with itself.
     */
    private static void addLaneSums4(float[] lanes, int base, float[] sums, int at) {
        FloatVector low = FloatVector.fromArray(F, TREE_LOW, 0);
        FloatVector high = FloatVector.fromArray(F, TREE_HIGH, 0);
        FloatVector l0 = FloatVector.fromArray(F, lanes, base);
        FloatVector h0 = FloatVector.fromArray(F, lanes, base + FL);
        FloatVector a0 = low.selectFrom(l0, h0).add(high.selectFrom(l0, h0));
        FloatVector l1 = FloatVector.fromArray(F, lanes, base + 2 * FL);
        FloatVector h1 = FloatVector.fromArray(F, lanes, base + 3 * FL);
        FloatVector a1 = low.selectFrom(l1, h1).add(high.selectFrom(l1, h1));
        low = FloatVector.fromArray(F, TREE_LOW, FL);
        high = FloatVector.fromArray(F, TREE_HIGH, FL);
        FloatVector b = low.selectFrom(a0, a1).add(high.selectFrom(a0, a1));
        // The remaining stages (one at 8 lanes, two at 16): FL is a constant, so these fold.
        low = FloatVector.fromArray(F, TREE_LOW, 2 * FL);
        high = FloatVector.fromArray(F, TREE_HIGH, 2 * FL);
        FloatVector c = low.selectFrom(b, b).add(high.selectFrom(b, b));
        if (FL == 16) {
            low = FloatVector.fromArray(F, TREE_LOW, 3 * FL);
            high = FloatVector.fromArray(F, TREE_HIGH, 3 * FL);
            c = low.selectFrom(c, c).add(high.selectFrom(c, c));
        }
        c.intoArray(lanes, base);
        for (int i = 0; i < 4; i++) {
            sums[at + i] += lanes[base + i];
        }
    }

    /**
     * Lane selections of addLaneSums's stages, FL per stage, as indices into the two vectors a
     * and b (b's lanes from FL on). Stage s takes segments of w = FL >> s lanes, one per sum (a
     * holds FL / w sums, b the next as many), to segments of w / 2: new lane L is sum q = L / (w/2),
     * element p = L % (w/2), and adds the old element p of that sum (TREE_LOW) to element
     * p + w/2 (TREE_HIGH).
     */
    private static final float[] TREE_LOW = treeSelections(0);
    private static final float[] TREE_HIGH = treeSelections(1);

    private static float[] treeSelections(int upperHalf) {
        int stages = Integer.numberOfTrailingZeros(FL);
        float[] indices = new float[stages * FL];
        for (int stage = 0; stage < stages; stage++) {
            int width = FL >> stage;
            int half = width / 2;
            int sumsPerVector = FL / width;
            for (int lane = 0; lane < FL; lane++) {
                int q = lane / half;
                int p = lane % half;
                int fromB = q / sumsPerVector;
                indices[stage * FL + lane] = fromB * FL + (q % sumsPerVector) * width + p + upperHalf * half;
            }
        }
        return indices;
    }

    private LaneSums() {
    }
}
