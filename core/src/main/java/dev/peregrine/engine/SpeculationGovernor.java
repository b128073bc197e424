package dev.peregrine.engine;

/**
 * Whether one request's speculation pays, judged by what it costs: the wall time of its decoding
 * steps (drafting included) per token they commit, over a window of speculative steps against a
 * window of plain ones. While speculation is the slower, the request decodes plainly and tries
 * again later, after a wait that doubles each time speculation loses again; while it wins, plain
 * decoding is timed again now and then, since both the acceptance and the cost of a step change
 * as the text goes on. Pure bookkeeping: the {@link Scheduler} times the steps and asks
 * {@link #speculate()} before drafting.
 *
 * <p>Speculation is judged on its last {@link #HISTORY} windows together (their time over their
 * tokens), not on the last alone: how many drafts a verification accepts swings from step to step
 * with the text, and one window in which the drafts failed (a synthetic 1B F16 target with its own
 * Q4_0 weights as draft: windows at 33, 49 and 69 ms a token against plain decoding's 54) made the
 * request decode plainly to its end although speculation was 1.2x faster overall.
 *
 * <p>The first speculative step of the request and the first after each wait are left out of the
 * timing: there a draft model catches up with every token it has not seen (the prompt, the
 * wait's tokens), a cost of starting, not of speculating. That cost is why a draft model that
 * has lost twice in a row is not tried again for the request ({@code costlyRestarts}); a drafter
 * that works from the text itself (prompt lookup) restarts for nothing and keeps being retried.
 */
final class SpeculationGovernor {
    /** Timed steps per measurement window. */
    static final int WINDOW = 4;
    /** Speculative windows judged together. */
    static final int HISTORY = 3;
    /** Plain steps before speculation is tried again after it first loses; doubles up to {@link #MAX_WAIT}. */
    static final int FIRST_WAIT = 64;
    static final int MAX_WAIT = 1024;
    /** Winning speculative windows between two timings of plain decoding. */
    static final int RECHECK_AFTER = 16;
    /** Speculation must take under this share of plain decoding's time per token to be kept. */
    static final double MARGIN = 0.95;
    /** Losses in a row after which speculation with costly restarts stops for good. */
    static final int COSTLY_LOSSES = 2;

    private enum Phase { SPECULATE, TIME_PLAIN, WAIT, OFF }

    private final boolean costlyRestarts;
    private Phase phase = Phase.SPECULATE;
    private boolean starting = true; // the next speculative step restarts drafting: not timed
    private int steps;
    private long nanos;
    private long tokens;
    private double speculativeNanosPerToken = Double.NaN;
    /** The last speculative windows' time and tokens (a ring; {@code windows} of them filled). */
    private final long[] windowNanos = new long[HISTORY];
    private final long[] windowTokens = new long[HISTORY];
    private int windows;
    private double plainNanosPerToken = Double.NaN;
    private int wins;
    private int losses;                 // in a row
    private int wait;                   // plain steps of the current wait
    private int nextWait = FIRST_WAIT;  // of the next one, should speculation lose again
    private long plainSteps;

    /** @param costlyRestarts whether restarting drafting costs work (a draft model catching up) */
    SpeculationGovernor(boolean costlyRestarts) {
        this.costlyRestarts = costlyRestarts;
    }

    /** Whether the request drafts this step. */
    boolean speculate() {
        return phase == Phase.SPECULATE;
    }

    /** Decoding steps taken without drafting because speculation was the slower. */
    long plainSteps() {
        return plainSteps;
    }

    /**
     * One decoding step of the request: {@code stepNanos} of wall time (its drafting included),
     * {@code committed} tokens made (1 for a plain step, the accepted drafts plus one after a
     * verification), {@code speculated} whether it drafted. Returns whether it was a plain step
     * the governor chose.
     */
    boolean record(long stepNanos, int committed, boolean speculated) {
        if (speculated != speculate()) {
            return false; // it could not draft this step (no proposal, no room): a sample of neither
        }
        if (!speculated) {
            plainSteps++;
            if (phase == Phase.OFF) {
                return true;
            }
        } else if (starting) {
            starting = false;
            return false;
        }
        steps++;
        nanos += stepNanos;
        tokens += committed;
        if (steps < (phase == Phase.WAIT ? wait : WINDOW)) {
            return !speculated;
        }
        double perToken = (double) nanos / tokens;
        long windowNanosTaken = nanos;
        long windowTokensMade = tokens;
        steps = 0;
        nanos = 0;
        tokens = 0;
        switch (phase) {
            case SPECULATE -> {
                speculativeNanosPerToken = recentSpeculation(windowNanosTaken, windowTokensMade);
                if (Double.isNaN(plainNanosPerToken)) {
                    phase = Phase.TIME_PLAIN;
                } else if (!pays()) {
                    lose();
                } else {
                    win();
                    if (++wins >= RECHECK_AFTER) {
                        wins = 0;
                        phase = Phase.TIME_PLAIN;
                    }
                }
            }
            case TIME_PLAIN -> {
                plainNanosPerToken = perToken;
                if (pays()) {
                    win();
                    phase = Phase.SPECULATE;
                } else {
                    lose();
                }
            }
            case WAIT -> {
                plainNanosPerToken = perToken; // the whole wait was plain decoding: a fresh timing
                phase = Phase.SPECULATE;
                starting = true;
            }
            case OFF -> throw new IllegalStateException("no windows while off");
        }
        return !speculated;
    }

    /** Adds a speculative window to the last ones; returns their time per token together. */
    private double recentSpeculation(long windowNanosTaken, long windowTokensMade) {
        windowNanos[windows % HISTORY] = windowNanosTaken;
        windowTokens[windows % HISTORY] = windowTokensMade;
        windows++;
        long totalNanos = 0;
        long totalTokens = 0;
        for (int i = 0; i < Math.min(windows, HISTORY); i++) {
            totalNanos += windowNanos[i];
            totalTokens += windowTokens[i];
        }
        return (double) totalNanos / totalTokens;
    }

    private boolean pays() {
        return speculativeNanosPerToken < MARGIN * plainNanosPerToken;
    }

    private void win() {
        losses = 0;
        nextWait = FIRST_WAIT;
    }

    private void lose() {
        wins = 0;
        windows = 0; // a fresh start after the wait
        if (costlyRestarts && ++losses >= COSTLY_LOSSES) {
            phase = Phase.OFF;
            return;
        }
        phase = Phase.WAIT;
        wait = nextWait;
        nextWait = Math.min(MAX_WAIT, nextWait * 2);
    }

    @Override
    public String toString() {
        return "SpeculationGovernor[" + phase + ", speculative " + speculativeNanosPerToken + " ns/token, plain "
                + plainNanosPerToken + " ns/token]";
    }
}
