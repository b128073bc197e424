package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.catchThrowable;

import dev.peregrine.Completion;
import dev.peregrine.FinishReason;
import dev.peregrine.GenerationConfig;
import dev.peregrine.Model;
import dev.peregrine.ModelFormatException;
import dev.peregrine.format.gguf.GgufValueType;
import dev.peregrine.format.hf.HfDirectoryWriter;
import dev.peregrine.synth.ModelShape;
import dev.peregrine.synth.SyntheticHfTokenizer;
import dev.peregrine.synth.SyntheticModel;
import dev.peregrine.synth.SyntheticVocabulary;
import dev.peregrine.synth.TokenizerMetadata;
import dev.peregrine.tensor.DType;
import dev.peregrine.tokenizer.Vocabulary;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A generation stops on every token the model's files name as ending one: in a GGUF file the EOT,
 * EOM and FIM padding/repository/separator ids (as llama.cpp), in a Hugging Face directory every
 * {@code eos_token_id} of config.json and generation_config.json, an id or a list. The synthetic
 * model's greedy output is computed once; a token it produces is then named in the files, and the
 * generation must end just before it.
 */
class EndOfGenerationModelTest {
    private static final ModelShape TINY = ModelShape.named("tiny");
    private static final String PROMPT = "Once upon a time";
    private static final GenerationConfig GREEDY = GenerationConfig.greedy().maxTokens(24);

    @TempDir
    Path dir;

    private int[] free;
    /** A token of the free output, first produced at {@link #stopAt} (not the first token). */
    private int stopToken;
    private int stopAt;

    @BeforeEach
    void freeRun() {
        Path gguf = gguf("free.gguf", List.of());
        try (Model model = Model.load(gguf)) {
            free = model.generator().generate(PROMPT, GREEDY.ignoreEos(true)).outputTokens();
        }
        assertThat(free).hasSize(24);
        for (int i = 2; i < free.length && stopAt == 0; i++) {
            int t = free[i];
            if (t != SyntheticVocabulary.EOS_ID && Arrays.stream(free, 0, i).noneMatch(x -> x == t)) {
                stopToken = t;
                stopAt = i;
            }
        }
        assertThat(stopAt).as("a token first produced after the second").isPositive();
    }

    private Path gguf(String name, List<TokenizerMetadata.Entry> extra) {
        TokenizerMetadata synthetic = TokenizerMetadata.synthetic(TINY.vocab());
        List<TokenizerMetadata.Entry> entries = new ArrayList<>(synthetic.entries());
        entries.addAll(extra);
        Path file = dir.resolve(name);
        SyntheticModel.of(TINY, 3).writeGguf(file, DType.F32,
                new TokenizerMetadata(synthetic.model(), synthetic.tokenCount(), entries), 1);
        return file;
    }

    private void assertStopsAtTheNamedToken(Path model) {
        try (Model m = Model.load(model)) {
            Completion c = m.generator().generate(PROMPT, GREEDY);
            assertThat(c.finishReason()).isEqualTo(FinishReason.END_OF_SEQUENCE);
            assertThat(c.outputTokens()).containsExactly(Arrays.copyOf(free, stopAt));
            Completion ignoring = m.generator().generate(PROMPT, GREEDY.ignoreEos(true));
            assertThat(ignoring.outputTokens()).as("ignoreEos").containsExactly(free);
        }
    }

    @Test
    void ggufEndOfTurnMessageAndFimIds() {
        for (String key : List.of(Vocabulary.KEY_EOT, Vocabulary.KEY_EOM, Vocabulary.KEY_FIM_PAD,
                Vocabulary.KEY_FIM_REP, Vocabulary.KEY_FIM_SEP)) {
            Path file = gguf(key + ".gguf", List.of(new TokenizerMetadata.Entry(key, GgufValueType.UINT32, (long) stopToken)));
            assertStopsAtTheNamedToken(file);
        }
    }

    @Test
    void huggingFaceEosIdsOfConfigAndGenerationConfig() throws IOException {
        Path hf = dir.resolve("hf");
        SyntheticModel.of(TINY, 3).writeHf(hf, DType.F32, HfDirectoryWriter.DEFAULT_SHARD_LIMIT, 1);
        SyntheticHfTokenizer.write(hf, TINY.vocab());
        Path config = hf.resolve("config.json");
        Path generationConfig = hf.resolve("generation_config.json");
        String configJson = Files.readString(config);
        String generationJson = Files.readString(generationConfig);
        String eos = "\"eos_token_id\"\\s*:\\s*" + SyntheticVocabulary.EOS_ID;
        assertThat(configJson).containsPattern(eos);
        assertThat(generationJson).containsPattern(eos);

        try (Model m = Model.load(hf)) {
            assertThat(m.generator().generate(PROMPT, GREEDY).outputTokens()).as("only EOS ends").containsExactly(free);
        }

        // a list in config.json
        Files.writeString(config, configJson.replaceAll(eos, "\"eos_token_id\": [2, " + stopToken + "]"));
        assertStopsAtTheNamedToken(hf);

        // an id in generation_config.json (config.json has EOS only)
        Files.writeString(config, configJson);
        Files.writeString(generationConfig, generationJson.replaceAll(eos, "\"eos_token_id\": " + stopToken));
        assertStopsAtTheNamedToken(hf);

        // a list in generation_config.json, with an id past the tokenizer (left out)
        Files.writeString(generationConfig, generationJson.replaceAll(eos,
                "\"eos_token_id\": [" + stopToken + ", 2, " + (TINY.vocab() + 7) + "]"));
        assertStopsAtTheNamedToken(hf);

        Files.writeString(generationConfig, generationJson.replaceAll(eos, "\"eos_token_id\": \"</s>\""));
        assertThat(catchThrowable(() -> Model.load(hf).close())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("generation_config.json").hasMessageContaining("eos_token_id");
    }
}
