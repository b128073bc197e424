package dev.peregrine.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A load error names the file, even when the check that found it knows only a key or a tensor. */
class ModelFileErrorsTest {
    private static final Path MODEL = PeregrineCliTest.sharedDir().resolve("models/stories260K.gguf");

    @TempDir
    Path dir;

    @Test
    void aVocabularyErrorNamesTheFile() {
        Path bad = dir.resolve("bos-outside.gguf");
        GgufCopy.copy(MODEL, bad, Map.of("tokenizer.ggml.bos_token_id", 512L), Map.of());
        PeregrineCliTest.Result r = PeregrineCliTest.run("generate", "-m", bad.toString(), "-p", "Once", "-n", "2");
        assertThat(r.status()).isEqualTo(Peregrine.FAILED);
        assertThat(r.err()).contains(bad + ": 'tokenizer.ggml.bos_token_id' = 512 is outside the vocabulary of 512 tokens");
    }
}
