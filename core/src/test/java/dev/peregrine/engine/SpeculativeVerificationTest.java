package dev.peregrine.engine;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.Completion;
import dev.peregrine.Drafter;
import dev.peregrine.GeneratedToken;
import dev.peregrine.GenerationConfig;
import dev.peregrine.kv.KvCache;
import dev.peregrine.tokenizer.Tokenizer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

/**
 * {@link Generation#acceptDrafts}, the verification rule, without a model: a made-up "model" whose
 * logits at each position depend on the tokens before it, and a small scheduler loop that drafts,
 * "evaluates" and verifies exactly as {@link Scheduler} does. With a six-token vocabulary the exact
 * distribution of the first tokens is easy to compute independently, so many samples can check
 * that speculation leaves it unchanged, for one-hot drafts and drafts with probabilities.
 */
class SpeculativeVerificationTest {
    static final int V = 6;
    static final int[] PROMPT = {0, 1};
    /** Temperature, top-k, min-p and a repetition penalty over the last 3 tokens. */
    static final GenerationConfig CONFIG = GenerationConfig.defaults().temperature(0.9f).topK(4).topP(1f).minP(0.05f)
            .repetitionPenalty(1.6f, 3).ignoreEos(true);

    /** The made-up model: logits after a history, a fixed function of its last two tokens. */
    static float[] modelLogits(int[] history, int length) {
        int a = history[length - 1];
        int b = history[length - 2];
        float[] logits = new float[V];
        for (int t = 0; t < V; t++) {
            logits[t] = (float) Math.sin(1.3 * t + 0.7 * a + 0.31 * b * t) * 2.0f + (t == (a + 1) % V ? 1.0f : 0f);
        }
        return logits;
    }

    /** The config's distribution after a history, computed independently of {@code Sampler}. */
    static double[] exactDistribution(int[] history, int length) {
        float[] raw = modelLogits(history, length);
        double[] x = new double[V];
        for (int t = 0; t < V; t++) {
            x[t] = raw[t];
        }
        boolean[] seen = new boolean[V];
        for (int i = Math.max(0, length - 3); i < length; i++) {
            int t = history[i];
            if (!seen[t]) {
                seen[t] = true;
                x[t] = x[t] > 0 ? x[t] / 1.6 : x[t] * 1.6;
            }
        }
        Integer[] order = {0, 1, 2, 3, 4, 5};
        Arrays.sort(order, (p, q) -> x[p] != x[q] ? Double.compare(x[q], x[p]) : Integer.compare(p, q));
        double[] prob = new double[V];
        double sum = 0;
        for (int j = 0; j < 4; j++) {
            prob[order[j]] = Math.exp((x[order[j]] - x[order[0]]) / 0.9);
            sum += prob[order[j]];
        }
        double kept = 0;
        for (int j = 0; j < 4; j++) {
            if (prob[order[j]] / sum < 0.05 * prob[order[0]] / sum) {
                prob[order[j]] = 0;
            }
            kept += prob[order[j]];
        }
        for (int t = 0; t < V; t++) {
            prob[t] /= kept;
        }
        return prob;
    }

    /** Exact probability of each triple of first generated tokens, as index (a * V + b) * V + c. */
    static double[] exactTriples() {
        double[] triples = new double[V * V * V];
        int n = PROMPT.length;
        int[] h = Arrays.copyOf(PROMPT, n + 2);
        double[] first = exactDistribution(h, n);
        for (int a = 0; a < V; a++) {
            h[n] = a;
            double[] second = exactDistribution(h, n + 1);
            for (int b = 0; b < V; b++) {
                h[n + 1] = b;
                double[] third = exactDistribution(h, n + 2);
                for (int c = 0; c < V; c++) {
                    triples[(a * V + b) * V + c] = first[a] * second[b] * third[c];
                }
            }
        }
        return triples;
    }

