package dev.peregrine.tensor;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;

/**
 * Reference dequantisation: turns stored values of any {@link DType} into floats, exactly as
 * ggml's {@code dequantize_row_*} functions define them. Straightforward code meant to be obviously
 * right; fast kernels live in the backends and are tested against it.
 */
public final class Dequant {
    private static final ValueLayout.OfShort I16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfInt I32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfFloat F32 = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);

    private Dequant() {
    }

    /**
     * Dequantises {@code count} values starting at value index {@code first} of {@code data}
     * (stored as {@code type}) into {@code dst[dstOffset ..]}. For quantised types {@code first}
     * and {@code count} may fall anywhere: whole blocks are decoded and the wanted part kept.
     */
    public static void toFloat(DType type, MemorySegment data, long first, float[] dst, int dstOffset, int count) {
        switch (type) {
            case F32 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = data.get(F32, (first + i) * 4);
                }
            }
            case F16 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = Float.float16ToFloat(data.get(I16, (first + i) * 2));
                }
            }
            case BF16 -> {
                for (int i = 0; i < count; i++) {
                    dst[dstOffset + i] = bf16ToFloat(data.get(I16, (first + i) * 2));
                }
            }
            default -> {
                int bs = type.blockSize();
                if (first % bs == 0 && count % bs == 0) {
                    // Whole blocks (every row of a ggml-readable tensor): decode straight into dst.
                    for (int b = 0; b < count / bs; b++) {
                        decodeBlock(type, data, (first / bs + b) * type.blockBytes(), dst, dstOffset + b * bs);
                    }
                    return;
                }
                float[] block = new float[bs];
                long i = first;
                long end = first + count;
                while (i < end) {
                    long blockIndex = i / bs;
                    decodeBlock(type, data, blockIndex * type.blockBytes(), block, 0);
                    int from = (int) (i - blockIndex * bs);
                    int n = (int) Math.min(bs - from, end - i);
                    System.arraycopy(block, from, dst, dstOffset + (int) (i - first), n);
                    i += n;
                }
            }
        }
    }

    /** Decodes the quantised block that starts at byte {@code offset} into {@code out[at..at+blockSize)}. */
    public static void decodeBlock(DType type, MemorySegment data, long offset, float[] out, int at) {
        switch (type) {
            case Q8_0 -> {
                float d = Float.float16ToFloat(data.get(I16, offset));
                for (int j = 0; j < 32; j++) {
                    out[at + j] = d * data.get(ValueLayout.JAVA_BYTE, offset + 2 + j);
                }
            }
            case Q4_0 -> {
                float d = Float.float16ToFloat(data.get(I16, offset));
                for (int j = 0; j < 16; j++) {
                    int b = data.get(ValueLayout.JAVA_BYTE, offset + 2 + j) & 0xFF;
                    out[at + j] = d * ((b & 0x0F) - 8);
                    out[at + j + 16] = d * ((b >>> 4) - 8);
                }
            }
            case Q4_1, Q5_0, Q5_1 -> {
                // Q4_0's nibbles, with a fifth bit from the word qh (Q5_0, Q5_1) and a stored
                // minimum (Q4_1, Q5_1) in place of Q5_0's fixed -16.
                float d = Float.float16ToFloat(data.get(I16, offset));
                boolean withMin = type != DType.Q5_0;
                boolean fiveBits = type != DType.Q4_1;
                long quants = offset + 2 + (withMin ? 2 : 0) + (fiveBits ? 4 : 0);
                int qh = fiveBits ? data.get(I32, quants - 4) : 0;
                for (int j = 0; j < 16; j++) {
                    int b = data.get(ValueLayout.JAVA_BYTE, quants + j) & 0xFF;
                    int low = (b & 0x0F) | ((qh >>> j) & 1) << 4;
                    int high = (b >>> 4) | ((qh >>> (j + 16)) & 1) << 4;
                    if (withMin) {
                        // ggml's q * d + m, as one FMA (what its C compiles to where FMA exists).
                        float m = Float.float16ToFloat(data.get(I16, offset + 2));
                        out[at + j] = Math.fma(low, d, m);
                        out[at + j + 16] = Math.fma(high, d, m);
                    } else {
                        out[at + j] = d * (low - 16);
                        out[at + j + 16] = d * (high - 16);
                    }
                }
            }
            case Q4_K, Q5_K -> {
                float d = Float.float16ToFloat(data.get(I16, offset));
                float dmin = Float.float16ToFloat(data.get(I16, offset + 2));
                long scales = offset + 4;
                // Q5_K: 32 bytes of fifth bits (bit j of byte l for sub-block j) before the nibbles.
                boolean fiveBits = type == DType.Q5_K;
                long highBits = offset + 16;
                long quants = offset + (fiveBits ? 48 : 16);
                for (int j = 0; j < 8; j++) {
                    float scale = d * q4kScale(data, scales, j);
                    float min = dmin * q4kMin(data, scales, j);
                    // Sub-blocks 2r and 2r+1 share the 32 bytes of run r: low nibbles, then high.
                    long run = quants + 32L * (j / 2);
                    int shift = 4 * (j % 2);
                    for (int l = 0; l < 32; l++) {
                        int q = (data.get(ValueLayout.JAVA_BYTE, run + l) >>> shift) & 0x0F;
                        if (fiveBits) {
                            q |= (u8(data, highBits + l) >>> j & 1) << 4;
                        }
                        out[at + 32 * j + l] = scale * q - min;
                    }
                }
            }
            case Q6_K -> {
                long ql = offset;
                long qh = offset + 128;
                long scales = offset + 192;
                float d = Float.float16ToFloat(data.get(I16, offset + 208));
                for (int i = 0; i < 256; i++) {
                    int h = i / 128;      // which half: its own 64 bytes of ql and 32 of qh
                    int k = i % 128 / 32; // which run of 32 within the half
                    int l = i % 32;
                    int low = data.get(ValueLayout.JAVA_BYTE, ql + 64 * h + l + 32 * (k % 2)) & 0xFF;
                    int high = data.get(ValueLayout.JAVA_BYTE, qh + 32 * h + l) & 0xFF;
                    int q = ((k < 2 ? low : low >>> 4) & 0x0F) | ((high >>> (2 * k)) & 3) << 4;
                    int scale = data.get(ValueLayout.JAVA_BYTE, scales + i / 16);
                    out[at + i] = d * scale * (q - 32);
                }
            }
            case Q2_K -> {
                float d = Float.float16ToFloat(data.get(I16, offset + 80));
                float dmin = Float.float16ToFloat(data.get(I16, offset + 82));
                for (int i = 0; i < 256; i++) {
                    int sc = u8(data, offset + i / 16);
                    float scale = d * (sc & 0x0F);
                    float min = dmin * (sc >>> 4);
                    out[at + i] = scale * lowBits(data, offset + 16, i) - min;
                }
            }
            case Q3_K -> {
                float d = Float.float16ToFloat(data.get(I16, offset + 108));
                for (int i = 0; i < 256; i++) {
                    int h = i / 128;
                    int k = i % 128 / 32;
                    boolean third = (u8(data, offset + i % 32) >>> (4 * h + k) & 1) != 0;
                    int q = lowBits(data, offset + 32, i) - (third ? 0 : 4);
                    out[at + i] = d * (q3kScale(data, offset + 96, i / 16) - 32) * q;
                }
            }
            case IQ4_NL -> {
                float d = Float.float16ToFloat(data.get(I16, offset));
                for (int j = 0; j < 16; j++) {
                    int b = u8(data, offset + 2 + j);
                    out[at + j] = d * DType.iq4Value(b & 0x0F);
                    out[at + j + 16] = d * DType.iq4Value(b >>> 4);
                }
            }
            case IQ4_XS -> {
                float d = Float.float16ToFloat(data.get(I16, offset));
                int scalesHigh = data.get(I16, offset + 2) & 0xFFFF;
                for (int j = 0; j < 8; j++) {
                    int s = (u8(data, offset + 4 + j / 2) >>> 4 * (j % 2) & 0x0F) | (scalesHigh >>> 2 * j & 3) << 4;
                    float scale = d * (s - 32);
                    for (int l = 0; l < 16; l++) {
                        int b = u8(data, offset + 8 + 16 * j + l);
                        out[at + 32 * j + l] = scale * DType.iq4Value(b & 0x0F);
                        out[at + 32 * j + 16 + l] = scale * DType.iq4Value(b >>> 4);
                    }
                }
            }
            default -> throw new IllegalArgumentException(type + " is not a block-quantised type");
        }
    }

    /** Q2_K and Q3_K: the 2 low bits of value {@code i} (0..255) from the 64 bytes at {@code at}. */
    private static int lowBits(MemorySegment data, long at, int i) {
        return u8(data, at + 32 * (i / 128) + i % 32) >>> 2 * (i % 128 / 32) & 3;
    }

    /** Q3_K: the 6-bit scale of sub-block {@code j} (0..15) from the 12 packed bytes at {@code at}. */
    public static int q3kScale(MemorySegment data, long at, int j) {
        int low = u8(data, at + j % 8) >>> 4 * (j / 8) & 0x0F;
        int high = u8(data, at + 8 + j % 4) >>> 2 * (j / 4) & 3;
        return low | high << 4;
    }

    /** Q4_K and Q5_K: the 6-bit scale of sub-block {@code j} (0..7) from the 12 packed bytes at {@code at}. */
    public static int q4kScale(MemorySegment data, long at, int j) {
        if (j < 4) {
            return u8(data, at + j) & 63;
        }
        return (u8(data, at + j + 4) & 0x0F) | (u8(data, at + j - 4) >>> 6) << 4;
    }

    /** Q4_K and Q5_K: the 6-bit min of sub-block {@code j} (0..7) from the 12 packed bytes at {@code at}. */
    public static int q4kMin(MemorySegment data, long at, int j) {
        if (j < 4) {
            return u8(data, at + j + 4) & 63;
        }
        return (u8(data, at + j + 4) >>> 4) | (u8(data, at + j) >>> 6) << 4;
    }

    private static int u8(MemorySegment data, long at) {
        return data.get(ValueLayout.JAVA_BYTE, at) & 0xFF;
    }

    /** A whole tensor as floats (for tests and small tensors). */
    public static float[] toFloat(Tensor t) {
        long n = t.elementCount();
        if (n > Integer.MAX_VALUE - 8) {
            throw new IllegalArgumentException(t + " is too large to dequantise into one array");
        }
        float[] out = new float[(int) n];
        toFloat(t.type(), t.data(), 0, out, 0, (int) n);
        return out;
    }

    public static float bf16ToFloat(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }
}
