package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GeneratedToken;
import dev.peregrine.GenerationConfig;
import dev.peregrine.GeneratorMetrics;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.PeregrineException;
import dev.peregrine.RequestRejectedException;
import dev.peregrine.Speculation;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.IntFunction;
import java.util.stream.IntStream;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Many requests at once through one model: every request that is not cancelled produces exactly
 * the tokens it produces alone, whatever else shares its batches, including when the KV cache is
 * too small for all of them and sequences are preempted and recomputed.
 */
class ContinuousBatchingTest {
    private static final String[] PROMPTS = {
            "Once upon a time", "The cat", "Lily and Tom went to the park to play with a big red ball",
            "One day", "Sam had a dog", "The sun was hot and the children wanted to swim in the lake",
            "Tim", "A little bird sat on a tree",
    };

    /** Request i: a prompt, and greedy or seeded sampling, with varied lengths. */
    private static GenerationConfig config(int i) {
        GenerationConfig base = i % 3 == 0 ? GenerationConfig.greedy()
                : GenerationConfig.defaults().temperature(0.9f).topK(20 + i).seed(1000 + i);
        return base.maxTokens(10 + (i * 7) % 40);
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 5, 16, 64})
    void concurrentRequestsGiveTheSameTokensAsAlone(int n) throws Exception {
        concurrentRequestsMatchAlone(n, ModelOptions.defaults());
    }

    /** The same with an F16 KV cache: batching changes nothing in the halves a sequence stores either. */
    @Test
    void concurrentRequestsGiveTheSameTokensAsAloneWithAnF16KvCache() throws Exception {
        concurrentRequestsMatchAlone(16, ModelOptions.defaults().withKvCacheType(DType.F16));
    }

    private static void concurrentRequestsMatchAlone(int n, ModelOptions options) throws Exception {
        try (Model model = Model.load(SharedModels.stories260K(), options)) {
            List<Completion> alone = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                alone.add(model.generator().generate(PROMPTS[i % PROMPTS.length], config(i)));
            }
            ExecutorService pool = Executors.newFixedThreadPool(Math.min(n, 32));
            try {
                CountDownLatch start = new CountDownLatch(1);
                List<Future<Completion>> together = new ArrayList<>();
                for (int i = 0; i < n; i++) {
                    int id = i;
                    together.add(pool.submit(() -> {
                        start.await();
                        return model.generator().generate(PROMPTS[id % PROMPTS.length], config(id));
                    }));
                }
                start.countDown();
                for (int i = 0; i < n; i++) {
                    assertThat(together.get(i).get(60, TimeUnit.SECONDS).outputTokens()).as("request %d", i)
                            .containsExactly(alone.get(i).outputTokens());
                }
            } finally {
                pool.shutdownNow();
            }
            GeneratorMetrics m = model.generator().metrics();
            assertThat(m.runningSequences()).isZero();
            assertThat(m.kvBlocksUsed()).isZero();
            if (n > 1) {
                assertThat(m.meanBatchTokens()).as("steps served several sequences").isGreaterThan(1.0);
            }
        }
    }

    @Test
    void cancelledRequestsFreeTheirBlocksAndOthersAreUnaffected() throws Exception {
        try (Model model = Model.load(SharedModels.stories260K())) {
            int n = 12;
            List<Completion> alone = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                alone.add(model.generator().generate(PROMPTS[i % PROMPTS.length], config(i).maxTokens(60)));
            }
            List<CompletableFuture<Completion>> futures = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                futures.add(model.generator().generateAsync(PROMPTS[i % PROMPTS.length], config(i).maxTokens(60)));
            }
            // Cancel every third request; a stream is abandoned midway by closing it.
            for (int i = 0; i < n; i += 3) {
                futures.get(i).cancel(true);
            }
            try (Stream<GeneratedToken> s = model.generator().stream("Once upon a time", GenerationConfig.greedy().maxTokens(200))) {
                Iterator<GeneratedToken> it = s.iterator();
                for (int k = 0; k < 5; k++) {
                    it.next();
                }
            }
            for (int i = 0; i < n; i++) {
                if (i % 3 != 0) {
                    assertThat(futures.get(i).get(60, TimeUnit.SECONDS).outputTokens()).containsExactly(alone.get(i).outputTokens());
                }
            }
            awaitIdle(model);
            assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
        }
    }

    @Test
    void aSmallKvCachePreemptsAndRecomputesWithoutChangingAnyOutput() throws Exception {
        // 12 blocks of 16 = 192 positions for 10 requests that grow to ~60 positions each.
        ModelOptions tight = ModelOptions.defaults().withKvCacheTokens(192);
        List<Completion> alone = new ArrayList<>();
        try (Model model = Model.load(SharedModels.stories260K())) {
            for (int i = 0; i < 10; i++) {
                alone.add(model.generator().generate(PROMPTS[i % PROMPTS.length], config(i).maxTokens(45)));
            }
        }
        try (Model model = Model.load(SharedModels.stories260K(), tight)) {
            List<CompletableFuture<Completion>> futures = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                futures.add(model.generator().generateAsync(PROMPTS[i % PROMPTS.length], config(i).maxTokens(45)));
            }
            for (int i = 0; i < 10; i++) {
                assertThat(futures.get(i).get(60, TimeUnit.SECONDS).outputTokens()).as("request %d", i)
                        .containsExactly(alone.get(i).outputTokens());
            }
            GeneratorMetrics m = model.generator().metrics();
            assertThat(m.preemptions()).as("the budget forced preemption").isPositive();
            assertThat(m.kvBlocksUsed()).isZero();
            assertThat(m.kvBlocksTotal()).isEqualTo(12);
        }
    }

    @Test
    void kvUseStaysWithinOneBlockPerSequenceOfTheTokensHeld() throws Exception {
        try (Model model = Model.load(SharedModels.stories260K())) {
            List<CompletableFuture<Completion>> futures = new ArrayList<>();
            for (int i = 0; i < 8; i++) {
                futures.add(model.generator().generateAsync(PROMPTS[i], GenerationConfig.greedy().maxTokens(100)));
            }
            int blockSize = model.generator().metrics().kvBlockSize();
            int worstExcess = Integer.MIN_VALUE;
            while (!futures.stream().allMatch(CompletableFuture::isDone)) {
                GeneratorMetrics m = model.generator().metrics();
                // Upper bound: every running sequence holds at most prompt + 100 tokens.
                int maxTokens = m.runningSequences() * (model.encode(PROMPTS[2]).length + 100);
                worstExcess = Math.max(worstExcess, m.kvBlocksUsed() - (maxTokens / blockSize + m.runningSequences()));
                Thread.sleep(1);
            }
            assertThat(worstExcess).isLessThanOrEqualTo(0);
        }
    }

    /**
     * A short request that arrives while a long prompt is being prefilled in chunks completes
     * first: shortest prompt first, and the long prompt waits in the step where the short one
     * completes. Timing-independent: the long prefill takes ~100 chunked steps, and the short
     * request is submitted as soon as the first of them has run.
     */
    @Test
    void aShortRequestDuringALongPrefillFinishesFirst(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("tiny.gguf");
        ModelShape shape = ModelShape.named("tiny");
        SyntheticModel.of(shape, 3).writeGguf(file, DType.F32, TokenizerMetadata.synthetic(shape.vocab()), 1);
        try (Model model = Model.load(file, ModelOptions.defaults().withPrefillChunkTokens(16))) {
            StringBuilder text = new StringBuilder();
            while (model.encode(text.toString()).length < 1600) {
                text.append("Once upon a time there was a little girl. ");
            }
            GenerationConfig one = GenerationConfig.greedy().maxTokens(1).ignoreEos(true);
            long[] finished = new long[2];
            CompletableFuture<Completion> longRequest = model.generator().generateAsync(text.toString(), one)
                    .whenComplete((c, e) -> finished[0] = System.nanoTime());
            while (model.generator().metrics().promptTokens() == 0) {
                Thread.onSpinWait();
            }
            CompletableFuture<Completion> shortRequest = model.generator().generateAsync("The cat", one)
                    .whenComplete((c, e) -> finished[1] = System.nanoTime());
            shortRequest.get();
            longRequest.get();
            assertThat(finished[1]).as("the short request finished first").isLessThan(finished[0]);
        }
    }

    /**
     * A prompt processed alone goes in one step of the whole configured chunk, which pauses
     * between layers when a request arrives: the newcomer's prompt runs in the pause, so a
     * one-token request finishes first although it arrived after that long step had started, and both outputs are
     * those of the requests alone. (If the newcomer happens to arrive after the long step, the
     * attempt is repeated; every attempt checks the outputs.)
     */
    @Test
    void aRequestArrivingDuringALongPromptStepRunsInItsPause() throws Exception {
        ModelOptions options = ModelOptions.defaults().withPrefillChunkTokens(512).withPrefixCaching(false);
        try (Model model = Model.load(SharedModels.tinyLlamaQ4(), options)) {
            StringBuilder text = new StringBuilder();
            while (model.encode(text.toString()).length < 450) {
                text.append("Once upon a time there was a little girl who liked to play in the garden. ");
            }
            String longPrompt = text.toString();
            GenerationConfig greedy = GenerationConfig.greedy().maxTokens(6).ignoreEos(true);
            Completion longAlone = model.generator().generate(longPrompt, greedy);
            GenerationConfig oneToken = GenerationConfig.greedy().maxTokens(1);
            Completion shortAlone = model.generator().generate("The cat", oneToken);
            long interleaved = 0;
            for (int attempt = 0; attempt < 5 && interleaved == 0; attempt++) {
                GeneratorMetrics before = model.generator().metrics();
                long[] finished = new long[2];
                CompletableFuture<Completion> longRequest = model.generator().generateAsync(longPrompt, greedy)
                        .whenComplete((c, e) -> finished[0] = System.nanoTime());
                while (model.generator().metrics().promptTokens() == before.promptTokens()) {
                    Thread.onSpinWait(); // the long prompt's step has been built
                }
                CompletableFuture<Completion> shortRequest = model.generator().generateAsync("The cat", oneToken)
                        .whenComplete((c, e) -> finished[1] = System.nanoTime());
                assertThat(shortRequest.get(60, TimeUnit.SECONDS).outputTokens()).containsExactly(shortAlone.outputTokens());
                assertThat(longRequest.get(60, TimeUnit.SECONDS).outputTokens()).containsExactly(longAlone.outputTokens());
                interleaved = model.generator().metrics().interleavedSteps() - before.interleavedSteps();
                if (interleaved > 0) {
                    assertThat(finished[1]).as("the short request finished first").isLessThan(finished[0]);
                }
            }
            assertThat(interleaved).as("steps run in a pause of the long prompt's step").isPositive();
        }
    }

    /**
     * On a model where even a 16-token prompt chunk outlasts the step target (here 1 ms), a long
     * prompt is not mixed into the decoding requests' steps: it runs in whole chunks, and the
     * decoding request steps in its pauses. Its output and the prompt's are those of each alone.
     */
    @Test
    void decodingRequestsStepInThePausesOfALongPromptWhenChunksOutlastTheTarget(@TempDir Path dir) throws Exception {
        Path file = dir.resolve("small.gguf");
        // ~19M parameters: a 16-token step takes milliseconds.
        ModelShape shape = new ModelShape("custom", 512, 6, 8, 4, 1536, 512, 2048, 10000f, 1e-5f, true, false);
        SyntheticModel.of(shape, 5).writeGguf(file, DType.Q8_0, TokenizerMetadata.synthetic(shape.vocab()), 1);
        ModelOptions options = ModelOptions.defaults().withPrefillStepMillis(1).withPrefixCaching(false);
        try (Model model = Model.load(file, options)) {
            StringBuilder text = new StringBuilder();
            while (model.encode(text.toString()).length < 300) {
                text.append("Once upon a time there was a little girl. ");
            }
            GenerationConfig longRun = GenerationConfig.greedy().maxTokens(300).ignoreEos(true);
            GenerationConfig fewTokens = GenerationConfig.greedy().maxTokens(4).ignoreEos(true);
            Completion decodingAlone = model.generator().generate("The cat", longRun);
            Completion promptAlone = model.generator().generate(text.toString(), fewTokens);
            long before = model.generator().metrics().interleavedSteps();
            CountDownLatch decoding = new CountDownLatch(2);
            CompletableFuture<Completion> decodingRequest = CompletableFuture.supplyAsync(
                    () -> model.generator().generate("The cat", longRun, token -> decoding.countDown()));
            decoding.await();
            Completion prompt = model.generator().generate(text.toString(), fewTokens);
            assertThat(prompt.outputTokens()).containsExactly(promptAlone.outputTokens());
            assertThat(decodingRequest.get(60, TimeUnit.SECONDS).outputTokens()).containsExactly(decodingAlone.outputTokens());
            assertThat(model.generator().metrics().interleavedSteps() - before)
                    .as("steps of the decoding request in the prompt's pauses").isPositive();
        }
    }

    /**
     * A request of higher priority decoding in the pauses of a lower-priority request's long
     * prompt step, whose room it needs: a cache of 9 blocks, the decoder crossing into its fifth
     * while the prompt (66 tokens) holds five. The lower-priority request cannot be preempted
     * inside its paused step; the decoder waits for that step to end and then preempts it. (It
     * used to preempt itself, then at its admission preempt the other, which was admitted again
     * beside it, its prompt again in a paused step: the two did so for ever.) Both outputs are
     * those of the requests alone.
     */
    @Test
    void aHigherPriorityRequestWaitsForAPausedStepOfALowerOneInsteadOfPreemptingItself(@TempDir Path dir)
            throws Exception {
        Path file = dir.resolve("small.gguf");
        // ~19M parameters: a prompt step takes milliseconds a layer, far over the 1 ms target.
        ModelShape shape = new ModelShape("custom", 512, 6, 8, 4, 1536, 512, 2048, 10000f, 1e-5f, true, false);
        SyntheticModel.of(shape, 5).writeGguf(file, DType.Q8_0, TokenizerMetadata.synthetic(shape.vocab()), 1);
        ModelOptions options = ModelOptions.defaults().withPrefillStepMillis(1).withPrefixCaching(false)
                .withKvCacheTokens(144).withMaxSequences(2);
        try (Model model = Model.load(file, options)) {
            StringBuilder text = new StringBuilder("Once upon a time");
            for (int word = 0; model.encode(text.toString()).length < 66; word++) {
                text.append(word % 2 == 0 ? " a" : " b");
            }
            String longPrompt = text.toString();
            assertThat(model.encode(longPrompt).length).isEqualTo(66);
            int decoderPrompt = model.encode("The cat").length;
            GenerationConfig decoding = GenerationConfig.greedy().maxTokens(70 - decoderPrompt).ignoreEos(true);
            GenerationConfig prompted = GenerationConfig.greedy().maxTokens(3).ignoreEos(true).priority(1);
            Completion decodingAlone = model.generator().generate("The cat", decoding);
            Completion promptedAlone = model.generator().generate(longPrompt, prompted);
            for (int lead : new int[] {61, 59, 62, 57}) {
                // The prompt arrives when the decoder holds 4 blocks, shortly before it needs a fifth.
                CountDownLatch reached = new CountDownLatch(lead - decoderPrompt);
                CompletableFuture<Completion> decoder = CompletableFuture.supplyAsync(
                        () -> model.generator().generate("The cat", decoding, token -> reached.countDown()));
                reached.await();
                CompletableFuture<Completion> prompt = model.generator().generateAsync(longPrompt, prompted);
                assertThat(decoder.get(60, TimeUnit.SECONDS).outputTokens()).as("lead %d", lead)
                        .containsExactly(decodingAlone.outputTokens());
                assertThat(prompt.get(60, TimeUnit.SECONDS).outputTokens()).as("lead %d", lead)
                        .containsExactly(promptedAlone.outputTokens());
            }
            awaitIdle(model);
            assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
        }
    }

    @Test
    void timeoutEndsARequestWithItsPartialOutput() {
        try (Model model = Model.load(SharedModels.stories260K())) {
            Completion c = model.generator().generate("Once upon a time",
                    GenerationConfig.greedy().maxTokens(100_000).ignoreEos(true).timeout(Duration.ofMillis(200)));
            assertThat(c.finishReason()).isIn(FinishReason.TIMEOUT, FinishReason.CONTEXT_FULL);
            assertThat(c.outputTokens().length).isGreaterThan(0);
            assertThat(model.decode(c.outputTokens())).isEqualTo(c.text());
        }
    }

    @Test
    void aFullWaitingQueueRejectsAtOnce() {
        ModelOptions options = ModelOptions.defaults().withMaxSequences(1).withMaxWaitingRequests(2);
        try (Model model = Model.load(SharedModels.stories260K(), options)) {
            GenerationConfig slow = GenerationConfig.greedy().maxTokens(2000).ignoreEos(true);
            List<CompletableFuture<Completion>> accepted = new ArrayList<>();
            assertThatThrownBy(() -> {
                for (int i = 0; i < 10; i++) {
                    accepted.add(model.generator().generateAsync("Once upon a time", slow));
                }
            }).isInstanceOf(RequestRejectedException.class).hasMessageContaining("waiting queue is full");
            assertThat(accepted.size()).isBetween(2, 3);
            accepted.forEach(f -> f.cancel(true));
            assertThat(model.generator().metrics().rejectedRequests()).isEqualTo(1);
        }
    }

    /**
     * One place in the batch, taken by a long request: the requests waiting for it are admitted
     * by priority (lower values first), then in order of arrival; the running request of the same
     * priority is not preempted. Every output is the request's output alone.
     */
    @Test
    void waitingRequestsAreAdmittedByPriorityThenArrival() throws Exception {
        try (Model model = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withMaxSequences(1))) {
            GenerationConfig longRun = GenerationConfig.greedy().maxTokens(1500).ignoreEos(true);
            GenerationConfig shortRun = GenerationConfig.greedy().maxTokens(12).ignoreEos(true);
            String[] prompts = {"Once upon a time", "The cat", "Sam had a dog", "One day"};
            GenerationConfig[] configs = {longRun, shortRun.priority(1), shortRun.priority(1), shortRun};
            List<Completion> alone = new ArrayList<>();
            for (int i = 0; i < prompts.length; i++) {
                alone.add(model.generator().generate(prompts[i], configs[i]));
            }
            long promptTokensBefore = model.generator().metrics().promptTokens();
            List<Integer> completed = Collections.synchronizedList(new ArrayList<>());
            List<CompletableFuture<Completion>> futures = new ArrayList<>();
            for (int i = 0; i < prompts.length; i++) {
                int id = i;
                futures.add(model.generator().generateAsync(prompts[i], configs[i]).whenComplete((c, e) -> completed.add(id)));
                while (i == 0 && model.generator().metrics().promptTokens() == promptTokensBefore) {
                    Thread.onSpinWait(); // the long request is running
                }
            }
            for (int i = 0; i < prompts.length; i++) {
                assertThat(futures.get(i).get(60, TimeUnit.SECONDS).outputTokens()).as("request %d", i)
                        .containsExactly(alone.get(i).outputTokens());
            }
            assertThat(completed).containsExactly(0, 3, 1, 2);
            assertThat(model.generator().metrics().preemptions()).isZero();
        }
    }

    /**
     * A request of higher priority than the one holding the only place in the batch preempts it:
     * it finishes first, and the preempted request, recomputed later, still gives its output alone.
     */
    @Test
    void aHigherPriorityRequestPreemptsALowerOneForItsPlaceInTheBatch() throws Exception {
        try (Model model = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withMaxSequences(1))) {
            GenerationConfig low = GenerationConfig.greedy().maxTokens(1500).ignoreEos(true).priority(5);
            GenerationConfig high = GenerationConfig.greedy().maxTokens(12).ignoreEos(true);
            Completion lowAlone = model.generator().generate("Once upon a time", low);
            Completion highAlone = model.generator().generate("The cat", high);
            long promptTokensBefore = model.generator().metrics().promptTokens();
            List<String> completed = Collections.synchronizedList(new ArrayList<>());
            CompletableFuture<Completion> lowRequest = model.generator().generateAsync("Once upon a time", low)
                    .whenComplete((c, e) -> completed.add("low"));
            while (model.generator().metrics().promptTokens() == promptTokensBefore) {
                Thread.onSpinWait();
            }
            CompletableFuture<Completion> highRequest = model.generator().generateAsync("The cat", high)
                    .whenComplete((c, e) -> completed.add("high"));
            assertThat(highRequest.get(60, TimeUnit.SECONDS).outputTokens()).containsExactly(highAlone.outputTokens());
            assertThat(lowRequest.get(60, TimeUnit.SECONDS).outputTokens()).containsExactly(lowAlone.outputTokens());
            assertThat(completed).containsExactly("high", "low");
            assertThat(model.generator().metrics().preemptions()).isPositive();
        }
    }

    /**
     * With a KV cache too small for two requests at once, the one of lower priority is preempted
     * when the cache runs out, whichever arrived first (at equal priority it would be the
     * newcomer): the newcomer of higher priority, which needs the whole cache by its end, finishes
     * first, and both outputs are those alone. (If the first request ends before the second is
     * submitted, the attempt is repeated.)
     */
    @Test
    void whenTheKvCacheRunsOutTheLowerPriorityRequestIsPreempted() throws Exception {
        ModelOptions tight = ModelOptions.defaults().withKvCacheTokens(192); // 12 blocks of 16
        try (Model model = Model.load(SharedModels.stories260K(), tight)) {
            GenerationConfig low = GenerationConfig.greedy().maxTokens(120).ignoreEos(true).priority(5);
            GenerationConfig high = GenerationConfig.greedy().maxTokens(100).ignoreEos(true);
            StringBuilder text = new StringBuilder();
            while (model.encode(text + "Tom had a red ball. ").length + 100 <= 192) {
                text.append("Tom had a red ball. ");
            }
            String highPrompt = text.toString();
            Completion lowAlone = model.generator().generate("Once upon a time", low);
            Completion highAlone = model.generator().generate(highPrompt, high);
            assertThat(highAlone.promptTokens().length + 100).as("the high-priority request needs most of the cache")
                    .isBetween(192 - 16, 192);
            boolean overlapped = false;
            for (int attempt = 0; attempt < 5 && !overlapped; attempt++) {
                long promptTokensBefore = model.generator().metrics().promptTokens();
                long preemptionsBefore = model.generator().metrics().preemptions();
                List<String> completed = Collections.synchronizedList(new ArrayList<>());
                CompletableFuture<Completion> lowRequest = model.generator().generateAsync("Once upon a time", low)
                        .whenComplete((c, e) -> completed.add("low"));
                while (model.generator().metrics().promptTokens() == promptTokensBefore) {
                    Thread.onSpinWait();
                }
                CompletableFuture<Completion> highRequest = model.generator().generateAsync(highPrompt, high)
                        .whenComplete((c, e) -> completed.add("high"));
                assertThat(highRequest.get(60, TimeUnit.SECONDS).outputTokens()).containsExactly(highAlone.outputTokens());
                assertThat(lowRequest.get(60, TimeUnit.SECONDS).outputTokens()).containsExactly(lowAlone.outputTokens());
                overlapped = model.generator().metrics().preemptions() > preemptionsBefore;
                if (overlapped) {
                    assertThat(completed).containsExactly("high", "low");
                }
            }
            assertThat(overlapped).as("the two requests competed for the cache").isTrue();
            awaitIdle(model);
            assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
        }
    }

    @Test
    void generateAllReturnsResultsInPromptOrder() {
        try (Model model = Model.load(SharedModels.stories260K())) {
            List<String> prompts = List.of(PROMPTS).subList(0, 6);
            List<Completion> all = model.generator().generateAll(prompts, GenerationConfig.greedy().maxTokens(20));
            for (int i = 0; i < prompts.size(); i++) {
                assertThat(all.get(i).outputTokens()).containsExactly(
                        model.generator().generate(prompts.get(i), GenerationConfig.greedy().maxTokens(20)).outputTokens());
            }
        }
    }

    /**
     * A request that grows to fill the whole KV cache ends as at a full context, with what it
     * generated (the tokens it makes alone with a large cache, up to there), instead of failing;
     * a prompt longer than the cache still fails.
     */
    @Test
    void aRequestThatOutgrowsTheWholeKvCacheEndsWithItsOutput() {
        GenerationConfig endless = GenerationConfig.greedy().maxTokens(500).ignoreEos(true);
        int[] roomy;
        try (Model model = Model.load(SharedModels.stories260K())) {
            roomy = model.generator().generate(PROMPTS[0], endless).outputTokens();
        }
        try (Model model = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withKvCacheTokens(64))) {
            Completion c = model.generator().generate(PROMPTS[0], endless);
            assertThat(c.finishReason()).isEqualTo(FinishReason.CONTEXT_FULL);
            assertThat(c.outputTokens().length).isBetween(1, 64);
            assertThat(c.outputTokens()).containsExactly(Arrays.copyOf(roomy, c.outputTokens().length));
            assertThat(model.decode(c.outputTokens())).isEqualTo(c.text());
            assertThatThrownBy(() -> model.generator().generate("one two three ".repeat(40), endless))
                    .isInstanceOf(dev.peregrine.kv.KvCacheFullException.class).hasMessageContaining("raise ModelOptions.kvCacheTokens");
        }
    }

    @Test
    void generateAllQueuesMorePromptsThanTheWaitingQueueHolds() {
        ModelOptions options = ModelOptions.defaults().withMaxSequences(2).withMaxWaitingRequests(2);
        try (Model model = Model.load(SharedModels.stories260K(), options)) {
            List<String> prompts = IntStream.range(0, 12).mapToObj(i -> PROMPTS[i % PROMPTS.length]).toList();
            GenerationConfig config = GenerationConfig.greedy().maxTokens(15);
            List<Completion> all = model.generator().generateAll(prompts, config);
            for (int i = 0; i < prompts.size(); i++) {
                assertThat(all.get(i).outputTokens()).as("prompt %d", i)
                        .containsExactly(model.generator().generate(prompts.get(i), config).outputTokens());
            }
            assertThat(model.generator().metrics().rejectedRequests()).as("generateAll's own waits for room are no rejections")
                    .isZero();
        }
    }

    @Test
    void generateAllThrowsAFailedRequestsOwnExceptionAndChecksEveryPromptFirst() throws Exception {
        try (Model model = Model.load(SharedModels.stories260K())) {
            GenerationConfig failing = GenerationConfig.greedy().maxTokens(20).withSpeculation(Speculation.drafter((t, n, d) -> {
                throw new IllegalStateException("drafter bug");
            }, 3));
            assertThatThrownBy(() -> model.generator().generateAll(List.of(PROMPTS[0], PROMPTS[1]), failing))
                    .isInstanceOf(PeregrineException.class).hasMessageContaining("drafter failed");
            awaitIdle(model); // the other request, cancelled, ends too
            assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
            long ended = model.generator().metrics().completedRequests();
            String tooLong = "a b".repeat(model.contextLength());
            assertThatThrownBy(() -> model.generator().generateAll(List.of(PROMPTS[0], tooLong), GenerationConfig.greedy()))
                    .isInstanceOf(PeregrineException.class).hasMessageContaining("more than the context length");
            awaitIdle(model);
            assertThat(model.generator().metrics().completedRequests()).as("nothing ran for the refused list").isEqualTo(ended);
        }
    }

    /** The first failure stops generateAll: the prompts after it are not queued at all. */
    @Test
    void generateAllStopsQueuingAtTheFirstFailure() {
        ModelOptions options = ModelOptions.defaults().withMaxSequences(2).withMaxWaitingRequests(2);
        try (Model model = Model.load(SharedModels.stories260K(), options)) {
            java.util.concurrent.atomic.AtomicInteger drafted = new java.util.concurrent.atomic.AtomicInteger();
            GenerationConfig failing = GenerationConfig.greedy().maxTokens(20).withSpeculation(Speculation.drafter((t, n, d) -> {
                drafted.incrementAndGet();
                throw new IllegalStateException("drafter bug");
            }, 3));
            List<String> prompts = Collections.nCopies(200, PROMPTS[0]);
            assertThatThrownBy(() -> model.generator().generateAll(prompts, failing))
                    .isInstanceOf(PeregrineException.class).hasMessageContaining("drafter failed");
            assertThat(drafted.get()).as("requests that reached the drafter, of 200").isLessThan(20);
        }
    }

    @Test
    void anInterruptedGenerateAllCancelsEveryRequestAndKeepsTheFlag() throws Exception {
        ModelOptions options = ModelOptions.defaults().withMaxSequences(2).withMaxWaitingRequests(2);
        try (Model model = Model.load(SharedModels.stories260K(), options)) {
            List<String> prompts = Collections.nCopies(8, PROMPTS[0]);
            Thread.currentThread().interrupt();
            List<Completion> all = model.generator().generateAll(prompts, GenerationConfig.greedy().maxTokens(1000).ignoreEos(true));
            assertThat(Thread.interrupted()).as("the interrupt flag stays set").isTrue();
            assertThat(all).hasSize(8).allSatisfy(c -> assertThat(c.finishReason()).isEqualTo(FinishReason.CANCELLED));
            assertThat(all.get(7).outputTokens()).as("a prompt never queued").isEmpty();
            awaitIdle(model);
            assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
        }
    }

    @Test
    void aFutureCompletedOrTimedOutByTheCallerCancelsItsRequest() throws Exception {
        try (Model model = Model.load(SharedModels.stories260K())) {
            GenerationConfig endless = GenerationConfig.greedy().maxTokens(100_000).ignoreEos(true);
            CompletableFuture<Completion> timedOut = model.generator().generateAsync(PROMPTS[0], endless)
                    .orTimeout(50, TimeUnit.MILLISECONDS);
            CompletableFuture<Completion> completed = model.generator().generateAsync(PROMPTS[1], endless);
            completed.completeExceptionally(new IllegalStateException("not wanted any more"));
            assertThatThrownBy(() -> timedOut.get(10, TimeUnit.SECONDS)).hasCauseInstanceOf(java.util.concurrent.TimeoutException.class);
            awaitIdle(model);
            assertThat(model.generator().metrics().runningSequences()).isZero();
            assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
        }
    }

    @Test
    void randomArrivalsAndCancellationsKeepEveryOutputExact() throws Exception {
        try (Model model = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withKvCacheTokens(400))) {
            Random random = new Random(5);
            int n = 30;
            List<String> prompts = new ArrayList<>();
            List<Completion> alone = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                prompts.add(PROMPTS[i % PROMPTS.length]);
                alone.add(model.generator().generate(prompts.get(i), config(i)));
            }
            randomArrivalsMatchAlone(model, prompts, alone, random, 5, 3, ContinuousBatchingTest::config);
        }
    }

    /**
     * The same with priorities: four long requests of the lowest priority take the batch's four
     * places, then the others arrive with random priorities, more urgent on the whole as they come,
     * in a cache of 12 blocks (too few for four requests at their longest). Requests of higher
     * priority keep preempting running ones of lower priority, for places and for room; every
     * request not cancelled still gives exactly its output alone.
     */
    @Test
    void randomPrioritiesKeepEveryOutputExact() throws Exception {
        ModelOptions options = ModelOptions.defaults().withKvCacheTokens(192).withMaxSequences(4);
        try (Model model = Model.load(SharedModels.stories260K(), options)) {
            Random random = new Random(8);
            int n = 30;
            int[] priorities = IntStream.range(0, n).map(i -> i < 4 ? 3 : random.nextInt(3) - i / 6).toArray();
            IntFunction<GenerationConfig> configs = i -> (i < 4 ? config(i).maxTokens(150).ignoreEos(true) : config(i))
                    .priority(priorities[i]);
            List<String> prompts = new ArrayList<>();
            List<Completion> alone = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                prompts.add(PROMPTS[i % PROMPTS.length]);
                alone.add(model.generator().generate(prompts.get(i), configs.apply(i)));
            }
            long before = model.generator().metrics().preemptions();
            randomArrivalsMatchAlone(model, prompts, alone, random, 6, 3, configs);
            assertThat(model.generator().metrics().preemptions() - before).as("preemptions").isPositive();
        }
    }

    /**
     * Random arrivals and cancellations again, with long prompts among short ones and a 1 ms step
     * target: prompt steps pause for newcomers and leave decoding requests to their pauses over
     * and over. Every request not cancelled still gives exactly its output alone.
     */
    @Test
    void pausedPromptStepsKeepEveryOutputExactUnderRandomArrivals() throws Exception {
        ModelOptions options = ModelOptions.defaults().withPrefillStepMillis(1).withPrefillChunkTokens(64)
                .withKvCacheTokens(2048);
        try (Model model = Model.load(SharedModels.tinyLlamaQ4(), options)) {
            StringBuilder text = new StringBuilder();
            while (model.encode(text.toString()).length < 200) {
                text.append("Once upon a time there was a little girl who liked to play in the garden. ");
            }
            String longPrompt = text.toString();
            Random random = new Random(11);
            int n = 24;
            List<String> prompts = new ArrayList<>();
            List<Completion> alone = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                prompts.add(i % 4 == 1 ? longPrompt.substring(i) : PROMPTS[i % PROMPTS.length]);
                alone.add(model.generator().generate(prompts.get(i), config(i)));
            }
            long before = model.generator().metrics().interleavedSteps();
            randomArrivalsMatchAlone(model, prompts, alone, random, 6, 8, ContinuousBatchingTest::config);
            assertThat(model.generator().metrics().interleavedSteps() - before).as("steps in pauses").isPositive();
        }
    }

    /**
     * Submits request i (prompt i, {@code configs}(i)) one after another, cancelling about one in
     * {@code cancelOneIn} at once and pausing up to {@code maxGapMillis} between them; every
     * request not cancelled must give its output alone, and the KV cache ends empty.
     */
    private static void randomArrivalsMatchAlone(Model model, List<String> prompts, List<Completion> alone, Random random,
                                                 int cancelOneIn, int maxGapMillis, IntFunction<GenerationConfig> configs)
            throws Exception {
        int n = prompts.size();
        List<CompletableFuture<Completion>> futures = new ArrayList<>();
        List<Boolean> cancelled = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            futures.add(model.generator().generateAsync(prompts.get(i), configs.apply(i)));
            boolean cancel = random.nextInt(cancelOneIn) == 0;
            cancelled.add(cancel);
            if (cancel) {
                futures.get(i).cancel(false);
            }
            Thread.sleep(random.nextInt(maxGapMillis));
        }
        for (int i = 0; i < n; i++) {
            if (!cancelled.get(i)) {
                assertThat(futures.get(i).get(60, TimeUnit.SECONDS).outputTokens()).as("request %d", i)
                        .containsExactly(alone.get(i).outputTokens());
            }
        }
        awaitIdle(model);
        assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
    }

    private static void awaitIdle(Model model) throws InterruptedException {
        for (int i = 0; i < 1000 && (model.generator().metrics().runningSequences() > 0
                || model.generator().metrics().waitingRequests() > 0 || model.generator().metrics().kvBlocksUsed() > 0); i++) {
            Thread.sleep(5);
        }
    }
}
