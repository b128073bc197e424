package dev.peregrine.it;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.Model;
import dev.peregrine.PeregrineException;
import dev.peregrine.UnsupportedModelOperationException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The embeddings API on models that cannot embed, and encoders without a runtime on the class path. */
class DecoderEmbeddingTest {

    @Test
    void aTextGeneratorRefusesToEmbedWithAClearError() {
        try (Model model = Model.load(SharedModels.stories260K())) {
            assertThat(model.isEncoder()).isFalse();
            assertThatThrownBy(() -> model.embed("Once upon a time"))
                    .isInstanceOf(UnsupportedModelOperationException.class)
                    .hasMessageContaining("stories260K.gguf is a text generator, not an encoder");
            assertThatThrownBy(() -> model.embed(List.of("a", "b"))).isInstanceOf(UnsupportedModelOperationException.class);
            assertThatThrownBy(model::embeddingOptions).isInstanceOf(UnsupportedModelOperationException.class);
            assertThat(model.generator()).isNotNull(); // still a working generator
        }
    }

    @Test
    void anOnnxModelWithoutTheOnnxBackendNamesTheMissingDependency(@TempDir Path dir) throws IOException {
        // This module has no ONNX runtime on its class path; the files need not be valid to get that far.
        Files.writeString(dir.resolve("model.onnx"), "x");
        Files.writeString(dir.resolve("tokenizer.json"), "{}");
        assertThatThrownBy(() -> Model.load(dir)).isInstanceOf(PeregrineException.class)
                .hasMessageContaining("add dev.peregrine:peregrine-onnx-backend");
    }
}
