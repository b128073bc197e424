package dev.peregrine.cli;

import static org.assertj.core.api.Assertions.assertThat;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * What loading a model file checks, through the command line. A tensor the model never reads: in a
 * GGUF file it fails the load (as llama.cpp refuses a file whose tensors differ from what its
 * architecture uses), since the model would run without it; in a Hugging Face checkpoint it is a
 * warning, as transformers gives. A load error names the file, even when the check that found it
 * knows only a key or a tensor.
 */
class ModelFileLoadTest {
    private static final Path MODEL = PeregrineCliTest.sharedDir().resolve("models/stories260K.gguf");

    @TempDir
    Path dir;

    @Test
    void aGgufTensorTheArchitectureHasNoUseForFailsTheLoadByName() {
        Path withBias = dir.resolve("with-output-bias.gguf");
        // An attention output bias, which llama.cpp's llama graph adds and Peregrine's has no place for.
        GgufCopy.copy(MODEL, withBias, Map.of(), Map.of("blk.2.attn_output.bias", 64L));
        PeregrineCliTest.Result r = PeregrineCliTest.run("generate", "-m", withBias.toString(), "-p", "Once", "-n", "2");
        assertThat(r.status()).isEqualTo(Peregrine.FAILED);
        assertThat(r.err()).contains("with-output-bias.gguf", "holds 1 tensor(s) that the llama architecture has no use for:"
                + " 'blk.2.attn_output.bias'");
        // The file it was copied from reads every tensor it holds.
        assertThat(PeregrineCliTest.run("generate", "-m", MODEL.toString(), "-p", "Once", "-n", "2").status()).isZero();
    }

    @Test
    void aVocabularyErrorNamesTheFile() {
        Path bad = dir.resolve("bos-outside.gguf");
        GgufCopy.copy(MODEL, bad, Map.of("tokenizer.ggml.bos_token_id", 512L), Map.of());
        PeregrineCliTest.Result r = PeregrineCliTest.run("generate", "-m", bad.toString(), "-p", "Once", "-n", "2");
        assertThat(r.status()).isEqualTo(Peregrine.FAILED);
        assertThat(r.err()).contains(bad + ": 'tokenizer.ggml.bos_token_id' = 512 is outside the vocabulary of 512 tokens");
    }

    @Test
    void aHuggingFaceTensorNotUsedIsAWarning() throws IOException {
        Path hf = dir.resolve("mistral-hf");
        assertThat(PeregrineCliTest.run("synth", "--shape", "mistral-tiny", "--format", "hf", "-o", hf.toString()).status())
                .isZero();
        PeregrineCliTest.Result untied = PeregrineCliTest.run("generate", "-m", hf.toString(), "-p", "Once", "-n", "2");
        assertThat(untied.status()).as(untied.err()).isZero();
        assertThat(untied.err()).doesNotContain("not used by the model");
        // With tied embeddings the saved lm_head is not read (the embedding is the output projection).
        Path config = hf.resolve("config.json");
        String json = Files.readString(config);
        assertThat(json).contains("\"tie_word_embeddings\": false");
        Files.writeString(config, json.replace("\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true"));
        PeregrineCliTest.Result tied = PeregrineCliTest.run("generate", "-m", hf.toString(), "-p", "Once", "-n", "2");
        assertThat(tied.status()).as(tied.err()).isZero();
        assertThat(tied.err()).contains("1 tensor(s) of the checkpoint not used by the model: 'lm_head.weight'");
    }
}
