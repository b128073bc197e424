package dev.peregrine.embedding;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.EmbeddingOptions;
import dev.peregrine.ModelFormatException;
import dev.peregrine.Pooling;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** sentence-transformers metadata beside a model, written here as sentence-transformers writes it. */
class EncoderMetadataTest {
    @TempDir
    Path dir;

    private EncoderFiles files() throws IOException {
        Files.writeString(dir.resolve("model.onnx"), "not read here");
        Files.writeString(dir.resolve("tokenizer.json"), "{}");
        return EncoderFiles.find(dir);
    }

    private void write(String name, String json) throws IOException {
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        Files.writeString(p, json);
    }

    private static String modules(boolean normalize) {
        return """
                [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                 {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}"""
                + (normalize ? ",\n {\"idx\": 2, \"name\": \"2\", \"path\": \"2_Normalize\", \"type\": \"sentence_transformers.models.Normalize\"}" : "")
                + "]";
    }

    private static String pooling(String on) {
        return "{\"word_embedding_dimension\": 384, \"pooling_mode_cls_token\": " + on.equals("cls")
                + ", \"pooling_mode_mean_tokens\": " + on.equals("mean") + ", \"pooling_mode_max_tokens\": " + on.equals("max")
                + ", \"pooling_mode_mean_sqrt_len_tokens\": false, \"pooling_mode_lasttoken\": " + on.equals("last") + "}";
    }

    @Test
    void withoutMetadataNothingIsSaidAndTheDefaultsStay() throws IOException {
        EncoderMetadata m = EncoderMetadata.read(files());
        assertThat(m).isEqualTo(new EncoderMetadata(null, null, "", "", 0, true, EmbeddingOptions.Input.TEXT));
        assertThat(m.applyTo(EmbeddingOptions.defaults())).isEqualTo(EmbeddingOptions.defaults());
    }

    @Test
    void bgeStyleClsPoolingWithNormalize() throws IOException {
        write("modules.json", modules(true));
        write("1_Pooling/config.json", pooling("cls"));
        write("sentence_bert_config.json", "{\"max_seq_length\": 512, \"do_lower_case\": true}");
        EmbeddingOptions o = EncoderMetadata.read(files()).applyTo(EmbeddingOptions.defaults());
        assertThat(o.pooling()).isEqualTo(Pooling.CLS);
        assertThat(o.normalize()).isTrue();
        assertThat(EncoderMetadata.read(files()).maxLength()).isEqualTo(512);
    }

    @Test
    void e5StyleMeanPoolingWithoutNormalizeAndWithPrompts() throws IOException {
        write("modules.json", modules(false));
        write("1_Pooling/config.json", pooling("mean"));
        write("config_sentence_transformers.json", "{\"prompts\": {\"query\": \"query: \", \"passage\": \"passage: \"}}");
        EmbeddingOptions o = EncoderMetadata.read(files()).applyTo(EmbeddingOptions.defaults());
        assertThat(o.pooling()).isEqualTo(Pooling.MEAN);
        assertThat(o.normalize()).isFalse();
        assertThat(o.forQueries().prefix()).isEqualTo("query: ");
        assertThat(o.forPassages().prefix()).isEqualTo("passage: ");
    }

    @Test
    void lastTokenPoolingAndTheTokenizerConfigsMaximum() throws IOException {
        write("1_Pooling/config.json", pooling("last"));
        write("tokenizer_config.json", "{\"model_max_length\": 256}");
        EncoderMetadata m = EncoderMetadata.read(files());
        assertThat(m.pooling()).isEqualTo(Pooling.LAST_TOKEN);
        assertThat(m.maxLength()).isEqualTo(256);
    }

    @Test
    void theTokenizersTruncationComesBeforeTheTokenizerConfigButAfterSentenceTransformers() throws IOException {
        files();
        write("tokenizer.json", "{\"truncation\": {\"direction\": \"Right\", \"max_length\": 128}, \"model\": {}}");
        write("tokenizer_config.json", "{\"model_max_length\": 512}");
        assertThat(EncoderMetadata.read(EncoderFiles.find(dir)).maxLength()).isEqualTo(128);
        write("sentence_bert_config.json", "{\"max_seq_length\": 256}");
        assertThat(EncoderMetadata.read(EncoderFiles.find(dir)).maxLength()).isEqualTo(256);
    }

    @Test
    void huggingFacesUnsetMaximumIsIgnored() throws IOException {
        write("tokenizer_config.json", "{\"model_max_length\": 1000000000000000019884624838656}");
        assertThat(EncoderMetadata.read(files()).maxLength()).isZero();
    }

