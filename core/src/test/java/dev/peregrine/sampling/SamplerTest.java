package dev.peregrine.sampling;

import dev.peregrine.GenerationConfig;
import dev.peregrine.PeregrineException;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.Set;
import java.util.stream.IntStream;
import java.util.stream.Stream;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

class SamplerTest {
    private static final int[] NO_TOKENS = new int[0];
    private static final GenerationConfig PLAIN = GenerationConfig.defaults()
            .temperature(1).topK(0).topP(1).minP(0).repetitionPenalty(1, 64).seed(1);

    // ---------------------------------------------------------------- reference

    /**
     * The distribution the config describes, step by step in double precision, over full sorts:
     * the straightforward way, to check the sampler's pruning and partial selection against. With
     * the temperature last, the filters run on the distribution at temperature 1 and the survivors
     * are then weighed at the temperature.
     */
    private static double[] reference(float[] logits, GenerationConfig c, int[] recent, int recentCount) {
        int n = logits.length;
        // Bias and penalties are applied to the float logits row itself, so their results are floats.
        float[] penalised = logits.clone();
        c.logitBias().forEach((id, bias) -> penalised[id] += bias);
        int from = Math.max(0, recentCount - c.repetitionLastN());
        Map<Integer, Integer> counts = new HashMap<>();
        for (int i = from; i < recentCount; i++) {
            counts.merge(recent[i], 1, Integer::sum);
        }
        for (Map.Entry<Integer, Integer> e : counts.entrySet()) {
            int t = e.getKey();
            float x = penalised[t];
            if (c.repetitionPenalty() != 1f) {
                x = x > 0 ? x / c.repetitionPenalty() : x * c.repetitionPenalty();
            }
            if (c.frequencyPenalty() != 0 || c.presencePenalty() != 0) {
                x -= e.getValue() * c.frequencyPenalty() + c.presencePenalty();
            }
            penalised[t] = x;
        }
        double[] x = new double[n];
        for (int i = 0; i < n; i++) {
            x[i] = Float.isNaN(penalised[i]) ? Double.NEGATIVE_INFINITY : penalised[i];
        }
        Integer[] byRank = IntStream.range(0, n).boxed().toArray(Integer[]::new);
        // Rank: higher logit first, ties to the lower id.
        Arrays.sort(byRank, Comparator.<Integer>comparingDouble(i -> -x[i]).thenComparingInt(i -> i));
        double[] p = new double[n];
        if (c.isGreedy()) {
            p[byRank[0]] = 1;
            return p;
        }
        double max = x[byRank[0]];
        double filterTemperature = c.temperatureLast() ? 1 : c.temperature();
        for (int i = 0; i < n; i++) {
            p[i] = Math.exp(x[i] / filterTemperature - max / filterTemperature);
        }
        normalise(p);
        if (c.topK() > 0) {
            for (int r = c.topK(); r < n; r++) {
                p[byRank[r]] = 0;
            }
            normalise(p);
        }
        if (c.topP() < 1) {
            double cumulative = 0;
            int r = 0;
            while (cumulative < c.topP()) {
                cumulative += p[byRank[r++]];
            }
            for (; r < n; r++) {
                p[byRank[r]] = 0;
            }
            normalise(p);
        }
        double pMax = p[byRank[0]];
        for (int i = 0; i < n; i++) {
            if (p[i] < c.minP() * pMax) {
                p[i] = 0;
            }
        }
        if (c.temperatureLast()) {
            for (int i = 0; i < n; i++) {
                if (p[i] > 0) {
                    p[i] = Math.exp(x[i] / c.temperature() - max / c.temperature());
                }
            }
        }
        normalise(p);
        return p;
    }

    private static void normalise(double[] p) {
        double sum = Arrays.stream(p).sum();
        for (int i = 0; i < p.length; i++) {
            p[i] /= sum;
        }
    }

    private static float[] randomLogits(Random rnd, int n, double scale) {
        float[] logits = new float[n];
        for (int i = 0; i < n; i++) {
            logits[i] = (float) (rnd.nextGaussian() * scale);
        }
        return logits;
    }

