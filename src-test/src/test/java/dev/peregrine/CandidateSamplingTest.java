package dev.peregrine;

import static org.assertj.core.api.Assertions.assertThat;

import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * Sampling from the backend's best candidates per logits row gives the same tokens as sampling
 * from whole rows, on the CPU backend (whose candidates come from the SPI's host default): every
 * config alone, requests of different configs in the same steps (rows needing different k, and
 * rows that need whole rows, which send their steps down the old path), and greedy speculative
 * decoding; on stories260K and on a synthetic Gemma 2, whose logits go through the final soft-cap.
 * In package {@code dev.peregrine} to reach a model's scheduler, which switches the candidate path
 * off for the comparison and counts the steps that took it.
 */
class CandidateSamplingTest {
    /** Configs whose every step can sample from candidates. */
    private static final List<GenerationConfig> FROM_CANDIDATES = List.of(
            GenerationConfig.greedy(),
            GenerationConfig.defaults().seed(11),
            GenerationConfig.defaults().temperature(1.3f).topK(7).topP(1).minP(0).seed(12),
            GenerationConfig.defaults().temperature(0.6f).topK(100).topP(0.8f).minP(0.1f).seed(13),
            GenerationConfig.defaults().temperature(1).topK(1).seed(14));
    /** Configs that need whole rows: no top-k, or a repetition penalty. */
    private static final List<GenerationConfig> FROM_WHOLE_ROWS = List.of(
            GenerationConfig.defaults().topK(0).topP(0.9f).seed(15),
            GenerationConfig.greedy().repetitionPenalty(1.3f, 16),
            GenerationConfig.defaults().repetitionPenalty(1.1f, 64).seed(16));
    private static final String[] PROMPTS = {"Once upon a time", "The little dog", "Lily wanted to", "One day, a big"};

    @TempDir
    static Path dir;
    private static Path gemma2;

    @BeforeAll
    static void writeGemma2() {
        ModelShape shape = ModelShape.named("gemma2-tiny");
        gemma2 = dir.resolve("gemma2-tiny.gguf");
        SyntheticModel.of(shape, 21).writeGguf(gemma2, DType.F32, TokenizerMetadata.synthetic(shape.vocab()), 1);
    }

    private static Path model(String name) {
        return name.equals("gemma2-tiny") ? gemma2
                : Path.of(System.getProperty("peregrine.shared.dir", "../shared")).resolve("models").resolve(name + ".gguf");
    }

    private static GenerationConfig lengthened(GenerationConfig c) {
        return c.maxTokens(40).ignoreEos(true);
    }

    private static int[] generate(Model model, String prompt, GenerationConfig config, boolean candidates) {
        model.scheduler().setCandidateSampling(candidates);
        return model.generator().generate(prompt, config).outputTokens();
    }

    @ParameterizedTest
    @ValueSource(strings = {"stories260K", "gemma2-tiny"})
    void eachConfigAloneGivesTheSameTokensFromCandidatesAsFromWholeRows(String name) {
        try (Model model = Model.load(model(name))) {
            for (GenerationConfig c : Stream.concat(FROM_CANDIDATES.stream(), FROM_WHOLE_ROWS.stream()).toList()) {
                GenerationConfig config = lengthened(c);
                for (String prompt : PROMPTS) {
                    long steps = model.scheduler().candidateSteps();
                    int[] fromCandidates = generate(model, prompt, config, true);
                    long candidateSteps = model.scheduler().candidateSteps() - steps;
                    int[] fromWholeRows = generate(model, prompt, config, false);
                    assertThat(fromCandidates).as("%s, %s", prompt, config).hasSize(40).containsExactly(fromWholeRows);
                    assertThat(candidateSteps).as("steps that sampled from candidates, %s", config)
                            .isEqualTo(FROM_CANDIDATES.contains(c) ? 40 : 0);
                }
            }
            assertThat(model.scheduler().candidateSteps()).isEqualTo(40L * PROMPTS.length * FROM_CANDIDATES.size());
        }
    }

    /**
     * Requests of every config at once: steps whose rows need 1, 7, 40 or 100 candidates take the
     * largest k; while a whole-row request runs, its steps read whole rows for everyone.
     */
    @ParameterizedTest
    @ValueSource(strings = {"stories260K", "gemma2-tiny"})
    void requestsSharingStepsGiveTheSameTokensAsAloneFromWholeRows(String name) {
        try (Model model = Model.load(model(name))) {
            List<GenerationConfig> everything = Stream.concat(FROM_CANDIDATES.stream(), FROM_WHOLE_ROWS.stream()).toList();
            for (List<GenerationConfig> configs : List.of(FROM_CANDIDATES, everything)) {
                List<int[]> alone = new ArrayList<>();
                for (int i = 0; i < configs.size(); i++) {
                    alone.add(generate(model, PROMPTS[i % PROMPTS.length], lengthened(configs.get(i)), false));
                }
                model.scheduler().setCandidateSampling(true);
                long steps = model.scheduler().candidateSteps();
                List<CompletableFuture<Completion>> together = new ArrayList<>();
                for (int i = 0; i < configs.size(); i++) {
                    together.add(model.generator().generateAsync(PROMPTS[i % PROMPTS.length], lengthened(configs.get(i))));
                }
                for (int i = 0; i < configs.size(); i++) {
                    assertThat(together.get(i).join().outputTokens()).as("%s", configs.get(i)).containsExactly(alone.get(i));
                }
                assertThat(model.scheduler().candidateSteps()).as("steps that sampled from candidates").isGreaterThan(steps);
            }
        }
    }

    /** Greedy verification of drafts (a prompt-lookup drafter, and the model drafting for itself) takes the argmax of each position from candidates. */
    @Test
    void greedySpeculativeDecodingVerifiesFromCandidates() {
        try (Model model = Model.load(model("stories260K"))) {
            GenerationConfig greedy = lengthened(GenerationConfig.greedy());
            for (Speculation speculation : List.of(Speculation.promptLookup(1, 3, 6).withFallbackWhenSlower(false),
                    Speculation.draftModel(model, 3).withFallbackWhenSlower(false))) {
                for (String prompt : PROMPTS) {
                    int[] plain = generate(model, prompt, greedy, false);
                    long steps = model.scheduler().candidateSteps();
                    int[] fromCandidates = generate(model, prompt, greedy.withSpeculation(speculation), true);
                    assertThat(model.scheduler().candidateSteps()).isGreaterThan(steps);
                    int[] fromWholeRows = generate(model, prompt, greedy.withSpeculation(speculation), false);
                    assertThat(fromCandidates).as("%s, %s", prompt, speculation).containsExactly(plain);
                    assertThat(fromWholeRows).as("%s, %s", prompt, speculation).containsExactly(plain);
                }
            }
        }
    }
}
