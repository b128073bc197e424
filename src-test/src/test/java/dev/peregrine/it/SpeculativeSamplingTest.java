package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.Completion;
import dev.peregrine.Drafter;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Speculation;
import dev.peregrine.SpeculationStats;
import dev.peregrine.format.gguf.GgufFile;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.function.Supplier;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * Sampling with speculation draws from exactly the distribution of plain sampling. On stories260K
 * (vocabulary 512), the joint distribution of the first three generated tokens is computed exactly
 * with the float64 {@link ReferenceLlama} and an independent implementation of the sampling
 * filters; the tokens of {@link #SAMPLES} seeded requests per drafter are checked against it with
 * Pearson's chi-squared test at significance 0.001.
 *
 * <p>The config uses temperature, top-k, min-p and a repetition penalty, so draft positions are
 * verified under penalties that depend on the drafted tokens before them. The first token comes
 * from the prompt's step; the next step drafts two tokens (four tokens at most: two drafts and the
 * model's own), so tokens 2 and 3 come from a verification span: kept drafts, residual draws after
 * a rejection, or the bonus token.
 *
 * <p>Sample size: the joint distribution has 20 outcomes, the two most likely at 0.117 and 0.094.
 * A 2% shift — 0.02 of probability moved from one outcome to another — is least visible between
 * those two; with n samples the statistic then has non-centrality n * 0.02^2 * (1/0.117 + 1/0.094)
 * = n * 0.0077. With 19 degrees of freedom the critical value at 0.001 is 43.8, and n = 6,000 gives
 * non-centrality 46 and a power of 0.93 (the probability that such a shift fails the test).
 */
class SpeculativeSamplingTest {
    static final int SAMPLES = 6_000;
    static final int TOKENS = 3;
    static final String PROMPT = "Lily saw a";
    static final float TEMPERATURE = 1.0f;
    static final int TOP_K = 3;
    static final float MIN_P = 0.05f;
    static final float PENALTY = 1.3f;
    static final int PENALTY_LAST_N = 64;
    static final GenerationConfig CONFIG = GenerationConfig.defaults().temperature(TEMPERATURE).topK(TOP_K).topP(1f)
            .minP(MIN_P).repetitionPenalty(PENALTY, PENALTY_LAST_N).maxTokens(TOKENS + 1).ignoreEos(true);

    private static Model target;
    private static Model draft;
    private static Map<Long, Double> exact;

    @BeforeAll
    static void setUp() {
        // Large batches: each step costs little more for 256 sequences than for 64.
        target = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withMaxSequences(256));
        draft = Model.load(SharedModels.stories260KQ8());
        exact = exactJointDistribution();
    }

    @AfterAll
    static void tearDown() {
        draft.close();
        target.close();
    }

    record Case(String name, Supplier<Speculation> speculation) {
        @Override
        public String toString() {
            return name;
        }
    }

    static Stream<Case> drafters() {
        return Stream.of(
                new Case("no speculation (checks the reference)", () -> null),
                new Case("draft model (the Q8_0 copy)", () -> Speculation.draftModel(draft, 3)),
                new Case("random tokens, no probabilities", () -> Speculation.drafter(randomTokens(), 3)),
                new Case("drafter with probabilities", () -> Speculation.drafter(withProbabilities(), 3)));
    }

    @ParameterizedTest
    @MethodSource("drafters")
    void firstTokensFollowThePlainSamplingDistribution(Case c) {
        Speculation s = c.speculation().get();
        GenerationConfig config = s == null ? CONFIG : CONFIG.withSpeculation(s.withAdaptiveLength(false).withMaxBatchSequences(1024)
                .withFallbackWhenSlower(false)); // every step verifies: the distribution of that is the question
        Map<Long, Integer> observed = new HashMap<>();
        long drafted = 0;
        long accepted = 0;
        int wave = 512;
        for (int from = 0; from < SAMPLES; from += wave) {
            List<CompletableFuture<Completion>> futures = new ArrayList<>();
            for (int i = from; i < Math.min(SAMPLES, from + wave); i++) {
                futures.add(target.generator().generateAsync(PROMPT, config.seed(i)));
            }
            for (CompletableFuture<Completion> f : futures) {
                Completion done = f.join();
                observed.merge(key(done.outputTokens(), TOKENS), 1, Integer::sum);
                SpeculationStats stats = done.speculation();
                drafted += stats.draftedTokens();
                accepted += stats.acceptedTokens();
            }
        }
        double[] test = chiSquared(observed, SAMPLES);
        System.out.printf(Locale.ROOT, "[SpeculativeSamplingTest] %s: chi2 %.1f, %d bins, critical value %.1f; "
                + "drafted %d, accepted %d%n", c, test[0], (int) test[1] + 1, test[2], drafted, accepted);
        if (s != null) {
            assertThat(drafted).as("the drafter was used").isGreaterThan(SAMPLES);
        }
        assertThat(test[0]).as("chi-squared statistic vs the exact distribution").isLessThan(test[2]);
    }

    /** Proposes uniformly random tokens, with no distribution: verified as one-hot drafts. */
    static Drafter randomTokens() {
        Random random = new Random(11);
        return (tokens, length, d) -> {
            while (d.size() < d.maxTokens()) {
                d.add(random.nextInt(d.vocabularySize()));
            }
        };
    }

    /**
     * Draws each token from a fixed distribution that overlaps the model's: most of its mass on the
     * tokens that can occur here, the rest spread over the vocabulary. Drafts are accepted often
     * enough to reach several positions, and rejected often enough to exercise the residual.
     */
    static Drafter withProbabilities() {
        Random random = new Random(12);
        float[] q = new float[target.vocabularySize()];
        for (long key : exact.keySet()) {
            for (int i = 0; i < TOKENS; i++) {
                q[(int) ((key >> (20 * i)) & 0xFFFFF)] += 1;
            }
        }
        float sum = 0;
        for (float v : q) {
            sum += v;
        }
        for (int id = 0; id < q.length; id++) {
            q[id] = 0.8f * q[id] / sum + 0.2f / q.length;
        }
        return (tokens, length, d) -> {
            while (d.size() < d.maxTokens()) {
                double u = random.nextDouble();
                int id = 0;
                for (double c = q[0]; c <= u && id < q.length - 1; c += q[++id]) {
                    // walk the cumulative distribution
                }
                d.add(id, q);
            }
        };
    }

    /** Packs up to three token ids (each below 2^20) into one key. */
    static long key(int[] tokens, int n) {
        long k = 0;
        for (int i = 0; i < n; i++) {
            k |= (long) tokens[i] << (20 * i);
        }
        return k;
    }

    /**
     * The exact probability of every sequence of the first {@link #TOKENS} tokens: the product of
     * each position's sampling distribution after the prompt and the tokens before it.
     */
    static Map<Long, Double> exactJointDistribution() {
        Map<Long, Double> joint = new HashMap<>();
        int[] prompt = target.encode(PROMPT);
        try (Arena arena = Arena.ofConfined()) {
            ReferenceLlama ref = new ReferenceLlama(GgufFile.open(SharedModels.stories260K(), arena));
            expand(ref, prompt, new int[0], 1.0, joint);
        }
        return joint;
    }

    private static void expand(ReferenceLlama ref, int[] prompt, int[] generated, double probability, Map<Long, Double> joint) {
        if (generated.length == TOKENS) {
            joint.put(key(generated, TOKENS), probability);
            return;
        }
        int[] history = new int[prompt.length + generated.length];
        System.arraycopy(prompt, 0, history, 0, prompt.length);
        System.arraycopy(generated, 0, history, prompt.length, generated.length);
        ref.reset();
        double[] logits = null;
        for (int i = 0; i < history.length; i++) {
            logits = ref.forward(history[i], i);
        }
        double[] p = samplingDistribution(logits, history);
        for (int t = 0; t < p.length; t++) {
            if (p[t] > 0) {
                int[] next = Arrays.copyOf(generated, generated.length + 1);
                next[generated.length] = t;
                expand(ref, prompt, next, probability * p[t], joint);
            }
        }
    }

    /**
     * The distribution the config samples from, written independently of Peregrine's sampler:
     * repetition penalty over the distinct tokens of the last N, temperature, the k best tokens
     * (ties to the lower id), softmax, then min-p relative to the best, renormalised.
     */
    static double[] samplingDistribution(double[] rawLogits, int[] history) {
        double[] x = rawLogits.clone();
        boolean[] seen = new boolean[x.length];
        for (int i = Math.max(0, history.length - PENALTY_LAST_N); i < history.length; i++) {
            int id = history[i];
            if (!seen[id]) {
                seen[id] = true;
                x[id] = x[id] > 0 ? x[id] / PENALTY : x[id] * PENALTY;
            }
        }
        Integer[] order = new Integer[x.length];
        for (int i = 0; i < x.length; i++) {
            order[i] = i;
        }
        Arrays.sort(order, (a, b) -> x[a] != x[b] ? Double.compare(x[b], x[a]) : Integer.compare(a, b));
        double[] p = new double[x.length];
        double max = x[order[0]];
        double sum = 0;
        for (int j = 0; j < TOP_K; j++) {
            int id = order[j];
            p[id] = Math.exp((x[id] - max) / TEMPERATURE);
            sum += p[id];
        }
        double kept = 0;
        for (int j = 0; j < TOP_K; j++) {
            int id = order[j];
            p[id] /= sum;
            if (p[id] < MIN_P * p[order[0]]) {
                p[id] = 0;
            }
            kept += p[id];
        }
        for (int id = 0; id < p.length; id++) {
            p[id] /= kept;
        }
        return p;
    }

    /**
     * Pearson's chi-squared statistic of the observed counts against {@link #exact}, with the
     * outcomes expected fewer than 5 times pooled into one bin. Returns {statistic, degrees of
     * freedom, critical value at significance 0.001}.
     */
    static double[] chiSquared(Map<Long, Integer> observed, int n) {
        double statistic = 0;
        int bins = 0;
        double pooledExpected = 0;
        long pooledObserved = 0;
        for (Map.Entry<Long, Double> e : exact.entrySet()) {
            double expected = e.getValue() * n;
            int count = observed.getOrDefault(e.getKey(), 0);
            if (expected >= 5) {
                statistic += (count - expected) * (count - expected) / expected;
                bins++;
            } else {
                pooledExpected += expected;
                pooledObserved += count;
            }
        }
        for (Map.Entry<Long, Integer> e : observed.entrySet()) {
            if (!exact.containsKey(e.getKey())) {
                pooledObserved += e.getValue(); // impossible under the exact distribution
            }
        }
        if (pooledExpected > 0) {
            statistic += (pooledObserved - pooledExpected) * (pooledObserved - pooledExpected) / pooledExpected;
            bins++;
        }
        int df = bins - 1;
        return new double[] {statistic, df, chiSquaredCritical(df, 3.0902)};
    }

    /** The chi-squared quantile for the standard normal quantile z (Wilson and Hilferty's cube approximation). */
    static double chiSquaredCritical(int df, double z) {
        double a = 2.0 / (9 * df);
        double c = 1 - a + z * Math.sqrt(a);
        return df * c * c * c;
    }
}
