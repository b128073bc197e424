package dev.peregrine.tensor;

import java.util.Optional;

/**
 * Element types of weight tensors, with their ggml type ids and block layouts.
 *
 * <p>Quantised types store values in fixed-size blocks; a block of {@link #blockSize()} values
 * occupies {@link #blockBytes()} bytes. Layouts, as ggml defines them (little-endian):
 * <ul>
 *   <li>F32: one IEEE float per value.</li>
 *   <li>F16: one IEEE half per value.</li>
 *   <li>BF16: the upper 16 bits of an IEEE float per value.</li>
 *   <li>Q8_0: 32 values = f16 scale {@code d}, then 32 signed bytes {@code q}; value = d * q.</li>
 *   <li>Q4_0: 32 values = f16 scale {@code d}, then 16 bytes; byte j holds value j in its low
 *       nibble and value j+16 in its high nibble; value = d * (nibble - 8).</li>
 *   <li>Q4_1: 32 values = f16 scale {@code d}, f16 minimum {@code m}, then 16 bytes of nibbles
 *       laid out as Q4_0's; value = nibble * d + m.</li>
 *   <li>Q5_0: 32 values = f16 scale {@code d}, a little-endian 32-bit word {@code qh} of high
 *       bits, then 16 bytes of nibbles laid out as Q4_0's; value j's fifth bit is bit j of
 *       {@code qh}; value = d * (q - 16).</li>
 *   <li>Q5_1: 32 values = f16 {@code d}, f16 {@code m}, {@code qh}, 16 bytes of nibbles: Q5_0's
 *       5-bit values with Q4_1's formula, q * d + m.</li>
 *   <li>IQ4_NL: 32 values = f16 {@code d}, then 16 bytes of nibbles laid out as Q4_0's; value =
 *       d * {@link #iq4Value}(nibble) (a non-uniform 4-bit grid).</li>
 *   <li>Q2_K: 256 values in 16 sub-blocks of 16, 84 bytes = 16 bytes of sub-block scales (low
 *       nibble) and mins (high nibble), 64 bytes {@code qs}, f16 {@code d}, f16 {@code dmin}; value i
 *       has 2 bits q at bit 2k of qs[32h + l] (h = i / 128, k = i % 128 / 32, l = i % 32) and is
 *       (d * scale) * q - dmin * min of sub-block i / 16.</li>
 *   <li>Q3_K: 256 values in 16 sub-blocks of 16, 110 bytes = 32 bytes {@code hmask}, 64 bytes
 *       {@code qs}, 12 bytes of 6-bit scales, f16 {@code d}; value i takes 2 bits from qs as Q2_K
 *       does and a third from bit 4h + k of hmask[l]: q = bits - (that bit ? 0 : 4), value =
 *       (d * (s - 32)) * q with s the 6-bit scale of sub-block i / 16 (its low 4 bits from the low
 *       or high nibble of bytes 0-7, its high 2 bits from bytes 8-11).</li>
 *   <li>IQ4_XS: 256 values in 8 sub-blocks of 32, 136 bytes = f16 {@code d}, a 16-bit word of the
 *       scales' high 2 bits, 4 bytes of the scales' low nibbles, 128 bytes of nibbles (16 a
 *       sub-block, laid out as Q4_0's); value = (d * (s - 32)) * {@link #iq4Value}(nibble).</li>
 *   <li>Q4_K: 256 values in 8 sub-blocks of 32, 144 bytes = f16 {@code d}, f16 {@code dmin}, 12
 *       bytes of 6-bit sub-block scales {@code sc[j]} and mins {@code m[j]}, 128 bytes of
 *       nibbles; nibble q of sub-block j stands for d * sc[j] * q - dmin * m[j]. The 12 bytes:
 *       0-3 hold sc[0..3] in their low 6 bits, 4-7 m[0..3]; 8-11 hold the low 4 bits of sc[4..7]
 *       (low nibble) and of m[4..7] (high nibble), whose top 2 bits are the top 2 bits of bytes
 *       0-3 (sc) and 4-7 (m). The nibbles: 4 runs of 32 bytes, run r holding sub-block 2r in its
 *       low nibbles and sub-block 2r+1 in its high nibbles.</li>
 *   <li>Q5_K: 256 values, 176 bytes = Q4_K's {@code d}, {@code dmin} and 12 scale bytes, then
 *       32 bytes {@code qh}, then Q4_K's 128 bytes of nibbles; the value of sub-block j at
 *       position l has as fifth bit bit j of {@code qh[l]}; value = d * sc[j] * q - dmin * m[j].</li>
 *   <li>Q6_K: 256 values in 16 sub-blocks of 16, 210 bytes = 128 bytes {@code ql} (low 4 bits),
 *       64 bytes {@code qh} (high 2 bits), 16 signed bytes {@code sc}, f16 {@code d}; value i
 *       (0..255) with 6-bit q is d * sc[i / 16] * (q - 32). Each half of 128 values (h = i / 128)
 *       has its own ql[64h ..] and qh[32h ..]; in it, value 32k + l (k = 0..3, l = 0..31) takes
 *       its low bits from the low (k &lt; 2) or high (k &gt;= 2) nibble of ql[64h + l + 32 (k % 2)]
 *       and its high bits from bits 2k, 2k+1 of qh[32h + l].</li>
 * </ul>
 */
