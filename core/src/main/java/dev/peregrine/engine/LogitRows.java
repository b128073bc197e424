package dev.peregrine.engine;

import dev.peregrine.sampling.Sampler;
import dev.peregrine.spi.Candidates;

/**
 * What a forward step leaves for sampling, one row per position whose logits were wanted: the
 * whole logits rows, or, when every row's sampling can do with them, each row's best candidates
 * as the backend selected them (a few bytes per row instead of the vocabulary). Reused from step
 * to step: the arrays grow rarely, so steady decoding allocates nothing.
 */
final class LogitRows {
    private final int rowLength;
    private final int maxRows;
    private float[] logits;
    private final Candidates candidates = new Candidates();
    private boolean holdsCandidates;

    /**
     * @param rowLength   floats per logits row (the model's vocabulary)
     * @param initialRows rows of logits to allocate now
     * @param maxRows     most rows a step can want (the step's token limit)
     */
    LogitRows(int rowLength, int initialRows, int maxRows) {
        this.rowLength = rowLength;
        this.maxRows = maxRows;
        this.logits = new float[Math.multiplyExact(initialRows, rowLength)];
    }

    /** The array for the next step's {@code rows} whole rows (grown, with room for growing drafts, when too small). */
    float[] fullRows(int rows) {
        if (logits.length < rows * rowLength) {
            // Verification spans want several rows per sequence: grow once, with room for adaptive drafts to grow.
            int grown = Math.min(maxRows, rows + rows / 2);
            logits = new float[Math.multiplyExact(Math.max(rows, grown), rowLength)];
        }
        holdsCandidates = false;
        return logits;
    }

    /** The candidates for the next step's {@code rows} rows, {@code k} per row. */
    Candidates candidateRows(int rows, int k) {
        candidates.reset(rows, k);
        holdsCandidates = true;
        return candidates;
    }

    boolean holdsCandidates() {
        return holdsCandidates;
    }

    /** Draws row {@code row}'s token with {@code sampler}, from the whole row or from its candidates. */
    int sample(Sampler sampler, int row, int[] history, int historyLength) {
        if (holdsCandidates) {
            return sampler.sampleCandidates(candidates.values(), candidates.ids(), candidates.offset(row));
        }
        return sampler.sample(logits, row * rowLength, history, historyLength);
    }

    /** The whole rows, for what needs a full distribution; row r starts at {@link #offset}(r). */
    float[] logits() {
        if (holdsCandidates) {
            throw new IllegalStateException("this step kept only candidates, not whole logits rows");
        }
        return logits;
    }

    int offset(int row) {
        return row * rowLength;
    }
}
