package dev.peregrine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Reference quantisation from floats to each {@link DType}. Q8_0, Q4_0, Q4_1, Q5_0 and Q5_1 are
 * bit-exact with ggml's {@code quantize_row_*_ref} functions (rounding as ggml does it), so that
 * files written by Peregrine hold the bytes llama.cpp would write. The K-quants and IQ4_NL / IQ4_XS use a plainer choice of
 * scales than ggml's search: valid blocks that any ggml reader decodes, close to the input, but not
 * the bytes llama-quantize would write.
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
            default -> {
                int bs = type.blockSize();
                if (count % bs != 0) {
                    throw new IllegalArgumentException(count + " values are not a whole number of " + type + " blocks");
                }
                for (int b = 0; b < count / bs; b++) {
                    encodeBlock(type, src, srcOffset + b * bs, dst, dstOffset + (long) b * type.blockBytes());
                }
            }
        }
    }

    private static void encodeBlock(DType type, float[] x, int from, MemorySegment dst, long at) {
        switch (type) {
            case Q8_0 -> q8_0Block(x, from, dst, at);
            case Q4_0 -> q4_0Block(x, from, dst, at);
            case Q4_1 -> minBlock(x, from, dst, at, 4);
            case Q5_0 -> q5_0Block(x, from, dst, at);
            case Q5_1 -> minBlock(x, from, dst, at, 5);
            case Q4_K -> kBlockWithMins(x, from, dst, at, 4);
            case Q5_K -> kBlockWithMins(x, from, dst, at, 5);
            case Q6_K -> q6_kBlock(x, from, dst, at);
            case Q2_K -> q2_kBlock(x, from, dst, at);
            case Q3_K -> q3_kBlock(x, from, dst, at);
            case IQ4_NL -> iq4Block(x, from, dst, at, false);
            case IQ4_XS -> iq4Block(x, from, dst, at, true);
            default -> throw new IllegalArgumentException(type + " is not a block-quantised type");
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
        float d = largestMagnitude(x, from, 32) / -8f;
        float id = d != 0 ? 1f / d : 0f;
        dst.set(I16, at, Float.floatToFloat16(d));
        for (int j = 0; j < 16; j++) {
            int lo = Math.min(15, (int) (x[from + j] * id + 8.5f));
            int hi = Math.min(15, (int) (x[from + 16 + j] * id + 8.5f));
            dst.set(ValueLayout.JAVA_BYTE, at + 2 + j, (byte) (lo | (hi << 4)));
        }
    }

    /**
     * ggml's quantize_row_q5_0_ref for one block: Q4_0's rule with 5 bits, d = max / -16,
     * q = min(31, trunc(x / d + 16.5)); the fifth bits go to the word qh.
     */
    private static void q5_0Block(float[] x, int from, MemorySegment dst, long at) {
        float d = largestMagnitude(x, from, 32) / -16f;
        float id = d != 0 ? 1f / d : 0f;
        dst.set(I16, at, Float.floatToFloat16(d));
        int[] q = new int[32];
        for (int j = 0; j < 32; j++) {
            q[j] = Math.min(31, (int) (x[from + j] * id + 16.5f));
        }
        packFiveBits(q, dst, at + 2);
    }

    /**
     * ggml's quantize_row_q4_1_ref (4 bits) and quantize_row_q5_1_ref (5 bits) for one block:
     * m = the smallest value, d = (largest - m) / (2^bits - 1), q = min(2^bits - 1, trunc((x - m) / d
     * + 0.5)) (ggml writes the cap for Q4_1 only; Q5_1's q cannot reach it).
     */
    private static void minBlock(float[] x, int from, MemorySegment dst, long at, int bits) {
        float min = Float.MAX_VALUE;
        float max = -Float.MAX_VALUE;
        for (int j = 0; j < 32; j++) {
            // Comparisons as ggml writes them (Math.min would prefer -0.0 to an earlier 0.0).
            float v = checkFinite(x[from + j]);
            if (v < min) {
                min = v;
            }
            if (v > max) {
                max = v;
            }
        }
        int top = (1 << bits) - 1;
        float d = (max - min) / top;
        float id = d != 0 ? 1f / d : 0f;
        dst.set(I16, at, Float.floatToFloat16(d));
        dst.set(I16, at + 2, Float.floatToFloat16(min));
        int[] q = new int[32];
        for (int j = 0; j < 32; j++) {
            q[j] = Math.min(top, (int) ((x[from + j] - min) * id + 0.5f));
        }
        if (bits == 5) {
            packFiveBits(q, dst, at + 4);
        } else {
            for (int j = 0; j < 16; j++) {
                dst.set(ValueLayout.JAVA_BYTE, at + 4 + j, (byte) (q[j] | q[j + 16] << 4));
            }
        }
    }

    /** 32 five-bit values as Q5_0 and Q5_1 store them: the word of fifth bits at {@code at}, then the nibbles. */
    private static void packFiveBits(int[] q, MemorySegment dst, long at) {
        int qh = 0;
        for (int j = 0; j < 32; j++) {
            qh |= (q[j] >>> 4 & 1) << j;
        }
        dst.set(ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN), at, qh);
        for (int j = 0; j < 16; j++) {
            dst.set(ValueLayout.JAVA_BYTE, at + 4 + j, (byte) ((q[j] & 0x0F) | (q[j + 16] & 0x0F) << 4));
        }
    }

    /**
     * Q4_K or Q5_K (layouts in {@link DType}; {@code bits} 4 or 5). Sub-block j spans [lo, hi] with
     * lo = min(0, smallest value) and hi = its largest value: scale (hi - lo) / (2^bits - 1), min
     * -lo. d and dmin map the largest scale and min to 63, each sub-block's 6-bit scale and min are
     * rounded to nearest, and the quants are rounded against those stored (rounded) values. ggml
     * instead searches each sub-block for the scale and min of least weighted error, starting from
     * this same estimate.
     */
    private static void kBlockWithMins(float[] x, int from, MemorySegment dst, long at, int bits) {
        int top = (1 << bits) - 1;
        float[] scales = new float[8];
        float[] mins = new float[8];
        float maxScale = 0;
        float maxMin = 0;
        for (int j = 0; j < 8; j++) {
            span(x, from + 32 * j, 32, top, scales, mins, j);
            maxScale = Math.max(maxScale, scales[j]);
            maxMin = Math.max(maxMin, mins[j]);
        }
        short dBits = Float.floatToFloat16(maxScale / 63);
        short dminBits = Float.floatToFloat16(maxMin / 63);
        float d = Float.float16ToFloat(dBits);
        float dmin = Float.float16ToFloat(dminBits);
        dst.set(I16, at, dBits);
        dst.set(I16, at + 2, dminBits);
        byte[] packed = new byte[12];
        byte[] qh = new byte[32];
        byte[] qs = new byte[128];
        for (int j = 0; j < 8; j++) {
            int sc = d > 0 ? Math.min(63, Math.round(scales[j] / d)) : 0;
            int m = dmin > 0 ? Math.min(63, Math.round(mins[j] / dmin)) : 0;
            if (j < 4) {
                packed[j] = (byte) sc;
                packed[j + 4] = (byte) m;
            } else {
                packed[j + 4] = (byte) ((sc & 0x0F) | (m & 0x0F) << 4);
                packed[j - 4] |= (byte) ((sc >>> 4) << 6);
                packed[j] |= (byte) ((m >>> 4) << 6);
            }
            float step = d * sc;
            float offset = dmin * m;
            for (int l = 0; l < 32; l++) {
                int q = step > 0 ? Math.clamp(Math.round((x[from + 32 * j + l] + offset) / step), 0, top) : 0;
                // Sub-blocks 2r and 2r+1 share the 32 bytes of run r: low nibbles, then high;
                // a Q5_K value's fifth bit is bit j of qh[l].
                qs[32 * (j / 2) + l] |= (byte) ((q & 0x0F) << 4 * (j % 2));
                qh[l] |= (byte) ((q >>> 4) << j);
            }
        }
        MemorySegment.copy(packed, 0, dst, ValueLayout.JAVA_BYTE, at + 4, 12);
        if (bits == 5) {
            MemorySegment.copy(qh, 0, dst, ValueLayout.JAVA_BYTE, at + 16, 32);
        }
        MemorySegment.copy(qs, 0, dst, ValueLayout.JAVA_BYTE, at + (bits == 5 ? 48 : 16), 128);
    }

    /**
     * Q6_K (layout in {@link DType}). Sub-block j (16 values) gets scale max|x| / 31, so that its
     * values need q - 32 in -31..31 only; d maps the largest scale to 127, each sub-block's int8
     * scale is rounded to nearest, and the quants are rounded against the stored scale and clamped
     * to -32..31. ggml instead picks signed scales that use -32 too, by a search; this keeps to
     * the plain symmetric choice.
     */
    private static void q6_kBlock(float[] x, int from, MemorySegment dst, long at) {
        float[] scales = new float[16];
        float maxScale = 0;
        for (int j = 0; j < 16; j++) {
            float amax = 0;
            for (int l = 0; l < 16; l++) {
                amax = Math.max(amax, Math.abs(checkFinite(x[from + 16 * j + l])));
            }
            scales[j] = amax / 31;
            maxScale = Math.max(maxScale, scales[j]);
        }
        short dBits = Float.floatToFloat16(maxScale / 127);
        float d = Float.float16ToFloat(dBits);
        byte[] ql = new byte[128];
        byte[] qh = new byte[64];
        for (int j = 0; j < 16; j++) {
            int sc = d > 0 ? Math.min(127, Math.round(scales[j] / d)) : 0;
            dst.set(ValueLayout.JAVA_BYTE, at + 192 + j, (byte) sc);
            float step = d * sc;
            for (int l = 0; l < 16; l++) {
                int i = 16 * j + l;
                int q = (step > 0 ? Math.clamp(roundHalfAway(x[from + i] / step), -32, 31) : 0) + 32;
                // The bit positions Dequant reads value i from.
                int h = i / 128;
                int k = i % 128 / 32;
                int r = i % 32;
                ql[64 * h + r + 32 * (k % 2)] |= (byte) ((q & 0x0F) << (k < 2 ? 0 : 4));
                qh[32 * h + r] |= (byte) ((q >>> 4) << (2 * k));
            }
        }
        MemorySegment.copy(ql, 0, dst, ValueLayout.JAVA_BYTE, at, 128);
        MemorySegment.copy(qh, 0, dst, ValueLayout.JAVA_BYTE, at + 128, 64);
        dst.set(I16, at + 208, dBits);
    }

    /**
     * Q2_K (layout in {@link DType}). Sub-block j (16 values) spans [lo, hi] with lo = min(0, smallest
     * value): scale (hi - lo) / 3, min -lo; d and dmin map the largest scale and min to 15, the 4-bit
     * scales and mins are rounded to nearest, and q = round((x + min) / scale) against the stored
     * values, clamped to 0..3. (ggml searches each sub-block's scale and min.)
     */
    private static void q2_kBlock(float[] x, int from, MemorySegment dst, long at) {
        float[] scales = new float[16];
        float[] mins = new float[16];
        float maxScale = 0;
        float maxMin = 0;
        for (int j = 0; j < 16; j++) {
            span(x, from + 16 * j, 16, 3, scales, mins, j);
            maxScale = Math.max(maxScale, scales[j]);
            maxMin = Math.max(maxMin, mins[j]);
        }
        short dBits = Float.floatToFloat16(maxScale / 15);
        short dminBits = Float.floatToFloat16(maxMin / 15);
        float d = Float.float16ToFloat(dBits);
        float dmin = Float.float16ToFloat(dminBits);
        byte[] qs = new byte[64];
        for (int j = 0; j < 16; j++) {
            int sc = d > 0 ? Math.min(15, Math.round(scales[j] / d)) : 0;
            int m = dmin > 0 ? Math.min(15, Math.round(mins[j] / dmin)) : 0;
            dst.set(ValueLayout.JAVA_BYTE, at + j, (byte) (sc | m << 4));
            float step = d * sc;
            float offset = dmin * m;
            for (int l = 0; l < 16; l++) {
                int i = 16 * j + l;
                int q = step > 0 ? Math.clamp(Math.round((x[from + i] + offset) / step), 0, 3) : 0;
                qs[32 * (i / 128) + i % 32] |= (byte) (q << 2 * (i % 128 / 32));
            }
        }
        MemorySegment.copy(qs, 0, dst, ValueLayout.JAVA_BYTE, at + 16, 64);
        dst.set(I16, at + 80, dBits);
        dst.set(I16, at + 82, dminBits);
    }

    /**
     * Q3_K (layout in {@link DType}). Sub-block j (16 values) gets the signed scale s = (its value of
     * largest magnitude) / -4, so that value maps to q = -4 and the rest to -4..4 (4 clamped to 3);
     * d maps the largest |s| to 31, each 6-bit scale is rounded to nearest, and q = round(x / (d *
     * (scale - 32))) against the stored values. (ggml searches each sub-block's scale.)
     */
    private static void q3_kBlock(float[] x, int from, MemorySegment dst, long at) {
        float[] scales = new float[16];
        float maxScale = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = largestMagnitude(x, from + 16 * j, 16) / -4;
            maxScale = Math.max(maxScale, Math.abs(scales[j]));
        }
        short dBits = Float.floatToFloat16(maxScale / 31);
        float d = Float.float16ToFloat(dBits);
        byte[] hmask = new byte[32];
        byte[] qs = new byte[64];
        byte[] packed = new byte[12];
        for (int j = 0; j < 16; j++) {
            int sc = d > 0 ? Math.clamp(Math.round(scales[j] / d), -32, 31) + 32 : 32;
            packed[j % 8] |= (byte) ((sc & 0x0F) << 4 * (j / 8));
            packed[8 + j % 4] |= (byte) ((sc >>> 4) << 2 * (j / 4));
            float step = d * (sc - 32);
            for (int l = 0; l < 16; l++) {
                int i = 16 * j + l;
                int u = (step != 0 ? Math.clamp(roundHalfAway(x[from + i] / step), -4, 3) : 0) + 4;
                qs[32 * (i / 128) + i % 32] |= (byte) ((u & 3) << 2 * (i % 128 / 32));
                hmask[i % 32] |= (byte) ((u >>> 2) << (4 * (i / 128) + i % 128 / 32));
            }
        }
        MemorySegment.copy(hmask, 0, dst, ValueLayout.JAVA_BYTE, at, 32);
        MemorySegment.copy(qs, 0, dst, ValueLayout.JAVA_BYTE, at + 32, 64);
        MemorySegment.copy(packed, 0, dst, ValueLayout.JAVA_BYTE, at + 96, 12);
        dst.set(I16, at + 108, dBits);
    }

    /**
     * IQ4_NL (32 values) or IQ4_XS (256 values as 8 sub-blocks of 32). A run of 32 gets the scale
     * (its value of largest magnitude) / -127, which maps that value to the grid's -127; IQ4_XS
     * then stores each run's scale as d * (s - 32) with a 6-bit s, d mapping the largest |scale| to
     * 31. Each value takes the nearest grid value against the stored scale. (ggml searches the
     * scale too, with importance weights.)
     */
    private static void iq4Block(float[] x, int from, MemorySegment dst, long at, boolean superBlock) {
        int runs = superBlock ? 8 : 1;
        float[] scales = new float[runs];
        float maxScale = 0;
        for (int j = 0; j < runs; j++) {
            scales[j] = largestMagnitude(x, from + 32 * j, 32) / -127;
            maxScale = Math.max(maxScale, Math.abs(scales[j]));
        }
        short dBits = Float.floatToFloat16(superBlock ? maxScale / 31 : scales[0]);
        float d = Float.float16ToFloat(dBits);
        dst.set(I16, at, dBits);
        long quants = at + (superBlock ? 8 : 2);
        int scalesHigh = 0;
        byte[] scalesLow = new byte[4];
        for (int j = 0; j < runs; j++) {
            float step = d;
            if (superBlock) {
                int s = d > 0 ? Math.clamp(Math.round(scales[j] / d), -32, 31) + 32 : 32;
                scalesHigh |= (s >>> 4) << 2 * j;
                scalesLow[j / 2] |= (byte) ((s & 0x0F) << 4 * (j % 2));
                step = d * (s - 32);
            }
            for (int l = 0; l < 16; l++) {
                int lo = nearestIq4(x[from + 32 * j + l], step);
                int hi = nearestIq4(x[from + 32 * j + 16 + l], step);
                dst.set(ValueLayout.JAVA_BYTE, quants + 16L * j + l, (byte) (lo | hi << 4));
            }
        }
        if (superBlock) {
            dst.set(I16, at + 2, (short) scalesHigh);
            MemorySegment.copy(scalesLow, 0, dst, ValueLayout.JAVA_BYTE, at + 4, 4);
        }
    }

    /** The nibble whose grid value times {@code step} is nearest to {@code v} (the lowest on a tie). */
    private static int nearestIq4(float v, float step) {
        int best = 0;
        float bestError = Float.MAX_VALUE;
        for (int n = 0; n < 16; n++) {
            float error = Math.abs(v - step * DType.iq4Value(n));
            if (error < bestError) {
                best = n;
                bestError = error;
            }
        }
        return best;
    }

    /**
     * The K-quants' sub-block span: {@code x[from .. from + n)} lies in [lo, hi] with lo = min(0,
     * smallest value) and hi its largest value; stores the scale (hi - lo) / levels in
     * {@code scales[j]} and the min -lo in {@code mins[j]}.
     */
    private static void span(float[] x, int from, int n, int levels, float[] scales, float[] mins, int j) {
        float lo = 0;
        float hi = checkFinite(x[from]);
        for (int l = 0; l < n; l++) {
            float v = checkFinite(x[from + l]);
            lo = Math.min(lo, v);
            hi = Math.max(hi, v);
        }
        scales[j] = (hi - lo) / levels;
        mins[j] = -lo;
    }

    /**
     * The first of {@code x[from .. from + n)} of the largest magnitude, with its sign (ggml's
     * {@code if (amax < fabsf(v)) { amax = fabsf(v); max = v; }}); 0 for all zeros.
     */
    private static float largestMagnitude(float[] x, int from, int n) {
        float amax = 0;
        float max = 0;
        for (int j = 0; j < n; j++) {
            float v = checkFinite(x[from + j]);
            if (amax < Math.abs(v)) {
                amax = Math.abs(v);
                max = v;
            }
        }
        return max;
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
