package dev.peregrine.spi;

import java.util.Arrays;

/**
 * The host-side description of one forward step over a ragged batch: which tokens, at which
 * positions, of which sequences, where their keys and values go in the paged KV cache, and which
 * rows' logits are wanted. Arrays are reused from step to step (no allocation per step once they
 * have grown); only the first {@code tokenCount} / {@code sequenceCount} / {@code logitCount}
 * entries are meaningful.
 *
 * <p>Paged KV addressing: the cache holds {@code blocks x blockSize} slots per layer. Sequence
 * {@code s} owns the physical blocks {@code blockTables[blockTableStart[s] ..]}; its position
 * {@code p} lives in slot {@code blockTables[blockTableStart[s] + p / blockSize] * blockSize +
 * p % blockSize}. A token at position {@code p} attends to positions {@code 0..p} of its own
 * sequence, all of which are in the cache once this step's keys and values are stored.
 */
public final class BatchLayout {
    public final int blockSize;

    public int tokenCount;
    public int[] tokens = new int[0];
    public int[] positions = new int[0];
    /** KV-cache slot each token's key and value are written to. */
    public int[] slots = new int[0];
    /** Index of each token's sequence in this batch. */
    public int[] tokenSequence = new int[0];

    public int sequenceCount;
    public int[] blockTableStart = new int[0];
    public int[] blockTables = new int[0];
    public int blockTableLength;

    public int logitCount;
    /** Token rows (indices into this batch) whose logits are computed. */
    public int[] logitRows = new int[0];

    public BatchLayout(int blockSize) {
        if (blockSize <= 0) {
            throw new IllegalArgumentException("blockSize must be > 0");
        }
        this.blockSize = blockSize;
    }

    /** Empties the layout, keeping its arrays. */
    public void clear() {
        tokenCount = 0;
        sequenceCount = 0;
        blockTableLength = 0;
        logitCount = 0;
    }

    /** Starts a sequence whose physical blocks are {@code blocks[0..blockCount)}; returns its index. */
    public int addSequence(int[] blocks, int blockCount) {
        if (sequenceCount == blockTableStart.length) {
            blockTableStart = Arrays.copyOf(blockTableStart, Math.max(4, sequenceCount * 2));
        }
        if (blockTableLength + blockCount > blockTables.length) {
            blockTables = Arrays.copyOf(blockTables, Math.max(blockTableLength + blockCount, blockTables.length * 2));
        }
        System.arraycopy(blocks, 0, blockTables, blockTableLength, blockCount);
        blockTableStart[sequenceCount] = blockTableLength;
        blockTableLength += blockCount;
        return sequenceCount++;
    }

    /** Adds a token of sequence {@code sequence} at {@code position}; returns its row. */
    public int addToken(int sequence, int token, int position, boolean wantLogits) {
        if (tokenCount == tokens.length) {
            int n = Math.max(16, tokenCount * 2);
            tokens = Arrays.copyOf(tokens, n);
            positions = Arrays.copyOf(positions, n);
            slots = Arrays.copyOf(slots, n);
            tokenSequence = Arrays.copyOf(tokenSequence, n);
        }
        int row = tokenCount++;
        tokens[row] = token;
        positions[row] = position;
        tokenSequence[row] = sequence;
        slots[row] = slotOf(sequence, position);
        if (wantLogits) {
            if (logitCount == logitRows.length) {
                logitRows = Arrays.copyOf(logitRows, Math.max(4, logitCount * 2));
            }
            logitRows[logitCount++] = row;
        }
        return row;
    }

    /** The KV slot of {@code position} in sequence {@code sequence}. */
    public int slotOf(int sequence, int position) {
        return blockTables[blockTableStart[sequence] + position / blockSize] * blockSize + position % blockSize;
    }

    /**
     * The KV slots of positions {@code first .. first + count - 1} of sequence {@code sequence},
     * into {@code slots[0 .. count - 1]}: {@link #slotOf} for each, one block-table lookup per
     * block instead of a division per position (attention reads every position's slot per head).
     */
    public void slotsOf(int sequence, int first, int count, int[] slots) {
        int position = first;
        for (int i = 0; i < count; ) {
            int within = position % blockSize;
            int slot = blockTables[blockTableStart[sequence] + position / blockSize] * blockSize + within;
            int run = Math.min(blockSize - within, count - i);
            for (int j = 0; j < run; j++) {
                slots[i + j] = slot + j;
            }
            i += run;
            position += run;
        }
    }
}