    /**
     * Runs a generation the way the scheduler does: the prompt's step, then steps that each draft
     * (when the drafter proposes anything), evaluate the last token and the draft together, and
     * verify. Returns the generated tokens.
     */
    static int[] run(Speculator speculator, GenerationConfig config) {
        SequenceState seq = new SequenceState(new KvCache(null, 0, 1, 1, 64, 16), 1000);
        seq.append(PROMPT);
        Generation g = new Generation(seq, PROMPT, config, new Letters(), 0, speculator);
        List<Integer> out = new ArrayList<>();
        Scheduler.Sink sink = new Scheduler.Sink() {
            @Override
            public void onToken(GeneratedToken token) {
                out.add(token.id());
            }

            @Override
            public void onComplete(Completion completion) {
            }

            @Override
            public void onError(RuntimeException error) {
            }
        };
        evaluate(seq, seq.pendingTokens());
        LogitRows logitRows = new LogitRows(V, 1, 64);
        System.arraycopy(modelLogits(seq.tokenArray(), seq.length()), 0, logitRows.fullRows(1), 0, V);
        sink.onToken(g.accept(logitRows, 0));
        while (!g.isFinished()) {
            int k = g.draftLimit();
            int drafted = k > 0 ? speculator.proposeWithDrafter(k) : 0;
            for (int j = 0; j < drafted; j++) {
                seq.append(speculator.draft().token(j));
            }
            // The logits of every position of the span: after the last token, and after each draft token.
            float[] rows = logitRows.fullRows(drafted + 1);
            for (int j = 0; j <= drafted; j++) {
                System.arraycopy(modelLogits(seq.tokenArray(), seq.length() - drafted + j), 0, rows, j * V, V);
            }
            evaluate(seq, drafted + 1);
            if (drafted > 0) {
                g.acceptDrafts(logitRows, 0, drafted, sink);
            } else {
                sink.onToken(g.accept(logitRows, 0));
            }
            assertThat(seq.kv().length()).as("no rejected draft stays in the cache").isLessThan(seq.length());
        }
        assertThat(seq.length()).isEqualTo(PROMPT.length + out.size());
        return out.stream().mapToInt(Integer::intValue).toArray();
    }

    static Speculator speculator(Drafter drafter, int maxDraft, boolean adaptive) {
        return Speculator.withDrafter(drafter, V, maxDraft, adaptive, 64, false);
    }

    /** Stands in for a forward pass: the span's positions now hold keys and values. */
    private static void evaluate(SequenceState seq, int n) {
        seq.kv().reserve(n);
        seq.kv().advance(seq.kv().length() + n);
    }

    static Drafter fixedTokens(int... tokens) {
        return (history, length, d) -> {
            for (int i = 0; i < tokens.length && d.size() < d.maxTokens(); i++) {
                d.add(tokens[i]);
            }
        };
    }

    static Drafter randomOneHot(long seed) {
        Random random = new Random(seed);
        return (history, length, d) -> {
            while (d.size() < d.maxTokens()) {
                d.add(random.nextInt(V));
            }
        };
    }

    /** Draws from a fixed distribution (unlike the model's) and says so. */
    static Drafter withProbabilities(long seed) {
        Random random = new Random(seed);
        float[] q = {0.05f, 0.3f, 0.1f, 0.25f, 0.2f, 0.1f};
        return (history, length, d) -> {
            while (d.size() < d.maxTokens()) {
                double u = random.nextDouble();
                int t = 0;
                for (double c = q[0]; c <= u && t < V - 1; c += q[++t]) {
                    // walk the cumulative distribution
                }
                d.add(t, q);
            }
        };
    }

    /** The model's own distribution as the draft distribution: every draft must be accepted. */
    static Drafter perfect(long seed) {
        Random random = new Random(seed);
        return (history, length, d) -> {
            int[] h = Arrays.copyOf(history, length + d.maxTokens());
            int n = length;
            while (d.size() < d.maxTokens()) {
                double[] p = exactDistribution(h, n);
                float[] q = new float[V];
                double u = random.nextDouble();
                int t = -1;
                double c = 0;
                for (int i = 0; i < V; i++) {
                    q[i] = (float) p[i];
                    c += p[i];
                    if (t < 0 && u < c) {
                        t = i;
                    }
                }
                t = t < 0 ? V - 1 : t;
                while (q[t] == 0) {
                    t--; // rounding at the very end of the cumulative sum
                }
                d.add(t, q);
                h[n++] = t;
            }
        };
    }

    @Test
    void speculativeSamplingKeepsTheExactDistributionOfTheFirstThreeTokens() {
        // The first token comes from the prompt's step; the second and third from the first
        // verification span, at draft positions 0 and 1 (or after a rejection, the next span).
        double[] exact = exactTriples();
        int n = 20_000;
        Drafter[] drafters = {fixedTokens(), fixedTokens(2, 3, 4), randomOneHot(1), withProbabilities(2), perfect(3)};
        for (Drafter drafter : drafters) {
            int[] counts = new int[V * V * V];
            for (int i = 0; i < n; i++) {
                int[] out = run(speculator(drafter, 3, true), CONFIG.seed(i).maxTokens(4));
                counts[(out[0] * V + out[1]) * V + out[2]]++;
            }
            double chi2 = 0;
            int bins = 0;
            double pooledExpected = 0;
            int pooledCount = 0;
            for (int b = 0; b < exact.length; b++) {
                double e = exact[b] * n;
                if (e == 0) {
                    assertThat(counts[b]).as("impossible triple %d", b).isZero();
                } else if (e < 5) {
                    pooledExpected += e;
                    pooledCount += counts[b];
                } else {
                    chi2 += (counts[b] - e) * (counts[b] - e) / e;
                    bins++;
                }
            }
            if (pooledExpected > 0) {
                chi2 += (pooledCount - pooledExpected) * (pooledCount - pooledExpected) / pooledExpected;
                bins++;
            }
            // Critical value of chi-squared at 0.001 (Wilson and Hilferty), bins - 1 degrees of freedom.
            int df = bins - 1;
            double a = 2.0 / (9 * df);
            double critical = df * Math.pow(1 - a + 3.0902 * Math.sqrt(a), 3);
            assertThat(chi2).as("chi-squared over %d outcomes", bins).isLessThan(critical);
        }
    }