    @Test
    void unsupportedPoolingAndMalformedFilesFailAtLoad() throws IOException {
        write("1_Pooling/config.json", pooling("max"));
        assertThatThrownBy(() -> EncoderMetadata.read(files()))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining("'max_tokens' is not supported");
        write("1_Pooling/config.json", "{\"pooling_mode_mean_tokens\": tru");
        assertThatThrownBy(() -> EncoderMetadata.read(files())).isInstanceOf(ModelFormatException.class);
        write("1_Pooling/config.json", "[]");
        assertThatThrownBy(() -> EncoderMetadata.read(files()))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining("expected a JSON object");
    }

    /** Modules and pooling configs whose vectors Peregrine would not reproduce fail at load, by name. */
    @Test
    void modulesAndPoolingsThatWouldGiveOtherVectorsAreRefused() throws IOException {
        write("modules.json", modules(true).replace("]", ",\n {\"idx\": 3, \"name\": \"3\", \"path\": \"2_Dense\","
                + " \"type\": \"sentence_transformers.models.Dense\"}]"));
        write("1_Pooling/config.json", pooling("mean"));
        assertThatThrownBy(() -> EncoderMetadata.read(files())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("module 'sentence_transformers.models.Dense' is not supported");
        write("modules.json", modules(true));
        write("1_Pooling/config.json", pooling("mean").replace("\"pooling_mode_cls_token\": false",
                "\"pooling_mode_cls_token\": true"));
        assertThatThrownBy(() -> EncoderMetadata.read(files())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("pooling modes pooling_mode_cls_token and pooling_mode_mean_tokens are on together");
    }

    /** Lengths that the libraries reading them would refuse, and a Pooling path out of the directory. */
    @Test
    void impossibleLengthsAndPathsOutOfTheDirectoryAreRefused() throws IOException {
        files();
        for (String value : new String[] {"0", "-1", "\"x\"", "1.5"}) {
            write("sentence_bert_config.json", "{\"max_seq_length\": " + value + "}");
            assertThatThrownBy(() -> EncoderMetadata.read(EncoderFiles.find(dir))).isInstanceOf(ModelFormatException.class)
                    .hasMessageContaining("'max_seq_length' = ").hasMessageContaining("is not a positive integer");
        }
        write("sentence_bert_config.json", "{\"max_seq_length\": null}");
        write("tokenizer.json", "{\"truncation\": {\"direction\": \"Right\", \"max_length\": -1}, \"model\": {}}");
        assertThatThrownBy(() -> EncoderMetadata.read(EncoderFiles.find(dir))).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("'truncation.max_length' = -1 is not a positive integer");
        write("tokenizer.json", "{\"model\": {}}");
        assertThat(EncoderMetadata.read(EncoderFiles.find(dir)).maxLength()).as("null: no limit of its own").isZero();
        write("modules.json", modules(false).replace("\"1_Pooling\"", "\"../../etc\""));
        assertThatThrownBy(() -> EncoderMetadata.read(EncoderFiles.find(dir))).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("the Pooling module's path '../../etc' leads out of the model directory");
    }

    /** sentence-transformers' include_prompt and default_prompt_name. */
    @Test
    void promptPoolingAndTheDefaultPromptAreRead() throws IOException {
        write("modules.json", modules(false));
        write("1_Pooling/config.json", pooling("mean").replace("}", ", \"include_prompt\": false}"));
        write("config_sentence_transformers.json", "{\"prompts\": {\"query\": \"query: \", \"document\": \"doc: \"},"
                + " \"default_prompt_name\": \"document\"}");
        EncoderMetadata m = EncoderMetadata.read(files());
        assertThat(m.includePrompt()).isFalse();
        EmbeddingOptions o = m.applyTo(EmbeddingOptions.defaults());
        assertThat(o.prefix()).as("a plain text gets the default prompt").isEqualTo("doc: ");
        assertThat(o.forQueries().prefix()).isEqualTo("query: ");
        write("config_sentence_transformers.json", "{\"prompts\": {\"classification\": \"c: \"},"
                + " \"default_prompt_name\": \"classification\"}");
        assertThatThrownBy(() -> EncoderMetadata.read(files())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("default_prompt_name 'classification' is not supported");
        // The prompt of exactly the default's name, which must exist.
        write("config_sentence_transformers.json", "{\"prompts\": {\"passage\": \"p: \", \"document\": \"d: \"},"
                + " \"default_prompt_name\": \"document\"}");
        assertThat(EncoderMetadata.read(files()).applyTo(EmbeddingOptions.defaults()).prefix()).isEqualTo("d: ");
        write("config_sentence_transformers.json", "{\"prompts\": {\"passage\": \"p: \"}, \"default_prompt_name\": \"query\"}");
        assertThatThrownBy(() -> EncoderMetadata.read(files())).isInstanceOf(ModelFormatException.class)
                .hasMessageContaining("default_prompt_name 'query' names no prompt");
    }
}
