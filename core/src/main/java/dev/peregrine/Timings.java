package dev.peregrine;

/**
 * Where a generation's time went.
 *
 * @param loadNanos       time {@link Model#load} took for the model that generated
 * @param promptTokens    prompt tokens evaluated (tokens already in a session's cache are not counted)
 * @param promptNanos     time spent evaluating them
 * @param generatedTokens tokens generated
 * @param generationNanos time spent generating them (sampling included)
 */
public record Timings(long loadNanos, int promptTokens, long promptNanos, int generatedTokens, long generationNanos) {

    public double loadMillis() {
        return loadNanos / 1e6;
    }

    public double promptMillis() {
        return promptNanos / 1e6;
    }

    public double generationMillis() {
        return generationNanos / 1e6;
    }

    /** Prompt tokens per second, or 0 when there was no prompt work. */
    public double promptTokensPerSecond() {
        return promptNanos == 0 ? 0 : promptTokens * 1e9 / promptNanos;
    }

    /** Generated tokens per second, or 0 when nothing was generated. */
    public double generationTokensPerSecond() {
        return generationNanos == 0 ? 0 : generatedTokens * 1e9 / generationNanos;
    }
}
