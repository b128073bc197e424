package dev.peregrine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Reference quantisation from floats to each {@link DType}, bit-exact with ggml's
 * {@code quantize_row_*_ref} functions (round-to-nearest as ggml does it), so that files written
 * by Peregrine hold the bytes llama.cpp would write.
 */
public final class Quantize {
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Quantize() {
    }

    /**
     * Encodes {@code src[srcOffset .. srcOffset+count)} as {@code type} into {@code dst} at byte
     * {@code dstOffset}; {@code count} must be a whole number of blocks.
     *
     * @throws IllegalArgumentException for NaN or infinite input to a quantised type
     */
    public static void fromFloat(DType type, float[] src, int srcOffset, int count, MemorySegment dst, long dstOffset) {
        switch (type) {
            case F32 -> MemorySegment.copy(src, srcOffset, dst, F32, dstOffset, count);
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(I16, dstOffset + 2L * i, Float.floatToFloat16(src[srcOffset + i]));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    dst.set(I16, dstOffset + 2L * i, floatToBf16(src[srcOffset + i]));
                }
            }
            case Q8_0, Q4_0 -> {
                int bs = type.blockSize();
                if (count % bs != 0) {
                    throw new IllegalArgumentException(count + " values are not a whole number of " + type + " blocks");
                }
                for (int b = 0; b < count / bs; b++) {
                    long at = dstOffset + (long) b * type.blockBytes();
                    if (type == DType.Q8_0) {
                        q8_0Block(src, srcOffset + b * bs, dst, at);
                    } else {
                        q4_0Block(src, srcOffset + b * bs, dst, at);
                    }
                }
            }
        }
    }

    /** ggml's quantize_row_q8_0_ref for one block: d = max|x| / 127, q = round(x / d). */
    private static void q8_0Block(float[] x, int from, MemorySegment dst, long at) {
        float amax = 0;
        for (int j = 0; j < 32; j++) {
            amax = Math.max(amax, Math.abs(checkFinite(x[from + j])));
        }
        float d = amax / 127f;
        float id = d != 0 ? 1f / d : 0f;
        dst.set(I16, at, Float.floatToFloat16(d));
        for (int j = 0; j < 32; j++) {
            dst.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) roundHalfAway(x[from + j] * id));
        }
    }

    /**
     * ggml's quantize_row_q4_0_ref for one block: d = (the value of largest magnitude, with its
     * sign) / -8, nibble = min(15, trunc(x / d + 8.5)).
     */
    private static void q4_0Block(float[] x, int from, MemorySegment dst, long at) {
        float amax = 0;
        float max = 0;
        for (int j = 0; j < 32; j++) {
            float v = checkFinite(x[from + j]);
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        float d = max / -8f;
        float id = d != 0 ? 1f / d : 0f;
        dst.set(I16, at, Float.floatToFloat16(d));
        for (int j = 0; j < 16; j++) {
            int lo = Math.min(15, (int) (x[from + j] * id + 8.5f));
            int hi = Math.min(15, (int) (x[from + 16 + j] * id + 8.5f));
            dst.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) (lo | (hi << 4)));
        }
    }

    /** C's roundf: halves round away from zero (Math.round is exact but rounds halves up). */
    static int roundHalfAway(float v) {
        return v < 0 ? -Math.round(-v) : Math.round(v);
    }

    /** ggml's fp32 to bf16: round to nearest even, NaN kept quiet. */
    public static short floatToBf16(float f) {
        int bits = Float.floatToRawIntBits(f);
        if ((bits & 0x7fffffff) > 0x7f800000) {
            return (short) ((bits >>> 16) | 64);
        }
        return (short) ((bits + (0x7fff + ((bits >>> 16) & 1))) >>> 16);
    }

    private static float checkFinite(float v) {
        if (!Float.isFinite(v)) {
            throw new IllegalArgumentException("cannot quantise " + v);
        }
        return v;
    }
}
