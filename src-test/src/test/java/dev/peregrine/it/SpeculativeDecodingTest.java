package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.Completion;
import dev.peregrine.Drafter;
import dev.peregrine.GenerationConfig;
import dev.peregrine.GeneratorMetrics;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.PeregrineException;
import dev.peregrine.Session;
import dev.peregrine.Speculation;
import dev.peregrine.SpeculationStats;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Function;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Speculative decoding is lossless for greedy decoding: with any drafter — a perfect one, a
 * partly wrong one, random tokens, prompt lookup, the real draft model — the output is token for
 * token the output without speculation, alone and inside a batch of other requests, and the
 * sequence and KV cache it leaves behind are those of plain decoding.
 */
class SpeculativeDecodingTest {
    private static final String[] PROMPTS = {
            "Once upon a time", "Lily and Tom went to the park to play with a big red ball",
            "The cat sat on the mat. The cat sat on the mat. The cat", "Sam had a dog",
    };
    private static final int MAX_TOKENS = 120;

    private static Model target;
    private static Model draft;

    @BeforeAll
    static void load() {
        target = Model.load(SharedModels.stories260K());
        draft = Model.load(SharedModels.stories260KQ8());
    }

    @AfterAll
    static void close() {
        draft.close();
        target.close();
    }

    /** Proposes random tokens: almost every draft is rejected. */
    static Drafter randomTokens(long seed) {
        Random random = new Random(seed);
        return (tokens, length, d) -> {
            while (d.size() < d.maxTokens()) {
                d.add(random.nextInt(d.vocabularySize()));
            }
        };
    }

    /**
     * Proposes the plain greedy continuation it was given (so everything is accepted), except
     * that every {@code wrongEvery}-th proposed token is replaced by another one.
     */
    static Drafter knowing(int promptLength, int[] continuation, int wrongEvery) {
        return (tokens, length, d) -> {
            for (int i = length - promptLength; i < continuation.length && d.size() < d.maxTokens(); i++) {
                boolean wrong = wrongEvery > 0 && (i + 1) % wrongEvery == 0;
                d.add(wrong ? (continuation[i] + 1) % d.vocabularySize() : continuation[i]);
            }
        };
    }

    record Case(String name, Function<int[][], Speculation> speculation) {
        @Override
        public String toString() {
            return name;
        }
    }

    /**
     * Speculation configs; the argument is {prompt tokens, plain continuation}. They draft at every
     * step (no fallback when slower, which on this tiny model would soon stop most of them), so
     * that verification runs throughout; one prompt-lookup case keeps the default fallback.
     */
    static Stream<Case> drafters() {
        return Stream.of(
                new Case("draft model, 4", x -> Speculation.draftModel(draft, 4).withFallbackWhenSlower(false)),
                new Case("draft model, 8, fixed length",
                        x -> Speculation.draftModel(draft, 8).withAdaptiveLength(false).withFallbackWhenSlower(false)),
                new Case("prompt lookup", x -> Speculation.promptLookup(1, 3, 6).withFallbackWhenSlower(false)),
                new Case("prompt lookup, falling back when slower", x -> Speculation.promptLookup(1, 3, 6)),
                new Case("random tokens", x -> Speculation.drafter(randomTokens(1), 5).withFallbackWhenSlower(false)),
                new Case("perfect drafter", x -> Speculation.drafter(knowing(x[0].length, x[1], 0), 7).withFallbackWhenSlower(false)),
                new Case("every third token wrong",
                        x -> Speculation.drafter(knowing(x[0].length, x[1], 3), 5).withFallbackWhenSlower(false)),
                new Case("self-draft", x -> Speculation.draftModel(target, 3).withFallbackWhenSlower(false)));
    }

