package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.assertj.core.api.Assertions.within;

import dev.peregrine.Completion;
import dev.peregrine.GeneratedToken;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Speculation;
import dev.peregrine.TokenLogprob;
import dev.peregrine.format.gguf.GgufFile;
import java.lang.foreign.Arena;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Log-probabilities of generated tokens on the real stories260K: they are the log-softmax of the
 * model's logits (checked against the float64 reference forward pass), the same alone, in a batch
 * and under speculative decoding, and asking for them changes no output.
 */
class LogprobsTest extends Stories260KTest {
    private static final String PROMPT = "Once upon a time, there was a little girl named Lily";

    @Test
    void greedyLogprobsAreTheReferenceLogSoftmaxAndRankTheChosenTokenFirst() {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(24).logprobs(5);
        Completion c = model.generator().generate(PROMPT, config);
        assertThat(c.outputTokens()).containsExactly(model.generator().generate(PROMPT, config.withoutLogprobs()).outputTokens());
        assertThat(c.logprobs()).hasSize(c.outputTokens().length);

        int[] prompt = c.promptTokens();
        try (Arena arena = Arena.ofConfined()) {
            ReferenceLlama reference = new ReferenceLlama(GgufFile.open(SharedModels.stories260K(), arena));
            double[] logits = null;
            for (int p = 0; p < prompt.length; p++) {
                logits = reference.forward(prompt[p], p);
            }
            for (int i = 0; i < c.outputTokens().length; i++) {
                TokenLogprob t = c.logprobs().get(i);
                assertThat(t.token()).isEqualTo(c.outputTokens()[i]);
                assertThat(t.top()).hasSize(5);
                assertThat(t.top().getFirst().token()).as("greedy picks the most likely token").isEqualTo(t.token());
                assertThat(t.top().getFirst().logprob()).isEqualTo(t.logprob());
                double logSum = logSumExp(logits);
                assertThat(t.logprob()).as("token %d", i).isCloseTo(logits[t.token()] - logSum, within(1e-3));
                for (TokenLogprob.Alternative a : t.top()) {
                    assertThat(a.logprob()).as("token %d, alternative %d", i, a.token())
                            .isCloseTo(logits[a.token()] - logSum, within(1e-3));
                }
                logits = reference.forward(c.outputTokens()[i], prompt.length + i);
            }
        }
    }

    @Test
    void streamedTokensCarryTheCompletionsLogprobs() {
        GenerationConfig config = GenerationConfig.defaults().seed(7).maxTokens(30).logprobs(2);
        List<TokenLogprob> streamed = new ArrayList<>();
        Completion c = model.generator().generate(PROMPT, config, token -> {
            assertThat(token.logprob()).isNotNull();
            streamed.add(token.logprob());
        });
        assertThat(c.outputTokens()).containsExactly(model.generator().generate(PROMPT, config.withoutLogprobs()).outputTokens());
        assertThat(streamed.subList(0, c.logprobs().size())).isEqualTo(c.logprobs());
        for (TokenLogprob t : c.logprobs()) {
            assertThat(t.logprob()).isLessThanOrEqualTo(0).isGreaterThan(Double.NEGATIVE_INFINITY);
            assertThat(t.top()).hasSize(2);
        }
        GeneratedToken plain = new GeneratedToken(1, "x");
        assertThat(plain.logprob()).isNull();
        assertThat(model.generator().generate(PROMPT, config.withoutLogprobs()).logprobs()).isEmpty();
    }

    @Test
    void logprobsAreTheSameInABatchAndUnderSpeculation() throws Exception {
        GenerationConfig config = GenerationConfig.greedy().maxTokens(40).logprobs(3);
        Completion alone = model.generator().generate(PROMPT, config);
        List<CompletableFuture<Completion>> batch = new ArrayList<>();
        for (String prompt : new String[] {"Tom had a red ball", PROMPT, "The dog ran to the park", "Sam was sad"}) {
            batch.add(model.generator().generateAsync(prompt, config));
        }
        assertThat(batch.get(1).get().logprobs()).isEqualTo(alone.logprobs());
        // Prompt lookup drafts from the text; verification spans give each position's row.
        Completion speculative = model.generator().generate(PROMPT,
                config.withSpeculation(Speculation.promptLookup(1, 3, 4).withFallbackWhenSlower(false)));
        assertThat(speculative.speculation().draftedTokens()).isPositive();
        assertThat(speculative.outputTokens()).containsExactly(alone.outputTokens());
        assertThat(speculative.logprobs()).isEqualTo(alone.logprobs());
    }

    @Test
    void badRequestsAreRejected() {
        assertThatThrownBy(() -> GenerationConfig.greedy().logprobs(21)).isInstanceOf(IllegalArgumentException.class)
                .hasMessageContaining("0 to 20");
        assertThatThrownBy(() -> GenerationConfig.greedy().logprobs(-2)).isInstanceOf(IllegalArgumentException.class);
        assertThat(GenerationConfig.greedy().logprobs(0).wantsLogprobs()).isTrue();
        assertThat(GenerationConfig.greedy().wantsLogprobs()).isFalse();
    }

    private static double logSumExp(double[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (double v : logits) {
            max = Math.max(max, v);
        }
        double sum = 0;
        for (double v : logits) {
            sum += Math.exp(v - max);
        }
        return max + Math.log(sum);
    }
}
