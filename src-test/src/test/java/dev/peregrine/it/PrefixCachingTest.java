package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.Completion;
import dev.peregrine.GenerationConfig;
import dev.peregrine.GeneratorMetrics;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.Session;
import dev.peregrine.tensor.DType;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

/** Automatic prefix caching: a shared prompt prefix is evaluated once, and outputs do not change. */
class PrefixCachingTest {
    private static final String SENTENCE = "Once upon a time, there was a little girl named Lily. She loved to play outside. ";

    private static int[] concat(int[] a, int[] b) {
        int[] r = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }

    private static int[] longPrefix(Model model, int atLeast) {
        String text = SENTENCE;
        while (model.encode(text).length < atLeast) {
            text += SENTENCE;
        }
        return Arrays.copyOf(model.encode(text), atLeast);
    }

    /** With an F32 and with an F16 KV cache (whose cached blocks hold halves, copied as such). */
    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16"})
    void theSecondRequestWithA1000TokenSharedPrefixPrefillsOnlyItsSuffix(DType kvType) {
        GenerationConfig cfg = GenerationConfig.greedy().maxTokens(30);
        int[] expectedA;
        int[] expectedB;
        int[] a;
        int[] b;
        ModelOptions options = ModelOptions.defaults().withKvCacheType(kvType);
        try (Model plain = Model.load(SharedModels.stories260K(), options.withPrefixCaching(false))) {
            int[] prefix = longPrefix(plain, 1000);
            a = concat(prefix, plain.encode(" The end.", false));
            b = concat(prefix, plain.encode(" One day Tom came.", false));
            expectedA = plain.generator().generate(a, cfg, t -> { }).outputTokens();
            expectedB = plain.generator().generate(b, cfg, t -> { }).outputTokens();
        }
        try (Model model = Model.load(SharedModels.stories260K(), options)) {
            Completion first = model.generator().generate(a, cfg, t -> { });
            long promptBefore = model.generator().metrics().promptTokens();
            Completion second = model.generator().generate(b, cfg, t -> { });
            GeneratorMetrics m = model.generator().metrics();
            long prefilled = m.promptTokens() - promptBefore;

            assertThat(first.outputTokens()).containsExactly(expectedA);
            assertThat(second.outputTokens()).containsExactly(expectedB);
            int suffix = b.length - 1000;
            assertThat(prefilled).as("prompt tokens evaluated for the second request")
                    .isLessThanOrEqualTo(suffix + m.kvBlockSize());
            assertThat(m.prefixCacheHitTokens()).isGreaterThanOrEqualTo(1000 - m.kvBlockSize());
            // The request's own timings count what it evaluated, not the tokens the cache held.
            assertThat(second.timings().promptTokens()).as("the second request's prompt tokens evaluated")
                    .isEqualTo((int) prefilled);
            assertThat(first.timings().promptTokens()).isEqualTo(a.length);
        }
    }

    @ParameterizedTest
    @EnumSource(value = DType.class, names = {"F32", "F16"})
    void cachedBlocksAreNeverOverwrittenByARewoundSession(DType kvType) {
        GenerationConfig cfg = GenerationConfig.greedy().maxTokens(20);
        ModelOptions options = ModelOptions.defaults().withKvCacheType(kvType);
        try (Model plain = Model.load(SharedModels.stories260K(), options.withPrefixCaching(false));
             Model model = Model.load(SharedModels.stories260K(), options)) {
            int[] prompt = longPrefix(plain, 100);
            int[] expected = plain.generator().generate(prompt, cfg, t -> { }).outputTokens();
            try (Session s = model.newSession()) {
                s.append(prompt);
                s.generate(cfg);
                // Rewind into the cached blocks and write different tokens there.
                s.rewind(60);
                s.append(7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30);
                s.generate(cfg);
            }
            assertThat(model.generator().generate(prompt, cfg, t -> { }).outputTokens()).containsExactly(expected);
            assertThat(model.generator().metrics().prefixCacheHitTokens()).isPositive();
        }
    }

    @Test
    void evictedPrefixBlocksAreRecomputedCorrectly() {
        // A cache of 8 blocks: each new 100-token prompt evicts the previous one's cached blocks.
        ModelOptions tiny = ModelOptions.defaults().withKvCacheTokens(128);
        GenerationConfig cfg = GenerationConfig.greedy().maxTokens(10);
        try (Model plain = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withPrefixCaching(false));
             Model model = Model.load(SharedModels.stories260K(), tiny)) {
            int[] base = longPrefix(plain, 100);
            for (int round = 0; round < 3; round++) {
                for (int variant = 0; variant < 3; variant++) {
                    int[] prompt = base.clone();
                    prompt[1] = 10 + variant; // a different first block: a different prefix chain
                    assertThat(model.generator().generate(prompt, cfg, t -> { }).outputTokens())
                            .containsExactly(plain.generator().generate(prompt, cfg, t -> { }).outputTokens());
                }
            }
            assertThat(model.generator().metrics().kvBlocksUsed()).isZero();
        }
    }
}