    @ParameterizedTest
    @MethodSource("drafters")
    void greedyOutputIsIdenticalWithEveryDrafter(Case c) {
        for (GenerationConfig base : List.of(GenerationConfig.greedy(), GenerationConfig.greedy().repetitionPenalty(1.3f, 16))) {
            for (String prompt : PROMPTS) {
                GenerationConfig config = base.maxTokens(MAX_TOKENS);
                Completion plain = target.generator().generate(prompt, config);
                int[] x = target.encode(prompt);
                Completion fast = target.generator().generate(prompt,
                        config.withSpeculation(c.speculation().apply(new int[][] {x, plain.outputTokens()})));
                assertThat(fast.outputTokens()).as("%s, %s", prompt, config).containsExactly(plain.outputTokens());
                assertThat(fast.text()).isEqualTo(plain.text());
                assertThat(fast.finishReason()).isEqualTo(plain.finishReason());
                SpeculationStats s = fast.speculation();
                assertThat(s.acceptedTokens()).isLessThanOrEqualTo(s.draftedTokens());
                assertThat(s.forwardPassesSaved()).isLessThanOrEqualTo(s.acceptedTokens());
            }
        }
        awaitIdle(target);
        assertThat(target.generator().metrics().kvBlocksUsed()).isZero();
        assertThat(draft.generator().metrics().kvBlocksUsed()).as("draft-model KV blocks given back").isZero();
    }

    /**
     * Seeded sampling with drafters that give tokens without distributions (prompt lookup, random
     * tokens, a perfect and a partly wrong drafter): exactly the tokens of plain seeded sampling,
     * with the repetition penalty and the temperature last too, whatever is drafted and kept.
     */
    @Test
    void seededSamplingWithDraftsWithoutDistributionsGivesThePlainTokens() {
        for (GenerationConfig base : List.of(GenerationConfig.defaults().temperature(0.9f).seed(7),
                GenerationConfig.defaults().temperature(0.6f).topP(0.9f).repetitionPenalty(1.3f, 16).temperatureLast(true)
                        .seed(8))) {
            for (String prompt : PROMPTS) {
                GenerationConfig config = base.maxTokens(MAX_TOKENS);
                Completion plain = target.generator().generate(prompt, config);
                int[] x = target.encode(prompt);
                List<Speculation> speculations = List.of(Speculation.promptLookup(1, 3, 6),
                        Speculation.drafter(randomTokens(3), 4),
                        Speculation.drafter(knowing(x.length, plain.outputTokens(), 0), 6),
                        Speculation.drafter(knowing(x.length, plain.outputTokens(), 3), 5));
                for (Speculation s : speculations) {
                    Completion fast = target.generator().generate(prompt,
                            config.withSpeculation(s.withFallbackWhenSlower(false)));
                    assertThat(fast.outputTokens()).as("%s, %s, %s", prompt, config, s).containsExactly(plain.outputTokens());
                    assertThat(fast.speculation().draftedTokens()).isPositive();
                }
            }
        }
    }

    @Test
    void statisticsReflectHowGoodTheDrafterIs() {
        String prompt = PROMPTS[0];
        GenerationConfig config = GenerationConfig.greedy().maxTokens(MAX_TOKENS).ignoreEos(true);
        Completion plain = target.generator().generate(prompt, config);
        int[] x = target.encode(prompt);
        SpeculationStats before = target.generator().metrics().speculation();

        // Drafting at every step, whatever it costs, so that the counts below are exact.
        SpeculationStats perfect = target.generator().generate(prompt, config.withSpeculation(
                Speculation.drafter(knowing(x.length, plain.outputTokens(), 0), 8).withFallbackWhenSlower(false))).speculation();
        assertThat(perfect.acceptanceRate()).isEqualTo(1.0);
        // 120 tokens: the first comes from the prompt's step, then up to 9 per step.
        assertThat(perfect.verifications()).isLessThanOrEqualTo(1 + (MAX_TOKENS - 1 + 8) / 9 + 3);
        assertThat(perfect.forwardPassesSaved()).isEqualTo(MAX_TOKENS - 1 - perfect.verifications());
        assertThat(perfect.meanAcceptedLength()).isGreaterThan(6);

        SpeculationStats random = target.generator().generate(prompt,
                config.withSpeculation(Speculation.drafter(randomTokens(2), 4).withFallbackWhenSlower(false))).speculation();
        assertThat(random.acceptanceRate()).isLessThan(0.1);
        assertThat(random.draftedTokens()).as("adaptive length shrinks to 1 after rejections")
                .isLessThan(2L * random.verifications());

        SpeculationStats real = target.generator().generate(prompt,
                config.withSpeculation(Speculation.draftModel(draft, 4).withFallbackWhenSlower(false))).speculation();
        assertThat(real.acceptanceRate()).as("the Q8_0 copy of the same model agrees almost always").isGreaterThan(0.8);

        SpeculationStats total = target.generator().metrics().speculation();
        assertThat(total.draftedTokens() - before.draftedTokens())
                .isEqualTo(perfect.draftedTokens() + random.draftedTokens() + real.draftedTokens());
        assertThat(total.acceptedTokens() - before.acceptedTokens())
                .isEqualTo(perfect.acceptedTokens() + random.acceptedTokens() + real.acceptedTokens());
        System.out.printf("[SpeculativeDecodingTest] acceptance: perfect %.2f, random %.3f, draft model %.2f (mean accepted %.2f)%n",
                perfect.acceptanceRate(), random.acceptanceRate(), real.acceptanceRate(), real.meanAcceptedLength());
    }

