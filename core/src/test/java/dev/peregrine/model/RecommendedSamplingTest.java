package dev.peregrine.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.GenerationConfig;
import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufMetadata;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The sampling settings a model's files recommend, read as llama.cpp (GGUF) and transformers (generation_config.json) read them. */
class RecommendedSamplingTest {
    private static final Path FILE = Path.of("model.gguf");

    @TempDir
    Path dir;

    private static RecommendedSampling gguf(Map<String, Object> keys) {
        Map<String, Object> m = new HashMap<>();
        keys.forEach((k, v) -> m.put("general.sampling." + k, v));
        m.put("general.architecture", "llama");
        return RecommendedSampling.fromGguf(FILE, GgufMetadata.of(FILE, m));
    }

    @Test
    void ggufKeysReplaceTheDefaultsTheyName() {
        // As llama.cpp's converter writes them: floats as F32, counts as integers.
        RecommendedSampling s = gguf(Map.of("temp", 0.6f, "top_k", 20L, "top_p", 0.95f, "min_p", 0f,
                "penalty_repeat", 1.1f, "penalty_last_n", 128L));
        GenerationConfig c = s.applyTo(GenerationConfig.defaults());
        assertThat(c.temperature()).isEqualTo(0.6f);
        assertThat(c.topK()).isEqualTo(20);
        assertThat(c.topP()).isEqualTo(0.95f);
        assertThat(c.minP()).isZero();
        assertThat(c.repetitionPenalty()).isEqualTo(1.1f);
        assertThat(c.repetitionLastN()).isEqualTo(128);
        assertThat(s.describe()).isEqualTo("temp 0.6, top-k 20, top-p 0.95, min-p 0.0, repeat-penalty 1.1, repeat-last-n 128");

        // Only what the file states changes; the rest stays the library's default.
        GenerationConfig partial = gguf(Map.of("temp", 0.3f)).applyTo(GenerationConfig.defaults());
        GenerationConfig defaults = GenerationConfig.defaults();
        assertThat(partial.temperature()).isEqualTo(0.3f);
        assertThat(partial.topK()).isEqualTo(defaults.topK());
        assertThat(partial.topP()).isEqualTo(defaults.topP());
        assertThat(partial.minP()).isEqualTo(defaults.minP());
        assertThat(partial.repetitionLastN()).isEqualTo(defaults.repetitionLastN());

        assertThat(gguf(Map.of())).isEqualTo(RecommendedSampling.NONE);
        assertThat(RecommendedSampling.NONE.applyTo(defaults)).isEqualTo(defaults);
        assertThat(RecommendedSampling.NONE.describe()).isEqualTo("none");
    }

    /** llama.cpp's "off" values mean off here too; a negative temperature is greedy there. */
    @Test
    void llamaCppsOffValuesAreMapped() {
        GenerationConfig c = gguf(Map.of("temp", -1f, "top_k", -1L, "top_p", 1.5f, "min_p", -0.5f, "penalty_last_n", -1L))
                .applyTo(GenerationConfig.defaults());
        assertThat(c.isGreedy()).isTrue();
        assertThat(c.topK()).isZero();
        assertThat(c.topP()).isEqualTo(1f);
        assertThat(c.minP()).isZero();
        assertThat(c.repetitionLastN()).as("-1: the whole context").isEqualTo(Integer.MAX_VALUE);
        // llama.cpp's top-p 0 keeps the most likely token: top-k 1 here.
        GenerationConfig one = gguf(Map.of("top_p", 0f)).applyTo(GenerationConfig.defaults());
        assertThat(one.topK()).isEqualTo(1);
        assertThat(one.topP()).isEqualTo(1f);
    }

    /** Hints the model cannot use are left out (with a warning), the others kept: as llama.cpp, the model still loads. */
    @Test
    void aValueNoSamplerAcceptsIsLeftOutAndTheRestKept() {
        for (Map.Entry<String, Object> bad : List.<Map.Entry<String, Object>>of(Map.entry("temp", Float.NaN),
                Map.entry("min_p", 1f), Map.entry("penalty_repeat", 0f), Map.entry("penalty_last_n", -2L),
                Map.entry("penalty_last_n", 2.5f), Map.entry("top_p", "high"))) {
            Map<String, Object> keys = new HashMap<>(Map.of("top_k", 20L));
            keys.put(bad.getKey(), bad.getValue());
            RecommendedSampling s = gguf(keys);
            assertThat(s).as(bad.toString()).isEqualTo(new RecommendedSampling(null, 20, null, null, null, null));
        }
    }

    @Test
    void generationConfigJsonAsTransformersReadsIt() throws IOException {
        assertThat(RecommendedSampling.fromHuggingFace(dir)).as("no generation_config.json").isEqualTo(RecommendedSampling.NONE);
        Files.writeString(dir.resolve("generation_config.json"), """
                {"bos_token_id": 1, "do_sample": true, "eos_token_id": [2, 7], "temperature": 0.7, "top_k": 50,
                 "top_p": 0.8, "repetition_penalty": 1.05, "transformers_version": "4.51.0"}""");
        GenerationConfig c = RecommendedSampling.fromHuggingFace(dir).applyTo(GenerationConfig.defaults());
        assertThat(c.temperature()).isEqualTo(0.7f);
        assertThat(c.topK()).isEqualTo(50);
        assertThat(c.topP()).isEqualTo(0.8f);
        assertThat(c.minP()).isEqualTo(GenerationConfig.defaults().minP());
        assertThat(c.repetitionPenalty()).isEqualTo(1.05f);
        assertThat(c.repetitionLastN()).as("transformers penalises the whole sequence").isEqualTo(Integer.MAX_VALUE);

        Files.writeString(dir.resolve("generation_config.json"), "{\"temperature\": \"warm\", \"top_p\": 0.9}");
        assertThat(RecommendedSampling.fromHuggingFace(dir)).isEqualTo(new RecommendedSampling(null, null, 0.9f, null, null, null));
        // A penalty left out takes its whole-sequence window with it.
        Files.writeString(dir.resolve("generation_config.json"), "{\"repetition_penalty\": 0, \"top_k\": 5}");
        assertThat(RecommendedSampling.fromHuggingFace(dir)).isEqualTo(new RecommendedSampling(null, 5, null, null, null, null));
        Files.writeString(dir.resolve("generation_config.json"), "[0.7]");
        assertThatThrownBy(() -> RecommendedSampling.fromHuggingFace(dir)).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("is not a JSON object");
    }
}
