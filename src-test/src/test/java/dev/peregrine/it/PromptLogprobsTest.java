package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.PeregrineException;
import dev.peregrine.Session;
import dev.peregrine.TokenLogprob;
import dev.peregrine.format.gguf.GgufFile;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;

/**
 * Prompt log-probabilities (GenerationConfig.promptLogprobs) on the real stories260K: each prompt
 * token's log-probability given the ones before it is the float64 reference's log-softmax, over a
 * prompt long enough to take several chunks; the same in a batch and when the prompt's prefix is
 * cached; a story scores a far lower perplexity than random tokens.
 */
class PromptLogprobsTest extends Stories260KTest {
    private static final String STORY = "Once upon a time, there was a little girl named Lily. She loved to play outside in the"
            + " park with her friends. One day, she saw a big red ball under a tree. She ran to the ball and picked it up."
            + " Her friend Tom came and said, \"Can I play with the ball too?\" Lily smiled and said, \"Yes, let's play"
            + " together!\" They played all day and had a lot of fun.";

    @Test
    void promptLogprobsAreTheReferenceLogSoftmaxAtEveryPosition() {
        Completion c = model.generator().generate(STORY, GenerationConfig.greedy().maxTokens(4).promptLogprobs(2));
        int[] prompt = c.promptTokens();
        assertThat(prompt.length).as("prompt tokens (more than two chunks of 64)").isGreaterThan(130);
        assertThat(c.promptLogprobs()).hasSize(prompt.length - 1);
        assertThat(c.outputTokens()).containsExactly(model.generator().generate(STORY, GenerationConfig.greedy().maxTokens(4))
                .outputTokens());
        try (Arena arena = Arena.ofConfined()) {
            ReferenceLlama reference = new ReferenceLlama(GgufFile.open(SharedModels.stories260K(), arena));
            for (int p = 0; p + 1 < prompt.length; p++) {
                double[] logits = reference.forward(prompt[p], p);
                TokenLogprob t = c.promptLogprobs().get(p);
                assertThat(t.token()).isEqualTo(prompt[p + 1]);
                double logSum = logSumExp(logits);
                assertThat(t.logprob()).as("prompt token %d", p + 1).isCloseTo(logits[prompt[p + 1]] - logSum, within(1e-3));
                assertThat(t.top()).hasSize(2);
                assertThat(t.top().getFirst().logprob()).isCloseTo(max(logits) - logSum, within(1e-3));
            }
        }
    }

