package dev.peregrine.spi;

/**
 * The best {@link #k()} tokens of each of a step's logit rows, ranked, as
 * {@link Backend#selectCandidates} leaves them on the host: entry (row, rank) is at index
 * {@code row * k() + rank} of {@link #values()} (the logit) and {@link #ids()} (the token id). The
 * arrays grow when a step needs more rows or a larger k than any before it and are reused
 * otherwise, so a steady decode loop allocates nothing. Not thread-safe.
 */
public final class Candidates {
    private int rows;
    private int k;
    private float[] values = new float[0];
    private int[] ids = new int[0];
    /** {@link Backend#selectCandidates}'s default implementation reads one whole logits row here. */
    private float[] hostRow = new float[0];

    /**
     * Makes room for {@code rows} rows of {@code k} candidates each (the entries' contents are
     * undefined until a backend fills them).
     *
     * @throws IllegalArgumentException unless {@code rows >= 0} and {@code 1 <= k <= Backend.MAX_CANDIDATES}
     */
    public void reset(int rows, int k) {
        if (rows < 0 || k < 1 || k > Backend.MAX_CANDIDATES) {
            throw new IllegalArgumentException("candidates need rows >= 0 and 1 <= k <= " + Backend.MAX_CANDIDATES
                    + ", got " + rows + " rows of " + k);
        }
        int entries = Math.multiplyExact(rows, k);
        if (values.length < entries) {
            values = new float[entries];
            ids = new int[entries];
        }
        this.rows = rows;
        this.k = k;
    }

    public int rows() {
        return rows;
    }

    /** Candidates per row. */
    public int k() {
        return k;
    }

    /** Index of row {@code row}'s best candidate in {@link #values()} and {@link #ids()}. */
    public int offset(int row) {
        return row * k;
    }

    /** The candidates' logits, {@code [rows][k]} row-major; may be longer. */
    public float[] values() {
        return values;
    }

    /** The candidates' token ids, {@code [rows][k]} row-major; may be longer. */
    public int[] ids() {
        return ids;
    }

    /** A host array of at least {@code floats} floats, for a backend that reads rows to select on the host. */
    float[] hostRow(int floats) {
        if (hostRow.length < floats) {
            hostRow = new float[floats];
        }
        return hostRow;
    }
}
