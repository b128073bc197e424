package dev.peregrine;

import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * How to generate: sampling parameters, stop conditions and limits. Immutable; every
 * {@code withX} method returns a copy.
 *
 * <pre>{@code
 * GenerationConfig.greedy().maxTokens(64)
 * GenerationConfig.defaults().temperature(0.7f).topP(0.9f).seed(42)
 * }</pre>
 *
 * <p>Sampling applies, in this order: repetition penalty over the last
 * {@link #repetitionLastN()} tokens, temperature, top-k, top-p, min-p, then a draw with the
 * request's random generator. Temperature 0 means greedy (argmax) whatever the other settings.
 */
public final class GenerationConfig {
    private final int maxTokens;
    private final float temperature;
    private final int topK;
    private final float topP;
    private final float minP;
    private final float repetitionPenalty;
    private final int repetitionLastN;
    private final long seed;
    private final boolean seeded;
    private final List<String> stopStrings;
    private final int[] stopTokens;
    private final boolean ignoreEos;

    private GenerationConfig(int maxTokens, float temperature, int topK, float topP, float minP,
                             float repetitionPenalty, int repetitionLastN, long seed, boolean seeded,
                             List<String> stopStrings, int[] stopTokens, boolean ignoreEos) {
        if (maxTokens < 0) {
            throw new IllegalArgumentException("maxTokens must be >= 0, got " + maxTokens);
        }
        if (!(temperature >= 0) || Float.isInfinite(temperature)) {
            throw new IllegalArgumentException("temperature must be a finite number >= 0, got " + temperature);
        }
        if (topK < 0) {
            throw new IllegalArgumentException("topK must be >= 0 (0 = off), got " + topK);
        }
        if (!(topP > 0 && topP <= 1)) {
            throw new IllegalArgumentException("topP must be in (0, 1] (1 = off), got " + topP);
        }
        if (!(minP >= 0 && minP < 1)) {
            throw new IllegalArgumentException("minP must be in [0, 1) (0 = off), got " + minP);
        }
        if (!(repetitionPenalty > 0) || Float.isInfinite(repetitionPenalty)) {
            throw new IllegalArgumentException("repetitionPenalty must be > 0 (1 = off), got " + repetitionPenalty);
        }
        if (repetitionLastN < 0) {
            throw new IllegalArgumentException("repetitionLastN must be >= 0, got " + repetitionLastN);
        }
        for (String s : stopStrings) {
            if (s.isEmpty()) {
                throw new IllegalArgumentException("stop strings must not be empty");
            }
        }
        this.maxTokens = maxTokens;
        this.temperature = temperature;
        this.topK = topK;
        this.topP = topP;
        this.minP = minP;
        this.repetitionPenalty = repetitionPenalty;
        this.repetitionLastN = repetitionLastN;
        this.seed = seed;
        this.seeded = seeded;
        this.stopStrings = List.copyOf(stopStrings);
        this.stopTokens = stopTokens.clone();
        this.ignoreEos = ignoreEos;
    }

    /** Sampling at temperature 0.8, top-k 40, top-p 0.95, min-p 0.05 (llama.cpp's defaults), 256 tokens. */
    public static GenerationConfig defaults() {
        return new GenerationConfig(256, 0.8f, 40, 0.95f, 0.05f, 1.0f, 64, 0, false, List.of(), new int[0], false);
    }

    /** Greedy decoding (always the most likely token), 256 tokens. */
    public static GenerationConfig greedy() {
        return defaults().temperature(0);
    }

    private GenerationConfig copy(int maxTokens, float temperature, int topK, float topP, float minP,
                                  float repetitionPenalty, int repetitionLastN, long seed, boolean seeded,
                                  List<String> stopStrings, int[] stopTokens, boolean ignoreEos) {
        return new GenerationConfig(maxTokens, temperature, topK, topP, minP, repetitionPenalty,
                repetitionLastN, seed, seeded, stopStrings, stopTokens, ignoreEos);
    }

    /** The most tokens to generate. */
    public GenerationConfig maxTokens(int n) {
        return copy(n, temperature, topK, topP, minP, repetitionPenalty, repetitionLastN, seed, seeded, stopStrings, stopTokens, ignoreEos);
    }

    /** Softmax temperature; 0 = greedy. */
    public GenerationConfig temperature(float t) {
        return copy(maxTokens, t, topK, topP, minP, repetitionPenalty, repetitionLastN, seed, seeded, stopStrings, stopTokens, ignoreEos);
    }

    /** Keep only the k most likely tokens; 0 = off. */
    public GenerationConfig topK(int k) {
        return copy(maxTokens, temperature, k, topP, minP, repetitionPenalty, repetitionLastN, seed, seeded, stopStrings, stopTokens, ignoreEos);
    }

    /** Keep the smallest set of most likely tokens whose probability reaches p; 1 = off. */
    public GenerationConfig topP(float p) {
        return copy(maxTokens, temperature, topK, p, minP, repetitionPenalty, repetitionLastN, seed, seeded, stopStrings, stopTokens, ignoreEos);
    }

    /** Drop tokens whose probability is below p times the most likely one's; 0 = off. */
    public GenerationConfig minP(float p) {
        return copy(maxTokens, temperature, topK, topP, p, repetitionPenalty, repetitionLastN, seed, seeded, stopStrings, stopTokens, ignoreEos);
    }

    /** Penalise tokens seen in the last {@code lastN} tokens (CTRL-style: divide positive logits, multiply negative ones); 1 = off. */
    public GenerationConfig repetitionPenalty(float penalty, int lastN) {
        return copy(maxTokens, temperature, topK, topP, minP, penalty, lastN, seed, seeded, stopStrings, stopTokens, ignoreEos);
    }

    /** Seed of the request's random generator: the same seed, prompt and config give the same output. */
    public GenerationConfig seed(long s) {
        return copy(maxTokens, temperature, topK, topP, minP, repetitionPenalty, repetitionLastN, s, true, stopStrings, stopTokens, ignoreEos);
    }

    /** Stop when the generated text contains any of these strings (the stop string is not returned). */
    public GenerationConfig stopStrings(String... strings) {
        return copy(maxTokens, temperature, topK, topP, minP, repetitionPenalty, repetitionLastN, seed, seeded, Arrays.asList(strings), stopTokens, ignoreEos);
    }

    /** Stop when one of these token ids is generated (in addition to the model's end-of-generation tokens). */
    public GenerationConfig stopTokens(int... ids) {
        return copy(maxTokens, temperature, topK, topP, minP, repetitionPenalty, repetitionLastN, seed, seeded, stopStrings, ids, ignoreEos);
    }

    /** Keep generating past the model's end-of-generation tokens (for benchmarks). */
    public GenerationConfig ignoreEos(boolean ignore) {
        return copy(maxTokens, temperature, topK, topP, minP, repetitionPenalty, repetitionLastN, seed, seeded, stopStrings, stopTokens, ignore);
    }

    public int maxTokens() {
        return maxTokens;
    }

    public float temperature() {
        return temperature;
    }

    public boolean isGreedy() {
        return temperature == 0;
    }

    public int topK() {
        return topK;
    }

    public float topP() {
        return topP;
    }

    public float minP() {
        return minP;
    }

    public float repetitionPenalty() {
        return repetitionPenalty;
    }

    public int repetitionLastN() {
        return repetitionLastN;
    }

    /** Whether a seed was set; without one each request draws a fresh random seed. */
    public boolean isSeeded() {
        return seeded;
    }

    public long seed() {
        return seed;
    }

    public List<String> stopStrings() {
        return stopStrings;
    }

    public int[] stopTokens() {
        return stopTokens.clone();
    }

    public boolean ignoreEos() {
        return ignoreEos;
    }

    @Override
    public String toString() {
        return "GenerationConfig[maxTokens=" + maxTokens + ", temperature=" + temperature + ", topK=" + topK
                + ", topP=" + topP + ", minP=" + minP + ", repetitionPenalty=" + repetitionPenalty
                + ", repetitionLastN=" + repetitionLastN + (seeded ? ", seed=" + seed : "")
                + ", stopStrings=" + stopStrings + ", stopTokens=" + Arrays.toString(stopTokens)
                + ", ignoreEos=" + ignoreEos + "]";
    }

    @Override
    public boolean equals(Object o) {
        return o instanceof GenerationConfig c && c.toString().equals(toString());
    }

    @Override
    public int hashCode() {
        return Objects.hash(toString());
    }
}
