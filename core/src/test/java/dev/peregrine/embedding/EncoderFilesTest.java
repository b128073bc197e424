package dev.peregrine.embedding;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.peregrine.ModelFormatException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EncoderFilesTest {
    @TempDir
    Path dir;

    private Path touch(String name) throws IOException {
        Path p = dir.resolve(name);
        Files.createDirectories(p.getParent());
        return Files.writeString(p, "x");
    }

    @Test
    void aDirectoryWithModelOnnxAndTokenizerJson() throws IOException {
        Path model = touch("model.onnx");
        Path tokenizer = touch("tokenizer.json");
        Path config = touch("tokenizer_config.json");
        assertThat(EncoderFiles.isEncoderPath(dir)).isTrue();
        EncoderFiles f = EncoderFiles.find(dir);
        assertThat(f.model()).isEqualTo(model);
        assertThat(f.tokenizer()).isEqualTo(tokenizer);
        assertThat(f.tokenizerConfig()).isEqualTo(config);
        assertThat(f.metadataDir()).isEqualTo(dir.toAbsolutePath());
    }

    @Test
    void aHuggingFaceRepositoryWithTheModelUnderOnnx() throws IOException {
        Path model = touch("onnx/model.onnx");
        touch("tokenizer.json");
        assertThat(EncoderFiles.isEncoderPath(dir)).isTrue();
        assertThat(EncoderFiles.find(dir).model()).isEqualTo(model);
        assertThat(EncoderFiles.find(model).tokenizer()).isEqualTo(dir.toAbsolutePath().resolve("tokenizer.json"));
        assertThat(EncoderFiles.find(dir).tokenizerConfig()).isNull();
    }

    @Test
    void anOnnxFileWithLangChain4jStyleTokenizerName() throws IOException {
        Path model = touch("bge-small-en-v1.5-q.onnx");
        touch("bge-small-en-v1.5-q-tokenizer.json");
        assertThat(EncoderFiles.isEncoderPath(model)).isTrue();
        assertThat(EncoderFiles.find(model).tokenizer().getFileName().toString()).isEqualTo("bge-small-en-v1.5-q-tokenizer.json");
    }

    @Test
    void otherPathsAreNotEncodersAndMissingFilesAreNamed() throws IOException {
        assertThat(EncoderFiles.isEncoderPath(dir)).isFalse();
        assertThat(EncoderFiles.isEncoderPath(dir.resolve("model.gguf"))).isFalse();
        Path model = touch("model.onnx");
        assertThatThrownBy(() -> EncoderFiles.find(model))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining("no tokenizer found");
        assertThatThrownBy(() -> EncoderFiles.find(dir.resolve("missing.onnx")))
                .isInstanceOf(ModelFormatException.class).hasMessageContaining("no such file");
    }
}