    /**
     * The draft model's proposals are its own greedy continuations of the target's exact history,
     * so how many are drafted and accepted follows from what the draft predicts alone at each
     * position: a draft sequence left with stale or rolled-back state by an earlier step would
     * propose other tokens (the output stays right, only fewer drafts are accepted). Checked on
     * the real pair and on a synthetic target with its own weights in Q4_0 as the draft, which
     * disagree often enough to exercise every rollback length.
     */
    @ParameterizedTest
    @ValueSource(ints = {1, 2, 4})
    void draftsAcceptedAreExactlyThoseTheDraftModelPredictsAlone(int maxDraft, @TempDir Path dir) {
        ModelShape tiny = ModelShape.named("tiny");
        Path tinyTarget = dir.resolve("tiny-f32.gguf");
        Path tinyDraft = dir.resolve("tiny-q4.gguf");
        SyntheticModel.of(tiny, 5).writeGguf(tinyTarget, DType.F32, TokenizerMetadata.synthetic(tiny.vocab()), 1);
        SyntheticModel.of(tiny, 5).writeGguf(tinyDraft, DType.Q4_0, TokenizerMetadata.synthetic(tiny.vocab()), 1);
        ModelOptions noCaching = ModelOptions.defaults().withPrefixCaching(false);
        try (Model t = Model.load(tinyTarget, noCaching); Model d = Model.load(tinyDraft, noCaching)) {
            assertDraftStatisticsFollowTheDraftAlone(t, d, maxDraft, "synthetic tiny F32 + its Q4_0");
        }
        assertDraftStatisticsFollowTheDraftAlone(target, draft, maxDraft, "stories260K + Q8_0");
    }

    private static void assertDraftStatisticsFollowTheDraftAlone(Model t, Model d, int maxDraft, String pair) {
        int[] prompt = t.encode(PROMPTS[1]);
        int n = 80;
        GenerationConfig config = GenerationConfig.greedy().maxTokens(n).ignoreEos(true);
        int[] out = t.generator().generate(prompt, config, token -> { }).outputTokens();
        // Whether the draft alone, given the prompt and out[0..i), predicts out[i]: each a fresh request.
        boolean[] agrees = new boolean[n];
        int[] history = Arrays.copyOf(prompt, prompt.length + n);
        System.arraycopy(out, 0, history, prompt.length, n);
        for (int i = 0; i < n; i++) {
            int[] prefix = Arrays.copyOf(history, prompt.length + i);
            agrees[i] = d.generator().generate(prefix, GenerationConfig.greedy().maxTokens(1), token -> { }).outputTokens()[0] == out[i];
        }
        // The first token comes from the prompt's step; then each verification of k drafts at
        // output position i accepts the drafts up to the first disagreement and adds the target's token.
        long drafted = 0;
        long accepted = 0;
        long verifications = 0;
        for (int i = 1; i < n; ) {
            int k = Math.min(maxDraft, n - i - 1);
            if (k == 0) {
                i++;
                continue;
            }
            int a = 0;
            while (a < k && agrees[i + a]) {
                a++;
            }
            verifications++;
            drafted += k;
            accepted += a;
            i += a + 1;
        }
        Completion fast = t.generator().generate(prompt, config.withSpeculation(Speculation.draftModel(d, maxDraft)
                .withFallbackWhenSlower(false).withAdaptiveLength(false)), token -> { });
        assertThat(fast.outputTokens()).containsExactly(out);
        SpeculationStats s = fast.speculation();
        System.out.printf("[SpeculativeDecodingTest] %s, draft %d: %s%n", pair, maxDraft, s);
        assertThat(accepted).as("%s: some drafts rejected, some accepted", pair).isBetween(1L, drafted - 1);
        assertThat(new long[] {s.draftedTokens(), s.acceptedTokens(), s.verifications()})
                .as("%s: drafted, accepted, verifications", pair).containsExactly(drafted, accepted, verifications);
    }

