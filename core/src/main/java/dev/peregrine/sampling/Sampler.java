package dev.peregrine.sampling;

import dev.peregrine.GenerationConfig;
import dev.peregrine.PeregrineException;

import java.util.Arrays;
import java.util.Objects;
import java.util.SplittableRandom;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Picks the next token of one generating sequence from its logits, as a {@link GenerationConfig}
 * says: logit bias, repetition, frequency and presence penalties over the last N tokens,
 * temperature, top-k, top-p, min-p, then a draw with the sequence's own random generator; with
 * {@link GenerationConfig#temperatureLast} (llama.cpp's order) the filters weigh the tokens at
 * temperature 1 and the survivors are then weighed at the temperature for the draw.
 * Temperature 0 is greedy: the argmax after the bias and penalties (the later filters never remove
 * the most likely token, so they cannot change it), and no random number is used.
 *
 * <p>Each filter works on the distribution renormalised over the tokens that survived the earlier
 * ones, as llama.cpp and Hugging Face transformers do (this matters for top-p after top-k; min-p
 * compares with the most likely token, which every filter keeps). Equal logits rank by token id,
 * lowest first: for greedy decoding and at the top-k and top-p cut-offs alike.
 *
 * <p>Special values: a {@code -Infinity} logit is never chosen; a NaN logit is treated as
 * {@code -Infinity} (it comes from a broken computation and has no meaningful rank); tokens at
 * {@code +Infinity} share all the probability equally. If every logit is {@code -Infinity} or NaN
 * there is nothing to choose and a {@link PeregrineException} is thrown.
 *
 * <p>With top-k, the sampler works on the k best tokens in rank order ({@link TopK}), whether it
 * selects them from a whole row itself ({@link #sample}) or a backend selected them
 * ({@link #sampleCandidates}): the weights, their sums, the top-p cut and the draw then see the same
 * numbers in the same order, so both give the same token for the same random number. That lets a
 * GPU hand back a few candidates per row instead of the whole row whenever the config allows it
 * ({@link #candidatesNeeded}).
 *
 * <p>Cost, for a vocabulary of V tokens: all scratch space is allocated by the constructor, so
 * {@link #sample}, {@link #sampleCandidates} and {@link #distribution} allocate nothing. With
 * top-k, one pass keeps the k best tokens in a bounded heap (nearly O(V): most tokens fail the one
 * comparison with the heap's root), a heap sort ranks them, only those k need an exp(), and top-p
 * takes the shortest ranked prefix. Without top-k every token needs an exp() (the top-p threshold
 * depends on the sum over the whole vocabulary), but only tokens that can survive become
 * candidates: with top-p, tokens whose weight is below {@code (1 - p) * sum / V} together weigh
 * less than {@code (1 - p) * sum}, so the smallest set reaching {@code p * sum} has none of them;
 * with min-p nothing below {@code minP * max} can survive. Top-p then finds its set among the
 * candidates with a quickselect steered by mass (expected linear time), so the vocabulary is never
 * sorted.
 *
 * <p>Not thread-safe: one sampler per generating sequence.
 */
public final class Sampler {
    private final GenerationConfig config;
    private final int vocabularySize;
    private final long seed;
    private final SplittableRandom random;

    /** {@link #candidatesNeeded}: 1, top-k, or 0 when only a whole row will do. */
    private final int candidatesNeeded;

    /** Token ids still in the running, in the first n entries: ranked for top-k, partitioned by top-p without. */
    private final int[] candidates;
    /** With top-k: the logits of {@code candidates[0 .. k)}, ranked, when {@link #sample} selects them itself. */
    private final float[] rankedLogits;
    /**
     * Unnormalised probability by token id, {@code exp((logit - max) / T)} (with the temperature
     * last: at T = 1 for the filters, then at T for the survivors); valid for candidates only.
     */
    private final float[] weights;
    /** With the temperature last: the logits of top-k's candidates by token id, to weigh the survivors again. */
    private final float[] candidateLogits;
    /** Marks tokens already penalised in this call, so that repeats are penalised once. */
    private final boolean[] penalised;
    /** Occurrences of each token in the penalty window, for the frequency and presence penalties (empty when off). */
    private final int[] occurrences;
    private final int[] biasTokens;
    private final float[] biasValues;
    /** Restricts the tokens that may come next (JSON output), or null. */
    private final JsonConstraint constraint;
    /** Sum of the survivors' weights after {@link #prepare}. */
    private double total;

    /**
     * @param config         the request's sampling settings
     * @param vocabularySize number of logits per row
     */
    public Sampler(GenerationConfig config, int vocabularySize) {
        this(config, vocabularySize, null);
    }

    /**
     * A sampler whose draws {@code constraint} restricts (null: none): its mask is applied to each
     * row first, before the bias and penalties.
     */
    public Sampler(GenerationConfig config, int vocabularySize, JsonConstraint constraint) {
        if (vocabularySize <= 0) {
            throw new IllegalArgumentException("vocabularySize must be > 0, got " + vocabularySize);
        }
        this.config = Objects.requireNonNull(config, "config");
        this.vocabularySize = vocabularySize;
        this.seed = config.isSeeded() ? config.seed() : ThreadLocalRandom.current().nextLong();
        // SplittableRandom's algorithm (SplitMix64) is specified, so a seed gives the same draws on every JVM.
        this.random = new SplittableRandom(seed);
        this.candidates = new int[vocabularySize];
        this.rankedLogits = new float[usesTopK() ? config.topK() : 0];
        this.weights = new float[vocabularySize];
        this.candidateLogits = new float[config.temperatureLast() && usesTopK() ? vocabularySize : 0];
        this.penalised = new boolean[vocabularySize];
        boolean counting = config.frequencyPenalty() != 0 || config.presencePenalty() != 0;
        this.occurrences = new int[counting ? vocabularySize : 0];
        java.util.Map<Integer, Float> bias = config.logitBias();
        this.biasTokens = bias.keySet().stream().mapToInt(Integer::intValue).toArray();
        this.biasValues = new float[biasTokens.length];
        for (int i = 0; i < biasTokens.length; i++) {
            if (biasTokens[i] >= vocabularySize) {
                throw new IllegalArgumentException("logit bias for token " + biasTokens[i] + ", outside the vocabulary of "
                        + vocabularySize);
            }
            biasValues[i] = bias.get(biasTokens[i]);
        }
        for (int stop : config.stopTokens()) {
            if (stop < 0 || stop >= vocabularySize) {
                throw new IllegalArgumentException("stop token " + stop + " is outside the vocabulary of " + vocabularySize);
            }
        }
        this.constraint = constraint;
        this.candidatesNeeded = config.changesLogits() || constraint != null ? 0
                : config.isGreedy() ? 1 : usesTopK() ? config.topK() : 0;
    }

    /** The seed of this sampler's random generator: the config's, or the fresh one drawn for it. */
    public long seed() {
        return seed;
    }

    public int vocabularySize() {
        return vocabularySize;
    }

    /**
     * Draws the next token.
     *
     * <p>Modifies {@code logits[offset .. offset + vocabularySize)} in place: the repetition
     * penalty is applied to it and NaN is replaced by {@code -Infinity}. Call it (or
     * {@link #distribution}) once per row, or the penalty is applied twice.
     *
     * @param logits       holds this sequence's logits at {@code [offset, offset + vocabularySize)}
     * @param recentTokens the most recent tokens, prompt and generated, oldest first; only the last
     *                     {@code config.repetitionLastN()} of the first {@code recentCount} are penalised
     * @return the token id, drawn from exactly the distribution {@link #distribution} gives
     * @throws PeregrineException       if every logit is {@code -Infinity} or NaN
     * @throws IllegalArgumentException if a recent token is out of range
     */
    public int sample(float[] logits, int offset, int[] recentTokens, int recentCount) {
        return draw(prepare(logits, offset, recentTokens, recentCount));
    }

    /**
     * How many best candidates per row {@link #sampleCandidates} needs to draw exactly as
     * {@link #sample} would from the whole row: 1 for greedy decoding, top-k for sampling with
     * {@code 0 < topK < vocabularySize}; 0 when the whole row is needed (a repetition penalty, which
     * changes logits before the ranking, or sampling without top-k, whose top-p and min-p depend
     * on every token's weight).
     */
    public int candidatesNeeded() {
        return candidatesNeeded;
    }

    /**
     * Draws the next token from a row's best candidates instead of its whole logits row: the same
     * token, with the same random draws, as {@link #sample} on that row (temperature, top-p and
     * min-p applied within the top-k as {@link #sample} applies them).
     *
     * @param values the row's candidates' logits at {@code [offset, offset + n)}, best first,
     *               NaN-free (as {@link TopK#select} writes them), n at least {@link #candidatesNeeded}
     * @param ids    their token ids, at the same indices
     * @throws IllegalStateException    if this config needs whole rows ({@link #candidatesNeeded} is 0)
     * @throws PeregrineException       if every candidate is {@code -Infinity}
     */
    public int sampleCandidates(float[] values, int[] ids, int offset) {
        if (candidatesNeeded == 0) {
            throw new IllegalStateException("sampling with " + config + " needs the whole logits row");
        }
        Objects.checkFromIndexSize(offset, candidatesNeeded, values.length);
        Objects.checkFromIndexSize(offset, candidatesNeeded, ids.length);
        for (int j = 0; j < candidatesNeeded; j++) {
            int id = ids[offset + j];
            if (id < 0 || id >= vocabularySize) {
                throw new IllegalArgumentException("candidate " + id + " is outside the vocabulary of " + vocabularySize);
            }
            candidates[j] = id;
        }
        return draw(filterRanked(values, offset, candidatesNeeded));
    }

    /** Draws one of the survivors {@code candidates[0 .. n)} by weight; greedy: the first, with no random number. */
    private int draw(int n) {
        if (config.isGreedy()) {
            return candidates[0];
        }
        double target = random.nextDouble() * total;
        double cumulative = 0;
        for (int j = 0; j < n; j++) {
            cumulative += weights[candidates[j]];
            if (target < cumulative) {
                return candidates[j];
            }
        }
        // Unreachable: the loop adds the same weights in the same order as total, and target < total.
        return candidates[n - 1];
    }

    /**
     * Writes the distribution {@link #sample} draws from to {@code outProbs[0 .. vocabularySize)}:
     * normalised, zero for filtered tokens, one-hot for greedy decoding. Same arguments, same
     * in-place changes to the logits row, as {@link #sample}; uses no random number.
     */
    public void distribution(float[] logits, int offset, int[] recentTokens, int recentCount, float[] outProbs) {
        Objects.checkFromIndexSize(0, vocabularySize, outProbs.length);
        int n = prepare(logits, offset, recentTokens, recentCount);
        Arrays.fill(outProbs, 0, vocabularySize, 0f);
        for (int j = 0; j < n; j++) {
            int id = candidates[j];
            outProbs[id] = (float) (weights[id] / total);
        }
    }

    /**
     * A uniform number in [0, 1) from this sequence's generator, for decisions outside
     * {@link #sample} that must stay reproducible with the seed (e.g. speculative acceptance).
     */
    public double nextUniform() {
        return random.nextDouble();
    }

    /**
     * Index (relative to {@code offset}) of the largest of {@code logits[offset .. offset + n)};
     * ties go to the lowest index and NaN never wins (it counts as {@code -Infinity}), so a row of
     * only {@code -Infinity} and NaN gives 0.
     */
    public static int argmax(float[] logits, int offset, int n) {
        Objects.checkFromIndexSize(offset, n, logits.length);
        int best = 0;
        float bestValue = Float.NEGATIVE_INFINITY;
        for (int i = 0; i < n; i++) {
            float x = logits[offset + i];
            if (x > bestValue) { // false for NaN, and for ties, which keeps the lowest index
                bestValue = x;
                best = i;
            }
        }
        return best;
    }

    /**
     * Runs every step but the draw. Leaves the survivors in {@code candidates[0 .. n)} (for greedy
     * decoding, the argmax alone), their weights in {@link #weights} and the weights' sum in
     * {@link #total}, and returns {@code n}.
     */
    private int prepare(float[] logits, int offset, int[] recentTokens, int recentCount) {
        Objects.checkFromIndexSize(offset, vocabularySize, logits.length);
        Objects.checkFromIndexSize(0, recentCount, recentTokens.length);
        if (constraint != null) {
            constraint.apply(recentTokens, recentCount, logits, offset);
        }
        for (int i = 0; i < biasTokens.length; i++) {
            logits[offset + biasTokens[i]] += biasValues[i];
        }
        applyRepetitionPenalty(logits, offset, recentTokens, recentCount);
        for (int i = offset; i < offset + vocabularySize; i++) {
            if (Float.isNaN(logits[i])) {
                logits[i] = Float.NEGATIVE_INFINITY;
            }
        }
        int best = argmax(logits, offset, vocabularySize);
        float max = logits[offset + best];
        if (max == Float.NEGATIVE_INFINITY) {
            throw noTokenCanBeChosen();
        }
        if (config.isGreedy()) {
            return keepOnly(best);
        }
        if (usesTopK()) {
            TopK.select(logits, offset, vocabularySize, config.topK(), rankedLogits, candidates, 0);
            return filterRanked(rankedLogits, 0, config.topK());
        }
        double invTemperature = filterInvTemperature();
        float topP = config.topP();
        double sum = 0;
        for (int id = 0; id < vocabularySize; id++) {
            weights[id] = weight(logits[offset + id], max, invTemperature);
            sum += weights[id];
        }
        // Cheap pruning: only tokens that can survive top-p and min-p (see the class comment).
        double threshold = Math.max(config.minP(), topP < 1 ? (1 - topP) * sum / vocabularySize : 0);
        int n = 0;
        for (int id = 0; id < vocabularySize; id++) {
            if (weights[id] > 0 && weights[id] >= threshold) {
                candidates[n++] = id;
            }
        }
        if (topP < 1) {
            n = keepTopP(logits, offset, n, topP * sum);
        }
        return weighSurvivors(keepMinP(n), logits, offset, max);
    }

    /**
     * Every logit is -Infinity or NaN. Not the caller's argument at fault but the model's output
     * (NaN: non-finite weights or an overflow) or what the config excluded, so a typed exception.
     */
    private static PeregrineException noTokenCanBeChosen() {
        return new PeregrineException("every logit is -Infinity or NaN: no token can be chosen (NaN logits come from "
                + "non-finite weights or activations, a corrupt or badly converted model; -Infinity from a logit bias "
                + "or output constraint that excludes every token)");
    }

    /** Whether the config's top-k removes anything: {@code 0 < topK < vocabularySize}. */
    private boolean usesTopK() {
        return config.topK() > 0 && config.topK() < vocabularySize;
    }

    /**
     * The filters after top-k, on the k best tokens in rank order: {@code candidates[0 .. k)} hold
     * their ids, {@code logits[from .. from + k)} their logits. Weights and their sum are taken in
     * rank order, top-p keeps the shortest ranked prefix that reaches its mass, then min-p. Returns
     * the number of survivors, as {@link #prepare} does.
     */
    private int filterRanked(float[] logits, int from, int k) {
        float max = logits[from];
        if (max == Float.NEGATIVE_INFINITY) {
            throw noTokenCanBeChosen();
        }
        if (config.isGreedy()) {
            return keepOnly(candidates[0]);
        }
        double invTemperature = filterInvTemperature();
        double sum = 0;
        for (int j = 0; j < k; j++) {
            int id = candidates[j];
            weights[id] = weight(logits[from + j], max, invTemperature);
            sum += weights[id];
            if (candidateLogits.length > 0) {
                candidateLogits[id] = logits[from + j];
            }
        }
        int n = k;
        if (config.topP() < 1) {
            double targetMass = config.topP() * sum;
            double kept = 0;
            n = 0;
            while (n < k && kept < targetMass) {
                kept += weights[candidates[n++]];
            }
        }
        return weighSurvivors(keepMinP(n), candidateLogits, 0, max);
    }

    /** 1 / T for the filters' weights: 1 when the temperature comes last (it then weighs the survivors only). */
    private double filterInvTemperature() {
        return config.temperatureLast() ? 1.0 : 1.0 / config.temperature();
    }

    /**
     * With the temperature last: the weights of the {@code n} survivors at the temperature (their
     * logits by token id from {@code logits[offset ..]}) and their sum in {@link #total}, for the
     * draw. Otherwise (or at temperature 1) the filters' weights are already those. Returns n.
     */
    private int weighSurvivors(int n, float[] logits, int offset, float max) {
        if (!config.temperatureLast() || config.temperature() == 1f) {
            return n;
        }
        double invTemperature = 1.0 / config.temperature();
        total = 0;
        for (int j = 0; j < n; j++) {
            int id = candidates[j];
            weights[id] = weight(logits[offset + id], max, invTemperature);
            total += weights[id];
        }
        return n;
    }

    /** Greedy decoding: {@code id} alone survives. */
    private int keepOnly(int id) {
        candidates[0] = id;
        weights[id] = 1;
        total = 1;
        return 1;
    }

    /**
     * min-p over {@code candidates[0 .. n)}, keeping their order; sets {@link #total} and returns
     * the number kept. The most likely token survives every filter and has weight exp(0) = 1, so
     * "probability >= minP * max probability" is "weight >= minP". Zero weights (-Infinity logits
     * that top-k kept for want of better ones) go too.
     */
    private int keepMinP(int n) {
        float minP = config.minP();
        int kept = 0;
        total = 0;
        for (int j = 0; j < n; j++) {
            int id = candidates[j];
            if (weights[id] > 0 && weights[id] >= minP) {
                candidates[kept++] = id;
                total += weights[id];
            }
        }
        return kept;
    }

    /**
     * CTRL / llama.cpp: each distinct token among the last N has its logit divided (if positive) or
     * multiplied by the repetition penalty, then c * frequency + presence subtracted, c its count.
     */
    private void applyRepetitionPenalty(float[] logits, int offset, int[] recentTokens, int recentCount) {
        float penalty = config.repetitionPenalty();
        int from = Math.max(0, recentCount - config.repetitionLastN());
        boolean counting = occurrences.length > 0;
        if ((penalty == 1f && !counting) || from == recentCount) {
            return;
        }
        // Check every id before marking any, so that an exception leaves no marks behind.
        for (int i = from; i < recentCount; i++) {
            if (recentTokens[i] < 0 || recentTokens[i] >= vocabularySize) {
                throw new IllegalArgumentException("recent token " + recentTokens[i] + " at " + i
                        + " is outside the vocabulary of " + vocabularySize);
            }
        }
        if (counting) {
            for (int i = from; i < recentCount; i++) {
                occurrences[recentTokens[i]]++;
            }
        }
        float frequency = config.frequencyPenalty();
        float presence = config.presencePenalty();
        for (int i = from; i < recentCount; i++) {
            int id = recentTokens[i];
            if (!penalised[id]) {
                penalised[id] = true;
                float x = logits[offset + id];
                if (penalty != 1f) {
                    x = x > 0 ? x / penalty : x * penalty;
                }
                if (counting) {
                    x -= occurrences[id] * frequency + presence;
                }
                logits[offset + id] = x;
            }
        }
        for (int i = from; i < recentCount; i++) {
            penalised[recentTokens[i]] = false;
            if (counting) {
                occurrences[recentTokens[i]] = 0;
            }
        }
    }

    /** {@code exp((x - max) / T)}, where tokens at the maximum weigh exactly 1, even at {@code +Infinity}. */
    private static float weight(float x, float max, double invTemperature) {
        return x == max ? 1f : (float) Math.exp(((double) x - max) * invTemperature);
    }

    /**
     * Top-p: moves the smallest best-first set of {@code candidates[0 .. n)} whose weights reach
     * {@code targetMass} (at least one token) to the front, and returns its size. A quickselect
     * that steers by mass instead of by count: expected O(n) even when the set is most of the
     * vocabulary (flat distributions), where taking tokens best first from a heap would cost
     * O(n log n) with a large constant.
     */
    private int keepTopP(float[] logits, int offset, int n, double targetMass) {
        int lo = 0;
        int hi = n;
        double kept = 0; // candidates[0 .. lo) are in and weigh kept < targetMass; [hi .. n) are out
        while (lo < hi) {
            int p = partition(logits, offset, lo, hi);
            double before = 0;
            for (int j = lo; j < p; j++) {
                before += weights[candidates[j]];
            }
            if (kept + before >= targetMass) {
                hi = p; // the set ends before the pivot
            } else {
                kept += before + weights[candidates[p]];
                lo = p + 1;
                if (kept >= targetMass) {
                    break; // the set ends at the pivot
                }
            }
        }
        // Without a break, lo == n: rounding (or min-p's pruning) left less than targetMass; keep all.
        return lo;
    }

    /**
     * Partitions {@code candidates[lo .. hi)} around a median-of-three pivot: the tokens that rank
     * before it, then the pivot, whose index is returned, then the rest.
     */
    private int partition(float[] logits, int offset, int lo, int hi) {
        int a = candidates[lo];
        int b = candidates[(lo + hi) >>> 1];
        int c = candidates[hi - 1];
        int median = ranksBefore(logits, offset, a, b)
                ? (ranksBefore(logits, offset, b, c) ? b : ranksBefore(logits, offset, a, c) ? c : a)
                : (ranksBefore(logits, offset, a, c) ? a : ranksBefore(logits, offset, b, c) ? c : b);
        int pivotAt = median == a ? lo : median == b ? (lo + hi) >>> 1 : hi - 1;
        swap(pivotAt, hi - 1);
        int store = lo;
        for (int j = lo; j < hi - 1; j++) {
            if (ranksBefore(logits, offset, candidates[j], median)) {
                swap(store++, j);
            }
        }
        swap(store, hi - 1);
        return store;
    }

    private void swap(int i, int j) {
        int t = candidates[i];
        candidates[i] = candidates[j];
        candidates[j] = t;
    }

    /** Whether token a ranks before token b, in the one order candidate selection uses everywhere ({@link TopK#ranksBefore}). */
    private static boolean ranksBefore(float[] logits, int offset, int a, int b) {
        return TopK.ranksBefore(logits[offset + a], a, logits[offset + b], b);
    }
}
