package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.Completion;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Speculation;
import java.util.Arrays;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import org.junit.jupiter.api.Test;

/**
 * Logit bias and the frequency and presence penalties on the real stories260K: a banned token never
 * comes out, a bias can force a token, and the output is the same alone, in a batch and under
 * speculative decoding (the penalties and bias are part of the distribution every path samples).
 */
class LogitBiasTest extends Stories260KTest {
    private static final String PROMPT = "Once upon a time, there was a little girl named Lily";

    @Test
    void bannedTokensNeverComeOutAndAStrongBiasForcesOne() {
        GenerationConfig greedy = GenerationConfig.greedy().maxTokens(40);
        int[] plain = model.generator().generate(PROMPT, greedy).outputTokens();
        // Ban the two most frequent tokens of the plain output.
        int first = plain[0];
        int second = Arrays.stream(plain).filter(t -> t != first).findFirst().orElseThrow();
        Completion banned = model.generator().generate(PROMPT,
                greedy.logitBias(Map.of(first, Float.NEGATIVE_INFINITY, second, Float.NEGATIVE_INFINITY)));
        assertThat(banned.outputTokens()).doesNotContain(first, second).isNotEqualTo(plain);

        Completion forced = model.generator().generate(PROMPT, greedy.maxTokens(5).logitBias(Map.of(300, 1000f)));
        assertThat(forced.outputTokens()).containsOnly(300);
    }

    @Test
    void penaltiesLowerRepetitionAndAgreeAloneBatchedAndSpeculative() throws Exception {
        GenerationConfig greedy = GenerationConfig.greedy().maxTokens(60);
        GenerationConfig penalised = greedy.frequencyAndPresencePenalty(0.8f, 0.8f);
        int[] plain = model.generator().generate(PROMPT, greedy).outputTokens();
        Completion alone = model.generator().generate(PROMPT, penalised);
        assertThat(distinct(alone.outputTokens())).isGreaterThan(distinct(plain));

        CompletableFuture<Completion> other = model.generator().generateAsync("Tom had a red ball", penalised.seed(3).temperature(0.8f));
        CompletableFuture<Completion> same = model.generator().generateAsync(PROMPT, penalised);
        assertThat(same.get().outputTokens()).containsExactly(alone.outputTokens());
        other.get();

        Completion speculative = model.generator().generate(PROMPT,
                penalised.withSpeculation(Speculation.promptLookup(1, 3, 4).withFallbackWhenSlower(false)));
        assertThat(speculative.outputTokens()).containsExactly(alone.outputTokens());
    }

    private static long distinct(int[] tokens) {
        return Arrays.stream(tokens).distinct().count();
    }
}