    @Test
    void stopConditionsInsideAcceptedDraftsEndWhereThePlainOutputEnds() {
        String prompt = PROMPTS[0];
        int[] x = target.encode(prompt);
        Completion full = target.generator().generate(prompt, GenerationConfig.greedy().maxTokens(MAX_TOKENS));
        int[] out = full.outputTokens();
        List<GenerationConfig> configs = List.of(
                GenerationConfig.greedy().maxTokens(37),
                GenerationConfig.greedy().maxTokens(MAX_TOKENS).stopTokens(out[20]),
                GenerationConfig.greedy().maxTokens(MAX_TOKENS).stopStrings("park"));
        for (GenerationConfig config : configs) {
            Completion plain = target.generator().generate(prompt, config);
            Completion fast = target.generator().generate(prompt,
                    config.withSpeculation(Speculation.drafter(knowing(x.length, out, 0), 8).withFallbackWhenSlower(false)));
            assertThat(fast.outputTokens()).as("%s", config).containsExactly(plain.outputTokens());
            assertThat(fast.text()).isEqualTo(plain.text());
            assertThat(fast.finishReason()).isEqualTo(plain.finishReason());
            List<String> streamed = new ArrayList<>();
            target.generator().generate(target.encode(prompt),
                    config.withSpeculation(Speculation.drafter(knowing(x.length, out, 0), 8).withFallbackWhenSlower(false)), t -> streamed.add(t.text()));
            assertThat(String.join("", streamed)).isEqualTo(plain.text());
        }
    }

    @Test
    void aSessionKeepsExactlyThePlainSequenceAndContinuesFromIt() {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(40);
        try (Session plain = target.newSession(); Session fast = target.newSession()) {
            plain.append("Once upon a time");
            fast.append("Once upon a time");
            for (String turn : List.of(" Then", " The end. One day", "")) {
                if (!turn.isEmpty()) {
                    plain.append(turn);
                    fast.append(turn);
                }
                Completion a = plain.generate(config);
                Completion b = fast.generate(config.withSpeculation(Speculation.draftModel(draft, 5)));
                assertThat(b.outputTokens()).containsExactly(a.outputTokens());
                assertThat(fast.tokens()).containsExactly(plain.tokens());
            }
            // A rewind into speculated text, then plain decoding: nothing stale may remain in the KV cache.
            plain.rewind(7);
            fast.rewind(7);
            assertThat(fast.generate(config).outputTokens()).containsExactly(plain.generate(config).outputTokens());
        }
    }

