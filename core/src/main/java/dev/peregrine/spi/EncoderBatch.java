package dev.peregrine.spi;

/**
 * A padded batch for an {@link Encoder}: {@code size} sequences of {@code length} positions each,
 * flattened row-major. Padding positions have attention mask 0.
 *
 * @param inputIds      token ids, {@code size * length}
 * @param attentionMask 1 for a real token, 0 for padding, {@code size * length}
 * @param tokenTypeIds  segment ids (0 for single-sentence input), {@code size * length}
 */
public record EncoderBatch(int size, int length, int[] inputIds, int[] attentionMask, int[] tokenTypeIds) {
    public EncoderBatch {
        if (size < 1 || length < 1) {
            throw new IllegalArgumentException("batch size and length must be >= 1, got " + size + " x " + length);
        }
        int n = Math.multiplyExact(size, length);
        if (inputIds.length != n || attentionMask.length != n || tokenTypeIds.length != n) {
            throw new IllegalArgumentException("a " + size + " x " + length + " batch needs arrays of " + n
                    + " elements, got " + inputIds.length + ", " + attentionMask.length + ", " + tokenTypeIds.length);
        }
    }
}
