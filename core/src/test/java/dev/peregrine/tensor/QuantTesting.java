package dev.peregrine.tensor;

import java.lang.foreign.MemorySegment;
import java.util.Random;

/** What the quantisation tests share: encoding to bytes, decoding them, and seeded test data. */
final class QuantTesting {
    private QuantTesting() {
    }

    /** {@code x} encoded as {@code type} by {@link Quantize}. */
    static byte[] quantize(DType type, float[] x) {
        byte[] out = new byte[(int) type.bytesFor(x.length)];
        Quantize.fromFloat(type, x, 0, x.length, MemorySegment.ofArray(out), 0);
        return out;
    }

    /** Whole blocks of {@code type} decoded by {@link Dequant}. */
    static float[] decode(DType type, byte[] blocks) {
        float[] y = new float[blocks.length / type.blockBytes() * type.blockSize()];
        Dequant.toFloat(type, MemorySegment.ofArray(blocks), 0, y, 0, y.length);
        return y;
    }

    static float[] roundTrip(DType type, float[] x) {
        return decode(type, quantize(type, x));
    }

    /** {@code n} normal values of standard deviation {@code scale}, from {@code seed}. */
    static float[] gaussian(int n, float scale, long seed) {
        Random r = new Random(seed);
        float[] x = new float[n];
        for (int i = 0; i < n; i++) {
            x[i] = (float) (r.nextGaussian() * scale);
        }
        return x;
    }
}
