package dev.peregrine.cpu;

import static dev.peregrine.cpu.VectorKernels.F;
import static dev.peregrine.cpu.VectorKernels.FL;
import static dev.peregrine.cpu.VectorKernels.ROUNDING;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;

/**
 * e^x from lane-wise IEEE operations only (within 2 ulp): the JIT's EXP intrinsic and the
 * interpreter's fallback round differently, and a result must not depend on how warm the JVM
 * is. Cody-Waite reduction x = n ln2 + f, |f| <= ln2/2, a degree-6 polynomial for e^f, and 2^n
 * built in the exponent bits. Inputs are clamped to the normal range (e^x underflows to about
 * 1e-38 rather than to 0, harmless in softmax and silu). The vector form is written out where it
 * is used (a helper taking a vector could box it); the test checks the same steps through
 * {@link #vectorExpForTest}.
 */
final class VectorExp {
    /** The vector exp's steps on one value, operation for operation, so both give the same bits. */
    static float expScalar(float x) {
        float e = Math.min(Math.max(x, EXP_MIN), EXP_MAX);
        float n = e * LOG2_E + ROUNDING - ROUNDING;
        float f = e - n * LN2_HI - n * LN2_LO;
        float poly = (((Math.fma(f, EXP_C6, EXP_C5) * f + EXP_C4) * f + EXP_C3) * f + EXP_C2) * f + 0.5f;
        return (poly * (f * f) + f + 1f) * Float.intBitsToFloat(((int) n + 127) << 23);
    }

    static final float EXP_MIN = -87.3f;
    static final float EXP_MAX = 88.7f;
    static final float LOG2_E = 1.44269504088896341f;
    /** ln 2 split so that n * LN2_HI is exact for |n| < 2^8. */
    static final float LN2_HI = 0.693359375f;
    static final float LN2_LO = -2.12194440e-4f;
    /** Taylor-like minimax coefficients of e^r - 1 - r - r^2/2 (Cephes expf). */
    static final float EXP_C2 = 1.6666665459e-1f;
    static final float EXP_C3 = 4.1665795894e-2f;
    static final float EXP_C4 = 8.3334519073e-3f;
    static final float EXP_C5 = 1.3981999507e-3f;
    static final float EXP_C6 = 1.9875691500e-4f;

    /** e^x of each value of {@code x}, by the steps the kernels use (for the tests). */
    static void vectorExpForTest(float[] x, float[] out) {
        for (int i = 0; i < x.length; i += FL) {
            VectorMask<Float> inRange = F.indexInRange(i, x.length);
            FloatVector e = FloatVector.fromArray(F, x, i, inRange).max(EXP_MIN).min(EXP_MAX);
            FloatVector n = e.mul(LOG2_E).add(ROUNDING).sub(ROUNDING);
            FloatVector f = e.sub(n.mul(LN2_HI)).sub(n.mul(LN2_LO));
            FloatVector poly = f.fma(EXP_C6, EXP_C5).mul(f).add(EXP_C4).mul(f).add(EXP_C3).mul(f).add(EXP_C2).mul(f).add(0.5f);
            e = poly.mul(f.mul(f)).add(f).add(1f).mul(((IntVector) n.convert(VectorOperators.F2I, 0)).add(127)
                    .lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats());
            e.intoArray(out, i, inRange);
        }
    }

    private VectorExp() {
    }
}