    private static float[] roundedLogits(Random rnd, int n) {
        float[] logits = randomLogits(rnd, n, 2);
        for (int i = 0; i < n; i++) {
            logits[i] = Math.round(logits[i] * 2) / 2f;
        }
        return logits;
    }

    private static float[] distribution(GenerationConfig c, float[] logits, int[] recent, int recentCount) {
        float[] probs = new float[logits.length];
        new Sampler(c, logits.length).distribution(logits.clone(), 0, recent, recentCount, probs);
        return probs;
    }

    // ---------------------------------------------------------------- greedy

    @Test
    void badBiasesAndPenaltiesAreRejected() {
        assertThatThrownBy(() -> new Sampler(PLAIN.logitBias(Map.of(50, 1f)), 50)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("token 50, outside the vocabulary of 50");
        assertThatThrownBy(() -> PLAIN.logitBias(Map.of(1, Float.NaN))).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> PLAIN.logitBias(Map.of(1, Float.POSITIVE_INFINITY))).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> PLAIN.logitBias(Map.of(-1, 1f))).isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> PLAIN.frequencyAndPresencePenalty(Float.NaN, 0)).isInstanceOf(IllegalArgumentException.class);
        // Anything that changes logits before the ranking needs whole rows, not a backend's candidates.
        assertThat(new Sampler(GenerationConfig.greedy(), 50).candidatesNeeded()).isEqualTo(1);
        assertThat(new Sampler(GenerationConfig.greedy().logitBias(Map.of(1, 1f)), 50).candidatesNeeded()).isZero();
        assertThat(new Sampler(GenerationConfig.greedy().frequencyAndPresencePenalty(0, 0.1f), 50).candidatesNeeded()).isZero();
    }

    @Test
    void greedyIsTheArgmaxWithTiesToTheLowestId() {
        Random rnd = new Random(11);
        Sampler sampler = new Sampler(GenerationConfig.greedy(), 1000);
        for (int round = 0; round < 200; round++) {
            float[] logits = randomLogits(rnd, 1000, 3);
            // Copy the maximum to a few random places, so there are ties to break.
            int max = 0;
            for (int i = 1; i < logits.length; i++) {
                if (logits[i] > logits[max]) {
                    max = i;
                }
            }
            for (int copies = round % 4; copies > 0; copies--) {
                logits[rnd.nextInt(logits.length)] = logits[max];
            }
            int expected = 0;
            for (int i = 1; i < logits.length; i++) {
                if (logits[i] > logits[expected]) {
                    expected = i;
                }
            }
            assertThat(Sampler.argmax(logits, 0, logits.length)).isEqualTo(expected);
            assertThat(sampler.sample(logits.clone(), 0, NO_TOKENS, 0)).isEqualTo(expected);
        }
    }

    @Test
    void argmaxReadsTheSliceAndIgnoresNaN() {
        float[] row = {9, 9, 1, Float.NaN, 3, 2, 9};
        assertThat(Sampler.argmax(row, 2, 4)).isEqualTo(2);
        assertThat(Sampler.argmax(new float[]{Float.NaN, Float.NaN}, 0, 2)).isZero();
    }

    @Test
    void greedyDistributionIsOneHotAndUsesThePenalty() {
        float[] logits = {1f, 3f, 2.9f, -1f};
        GenerationConfig c = GenerationConfig.greedy().repetitionPenalty(1.1f, 8);
        assertThat(distribution(c, logits, new int[]{1}, 1)).containsExactly(0f, 0f, 1f, 0f);
        assertThat(new Sampler(c, 4).sample(logits.clone(), 0, new int[]{1}, 1)).isEqualTo(2);
    }

    // ---------------------------------------------------------------- distribution vs reference

    static Stream<Arguments> configs() {
        return Stream.of(
                Arguments.of("temperature 1", PLAIN),
                Arguments.of("temperature 0.5", PLAIN.temperature(0.5f)),
                Arguments.of("temperature 2", PLAIN.temperature(2f)),
                Arguments.of("top-k 1", PLAIN.topK(1)),
                Arguments.of("top-k 7", PLAIN.topK(7)),
                Arguments.of("top-k 300", PLAIN.topK(300)),
                Arguments.of("top-p 0.5", PLAIN.topP(0.5f)),
                Arguments.of("top-p 0.9", PLAIN.topP(0.9f)),
                Arguments.of("top-p 0.99", PLAIN.topP(0.99f)),
                Arguments.of("min-p 0.05", PLAIN.minP(0.05f)),
                Arguments.of("min-p 0.3", PLAIN.minP(0.3f)),
                Arguments.of("repetition penalty 1.3", PLAIN.repetitionPenalty(1.3f, 16)),
                Arguments.of("repetition penalty 0.8, all history", PLAIN.repetitionPenalty(0.8f, 1000)),
                Arguments.of("top-k + top-p", PLAIN.topK(50).topP(0.8f)),
                Arguments.of("top-p + min-p", PLAIN.temperature(1.5f).topP(0.95f).minP(0.02f)),
                Arguments.of("min-p stricter than top-p", PLAIN.topP(0.99f).minP(0.2f)),
                Arguments.of("llama.cpp defaults", GenerationConfig.defaults().seed(3)),
                Arguments.of("llama.cpp defaults, temperature last", GenerationConfig.defaults().temperatureLast(true).seed(3)),
                Arguments.of("temperature 0.5 last, top-p + min-p", PLAIN.temperature(0.5f).topP(0.9f).minP(0.05f)
                        .temperatureLast(true)),
                Arguments.of("temperature 1.5 last, top-k + top-p", PLAIN.temperature(1.5f).topK(30).topP(0.8f)
                        .temperatureLast(true)),
                Arguments.of("everything", PLAIN.temperature(0.7f).topK(40).topP(0.9f).minP(0.05f)
                        .repetitionPenalty(1.2f, 32)),
                Arguments.of("greedy with penalty", GenerationConfig.greedy().repetitionPenalty(1.5f, 16)),
                Arguments.of("frequency and presence penalties", PLAIN.frequencyAndPresencePenalty(0.7f, 0.4f)),
                Arguments.of("negative frequency penalty, all three", PLAIN.repetitionPenalty(1.2f, 20)
                        .frequencyAndPresencePenalty(-0.3f, 1.5f)),
                Arguments.of("logit bias", PLAIN.topK(20).logitBias(Map.of(3, 5f, 7, -2.5f, 11, Float.NEGATIVE_INFINITY))),
                Arguments.of("greedy with bias and penalties", GenerationConfig.greedy()
                        .logitBias(Map.of(0, 3f, 1, Float.NEGATIVE_INFINITY)).frequencyAndPresencePenalty(0.5f, 0.5f)));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("configs")
    void distributionMatchesTheReference(String name, GenerationConfig c) {
        Random rnd = new Random(name.hashCode());
        for (int vocabulary : new int[]{50, 5000, 40_000}) {
            for (double scale : new double[]{1, 4, -1}) {
                // scale -1: logits in steps of 0.5, so that many tie, at the top-k and top-p cut-offs too.
                float[] logits = scale > 0 ? randomLogits(rnd, vocabulary, scale) : roundedLogits(rnd, vocabulary);
                // A history with repeats, holding both positive and negative logits.
                int[] recent = rnd.ints(40, 0, Math.min(vocabulary, 30)).toArray();
                double[] expected = reference(logits, c, recent, recent.length);
                float[] actual = distribution(c, logits, recent, recent.length);
                for (int i = 0; i < vocabulary; i++) {
                    assertThat((double) actual[i]).as("%s, V=%d, token %d", name, vocabulary, i)
                            .isCloseTo(expected[i], within(1e-6));
                }
            }
        }
    }

    /**
     * Logits 2, 1.5, 1, 0.5, 0 at temperature 0.5 with top-p 0.9: before top-p the temperature
     * gives 0.64, 0.23, 0.09, ... (three tokens reach 0.9); last, top-p sees 0.43, 0.26, 0.16,
     * 0.10, 0.06 (four do, as llama.cpp keeps them), and the four are then drawn at temperature 0.5.
     */
    @Test
    void theTemperatureLastLetsTopPSeeTheDistributionAtTemperatureOne() {
        float[] logits = {2f, 1.5f, 1f, 0.5f, 0f};
        GenerationConfig c = PLAIN.temperature(0.5f).topP(0.9f);
        assertThat(distribution(c, logits, NO_TOKENS, 0)).satisfies(p -> assertThat(p[2]).isPositive(),
                p -> assertThat(p[3]).isZero());
        float[] last = distribution(c.temperatureLast(true), logits, NO_TOKENS, 0);
        double sum = Math.exp(0) + Math.exp(-1) + Math.exp(-2) + Math.exp(-3);
        for (int i = 0; i < 4; i++) {
            assertThat((double) last[i]).isCloseTo(Math.exp(-i) / sum, within(1e-6));
        }
        assertThat(last[4]).isZero();
    }

    @Test
    void theLogitsRowIsReadAtItsOffsetAndOnlyItsSliceChanges() {
        Random rnd = new Random(5);
        float[] row = randomLogits(rnd, 300, 2);
        float[] buffer = new float[1000];
        Arrays.fill(buffer, 77f);
        System.arraycopy(row, 0, buffer, 400, row.length);
        GenerationConfig c = PLAIN.topK(20).repetitionPenalty(1.5f, 8);
        int[] recent = {1, 2, 3, 250};
        float[] probs = new float[300];
        new Sampler(c, 300).distribution(buffer, 400, recent, recent.length, probs);
        assertThat(probs).containsExactly(distribution(c, row, recent, recent.length));
        for (int i = 0; i < buffer.length; i++) {
            if (i < 400 || i >= 700) {
                assertThat(buffer[i]).isEqualTo(77f);
            }
        }
        // The documented in-place change: the penalty has been applied to the row.
        assertThat(buffer[400 + 250]).isEqualTo(row[250] > 0 ? row[250] / 1.5f : row[250] * 1.5f);
    }

    // ---------------------------------------------------------------- sample vs distribution

    @ParameterizedTest(name = "{0}")
    @MethodSource("configs")
    void sampleFrequenciesMatchTheDistribution(String name, GenerationConfig c) {
        int vocabulary = 60;
        float[] logits = randomLogits(new Random(99), vocabulary, 1.5);
        int[] recent = {3, 5, 5, 8, 13, 21};
        float[] probs = distribution(c.seed(2024), logits, recent, recent.length);
        Sampler sampler = new Sampler(c.seed(2024), vocabulary);
        int draws = 200_000;
        long[] counts = new long[vocabulary];
        for (int d = 0; d < draws; d++) {
            counts[sampler.sample(logits.clone(), 0, recent, recent.length)]++;
        }
        // Pearson's chi-squared over the tokens expected at least 5 times, the rest pooled.
        double chiSquared = 0;
        int bins = 0;
        double pooledExpected = 0;
        long pooledCount = 0;
        for (int i = 0; i < vocabulary; i++) {
            if (probs[i] == 0) {
                assertThat(counts[i]).as("filtered token %d", i).isZero();
            } else if (probs[i] * draws >= 5) {
                double expected = probs[i] * draws;
                chiSquared += (counts[i] - expected) * (counts[i] - expected) / expected;
                bins++;
            } else {
                pooledExpected += probs[i] * draws;
                pooledCount += counts[i];
            }
        }
        if (pooledExpected > 0) {
            chiSquared += (pooledCount - pooledExpected) * (pooledCount - pooledExpected) / pooledExpected;
            bins++;
        }
        if (bins == 1) {
            assertThat(chiSquared).isLessThan(1e-6);
            return;
        }
        assertThat(chiSquared).as(name).isLessThan(chiSquaredCritical(bins - 1));
    }

    /** Upper 0.01% point of chi-squared with df degrees of freedom (Wilson-Hilferty approximation). */
    private static double chiSquaredCritical(int df) {
        double z = 3.719; // standard normal upper 0.01% point
        double a = 2.0 / (9 * df);
        return df * Math.pow(1 - a + z * Math.sqrt(a), 3);
    }

    // ---------------------------------------------------------------- seeds

    private static int[] draws(GenerationConfig c, int count) {
        float[] logits = randomLogits(new Random(1), 1000, 0.5);
        Sampler sampler = new Sampler(c, logits.length);
        return IntStream.range(0, count).map(d -> sampler.sample(logits.clone(), 0, NO_TOKENS, 0)).toArray();
    }

    @Test
    void theSameSeedGivesTheSameDrawsAndOthersDiffer() {
        assertThat(draws(PLAIN.seed(42), 200)).containsExactly(draws(PLAIN.seed(42), 200));
        assertThat(draws(PLAIN.seed(42), 200)).isNotEqualTo(draws(PLAIN.seed(43), 200));
    }

    @Test
    void anUnseededSamplerReportsASeedThatReproducesIt() {
        GenerationConfig unseeded = GenerationConfig.defaults().topK(0).topP(1).minP(0).temperature(1);
        float[] logits = randomLogits(new Random(1), 1000, 0.5);
        Sampler first = new Sampler(unseeded, logits.length);
        Sampler again = new Sampler(unseeded.seed(first.seed()), logits.length);
        Sampler other = new Sampler(unseeded, logits.length);
        assertThat(other.seed()).isNotEqualTo(first.seed());
        for (int d = 0; d < 100; d++) {
            assertThat(again.sample(logits.clone(), 0, NO_TOKENS, 0))
                    .isEqualTo(first.sample(logits.clone(), 0, NO_TOKENS, 0));
        }
    }

    /** SplitMix64 as java.util.SplittableRandom specifies it: the first nextDouble() for a seed. */
    private static double splitMix64FirstDouble(long seed) {
        long z = seed + 0x9e3779b97f4a7c15L;
        z = (z ^ (z >>> 30)) * 0xbf58476d1ce4e5b9L;
        z = (z ^ (z >>> 27)) * 0x94d049bb133111ebL;
        z = z ^ (z >>> 31);
        return (z >>> 11) * 0x1.0p-53;
    }

    @Test
    void drawsFollowTheSpecifiedGenerator() {
        // Two tokens weighing 1 and 3: the first draw u picks token 0 if u < 0.25, so the outcome
        // for each seed is fixed by the generator's published algorithm, on every JVM.
        float[] logits = {0, (float) Math.log(3)};
        for (long seed = 0; seed < 50; seed++) {
            int expected = splitMix64FirstDouble(seed) * (1 + 3f) < 1 ? 0 : 1;
            assertThat(new Sampler(PLAIN.seed(seed), 2).sample(logits.clone(), 0, NO_TOKENS, 0))
                    .as("seed %d", seed).isEqualTo(expected);
        }
    }

    // ---------------------------------------------------------------- edge cases

    @Test
    void topPKeepsAtLeastTheMostLikelyToken() {
        float[] logits = randomLogits(new Random(3), 1000, 1);
        float[] probs = distribution(PLAIN.topP(1e-9f), logits, NO_TOKENS, 0);
        int best = Sampler.argmax(logits, 0, logits.length);
        assertThat(probs[best]).isEqualTo(1f);
        assertThat(new Sampler(PLAIN.topP(1e-9f), 1000).sample(logits, 0, NO_TOKENS, 0)).isEqualTo(best);
    }

    @Test
    void tiesAtTheCutOffsGoToTheLowestIds() {
        float[] logits = {0, 1, 1, 0, 1, 1, 1};
        float q = 1f / 3;
        assertThat(distribution(PLAIN.topK(3), logits, NO_TOKENS, 0)).containsExactly(0, q, q, 0, q, 0, 0);
        // Five equal tokens hold nearly everything; 0.5 of it takes three of them.
        float[] fiveWay = {1, 30, 30, 30, 30, 30};
        assertThat(distribution(PLAIN.topP(0.5f), fiveWay, NO_TOKENS, 0)).containsExactly(0, q, q, q, 0, 0);
        // Eight equal tokens: cumulative probability reaches p exactly after 8p of them.
        float[] eightWay = new float[8];
        for (float p : new float[]{0.125f, 0.25f, 0.5f, 0.75f}) {
            float[] expected = new float[8];
            Arrays.fill(expected, 0, (int) (8 * p), 1 / (8 * p));
            assertThat(distribution(PLAIN.topP(p), eightWay, NO_TOKENS, 0)).as("top-p %s", p).containsExactly(expected);
        }
    }

    @Test
    void topKAtOrAboveTheVocabularyKeepsEverything() {
        float[] logits = randomLogits(new Random(4), 100, 1);
        float[] all = distribution(PLAIN, logits, NO_TOKENS, 0);
        assertThat(distribution(PLAIN.topK(100), logits, NO_TOKENS, 0)).containsExactly(all);
        assertThat(distribution(PLAIN.topK(1_000_000), logits, NO_TOKENS, 0)).containsExactly(all);
    }

    @Test
    void minusInfinityAndNaNAreNeverChosen() {
        float[] logits = new float[20];
        for (int i = 0; i < logits.length; i++) {
            logits[i] = i % 3 == 0 ? Float.NEGATIVE_INFINITY : i % 3 == 1 ? Float.NaN : 0;
        }
        // Top-k 10 must fill up with -Infinity tokens: only 6 tokens are possible.
        for (GenerationConfig c : List.of(PLAIN, PLAIN.topK(10), PLAIN.topP(0.99f), PLAIN.minP(0.1f))) {
            float[] probs = distribution(c, logits, NO_TOKENS, 0);
            Sampler sampler = new Sampler(c, logits.length);
            for (int i = 0; i < logits.length; i++) {
                assertThat(probs[i]).isEqualTo(i % 3 == 2 ? 1f / 6 : 0f);
            }
            for (int d = 0; d < 1000; d++) {
                assertThat(sampler.sample(logits.clone(), 0, NO_TOKENS, 0) % 3).isEqualTo(2);
            }
        }
        assertThat(new Sampler(GenerationConfig.greedy(), 20).sample(logits.clone(), 0, NO_TOKENS, 0)).isEqualTo(2);
    }

    @Test
    void nanIsReplacedInTheRow() {
        float[] logits = {1, Float.NaN, 2};
        new Sampler(PLAIN, 3).sample(logits, 0, NO_TOKENS, 0);
        assertThat(logits).containsExactly(1, Float.NEGATIVE_INFINITY, 2);
    }

    @Test
    void plusInfinityTokensShareAllTheProbability() {
        float[] logits = {5, Float.POSITIVE_INFINITY, 1e30f, Float.POSITIVE_INFINITY};
        assertThat(distribution(PLAIN, logits, NO_TOKENS, 0)).containsExactly(0f, 0.5f, 0f, 0.5f);
        assertThat(distribution(PLAIN.topK(2).topP(0.9f), logits, NO_TOKENS, 0)).containsExactly(0f, 0.5f, 0f, 0.5f);
        assertThat(new Sampler(GenerationConfig.greedy(), 4).sample(logits, 0, NO_TOKENS, 0)).isEqualTo(1);
    }

    @Test
    void aRowWithNoPossibleTokenIsRejected() {
        float[] logits = {Float.NEGATIVE_INFINITY, Float.NaN};
        for (GenerationConfig c : List.of(PLAIN, GenerationConfig.greedy())) {
            assertThatThrownBy(() -> new Sampler(c, 2).sample(logits.clone(), 0, NO_TOKENS, 0))
                    .isInstanceOf(PeregrineException.class).hasMessageContaining("no token can be chosen");
        }
    }

    @Test
    void outOfRangeArgumentsAreRejected() {
        Sampler sampler = new Sampler(PLAIN.repetitionPenalty(1.2f, 4), 10);
        assertThatThrownBy(() -> sampler.sample(new float[15], 6, NO_TOKENS, 0))
                .isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> sampler.sample(new float[10], 0, new int[]{1}, 2))
                .isInstanceOf(IndexOutOfBoundsException.class);
        assertThatThrownBy(() -> sampler.sample(new float[10], 0, new int[]{1, 10}, 2))
                .isInstanceOf(IllegalArgumentException.class);
        assertThatThrownBy(() -> new Sampler(PLAIN, 0)).isInstanceOf(IllegalArgumentException.class);
    }

    @Test
    void theRepetitionPenaltyCountsEachTokenOnceAndOnlyTheLastN() {
        float[] logits = {2, -2, 2, 2};
        int[] recent = {2, 0, 0, 1, 0};
        // Last 3 tokens: 0, 1, 0 -> token 0 and 1 penalised once each; token 2 is too old.
        new Sampler(GenerationConfig.greedy().repetitionPenalty(2, 3), 4).sample(logits, 0, recent, recent.length);
        assertThat(logits).containsExactly(1, -4, 2, 2);
    }

    // ---------------------------------------------------------------- candidates

    static Stream<Arguments> candidateConfigs() {
        return Stream.of(
                Arguments.of("greedy", GenerationConfig.greedy()),
                Arguments.of("greedy without top-k", GenerationConfig.greedy().topK(0).topP(0.5f)),
                Arguments.of("top-k 1", PLAIN.topK(1)),
                Arguments.of("top-k 7", PLAIN.topK(7)),
                Arguments.of("top-k + top-p", PLAIN.topK(50).topP(0.8f)),
                Arguments.of("top-k + min-p, hot", PLAIN.temperature(2f).topK(300).minP(0.2f)),
                Arguments.of("everything", PLAIN.temperature(0.7f).topK(40).topP(0.9f).minP(0.05f)),
                Arguments.of("llama.cpp defaults", GenerationConfig.defaults().seed(3)),
                Arguments.of("llama.cpp defaults, temperature last", GenerationConfig.defaults().temperatureLast(true).seed(3)),
                Arguments.of("penalty over no history", PLAIN.topK(20).repetitionPenalty(1.3f, 0)));
    }

    /**
     * The same seed, the same rows: drawing from the best candidates (exactly k, or more, as a
     * step whose rows need different k hands out) gives the token the whole row gives, draw after
     * draw, so both consume the same random numbers. Rows with ties at every cut, NaN and infinities.
     */
    @ParameterizedTest(name = "{0}")
    @MethodSource("candidateConfigs")
    void candidatesGiveTheTokensOfWholeRows(String name, GenerationConfig c) {
        Random rnd = new Random(name.hashCode());
        int vocabulary = 1000;
        Sampler whole = new Sampler(c.seed(77), vocabulary);
        Sampler fromCandidates = new Sampler(c.seed(77), vocabulary);
        int needed = fromCandidates.candidatesNeeded();
        assertThat(needed).isPositive();
        for (int extra : new int[] {0, 17}) {
            int k = needed + extra;
            float[] values = new float[3 + k];
            int[] ids = new int[3 + k];
            for (int draw = 0; draw < 400; draw++) {
                float[] row = switch (draw % 3) {
                    case 0 -> randomLogits(rnd, vocabulary, 3);
                    case 1 -> roundedLogits(rnd, vocabulary);
                    default -> TopKTest.awkwardRow(rnd, vocabulary);
                };
                row[rnd.nextInt(vocabulary)] = 4f; // something to choose in every row
                TopK.select(row, 0, vocabulary, k, values, ids, 3);
                int expected = whole.sample(row.clone(), 0, NO_TOKENS, 0);
                assertThat(fromCandidates.sampleCandidates(values, ids, 3)).as("%s, k %d, draw %d", name, k, draw)
                        .isEqualTo(expected);
            }
        }
        assertThat(whole.nextUniform()).as("the same random numbers were used").isEqualTo(fromCandidates.nextUniform());
    }

    @Test
    void candidatesNeededSaysWhenWholeRowsAreNeeded() {
        assertThat(new Sampler(GenerationConfig.greedy(), 100).candidatesNeeded()).isEqualTo(1);
        assertThat(new Sampler(GenerationConfig.defaults(), 100).candidatesNeeded()).isEqualTo(40);
        assertThat(new Sampler(PLAIN.topK(99), 100).candidatesNeeded()).isEqualTo(99);
        // Top-k that keeps everything, or none: top-p and min-p depend on every token's weight.
        assertThat(new Sampler(PLAIN.topK(100), 100).candidatesNeeded()).isZero();
        assertThat(new Sampler(PLAIN.topP(0.9f).minP(0.1f), 100).candidatesNeeded()).isZero();
        // A repetition penalty changes logits before the ranking.
        assertThat(new Sampler(GenerationConfig.greedy().repetitionPenalty(1.1f, 8), 100).candidatesNeeded()).isZero();
        assertThat(new Sampler(GenerationConfig.defaults().repetitionPenalty(0.9f, 64), 100).candidatesNeeded()).isZero();
        assertThat(new Sampler(GenerationConfig.defaults().repetitionPenalty(1.5f, 0), 100).candidatesNeeded()).isEqualTo(40);

        float[] values = {1, 0};
        int[] ids = {3, 4};
        assertThatThrownBy(() -> new Sampler(PLAIN, 100).sampleCandidates(values, ids, 0))
                .isInstanceOf(IllegalStateException.class);
        assertThatThrownBy(() -> new Sampler(PLAIN.topK(2), 4).sampleCandidates(values, ids, 0))
                .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("candidate 4");
        float[] hopeless = {Float.NEGATIVE_INFINITY, Float.NEGATIVE_INFINITY};
        for (GenerationConfig c : List.of(GenerationConfig.greedy(), PLAIN.topK(2))) {
            assertThatThrownBy(() -> new Sampler(c, 100).sampleCandidates(hopeless, ids, 0))
                    .isInstanceOf(PeregrineException.class).hasMessageContaining("-Infinity");
        }
        assertThatThrownBy(() -> new Sampler(PLAIN.topK(2), 100).sampleCandidates(values, ids, 1))
                .isInstanceOf(IndexOutOfBoundsException.class);
    }

    // ---------------------------------------------------------------- allocation

    @Test
    void samplingAllocatesNothingPerCall() {
        com.sun.management.ThreadMXBean threads = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        int vocabulary = 8192;
        float[] logits = randomLogits(new Random(8), vocabulary, 3);
        float[] row = new float[vocabulary];
        float[] probs = new float[vocabulary];
        int[] recent = new Random(9).ints(64, 0, vocabulary).toArray();
        for (GenerationConfig c : List.of(GenerationConfig.defaults().repetitionPenalty(1.1f, 64).seed(1),
                PLAIN.topP(0.9f).minP(0.01f), GenerationConfig.greedy())) {
            Sampler sampler = new Sampler(c, vocabulary);
            int checksum = 0;
            for (int warmUp = 0; warmUp < 1_000; warmUp++) {
                System.arraycopy(logits, 0, row, 0, vocabulary);
                checksum += sampler.sample(row, 0, recent, recent.length);
            }
            long before = threads.getCurrentThreadAllocatedBytes();
            for (int call = 0; call < 10_000; call++) {
                System.arraycopy(logits, 0, row, 0, vocabulary);
                if (call % 2 == 0) {
                    checksum += sampler.sample(row, 0, recent, recent.length);
                } else {
                    sampler.distribution(row, 0, recent, recent.length, probs);
                }
            }
            long allocated = threads.getCurrentThreadAllocatedBytes() - before;
            assertThat(allocated).as("%s (checksum %d)", c, checksum).isLessThan(10_000);
        }
        GenerationConfig topK = GenerationConfig.defaults().seed(2);
        Sampler sampler = new Sampler(topK, vocabulary);
        float[] values = new float[40];
        int[] ids = new int[40];
        TopK.select(logits, 0, vocabulary, 40, values, ids, 0);
        int checksum = 0;
        for (int warmUp = 0; warmUp < 10_000; warmUp++) {
            checksum += sampler.sampleCandidates(values, ids, 0);
        }
        long before = threads.getCurrentThreadAllocatedBytes();
        for (int call = 0; call < 10_000; call++) {
            TopK.select(logits, 0, vocabulary, 40, values, ids, 0);
            checksum += sampler.sampleCandidates(values, ids, 0);
        }
        assertThat(threads.getCurrentThreadAllocatedBytes() - before).as("candidates (checksum %d)", checksum)
                .isLessThan(10_000);
    }
}