    @Test
    void theModelsOwnDistributionAsDraftIsAlwaysAcceptedAndRandomTokensRarely() {
        Speculator perfect = speculator(perfect(4), 4, false);
        Speculator random = speculator(randomOneHot(5), 4, false);
        for (int i = 0; i < 200; i++) {
            run(perfect, CONFIG.seed(i).maxTokens(12));
            run(random, CONFIG.seed(i).maxTokens(12));
        }
        assertThat(perfect.stats().draftedTokens()).isPositive();
        assertThat(perfect.stats().acceptedTokens()).isEqualTo(perfect.stats().draftedTokens());
        assertThat(perfect.stats().forwardPassesSaved()).isEqualTo(perfect.stats().acceptedTokens());
        assertThat(random.stats().acceptanceRate()).isBetween(0.05, 0.6);
    }

    @Test
    void greedyKeepsTheLongestAgreeingPrefixThenTheModelsToken() {
        GenerationConfig greedy = GenerationConfig.greedy().maxTokens(20).ignoreEos(true);
        int[] plain = new int[20];
        int[] h = Arrays.copyOf(PROMPT, PROMPT.length + 20);
        for (int i = 0; i < 20; i++) {
            float[] l = modelLogits(h, PROMPT.length + i);
            int best = 0;
            for (int t = 1; t < V; t++) {
                if (l[t] > l[best]) {
                    best = t;
                }
            }
            plain[i] = best;
            h[PROMPT.length + i] = best;
        }
        for (Drafter d : List.of(randomOneHot(5), fixedTokens(plain[1], plain[2], plain[3], 0, 0))) {
            Speculator s = speculator(d, 5, true);
            assertThat(run(s, greedy)).containsExactly(plain);
            assertThat(s.stats().verifications()).isPositive();
        }
        Speculator adaptive = speculator(randomOneHot(6), 5, true);
        run(adaptive, greedy);
        assertThat(adaptive.stats().draftedTokens()).as("the draft length shrinks after rejections")
                .isLessThan(2L * adaptive.stats().verifications());
    }

    @Test
    void draftsAreCheckedWhenAdded() {
        Drafter negative = (h, n, d) -> d.add(0, new float[] {1, -1, 0, 0, 0, 0});
        Drafter zero = (h, n, d) -> d.add(2, new float[] {1, 1, 0, 0, 0, 0});
        Drafter outside = (h, n, d) -> d.add(V);
        Drafter tooMany = (h, n, d) -> {
            for (int i = 0; i <= d.maxTokens(); i++) {
                d.add(1);
            }
        };
        for (Drafter d : List.of(negative, zero, outside, tooMany)) {
            assertThatThrownBy(() -> run(speculator(d, 3, true), CONFIG.seed(1).maxTokens(8)))
                    .isInstanceOfAny(IllegalArgumentException.class, IllegalStateException.class);
        }
    }

    /** Six one-letter tokens, none of them special. */
    static final class Letters implements Tokenizer {
        @Override
        public int[] encode(String text, boolean addSpecial, boolean parseSpecial) {
            return text.chars().map(c -> c - 'a').toArray();
        }

        @Override
        public byte[] tokenBytes(int id) {
            return piece(id).getBytes(StandardCharsets.UTF_8);
        }

        @Override
        public String piece(int id) {
            return String.valueOf((char) ('a' + id));
        }

        @Override
        public String decode(int[] ids) {
            StringBuilder s = new StringBuilder();
            for (int id : ids) {
                s.append(piece(id));
            }
            return s.toString();
        }

        @Override
        public int vocabularySize() {
            return V;
        }

        @Override
        public int bosId() {
            return -1;
        }

        @Override
        public int eosId() {
            return -1;
        }

        @Override
        public boolean isEndOfGeneration(int id) {
            return false;
        }
    }
}