    @Test
    void concurrentRequestsSomeSpeculatingGiveTheirPlainOutputs() throws Exception {
        int n = 12;
        List<GenerationConfig> configs = new ArrayList<>();
        List<Completion> alone = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            GenerationConfig plain = GenerationConfig.greedy().maxTokens(40 + 7 * i);
            alone.add(target.generator().generate(PROMPTS[i % PROMPTS.length], plain));
            Speculation s = switch (i % 4) {
                case 0 -> null;
                case 1 -> Speculation.draftModel(draft, 4);
                case 2 -> Speculation.promptLookup(1, 2, 4);
                default -> Speculation.drafter(randomTokens(i), 3);
            };
            configs.add(s == null ? plain : plain.withSpeculation(s.withMaxBatchSequences(64)));
        }
        long stepsBefore = target.generator().metrics().steps();
        List<CompletableFuture<Completion>> futures = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            futures.add(target.generator().generateAsync(PROMPTS[i % PROMPTS.length], configs.get(i)));
        }
        for (int i = 0; i < n; i++) {
            Completion c = futures.get(i).get(60, TimeUnit.SECONDS);
            assertThat(c.outputTokens()).as("request %d", i).containsExactly(alone.get(i).outputTokens());
            if (i % 4 == 1) {
                assertThat(c.speculation().draftedTokens()).as("request %d speculated in the batch", i).isPositive();
            }
        }
        GeneratorMetrics m = target.generator().metrics();
        assertThat(m.meanBatchTokens()).isGreaterThan(1);
        assertThat(m.steps() - stepsBefore).isPositive();
        awaitIdle(target);
        assertThat(target.generator().metrics().kvBlocksUsed()).isZero();
        assertThat(draft.generator().metrics().kvBlocksUsed()).isZero();
    }

    /**
     * Request i of {@link #requestsUnderPressure}: speculating with the draft model, prompt lookup
     * or random tokens (every drafter made afresh), or not at all; greedy, or seeded sampling for
     * half of those that do not use the draft model (sampled with a draft model's distributions,
     * a request's tokens depend on what was drafted, which dropped drafts change); a random priority.
     */
    private static GenerationConfig pressureConfig(int i, int priority) {
        boolean sampled = i % 4 != 1 && (i / 4) % 2 == 1;
        GenerationConfig base = sampled ? GenerationConfig.defaults().temperature(0.9f).topK(30).seed(500 + i)
                : GenerationConfig.greedy();
        base = base.maxTokens(40 + (i * 13) % 60).priority(priority);
        Speculation s = switch (i % 4) {
            case 0 -> null;
            case 1 -> Speculation.draftModel(draft, 4);
            case 2 -> Speculation.promptLookup(1, 3, 5);
            default -> Speculation.drafter(randomTokens(i), 3);
        };
        return s == null ? base : base.withSpeculation(s.withFallbackWhenSlower(false).withMaxBatchSequences(64));
    }

    /**
     * Speculating and plain requests, greedy and sampled, of random priorities, arriving at random
     * with some cancelled, in a KV cache of 16 blocks: drafts are dropped for want of room,
     * requests are preempted (for room and for higher priorities) and recomputed with their
     * drafts rolled back. Every request not cancelled gives exactly the tokens it gives alone
     * (sampled ones too: drafts without distributions are verified with plain sampling's draws),
     * and both models' caches end empty.
     */
    @Test
    void requestsUnderPressure() throws Exception {
        ModelOptions tight = ModelOptions.defaults().withKvCacheTokens(256).withMaxSequences(6);
        try (Model model = Model.load(SharedModels.stories260K(), tight)) {
            Random random = new Random(21);
            int n = 20;
            int[] priorities = random.ints(n, 0, 3).toArray();
            List<Completion> alone = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                alone.add(model.generator().generate(PROMPTS[i % PROMPTS.length], pressureConfig(i, priorities[i])));
            }
            long preemptionsBefore = model.generator().metrics().preemptions();
            List<CompletableFuture<Completion>> futures = new ArrayList<>();
            boolean[] cancelled = new boolean[n];
            for (int i = 0; i < n; i++) {
                futures.add(model.generator().generateAsync(PROMPTS[i % PROMPTS.length], pressureConfig(i, priorities[i])));
                cancelled[i] = random.nextInt(7) == 0;
                if (cancelled[i]) {
                    futures.get(i).cancel(false);
                }
                Thread.sleep(random.nextInt(2));
            }
            long drafted = 0;
            for (int i = 0; i < n; i++) {
                if (!cancelled[i]) {
                    Completion c = futures.get(i).get(60, TimeUnit.SECONDS);
                    assertThat(c.outputTokens()).as("request %d", i).containsExactly(alone.get(i).outputTokens());
                    drafted += c.speculation().draftedTokens();
                }
            }
            assertThat(drafted).as("drafts in the batch").isPositive();
            assertThat(model.generator().metrics().preemptions() - preemptionsBefore).as("preemptions").isPositive();
            awaitIdle(model);
            awaitIdle(draft);
            assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
            assertThat(draft.generator().metrics().kvBlocksUsed()).isZero();
        }
    }

    /**
     * A drafter that takes 3 ms a proposal (against well under 1 ms a step of this model) and is
     * always wrong: the request soon stops drafting and decodes plainly, coming back to try now
     * and then; with the fallback off it drafts at every step. The tokens are the plain ones either way.
     */
    @Test
    void speculationTimedSlowerThanPlainDecodingFallsBack() {
        Random random = new Random(4);
        Drafter slowAndWrong = (tokens, length, d) -> {
            try {
                Thread.sleep(3);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            d.add(random.nextInt(d.vocabularySize()));
        };
        GenerationConfig config = GenerationConfig.greedy().maxTokens(MAX_TOKENS).ignoreEos(true);
        Completion plain = target.generator().generate(PROMPTS[1], config);
        long before = target.generator().metrics().speculation().plainSteps();

        Completion governed = target.generator().generate(PROMPTS[1], config.withSpeculation(Speculation.drafter(slowAndWrong, 4)));
        assertThat(governed.outputTokens()).containsExactly(plain.outputTokens());
        SpeculationStats stats = governed.speculation();
        System.out.printf("[SpeculativeDecodingTest] a slow, wrong drafter: %s%n", stats);
        assertThat(stats.plainSteps()).as("steps decoded plainly").isGreaterThan(MAX_TOKENS / 2);
        assertThat(stats.verifications()).as("drafting steps: the first windows and a retry").isLessThan(MAX_TOKENS / 4);
        assertThat(target.generator().metrics().speculation().plainSteps() - before).isEqualTo(stats.plainSteps());

        Completion always = target.generator().generate(PROMPTS[1],
                config.withSpeculation(Speculation.drafter(slowAndWrong, 4).withFallbackWhenSlower(false)));
        assertThat(always.outputTokens()).containsExactly(plain.outputTokens());
        assertThat(always.speculation().plainSteps()).isZero();
        assertThat(always.speculation().verifications()).isGreaterThan(MAX_TOKENS / 2);
    }

    @Test
    void largeBatchesTurnSpeculationOff() throws Exception {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(30).ignoreEos(true)
                .withSpeculation(Speculation.draftModel(draft, 4).withMaxBatchSequences(2));
        List<CompletableFuture<Completion>> futures = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            futures.add(target.generator().generateAsync(PROMPTS[i % PROMPTS.length], config));
        }
        long drafted = 0;
        for (CompletableFuture<Completion> f : futures) {
            drafted += f.get(60, TimeUnit.SECONDS).speculation().draftedTokens();
        }
        // Only once at most two requests are left running may they speculate: far fewer drafts
        // than 8 requests x 29 steps x up to 4 tokens.
        assertThat(drafted).isLessThan(8L * 29);
        Completion alone = target.generator().generate(PROMPTS[0], config);
        assertThat(alone.speculation().draftedTokens()).isPositive();
    }

    @Test
    void aFailingDrafterFailsOnlyItsRequest() throws Exception {
        Drafter broken = (tokens, length, d) -> {
            throw new IllegalStateException("drafter bug");
        };
        Drafter outOfRange = (tokens, length, d) -> d.add(d.vocabularySize());
        Drafter throwingAnError = (tokens, length, d) -> {
            throw new AssertionError("drafter bug");
        };
        GenerationConfig config = GenerationConfig.greedy().maxTokens(30);
        // Long enough to be running while each bad request fails.
        GenerationConfig long_ = GenerationConfig.greedy().maxTokens(1500).ignoreEos(true);
        CompletableFuture<Completion> good = target.generator().generateAsync(PROMPTS[1], long_);
        for (Drafter bad : List.of(broken, outOfRange, throwingAnError)) {
            assertThatThrownBy(() -> target.generator().generate(PROMPTS[0], config.withSpeculation(Speculation.drafter(bad, 3))))
                    .isInstanceOf(PeregrineException.class).hasMessageContaining("drafter failed");
        }
        assertThat(good.isDone()).as("the good request overlapped the bad ones").isFalse();
        assertThat(good.get(60, TimeUnit.SECONDS).outputTokens())
                .containsExactly(target.generator().generate(PROMPTS[1], long_).outputTokens());
        awaitIdle(target);
        assertThat(target.generator().metrics().kvBlocksUsed()).isZero();
    }

    @Test
    void aDraftModelWithAnotherTokenizerIsRejectedBeforeAnythingRuns(@TempDir Path dir) {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(5);
        try (Model other = Model.load(SharedModels.tinyLlamaQ4())) {
            assertThatThrownBy(() -> target.generator().generate(PROMPTS[0], config.withSpeculation(Speculation.draftModel(other, 4))))
                    .isInstanceOf(IllegalArgumentException.class)
                    .hasMessageContaining("32000 tokens but the target stories260K.gguf has 512")
                    .hasMessageContaining("must share the target's tokenizer");
        }
        // Same vocabulary size, different tokens: a synthetic 512-token vocabulary.
        ModelShape tiny = ModelShape.named("tiny");
        Path file = dir.resolve("tiny.gguf");
        SyntheticModel.of(tiny, 1).writeGguf(file, DType.F32, TokenizerMetadata.synthetic(tiny.vocab()), 1);
        try (Model other = Model.load(file); Session session = target.newSession()) {
            assertThat(other.vocabularySize()).isEqualTo(target.vocabularySize());
            session.append("Once");
            assertThatThrownBy(() -> session.generate(config.withSpeculation(Speculation.draftModel(other, 4))))
                    .isInstanceOf(IllegalArgumentException.class).hasMessageContaining("has token");
            assertThat(session.tokens()).containsExactly(target.encode("Once"));
        }
    }

    @Test
    void aClosedDraftModelFailsTheRequestsThatUseItWithAClearError() {
        try (Model d = Model.load(SharedModels.stories260KQ8())) {
            GenerationConfig config = GenerationConfig.greedy().maxTokens(20).withSpeculation(Speculation.draftModel(d, 4));
            assertThat(target.generator().generate(PROMPTS[0], config).speculation().draftedTokens()).isPositive();
            d.close();
            assertThatThrownBy(() -> target.generator().generate(PROMPTS[0], config))
                    .isInstanceOf(IllegalStateException.class).hasMessageContaining("closed");
        }
    }

    /** Closing a draft model under running requests stops their speculation, not the requests. */
    @Test
    void aDraftModelClosedDuringARequestLeavesItDecodingPlainly() {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(400).ignoreEos(true);
        Completion plain = target.generator().generate(PROMPTS[1], config);
        try (Model d = Model.load(SharedModels.stories260KQ8())) {
            Completion fast = target.generator().generate(target.encode(PROMPTS[1]),
                    config.withSpeculation(Speculation.draftModel(d, 4).withFallbackWhenSlower(false)), token -> d.close());
            assertThat(fast.outputTokens()).containsExactly(plain.outputTokens());
        }
        awaitIdle(target);
        assertThat(target.generator().metrics().kvBlocksUsed()).isZero();
    }

    @Test
    void promptLookupAcceptsRepeatedText() {
        String prompt = "Tom had a red ball. Tom had a red ball. Tom had a red ball. Tom had a";
        GenerationConfig config = GenerationConfig.greedy().maxTokens(60).ignoreEos(true);
        Completion plain = target.generator().generate(prompt, config);
        Completion fast = target.generator().generate(prompt, config.withSpeculation(Speculation.promptLookup(1, 3, 8)));
        assertThat(fast.outputTokens()).containsExactly(plain.outputTokens());
        System.out.printf("[SpeculativeDecodingTest] prompt lookup on repeated text: %s%n", fast.speculation());
        assertThat(fast.speculation().acceptedTokens()).isPositive();
    }

    private static void awaitIdle(Model model) {
        for (int i = 0; i < 1000 && (model.generator().metrics().runningSequences() > 0
                || model.generator().metrics().kvBlocksUsed() > 0); i++) {
            try {
                Thread.sleep(5);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            }
        }
    }
}
