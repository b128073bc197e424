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
 * </ul>
 */
public enum DType {
    F32(0, 1, 4),
    F16(1, 1, 2),
    Q4_0(2, 32, 18),
    Q8_0(8, 32, 34),
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
            case 24 -> "I8";
            case 25 -> "I16";
            case 26 -> "I32";
            case 27 -> "I64";
            case 28 -> "F64";
            case 30 -> "BF16";
            default -> "type " + id;
        };
    }
}