public enum DType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 18),
    Q4_1(3, 32, 20),
    Q5_0(6, 32, 22),
    Q5_1(7, 32, 24),
    Q8_0(8, 32, 34),
    Q2_K(10, 256, 84),
    Q3_K(11, 256, 110),
    Q4_K(12, 256, 144),
    Q5_K(13, 256, 176),
    Q6_K(14, 256, 210),
    IQ4_NL(20, 32, 18),
    IQ4_XS(23, 256, 136),
    BF16(30, 1, 2);

    private final int ggmlId;
    private final int blockSize;
    private final int blockBytes;

    DType(int ggmlId, int blockSize, int blockBytes) {
        this.ggmlId = ggmlId;
        this.blockSize = blockSize;
        this.blockBytes = blockBytes;
    }

    /** The type id ggml and GGUF files use for this type. */
    public int ggmlId() {
        return ggmlId;
    }

    /** Number of values in one block (1 for plain float types). */
    public int blockSize() {
        return blockSize;
    }

    /** Bytes one block occupies. */
    public int blockBytes() {
        return blockBytes;
    }

    public boolean isQuantized() {
        return blockSize > 1;
    }

    private static final int[] IQ4_VALUES = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

    /** The value an IQ4_NL or IQ4_XS nibble stands for before the scale (ggml's kvalues_iq4nl). */
    public static int iq4Value(int nibble) {
        return IQ4_VALUES[nibble];
    }

    /**
     * Whether blocks are 256-value super-blocks with sub-block scales (the K-quants and IQ4_XS). ggml
     * has always required their rows to be whole blocks, so unlike Q8_0 and Q4_0 no file stores them
     * with blocks that run across rows, and readers may refuse such a tensor.
     */
    public boolean hasSuperBlocks() {
        return blockSize == 256;
    }

    /** Bytes needed for {@code elements} values; the count must be a whole number of blocks. */
    public long bytesFor(long elements) {
        if (elements % blockSize != 0) {
            throw new IllegalArgumentException(
                    this + " stores values in blocks of " + blockSize + "; " + elements + " is not a multiple");
        }
        return Math.multiplyExact(elements / blockSize, (long) blockBytes);
    }

    public static Optional<DType> fromGgmlId(int id) {
        for (DType t : values()) {
            if (t.ggmlId == id) {
                return Optional.of(t);
            }
        }
        return Optional.empty();
    }

    /** ggml's name for a type id, including types Peregrine does not load, for error messages. */
    public static String ggmlName(int id) {
        return switch (id) {
            case 0 -> "F32";
            case 1 -> "F16";
            case 2 -> "Q4_0";
            case 3 -> "Q4_1";
            case 6 -> "Q5_0";
            case 7 -> "Q5_1";
            case 8 -> "Q8_0";
            case 9 -> "Q8_1";
            case 10 -> "Q2_K";
            case 11 -> "Q3_K";
            case 12 -> "Q4_K";
            case 13 -> "Q5_K";
            case 14 -> "Q6_K";
            case 15 -> "Q8_K";
            case 16 -> "IQ2_XXS";
            case 17 -> "IQ2_XS";
            case 18 -> "IQ3_XXS";
            case 19 -> "IQ1_S";
            case 20 -> "IQ4_NL";
            case 21 -> "IQ3_S";
            case 22 -> "IQ2_S";
            case 23 -> "IQ4_XS";
            case 24 -> "I8";
            case 25 -> "I16";
            case 26 -> "I32";
            case 27 -> "I64";
            case 28 -> "F64";
            case 29 -> "IQ1_M";
            case 30 -> "BF16";
            case 34 -> "TQ1_0";
            case 35 -> "TQ2_0";
            case 39 -> "MXFP4";
            default -> "type " + id;
        };
    }
}
