package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GeneratedToken;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelOptions;
import dev.peregrine.PeregrineException;
import dev.peregrine.Session;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/** The public API on the real stories260K model. */
class GenerationTest extends Stories260KTest {
    /**
     * llama2.c's documented greedy output for stories260K (its README, "Once upon a time" at
     * temperature 0). The model was trained with 512-token sequences.
     */
    static final String LLAMA2C_GREEDY_START =
            "Once upon a time, there was a little girl named Lily. She loved to play outside in the park.";

    @Test
    void greedyOutputIsLlama2cDocumentedStory() {
        Completion c = model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(100));
        assertThat("Once upon a time" + c.text()).startsWith(LLAMA2C_GREEDY_START);
        assertThat(c.finishReason()).isIn(FinishReason.MAX_TOKENS, FinishReason.END_OF_SEQUENCE);
        assertThat(c.promptTokens()[0]).isEqualTo(1); // BOS
        assertThat(model.decode(c.outputTokens())).isEqualTo(c.text());
        assertThat(c.timings().promptTokens()).isEqualTo(c.promptTokens().length);
        assertThat(c.timings().generatedTokens()).isEqualTo(c.outputTokens().length);
    }

    @Test
    void streamingGivesTheSameTokensAndTextAsGenerate() {
        GenerationConfig cfg = GenerationConfig.defaults().seed(7).maxTokens(60);
        Completion whole = model.generator().generate("Once upon a time", cfg);
        List<GeneratedToken> streamed;
        try (Stream<GeneratedToken> s = model.generator().stream("Once upon a time", cfg)) {
            streamed = s.toList();
        }
        assertThat(streamed.stream().mapToInt(GeneratedToken::id).limit(whole.outputTokens().length).toArray())
                .containsExactly(whole.outputTokens());
        assertThat(streamed.stream().map(GeneratedToken::text).collect(Collectors.joining())).isEqualTo(whole.text());
    }

    @Test
    void sameSeedSameOutputDifferentSeedDifferentOutput() {
        GenerationConfig cfg = GenerationConfig.defaults().temperature(1.0f).maxTokens(40);
        Completion a = model.generator().generate("Once upon a time", cfg.seed(123));
        Completion b = model.generator().generate("Once upon a time", cfg.seed(123));
        Completion c = model.generator().generate("Once upon a time", cfg.seed(124));
        assertThat(a.outputTokens()).containsExactly(b.outputTokens());
        assertThat(a.outputTokens()).isNotEqualTo(c.outputTokens());
    }

    @Test
    void stopStringEndsGenerationAndIsNotReturned() {
        GenerationConfig cfg = GenerationConfig.greedy().maxTokens(100).stopStrings("Lily");
        StringBuilder streamed = new StringBuilder();
        Completion c = model.generator().generate("Once upon a time", cfg, t -> streamed.append(t.text()));
        assertThat(c.finishReason()).isEqualTo(FinishReason.STOP_STRING);
        assertThat(c.text()).isEqualTo(", there was a little girl named ");
        assertThat(streamed.toString()).isEqualTo(c.text());
    }

    @Test
    void stopTokenAndMaxTokens() {
        Completion full = model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(10));
        assertThat(full.finishReason()).isEqualTo(FinishReason.MAX_TOKENS);
        assertThat(full.outputTokens()).hasSize(10);
        int fifth = full.outputTokens()[4];
        Completion stopped = model.generator().generate("Once upon a time",
                GenerationConfig.greedy().maxTokens(10).stopTokens(fifth));
        assertThat(stopped.finishReason()).isEqualTo(FinishReason.STOP_TOKEN);
        assertThat(stopped.outputTokens()).containsExactly(java.util.Arrays.copyOf(full.outputTokens(), indexOf(full.outputTokens(), fifth)));
        assertThat(model.generator().generate("Once", GenerationConfig.greedy().maxTokens(0)).outputTokens()).isEmpty();
    }

    @Test
    void sessionContinuesWhereItStoppedAndRewindRestoresState() {
        Completion reference = model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(30));
        try (Session s = model.newSession()) {
            s.append("Once upon a time");
            Completion first = s.generate(GenerationConfig.greedy().maxTokens(12));
            Completion second = s.generate(GenerationConfig.greedy().maxTokens(18));
            int[] joined = concat(first.outputTokens(), second.outputTokens());
            assertThat(joined).containsExactly(reference.outputTokens());

            int before = s.position();
            s.rewind(18);
            assertThat(s.position()).isEqualTo(before - 18);
            Completion again = s.generate(GenerationConfig.greedy().maxTokens(18));
            assertThat(again.outputTokens()).containsExactly(second.outputTokens());
        }
    }

    /**
     * A consumer that throws on its third token: the session keeps exactly those three tokens (the
     * scheduler may have made more before the cancel took), whatever the timing, and the next
     * completion's prompt is only what was appended after them.
     */
    @Test
    void aThrowingConsumerLeavesTheSessionWithTheTokensItWasGiven() {
        int[] reference = model.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(3)).outputTokens();
        for (int attempt = 0; attempt < 20; attempt++) {
            try (Session s = model.newSession()) {
                s.append("Once upon a time");
                int start = s.position();
                int[] seen = {0};
                assertThatThrownBy(() -> s.generate(GenerationConfig.greedy().maxTokens(40).ignoreEos(true), t -> {
                    if (++seen[0] == 3) {
                        throw new IllegalStateException("consumer bug");
                    }
                })).hasMessage("consumer bug");
                assertThat(s.position()).as("attempt %d", attempt).isEqualTo(start + 3);
                assertThat(java.util.Arrays.copyOfRange(s.tokens(), start, start + 3)).containsExactly(reference);
                s.append(" The");
                Completion next = s.generate(GenerationConfig.greedy().maxTokens(2));
                assertThat(next.promptTokens()).containsExactly(model.encode(" The", false));
            }
        }
    }

    @Test
    void forkedSessionsContinueIndependently() {
        try (Session s = model.newSession()) {
            s.append("Once upon a time");
            s.generate(GenerationConfig.greedy().maxTokens(5));
            try (Session f = s.fork()) {
                Completion a = s.generate(GenerationConfig.greedy().maxTokens(20));
                Completion b = f.generate(GenerationConfig.greedy().maxTokens(20));
                assertThat(b.outputTokens()).containsExactly(a.outputTokens());
                assertThat(f.tokens()).containsExactly(s.tokens());
            }
        }
    }

    @Test
    void manyThreadsShareOneModel() throws Exception {
        GenerationConfig cfg = GenerationConfig.greedy().maxTokens(40);
        Completion expected = model.generator().generate("Once upon a time", cfg);
        ExecutorService pool = Executors.newFixedThreadPool(6);
        try {
            List<Future<Completion>> results = new ArrayList<>();
            for (int i = 0; i < 12; i++) {
                results.add(pool.submit(() -> model.generator().generate("Once upon a time", cfg)));
            }
            for (Future<Completion> f : results) {
                assertThat(f.get().outputTokens()).containsExactly(expected.outputTokens());
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void contextLengthIsEnforced() {
        try (Model small = Model.load(SharedModels.stories260K(), ModelOptions.defaults().withContextLength(20))) {
            Completion c = small.generator().generate("Once upon a time", GenerationConfig.greedy().maxTokens(100));
            assertThat(c.finishReason()).isEqualTo(FinishReason.CONTEXT_FULL);
            assertThat(c.promptTokens().length + c.outputTokens().length).isEqualTo(20);
            String longPrompt = "Once upon a time there was a big dog and a little cat who played all day long in the sun";
            assertThatThrownBy(() -> small.generator().generate(longPrompt, GenerationConfig.greedy()))
                    .isInstanceOf(PeregrineException.class).hasMessageContaining("context length 20");
        }
    }

    private static int indexOf(int[] a, int v) {
        for (int i = 0; i < a.length; i++) {
            if (a[i] == v) {
                return i;
            }
        }
        return -1;
    }

    private static int[] concat(int[] a, int[] b) {
        int[] r = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, r, a.length, b.length);
        return r;
    }
}