    /**
     * Scoring alone: with maxTokens 0, and with a prompt that fills the context, the prompt is still
     * evaluated and scored (it used to end before its forward pass, with no log-probabilities), and
     * no token follows. A prompt that fills the context with tokens asked for is refused.
     */
    @Test
    void aPromptIsScoredWhereNoTokenMayFollow() {
        GenerationConfig scoring = GenerationConfig.greedy().promptLogprobs(0);
        List<TokenLogprob> expected = model.generator().generate(STORY, scoring.maxTokens(1)).promptLogprobs();
        Completion none = model.generator().generate(STORY, scoring.maxTokens(0));
        assertThat(none.outputTokens()).isEmpty();
        assertThat(none.finishReason()).isEqualTo(FinishReason.MAX_TOKENS);
        assertThat(none.promptLogprobs()).isEqualTo(expected);

        int length = model.encode(STORY).length;
        try (Model exact = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withContextLength(length))) {
            Completion full = exact.generator().generate(STORY, scoring.maxTokens(5));
            assertThat(full.outputTokens()).isEmpty();
            assertThat(full.finishReason()).isEqualTo(FinishReason.CONTEXT_FULL);
            assertThat(full.promptLogprobs()).isEqualTo(expected);
            assertThatThrownBy(() -> exact.generator().generate(STORY, GenerationConfig.greedy().maxTokens(5)))
                    .isInstanceOf(PeregrineException.class)
                    .hasMessage("the prompt has " + length + " tokens, the whole context length " + length
                            + ": there is no room to generate a token");
            try (Session session = exact.newSession()) {
                session.append(STORY);
                assertThatThrownBy(() -> session.generate(GenerationConfig.greedy())).isInstanceOf(PeregrineException.class);
                assertThat(session.generate(scoring.maxTokens(3)).promptLogprobs()).isEqualTo(expected);
            }
        }
    }

    @Test
    void theSameInABatchAndWithTheCachedPrefixOfAnEarlierRequest() throws Exception {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(3).promptLogprobs(0);
        Completion alone = model.generator().generate(STORY, config);
        // An identical request whose prompt blocks are now cached, among others.
        List<CompletableFuture<Completion>> batch = new ArrayList<>();
        batch.add(model.generator().generateAsync("Tom had a red ball", GenerationConfig.greedy().maxTokens(20)));
        batch.add(model.generator().generateAsync(STORY, config));
        batch.add(model.generator().generateAsync("Sam was sad", GenerationConfig.defaults().seed(2).maxTokens(20)));
        assertThat(batch.get(1).get().promptLogprobs()).isEqualTo(alone.promptLogprobs());
        assertThat(batch.get(1).get().outputTokens()).containsExactly(alone.outputTokens());
    }

    /** A KV cache too small for all at once: preempted requests are evaluated again, each prompt token scored once. */
    @Test
    void preemptionScoresEachPromptTokenOnce() throws Exception {
        String[] prompts = {STORY, "Tom had a red ball. He played with it in the park every day.",
                "Sam was a little dog who liked to run and jump in the sun with his friends.", STORY + " The end."};
        List<Completion> alone = new ArrayList<>();
        for (int i = 0; i < prompts.length; i++) {
            alone.add(model.generator().generate(prompts[i], GenerationConfig.greedy().maxTokens(40).promptLogprobs(1)));
        }
        try (Model tight = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withKvCacheTokens(256))) {
            List<CompletableFuture<Completion>> futures = new ArrayList<>();
            for (String prompt : prompts) {
                futures.add(tight.generator().generateAsync(prompt, GenerationConfig.greedy().maxTokens(40).promptLogprobs(1)));
            }
            for (int i = 0; i < prompts.length; i++) {
                Completion c = futures.get(i).get(60, TimeUnit.SECONDS);
                assertThat(c.outputTokens()).as("request %d", i).containsExactly(alone.get(i).outputTokens());
                assertThat(c.promptLogprobs()).as("request %d", i).isEqualTo(alone.get(i).promptLogprobs());
            }
            assertThat(tight.generator().metrics().preemptions()).as("the budget forced preemption").isPositive();
        }
    }

    @Test
    void aStoryHasALowerPerplexityThanRandomTokens() {
        double story = model.generator().generate(STORY, GenerationConfig.greedy().maxTokens(1).promptLogprobs(0))
                .promptPerplexity();
        Random random = new Random(3);
        int[] noise = new int[120];
        noise[0] = model.encode("")[0];
        for (int i = 1; i < noise.length; i++) {
            noise[i] = 3 + random.nextInt(model.vocabularySize() - 3);
        }
        double randomTokens = model.generator().generate(noise, GenerationConfig.greedy().maxTokens(1).promptLogprobs(0), t -> { })
                .promptPerplexity();
        System.out.printf("[PromptLogprobsTest] perplexity: story %.2f, random tokens %.1f%n", story, randomTokens);
        assertThat(story).isGreaterThan(1).isLessThan(20);
        assertThat(randomTokens).isGreaterThan(10 * story);
        assertThat(model.generator().generate(STORY, GenerationConfig.greedy().maxTokens(1)).promptPerplexity()).isNaN();
    }

    private static double max(double[] v) {
        double m = Double.NEGATIVE_INFINITY;
        for (double x : v) {
            m = Math.max(m, x);
        }
        return m;
    }

    private static double logSumExp(double[] logits) {
        double m = max(logits);
        double sum = 0;
        for (double v : logits) {
            sum += Math.exp(v - m);
        }
        return m + Math.log(sum);
    }
}
